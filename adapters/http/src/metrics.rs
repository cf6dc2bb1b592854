//! Prometheus metrics: a small registry of counters and histograms, the store
//! observer that times store operations and reads each stored answer's figures (the
//! decorator itself is core's [`ObservedStore`](colloquy_core::decorators::ObservedStore)),
//! and the listener that serves `GET /metrics` in the Prometheus text format.
//!
//! Hand-written rather than the `prometheus` or `metrics` crates: the transport is
//! bare hyper and needs a dozen series with fixed buckets; a registry owned by the
//! [`Api`](crate::Api) (no process-global recorder) keeps several servers in one test
//! process apart, and the text format is a few lines to write.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use colloquy_core::budget::BudgetFigures;
use colloquy_core::decorators::{StoreObserver, StoreOperation};
use colloquy_core::{ChatMessage, ChatService, Role, StoreError};
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{Response, ResponseBody};

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// One histogram: a count per bucket (the last one is `+Inf`), the sum and the count.
#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    /// The `_bucket`, `_sum` and `_count` lines of series `name{labels}`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            cumulative += count;
            let le = BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), f64::to_string);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
}

/// Label values, rendered `k="v",...` (values are escaped).
fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Every series, each family keyed by its rendered labels — but the requests', which
/// are counted on every request: keyed by `(route, status)` (both `Copy`, no
/// allocation on the request path), their labels rendered only when scraped. The
/// request count is the latency histogram's count (one map, one lookup).
#[derive(Debug, Default)]
struct Series {
    requests: BTreeMap<(&'static str, StatusCode), Histogram>,
    rate_limited: BTreeMap<String, u64>,
    answers: BTreeMap<String, u64>,
    answer_seconds: BTreeMap<String, Histogram>,
    first_chunk_seconds: Histogram,
    tokens: BTreeMap<String, u64>,
    store_seconds: BTreeMap<String, Histogram>,
    store_errors: BTreeMap<String, u64>,
}

/// Renders extra series (e.g. the webhook deliverer's) into the text format.
type Renderer = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Default)]
struct Registry {
    series: Mutex<Series>,
    open_streams: AtomicI64,
    extra: Mutex<Vec<Renderer>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// The metrics of one server: cheap to clone (one shared registry). Put the same
/// value in [`HttpConfig::metrics`](crate::HttpConfig::metrics), in
/// [`Metrics::store_observer`] and in [`serve_metrics`].
#[derive(Clone, Default)]
pub struct Metrics {
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl PartialEq for Metrics {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.registry, &other.registry)
    }
}

impl Eq for Metrics {}

impl Metrics {
    /// A new, empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The observer that records a store's operations in this registry, their
    /// series labelled `store="<name>"` (`sqlite`, `redis`, ...):
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use colloquy_core::decorators::ObservedStore;
    /// # use colloquy_core::SystemClock;
    /// # use colloquy_http::Metrics;
    /// # use colloquy_memory::MemoryStore;
    /// let metrics = Metrics::new();
    /// let store = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
    /// let metered = ObservedStore::new(store, metrics.store_observer("memory"));
    /// # let _ = metered;
    /// ```
    #[must_use]
    pub fn store_observer(&self, name: &'static str) -> StoreMetrics {
        StoreMetrics {
            name,
            metrics: self.clone(),
        }
    }

