//! The custom store example: [`NaiveStore`] passes the whole store contract suite
//! (one macro call), and the `custom-store` binary serves the API over it.

#![allow(missing_docs, unreachable_pub)]

mod common;

use std::sync::Arc;

use colloquy_conformance::{store_contract_tests, TestStore};
use colloquy_core::ManualClock;
use colloquy_examples::NaiveStore;
use http::StatusCode;
use serde_json::json;

/// A fresh store for each contract, on the clock the suite moves.
async fn store() -> Option<TestStore> {
    let clock = Arc::new(ManualClock::new());
    Some(TestStore::new(
        Arc::new(NaiveStore::new(clock.clone())),
        clock,
    ))
}

store_contract_tests!(store);

#[cfg(unix)]
#[tokio::test]
async fn the_custom_store_binary_serves_the_api() {
    let app = common::Example::start(env!("CARGO_BIN_EXE_custom-store")).await;
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    let chat = app
        .post_json(
            "/api/chats/messages/chat/",
            &json!({"session_id": "custom", "message": "stored by my store"}),
        )
        .await;
    assert_eq!(
        chat.status,
        StatusCode::NOT_FOUND,
        "no session yet: {}",
        chat.text
    );
    let created = app
        .post_json("/api/chats/sessions/", &json!({"session_id": "custom"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let chat = app
        .post_json(
            "/api/chats/messages/chat/",
            &json!({"session_id": "custom", "message": "stored by my store"}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.text);
    assert_eq!(chat.json()["response"], "Echo: stored by my store");
    let messages = app.get("/api/chats/messages/?session_id=custom").await;
    assert_eq!(messages.status, StatusCode::OK);
    assert_eq!(messages.json().as_array().map(Vec::len), Some(2));
    app.stop().await;
}
