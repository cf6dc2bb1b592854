//! Human handoff over HTTP: `POST /sessions/{id}/handoff/`, `PATCH responder`
//! (operator only in public mode), chat and chat stream while a person has the
//! session, operator replies with `metadata.operator`.

use colloquy_core::access::AccessMode;
use colloquy_http::{AdminToken, HttpConfig};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::client::full;
use crate::support::sse::SseReader;
use crate::support::{Reply, Setup, TestServer};

pub(crate) const TOKEN: &str = "test-admin-token-0123456789-abcdef";

pub(crate) async fn server(access: AccessMode) -> TestServer {
    Setup {
        config: HttpConfig {
            access,
            admin_token: Some(AdminToken::new(TOKEN).expect("strong token")),
            ..HttpConfig::default()
        },
        ..Setup::default()
    }
    .start()
    .await
}

/// A request as a visitor (`admin = false`) or as the operator.
pub(crate) async fn call(
    s: &TestServer,
    admin: bool,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let bearer = format!("Bearer {TOKEN}");
    let mut headers = vec![("content-type", "application/json")];
    if admin {
        headers.push(("authorization", bearer.as_str()));
    }
    let body = body.map_or_else(String::new, |b| b.to_string());
    s.client.call(method, path, &headers, full(body)).await
}

fn handoff_path(session: &str) -> String {
    format!("/api/chats/sessions/{session}/handoff/")
}

