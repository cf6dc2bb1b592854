//! SSE scale: hold many slow echo streams open at once and measure the server's
//! memory per open stream and the delay between chunks.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::client::{status_error, Conn};
use crate::process::rss_kib;
use crate::scenarios::create_named_sessions;
use crate::sse::read_stream;
use crate::stats::Latency;
use crate::{BenchError, RequestSpec};

/// Streams being connected at once (keeps the server's accept backlog from overflowing).
const CONNECTING_AT_ONCE: usize = 256;
/// How often the orchestrator samples the open-stream count and the server's RSS.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// What to run.
#[derive(Debug, Clone)]
pub struct SseScaleSpec {
    /// The server.
    pub target: SocketAddr,
    /// Its process id, for its RSS.
    pub pid: u32,
    /// Streams to hold open at once.
    pub streams: usize,
    /// Words in each message: the echo answers in `words + 1` chunks.
    pub words: usize,
    /// The server's per-chunk delay (for the report and the deadline).
    pub chunk_delay: Duration,
    /// Loopback source addresses to spread the client connections over.
    pub sources: Vec<IpAddr>,
    /// A prefix for the session names.
    pub tag: String,
}

/// What SSE scale measured.
#[derive(Debug, Clone)]
pub struct SseScaleResult {
    /// Streams asked for.
    pub streams: usize,
    /// Most streams open at the same time (response started, `done` not yet seen).
    pub peak_open: usize,
    /// Streams that ended with `done`.
    pub completed: usize,
    /// Streams that failed.
    pub errors: usize,
    /// The first failure.
    pub first_error: Option<String>,
    /// Server RSS before the streams (sessions already created), KiB.
    pub rss_before_kib: u64,
    /// Highest server RSS while `peak_open` streams were open, KiB.
    pub rss_open_kib: u64,
    /// From the first connection to `peak_open` streams being open.
    pub ramp: Duration,
    /// Gaps between consecutive events of a stream.
    pub gaps: Latency,
    /// The server's per-chunk delay.
    pub chunk_delay: Duration,
}

impl SseScaleResult {
    /// (RSS while open − RSS before) / streams open, in KiB.
    #[must_use]
    pub fn kib_per_stream(&self) -> f64 {
        if self.peak_open == 0 {
            return 0.0;
        }
        // KiB and counts are far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let (grown, open) = (
            self.rss_open_kib.saturating_sub(self.rss_before_kib) as f64,
            self.peak_open as f64,
        );
        grown / open
    }
}

/// Shared counters of the running streams.
#[derive(Debug, Default)]
struct Counters {
    /// Streams whose response has started and not ended yet.
    open: AtomicUsize,
    finished: AtomicUsize,
    errors: AtomicUsize,
}

/// Runs SSE scale.
///
/// # Errors
/// Session creation failures; stream failures are counted in the result.
pub async fn run(spec: &SseScaleSpec) -> Result<SseScaleResult, BenchError> {
    let sessions = create_named_sessions(
        spec.target,
        &format!("{}-x", spec.tag),
        spec.streams,
        64,
        &spec.sources,
    )
    .await?;
    let rss_before_kib = rss_kib(spec.pid).unwrap_or(0);
    let text = (0..spec.words)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let counters = Arc::new(Counters::default());
    let gaps = Arc::new(Mutex::new(Latency::new()?));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(spec.streams);
    for (i, session) in sessions.into_iter().enumerate() {
        let request = RequestSpec::post_json(
            "/api/chats/messages/chat/stream/",
            &json!({"session_id": session, "message": text}),
        );
        let source = (!spec.sources.is_empty()).then(|| spec.sources[i % spec.sources.len()]);
        let (counters, gaps, first_error, connecting, target) = (
            counters.clone(),
            gaps.clone(),
            first_error.clone(),
            connecting.clone(),
            spec.target,
        );
        tasks.push(tokio::spawn(async move {
            let mut opened = false;
            let outcome = one_stream(
                target,
                source,
                &request,
                &counters,
                &gaps,
                &connecting,
                &mut opened,
            )
            .await;
            if opened {
                counters.open.fetch_sub(1, Ordering::Relaxed);
            }
            if let Err(e) = outcome {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
            counters.finished.fetch_add(1, Ordering::Relaxed);
        }));
    }
    // Sample while the streams run: the peak of open streams and the RSS at it.
    let chunks = u32::try_from(spec.words + 1).unwrap_or(u32::MAX);
    let deadline = started + spec.chunk_delay * chunks + Duration::from_secs(120);
    let (mut peak_open, mut rss_open_kib, mut ramp) = (0, 0, Duration::ZERO);
    loop {
        let finished = counters.finished.load(Ordering::Relaxed);
        let open = counters.open.load(Ordering::Relaxed);
        if open > peak_open {
            peak_open = open;
            ramp = started.elapsed();
            rss_open_kib = 0;
        }
        if open == peak_open && open > 0 {
            rss_open_kib = rss_open_kib.max(rss_kib(spec.pid).unwrap_or(0));
        }
        if finished >= spec.streams || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    for task in tasks {
        task.abort();
    }
    let errors = counters.errors.load(Ordering::Relaxed);
    let finished = counters.finished.load(Ordering::Relaxed);
    let gaps = gaps.lock().map(|g| g.clone()).unwrap_or(Latency::new()?);
    let first_error = first_error.lock().ok().and_then(|f| f.clone());
    Ok(SseScaleResult {
        streams: spec.streams,
        peak_open,
        completed: finished.saturating_sub(errors),
        errors: errors + spec.streams.saturating_sub(finished),
        first_error,
        rss_before_kib,
        rss_open_kib,
        ramp,
        gaps,
        chunk_delay: spec.chunk_delay,
    })
}

/// One stream: connect, post, read every event, record the gaps between events.
async fn one_stream(
    target: SocketAddr,
    source: Option<IpAddr>,
    request: &RequestSpec,
    counters: &Counters,
    gaps: &Mutex<Latency>,
    connecting: &Semaphore,
    opened: &mut bool,
) -> Result<(), BenchError> {
    let permit = connecting.acquire().await.ok();
    let mut conn = Conn::connect(target, source).await?;
    let started = Instant::now();
    let response = conn.send(request).await?;
    if response.status() != StatusCode::OK {
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        return Err(status_error(request, StatusCode::OK, status, &body));
    }
    // The response has started: the server now holds the stream open.
    drop(permit);
    counters.open.fetch_add(1, Ordering::Relaxed);
    *opened = true;
    let mut previous: Option<Instant> = None;
    read_stream(response.into_body(), started, |at| {
        if let Some(before) = previous {
            if let Ok(mut gaps) = gaps.lock() {
                gaps.record(at - before);
            }
        }
        previous = Some(at);
    })
    .await?;
    Ok(())
}
