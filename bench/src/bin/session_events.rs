//! `colloquy-session-events`: measures the `SessionEvents` adapters in this
//! process and prints the figures: memory per idle subscriber (in-process and
//! Redis), publish-to-receive latency with many subscribers on one session and
//! on many sessions (in-process and Redis), and cross-instance latency (two
//! adapter objects on one Redis, one PostgreSQL). A backend that is not reachable
//! is reported and skipped.
//!
//! ```sh
//! cargo run --release -p colloquy-bench --bin colloquy-session-events
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
