//! Session events (the `SessionEvents` port, in process): memory per idle
//! subscriber, and publish-to-receive latency, on the in-process adapter, Redis
//! and PostgreSQL. The binary `colloquy-session-events` runs it and prints the
//! figures; it is not part of `colloquy-bench --quick`.
//!
//! Latency is measured one event at a time: an event is published, every
//! subscriber records when it arrived, and the next event is published once all
//! have it. So the figures are the delivery path's own delay, not queueing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use colloquy_core::{EventKind, EventTopic, SessionEvents, Subscription};
use futures::StreamExt;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::process::rss_kib;
use crate::stats::Latency;
use crate::BenchError;

/// How long one event may take to reach every subscriber before the run fails.
const EVENT_DEADLINE: Duration = Duration::from_secs(10);

fn task_failed(e: tokio::task::JoinError) -> BenchError {
    BenchError::Io {
        context: "a subscriber task".to_owned(),
        source: std::io::Error::other(e),
    }
}

fn topics(count: usize) -> Vec<EventTopic> {
    (0..count)
        .map(|i| EventTopic {
            session: Uuid::new_v4(),
            session_id: format!("bench-events-{i}-{}", Uuid::new_v4().simple()),
        })
        .collect()
}

/// What holding idle subscribers cost.
#[derive(Debug, Clone)]
pub struct IdleResult {
    /// Subscriptions held.
    pub subscribers: usize,
    /// Sessions they watch.
    pub sessions: usize,
    /// How long subscribing all of them took.
    pub subscribe_time: Duration,
    /// This process's RSS before, KiB.
    pub rss_before_kib: u64,
    /// This process's RSS with every subscription held, KiB.
    pub rss_held_kib: u64,
}

impl IdleResult {
    /// RSS growth per subscriber, bytes.
    #[must_use]
    pub fn bytes_per_subscriber(&self) -> f64 {
        let grown = self.rss_held_kib.saturating_sub(self.rss_before_kib) as f64 * 1024.0;
        grown / self.subscribers.max(1) as f64
    }
}

/// Holds `subscribers` idle subscriptions spread over `sessions` sessions and
/// measures this process's RSS before and while they are held.
///
/// # Errors
/// When a subscribe fails or the RSS cannot be read.
pub async fn idle(
    events: &dyn SessionEvents,
    subscribers: usize,
    sessions: usize,
) -> Result<IdleResult, BenchError> {
    let topics = topics(sessions.max(1));
    let rss = || {
        rss_kib(std::process::id()).ok_or_else(|| BenchError::Io {
            context: "reading this process's VmRSS".to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
    };
    let mut held: Vec<Subscription> = Vec::with_capacity(subscribers);
    let rss_before_kib = rss()?;
    let started = Instant::now();
    for i in 0..subscribers {
        let sub = events.subscribe(&topics[i % topics.len()]).await?;
        held.push(sub);
    }
    let subscribe_time = started.elapsed();
    let rss_held_kib = rss()?;
    drop(held);
    Ok(IdleResult {
        subscribers,
        sessions: topics.len(),
        subscribe_time,
        rss_before_kib,
        rss_held_kib,
    })
}

/// Publish-to-receive latency over every (event, subscriber) pair.
#[derive(Debug)]
pub struct LatencyResult {
    /// Subscribers.
    pub subscribers: usize,
    /// Sessions they watch (evenly).
    pub sessions: usize,
    /// Events published.
    pub events: usize,
    /// Delay from just before `publish` to a subscriber's receipt.
    pub latency: Latency,
}

/// What the subscriber tasks share: when the current event was published, and
/// how many have it.
struct Round {
    sent: Mutex<Option<Instant>>,
    received: AtomicUsize,
    all_in: Notify,
}

/// `subscribers` subscriptions on `subscribe_on`, spread over `sessions`
/// sessions; `events` events published on `publish_on`, one at a time, each to
/// one session (round robin), the next once that session's subscribers all
/// have it.
///
/// # Errors
/// When a subscribe or publish fails, a subscription ends, or an event does not
/// reach its subscribers within 10 s.
pub async fn latency(
    publish_on: &dyn SessionEvents,
    subscribe_on: &dyn SessionEvents,
    subscribers: usize,
    sessions: usize,
    events: usize,
) -> Result<LatencyResult, BenchError> {
    let topics = topics(sessions.max(1));
    let round = Arc::new(Round {
        sent: Mutex::new(None),
        received: AtomicUsize::new(0),
        all_in: Notify::new(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut per_session = vec![0usize; topics.len()];
    let mut tasks = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let which = i % topics.len();
        per_session[which] += 1;
        let mut sub = subscribe_on.subscribe(&topics[which]).await?;
        let round = Arc::clone(&round);
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Latency::new()?;
            loop {
                let item = tokio::select! {
                    item = sub.next() => item,
                    _ = stop.changed() => break,
                };
                let Some(item) = item else { break };
                item?;
                let sent = *round.sent.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(sent) = sent {
                    seen.record(sent.elapsed());
                }
                round.received.fetch_add(1, Ordering::AcqRel);
                round.all_in.notify_one();
            }
            Ok::<Latency, BenchError>(seen)
        }));
    }
    for i in 0..events {
        let which = i % topics.len();
        round.received.store(0, Ordering::Release);
        *round.sent.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        publish_on
            .publish(
                &topics[which],
                EventKind::MessageStored { id: Uuid::new_v4() },
            )
            .await?;
        let expected = per_session[which];
        let all = async {
            while round.received.load(Ordering::Acquire) < expected {
                round.all_in.notified().await;
            }
        };
        tokio::time::timeout(EVENT_DEADLINE, all)
            .await
            .map_err(|_| BenchError::Timeout(EVENT_DEADLINE))?;
    }
    stop_tx.send_replace(true);
    let mut latency = Latency::new()?;
    for task in tasks {
        let seen = task.await.map_err(task_failed)??;
        latency.merge(&seen);
    }
    Ok(LatencyResult {
        subscribers,
        sessions: topics.len(),
        events,
        latency,
    })
}

/// What to hold against a running server: idle `GET /sessions/{id}/events/`
/// streams, one per session.
#[derive(Debug, Clone)]
pub struct StreamsSpec {
    /// The server.
    pub target: std::net::SocketAddr,
    /// Its process id, for its RSS.
    pub pid: u32,
    /// The sessions to watch (one stream each).
    pub sessions: Vec<String>,
    /// Loopback source addresses to spread the connections over (the server
    /// allows 32 event streams per client address).
    pub sources: Vec<std::net::IpAddr>,
}

/// What holding idle event streams cost the server.
#[derive(Debug, Clone)]
pub struct StreamsResult {
    /// Streams asked for.
    pub streams: usize,
    /// Streams open at once (their `session` event arrived).
    pub open: usize,
    /// Streams that failed, and the first failure.
    pub errors: usize,
    /// The first failure.
    pub first_error: Option<String>,
    /// Server RSS before the streams (sessions created), KiB.
    pub rss_before_kib: u64,
    /// Server RSS with every stream open, KiB.
    pub rss_open_kib: u64,
    /// From the first connection to the last stream open.
    pub ramp: Duration,
}

impl StreamsResult {
    /// Server RSS growth per open stream, KiB.
    #[must_use]
    pub fn kib_per_stream(&self) -> f64 {
        // KiB and counts are far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let (grown, open) = (
            self.rss_open_kib.saturating_sub(self.rss_before_kib) as f64,
            self.open.max(1) as f64,
        );
        grown / open
    }
}

