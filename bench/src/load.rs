//! The load generator: `connections` keep-alive connections, each sending one request
//! after another, for a fixed duration or a fixed number of requests.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use http_body_util::BodyExt;

use crate::client::{status_error, Conn, REQUEST_TIMEOUT};
use crate::sse::read_stream;
use crate::stats::Latency;
use crate::{BenchError, RequestSpec};

/// When a load run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Run for `warmup` without recording, then record for `measure`.
    Duration {
        /// Unrecorded warm-up.
        warmup: Duration,
        /// Recorded window.
        measure: Duration,
    },
    /// Send exactly this many requests in all (every one recorded).
    Requests(u64),
}

/// How a response is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read the whole body; the latency is to its end.
    Whole,
    /// Read an event stream to its `done` event; the latency is to that event, and
    /// the time to the first event is recorded too.
    Stream,
}

/// The requests of a run: `plan(connection index, request number on it)`.
pub type Plan = Arc<dyn Fn(usize, u64) -> RequestSpec + Send + Sync>;

/// A load run.
#[derive(Clone)]
pub struct Load {
    /// The server.
    pub target: SocketAddr,
    /// Concurrent connections.
    pub connections: usize,
    /// When to stop.
    pub stop: Stop,
    /// How to read responses.
    pub mode: Mode,
    /// The status that counts as success.
    pub expect: StatusCode,
    /// Loopback source addresses to spread connections over (none: the default).
    pub sources: Vec<IpAddr>,
    /// The requests.
    pub plan: Plan,
}

impl std::fmt::Debug for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Load")
            .field("target", &self.target)
            .field("connections", &self.connections)
            .field("stop", &self.stop)
            .field("mode", &self.mode)
            .field("expect", &self.expect)
            .finish_non_exhaustive()
    }
}

/// The outcome of a load run.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Successful requests recorded.
    pub ok: u64,
    /// Successful requests in all, warm-up and tails of the window included (for
    /// the server's CPU time per request).
    pub completed: u64,
    /// Failed requests (wrong status, connection errors, bad streams, timeouts).
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// The recorded window.
    pub elapsed: Duration,
    /// Latency of successful requests (to the end of the body / the `done` event).
    pub latency: Latency,
    /// Time to the first event ([`Mode::Stream`] only).
    pub first_event: Latency,
}

impl LoadResult {
    /// Successful requests per second over the recorded window.
    #[must_use]
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            // Counts stay far below 2^52, so the conversion is exact.
            #[allow(clippy::cast_precision_loss)]
            let ok = self.ok as f64;
            ok / secs
        } else {
            0.0
        }
    }

    /// Fails with [`BenchError::LoadFailed`] when any request failed.
    ///
    /// # Errors
    /// As described.
    pub fn require_success(&self, what: &str) -> Result<(), BenchError> {
        if self.errors == 0 {
            Ok(())
        } else {
            Err(BenchError::LoadFailed {
                what: what.to_owned(),
                errors: self.errors,
                requests: self.errors + self.ok,
                first: self.first_error.clone().unwrap_or_default(),
            })
        }
    }
}

/// What one worker measured.
struct WorkerResult {
    ok: u64,
    completed: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Latency,
    first_event: Latency,
}

/// Runs `load` and returns what it measured.
///
/// # Errors
/// [`BenchError::Histogram`] only; request failures are counted in the result.
pub async fn run(load: &Load) -> Result<LoadResult, BenchError> {
    let started = Instant::now();
    let (record_from, end) = match load.stop {
        Stop::Duration { warmup, measure } => (started + warmup, Some(started + warmup + measure)),
        Stop::Requests(_) => (started, None),
    };
    let budget = match load.stop {
        Stop::Requests(n) => Some(Arc::new(AtomicU64::new(n))),
        Stop::Duration { .. } => None,
    };
    let mut workers = Vec::with_capacity(load.connections);
    for index in 0..load.connections.max(1) {
        let load = load.clone();
        let budget = budget.clone();
        let source = if load.sources.is_empty() {
            None
        } else {
            Some(load.sources[index % load.sources.len()])
        };
        workers.push(tokio::spawn(async move {
            worker(&load, index, source, record_from, end, budget.as_deref()).await
        }));
    }
    let mut total = WorkerResult {
        ok: 0,
        completed: 0,
        errors: 0,
        first_error: None,
        latency: Latency::new()?,
        first_event: Latency::new()?,
    };
    for handle in workers {
        match handle.await {
            Ok(Ok(w)) => {
                total.ok += w.ok;
                total.completed += w.completed;
                total.errors += w.errors;
                if total.first_error.is_none() {
                    total.first_error = w.first_error;
                }
                total.latency.merge(&w.latency);
                total.first_event.merge(&w.first_event);
            }
            Ok(Err(e)) => return Err(e),
            Err(join) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| join.to_string());
            }
        }
    }
    let elapsed = match end {
        Some(end) => end.saturating_duration_since(record_from),
        None => started.elapsed(),
    };
    Ok(LoadResult {
        ok: total.ok,
        completed: total.completed,
        errors: total.errors,
        first_error: total.first_error,
        elapsed,
        latency: total.latency,
        first_event: total.first_event,
    })
}

