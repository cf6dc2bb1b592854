//! Sustained chat (issue 26): chat at the run's connection count for consecutive
//! windows (full: 6 of 10 s, quick: 3 of 1 s) on one server, and the throughput of
//! the last window against the first. A server whose per-chat cost grows with what
//! it has already answered (state swept in O(n) per chat) decays here.

use std::fmt::Write as _;
use std::time::Duration;

use colloquy_bench::load::{self, Stop};
use colloquy_bench::process::ServerProcess;
use colloquy_bench::scenarios::{self, Fixture, Scenario};
use colloquy_bench::BenchError;

use crate::ab;
use crate::servers::RunContext;

/// The most the last window's req/s may fall below the first's, in percent.
pub(crate) const MAX_DECAY_PERCENT: f64 = 10.0;

/// One server's sustained chat.
#[derive(Debug, Clone)]
pub(crate) struct Sustained {
    /// The server, as the report names it (`memory`, `memory (baseline)`, ...).
    pub(crate) server: String,
    /// Each window's req/s, in order.
    pub(crate) windows: Vec<f64>,
    /// How long each window measured.
    pub(crate) window: Duration,
    /// Failed requests in all.
    pub(crate) errors: u64,
}

impl Sustained {
    /// The last window's req/s over the first's, minus one, in percent.
    pub(crate) fn change_percent(&self) -> Option<f64> {
        ab::change_percent(*self.windows.first()?, *self.windows.last()?)
    }

    /// Whether the last window kept within [`MAX_DECAY_PERCENT`] of the first.
    pub(crate) fn held_up(&self) -> bool {
        self.errors == 0
            && self
                .change_percent()
                .is_some_and(|c| c >= -MAX_DECAY_PERCENT)
    }
}

/// Chats into `fixture`'s chat sessions on `server` for the run's sustained windows.
pub(crate) async fn run(
    ctx: &RunContext<'_>,
    server: &ServerProcess,
    fixture: &Fixture,
    name: &str,
) -> Result<Sustained, BenchError> {
    let settings = &ctx.settings;
    let mut load = scenarios::load_for(Scenario::Chat, server.addr(), Some(fixture), &ctx.shape);
    load.stop = Stop::Duration {
        warmup: Duration::ZERO,
        measure: settings.sustained_window,
    };
    let mut windows = Vec::with_capacity(settings.sustained_windows);
    let mut errors = 0;
    for i in 0..settings.sustained_windows {
        let result = load::run(&load).await?;
        errors += result.errors;
        windows.push(result.rps());
        eprintln!(
            "  {name:>8} sustained chat, window {} of {}: {:.0} req/s, {} errors",
            i + 1,
            settings.sustained_windows,
            result.rps(),
            result.errors
        );
    }
    Ok(Sustained {
        server: name.to_owned(),
        windows,
        window: settings.sustained_window,
        errors,
    })
}

/// The sustained chat table.
pub(crate) fn section(rows: &[Sustained], connections: usize) -> String {
    let mut out = format!(
        "### Sustained chat ({connections} connections, consecutive windows)\n\n\
         | server | windows | first req/s | last req/s | last vs first | every window | errors | within {MAX_DECAY_PERCENT:.0}% |\n\
         |---|---:|---:|---:|---:|---|---:|---|\n"
    );
    for s in rows {
        let every: Vec<String> = s.windows.iter().map(|r| format!("{r:.0}")).collect();
        let _ = writeln!(
            out,
            "| {} | {} × {:.0} s | {:.0} | {:.0} | {} | {} | {} | {} |",
            s.server,
            s.windows.len(),
            s.window.as_secs_f64(),
            s.windows.first().copied().unwrap_or(0.0),
            s.windows.last().copied().unwrap_or(0.0),
            s.change_percent()
                .map_or_else(|| "—".to_owned(), |p| format!("{p:+.1}%")),
            every.join(", "),
            s.errors,
            if s.held_up() { "met" } else { "**missed**" }
        );
    }
    let _ = writeln!(
        out,
        "\nEach window is its own load run (new connections, no warm-up) on the same \
         server, right after the previous one, chatting into the connections' own sessions \
         (which grow by two messages per chat).\n"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_is_the_last_window_against_the_first() {
        let s = |windows: Vec<f64>| Sustained {
            server: "memory".to_owned(),
            windows,
            window: Duration::from_secs(10),
            errors: 0,
        };
        assert!(s(vec![100.0, 50.0, 95.0]).held_up());
        assert!(!s(vec![100.0, 100.0, 85.0]).held_up());
        let row = section(&[s(vec![100.0, 89.0])], 32);
        assert!(
            row.contains("| memory | 2 × 10 s | 100 | 89 | -11.0% | 100, 89 | 0 | **missed** |"),
            "{row}"
        );
    }
}
