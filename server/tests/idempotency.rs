//! `Idempotency-Key` on the default store (SQLite) through the `colloquy` binary: a
//! retry after a restart gets the first result and writes nothing twice.

#![allow(missing_docs)]

mod common;

use http::{Method, StatusCode};
use serde_json::json;

use common::{all_messages, call_with, client, must, temp_dir, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_restart_returns_the_first_result_and_stores_nothing_twice() {
    let dir = temp_dir("idempotency-restart");
    // No --store: the default is ./colloquy.db in the working directory.
    let server = Server::start(dir.path(), &[]);
    let client = client();
    let created = must(
        &client,
        Method::POST,
        &format!("{}/api/chats/sessions/", server.base),
        Some(json!({"session_id": "retried"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let chat = |base: String| {
        let client = client.clone();
        async move {
            call_with(
                &client,
                Method::POST,
                &format!("{base}/api/chats/messages/chat/"),
                &[("idempotency-key", "retry-after-restart")],
                Some(json!({"session_id": "retried", "message": "only once"})),
            )
            .await
            .expect("an answer")
        }
    };
    let first = chat(server.base.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let before = all_messages(&client, &server.base, "retried").await;
    assert_eq!(before.len(), 2, "the question and the answer");
    server.stop();

    let server = Server::start(dir.path(), &[]);
    let retry = chat(server.base.clone()).await;
    assert_eq!(retry.status, first.status, "{}", retry.text);
    for id in ["message_id", "response_id"] {
        assert!(first.body[id].is_string(), "{id} in {}", first.text);
        assert_eq!(
            retry.body[id], first.body[id],
            "the retry gets the first {id}"
        );
    }
    assert_eq!(retry.body, first.body, "the first result, whole");
    let after = all_messages(&client, &server.base, "retried").await;
    assert_eq!(after, before, "the retry stored no second message");
    server.stop();
}
