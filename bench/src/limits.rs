//! Rate limits on vs off (issue 10): the same scenarios on two `colloquy --store
//! memory` servers, one with every limit of `--access public` set so high that it never
//! refuses (each request still pays its checks), measured alternately (off, on, on,
//! off) so that drift in the machine's load falls on both alike.

use std::fmt::Write as _;
use std::time::Duration;

use colloquy_bench::report::ms;
use colloquy_bench::scenarios::{self, Scenario};
use colloquy_bench::BenchError;

use crate::ab::{self, Pair, Tally};
use crate::servers::RunContext;

/// The flags that turn every limit on, each far above what a run can spend: GCRA
/// keeps at most one millisecond per unit, so 10^8 units are a day of headroom.
pub(crate) const LIMITS_ON: [&str; 10] = [
    "--rate-requests",
    "100000000/1s",
    "--rate-chats",
    "100000000/1s",
    "--rate-sessions",
    "100000000/1s",
    "--rate-session-chats",
    "100000000/1s",
    "--max-session-messages",
    "1000000000",
];

/// The scenarios compared, with the limiter checks each request makes (read from
/// `colloquy_core::ratelimit::Admission::admit` and the HTTP handlers): every
/// request spends `requests-per-ip`; create message adds `messages-per-session`;
/// chat adds `chats-per-ip`, `chats-per-session` and `messages-per-session`.
pub(crate) const COMPARED: [(Scenario, u32); 2] =
    [(Scenario::CreateMessage, 2), (Scenario::Chat, 4)];

/// One scenario with limits off and on.
#[derive(Debug, Clone)]
pub(crate) struct Comparison {
    pub(crate) scenario: String,
    pub(crate) checks: u32,
    pub(crate) off: Tally,
    pub(crate) on: Tally,
}

impl Comparison {
    /// CPU per request with limits on over without, minus one, in percent.
    pub(crate) fn overhead_percent(&self) -> Option<f64> {
        ab::change_percent(
            self.off.cpu_per_request()?.as_secs_f64(),
            self.on.cpu_per_request()?.as_secs_f64(),
        )
    }
}

/// Measures [`COMPARED`] on memory with limits off and on.
pub(crate) async fn compare(ctx: &RunContext<'_>) -> Result<Vec<Comparison>, BenchError> {
    let on_flags: Vec<String> = LIMITS_ON.map(str::to_owned).to_vec();
    let off = ctx
        .start_colloquy("colloquy-limits-off", "memory", &[])
        .await?;
    let on = ctx
        .start_colloquy("colloquy-limits-on", "memory", &on_flags)
        .await?;
    let mut fixtures = Vec::new();
    for (server, name) in [(&off, "off"), (&on, "on")] {
        let tag = format!("{}-limits-{name}", ctx.tag);
        fixtures.push(
            scenarios::prepare(server.addr(), &tag, &ctx.shape, scenarios::SMALL_SESSION).await?,
        );
    }
    let mut comparisons = Vec::new();
    let pair = Pair {
        servers: [&off, &on],
        fixtures: [&fixtures[0], &fixtures[1]],
        names: ["limits off", "limits on"],
    };
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
        "### Rate limits on vs off (memory store; off, on, on, off)\n\n\
         | scenario | limiter checks per request | server CPU µs/req off | on | on vs off | req/s off | on | p50 ms off | on | errors |\n\
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
        "\nLimits on: `colloquy --store memory {}` (open access; every quota of \
         `--access public` set far above what the run spends, so nothing is refused and \
         every request pays its checks). CPU per request: the server's CPU time over all \
         requests of both runs of each server, warm-ups included.\n",
        LIMITS_ON.join(" ")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overhead_compares_cpu_per_request() {
        let tally = |requests, micros| Tally {
            requests,
            cpu: Duration::from_micros(micros),
            ..Tally::default()
        };
        let c = Comparison {
            scenario: "create message".to_owned(),
            checks: 2,
            off: tally(1000, 20_000),
            on: tally(2000, 44_000),
        };
        let overhead = c.overhead_percent().expect("both measured");
        assert!((overhead - 10.0).abs() < 1e-9, "{overhead}");
        assert!(section(&[c]).contains("| create message | 2 | 20.0 | 22.0 | +10.0% |"));
    }
}
