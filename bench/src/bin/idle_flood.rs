//! `colloquy-idle-flood`: starts `colloquy` (memory store, default connection
//! settings unless more arguments are given), holds many connections that send
//! nothing against it for a while, and prints what that did: how long the server
//! kept them, its RSS, `/healthz` latency meanwhile, and its log lines about it.
//! Loopback only; bounded by `--hold-secs`. The server inherits the open-files limit
//! this is started with (e.g. `ulimit -S -n 4096` first, to see what happens at that
//! limit); the flood itself raises its own.
//!
//! ```sh
//! colloquy-idle-flood --colloquy target/release/colloquy --connections 5000 --hold-secs 30
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use colloquy_bench::idle_flood::{self, IdleFloodResult, IdleFloodSpec};
use colloquy_bench::process::{temp_dir, Probe, ServerCommand, ServerProcess};
use colloquy_bench::BenchError;

/// Holds many silent connections against colloquy and reports the damage.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The `colloquy` binary.
    #[arg(long, default_value = "target/release/colloquy")]
    colloquy: PathBuf,
    /// Silent connections to open.
    #[arg(long, default_value_t = 5000)]
    connections: usize,
    /// How long to hold them, in seconds.
    #[arg(long, default_value_t = 30)]
    hold_secs: u64,
    /// Loopback source addresses (127.0.0.1 .. 127.0.0.N) to spread them over.
    #[arg(long, default_value_t = 4)]
    source_addrs: u8,
    /// Send the start of a request head (`GET /healthz HTTP/1.1`, a `Host` header)
    /// that never ends, instead of nothing.
    #[arg(long)]
    partial_head: bool,
    /// More arguments for colloquy (after `--`), e.g. `-- --first-byte-timeout 2s`.
    #[arg(last = true)]
    extra: Vec<String>,
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    // KiB counts are far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let mib = kib as f64 / 1024.0;
    format!("{mib:.1} MiB")
}

fn report(args: &Args, r: &IdleFloodResult, log: &str) -> String {
    let accept_failed = log.lines().filter(|l| l.contains("accept failed")).count();
    let refused = log
        .lines()
        .filter(|l| l.contains("connection limit reached"))
        .count();
    let mut out = format!(
        "colloquy {} {}{}\n\n",
        args.colloquy.display(),
        args.extra.join(" "),
        if args.partial_head {
            " (connections send a partial request head)"
        } else {
            ""
        }
    );
    let lines = [
        format!(
            "- connections: {} asked, {} opened in {:.1} s, {} connects failed; most open at once: {}",
            r.connections,
            r.opened,
            r.ramp.as_secs_f64(),
            r.connect_failures,
            r.peak_open
        ),
        format!(
            "- closed by the server within the {} s hold: {} (after p50 {} ms, max {} ms)",
            r.hold.as_secs(),
            r.closed_by_server,
            ms(r.time_to_close.p50()),
            ms(r.time_to_close.max())
        ),
        format!(
            "- server RSS: {} before, {} at most, {} at the end of the hold",
            mib(r.rss_before_kib),
            mib(r.rss_peak_kib),
            mib(r.rss_end_kib)
        ),
        format!(
            "- /healthz (new connection each, every 50 ms): {} answered, {} failed (longest outage {:.1} s); latency p50 {} ms, p99 {} ms, max {} ms",
            r.healthz.count(),
            r.healthz_failures,
            r.longest_outage.as_secs_f64(),
            ms(r.healthz.p50()),
            ms(r.healthz.p99()),
            ms(r.healthz.max())
        ),
        format!(
            "- server log: {} lines in all, {accept_failed} \"accept failed\", {refused} \"connection limit reached\"",
            log.lines().count()
        ),
    ];
    out.push_str(&lines.join("\n"));
    out
}

async fn run(args: &Args) -> Result<String, BenchError> {
    let logs = temp_dir()?;
    let mut server_args = vec![
        "--bind".to_owned(),
        "127.0.0.1:{port}".to_owned(),
        "--store".to_owned(),
        "memory".to_owned(),
    ];
    server_args.extend(args.extra.iter().cloned());
    let command = ServerCommand {
        name: "colloquy-idle-flood".to_owned(),
        program: args.colloquy.clone(),
        args: server_args,
        env: Vec::new(),
        probe: Probe::Healthz,
    };
    // The server keeps the open-files limit this was started with (`ulimit -n`);
    // the flood needs as many descriptors as connections.
    let server = ServerProcess::start(&command, logs.path()).await?;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let sources: Vec<IpAddr> = (1..=args.source_addrs.max(1))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect();
    let result = idle_flood::run(&IdleFloodSpec {
        target: server.addr(),
        pid: server.pid(),
        connections: args.connections,
        hold: Duration::from_secs(args.hold_secs),
        sources,
        send: if args.partial_head {
            b"GET /healthz HTTP/1.1\r\nHost: flood\r\n".to_vec()
        } else {
            Vec::new()
        },
    })
    .await?;
    let log = std::fs::read_dir(logs.path())
        .ok()
        .and_then(|mut entries| entries.next())
        .and_then(Result::ok)
        .and_then(|entry| std::fs::read_to_string(entry.path()).ok())
        .unwrap_or_default();
    drop(server);
    Ok(report(args, &result, &log))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("colloquy-idle-flood: {e}");
            ExitCode::FAILURE
        }
    }
}
