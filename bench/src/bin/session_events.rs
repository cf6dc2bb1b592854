//! `colloquy-session-events`: measures the `SessionEvents` adapters in this
//! process and prints the figures: memory per idle subscriber (in-process and
//! Redis), publish-to-receive latency with many subscribers on one session and
//! on many sessions (in-process and Redis), and cross-instance latency (two
//! adapter objects on one Redis, one PostgreSQL). A backend that is not reachable
//! is reported and skipped.
//!
//! With `--server <colloquy binary>` it also measures the server: memory per idle
//! `GET /sessions/{id}/events/` stream held open (`--streams`, default 10,000),
//! against memory per open chat stream on the same binary (a slow echo answer).
//!
//! ```sh
//! cargo run --release -p colloquy-bench --bin colloquy-session-events
//! cargo run --release -p colloquy-bench --bin colloquy-session-events -- \
//!     --server target/release/colloquy --idle 0
//! cargo run --release -p colloquy-bench --bin colloquy-session-events -- \
//!     --postgres postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use colloquy_bench::session_events::{idle, latency, IdleResult, LatencyResult};
use colloquy_bench::BenchError;
use colloquy_core::{LocalSessionEvents, SessionEvents};
use colloquy_postgres::{PostgresConfig, PostgresSessionEvents};
use colloquy_redis::{RedisConfig, RedisSessionEvents};

/// Measures the session-events adapters.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Idle subscribers to hold for the memory figure.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Subscribers in the latency runs.
    #[arg(long, default_value_t = 1_000)]
    subscribers: usize,
    /// Events published in each latency run.
    #[arg(long, default_value_t = 200)]
    events: usize,
    /// The Redis to use ("" to skip).
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    redis: String,
    /// The PostgreSQL to use (unset to skip).
    #[arg(long, env = "COLLOQUY_POSTGRES_URL")]
    postgres: Option<String>,
    /// Ring capacity (events a subscriber may fall behind).
    #[arg(long, default_value_t = 32)]
    capacity: usize,
    /// A `colloquy` binary: also measure the server's memory per idle events
    /// stream and per open chat stream.
    #[arg(long)]
    server: Option<std::path::PathBuf>,
    /// Streams to hold open against the server.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// Loopback source addresses to spread them over (the server allows 32 event
    /// streams per client address).
    #[arg(long, default_value_t = 400)]
    source_addrs: usize,
    /// Skip the in-process port measurements (only `--server`).
    #[arg(long)]
    server_only: bool,
}

/// The server's memory per idle events stream, then per open chat stream, each on
/// a fresh `colloquy --store memory`.
async fn server_streams(args: &Args, program: &std::path::Path) -> Result<(), BenchError> {
    use colloquy_bench::process::{ServerCommand, ServerProcess};
    use colloquy_bench::scenarios::create_named_sessions;
    use colloquy_bench::session_events::{hold_streams, StreamsSpec};
    use colloquy_bench::sse_scale::{self, SseScaleSpec};
    use std::net::{IpAddr, Ipv4Addr};

    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let logs = colloquy_bench::process::temp_dir()?;
    let sources: Vec<IpAddr> = (0..args.source_addrs.max(1))
        .map(|i| {
            let i = u32::try_from(i).unwrap_or(0);
            let [_, _, b, c] = (i / 250 * 256 + i % 250 + 1).to_be_bytes();
            IpAddr::V4(Ipv4Addr::new(127, 0, b, c))
        })
        .collect();
    let command = |name: &str| ServerCommand {
        name: name.to_owned(),
        program: program.to_owned(),
        args: [
            "--bind",
            "127.0.0.1:{port}",
            "--store",
            "memory",
            "--model",
            "echo",
            "--log-level",
            "warn",
            "--echo-chunk-delay",
            "500ms",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("--max-connections={}", args.streams + 1000)])
        .collect(),
        env: Vec::new(),
        probe: colloquy_bench::process::Probe::Healthz,
    };
    let tag = uuid::Uuid::new_v4().simple().to_string();

    let server = ServerProcess::start(&command("colloquy-events"), logs.path()).await?;
    let sessions = create_named_sessions(
        server.addr(),
        &format!("ev-{tag}"),
        args.streams,
        64,
        &sources,
    )
    .await?;
    let held = hold_streams(&StreamsSpec {
        target: server.addr(),
        pid: server.pid(),
        sessions,
        sources: sources.clone(),
    })
    .await?;
    println!(
        "| server | idle events streams | {} of {} open in {:?} | RSS {} -> {} KiB | {:.1} KiB per stream | errors {} {} |",
        held.open,
        held.streams,
        held.ramp,
        held.rss_before_kib,
        held.rss_open_kib,
        held.kib_per_stream(),
        held.errors,
        held.first_error.unwrap_or_default()
    );
    drop(server);

    let server = ServerProcess::start(&command("colloquy-chat-streams"), logs.path()).await?;
    let chat = sse_scale::run(&SseScaleSpec {
        target: server.addr(),
        pid: server.pid(),
        streams: args.streams,
        words: 23,
        chunk_delay: std::time::Duration::from_millis(500),
        sources,
        tag: format!("ch-{tag}"),
    })
    .await?;
    println!(
        "| server | open chat streams (echo, 500 ms per chunk) | {} of {} open | RSS {} -> {} KiB | {:.1} KiB per stream | errors {} |",
        chat.peak_open,
        chat.streams,
        chat.rss_before_kib,
        chat.rss_open_kib,
        chat.kib_per_stream(),
        chat.errors
    );
    Ok(())
}

