//! `POST /api/chats/messages/chat/`: the answer, what is stored, model failures.

use http::StatusCode;
use serde_json::json;

use crate::support::doubles::{FailingModel, Failure};
use crate::support::Setup;

#[tokio::test]
async fn chat_answers_and_stores_both_messages() {
    let server = Setup::default().start().await;
    let c = &server.client;
    let s = c.create_session(&json!({"session_id": "c"})).await;
    let r = c
        .post(
            "/api/chats/messages/chat/",
            &json!({"session_id": s["id"], "message": "hello there", "metadata": {"src": "landing"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let reply = r.json();
    assert_eq!(reply["response"], "Echo: hello there");
    assert_eq!(
        reply["session_id"], "c",
        "the session's session_id, even when called by UUID"
    );
    let list = c.get("/api/chats/messages/?session_id=c").await.json();
    assert_eq!(list[0]["id"], reply["message_id"]);
    assert_eq!(list[0]["role"], "user");
    assert_eq!(list[0]["metadata"], json!({"src": "landing"}));
    assert_eq!(list[1]["id"], reply["response_id"]);
    assert_eq!(list[1]["role"], "assistant");
    assert_eq!(list[1]["message"], "Echo: hello there");
    assert_eq!(list[1]["metadata"]["finish_reason"], "stop");
}

#[tokio::test]
async fn chat_errors_before_the_model() {
    let server = Setup::default().start().await;
    let c = &server.client;
    let missing = c
        .post("/api/chats/messages/chat/", &json!({"message": "hi"}))
        .await;
    assert_eq!(missing.error_code(), "missing_field");
    let unknown = c
        .post(
            "/api/chats/messages/chat/",
            &json!({"session_id": "x", "message": "hi"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "session_not_found");
}

#[tokio::test]
async fn model_failures_are_502_and_504_and_keep_the_user_message() {
    for (failure, status, code) in [
        (
            Failure::Unavailable,
            StatusCode::BAD_GATEWAY,
            "llm_unavailable",
        ),
        (Failure::Timeout, StatusCode::GATEWAY_TIMEOUT, "llm_timeout"),
    ] {
        let server = Setup::default().model(FailingModel(failure)).start().await;
        let c = &server.client;
        c.create_session(&json!({"session_id": "f"})).await;
        let r = c
            .post(
                "/api/chats/messages/chat/",
                &json!({"session_id": "f", "message": "hi"}),
            )
            .await;
        assert_eq!(r.status, status);
        assert_eq!(r.error_code(), code);
        let list = c.get("/api/chats/messages/?session_id=f").await.json();
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
        assert_eq!(list[0]["role"], "user");
    }
}
