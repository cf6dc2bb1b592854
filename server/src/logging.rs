//! Logging: `tracing` to stderr, as text for people or JSON lines for collectors.
//!
//! Lines are formatted where they happen and written by a background thread
//! (`tracing-appender`), which writes whatever has queued up in one go: a request's
//! access line costs no `write` system call of its own. Keep the [`LogGuard`] alive
//! until exit: dropping it flushes what is queued.
//!
//! The volume is bounded ([`Bounded`]): at most `--log-max-lines-per-sec` lines are
//! written per second; the rest are dropped and counted, and the count is written as
//! one line when the next second's first line is. Together with the access lines'
//! path cut to 256 bytes (colloquy-http), a flood of requests cannot fill the disk.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use clap::ValueEnum;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (with the request span's fields, e.g. `request_id`).
    Json,
}

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoggingError {
    /// The `--log-level` filter did not parse.
    #[error("invalid --log-level {filter:?}")]
    Filter {
        /// The filter as given.
        filter: String,
        /// What was wrong.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("could not install the log subscriber")]
    Install(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The level of the Redis client library's own log lines (target `redis`) unless the
/// filter names that target. Its reconnect and slot-refresh chatter comes once per
/// failed request while a node is down (thousands of lines a second); the store's
/// failures are already reported, aggregated, by the HTTP adapter.
const REDIS_CLIENT_LEVEL: &str = "redis=error";

/// `filter` with [`REDIS_CLIENT_LEVEL`] added, unless a directive of its own names the
/// `redis` target (`redis=warn`, `redis::cluster_async=debug`...).
fn with_defaults(filter: &str) -> String {
    let names_redis = filter.split(',').any(|directive| {
        let target = directive
            .split(['=', '['])
            .next()
            .unwrap_or_default()
            .trim();
        target == "redis" || target.starts_with("redis::")
    });
    if names_redis || filter.trim().is_empty() {
        filter.to_owned()
    } else {
        format!("{filter},{REDIS_CLIENT_LEVEL}")
    }
}

/// Flushes the queued log lines when dropped (at the end of `main`).
pub(crate) type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// The lines of the current second and those dropped over the bound.
#[derive(Debug)]
struct Budget {
    started: Instant,
    second: u64,
    written: u32,
    dropped: u64,
}

/// A writer that passes at most `per_sec` lines per second (one `write` is one line:
/// the `fmt` layer writes each event whole) and counts the rest.
#[derive(Debug, Clone)]
pub(crate) struct Bounded<W> {
    inner: W,
    per_sec: u32,
    budget: Arc<Mutex<Budget>>,
}

impl<W> Bounded<W> {
    /// `inner`, bounded to `per_sec` lines a second (`0`: unbounded).
    pub(crate) fn new(inner: W, per_sec: u32) -> Self {
        Self {
            inner,
            per_sec,
            budget: Arc::new(Mutex::new(Budget {
                started: Instant::now(),
                second: 0,
                written: 0,
                dropped: 0,
            })),
        }
    }

    /// Whether the next line may be written, and the count of lines dropped before
    /// it to report first.
    fn admit(&self) -> (bool, u64) {
        if self.per_sec == 0 {
            return (true, 0);
        }
        let mut b = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
        let second = b.started.elapsed().as_secs();
        let mut report = 0;
        if second != b.second {
            b.second = second;
            b.written = 0;
            report = std::mem::take(&mut b.dropped);
        }
        if b.written >= self.per_sec {
            b.dropped += 1;
            return (false, report);
        }
        b.written += 1;
        (true, report)
    }
}

/// One line of a [`Bounded`] writer.
#[derive(Debug)]
pub(crate) struct Line<W> {
    inner: W,
    admitted: bool,
    report: u64,
    per_sec: u32,
}

impl<W: Write> Write for Line<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.report > 0 {
            let note = format!(
                "colloquy: {} log lines dropped over --log-max-lines-per-sec {}\n",
                std::mem::take(&mut self.report),
                self.per_sec
            );
            self.inner.write_all(note.as_bytes())?;
        }
        if self.admitted {
            self.inner.write(buf)
        } else {
            Ok(buf.len())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Bounded<M> {
    type Writer = Line<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        let (admitted, report) = self.admit();
        Line {
            inner: self.inner.make_writer(),
            admitted,
            report,
            per_sec: self.per_sec,
        }
    }
}

/// Installs the global subscriber: `filter` is an `EnvFilter` directive such as
/// `info` or `colloquy_http=debug,info` (the `redis` client target is kept at
/// `error` unless the filter names it); at most `max_lines_per_sec` lines a second
/// are written (`0`: no bound).
pub(crate) fn init(
    format: LogFormat,
    filter: &str,
    max_lines_per_sec: u32,
) -> Result<LogGuard, LoggingError> {
    let env_filter =
        EnvFilter::try_new(with_defaults(filter)).map_err(|source| LoggingError::Filter {
            filter: filter.to_owned(),
            source,
        })?;
    // Buffered: the writer thread flushes whenever its queue is empty.
    let (writer, guard) =
        tracing_appender::non_blocking(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(Bounded::new(writer, max_lines_per_sec))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(LoggingError::Install)?;
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn lines_over_the_bound_are_dropped_and_counted() {
        let buffer = Buffer::default();
        let bounded = Bounded::new(buffer.clone(), 3);
        for i in 0..10 {
            writeln!(bounded.make_writer(), "line {i}").expect("write");
        }
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(text, "line 0\nline 1\nline 2\n");
        // The next second: the count comes first, then the line.
        bounded.budget.lock().expect("lock").second = u64::MAX;
        writeln!(bounded.make_writer(), "line 10").expect("write");
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf8");
        assert!(
            text.ends_with(
                "colloquy: 7 log lines dropped over --log-max-lines-per-sec 3\nline 10\n"
            ),
            "{text}"
        );
        let unbounded = Bounded::new(Buffer::default(), 0);
        for _ in 0..10 {
            assert!(unbounded.admit().0);
        }
    }

    #[test]
    fn the_redis_client_is_kept_at_error_unless_named() {
        assert_eq!(with_defaults("info"), "info,redis=error");
        assert_eq!(
            with_defaults("colloquy_redis=debug,warn"),
            "colloquy_redis=debug,warn,redis=error"
        );
        assert_eq!(with_defaults("redis=debug,info"), "redis=debug,info");
        assert_eq!(
            with_defaults("info,redis::cluster_async=trace"),
            "info,redis::cluster_async=trace"
        );
        assert!(EnvFilter::try_new(with_defaults("warn")).is_ok());
    }
}