/// Streams being connected at once.
const CONNECTING_AT_ONCE: usize = 256;

/// Opens one idle event stream per session and holds them all, then measures the
/// server's RSS; the streams are closed when this returns.
///
/// # Errors
/// None of its own: failed streams are counted in the result.
pub async fn hold_streams(spec: &StreamsSpec) -> Result<StreamsResult, BenchError> {
    use http::StatusCode;
    use http_body_util::BodyExt;

    let rss_before_kib = rss_kib(spec.pid).unwrap_or(0);
    let open = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECTING_AT_ONCE));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(spec.sessions.len());
    for (i, session) in spec.sessions.iter().enumerate() {
        let request = crate::RequestSpec::get(format!("/api/chats/sessions/{session}/events/"));
        let source = (!spec.sources.is_empty()).then(|| spec.sources[i % spec.sources.len()]);
        let (open, failed, first_error, connecting, target) = (
            open.clone(),
            failed.clone(),
            first_error.clone(),
            connecting.clone(),
            spec.target,
        );
        tasks.push(tokio::spawn(async move {
            let outcome = async {
                let permit = connecting.acquire().await.ok();
                let mut conn = crate::client::Conn::connect(target, source).await?;
                let response = conn.send(&request).await?;
                if response.status() != StatusCode::OK {
                    let status = response.status();
                    let body = response.into_body().collect().await?.to_bytes();
                    return Err(crate::client::status_error(
                        &request,
                        StatusCode::OK,
                        status,
                        &body,
                    ));
                }
                drop(permit);
                let mut body = response.into_body();
                let mut decoder = colloquy_test_support::sse::Decoder::new();
                let mut counted = false;
                // Hold the stream: read (keep-alives) until it ends or is aborted.
                while let Some(frame) = body.frame().await {
                    if let Some(data) = frame?.data_ref() {
                        decoder.feed(data);
                    }
                    while let Some(item) = decoder.next_item() {
                        if !counted && matches!(item, colloquy_test_support::sse::Item::Event(_)) {
                            counted = true;
                            open.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Err::<(), BenchError>(BenchError::Stream {
                    events: 0,
                    reason: "the server ended an idle event stream",
                })
            }
            .await;
            if let Err(e) = outcome {
                failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }));
    }
    let streams = spec.sessions.len();
    let deadline = started + Duration::from_secs(300);
    let mut ramp = Duration::ZERO;
    while Instant::now() < deadline {
        let now_open = open.load(Ordering::Relaxed);
        if now_open + failed.load(Ordering::Relaxed) >= streams {
            ramp = started.elapsed();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the allocator settle, then take the RSS with every stream open.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_open_kib = rss_kib(spec.pid).unwrap_or(0);
    let open_now = open.load(Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }
    let errors = failed.load(Ordering::Relaxed);
    let first_error = first_error.lock().ok().and_then(|f| f.clone());
    Ok(StreamsResult {
        streams,
        open: open_now,
        errors,
        first_error,
        rss_before_kib,
        rss_open_kib,
        ramp,
    })
}
