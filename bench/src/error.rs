//! [`BenchError`]: everything that can stop a benchmark run.

use std::path::PathBuf;
use std::time::Duration;

/// An error that stops a benchmark step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client failed (connection refused, reset, protocol error).
    #[error("HTTP client: {0}")]
    Hyper(#[from] hyper::Error),
    /// A request could not be built.
    #[error("building a request: {0}")]
    Request(#[from] http::Error),
    /// A response took too long.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The server answered with a status the scenario does not expect.
    #[error("{method} {path}: expected status {expected}, got {status}: {body}")]
    Status {
        /// Request method.
        method: http::Method,
        /// Request path.
        path: String,
        /// The expected status.
        expected: http::StatusCode,
        /// The status received.
        status: http::StatusCode,
        /// The start of the response body.
        body: String,
    },
    /// A response body was not the JSON the benchmark needs.
    #[error("{path}: response has no usable `{field}`: {source}")]
    Json {
        /// Request path.
        path: String,
        /// The field looked for.
        field: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An SSE stream ended without its `done` event, or with an error event.
    #[error("stream ended badly after {events} events: {reason}")]
    Stream {
        /// Events received.
        events: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// A release binary the orchestrator needs was not found.
    #[error("binary not found: {0} (build it with scripts/bench.sh or pass its path)")]
    BinaryNotFound(PathBuf),
    /// A child server exited before it answered its health check.
    #[error("{name} exited during start-up ({status}); last log lines:\n{log_tail}")]
    ExitedEarly {
        /// The server's name.
        name: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of its log.
        log_tail: String,
    },
    /// A child server did not answer its health check in time.
    #[error("{name} did not become healthy within {waited:?}; last log lines:\n{log_tail}")]
    NotHealthy {
        /// The server's name.
        name: String,
        /// How long the orchestrator waited.
        waited: Duration,
        /// The end of its log.
        log_tail: String,
    },
    /// A latency histogram could not be created.
    #[error("histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
    /// A session-events adapter failed (the `session_events` bench).
    #[error("session events")]
    Events(#[from] colloquy_core::EventsError),
    /// A load run produced errors where the orchestrator needs success (data set-up).
    #[error("{what}: {errors} of {requests} requests failed; first: {first}")]
    LoadFailed {
        /// The step.
        what: String,
        /// Failed requests.
        errors: u64,
        /// All requests.
        requests: u64,
        /// The first failure.
        first: String,
    },
    /// A store URL the bench cannot use.
    #[error("store URL {url}: {reason}")]
    BadUrl {
        /// The URL, password removed.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A helper command (`psql`, `redis-cli`) failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// The step.
        what: String,
        /// Its error output.
        detail: String,
    },
}

impl BenchError {
    /// An [`BenchError::Io`] with `context`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}