/// One connection's loop.
async fn worker(
    load: &Load,
    index: usize,
    source: Option<IpAddr>,
    record_from: Instant,
    end: Option<Instant>,
    budget: Option<&AtomicU64>,
) -> Result<WorkerResult, BenchError> {
    let mut result = WorkerResult {
        ok: 0,
        completed: 0,
        errors: 0,
        first_error: None,
        latency: Latency::new()?,
        first_event: Latency::new()?,
    };
    let mut conn: Option<Conn> = None;
    let mut seq = 0u64;
    loop {
        if let Some(end) = end {
            if Instant::now() >= end {
                break;
            }
        }
        if let Some(budget) = budget {
            let claimed = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            });
            if claimed.is_err() {
                break;
            }
        }
        let spec = (load.plan)(index, seq);
        seq += 1;
        let start = Instant::now();
        let outcome = one_request(load, &mut conn, source, &spec, start).await;
        let finish = Instant::now();
        let counted = start >= record_from && end.is_none_or(|end| finish <= end);
        match outcome {
            Ok(first_event) => {
                result.completed += 1;
                if counted {
                    result.ok += 1;
                    result.latency.record(finish - start);
                    if let Some(first) = first_event {
                        result.first_event.record(first);
                    }
                }
            }
            Err(e) => {
                conn = None;
                if counted || end.is_none() {
                    result.errors += 1;
                    result.first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
    Ok(result)
}

/// Sends one request on `conn` (connecting first when needed) and reads its response
/// as `load.mode` says; returns the time to the first event for a stream.
async fn one_request(
    load: &Load,
    conn: &mut Option<Conn>,
    source: Option<IpAddr>,
    spec: &RequestSpec,
    start: Instant,
) -> Result<Option<Duration>, BenchError> {
    let exchange = async {
        let c = match conn {
            Some(c) if c.is_open() => c,
            _ => conn.insert(Conn::connect(load.target, source).await?),
        };
        let response = c.send(spec).await?;
        let status = response.status();
        if status != load.expect {
            let body = response.into_body().collect().await?.to_bytes();
            return Err(status_error(spec, load.expect, status, &body));
        }
        match load.mode {
            Mode::Whole => {
                response.into_body().collect().await?;
                Ok(None)
            }
            Mode::Stream => {
                let timing = read_stream(response.into_body(), start, |_| {}).await?;
                Ok(Some(timing.first_event))
            }
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| BenchError::Timeout(REQUEST_TIMEOUT))?
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;

    /// A stub answering every request with `status` and `body` (keep-alive HTTP/1.1).
    async fn stub(status: StatusCode, body: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stub");
        let addr = listener.local_addr().expect("stub address");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = service_fn(move |_request| async move {
                        let mut response =
                            http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                        *response.status_mut() = status;
                        Ok::<_, Infallible>(response)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }

    fn load(target: SocketAddr, expect: StatusCode, mode: Mode, stop: Stop) -> Load {
        Load {
            target,
            connections: 3,
            stop,
            mode,
            expect,
            sources: Vec::new(),
            plan: Arc::new(|_, _| RequestSpec::get("/")),
        }
    }

    #[tokio::test]
    async fn request_count_is_exact_and_all_recorded() {
        let target = stub(StatusCode::OK, "{}").await;
        let result = run(&load(
            target,
            StatusCode::OK,
            Mode::Whole,
            Stop::Requests(50),
        ))
        .await
        .expect("run completes");
        assert_eq!((result.ok, result.errors), (50, 0));
        assert_eq!(result.latency.count(), 50);
        assert!(result.rps() > 0.0);
    }

    #[tokio::test]
    async fn unexpected_status_counts_as_error_with_its_body() {
        let target = stub(StatusCode::NOT_FOUND, r#"{"code":"session_not_found"}"#).await;
        let result = run(&load(
            target,
            StatusCode::OK,
            Mode::Whole,
            Stop::Requests(7),
        ))
        .await
        .expect("run completes");
        assert_eq!((result.ok, result.errors), (0, 7));
        assert!(result.require_success("stub").is_err());
        let first = result.first_error.expect("an error is kept");
        assert!(first.contains("session_not_found"), "{first}");
    }

    #[tokio::test]
    async fn streams_record_first_and_last_event() {
        let body = "id: 0\ndata: {\"chunk\":\"a\",\"done\":false}\n\nid: 1\ndata: {\"chunk\":\"\",\"done\":true}\n\n";
        let target = stub(StatusCode::OK, body).await;
        let result = run(&load(
            target,
            StatusCode::OK,
            Mode::Stream,
            Stop::Requests(10),
        ))
        .await
        .expect("run completes");
        assert_eq!((result.ok, result.errors), (10, 0));
        assert_eq!(result.first_event.count(), 10);
    }

    #[tokio::test]
    async fn stream_without_done_is_an_error() {
        let target = stub(StatusCode::OK, "data: {\"chunk\":\"a\",\"done\":false}\n\n").await;
        let result = run(&load(
            target,
            StatusCode::OK,
            Mode::Stream,
            Stop::Requests(2),
        ))
        .await
        .expect("run completes");
        assert_eq!((result.ok, result.errors), (0, 2));
    }

    #[tokio::test]
    async fn duration_mode_stops_and_reports_its_window() {
        let target = stub(StatusCode::OK, "{}").await;
        let stop = Stop::Duration {
            warmup: Duration::from_millis(20),
            measure: Duration::from_millis(100),
        };
        let result = run(&load(target, StatusCode::OK, Mode::Whole, stop))
            .await
            .expect("run completes");
        assert_eq!(result.elapsed, Duration::from_millis(100));
        assert!(result.ok > 0);
        assert_eq!(result.errors, 0);
    }

    #[tokio::test]
    async fn refused_connections_are_errors_not_hangs() {
        let port = crate::process::free_port().expect("a free port");
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        let result = run(&load(
            target,
            StatusCode::OK,
            Mode::Whole,
            Stop::Requests(4),
        ))
        .await
        .expect("run completes");
        assert_eq!((result.ok, result.errors), (0, 4));
    }
}
