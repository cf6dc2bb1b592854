//! The command line and the settings it selects.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Benchmarks colloquy against a bare hyper server (the ceiling) in one run.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about = None)]
pub(crate) struct Args {
    /// Smallest setting (a few seconds in all): what CI runs to keep this working.
    #[arg(long)]
    pub(crate) quick: bool,

    /// The `colloquy` release binary (default: beside this one, or target/release).
    #[arg(long)]
    pub(crate) colloquy: Option<PathBuf>,

    /// The `colloquy-ceiling` binary (default: beside this one, or target/release).
    #[arg(long)]
    pub(crate) ceiling: Option<PathBuf>,

    /// Stores to benchmark, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "memory,sqlite,redis,postgres"
    )]
    pub(crate) stores: Vec<Store>,

    /// Run only the colloquy scenarios whose name contains this text (e.g.
    /// `create message`); the ceiling always runs.
    #[arg(long)]
    pub(crate) only: Option<String>,

    /// Fail when a store is skipped because `colloquy` refuses its `--store` value.
    #[arg(long)]
    pub(crate) require_all_stores: bool,

    /// Concurrent keep-alive connections per scenario [full: 32, quick: 4].
    #[arg(long)]
    pub(crate) connections: Option<usize>,

    /// Measured time per scenario in milliseconds [full: 2500, quick: 100].
    #[arg(long)]
    pub(crate) measure_ms: Option<u64>,

    /// Unmeasured warm-up per scenario in milliseconds [full: 500, quick: 0].
    #[arg(long)]
    pub(crate) warmup_ms: Option<u64>,

    /// Messages in the big session listed by "list 50 of N" [full: 10000, quick: 300].
    #[arg(long)]
    pub(crate) big_session: Option<usize>,

    /// Streams held open at once by SSE scale; 0 skips it [full: 10000, quick: 200].
    #[arg(long)]
    pub(crate) sse_streams: Option<usize>,

    /// Per-chunk delay of the echo model in SSE scale, ms [full: 500, quick: 30].
    #[arg(long)]
    pub(crate) sse_chunk_delay_ms: Option<u64>,

    /// Words per SSE scale message; the echo streams words + 1 chunks [full: 23, quick: 7].
    #[arg(long)]
    pub(crate) sse_words: Option<usize>,

    /// The `colloquy` argument that sets the echo model's per-chunk delay; `{ms}` is
    /// replaced by the delay in milliseconds.
    #[arg(long, default_value = "--echo-chunk-delay={ms}ms")]
    pub(crate) echo_delay_arg: String,

    /// Loopback source addresses (127.0.0.1 .. 127.0.0.N) for SSE scale connections.
    #[arg(long, default_value_t = 4)]
    pub(crate) source_addrs: u8,

    /// Skip the round-trip counts (Redis, PostgreSQL).
    #[arg(long)]
    pub(crate) no_rtt: bool,

    /// Count Redis round trips of chat and stream also on colloquy started with these
    /// extra arguments (whitespace-separated); repeat for more variants. Default:
    /// `--stream-log local` when `colloquy --help` lists `--stream-log`.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) redis_rtt_args: Vec<String>,

    /// The PostgreSQL server for the postgres store: the run creates a private
    /// database there and drops it at the end (with `psql`).
    #[arg(
        long,
        env = "COLLOQUY_POSTGRES_URL",
        default_value = "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres"
    )]
    pub(crate) postgres_url: String,

    /// Skip the rate-limits-on-vs-off comparison.
    #[arg(long)]
    pub(crate) no_rate_limits: bool,

    /// Use this Redis (`redis://host:port/db`) instead of a private `redis-server` on a
    /// free port. The run leaves its sessions there (they expire after 24 h).
    #[arg(long)]
    pub(crate) redis_url: Option<String>,

    /// The `redis-server` executable for the private instance.
    #[arg(long, default_value = "redis-server")]
    pub(crate) redis_server: PathBuf,

    /// Client (load generator) threads; the rest of the machine is the server's.
    #[arg(long, default_value_t = 1)]
    pub(crate) client_threads: usize,

    /// Also write the report (markdown) to this file.
    #[arg(long)]
    pub(crate) output: Option<PathBuf>,

    /// Keep the servers' logs (their directory is printed).
    #[arg(long)]
    pub(crate) keep_logs: bool,

    /// Another `colloquy` binary (e.g. main's release build) to compare this one with:
    /// create message and chat on memory, measured alternately, and its sustained chat.
    #[arg(long)]
    pub(crate) baseline: Option<PathBuf>,

    /// Alternations (baseline, this) of each compared scenario [full: 3, quick: 1].
    #[arg(long)]
    pub(crate) baseline_pairs: Option<usize>,

    /// Consecutive windows of sustained chat per store; 0 skips it [full: 6, quick: 3].
    #[arg(long)]
    pub(crate) sustained_windows: Option<usize>,

    /// Length of each sustained chat window in milliseconds [full: 10000, quick: 1000].
    #[arg(long)]
    pub(crate) sustained_window_ms: Option<u64>,
}

