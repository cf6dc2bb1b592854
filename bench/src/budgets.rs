//! Token budgets on vs off (issue 25): chat and streamed chat on two `colloquy
//! --store memory` servers, one with the deployment budget and the per-IP token
//! quota set so high that they never refuse (each chat still pays its check and its
//! charge), measured alternately (off, on, on, off) like the rate limits.

use std::fmt::Write as _;
use std::time::Duration;

use colloquy_bench::report::ms;
use colloquy_bench::scenarios::{self, Scenario};
use colloquy_bench::BenchError;

use crate::ab::{self, Pair};
use crate::limits::Comparison;
use crate::servers::RunContext;

/// The flags that turn the budgets on, far above what a run spends (echo answers
/// cost about ten tokens each).
pub(crate) const BUDGETS_ON: [&str; 4] = [
    "--token-budget",
    "4000000000/day",
    "--rate-tokens-per-ip",
    "4000000000/day",
];

/// The flag whose presence says the binary has token budgets.
pub(crate) const BUDGET_FLAG: &str = "--token-budget";

/// The scenarios compared, with the limiter calls each chat adds: one read of the
/// windows before the generation, one charge after the answer.
pub(crate) const COMPARED: [(Scenario, u32); 2] = [(Scenario::Chat, 2), (Scenario::Stream, 2)];

/// Measures [`COMPARED`] on memory with budgets off and on.
pub(crate) async fn compare(ctx: &RunContext<'_>) -> Result<Vec<Comparison>, BenchError> {
    let on_flags: Vec<String> = BUDGETS_ON.map(str::to_owned).to_vec();
    let off = ctx
        .start_colloquy("colloquy-budgets-off", "memory", &[])
        .await?;
    let on = ctx
        .start_colloquy("colloquy-budgets-on", "memory", &on_flags)
        .await?;
    let mut fixtures = Vec::new();
    for (server, name) in [(&off, "off"), (&on, "on")] {
        let tag = format!("{}-budgets-{name}", ctx.tag);
        fixtures.push(
            scenarios::prepare(server.addr(), &tag, &ctx.shape, scenarios::SMALL_SESSION).await?,
        );
    }
    let pair = Pair {
        servers: [&off, &on],
        fixtures: [&fixtures[0], &fixtures[1]],
        names: ["budgets off", "budgets on"],
    };
    let mut comparisons = Vec::new();
    for (scenario, checks) in COMPARED {
        let [off, on] = ab::alternate(ctx, &pair, scenario, 2).await?;
        comparisons.push(Comparison {
            scenario: scenario.label(ctx.settings.big_session),
            checks,
            off,
            on,
        });
    }
    Ok(comparisons)
}

/// The comparison's table.
pub(crate) fn section(comparisons: &[Comparison]) -> String {
    let mut out = String::from(
        "### Token budgets on vs off (memory store; off, on, on, off)\n\n\
         | scenario | limiter calls per chat | server CPU µs/req off | on | on vs off | req/s off | on | p50 ms off | on | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let micros = |d: Option<Duration>| {
        d.map_or_else(
            || "—".to_owned(),
            |d| format!("{:.1}", d.as_secs_f64() * 1e6),
        )
    };
    for c in comparisons {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} |",
            c.scenario,
            c.checks,
            micros(c.off.cpu_per_request()),
            micros(c.on.cpu_per_request()),
            c.overhead_percent()
                .map_or_else(|| "—".to_owned(), |p| format!("{p:+.1}%")),
            c.off.mean_rps(),
            c.on.mean_rps(),
            ms(c.off.mean_p50()),
            ms(c.on.mean_p50()),
            c.off.errors + c.on.errors
        );
    }
    let _ = writeln!(
        out,
        "\nBudgets on: `colloquy --store memory {}` (open access; far above what the run \
         spends, so nothing is refused and every chat pays its check before the answer and \
         its charge after). CPU per request: the server's CPU time over all requests of \
         both runs of each server, warm-ups included.\n",
        BUDGETS_ON.join(" ")
    );
    out
}
