//! The run: ceiling, then colloquy per store, rate limits on vs off, store round
//! trips and SSE scale; then the report.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use colloquy_bench::load::{self, Stop};
use colloquy_bench::process::ServerProcess;
use colloquy_bench::report::{ms, Row};
use colloquy_bench::rtt::Upstream;
use colloquy_bench::scenarios::{self, Scenario};
use colloquy_bench::sse_scale::{self, SseScaleResult, SseScaleSpec};
use colloquy_bench::BenchError;
use http::Method;

use crate::postgres::{self, PrivateDatabase};
use crate::round_trips::{self, Column, Variant};
use crate::servers::{measured, start_failure, RunContext};
use crate::settings::Store;
use crate::summary::{self, Report};
use crate::sustained::Sustained;
use crate::{baseline, budgets, limits, machine, redis, sustained, urls};

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

/// The stores' services of a run (a private Redis, a private PostgreSQL database),
/// released on drop.
struct Services {
    redis_url: Option<String>,
    _private_redis: Option<ServerProcess>,
    postgres: Result<PrivateDatabase, String>,
}

impl Services {
    /// Starts what the selected stores need; what cannot be had is a reason.
    async fn start(ctx: &RunContext<'_>) -> Self {
        let args = ctx.args;
        let private_redis = if args.stores.contains(&Store::Redis) && args.redis_url.is_none() {
            match redis::start(ctx).await {
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
        let postgres = if args.stores.contains(&Store::Postgres) {
            PrivateDatabase::create(&args.postgres_url, &ctx.tag).map_err(|e| e.to_string())
        } else {
            Err("not selected".to_owned())
        };
        Self {
            redis_url,
            _private_redis: private_redis,
            postgres,
        }
    }

    /// `colloquy --store` for `store`, or why there is none.
    fn store_arg(&self, ctx: &RunContext<'_>, store: Store) -> Result<String, String> {
        match store {
            Store::Memory => Ok("memory".to_owned()),
            Store::Sqlite => Ok(format!("sqlite:{}", ctx.logs().join("bench.db").display())),
            Store::Redis => self
                .redis_url
                .clone()
                .ok_or_else(|| "no Redis to run it on".to_owned()),
            Store::Postgres => self
                .postgres
                .as_ref()
                .map(|db| db.url().to_owned())
                .map_err(|e| format!("no PostgreSQL database: {e}")),
        }
    }
}

/// Runs everything and prints the report; `Ok(false)` when some request failed.
pub(crate) async fn run(args: &crate::settings::Args) -> Result<bool, Failure> {
    let ctx = RunContext::new(args)?;
    let header = summary::header(&ctx);
    eprintln!("colloquy-bench: measuring (progress below; the report follows)");

    // The ceiling: kept running, and measured again right before each store's
    // scenarios, so each ratio compares figures taken moments apart.
    let ceiling = ctx.start_ceiling().await?;
    let mut rows = ceiling_rows(&ctx, &ceiling).await?;
    let mut ceiling_rps: Vec<f64> = rows.iter().map(|r| r.result.rps()).collect();

    let services = Services::start(&ctx).await;
    let mut notes: Vec<String> = Vec::new();
    let mut measured_stores = Vec::new();
    let mut sustained_rows: Vec<Sustained> = Vec::new();
    for &store in &args.stores {
        let skipped = match services.store_arg(&ctx, store) {
            Err(why) => Some(why),
            Ok(store_arg) => {
                let mut run = StoreRun {
                    ctx: &ctx,
                    ceiling: &ceiling,
                    rows: &mut rows,
                    ceiling_rps: &mut ceiling_rps,
                    sustained: &mut sustained_rows,
                };
                run.measure(store, &store_arg).await?.map(|why| {
                    format!(
                        "`colloquy --store {}` did not start: {why}",
                        urls::redacted(&store_arg)
                    )
                })
            }
        };
        match skipped {
            None => measured_stores.push(store),
            Some(why) => {
                notes.push(format!("- **{}: skipped** — {why}", store.name()));
                if args.require_all_stores {
                    return Err(Failure::StoreSkipped(store.name()));
                }
            }
        }
    }

    let mut compared = baseline::Outcome::default();
    if let (Some(path), true) = (&args.baseline, args.stores.contains(&Store::Memory)) {
        eprintln!("  this binary vs the baseline (memory)");
        match baseline::compare(&ctx, path, ctx.settings.baseline_pairs).await {
            Ok(outcome) => compared = outcome,
            Err(e) => notes.push(format!("- **Baseline comparison failed**: {e}")),
        }
        sustained_rows.extend(compared.sustained.take());
    }

    let mut limits = Vec::new();
    if !args.no_rate_limits && args.stores.contains(&Store::Memory) {
        eprintln!("  rate limits on vs off (memory)");
        match limits::compare(&ctx).await {
            Ok(c) => limits = c,
            Err(e) => notes.push(format!("- **Rate limits on vs off failed**: {e}")),
        }
    }

    let mut budget_rows = Vec::new();
    if !args.no_rate_limits
        && args.stores.contains(&Store::Memory)
        && ctx.colloquy_has_flag(budgets::BUDGET_FLAG)
    {
        eprintln!("  token budgets on vs off (memory)");
        match budgets::compare(&ctx).await {
            Ok(c) => budget_rows = c,
            Err(e) => notes.push(format!("- **Token budgets on vs off failed**: {e}")),
        }
    }

    let mut rtt: Vec<Column> = Vec::new();
    if !args.no_rtt {
        for variant in rtt_variants(&ctx, &services, &measured_stores) {
            eprintln!("  round trips: {}", variant.column);
            rtt.push(round_trips::measure(&ctx, &variant).await);
        }
    }
    drop(services);
    if let (Some(url), Some(prefix)) = (&args.redis_url, ctx.shared_redis_prefix()) {
        notes.push(redis::delete_keys(url, prefix));
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

    let mut sse = None;
    if ctx.settings.sse_streams > 0 {
        match sse_scale(&ctx).await {
            Ok((result, how)) => {
                notes.push(how);
                sse = Some(result);
            }
            Err(e) => notes.push(format!("- **SSE scale failed**: {e}")),
        }
    }

    let report = Report {
        rows: &rows,
        rtt: &rtt,
        limits: &limits,
        budgets: &budget_rows,
        sse: sse.as_ref(),
        notes: &notes,
        big: ctx.settings.big_session,
        sustained: &sustained_rows,
        baseline: args
            .baseline
            .as_deref()
            .map(|path| (path, compared.comparisons.as_slice())),
        connections: ctx.settings.connections,
    };
    let out = format!("{header}{}", report.render());
    println!("{out}");
    if let Some(path) = &args.output {
        colloquy_bench::process::write_file(path, &out)?;
    }
    if args.keep_logs {
        eprintln!(
            "colloquy-bench: server logs kept in {}",
            ctx.logs.keep().display()
        );
    }
    Ok(report.all_succeeded())
}

/// The ceiling's own rows.
async fn ceiling_rows(
    ctx: &RunContext<'_>,
    ceiling: &ServerProcess,
) -> Result<Vec<Row>, BenchError> {
    let mut rows = Vec::new();
    for scenario in Scenario::CEILING {
        let load = scenarios::load_for(scenario, ceiling.addr(), None, &ctx.shape);
        let (result, cpu) = measured(ceiling, &load).await?;
        ctx.progress("ceiling", scenario, &result);
        rows.push(Row {
            server: "ceiling".to_owned(),
            scenario: scenario.label(ctx.settings.big_session),
            result,
            ceiling_rps: None,
            stream: false,
            cpu_per_request: cpu,
            ceiling_cpu_per_request: None,
        });
    }
    Ok(rows)
}

/// One store's scenarios: where the rows go and the ceiling they are compared to.
struct StoreRun<'a, 'b> {
    ctx: &'a RunContext<'b>,
    ceiling: &'a ServerProcess,
    rows: &'a mut Vec<Row>,
    ceiling_rps: &'a mut Vec<f64>,
    sustained: &'a mut Vec<Sustained>,
}

impl StoreRun<'_, '_> {
    /// Starts colloquy on `store_arg`, prepares its data and runs every scenario;
    /// `Some(why)` when the server does not start.
    async fn measure(&mut self, store: Store, store_arg: &str) -> Result<Option<String>, Failure> {
        let ctx = self.ctx;
        let name = format!("colloquy-{}", store.name());
        let server = match ctx.start_colloquy(&name, store_arg, &[]).await {
            Ok(server) => server,
            Err(BenchError::ExitedEarly { log_tail, .. }) => {
                let why = start_failure(&log_tail);
                eprintln!("  {:>8} skipped: {why}", store.name());
                return Ok(Some(why));
            }
            Err(e) => return Err(e.into()),
        };
        let tag = format!("{}-{}", ctx.tag, store.name());
        let fixture =
            scenarios::prepare(server.addr(), &tag, &ctx.shape, ctx.settings.big_session).await?;
        // The ceiling again, right before this store's scenarios.
        let mut references = Vec::new();
        for scenario in Scenario::CEILING {
            let load = scenarios::load_for(scenario, self.ceiling.addr(), None, &ctx.shape);
            let (reference, cpu) = measured(self.ceiling, &load).await?;
            reference.require_success("measuring the ceiling")?;
            self.ceiling_rps.push(reference.rps());
            references.push((reference.rps(), cpu));
        }
        let only = ctx.args.only.as_deref().unwrap_or("");
        for scenario in Scenario::COLLOQUY {
            let label = scenario.label(ctx.settings.big_session);
            if !label.contains(only) {
                continue;
            }
            let (reference, reference_cpu) =
                references[usize::from(scenario.method() != Method::GET)];
            let load = scenarios::load_for(scenario, server.addr(), Some(&fixture), &ctx.shape);
            if let (true, Stop::Requests(n)) = (scenario.is_one_client(), load.stop) {
                // Unrecorded warm-up, as the timed scenarios have.
                let mut warm = load.clone();
                warm.stop = Stop::Requests((n / 10).max(5));
                load::run(&warm).await?;
            }
            let (result, cpu) = measured(&server, &load).await?;
            ctx.progress(store.name(), scenario, &result);
            self.rows.push(Row {
                server: store.name().to_owned(),
                scenario: label,
                result,
                ceiling_rps: Some(reference),
                stream: scenario == Scenario::Stream,
                cpu_per_request: cpu,
                ceiling_cpu_per_request: reference_cpu,
            });
        }
        let sustains = matches!(store, Store::Memory | Store::Sqlite | Store::Redis);
        if sustains && ctx.settings.sustained_windows > 0 && "sustained chat".contains(only) {
            self.sustained
                .push(sustained::run(ctx, &server, &fixture, store.name()).await?);
        }
        if let Some(kib) = server.rss_kib() {
            eprintln!(
                "  {:>8} server RSS after its scenarios: {:.1} MiB",
                store.name(),
                kib as f64 / 1024.0
            );
        }
        Ok(None)
    }
}

/// The server flag that picks the stream log (`store` or `local`).
const STREAM_LOG_FLAG: &str = "--stream-log";

/// The round-trip columns of the measured stores: Redis as is, with limits on, and
/// with each `--redis-rtt-args` (default: `--stream-log local` when the server has
/// that flag); PostgreSQL.
fn rtt_variants(ctx: &RunContext<'_>, services: &Services, measured: &[Store]) -> Vec<Variant> {
    let mut variants = Vec::new();
    if let (true, Some(url)) = (measured.contains(&Store::Redis), &services.redis_url) {
        match urls::addr(url, 6379) {
            Ok(addr) => {
                let redis =
                    |column: String, extra: Vec<String>, operations: Vec<Scenario>| Variant {
                        column,
                        store_url: url.clone(),
                        upstream: Upstream::Tcp(addr),
                        extra,
                        operations,
                    };
                variants.push(redis(
                    "redis".to_owned(),
                    Vec::new(),
                    round_trips::OPERATIONS.to_vec(),
                ));
                variants.push(redis(
                    "redis, limits on".to_owned(),
                    limits::LIMITS_ON.map(str::to_owned).to_vec(),
                    limits::COMPARED.map(|(s, _)| s).to_vec(),
                ));
                if ctx.colloquy_has_flag(budgets::BUDGET_FLAG) {
                    variants.push(redis(
                        "redis, budgets on".to_owned(),
                        budgets::BUDGETS_ON.map(str::to_owned).to_vec(),
                        budgets::COMPARED.map(|(s, _)| s).to_vec(),
                    ));
                }
                let mut extras = ctx.args.redis_rtt_args.clone();
                if extras.is_empty() && ctx.colloquy_has_flag(STREAM_LOG_FLAG) {
                    extras.push(format!("{STREAM_LOG_FLAG} local"));
                }
                for extra in &extras {
                    variants.push(redis(
                        format!("redis, `{extra}`"),
                        extra.split_whitespace().map(str::to_owned).collect(),
                        vec![Scenario::Chat, Scenario::Stream],
                    ));
                }
            }
            Err(e) => eprintln!("colloquy-bench: Redis round trips not counted: {e}"),
        }
    }
    if let (true, Ok(db)) = (measured.contains(&Store::Postgres), &services.postgres) {
        match postgres::upstream(db.url()) {
            Ok(upstream) => variants.push(Variant {
                column: "postgres".to_owned(),
                store_url: db.url().to_owned(),
                upstream,
                extra: Vec::new(),
                operations: round_trips::OPERATIONS.to_vec(),
            }),
            Err(e) => eprintln!("colloquy-bench: PostgreSQL round trips not counted: {e}"),
        }
    }
    variants
}

/// Runs SSE scale on colloquy (memory store) with a slow echo model
/// (`--echo-delay-arg`). Returns the result and a note saying which server ran it.
async fn sse_scale(ctx: &RunContext<'_>) -> Result<(SseScaleResult, String), BenchError> {
    let settings = &ctx.settings;
    let delay_ms = settings.sse_chunk_delay.as_millis().to_string();
    let delay_arg = ctx.args.echo_delay_arg.replace("{ms}", &delay_ms);
    // Room for every stream and the set-up connections over the default cap of
    // 10,000 (colloquy lowers it to fit its open-files limit).
    let cap_arg = format!("--max-connections={}", settings.sse_streams + 1000);
    let server = ctx
        .start_colloquy("colloquy-sse", "memory", &[delay_arg.clone(), cap_arg])
        .await?;
    let mut how = format!("- SSE scale ran on `colloquy --store memory {delay_arg}`.");
    let mut streams = settings.sse_streams;
    if let Some(limit) = machine::open_files_limit() {
        let usable = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(256);
        if streams > usable {
            let _ = write!(
                how,
                "\n- **SSE scale reduced to {usable} streams**: the open-files limit is {limit} \
                 (raise it with `ulimit -n`; scripts/bench.sh does)."
            );
            streams = usable;
        }
    }
    let sources: Vec<IpAddr> = (1..=ctx.args.source_addrs.max(1))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect();
    let result = sse_scale::run(&SseScaleSpec {
        target: server.addr(),
        pid: server.pid(),
        streams,
        words: settings.sse_words,
        chunk_delay: settings.sse_chunk_delay,
        sources,
        tag: format!("{}-sse", ctx.tag),
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
