//! This `colloquy` against a baseline binary (`--baseline`, e.g. main's build), both
//! on the memory store, measured alternately (baseline, this, this, baseline, ...) so
//! that drift in the machine's load falls on both alike; plus the baseline's
//! sustained chat.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use colloquy_bench::report::ms;
use colloquy_bench::scenarios::{self, Scenario};
use colloquy_bench::BenchError;

use crate::ab::{self, Pair, Tally};
use crate::servers::RunContext;
use crate::sustained::{self, Sustained};

/// The scenarios compared.
pub(crate) const COMPARED: [Scenario; 2] = [Scenario::CreateMessage, Scenario::Chat];

/// One scenario on both binaries.
#[derive(Debug, Clone)]
pub(crate) struct Comparison {
    pub(crate) scenario: String,
    pub(crate) baseline: Tally,
    pub(crate) this: Tally,
}

/// What the comparison measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) comparisons: Vec<Comparison>,
    /// The baseline's sustained chat.
    pub(crate) sustained: Option<Sustained>,
}

/// Measures [`COMPARED`] on `baseline` and this binary (memory store), `pairs`
/// alternations each, then the baseline's sustained chat.
pub(crate) async fn compare(
    ctx: &RunContext<'_>,
    baseline: &Path,
    pairs: usize,
) -> Result<Outcome, BenchError> {
    let base = ctx
        .start_colloquy_binary(baseline, "colloquy-baseline", "memory", &[])
        .await?;
    let this = ctx.start_colloquy("colloquy-this", "memory", &[]).await?;
    let mut fixtures = Vec::new();
    for (server, name) in [(&base, "baseline"), (&this, "this")] {
        let tag = format!("{}-ab-{name}", ctx.tag);
        fixtures.push(
            scenarios::prepare(server.addr(), &tag, &ctx.shape, scenarios::SMALL_SESSION).await?,
        );
    }
    let pair = Pair {
        servers: [&base, &this],
        fixtures: [&fixtures[0], &fixtures[1]],
        names: ["baseline", "this"],
    };
    let mut outcome = Outcome::default();
    for scenario in COMPARED {
        let [baseline, this] = ab::alternate(ctx, &pair, scenario, pairs).await?;
        outcome.comparisons.push(Comparison {
            scenario: scenario.label(ctx.settings.big_session),
            baseline,
            this,
        });
    }
    drop(this);
    if ctx.settings.sustained_windows > 0 {
        outcome.sustained =
            Some(sustained::run(ctx, &base, &fixtures[0], "memory (baseline)").await?);
    }
    Ok(outcome)
}

/// The comparison's table.
pub(crate) fn section(comparisons: &[Comparison], baseline: &Path) -> String {
    let mut out = format!(
        "### This binary vs the baseline (memory store; alternately baseline, this, this, baseline, ...)\n\n\
         Baseline: `{}`.\n\n\
         | scenario | req/s baseline | this | this vs baseline | server CPU µs/req baseline | this | this vs baseline | p50 ms baseline | this | runs each | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        baseline.display()
    );
    let micros = |d: Option<Duration>| {
        d.map_or_else(
            || "—".to_owned(),
            |d| format!("{:.1}", d.as_secs_f64() * 1e6),
        )
    };
    let change = |c: Option<f64>| c.map_or_else(|| "—".to_owned(), |p| format!("{p:+.1}%"));
    for c in comparisons {
        let cpu = |t: &Tally| t.cpu_per_request().map(|d| d.as_secs_f64());
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.scenario,
            c.baseline.mean_rps(),
            c.this.mean_rps(),
            change(ab::change_percent(c.baseline.mean_rps(), c.this.mean_rps())),
            micros(c.baseline.cpu_per_request()),
            micros(c.this.cpu_per_request()),
            change(
                cpu(&c.baseline)
                    .zip(cpu(&c.this))
                    .and_then(|(b, t)| ab::change_percent(b, t))
            ),
            ms(c.baseline.mean_p50()),
            ms(c.this.mean_p50()),
            c.this.runs,
            c.baseline.errors + c.this.errors
        );
    }
    out
}
