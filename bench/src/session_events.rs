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