/// A store `colloquy` can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Store {
    /// In-process memory.
    Memory,
    /// SQLite file in a temporary directory.
    Sqlite,
    /// Redis (a private instance unless --redis-url).
    Redis,
    /// PostgreSQL (a private database on --postgres-url).
    Postgres,
}

impl Store {
    /// Its name in the table.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite => "sqlite",
            Self::Redis => "redis",
            Self::Postgres => "postgres",
        }
    }
}

/// The resolved numbers of a run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) connections: usize,
    pub(crate) measure: Duration,
    pub(crate) warmup: Duration,
    pub(crate) big_session: usize,
    pub(crate) sse_streams: usize,
    pub(crate) sse_chunk_delay: Duration,
    pub(crate) sse_words: usize,
    /// Sequential requests per operation for the round-trip counts.
    pub(crate) rtt_requests: u64,
    /// Requests of each one-client chat scenario.
    pub(crate) one_client_requests: u64,
    /// Windows of sustained chat (0: none).
    pub(crate) sustained_windows: usize,
    /// Length of a sustained chat window.
    pub(crate) sustained_window: Duration,
    /// Alternations of each scenario compared with `--baseline`.
    pub(crate) baseline_pairs: usize,
}

impl Settings {
    /// The full or quick defaults, overridden by the flags given.
    pub(crate) fn from_args(args: &Args) -> Self {
        let q = args.quick;
        Self {
            connections: args.connections.unwrap_or(if q { 4 } else { 32 }).max(1),
            measure: Duration::from_millis(args.measure_ms.unwrap_or(if q { 100 } else { 2500 })),
            warmup: Duration::from_millis(args.warmup_ms.unwrap_or(if q { 0 } else { 500 })),
            big_session: args
                .big_session
                .unwrap_or(if q { 300 } else { 10_000 })
                .max(1),
            sse_streams: args.sse_streams.unwrap_or(if q { 200 } else { 10_000 }),
            sse_chunk_delay: Duration::from_millis(args.sse_chunk_delay_ms.unwrap_or(if q {
                30
            } else {
                500
            })),
            sse_words: args.sse_words.unwrap_or(if q { 7 } else { 23 }).max(1),
            rtt_requests: if q { 20 } else { 200 },
            one_client_requests: if q { 40 } else { 400 },
            sustained_windows: args.sustained_windows.unwrap_or(if q { 3 } else { 6 }),
            sustained_window: Duration::from_millis(
                args.sustained_window_ms
                    .unwrap_or(if q { 1_000 } else { 10_000 })
                    .max(1),
            ),
            baseline_pairs: args.baseline_pairs.unwrap_or(if q { 1 } else { 3 }).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_settings_are_small_and_flags_override_them() {
        let quick = Settings::from_args(&Args::parse_from(["colloquy-bench", "--quick"]));
        assert!(quick.measure < Duration::from_millis(500));
        assert!(quick.sse_streams < 1000);
        assert!(
            quick.sustained_window * u32::try_from(quick.sustained_windows).unwrap_or(0)
                <= Duration::from_secs(5),
            "the quick sustained row takes a few seconds"
        );
        let full = Settings::from_args(&Args::parse_from(["colloquy-bench", "--connections", "8"]));
        assert_eq!(full.connections, 8);
        assert_eq!(full.big_session, 10_000);
        assert_eq!(full.sse_streams, 10_000);
        assert_eq!(
            full.sustained_window * u32::try_from(full.sustained_windows).unwrap_or(0),
            Duration::from_secs(60)
        );
    }
}