    /// Adds series rendered by `render` (whole `# HELP`/`# TYPE`/sample lines,
    /// each ending in a newline) to every scrape, after the built-in ones.
    pub fn add_renderer(&self, render: impl Fn() -> String + Send + Sync + 'static) {
        self.registry
            .extra
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::new(render));
    }

    fn series(&self) -> MutexGuard<'_, Series> {
        // A panic while holding the lock leaves plain numbers behind: keep counting.
        self.registry
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one answered request of endpoint `route` (the router's name, never the
    /// path), and, for a stream, counts it open until its body is dropped.
    pub(crate) fn observe_request(
        &self,
        route: &'static str,
        response: Response,
        elapsed: Duration,
    ) -> Response {
        let status = response.status();
        let policy = (status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| rate_limit_policy(&response))
            .flatten();
        {
            let mut series = self.series();
            series
                .requests
                .entry((route, status))
                .or_default()
                .observe(elapsed.as_secs_f64());
            if let Some(policy) = policy {
                *series
                    .rate_limited
                    .entry(labels(&[("policy", &policy)]))
                    .or_default() += 1;
            }
        }
        let is_stream = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if !is_stream {
            return response;
        }
        let guard = StreamGuard::open(self.registry.clone());
        response.map(|body| {
            Tracked {
                inner: body,
                _guard: guard,
            }
            .boxed_unsync()
        })
    }

    /// Reads a stored answer's figures from its metadata: `latency_ms`,
    /// `time_to_first_chunk_ms`, `usage` and `finish_reason`.
    fn observe_answer(&self, message: &ChatMessage) {
        let meta = &message.metadata;
        let ms = |key: &str| meta.get(key).and_then(serde_json::Value::as_f64);
        let finish = meta
            .get("finish_reason")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown");
        let key = labels(&[("finish_reason", finish)]);
        let mut series = self.series();
        *series.answers.entry(key.clone()).or_default() += 1;
        if let Some(latency) = ms("latency_ms") {
            series
                .answer_seconds
                .entry(key)
                .or_default()
                .observe(latency / 1000.0);
        }
        if let Some(first) = ms("time_to_first_chunk_ms") {
            series.first_chunk_seconds.observe(first / 1000.0);
        }
        if let Some(usage) = meta.get("usage") {
            for kind in ["prompt", "completion"] {
                if let Some(n) = usage
                    .get(format!("{kind}_tokens"))
                    .and_then(serde_json::Value::as_u64)
                {
                    *series.tokens.entry(labels(&[("kind", kind)])).or_default() += n;
                }
            }
        }
    }

    fn observe_store(&self, store: &str, operation: &str, elapsed: Duration, error: Option<&str>) {
        let key = labels(&[("store", store), ("operation", operation)]);
        let mut series = self.series();
        series
            .store_seconds
            .entry(key)
            .or_default()
            .observe(elapsed.as_secs_f64());
        if let Some(kind) = error {
            let key = labels(&[("store", store), ("operation", operation), ("kind", kind)]);
            *series.store_errors.entry(key).or_default() += 1;
        }
    }

    /// Every series in the Prometheus text format (version 0.0.4);
    /// `generations` is the number of answers being generated right now.
    #[must_use]
    pub fn render(&self, generations: usize) -> String {
        let mut out = String::new();
        let series = self.series();
        let counters =
            |out: &mut String, name: &str, help: &str, family: &BTreeMap<String, u64>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (labels, value) in family {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            };
        let histograms =
            |out: &mut String, name: &str, help: &str, family: &BTreeMap<String, Histogram>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
                for (labels, histogram) in family {
                    histogram.render(out, name, labels);
                }
            };
        let requests: BTreeMap<String, &Histogram> = series
            .requests
            .iter()
            .map(|((route, status), h)| {
                (labels(&[("route", route), ("status", status.as_str())]), h)
            })
            .collect();
        let _ = writeln!(
            out,
            "# HELP colloquy_http_requests_total HTTP requests answered, by endpoint (route) and status.\n# TYPE colloquy_http_requests_total counter"
        );
        for (labels, histogram) in &requests {
            let _ = writeln!(
                out,
                "colloquy_http_requests_total{{{labels}}} {}",
                histogram.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP colloquy_http_request_duration_seconds Time from a request's arrival to its response's headers (a stream's events come after), by endpoint and status.\n# TYPE colloquy_http_request_duration_seconds histogram"
        );
        for (labels, histogram) in &requests {
            histogram.render(&mut out, "colloquy_http_request_duration_seconds", labels);
        }
        let _ = writeln!(
            out,
            "# HELP colloquy_sse_streams_open Server-sent event streams open now.\n# TYPE colloquy_sse_streams_open gauge\ncolloquy_sse_streams_open {}",
            self.registry.open_streams.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP colloquy_generations_in_flight Answers being generated by this instance now.\n# TYPE colloquy_generations_in_flight gauge\ncolloquy_generations_in_flight {generations}"
        );
        counters(
            &mut out,
            "colloquy_rate_limited_total",
            "Requests refused with 429, by rate-limit policy.",
            &series.rate_limited,
        );
        counters(
            &mut out,
            "colloquy_model_answers_total",
            "Answers stored, by finish_reason.",
            &series.answers,
        );
        histograms(
            &mut out,
            "colloquy_model_answer_duration_seconds",
            "Time from asking the model to the whole answer, by finish_reason.",
            &series.answer_seconds,
        );
        let _ = writeln!(
            out,
            "# HELP colloquy_model_time_to_first_chunk_seconds Time from asking the model to its first chunk (streamed answers).\n# TYPE colloquy_model_time_to_first_chunk_seconds histogram"
        );
        series.first_chunk_seconds.render(
            &mut out,
            "colloquy_model_time_to_first_chunk_seconds",
            "",
        );
        counters(
            &mut out,
            "colloquy_model_tokens_total",
            "Tokens the model reported, by kind (prompt, completion).",
            &series.tokens,
        );
        histograms(
            &mut out,
            "colloquy_store_operation_duration_seconds",
            "Store operations, by store and operation.",
            &series.store_seconds,
        );
        counters(
            &mut out,
            "colloquy_store_errors_total",
            "Store operations that failed (unavailable or backend), by store and operation.",
            &series.store_errors,
        );
        drop(series);
        let extra: Vec<Renderer> = self
            .registry
            .extra
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for render in extra {
            out.push_str(&render());
        }
        out
    }
}

/// The policy name of a 429's `RateLimit-Policy: "<name>";q=..;w=..`.
fn rate_limit_policy(response: &Response) -> Option<String> {
    let value = response.headers().get("ratelimit-policy")?.to_str().ok()?;
    let name = value.strip_prefix('"')?.split('"').next()?;
    Some(name.to_owned())
}

/// Counts a stream open from its creation to its drop.
#[derive(Debug)]
struct StreamGuard(Arc<Registry>);

impl StreamGuard {
    fn open(registry: Arc<Registry>) -> Self {
        registry.open_streams.fetch_add(1, Ordering::Relaxed);
        Self(registry)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that holds a [`StreamGuard`].
struct Tracked {
    inner: ResponseBody,
    _guard: StreamGuard,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The [`StoreObserver`] that feeds a [`Metrics`] registry: times every store
/// operation and counts its failures, labelled with the store's name, and reads
/// every stored answer's figures (model latency, time to first chunk, tokens) from
/// its metadata — so the core keeps no metrics code. Wrap the store in a
/// [`colloquy_core::decorators::ObservedStore`] with it; see
/// [`Metrics::store_observer`].
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    name: &'static str,
    metrics: Metrics,
}

impl StoreObserver for StoreMetrics {
    fn finished(&self, operation: StoreOperation, elapsed: Duration, error: Option<&StoreError>) {
        let kind = match error {
            Some(StoreError::Unavailable(_)) => Some("unavailable"),
            Some(StoreError::Backend(_)) => Some("backend"),
            _ => None,
        };
        self.metrics
            .observe_store(self.name, operation.name(), elapsed, kind);
    }

    fn stored(&self, message: &ChatMessage) {
        if message.role == Role::Assistant {
            self.metrics.observe_answer(message);
        }
    }
}

/// Serves `GET /metrics` (Prometheus text format) on `listener` until `shutdown`
/// completes; every other path is 404. Meant for an address only the monitoring
/// system reaches (`--metrics-bind`), never the public API's.
pub async fn serve_metrics<F>(
    listener: TcpListener,
    metrics: Metrics,
    service: ChatService,
    shutdown: F,
) where
    F: Future<Output = ()> + Send,
{
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request: http::Request<_>| {
                let metrics = metrics.clone();
                let service = service.clone();
                async move { Ok::<_, Infallible>(scrape(&request, &metrics, &service)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

/// The token budgets' series (see `colloquy_core::budget`): what this instance
/// charged, what it refused by policy, and what the deployment budget had left when
/// this instance last read or charged it.
pub(crate) fn render_budgets(out: &mut String, figures: &BudgetFigures) {
    let _ = writeln!(
        out,
        "# HELP colloquy_token_budget_charged_total Tokens this instance charged to the token budgets (prompt and completion).\n# TYPE colloquy_token_budget_charged_total counter\ncolloquy_token_budget_charged_total {}",
        figures.charged
    );
    let _ = writeln!(
        out,
        "# HELP colloquy_token_budget_refusals_total Chats this instance refused because a token budget was spent, by policy.\n# TYPE colloquy_token_budget_refusals_total counter"
    );
    for (policy, count) in figures.refused {
        let _ = writeln!(
            out,
            "colloquy_token_budget_refusals_total{{{}}} {count}",
            labels(&[("policy", policy)])
        );
    }
    if let Some(quota) = figures.deployment {
        let _ = writeln!(
            out,
            "# HELP colloquy_token_budget_tokens The deployment token budget (--token-budget) per window.\n# TYPE colloquy_token_budget_tokens gauge\ncolloquy_token_budget_tokens {}",
            quota.count
        );
        if let Some(left) = figures.left {
            let _ = writeln!(
                out,
                "# HELP colloquy_token_budget_left_tokens Tokens left in the deployment budget's window when this instance last read or charged it.\n# TYPE colloquy_token_budget_left_tokens gauge\ncolloquy_token_budget_left_tokens {left}"
            );
        }
    }
}

/// The answer to one request on the metrics listener.
fn scrape<B>(request: &http::Request<B>, metrics: &Metrics, service: &ChatService) -> Response {
    let path = request.uri().path();
    let (status, content_type, body) = if path == "/metrics" || path == "/metrics/" {
        (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            {
                let mut text = metrics.render(service.generations_in_flight());
                if let Some(figures) = service.budget_figures() {
                    render_budgets(&mut text, &figures);
                }
                text
            },
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the metrics are at /metrics\n".to_owned(),
        )
    };
    let mut response = http::Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloquy_core::ratelimit::Quota;

    #[test]
    fn budget_series_say_what_was_charged_refused_and_left() {
        let figures = BudgetFigures {
            deployment: Some(Quota {
                count: 1000,
                period: Duration::from_secs(86_400),
            }),
            left: Some(250),
            charged: 750,
            refused: [
                ("token-budget", 2),
                ("tokens-per-ip", 1),
                ("tokens-per-session", 0),
            ],
        };
        let mut out = String::new();
        render_budgets(&mut out, &figures);
        for line in [
            "colloquy_token_budget_charged_total 750",
            "colloquy_token_budget_refusals_total{policy=\"token-budget\"} 2",
            "colloquy_token_budget_refusals_total{policy=\"tokens-per-ip\"} 1",
            "colloquy_token_budget_tokens 1000",
            "colloquy_token_budget_left_tokens 250",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        let unread = BudgetFigures {
            deployment: None,
            left: None,
            ..figures
        };
        let mut out = String::new();
        render_budgets(&mut out, &unread);
        assert!(!out.contains("colloquy_token_budget_left_tokens"), "{out}");
    }
}
