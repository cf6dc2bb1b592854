//! The run: ceiling, then colloquy per store, then Redis round trips and SSE scale;
//! then the report.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use colloquy_bench::load::{self, Stop};
use colloquy_bench::process::{Probe, ServerCommand, ServerProcess, TempDir};
use colloquy_bench::redis_rtt::RttProxy;
use colloquy_bench::report::{self, ms, Row};
use colloquy_bench::scenarios::{self, Fixture, LoadShape, Scenario};
use colloquy_bench::sse_scale::{self, SseScaleResult, SseScaleSpec};
use colloquy_bench::{BenchError, RequestSpec};
use http::{Method, StatusCode};

use crate::machine;
use crate::settings::{Args, Settings, Store};

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// A benchmark step failed.
    #[error(transparent)]
    Bench(#[from] BenchError),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
    /// A store was skipped with --require-all-stores.
    #[error("store {0} was skipped and --require-all-stores is set")]
    StoreSkipped(&'static str),
}

/// The binaries of the run, and what colloquy gets on a Redis store.
struct Binaries {
    colloquy: PathBuf,
    ceiling: PathBuf,
    /// `--redis-prefix <this run's prefix>` when the Redis is shared (`--redis-url`).
    redis_args: Vec<String>,
}

/// `explicit`, or `name` beside this executable, in `$CARGO_TARGET_DIR/release`, or
/// in `target/release`.
fn find_binary(name: &str, explicit: Option<&Path>) -> Result<PathBuf, BenchError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(BenchError::BinaryNotFound(path.to_owned()))
        };
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        candidates.push(dir.join(name));
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release").join(name));
    }
    candidates.push(PathBuf::from("target/release").join(name));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| BenchError::BinaryNotFound(candidates[candidates.len() - 1].clone()))
}

/// A short unique tag for the names this run creates.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("bench{}", nanos % 1_000_000_000)
}

/// The result of one store.
enum StoreOutcome {
    Measured,
    Skipped(String),
}

