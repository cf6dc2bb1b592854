//! Logging: `tracing` to stderr, as text for people or JSON lines for collectors.
//!
//! Lines are formatted where they happen and written by a background thread
//! (`tracing-appender`), which writes whatever has queued up in one go: a request's
//! access line costs no `write` system call of its own. Keep the [`LogGuard`] alive
//! until exit: dropping it flushes what is queued.

use clap::ValueEnum;
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

/// Installs the global subscriber: `filter` is an `EnvFilter` directive such as
/// `info` or `colloquy_http=debug,info` (the `redis` client target is kept at
/// `error` unless the filter names it).
pub(crate) fn init(format: LogFormat, filter: &str) -> Result<LogGuard, LoggingError> {
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
        .with_writer(writer)
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
