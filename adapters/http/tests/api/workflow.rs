//! The seed's whole workflow, as a landing page would run it.

use http::{Method, StatusCode};
use serde_json::json;

use crate::support::client::full;
use crate::support::sse::SseReader;
use crate::support::Setup;

#[tokio::test]
async fn create_post_chat_stream_list_patch_delete() {
    let server = Setup::default().start().await;
    let c = &server.client;

    let s = c
        .create_session(&json!({"external_user_id": "visitor-1", "metadata": {"page": "/"}}))
        .await;
    let sid = s["session_id"].as_str().expect("sid").to_owned();

    let sys = c
        .post(
            "/api/chats/messages/",
            &json!({"session_id": sid, "message": "You are helpful.", "role": "system"}),
        )
        .await;
    assert_eq!(sys.status, StatusCode::CREATED);

    let chat = c
        .post(
            "/api/chats/messages/chat/",
            &json!({"session_id": sid, "message": "What is Colloquy?"}),
        )
        .await
        .json();
    assert_eq!(chat["response"], "Echo: What is Colloquy?");

    let response = c
        .send(
            Method::POST,
            "/api/chats/messages/chat/stream/",
            &[("content-type", "application/json")],
            full(json!({"session_id": sid, "message": "Tell me more"}).to_string()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = SseReader::new(response.into_body()).rest().await;
    let text: String = events
        .iter()
        .map(|e| e.json()["chunk"].as_str().expect("chunk").to_owned())
        .collect();
    assert_eq!(text, "Echo: Tell me more");
    let last = events.last().expect("events").json();
    assert_eq!(last["done"], true);

    let list = c
        .get(&format!("/api/chats/messages/?session_id={sid}"))
        .await
        .json();
    let roles: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
    assert_eq!(list[4]["id"], last["response_id"]);
    assert_eq!(list[4]["message"], "Echo: Tell me more");

    let sessions = c
        .get("/api/chats/sessions/?external_user_id=visitor-1")
        .await
        .json();
    assert_eq!(sessions.as_array().map(Vec::len), Some(1));

    let patched = c
        .patch(
            &format!("/api/chats/sessions/{sid}/"),
            &json!({"is_active": false}),
        )
        .await;
    assert_eq!(patched.json()["is_active"], false);

    assert_eq!(
        c.delete(&format!("/api/chats/sessions/{sid}/"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let gone = c
        .get(&format!("/api/chats/messages/?session_id={sid}"))
        .await;
    assert_eq!(gone.error_code(), "session_not_found");
}