/// Runs everything and prints the report; `Ok(false)` when some request failed.
pub(crate) async fn run(args: &Args) -> Result<bool, Failure> {
    let settings = Settings::from_args(args);
    let binaries = Binaries {
        colloquy: find_binary("colloquy", args.colloquy.as_deref())?,
        ceiling: find_binary("colloquy-ceiling", args.ceiling.as_deref())?,
        redis_args: Vec::new(),
    };
    let logs = TempDir::new()?;
    let tag = run_tag();
    let mut binaries = binaries;
    let shared_redis_prefix = args.redis_url.as_ref().map(|_| format!("{tag}:"));
    if let Some(prefix) = &shared_redis_prefix {
        binaries.redis_args = vec!["--redis-prefix".to_owned(), prefix.clone()];
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Colloquy benchmark{}\n",
        if args.quick { " (quick)" } else { "" }
    );
    for line in machine::describe() {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "- settings: {} connections, {} ms warm-up + {} ms measured per scenario, big session {} messages, {} client thread(s)\n",
        settings.connections,
        settings.warmup.as_millis(),
        settings.measure.as_millis(),
        settings.big_session,
        args.client_threads
    );
    eprintln!("colloquy-bench: measuring (progress below; the report follows)");
    let shape = LoadShape {
        connections: settings.connections,
        stop: Stop::Duration {
            warmup: settings.warmup,
            measure: settings.measure,
        },
        sources: Vec::new(),
    };

    // The ceiling.
    let mut rows: Vec<Row> = Vec::new();
    // The ceiling: kept running, and measured again right before each store's
    // scenarios, so each ratio compares figures taken moments apart.
    let ceiling = ServerProcess::start(
        &ServerCommand {
            name: "ceiling".to_owned(),
            program: binaries.ceiling.clone(),
            args: vec!["--bind".to_owned(), "127.0.0.1:{port}".to_owned()],
            env: Vec::new(),
            probe: Probe::Healthz,
        },
        logs.path(),
    )
    .await?;
    let mut ceiling_rps: Vec<f64> = Vec::new();
    for scenario in Scenario::CEILING {
        let load = scenarios::load_for(scenario, ceiling.addr(), None, &shape);
        let (result, cpu) = measured(&ceiling, &load).await?;
        progress("ceiling", scenario, &settings, &result);
        ceiling_rps.push(result.rps());
        rows.push(Row {
            server: "ceiling".to_owned(),
            scenario: scenario.label(settings.big_session),
            result,
            ceiling_rps: None,
            stream: false,
            cpu_per_request: cpu,
            ceiling_cpu_per_request: None,
        });
    }

    // Redis, when a store needs it.
    let needs_redis = args.stores.contains(&Store::Redis);
    let private_redis = if needs_redis && args.redis_url.is_none() {
        match start_redis(args, logs.path()).await {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("colloquy-bench: cannot start a private redis-server: {e}");
                None
            }
        }
    } else {
        None
    };
    let redis_url = args.redis_url.clone().or_else(|| {
        private_redis
            .as_ref()
            .map(|p| format!("redis://{}/0", p.addr()))
    });

    // colloquy per store.
    let mut notes: Vec<String> = Vec::new();
    let mut measured_stores = Vec::new();
    for &store in &args.stores {
        let store_arg = match store {
            Store::Memory => Some("memory".to_owned()),
            Store::Sqlite => Some(format!("sqlite:{}", logs.path().join("bench.db").display())),
            Store::Redis => redis_url.clone(),
        };
        let Some(store_arg) = store_arg else {
            notes.push(format!(
                "- **{}: skipped** — no Redis to run it on.",
                store.name()
            ));
            if args.require_all_stores {
                return Err(Failure::StoreSkipped(store.name()));
            }
            continue;
        };
        let outcome = run_store(
            store,
            &store_arg,
            &binaries,
            &settings,
            &shape,
            &tag,
            logs.path(),
            &ceiling,
            args.only.as_deref(),
            &mut rows,
            &mut ceiling_rps,
        )
        .await?;
        match outcome {
            StoreOutcome::Measured => measured_stores.push(store),
            StoreOutcome::Skipped(why) => {
                notes.push(format!(
                    "- **{}: skipped** — `colloquy --store {store_arg}` did not start: {why}",
                    store.name()
                ));
                if args.require_all_stores {
                    return Err(Failure::StoreSkipped(store.name()));
                }
            }
        }
    }

    // Redis round trips per operation.
    let mut rtt: Vec<(String, f64)> = Vec::new();
    if measured_stores.contains(&Store::Redis) && !args.no_redis_rtt {
        if let Some(url) = &redis_url {
            match redis_round_trips(url, &binaries, &settings, &tag, logs.path()).await {
                Ok(counts) => rtt = counts,
                Err(e) => notes.push(format!("- Redis round trips not measured: {e}")),
            }
        }
    }
    drop(private_redis);
    if let (Some(url), Some(prefix)) = (&args.redis_url, &shared_redis_prefix) {
        notes.push(delete_redis_keys(url, prefix));
    }
    drop(ceiling);
    if ceiling_rps.len() > 2 {
        let lo = ceiling_rps.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ceiling_rps.iter().copied().fold(0.0, f64::max);
        notes.push(format!(
            "- The ceiling was measured {} times (at the start and before each store); its req/s \
             ranged {lo:.0}–{hi:.0}. Each % of ceiling uses the measurement taken just before \
             that store's scenarios.",
            ceiling_rps.len()
        ));
    }

    // SSE scale.
    let mut sse = None;
    if settings.sse_streams > 0 {
        match sse_scale(args, &binaries, &settings, &tag, logs.path()).await {
            Ok((result, how)) => {
                notes.push(how);
                sse = Some(result);
            }
            Err(e) => notes.push(format!("- **SSE scale failed**: {e}")),
        }
    }

    // The report.
    let ok = rows
        .iter()
        .all(|r| r.result.errors == 0 && r.result.completed > 0)
        && sse.as_ref().is_none_or(|s| s.errors == 0);
    let _ = writeln!(out, "{}", report::table(&rows));
    let _ = writeln!(
        out,
        "p50/p99: latency to the end of the response (streams: to the `done` event). \
         % of ceiling: req/s over the ceiling's req/s for the same method, measured just \
         before that store's scenarios. Server CPU: the server process's CPU time (all threads) per \
         request; % of ceiling by CPU: the ceiling's CPU per request over this one's, i.e. \
         the share of the ceiling's throughput this server would reach with the CPU to \
         itself (here the load generator shares the cores).\n"
    );
    for row in rows.iter().filter(|r| r.result.errors > 0) {
        let _ = writeln!(
            out,
            "- errors in {} / {}: {}",
            row.server,
            row.scenario,
            row.result.first_error.as_deref().unwrap_or("?")
        );
    }
    if let Some(s) = &sse {
        let _ = writeln!(out, "{}", sse_section(s));
    }
    if !rtt.is_empty() {
        let _ = writeln!(
            out,
            "### Redis round trips per API operation (one request at a time)\n"
        );
        let _ = writeln!(out, "| operation | round trips |\n|---|---:|");
        for (op, n) in &rtt {
            let _ = writeln!(out, "| {op} | {n:.2} |");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "{}", targets(&rows, &rtt, sse.as_ref(), &settings));
    if !notes.is_empty() {
        let _ = writeln!(out, "### Notes\n");
        for note in &notes {
            let _ = writeln!(out, "{note}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "- load average after the run: {}",
        machine::load_average()
    );
    println!("{out}");
    if let Some(path) = &args.output {
        colloquy_bench::process::write_file(path, &out)?;
    }
    if args.keep_logs {
        eprintln!(
            "colloquy-bench: server logs kept in {}",
            logs.keep().display()
        );
    }
    Ok(ok)
}

/// Runs `load` against `server` and returns the result with the server's CPU time
/// per successful request.
async fn measured(
    server: &ServerProcess,
    load: &load::Load,
) -> Result<(load::LoadResult, Option<Duration>), BenchError> {
    let before = server.cpu_time();
    let result = load::run(load).await?;
    let after = server.cpu_time();
    let per_request = match (before, after) {
        (Some(b), Some(a)) if result.completed > 0 => {
            let n = u32::try_from(result.completed).unwrap_or(u32::MAX);
            Some(a.saturating_sub(b) / n)
        }
        _ => None,
    };
    Ok((result, per_request))
}

/// One progress line on stderr.
fn progress(server: &str, scenario: Scenario, settings: &Settings, r: &load::LoadResult) {
    eprintln!(
        "  {server:>7} {:<20} {:>9.0} req/s  p50 {:>7} ms  p99 {:>7} ms  errors {}",
        scenario.label(settings.big_session),
        r.rps(),
        ms(r.latency.p50()),
        ms(r.latency.p99()),
        r.errors
    );
}

/// The `colloquy` command line for `store_arg`.
fn colloquy_command(
    name: &str,
    binaries: &Binaries,
    store_arg: &str,
    extra: &[String],
) -> ServerCommand {
    let mut args = vec![
        "--bind".to_owned(),
        "127.0.0.1:{port}".to_owned(),
        "--store".to_owned(),
        store_arg.to_owned(),
        "--model".to_owned(),
        "echo".to_owned(),
        "--log-level".to_owned(),
        "warn".to_owned(),
    ];
    if store_arg.starts_with("redis") {
        args.extend(binaries.redis_args.iter().cloned());
    }
    args.extend(extra.iter().cloned());
    ServerCommand {
        name: name.to_owned(),
        program: binaries.colloquy.clone(),
        args,
        env: Vec::new(),
        probe: Probe::Healthz,
    }
}

/// Starts colloquy on `store`, prepares its data and runs every scenario.
#[allow(clippy::too_many_arguments)]
async fn run_store(
    store: Store,
    store_arg: &str,
    binaries: &Binaries,
    settings: &Settings,
    shape: &LoadShape,
    tag: &str,
    logs: &Path,
    ceiling: &ServerProcess,
    only: Option<&str>,
    rows: &mut Vec<Row>,
    ceiling_rps: &mut Vec<f64>,
) -> Result<StoreOutcome, Failure> {
    let command = colloquy_command(
        &format!("colloquy-{}", store.name()),
        binaries,
        store_arg,
        &[],
    );
    let server = match ServerProcess::start(&command, logs).await {
        Ok(server) => server,
        Err(BenchError::ExitedEarly { log_tail, .. }) => {
            let why = log_tail
                .lines()
                .find(|l| l.to_ascii_lowercase().contains("error"))
                .or_else(|| log_tail.lines().find(|l| !l.trim().is_empty()))
                .unwrap_or("")
                .trim()
                .to_owned();
            eprintln!("  {:>7} skipped: {why}", store.name());
            return Ok(StoreOutcome::Skipped(why));
        }
        Err(e) => return Err(e.into()),
    };
    let fixture: Fixture = scenarios::prepare(
        server.addr(),
        &format!("{tag}-{}", store.name()),
        shape,
        settings.big_session,
    )
    .await?;
    // The ceiling again, right before this store's scenarios.
    let mut references = Vec::new();
    for scenario in Scenario::CEILING {
        let load = scenarios::load_for(scenario, ceiling.addr(), None, shape);
        let (reference, cpu) = measured(ceiling, &load).await?;
        reference.require_success("measuring the ceiling")?;
        ceiling_rps.push(reference.rps());
        references.push((reference.rps(), cpu));
    }
    let (reference_get, reference_post) = (references[0], references[1]);
    let only = only.unwrap_or("");
    for scenario in Scenario::COLLOQUY {
        if !scenario.label(settings.big_session).contains(only) {
            continue;
        }
        let (reference, reference_cpu) = if scenario.method() == Method::GET {
            &reference_get
        } else {
            &reference_post
        };
        let load = scenarios::load_for(scenario, server.addr(), Some(&fixture), shape);
        let (result, cpu) = measured(&server, &load).await?;
        progress(store.name(), scenario, settings, &result);
        rows.push(Row {
            server: store.name().to_owned(),
            scenario: scenario.label(settings.big_session),
            result,
            ceiling_rps: Some(*reference),
            stream: scenario == Scenario::Stream,
            cpu_per_request: cpu,
            ceiling_cpu_per_request: *reference_cpu,
        });
    }
    if let Some(kib) = server.rss_kib() {
        eprintln!(
            "  {:>7} server RSS after its scenarios: {:.1} MiB",
            store.name(),
            kib as f64 / 1024.0
        );
    }
    Ok(StoreOutcome::Measured)
}

/// Starts a private `redis-server` on a free port, without persistence.
async fn start_redis(args: &Args, logs: &Path) -> Result<ServerProcess, BenchError> {
    let dir = logs.join("redis");
    std::fs::create_dir_all(&dir).map_err(BenchError::io("creating the Redis directory"))?;
    ServerProcess::start(
        &ServerCommand {
            name: "redis".to_owned(),
            program: args.redis_server.clone(),
            args: vec![
                "--port".to_owned(),
                "{port}".to_owned(),
                "--bind".to_owned(),
                "127.0.0.1".to_owned(),
                "--save".to_owned(),
                String::new(),
                "--appendonly".to_owned(),
                "no".to_owned(),
                "--dir".to_owned(),
                dir.display().to_string(),
            ],
            env: Vec::new(),
            probe: Probe::RedisPing,
        },
        logs,
    )
    .await
}

/// Deletes this run's keys (`*{prefix}*`) from a shared Redis with `redis-cli`;
/// returns a note saying what happened.
fn delete_redis_keys(url: &str, prefix: &str) -> String {
    let pattern = format!("*{prefix}*");
    let scan = std::process::Command::new("redis-cli")
        .args(["-u", url, "--scan", "--pattern", &pattern])
        .output();
    let keys: Vec<String> = match scan {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => {
            return format!(
                "- Could not list this run's Redis keys (`{pattern}`): delete them by hand."
            )
        }
    };
    let mut deleted = 0;
    for batch in keys.chunks(500) {
        let status = std::process::Command::new("redis-cli")
            .args(["-u", url, "UNLINK"])
            .args(batch)
            .stdout(std::process::Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) {
            deleted += batch.len();
        }
    }
    format!(
        "- Deleted {deleted} of {} Redis keys matching `{pattern}` from the shared Redis.",
        keys.len()
    )
}

/// `redis://host:port/db` with the host and port replaced by `addr`.
fn redis_url_via(url: &str, addr: SocketAddr) -> String {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    format!("redis://{addr}{path}")
}

/// The host:port of a `redis://` URL.
fn redis_addr(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("redis://")?;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    let (host, port) = host_port.rsplit_once(':')?;
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    Some(SocketAddr::new(host.parse().ok()?, port.parse().ok()?))
}

/// Runs colloquy on Redis behind [`RttProxy`] and counts round trips per operation,
/// one request at a time.
async fn redis_round_trips(
    url: &str,
    binaries: &Binaries,
    settings: &Settings,
    tag: &str,
    logs: &Path,
) -> Result<Vec<(String, f64)>, BenchError> {
    let upstream = redis_addr(url).ok_or_else(|| BenchError::BinaryNotFound(PathBuf::from(url)))?;
    let proxy = RttProxy::start(upstream).await?;
    let command = colloquy_command(
        "colloquy-redis-rtt",
        binaries,
        &redis_url_via(url, proxy.addr()),
        &[],
    );
    let server = ServerProcess::start(&command, logs).await?;
    let shape = LoadShape {
        connections: 1,
        stop: Stop::Requests(settings.rtt_requests),
        sources: Vec::new(),
    };
    let fixture = scenarios::prepare(
        server.addr(),
        &format!("{tag}-rtt"),
        &shape,
        scenarios::SMALL_SESSION,
    )
    .await?;
    let mut counts = Vec::new();
    for scenario in [
        Scenario::CreateSession,
        Scenario::CreateMessage,
        Scenario::GetMessage,
        Scenario::ListSmall,
        Scenario::Chat,
        Scenario::Stream,
    ] {
        let load = scenarios::load_for(scenario, server.addr(), Some(&fixture), &shape);
        // Warm up (script loading, connection set-up), then count.
        let mut warm = load.clone();
        warm.stop = Stop::Requests(5);
        load::run(&warm)
            .await?
            .require_success("warming up the Redis round-trip count")?;
        let before = proxy.turns();
        let result = load::run(&load).await?;
        result.require_success("counting Redis round trips")?;
        let turns = proxy.turns() - before;
        #[allow(clippy::cast_precision_loss)]
        counts.push((
            scenario.label(settings.big_session),
            turns as f64 / result.ok.max(1) as f64,
        ));
    }
    // Health checks do not touch the store; make sure nothing else did either.
    let idle = proxy.turns();
    let mut conn = colloquy_bench::client::Conn::connect(server.addr(), None).await?;
    conn.call_expect(&RequestSpec::get("/healthz"), StatusCode::OK)
        .await?;
    if proxy.turns() != idle {
        counts.push((
            "(GET /healthz, expected 0)".to_owned(),
            (proxy.turns() - idle) as f64,
        ));
    }
    Ok(counts)
}

/// Runs SSE scale on colloquy (memory store) with a slow echo model
/// (`--echo-delay-arg`). Returns the result and a note saying which server ran it.
async fn sse_scale(
    args: &Args,
    binaries: &Binaries,
    settings: &Settings,
    tag: &str,
    logs: &Path,
) -> Result<(SseScaleResult, String), BenchError> {
    let delay_ms = settings.sse_chunk_delay.as_millis().to_string();
    let delay_arg = args.echo_delay_arg.replace("{ms}", &delay_ms);
    // Room for every stream and the set-up connections over the default cap of
    // 10,000 (colloquy lowers it to fit its open-files limit).
    let cap_arg = format!("--max-connections={}", settings.sse_streams + 1000);
    let command = colloquy_command(
        "colloquy-sse",
        binaries,
        "memory",
        &[delay_arg.clone(), cap_arg],
    );
    let server = ServerProcess::start(&command, logs).await?;
    let mut how = format!("- SSE scale ran on `colloquy --store memory {delay_arg}`.");
    let mut streams = settings.sse_streams;
    if let Some(limit) = machine::open_files_limit() {
        let usable = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(256);
        if streams > usable {
            how.push_str(&format!(
                "\n- **SSE scale reduced to {usable} streams**: the open-files limit is {limit} \
                 (raise it with `ulimit -n`; scripts/bench.sh does)."
            ));
            streams = usable;
        }
    }
    let sources: Vec<IpAddr> = (1..=args.source_addrs.max(1))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect();
    let result = sse_scale::run(&SseScaleSpec {
        target: server.addr(),
        pid: server.pid(),
        streams,
        words: settings.sse_words,
        chunk_delay: settings.sse_chunk_delay,
        sources,
        tag: format!("{tag}-sse"),
    })
    .await?;
    eprintln!(
        "  SSE scale: {} of {} open at once, RSS {:.1} -> {:.1} MiB, gap p99 {} ms, errors {}",
        result.peak_open,
        result.streams,
        result.rss_before_kib as f64 / 1024.0,
        result.rss_open_kib as f64 / 1024.0,
        ms(result.gaps.p99()),
        result.errors
    );
    Ok((result, how))
}

/// The SSE scale section of the report.
fn sse_section(s: &SseScaleResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### SSE scale\n");
    let _ = writeln!(out, "| streams | open at once | ramp | RSS before | RSS open | per open stream | chunk delay | gap p50 | gap p99 | gap max | completed | errors |");
    let _ = writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let _ = writeln!(
        out,
        "| {} | {} | {:.1} s | {:.1} MiB | {:.1} MiB | {:.1} KiB | {} ms | {} ms | {} ms | {} ms | {} | {} |",
        s.streams,
        s.peak_open,
        s.ramp.as_secs_f64(),
        s.rss_before_kib as f64 / 1024.0,
        s.rss_open_kib as f64 / 1024.0,
        s.kib_per_stream(),
        s.chunk_delay.as_millis(),
        ms(s.gaps.p50()),
        ms(s.gaps.p99()),
        ms(s.gaps.max()),
        s.completed,
        s.errors
    );
    if let Some(e) = &s.first_error {
        let _ = writeln!(out, "\nfirst stream error: {e}");
    }
    out
}

/// Where each target of the issue stands.
fn targets(
    rows: &[Row],
    rtt: &[(String, f64)],
    sse: Option<&SseScaleResult>,
    settings: &Settings,
) -> String {
    let mut out = String::from("### Targets\n\n");
    let find = |server: &str, scenario: &str| {
        rows.iter()
            .find(|r| r.server == server && r.scenario == scenario)
    };
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    match find("memory", "create message").and_then(Row::percent_of_ceiling) {
        Some(p) => {
            let _ = writeln!(
                out,
                "- create message on memory ≥ 60% of the ceiling: {p:.0}% — {}",
                verdict(p >= 60.0)
            );
        }
        None => out.push_str("- create message on memory ≥ 60% of the ceiling: not measured\n"),
    }
    let small = format!("list 50 of {}", scenarios::SMALL_SESSION);
    let big = format!("list 50 of {}", settings.big_session);
    let same_page = format!("list 20 of {}", settings.big_session);
    let p50_ratio = |a: &Row, b: &Row| {
        let (a, b) = (
            a.result.latency.p50().as_secs_f64(),
            b.result.latency.p50().as_secs_f64(),
        );
        if b > 0.0 {
            a / b
        } else {
            0.0
        }
    };
    for store in ["memory", "sqlite", "redis"] {
        if let (Some(s), Some(b)) = (find(store, &small), find(store, &big)) {
            let ratio = p50_ratio(b, s);
            let _ = write!(
                out,
                "- {store}: {big} within 2× the time of {small} (p50 {} vs {} ms): {ratio:.2}× — {}",
                ms(b.result.latency.p50()),
                ms(s.result.latency.p50()),
                verdict(ratio <= 2.0)
            );
            if let Some(p) = find(store, &same_page) {
                let _ = write!(
                    out,
                    "; with the same page size ({same_page}, p50 {} ms): {:.2}×",
                    ms(p.result.latency.p50()),
                    p50_ratio(p, s)
                );
            }
            out.push('\n');
        }
    }
    if !rtt.is_empty() {
        let worst = rtt
            .iter()
            .filter(|(op, _)| !op.starts_with('('))
            .map(|(_, n)| *n)
            .fold(0.0, f64::max);
        let single: Vec<&str> = rtt
            .iter()
            .filter(|(op, n)| *n <= 1.05 && !op.starts_with('('))
            .map(|(op, _)| op.as_str())
            .collect();
        let _ = writeln!(
            out,
            "- Redis one round trip per API operation: one for {}; most for one operation: {worst:.2} — {}",
            if single.is_empty() { "none".to_owned() } else { single.join(", ") },
            verdict(worst <= 1.05)
        );
    }
    if let Some(s) = sse {
        let mib = s.rss_open_kib as f64 / 1024.0;
        let full = s.peak_open >= 10_000;
        let _ = writeln!(
            out,
            "- 10,000 concurrent streams under 300 MB RSS: {} open at once, {mib:.1} MiB — {}",
            s.peak_open,
            if full {
                verdict(mib * 1.048_576 < 300.0)
            } else {
                "not tested at this setting"
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn redis_urls_are_rerouted_through_the_proxy() {
        let proxy: SocketAddr = "127.0.0.1:4000".parse().expect("literal address");
        assert_eq!(
            redis_url_via("redis://127.0.0.1:6379/3", proxy),
            "redis://127.0.0.1:4000/3"
        );
        assert_eq!(
            redis_url_via("redis://localhost:6379", proxy),
            "redis://127.0.0.1:4000"
        );
        assert_eq!(
            redis_addr("redis://localhost:6379/0"),
            Some("127.0.0.1:6379".parse().expect("literal address"))
        );
        assert_eq!(
            redis_addr("redis://user:pw@127.0.0.1:7000/1"),
            Some("127.0.0.1:7000".parse().expect("literal address"))
        );
        assert_eq!(redis_addr("memory"), None);
    }

    #[test]
    fn explicit_binary_must_exist() {
        let missing = Path::new("/nonexistent/colloquy");
        assert!(matches!(
            find_binary("colloquy", Some(missing)),
            Err(BenchError::BinaryNotFound(p)) if p == missing
        ));
    }

    #[test]
    fn quick_settings_are_small_and_flags_override_them() {
        let quick = Settings::from_args(&Args::parse_from(["colloquy-bench", "--quick"]));
        assert!(quick.measure < Duration::from_millis(500));
        assert!(quick.sse_streams < 1000);
        let full = Settings::from_args(&Args::parse_from(["colloquy-bench", "--connections", "8"]));
        assert_eq!(full.connections, 8);
        assert_eq!(full.big_session, 10_000);
        assert_eq!(full.sse_streams, 10_000);
    }
}