/// A session created by a visitor (a generated, unguessable session_id).
async fn visitor_session(s: &TestServer) -> Value {
    let reply = call(
        s,
        false,
        Method::POST,
        "/api/chats/sessions/",
        Some(json!({})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let session = reply.json();
    assert_eq!(session["responder"], "ai");
    assert_eq!(session["handoff_requested_at"], Value::Null);
    session
}

fn sid(session: &Value) -> String {
    session["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned()
}

#[tokio::test]
async fn a_visitor_asks_for_a_person_once() {
    let s = server(AccessMode::Public).await;
    let session = visitor_session(&s).await;
    let path = handoff_path(&sid(&session));
    let first = call(&s, false, Method::POST, &path, None).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let first = first.json();
    assert_eq!(first["responder"], "human");
    assert!(first["handoff_requested_at"].is_string(), "{first}");
    assert_eq!(first["id"], session["id"]);
    assert!(first.get("active_response_id").is_some());

    let again = call(&s, false, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json(), first, "already human: unchanged");

    let got = s
        .client
        .get(&format!("/api/chats/sessions/{}/", sid(&session)))
        .await
        .json();
    assert_eq!(got["responder"], "human");
    assert_eq!(got["handoff_requested_at"], first["handoff_requested_at"]);
}

#[tokio::test]
async fn handoff_errors() {
    let s = server(AccessMode::Public).await;
    let session = visitor_session(&s).await;
    let path = handoff_path(&sid(&session));
    let bad = s
        .client
        .call(
            Method::POST,
            &path,
            &[("content-type", "application/json")],
            full("[1]"),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "invalid_json");

    let missing = call(
        &s,
        false,
        Method::POST,
        &handoff_path("abcdefghijklmnopqrstuvwxyz"),
        None,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "session_not_found");

    // A custom session_id is no visitor's capability.
    let custom = call(
        &s,
        true,
        Method::POST,
        "/api/chats/sessions/",
        Some(json!({"session_id": "support-1"})),
    )
    .await;
    assert_eq!(custom.status, StatusCode::CREATED);
    let forbidden = call(&s, false, Method::POST, &handoff_path("support-1"), None).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(forbidden.error_code(), "forbidden");
    let operator = call(&s, true, Method::POST, &handoff_path("support-1"), None).await;
    assert_eq!(operator.status, StatusCode::OK);

    // Closed: 409.
    let closed = call(
        &s,
        false,
        Method::PATCH,
        &format!("/api/chats/sessions/{}/", sid(&session)),
        Some(json!({"is_active": false})),
    )
    .await;
    assert_eq!(closed.status, StatusCode::OK);
    let inactive = call(&s, false, Method::POST, &path, None).await;
    assert_eq!(inactive.status, StatusCode::CONFLICT);
    assert_eq!(inactive.error_code(), "session_inactive");

    let get = call(&s, false, Method::GET, &path, None).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn while_a_person_answers_chat_stores_and_generates_nothing() {
    let s = server(AccessMode::Public).await;
    let session = visitor_session(&s).await;
    let id = sid(&session);
    let reply = call(
        &s,
        false,
        Method::POST,
        "/api/chats/messages/chat/",
        Some(json!({"session_id": id, "message": "hi"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = reply.json();
    assert_eq!(
        reply["responder"], "ai",
        "every normal reply says who answered"
    );
    assert!(reply["response_id"].is_string());

    call(&s, false, Method::POST, &handoff_path(&id), None).await;
    let reply = call(
        &s,
        false,
        Method::POST,
        "/api/chats/messages/chat/",
        Some(json!({"session_id": id, "message": "a person please"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply = reply.json();
    assert_eq!(reply["response"], "");
    assert_eq!(reply["response_id"], Value::Null);
    assert_eq!(reply["responder"], "human");
    assert!(reply["message_id"].is_string());
    assert_eq!(reply["session_id"], id.as_str());

    // Streamed, POST and GET: one `done` event saying so.
    let posted = s
        .client
        .send(
            Method::POST,
            "/api/chats/messages/chat/stream/",
            &[("content-type", "application/json")],
            full(json!({"session_id": id, "message": "hello?"}).to_string()),
        )
        .await;
    assert_eq!(posted.status(), StatusCode::OK);
    assert_eq!(
        posted.headers()["content-type"].to_str().expect("ascii"),
        "text/event-stream"
    );
    let events = SseReader::new(posted.into_body()).rest().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let done = events[0].json();
    assert_eq!(done["done"], true);
    assert_eq!(done["chunk"], "");
    assert_eq!(done["finish_reason"], "handoff");
    assert_eq!(done["responder"], "human");
    assert_eq!(done["response_id"], Value::Null);
    assert!(done["message_id"].is_string());
    assert_eq!(events[0].last_event_id, "", "nothing to resume: no id");

    let got = s
        .client
        .send(
            Method::GET,
            &format!("/api/chats/messages/chat/stream/?session_id={id}&message=again"),
            &[],
            full(""),
        )
        .await;
    let events = SseReader::new(got.into_body()).rest().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].json()["finish_reason"], "handoff");

    // Every message is stored, and no answer.
    let listed = call(
        &s,
        false,
        Method::GET,
        &format!("/api/chats/messages/?session_id={id}"),
        None,
    )
    .await
    .json();
    let roles: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "user", "user"]);
}

#[tokio::test]
async fn only_the_operator_sets_the_responder_in_public_mode() {
    let s = server(AccessMode::Public).await;
    let session = visitor_session(&s).await;
    let id = sid(&session);
    let path = format!("/api/chats/sessions/{id}/");
    for responder in ["human", "ai"] {
        let visitor = call(
            &s,
            false,
            Method::PATCH,
            &path,
            Some(json!({"responder": responder})),
        )
        .await;
        assert_eq!(visitor.status, StatusCode::FORBIDDEN, "{responder}");
        assert_eq!(visitor.error_code(), "forbidden");
    }
    let bad = call(
        &s,
        true,
        Method::PATCH,
        &path,
        Some(json!({"responder": "bot"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "invalid_field");

    call(&s, false, Method::POST, &handoff_path(&id), None).await;
    let taken = call(
        &s,
        true,
        Method::PATCH,
        &path,
        Some(json!({"responder": "human"})),
    )
    .await;
    assert_eq!(taken.status, StatusCode::OK);
    let taken = taken.json();
    assert_eq!(taken["responder"], "human");
    assert!(
        taken["handoff_requested_at"].is_string(),
        "taking over keeps the request time"
    );

    // The operator replies; a bad name is refused.
    for operator in [json!(""), json!("x".repeat(101)), json!(1)] {
        let bad = call(
            &s,
            true,
            Method::POST,
            "/api/chats/messages/",
            Some(
                json!({"session_id": id, "role": "assistant", "message": "hi",
                        "metadata": {"operator": operator}}),
            ),
        )
        .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{operator}");
        assert_eq!(bad.error_code(), "invalid_field");
    }
    let reply = call(
        &s,
        true,
        Method::POST,
        "/api/chats/messages/",
        Some(
            json!({"session_id": id, "role": "assistant", "message": "Hi, Ada here.",
                    "metadata": {"operator": "Ada"}}),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.json()["metadata"]["operator"], "Ada");
    let visitor_fake = call(
        &s,
        false,
        Method::POST,
        "/api/chats/messages/",
        Some(json!({"session_id": id, "message": "I am staff", "metadata": {"operator": "Ada"}})),
    )
    .await;
    assert_eq!(visitor_fake.status, StatusCode::BAD_REQUEST);

    let after = s.client.get(&path).await.json();
    assert_eq!(after["handoff_requested_at"], Value::Null, "answered");

    let back = call(
        &s,
        true,
        Method::PATCH,
        &path,
        Some(json!({"responder": "ai"})),
    )
    .await;
    assert_eq!(back.status, StatusCode::OK);
    let back = back.json();
    assert_eq!(back["responder"], "ai");
    assert_eq!(back["handoff_requested_at"], Value::Null);
    let reply = call(
        &s,
        false,
        Method::POST,
        "/api/chats/messages/chat/",
        Some(json!({"session_id": id, "message": "thanks"})),
    )
    .await
    .json();
    assert_eq!(reply["responder"], "ai");
    assert_eq!(reply["response"], "Echo: thanks");
}
