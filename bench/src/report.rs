//! The results table: one [`Row`] per server and scenario, rendered as markdown.

use std::fmt::Write as _;
use std::time::Duration;

use crate::load::LoadResult;

/// One measured line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The server: `ceiling`, `memory`, `sqlite`, `redis`.
    pub server: String,
    /// The scenario's label.
    pub scenario: String,
    /// What was measured.
    pub result: LoadResult,
    /// The ceiling's req/s for the same method, measured in the same run.
    pub ceiling_rps: Option<f64>,
    /// Whether the first-event columns apply (streams).
    pub stream: bool,
    /// The server's CPU time per successful request during the run.
    pub cpu_per_request: Option<Duration>,
    /// The ceiling's CPU time per request for the same method, same run.
    pub ceiling_cpu_per_request: Option<Duration>,
}

impl Row {
    /// req/s as a share of the ceiling's, in percent.
    #[must_use]
    pub fn percent_of_ceiling(&self) -> Option<f64> {
        self.ceiling_rps
            .filter(|c| *c > 0.0)
            .map(|c| 100.0 * self.result.rps() / c)
    }

    /// The ceiling's CPU time per request over this server's, in percent: the share of
    /// the ceiling's req/s this server would reach if it had the CPU to itself (the
    /// load generator shares this machine's cores).
    #[must_use]
    pub fn percent_of_ceiling_by_cpu(&self) -> Option<f64> {
        let own = self.cpu_per_request?.as_secs_f64();
        let ceiling = self.ceiling_cpu_per_request?.as_secs_f64();
        (own > 0.0).then(|| 100.0 * ceiling / own)
    }
}

/// Microseconds of CPU time per request, for the table.
fn micros(d: Option<Duration>) -> String {
    d.map_or_else(
        || "—".to_owned(),
        |d| format!("{:.1}", d.as_secs_f64() * 1e6),
    )
}

/// Milliseconds with a precision that suits the value.
#[must_use]
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// The results as a markdown table.
#[must_use]
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| server | scenario | req/s | p50 ms | p99 ms | % of ceiling | server CPU µs/req | % of ceiling by CPU | first event p50 / p99 ms | errors |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        let r = &row.result;
        let ratio = row
            .percent_of_ceiling()
            .map_or_else(|| "—".to_owned(), |p| format!("{p:.0}%"));
        let first = if row.stream {
            format!("{} / {}", ms(r.first_event.p50()), ms(r.first_event.p99()))
        } else {
            "—".to_owned()
        };
        let by_cpu = row
            .percent_of_ceiling_by_cpu()
            .map_or_else(|| "—".to_owned(), |p| format!("{p:.0}%"));
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            row.server,
            row.scenario,
            r.rps(),
            ms(r.latency.p50()),
            ms(r.latency.p99()),
            ratio,
            micros(row.cpu_per_request),
            by_cpu,
            first,
            r.errors
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Latency;

    #[test]
    fn renders_ratio_and_stream_columns() {
        let mut latency = Latency::new().expect("fixed bounds");
        latency.record(Duration::from_micros(1500));
        let result = LoadResult {
            ok: 500,
            completed: 600,
            errors: 1,
            first_error: None,
            elapsed: Duration::from_secs(1),
            latency: latency.clone(),
            first_event: latency,
        };
        let rows = vec![Row {
            server: "memory".to_owned(),
            scenario: "stream (echo)".to_owned(),
            result,
            ceiling_rps: Some(1000.0),
            stream: true,
            cpu_per_request: Some(Duration::from_micros(40)),
            ceiling_cpu_per_request: Some(Duration::from_micros(20)),
        }];
        let text = table(&rows);
        assert!(
            text.contains(
                "| memory | stream (echo) | 500 | 1.50 | 1.50 | 50% | 40.0 | 50% | 1.50 / 1.50 | 1 |"
            ),
            "{text}"
        );
    }
}
