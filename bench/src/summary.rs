//! The report's text: its header, the SSE scale section and where each target stands.

use std::fmt::Write as _;
use std::path::Path;

use colloquy_bench::report::{self, ms, Row};
use colloquy_bench::scenarios::Scenario;
use colloquy_bench::sse_scale::SseScaleResult;

use crate::baseline;
use crate::budgets;
use crate::limits::{self, Comparison};
use crate::machine;
use crate::round_trips::{self, Column};
use crate::servers::RunContext;
use crate::sustained::{self, Sustained};

/// The title, the machine and the settings.
pub(crate) fn header(ctx: &RunContext<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Colloquy benchmark{}\n",
        if ctx.args.quick { " (quick)" } else { "" }
    );
    for line in machine::describe() {
        let _ = writeln!(out, "{line}");
    }
    let s = &ctx.settings;
    let _ = writeln!(
        out,
        "- settings: {} connections, {} ms warm-up + {} ms measured per scenario, big session {} messages, {} requests per one-client chat, {} client thread(s)\n",
        s.connections,
        s.warmup.as_millis(),
        s.measure.as_millis(),
        s.big_session,
        s.one_client_requests,
        ctx.args.client_threads
    );
    out
}

/// The legend under the main table.
const LEGEND: &str = "p50/p99: latency to the end of the response (streams: to the `done` event). \
    % of ceiling: req/s over the ceiling's req/s for the same method, measured just \
    before that store's scenarios. Server CPU: the server process's CPU time (all threads) per \
    request; % of ceiling by CPU: the ceiling's CPU per request over this one's, i.e. \
    the share of the ceiling's throughput this server would reach with the CPU to \
    itself (here the load generator shares the cores). \"1 client\" rows: one connection, \
    a fixed number of chats after an unrecorded tenth of that (each chat adds two \
    messages), the small one rotating over 40 sessions of 20 messages.\n";

/// The SSE scale section.
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

/// What a run measured: the report's body.
pub(crate) struct Report<'a> {
    pub(crate) rows: &'a [Row],
    pub(crate) rtt: &'a [Column],
    pub(crate) limits: &'a [Comparison],
    /// Token budgets on vs off.
    pub(crate) budgets: &'a [Comparison],
    pub(crate) sse: Option<&'a SseScaleResult>,
    pub(crate) notes: &'a [String],
    pub(crate) big: usize,
    pub(crate) sustained: &'a [Sustained],
    /// The `--baseline` binary and what the comparison with it measured.
    pub(crate) baseline: Option<(&'a Path, &'a [baseline::Comparison])>,
    pub(crate) connections: usize,
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

