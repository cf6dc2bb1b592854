//! `Idempotency-Key` on every POST: a retry gets the first result, never a second
//! write; another body with the same key is 422; concurrent retries write once.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::client::full;
use crate::support::doubles::GatedModel;
use crate::support::sse::SseReader;
use crate::support::{Client, Reply, Setup};

async fn post(c: &Client, path: &str, key: &str, body: &Value) -> Reply {
    c.call(
        Method::POST,
        path,
        &[
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ],
        full(body.to_string()),
    )
    .await
}

async fn count(c: &Client, session: &str) -> usize {
    let list = c
        .get(&format!("/api/chats/messages/?session_id={session}"))
        .await
        .json();
    list.as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_retry_gets_the_first_result_and_writes_nothing() {
    let server = Setup::default().start().await;
    let c = &server.client;
    let first = post(
        c,
        "/api/chats/sessions/",
        "k-session",
        &json!({"external_user_id": "v"}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let retry = post(
        c,
        "/api/chats/sessions/",
        "k-session",
        &json!({"external_user_id": "v"}),
    )
    .await;
    assert_eq!(retry.status, StatusCode::CREATED, "same status");
    assert_eq!(retry.json(), first.json(), "same session, same ids");
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.header("idempotent-replayed"), None);
    let sessions = c.get("/api/chats/sessions/").await.json();
    assert_eq!(
        sessions.as_array().map(Vec::len),
        Some(1),
        "one session created"
    );

    c.create_session(&json!({"session_id": "s"})).await;
    c.create_session(&json!({"session_id": "t"})).await;
    let body = json!({"session_id": "s", "message": "hello"});
    let m1 = post(c, "/api/chats/messages/", "k-msg", &body).await;
    let m2 = post(c, "/api/chats/messages/", "k-msg", &body).await;
    assert_eq!(
        (m1.status, m2.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(m1.json()["id"], m2.json()["id"]);
    assert_eq!(count(c, "s").await, 1);
    // The same key in another session is another request.
    let other = post(
        c,
        "/api/chats/messages/",
        "k-msg",
        &json!({"session_id": "t", "message": "hello"}),
    )
    .await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_ne!(other.json()["id"], m1.json()["id"]);

    let chat = json!({"session_id": "s", "message": "question"});
    let a1 = post(c, "/api/chats/messages/chat/", "k-chat", &chat).await;
    let a2 = post(c, "/api/chats/messages/chat/", "k-chat", &chat).await;
    assert_eq!(a1.status, StatusCode::OK);
    assert_eq!(a1.json(), a2.json(), "same response_id and message_id");
    assert_eq!(count(c, "s").await, 3, "one question, one answer");
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    post(
        c,
        "/api/chats/messages/",
        "k",
        &json!({"session_id": "s", "message": "a"}),
    )
    .await;
    let other = post(
        c,
        "/api/chats/messages/",
        "k",
        &json!({"session_id": "s", "message": "b"}),
    )
    .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.error_code(), "idempotency_mismatch");
    // Key order and spacing do not make another body.
    let reordered = c
        .call(
            Method::POST,
            "/api/chats/messages/",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "k"),
            ],
            full(r#"{ "message": "a",   "session_id": "s" }"#),
        )
        .await;
    assert_eq!(reordered.status, StatusCode::CREATED);
    assert_eq!(count(c, "s").await, 1);
    let bad_key = post(
        c,
        "/api/chats/messages/",
        &"x".repeat(256),
        &json!({"session_id": "s", "message": "a"}),
    )
    .await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_key.json()["field"], "Idempotency-Key");
}

#[tokio::test]
async fn concurrent_requests_with_one_key_write_once() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let body = json!({"session_id": "s", "message": "once"});
    let replies = futures::future::join_all(
        (0..16).map(|_| post(c, "/api/chats/messages/", "k-race", &body)),
    )
    .await;
    let ids: std::collections::HashSet<String> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            r.json()["id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every reply names the one message");
    assert_eq!(count(c, "s").await, 1);
}

#[tokio::test]
async fn a_failed_request_frees_its_key() {
    let server = Setup::default().start().await;
    let c = &server.client;
    let body = json!({"session_id": "later", "message": "hi"});
    let missing = post(c, "/api/chats/messages/chat/", "k-fail", &body).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    c.create_session(&json!({"session_id": "later"})).await;
    let retry = post(c, "/api/chats/messages/chat/", "k-fail", &body).await;
    assert_eq!(retry.status, StatusCode::OK, "the retry ran again");
}

#[tokio::test]
async fn a_retried_stream_attaches_to_the_same_answer_during_and_after_it() {
    let (model, gate) = GatedModel::new();
    let server = Setup::default().model(model).start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let body = json!({"session_id": "s", "message": "stream me"}).to_string();
    let open = || {
        c.send(
            Method::POST,
            "/api/chats/messages/chat/stream/",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "k-stream"),
            ],
            full(body.clone()),
        )
    };
    let deadline = Duration::from_secs(10);
    let mut first = SseReader::new(open().await.into_body());
    let first_event = tokio::time::timeout(deadline, first.next_event())
        .await
        .expect("in time")
        .expect("event");
    let during = open().await;
    assert_eq!(
        during
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let mut during = SseReader::new(during.into_body());
    gate.open();
    let original = tokio::time::timeout(deadline, first.rest())
        .await
        .expect("in time");
    let replayed = tokio::time::timeout(deadline, during.rest())
        .await
        .expect("in time");
    assert_eq!(
        replayed[0], first_event,
        "the retry starts at the same answer's first event"
    );
    assert_eq!(replayed[1..], original[..], "and gets every event once");
    let mut after = SseReader::new(open().await.into_body());
    let after = tokio::time::timeout(deadline, after.rest())
        .await
        .expect("in time");
    let text: String = after
        .iter()
        .map(|e| e.json()["chunk"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(text, "Echo: stream me");
    assert_eq!(
        after[0].json()["response_id"],
        first_event.json()["response_id"]
    );
    assert_eq!(count(c, "s").await, 2, "one question, one answer");
}
