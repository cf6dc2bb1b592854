//! The deliverer against an in-process outbox and a receiver in the test: it
//! delivers and removes, gives up on entries past their time (counting them),
//! leaves young entries for URLs it does not know to other instances, and stops
//! cleanly. Every wait has a deadline.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use colloquy_core::webhooks::{
    LocalWebhookOutbox, OutboxEntry, WebhookEventTypes, WebhookOutbox, Webhooks,
};
use colloquy_core::SystemClock;
use colloquy_webhook::{Deliverer, DeliveryConfig, DeliveryMetrics, Format, Target};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(20);

/// A receiver that answers 200 and keeps the bodies.
async fn receiver() -> (String, Arc<Mutex<Vec<Bytes>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let bodies: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let kept = Arc::clone(&bodies);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |r: Request<Incoming>| {
                    let kept = Arc::clone(&kept);
                    async move {
                        let body = r.into_body().collect().await.map(|b| b.to_bytes());
                        kept.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(body.unwrap_or_default());
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, bodies)
}

fn entry(target: &str, age: chrono::Duration) -> OutboxEntry {
    OutboxEntry {
        id: Uuid::new_v4(),
        event_id: Uuid::new_v4(),
        event_type: "session.created".into(),
        target: target.to_owned(),
        body: r#"{"type":"session.created","session":{"session_id":"s"}}"#.into(),
        created_at: chrono::Utc::now() - age,
    }
}

fn config() -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_secs(2),
        poll: Duration::from_millis(50),
        backoff_base: Duration::from_millis(20),
        give_up_after: Duration::from_secs(3600),
        ..DeliveryConfig::default()
    }
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn count(
    metrics: &DeliveryMetrics,
    which: fn(&DeliveryMetrics) -> &std::sync::atomic::AtomicU64,
) -> u64 {
    which(metrics).load(Ordering::Relaxed)
}

#[tokio::test]
async fn delivers_removes_and_gives_up_on_what_cannot_be_delivered() {
    let (url, bodies) = receiver().await;
    let outbox = Arc::new(LocalWebhookOutbox::new(Arc::new(SystemClock)));
    // Nothing listens on port 9 of loopback: every attempt there fails.
    let dead = "http://127.0.0.1:9/hook".to_owned();
    let webhooks = Webhooks::new(
        outbox.clone(),
        vec![url.clone(), dead.clone()],
        WebhookEventTypes::all(),
    );
    outbox
        .enqueue(&[
            entry(&url, chrono::Duration::zero()),
            // Older than give_up_after: one failed attempt and it is dropped.
            entry(&dead, chrono::Duration::hours(2)),
            // For a URL this instance does not know, and too old: dropped too.
            entry("http://127.0.0.1:9/gone", chrono::Duration::hours(2)),
            // For a URL this instance does not know, and young: left for another
            // instance that knows it (retried later, never POSTed from here).
            entry("http://127.0.0.1:9/new", chrono::Duration::zero()),
        ])
        .await
        .expect("enqueue");
    let targets = vec![
        Target::new(url.clone(), Format::Slack, None).expect("target"),
        Target::new(dead, Format::Slack, None).expect("target"),
    ];
    let deliverer = Deliverer::spawn(webhooks, targets, config());
    let metrics = Arc::clone(deliverer.metrics());
    until("one delivered and two given up", || {
        count(&metrics, |m| &m.delivered) == 1 && count(&metrics, |m| &m.given_up) == 2
    })
    .await;
    assert_eq!(
        outbox.pending().await.expect("pending"),
        1,
        "only the entry for a URL another instance may know is left"
    );
    let received = bodies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(received.len(), 1);
    let slack: serde_json::Value = serde_json::from_slice(&received[0]).expect("JSON");
    assert!(
        slack["text"].as_str().is_some_and(|t| t.contains("`s`")),
        "{slack}"
    );
    assert!(
        count(&metrics, |m| &m.failed) >= 2,
        "the two failed attempts count"
    );
    let rendered = metrics.render();
    assert!(
        rendered.contains("colloquy_webhooks_given_up_total 2"),
        "{rendered}"
    );
    tokio::time::timeout(DEADLINE, deliverer.stop())
        .await
        .expect("stops within the deadline");
}

#[tokio::test]
async fn an_idle_deliverer_stops_at_once_whatever_its_poll() {
    let outbox = Arc::new(LocalWebhookOutbox::new(Arc::new(SystemClock)));
    let url = "http://127.0.0.1:9/hook".to_owned();
    let webhooks = Webhooks::new(outbox, vec![url.clone()], WebhookEventTypes::all());
    let idle = DeliveryConfig {
        poll: Duration::from_secs(3600),
        ..config()
    };
    let target = Target::new(url, Format::Colloquy, Some("k".into())).expect("target");
    let deliverer = Deliverer::spawn(webhooks, vec![target], idle);
    tokio::task::yield_now().await;
    let started = Instant::now();
    tokio::time::timeout(DEADLINE, deliverer.stop())
        .await
        .expect("stops within the deadline, not after its hour-long poll");
    assert!(started.elapsed() < DEADLINE);
}