fn print_idle(name: &str, r: &IdleResult) {
    println!(
        "| idle | {name} | {} subscribers on {} sessions | RSS {} -> {} KiB | {:.0} B per subscriber | subscribed in {:?} |",
        r.subscribers,
        r.sessions,
        r.rss_before_kib,
        r.rss_held_kib,
        r.bytes_per_subscriber(),
        r.subscribe_time
    );
}

fn print_latency(name: &str, r: &LatencyResult) {
    println!(
        "| latency | {name} | {} subscribers on {} sessions, {} events | {} receipts | p50 {:?} | p99 {:?} | max {:?} |",
        r.subscribers,
        r.sessions,
        r.events,
        r.latency.count(),
        r.latency.p50(),
        r.latency.p99(),
        r.latency.max()
    );
}

async fn run(args: Args) -> Result<(), BenchError> {
    if let Some(program) = &args.server {
        server_streams(&args, program).await?;
    }
    if args.server_only {
        return Ok(());
    }
    let prefix = format!("colloquy-bench-events:{}:", uuid::Uuid::new_v4().simple());
    let n = args.subscribers;

    // Idle memory first, while the heap is fresh.
    let local = LocalSessionEvents::with_capacity(args.capacity);
    print_idle("memory", &idle(&local, args.idle, args.idle).await?);
    print_idle("memory (one session)", &idle(&local, args.idle, 1).await?);

    let redis = if args.redis.is_empty() {
        None
    } else {
        let config = RedisConfig::with_prefix(prefix.clone());
        let connect = || RedisSessionEvents::connect(&args.redis, &config, args.capacity);
        match (connect().await, connect().await) {
            (Ok(one), Ok(two)) => Some((one, two)),
            (Err(e), _) | (_, Err(e)) => {
                println!("redis: skipped ({e})");
                None
            }
        }
    };
    if let Some((one, _)) = &redis {
        print_idle("redis", &idle(one, args.idle, args.idle).await?);
    }

    print_latency(
        "memory, one session",
        &latency(&local, &local, n, 1, args.events).await?,
    );
    print_latency(
        "memory, one per session",
        &latency(&local, &local, n, n, args.events.max(n)).await?,
    );
    if let Some((one, two)) = &redis {
        print_latency(
            "redis, one session",
            &latency(one, one, n, 1, args.events).await?,
        );
        print_latency(
            "redis, one per session",
            &latency(one, one, n, n, args.events.max(n)).await?,
        );
        print_latency(
            "redis, cross-instance",
            &latency(one, two, 1, 1, args.events * 5).await?,
        );
    }

    if let Some(url) = &args.postgres {
        let config = PostgresConfig::new(url.clone());
        let connect = || PostgresSessionEvents::connect(&config, args.capacity);
        match (connect().await, connect().await) {
            (Ok(one), Ok(two)) => {
                let (one, two): (Arc<dyn SessionEvents>, Arc<dyn SessionEvents>) =
                    (Arc::new(one), Arc::new(two));
                print_latency(
                    "postgres, cross-instance",
                    &latency(&*one, &*two, 1, 1, args.events * 5).await?,
                );
                print_latency(
                    "postgres, cross-instance, 1,000 on one session",
                    &latency(&*one, &*two, n, 1, args.events).await?,
                );
            }
            (Err(e), _) | (_, Err(e)) => println!("postgres: skipped ({e})"),
        }
    } else {
        println!("postgres: skipped (no --postgres / COLLOQUY_POSTGRES_URL)");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("session events bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