impl Report<'_> {
    /// Whether every request of every measurement succeeded.
    pub(crate) fn all_succeeded(&self) -> bool {
        self.rows
            .iter()
            .all(|r| r.result.errors == 0 && r.result.completed > 0)
            && self.sse.is_none_or(|s| s.errors == 0)
            && self.limits.iter().all(|c| c.off.errors + c.on.errors == 0)
            && self.budgets.iter().all(|c| c.off.errors + c.on.errors == 0)
            && self.sustained.iter().all(|s| s.errors == 0)
            && self
                .baseline
                .is_none_or(|(_, cs)| cs.iter().all(|c| c.baseline.errors + c.this.errors == 0))
    }

    /// The tables, the targets and the notes, as markdown.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", report::table(self.rows));
        let _ = writeln!(out, "{LEGEND}");
        for row in self.rows.iter().filter(|r| r.result.errors > 0) {
            let _ = writeln!(
                out,
                "- errors in {} / {}: {}",
                row.server,
                row.scenario,
                row.result.first_error.as_deref().unwrap_or("?")
            );
        }
        if !self.sustained.is_empty() {
            let _ = writeln!(
                out,
                "{}",
                sustained::section(self.sustained, self.connections)
            );
        }
        if let Some((path, comparisons)) = self.baseline {
            let _ = writeln!(out, "{}", baseline::section(comparisons, path));
        }
        if !self.limits.is_empty() {
            let _ = writeln!(out, "{}", limits::section(self.limits));
        }
        if !self.budgets.is_empty() {
            let _ = writeln!(out, "{}", budgets::section(self.budgets));
        }
        if let Some(s) = self.sse {
            let _ = writeln!(out, "{}", sse_section(s));
        }
        if !self.rtt.is_empty() {
            let _ = writeln!(out, "{}", round_trips::section(self.rtt));
        }
        let _ = writeln!(out, "{}", self.targets());
        if !self.notes.is_empty() {
            let _ = writeln!(out, "### Notes\n");
            for note in self.notes {
                let _ = writeln!(out, "{note}");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "- load average after the run: {}",
            machine::load_average()
        );
        out
    }

    fn find(&self, server: &str, scenario: Scenario) -> Option<&Row> {
        let label = scenario.label(self.big);
        self.rows
            .iter()
            .find(|r| r.server == server && r.scenario == label)
    }

    /// `big`'s p50 over `small`'s on `store`, as a target line; `same_page`: the big
    /// session with the small one's page size, for comparison.
    fn size_line(
        &self,
        out: &mut String,
        store: &str,
        (small, big, same_page): (Scenario, Scenario, Option<Scenario>),
        limit: f64,
    ) {
        let (Some(s), Some(b)) = (self.find(store, small), self.find(store, big)) else {
            return;
        };
        let ratio = |row: &Row| {
            let (rp, sp) = (row.result.latency.p50(), s.result.latency.p50());
            if sp.is_zero() {
                0.0
            } else {
                rp.as_secs_f64() / sp.as_secs_f64()
            }
        };
        let r = ratio(b);
        let _ = write!(
            out,
            "- {store}: {} within {limit}× the time of {} (p50 {} vs {} ms): {r:.2}× — {}",
            b.scenario,
            s.scenario,
            ms(b.result.latency.p50()),
            ms(s.result.latency.p50()),
            verdict(r <= limit)
        );
        if let Some(p) = same_page.and_then(|p| self.find(store, p)) {
            let _ = write!(
                out,
                "; with the same page size ({}, p50 {} ms): {:.2}×",
                p.scenario,
                ms(p.result.latency.p50()),
                ratio(p)
            );
        }
        out.push('\n');
    }

    /// Where each target stands.
    fn targets(&self) -> String {
        let mut out = String::from("### Targets\n\n");
        match self.find("memory", Scenario::CreateMessage) {
            Some(row) => {
                if let Some(p) = row.percent_of_ceiling() {
                    let _ = writeln!(
                        out,
                        "- create message on memory ≥ 60% of the ceiling's req/s: {p:.0}% — {}",
                        verdict(p >= 60.0)
                    );
                }
                if let (Some(own), Some(ceiling)) =
                    (row.cpu_per_request, row.ceiling_cpu_per_request)
                {
                    let ratio = own.as_secs_f64() / ceiling.as_secs_f64().max(1e-12);
                    let _ = writeln!(
                        out,
                        "- create message on memory, server CPU per request ≤ 1.3× the ceiling's POST: {:.1} vs {:.1} µs = {ratio:.2}× — {}",
                        own.as_secs_f64() * 1e6,
                        ceiling.as_secs_f64() * 1e6,
                        verdict(ratio <= 1.3)
                    );
                }
            }
            None => out.push_str("- create message on memory: not measured\n"),
        }
        for store in ["memory", "sqlite", "redis", "postgres"] {
            let lists = (
                Scenario::ListSmall,
                Scenario::ListBig,
                Some(Scenario::ListBigPage20),
            );
            self.size_line(&mut out, store, lists, 2.0);
            let newest = (
                Scenario::ListSmallNewest,
                Scenario::ListBigNewest,
                Some(Scenario::ListBigNewest20),
            );
            self.size_line(&mut out, store, newest, 1.5);
            let chats = (
                Scenario::ChatSmallOneClient,
                Scenario::ChatBigOneClient,
                None,
            );
            self.size_line(&mut out, store, chats, 1.5);
        }
        for c in self.limits {
            if let Some(p) = c.overhead_percent() {
                let _ = writeln!(
                    out,
                    "- rate limits on memory cost < 10% CPU per request, {}: {p:+.1}% ({} checks) — {}",
                    c.scenario,
                    c.checks,
                    verdict(p < 10.0)
                );
            }
        }
        for c in self.budgets {
            if let Some(p) = c.overhead_percent() {
                let _ = writeln!(
                    out,
                    "- token budgets on memory cost < 5% CPU per chat, {}: {p:+.1}% — {}",
                    c.scenario,
                    verdict(p < 5.0)
                );
            }
        }
        self.round_trip_targets(&mut out);
        if let Some(s) = self.sse {
            let mib = s.rss_open_kib as f64 / 1024.0;
            let _ = writeln!(
                out,
                "- 10,000 concurrent streams under 300 MB RSS: {} open at once, {mib:.1} MiB — {}",
                s.peak_open,
                if s.peak_open >= 10_000 {
                    verdict(mib * 1.048_576 < 300.0)
                } else {
                    "not tested at this setting"
                }
            );
        }
        out
    }

    /// Redis: one round trip per operation (two for chat and stream); the limiter
    /// one more per request.
    fn round_trip_targets(&self, out: &mut String) {
        let chat = Scenario::Chat.label(self.big);
        let stream = Scenario::Stream.label(self.big);
        for column in self.rtt.iter().filter(|c| c.title.starts_with("redis")) {
            if column.title.contains("limits") || column.title.contains("budgets") {
                continue;
            }
            let over: Vec<String> = column
                .counts
                .iter()
                .filter(|(op, _)| !op.starts_with('('))
                .filter(|(op, n)| {
                    let allowed = if *op == chat || *op == stream {
                        2.0
                    } else {
                        1.0
                    };
                    *n > allowed + 0.05
                })
                .map(|(op, n)| format!("{op} {n:.2}"))
                .collect();
            if column.counts.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "- {}: 1 round trip per API operation, 2 for chat and stream{}: {} — {}",
                column.title,
                if column.title == "redis" {
                    " (with the shared stream log's own: 1 to start, 1 per chunk, 1 to finish)"
                } else {
                    ""
                },
                if over.is_empty() {
                    "all within".to_owned()
                } else {
                    format!("over for {}", over.join(", "))
                },
                verdict(over.is_empty())
            );
        }
        let base = self.rtt.iter().find(|c| c.title == "redis");
        let budgeted = self.rtt.iter().find(|c| c.title.contains("budgets"));
        if let (Some(base), Some(budgeted)) = (base, budgeted) {
            for c in self.budgets {
                if let (Some(off), Some(on)) = (base.get(&c.scenario), budgeted.get(&c.scenario)) {
                    let added = on - off;
                    let _ = writeln!(
                        out,
                        "- Redis token budgets: one round trip to check before the answer (issue 25), plus one to charge after it, {}: {off:.2} → {on:.2} = +{added:.2} — check {}",
                        c.scenario,
                        verdict(added - 1.0 <= 1.05)
                    );
                }
            }
        }
        let limited = self.rtt.iter().find(|c| c.title.contains("limits"));
        if let (Some(base), Some(limited)) = (base, limited) {
            for c in self.limits {
                if let (Some(off), Some(on)) = (base.get(&c.scenario), limited.get(&c.scenario)) {
                    let added = on - off;
                    let _ = writeln!(
                        out,
                        "- Redis rate limiter one round trip per request (issue 10), {}: {off:.2} → {on:.2} for {} checks = +{added:.2} — {}",
                        c.scenario,
                        c.checks,
                        verdict(added <= 1.05)
                    );
                }
            }
        }
    }
}
