//! Store round trips per API operation: colloquy behind [`RttProxy`], one request at
//! a time, for Redis (with its default flags and with extra ones: rate limits, another
//! stream log) and PostgreSQL.

use std::fmt::Write as _;

use colloquy_bench::client::Conn;
use colloquy_bench::load::{self, Stop};
use colloquy_bench::rtt::{RttProxy, Upstream};
use colloquy_bench::scenarios::{self, LoadShape, Scenario};
use colloquy_bench::{BenchError, RequestSpec};
use http::StatusCode;

use crate::servers::RunContext;
use crate::urls;

/// The operations counted by default.
pub(crate) const OPERATIONS: [Scenario; 7] = [
    Scenario::CreateSession,
    Scenario::CreateMessage,
    Scenario::GetMessage,
    Scenario::ListSmall,
    Scenario::ListSmallNewest,
    Scenario::Chat,
    Scenario::Stream,
];

/// One column of the round-trip table: a store URL and the flags colloquy runs with.
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    /// The column's title.
    pub(crate) column: String,
    /// The store, as colloquy would be given it directly.
    pub(crate) store_url: String,
    /// Where the proxy forwards.
    pub(crate) upstream: Upstream,
    /// Extra colloquy flags.
    pub(crate) extra: Vec<String>,
    /// The operations to count.
    pub(crate) operations: Vec<Scenario>,
}

/// Round trips per request of each operation of one variant.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    /// The column's title.
    pub(crate) title: String,
    /// (operation label, round trips per request).
    pub(crate) counts: Vec<(String, f64)>,
    /// Why the column could not be measured.
    pub(crate) failed: Option<String>,
}

impl Column {
    /// The count of `operation`, if measured.
    pub(crate) fn get(&self, operation: &str) -> Option<f64> {
        self.counts
            .iter()
            .find(|(op, _)| op == operation)
            .map(|(_, n)| *n)
    }
}

/// Counts the round trips of `variant`; a failure is kept in the column.
pub(crate) async fn measure(ctx: &RunContext<'_>, variant: &Variant) -> Column {
    let (counts, failed) = match count(ctx, variant).await {
        Ok(counts) => (counts, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    Column {
        title: variant.column.clone(),
        counts,
        failed,
    }
}

/// Runs colloquy on `variant`'s store through the proxy and counts each operation.
async fn count(ctx: &RunContext<'_>, variant: &Variant) -> Result<Vec<(String, f64)>, BenchError> {
    let proxy = RttProxy::start(variant.upstream.clone()).await?;
    let store = urls::url_via(&variant.store_url, proxy.addr())?;
    let slug: String = variant
        .column
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = format!("colloquy-rtt-{slug}");
    let server = ctx.start_colloquy(&name, &store, &variant.extra).await?;
    let shape = LoadShape {
        connections: 1,
        stop: Stop::Requests(ctx.settings.rtt_requests),
        sources: Vec::new(),
        one_client_requests: ctx.settings.rtt_requests,
    };
    let tag = format!("{}-rtt-{slug}", ctx.tag);
    let fixture = scenarios::prepare(server.addr(), &tag, &shape, scenarios::SMALL_SESSION).await?;
    let mut counts = Vec::new();
    for &scenario in &variant.operations {
        let load = scenarios::load_for(scenario, server.addr(), Some(&fixture), &shape);
        // Warm up (script loading, connection set-up), then count.
        let mut warm = load.clone();
        warm.stop = Stop::Requests(5);
        load::run(&warm)
            .await?
            .require_success("warming up the round-trip count")?;
        let before = proxy.turns();
        let result = load::run(&load).await?;
        result.require_success("counting round trips")?;
        let turns = proxy.turns() - before;
        #[allow(clippy::cast_precision_loss)]
        counts.push((
            scenario.label(ctx.settings.big_session),
            turns as f64 / result.ok.max(1) as f64,
        ));
    }
    // Health checks do not touch the store; make sure nothing else did either.
    let idle = proxy.turns();
    let mut conn = Conn::connect(server.addr(), None).await?;
    conn.call_expect(&RequestSpec::get("/healthz"), StatusCode::OK)
        .await?;
    if proxy.turns() != idle {
        #[allow(clippy::cast_precision_loss)]
        counts.push((
            "(GET /healthz, expected 0)".to_owned(),
            (proxy.turns() - idle) as f64,
        ));
    }
    Ok(counts)
}

/// The round-trip table: one row per operation, one column per variant.
pub(crate) fn section(columns: &[Column]) -> String {
    let mut out =
        String::from("### Store round trips per API operation (one request at a time)\n\n");
    let mut operations: Vec<&str> = Vec::new();
    for column in columns {
        for (op, _) in &column.counts {
            if !operations.contains(&op.as_str()) {
                operations.push(op);
            }
        }
    }
    let _ = writeln!(
        out,
        "| operation | {} |",
        columns
            .iter()
            .map(|c| c.title.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---:|".repeat(columns.len()));
    for op in operations {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| {
                c.get(op)
                    .map_or_else(|| "—".to_owned(), |n| format!("{n:.2}"))
            })
            .collect();
        let _ = writeln!(out, "| {op} | {} |", cells.join(" | "));
    }
    out.push('\n');
    for column in columns {
        if let Some(why) = &column.failed {
            let _ = writeln!(out, "- {} not measured: {why}", column.title);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_cell_per_operation_and_column() {
        let columns = vec![
            Column {
                title: "redis".to_owned(),
                counts: vec![
                    ("create message".to_owned(), 1.0),
                    ("chat (echo)".to_owned(), 2.5),
                ],
                failed: None,
            },
            Column {
                title: "postgres".to_owned(),
                counts: vec![("chat (echo)".to_owned(), 3.0)],
                failed: Some("down".to_owned()),
            },
        ];
        let text = section(&columns);
        assert!(text.contains("| operation | redis | postgres |"), "{text}");
        assert!(text.contains("| create message | 1.00 | — |"), "{text}");
        assert!(text.contains("| chat (echo) | 2.50 | 3.00 |"), "{text}");
        assert!(text.contains("- postgres not measured: down"), "{text}");
    }
}
