//! Transport-level behaviour: routing errors, body rules, CORS, request ids, health
//! checks, failing stores, panics, HTTP/2.

use std::convert::Infallible;

use bytes::Bytes;
use colloquy_http::HttpConfig;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;

use crate::support::client::full;
use crate::support::doubles::{Fault, FaultyStore, SECRET};
use crate::support::{Client, Setup};

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let server = Setup::default().start().await;
    let c = &server.client;
    for path in [
        "/index.html",
        "/api/chats/",
        "/api/chats/nope/",
        "/api/chats/messages/chat/stream/x/cancel/more/",
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.error_code(), "not_found", "{path}");
    }
    let r = c
        .call(Method::PUT, "/api/chats/sessions/", &[], full(""))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.error_code(), "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST, DELETE, OPTIONS"));
    let r = c.get("/api/chats/messages/chat/").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
}

#[tokio::test]
async fn bodies_must_be_json_within_the_limit() {
    let server = Setup {
        config: HttpConfig {
            max_body_bytes: 256,
            ..HttpConfig::default()
        },
        ..Setup::default()
    }
    .start()
    .await;
    let c = &server.client;
    let big = json!({"metadata": {"pad": "x".repeat(300)}}).to_string();
    let r = c
        .call(
            Method::POST,
            "/api/chats/sessions/",
            &[("content-type", "application/json")],
            full(big.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_code(), "payload_too_large");

    // Without Content-Length (chunked), the limit is enforced while reading.
    let chunks = (0..10).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b' '; 100]))));
    let streamed = StreamBody::new(futures::stream::iter(chunks)).boxed_unsync();
    let r = c
        .call(
            Method::POST,
            "/api/chats/sessions/",
            &[("content-type", "application/json")],
            streamed,
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    let r = c
        .call(
            Method::POST,
            "/api/chats/sessions/",
            &[("content-type", "text/plain")],
            full("{}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.error_code(), "unsupported_media_type");
    let r = c
        .call(Method::POST, "/api/chats/sessions/", &[], full("{}"))
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "a body needs a content type"
    );

    for bad in ["{", "{\"a\":}", "nul", "\u{0}"] {
        let r = c
            .call(
                Method::POST,
                "/api/chats/messages/",
                &[("content-type", "application/json; charset=utf-8")],
                full(bad),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(r.error_code(), "invalid_json", "{bad:?}");
    }
    // The connection is still usable after the refusals.
    assert_eq!(c.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn cors_for_configured_origins() {
    let server = Setup {
        config: HttpConfig {
            cors_origins: vec!["https://landing.example".to_owned()],
            ..HttpConfig::default()
        },
        ..Setup::default()
    }
    .start()
    .await;
    let c = &server.client;
    let preflight = c
        .call(
            Method::OPTIONS,
            "/api/chats/messages/chat/stream/",
            &[
                ("origin", "https://landing.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
            full(""),
        )
        .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://landing.example")
    );
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET, POST, OPTIONS")
    );
    assert!(preflight
        .header("access-control-allow-headers")
        .expect("allow-headers")
        .contains("content-type"));
    assert!(preflight.header("access-control-max-age").is_some());
    assert_eq!(preflight.header("allow"), Some("GET, POST, OPTIONS"));

    let r = c
        .call(
            Method::GET,
            "/api/chats/sessions/",
            &[("origin", "https://landing.example")],
            full(""),
        )
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://landing.example")
    );
    assert_eq!(r.header("vary"), Some("origin"));
    assert!(r.header("access-control-expose-headers").is_some());

    let evil = c
        .call(
            Method::OPTIONS,
            "/api/chats/sessions/",
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
            full(""),
        )
        .await;
    assert_eq!(evil.status, StatusCode::NO_CONTENT);
    assert!(evil.header("access-control-allow-origin").is_none());
    assert!(evil.header("access-control-allow-methods").is_none());

    let unknown = c
        .call(
            Method::OPTIONS,
            "/nope",
            &[("origin", "https://landing.example")],
            full(""),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cors_wildcard() {
    let server = Setup {
        config: HttpConfig {
            cors_origins: vec!["*".to_owned()],
            ..HttpConfig::default()
        },
        ..Setup::default()
    }
    .start()
    .await;
    let r = server
        .client
        .call(
            Method::GET,
            "/healthz",
            &[("origin", "https://a.example")],
            full(""),
        )
        .await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let server = Setup::default().start().await;
    let c = &server.client;
    let r = c
        .call(
            Method::GET,
            "/healthz",
            &[("x-request-id", "trace-123")],
            full(""),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("trace-123"));
    let r = c
        .call(
            Method::GET,
            "/nope",
            &[("x-request-id", "bad id with spaces")],
            full(""),
        )
        .await;
    let generated = r.header("x-request-id").expect("generated id");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
}

#[tokio::test]
async fn health_and_readiness() {
    let server = Setup::default().start().await;
    let c = &server.client;
    let r = c.get("/healthz").await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let r = c.get("/readyz/").await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::OK, json!({"status": "ready"}))
    );
    let head = c.call(Method::HEAD, "/healthz", &[], full("")).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn a_store_that_is_down_is_503_with_retry_after_everywhere() {
    let server = Setup::default()
        .store(FaultyStore(Fault::Unavailable))
        .start()
        .await;
    let c = &server.client;
    assert_eq!(
        c.get("/healthz").await.status,
        StatusCode::OK,
        "the process serves"
    );
    let id = "00000000-0000-0000-0000-000000000001";
    let body = json!({"session_id": "s", "message": "hi"});
    let replies = vec![
        c.get("/readyz").await,
        c.post("/api/chats/sessions/", &json!({})).await,
        c.get("/api/chats/sessions/").await,
        c.get("/api/chats/sessions/s/").await,
        c.patch("/api/chats/sessions/s/", &json!({"is_active": true}))
            .await,
        c.delete("/api/chats/sessions/s/").await,
        c.get("/api/chats/messages/?session_id=s").await,
        c.post("/api/chats/messages/", &body).await,
        c.get(&format!("/api/chats/messages/{id}/")).await,
        c.delete(&format!("/api/chats/messages/{id}/")).await,
        c.post("/api/chats/messages/chat/", &body).await,
        c.post("/api/chats/messages/chat/stream/", &body).await,
        c.get("/api/chats/messages/chat/stream/?session_id=s&message=hi")
            .await,
    ];
    for r in replies {
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.error_code(), "store_unavailable");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
}

#[tokio::test]
async fn internal_errors_are_generic_500s() {
    let server = Setup::default()
        .store(FaultyStore(Fault::Backend))
        .start()
        .await;
    let r = server.client.get("/api/chats/sessions/").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.error_code(), "internal_error");
    assert_eq!(r.json()["error"], "internal server error");
    assert!(!String::from_utf8_lossy(&r.body).contains(SECRET));
    assert!(
        r.header("x-request-id").is_some(),
        "the id to find the log line"
    );
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_server_lives_on() {
    let server = Setup::default()
        .store(FaultyStore(Fault::Panic))
        .start()
        .await;
    let c = &server.client;
    for _ in 0..2 {
        let r = c.get("/api/chats/sessions/").await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.error_code(), "internal_error");
        assert!(!String::from_utf8_lossy(&r.body).contains(SECRET));
    }
    assert_eq!(c.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn http2_with_prior_knowledge_works() {
    let server = Setup::default().start().await;
    let h2 = Client::http2(server.addr);
    let response = h2.send(Method::GET, "/healthz", &[], full("")).await;
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let s = h2.create_session(&json!({"session_id": "h2"})).await;
    assert_eq!(s["session_id"], "h2");
    let stream = h2
        .send(
            Method::POST,
            "/api/chats/messages/chat/stream/",
            &[("content-type", "application/json")],
            full(json!({"session_id": "h2", "message": "over h2"}).to_string()),
        )
        .await;
    assert_eq!(stream.version(), http::Version::HTTP_2);
    let events = crate::support::sse::SseReader::new(stream.into_body())
        .rest()
        .await;
    let text: String = events
        .iter()
        .map(|e| e.json()["chunk"].as_str().expect("chunk").to_owned())
        .collect();
    assert_eq!(text, "Echo: over h2");
}
