//! `GET /metrics` on its own listener: requests by endpoint name and status (never the
//! raw path), open streams, 429s by policy, store operations and the stored answers'
//! figures; the public API does not serve it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use colloquy_core::decorators::ObservedStore;
use colloquy_core::ratelimit::{Quota, RatePolicy};
use colloquy_core::{Clock, EchoModel, SystemClock};
use colloquy_http::{serve_metrics, Metrics};
use colloquy_memory::MemoryStore;
use http::{Method, StatusCode};
use serde_json::json;

use crate::support::client::full;
use crate::support::sse::SseReader;
use crate::support::{eventually, Client, Setup};

/// Starts the metrics listener for `metrics` over `service`-less figures: returns a
/// client for it.
async fn metrics_client(metrics: Metrics, service: colloquy_core::ChatService) -> Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve_metrics(
        listener,
        metrics,
        service,
        std::future::pending::<()>(),
    ));
    Client::new(addr)
}

fn text(reply: &crate::support::Reply) -> String {
    String::from_utf8(reply.body.to_vec()).expect("UTF-8")
}

/// The value of the series line `series` (name and labels exactly), if present.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn requests_streams_rate_limits_store_and_model_are_counted() {
    let metrics = Metrics::new();
    let store = ObservedStore::new(
        Arc::new(MemoryStore::new(Arc::new(SystemClock) as Arc<dyn Clock>)),
        metrics.store_observer("memory"),
    );
    let mut setup = Setup::default()
        .store(store)
        .model(EchoModel::with_chunk_delay(Duration::from_millis(200)));
    setup.config.metrics = metrics.clone();
    setup.rate_limits = Some(RatePolicy {
        sessions_per_ip: Some(Quota {
            count: 1,
            period: Duration::from_secs(3600),
        }),
        ..RatePolicy::default()
    });
    let server = setup.start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "m-1"})).await;
    let refused = c.post("/api/chats/sessions/", &json!({})).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        c.get("/api/chats/sessions/m-1/").await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.get("/no/such/path-42").await.status,
        StatusCode::NOT_FOUND
    );
    // The public API has no /metrics.
    assert_eq!(c.get("/metrics").await.status, StatusCode::NOT_FOUND);

    // A slow stream stays open (the gauge says 1) until the client has read it all.
    let response = c
        .send(
            Method::POST,
            "/api/chats/messages/chat/stream/",
            &[("content-type", "application/json")],
            full(json!({"session_id": "m-1", "message": "one two"}).to_string()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let scraper = metrics_client(metrics.clone(), {
        // The service only matters for the generations gauge; any service will do.
        colloquy_core::ChatService::builder(
            Arc::new(MemoryStore::new(Arc::new(SystemClock) as Arc<dyn Clock>)),
            Arc::new(SystemClock),
        )
        .build()
    })
    .await;
    let during = text(&scraper.get("/metrics").await);
    assert_eq!(
        value(&during, "colloquy_sse_streams_open"),
        Some(1.0),
        "{during}"
    );
    let events = tokio::time::timeout(
        Duration::from_secs(10),
        SseReader::new(response.into_body()).rest(),
    )
    .await
    .expect("the stream ends within 10 s");
    assert!(events.last().is_some_and(|e| e.json()["done"] == true));

    let body = eventually("the stream and the answer are counted", || {
        let scraper = scraper.clone();
        async move {
            let body = text(&scraper.get("/metrics").await);
            let done = value(&body, "colloquy_sse_streams_open") == Some(0.0)
                && value(
                    &body,
                    "colloquy_model_answers_total{finish_reason=\"stop\"}",
                ) == Some(1.0);
            done.then_some(body)
        }
    })
    .await;
    for (series, expected) in [
        (
            r#"colloquy_http_requests_total{route="create_session",status="201"}"#,
            1.0,
        ),
        (
            r#"colloquy_http_requests_total{route="create_session",status="429"}"#,
            1.0,
        ),
        (
            r#"colloquy_http_requests_total{route="get_session",status="200"}"#,
            1.0,
        ),
        (
            r#"colloquy_http_requests_total{route="unmatched",status="404"}"#,
            2.0,
        ),
        (
            r#"colloquy_http_requests_total{route="chat_stream_post",status="200"}"#,
            1.0,
        ),
        (
            r#"colloquy_http_request_duration_seconds_count{route="get_session",status="200"}"#,
            1.0,
        ),
        (
            r#"colloquy_http_request_duration_seconds_bucket{route="get_session",status="200",le="+Inf"}"#,
            1.0,
        ),
        (
            r#"colloquy_rate_limited_total{policy="sessions-per-ip"}"#,
            1.0,
        ),
        (
            r#"colloquy_model_answer_duration_seconds_count{finish_reason="stop"}"#,
            1.0,
        ),
        ("colloquy_model_time_to_first_chunk_seconds_count", 1.0),
        (
            r#"colloquy_store_operation_duration_seconds_count{store="memory",operation="create_session"}"#,
            1.0,
        ),
        ("colloquy_generations_in_flight", 0.0),
    ] {
        assert_eq!(value(&body, series), Some(expected), "{series} in\n{body}");
    }
    // The answer took at least its two chunk delays.
    let latency = value(
        &body,
        r#"colloquy_model_answer_duration_seconds_sum{finish_reason="stop"}"#,
    )
    .expect("latency sum");
    assert!(latency >= 0.2, "{latency}");
    assert!(!body.contains("path-42"), "raw paths never become labels");
    assert!(body.contains("# TYPE colloquy_http_request_duration_seconds histogram"));

    let other = scraper
        .call(Method::GET, "/", &[], full(Bytes::new()))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let scrape = scraper.get("/metrics").await;
    assert_eq!(
        scrape.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
}

/// The metered store is core's decorator with the metrics' observer: it forwards
/// every store method, the provided ones included (answer ids keep their slot on a
/// Redis Cluster).
#[tokio::test]
async fn the_metered_store_forwards_every_store_method() {
    let metrics = Metrics::new();
    colloquy_conformance::decorators::assert_forwards_every_method(|inner| {
        Arc::new(ObservedStore::new(
            inner,
            metrics.store_observer("sentinel"),
        ))
    })
    .await;
    let text = metrics.render(0);
    assert!(
        text.contains(r#"colloquy_store_operation_duration_seconds_count{store="sentinel",operation="begin_turn"} 2"#),
        "every forwarded call is timed:\n{text}"
    );
}
