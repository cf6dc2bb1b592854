//! Two servers measured alternately on one scenario (0, 1, 1, 0, 0, 1, ...), so that
//! drift in the machine's load (other processes, thermal) falls on both alike.

use std::time::Duration;

use colloquy_bench::load;
use colloquy_bench::process::ServerProcess;
use colloquy_bench::scenarios::{self, Fixture, Scenario};
use colloquy_bench::BenchError;

use crate::servers::RunContext;

/// What one server measured over its runs of one scenario.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    /// Successful requests, warm-up included.
    pub(crate) requests: u64,
    /// Server CPU time over those requests.
    pub(crate) cpu: Duration,
    /// Sum of the runs' req/s.
    pub(crate) rps_sum: f64,
    /// Sum of the runs' p50 latencies.
    pub(crate) p50_sum: Duration,
    /// Runs.
    pub(crate) runs: u32,
    /// Failed requests.
    pub(crate) errors: u64,
}

impl Tally {
    /// Server CPU time per request.
    pub(crate) fn cpu_per_request(&self) -> Option<Duration> {
        u32::try_from(self.requests)
            .ok()
            .filter(|n| *n > 0)
            .map(|n| self.cpu / n)
    }

    /// The runs' mean req/s.
    pub(crate) fn mean_rps(&self) -> f64 {
        self.rps_sum / f64::from(self.runs.max(1))
    }

    /// The runs' mean p50 latency.
    pub(crate) fn mean_p50(&self) -> Duration {
        self.p50_sum / self.runs.max(1)
    }
}

/// `b`'s figure over `a`'s, minus one, in percent.
pub(crate) fn change_percent(a: f64, b: f64) -> Option<f64> {
    (a > 0.0).then(|| 100.0 * (b / a - 1.0))
}

/// Two servers, the fixtures prepared on each, and their names in the progress lines.
pub(crate) struct Pair<'a> {
    pub(crate) servers: [&'a ServerProcess; 2],
    pub(crate) fixtures: [&'a Fixture; 2],
    pub(crate) names: [&'a str; 2],
}

/// Runs `scenario` `2 * pairs` times, alternating the two servers (0, 1, 1, 0, ...).
pub(crate) async fn alternate(
    ctx: &RunContext<'_>,
    pair: &Pair<'_>,
    scenario: Scenario,
    pairs: usize,
) -> Result<[Tally; 2], BenchError> {
    let mut tallies = [Tally::default(), Tally::default()];
    for round in 0..pairs.max(1) {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let server = pair.servers[which];
            let load = scenarios::load_for(
                scenario,
                server.addr(),
                Some(pair.fixtures[which]),
                &ctx.shape,
            );
            let before = server.cpu_time();
            let result = load::run(&load).await?;
            let cpu = match (before, server.cpu_time()) {
                (Some(b), Some(a)) => a.saturating_sub(b),
                _ => Duration::ZERO,
            };
            let tally = &mut tallies[which];
            tally.requests += result.completed;
            tally.cpu += cpu;
            tally.rps_sum += result.rps();
            tally.p50_sum += result.latency.p50();
            tally.runs += 1;
            tally.errors += result.errors;
            ctx.progress(pair.names[which], scenario, &result);
        }
    }
    Ok(tallies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_per_request_and_per_run() {
        let t = Tally {
            requests: 1000,
            cpu: Duration::from_micros(20_000),
            rps_sum: 300.0,
            p50_sum: Duration::from_millis(3),
            runs: 3,
            errors: 0,
        };
        assert_eq!(t.cpu_per_request(), Some(Duration::from_micros(20)));
        assert!((t.mean_rps() - 100.0).abs() < 1e-9);
        assert_eq!(t.mean_p50(), Duration::from_millis(1));
        assert_eq!(Tally::default().cpu_per_request(), None);
        let change = change_percent(100.0, 300.0).expect("a baseline");
        assert!((change - 200.0).abs() < 1e-9, "{change}");
        assert_eq!(change_percent(0.0, 1.0), None);
    }
}
