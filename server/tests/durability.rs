//! Durability of the default store (SQLite) through the `colloquy` binary: a graceful
//! restart keeps every message (same ids, timestamps, order), `kill -9` under load
//! from several clients loses no write that was answered 2xx, and the HTTP checks
//! every durable store passes (`common::workflow`).

#![allow(missing_docs)]

mod common;

use std::path::Path;

use http::{Method, StatusCode};
use serde_json::json;

use common::workflow::{http_workflow, kill_9_under_load, WORKFLOW_ARGS};
use common::{all_messages, client, must, temp_dir, Server};

/// `PRAGMA integrity_check` on a closed database file.
fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("the database opens");
    conn.query_row("PRAGMA integrity_check", [], |row| row.get::<_, String>(0))
        .expect("integrity_check runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_keeps_every_message_in_order() {
    let dir = temp_dir("restart");
    // No --store: the default is ./colloquy.db in the working directory.
    let server = Server::start(dir.path(), &[]);
    let client = client();
    let created = must(
        &client,
        Method::POST,
        &format!("{}/api/chats/sessions/", server.base),
        Some(json!({"session_id": "restart", "metadata": {"k": [1, "two"]}})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    for i in 0..25 {
        let answer = must(
            &client,
            Method::POST,
            &format!("{}/api/chats/messages/", server.base),
            Some(
                json!({"session_id": "restart", "message": format!("message {i}"),
                        "role": if i % 2 == 0 { "user" } else { "assistant" }}),
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    }
    let chat = must(
        &client,
        Method::POST,
        &format!("{}/api/chats/messages/chat/", server.base),
        Some(json!({"session_id": "restart", "message": "last words"})),
    )
    .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.text);
    let before = all_messages(&client, &server.base, "restart").await;
    assert_eq!(before.len(), 27);
    assert_eq!(before[26]["id"], chat.body["response_id"]);
    server.stop();
    let db = dir.path().join("colloquy.db");
    assert!(db.is_file(), "the default store is ./colloquy.db");
    assert!(
        !dir.path().join("colloquy.db-wal").exists(),
        "a graceful stop checkpoints and closes the database"
    );

    let server = Server::start(dir.path(), &[]);
    let after = all_messages(&client, &server.base, "restart").await;
    assert_eq!(after, before, "same ids, timestamps, metadata and order");
    let session = must(
        &client,
        Method::GET,
        &format!("{}/api/chats/sessions/restart/", server.base),
        None,
    )
    .await;
    assert_eq!(
        session.body, created.body,
        "the session itself is unchanged"
    );
    server.stop();
    assert_eq!(integrity(&db), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_write() {
    let dir = temp_dir("crash");
    let db = dir.path().join("crash.db");
    let store = format!("sqlite:{}", db.display());
    let args = ["--store", store.as_str()];
    let server = Server::start(dir.path(), &args);
    let (crash, server) =
        kill_9_under_load(&client(), server, || Server::start(dir.path(), &args)).await;
    eprintln!("sqlite: kill -9 with {crash:?} acknowledged; all of it stored");
    server.stop();
    assert_eq!(integrity(&db), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_workflow_on_sqlite() {
    let dir = temp_dir("sqlite-workflow");
    let server = Server::start(dir.path(), &WORKFLOW_ARGS);
    http_workflow(&client(), &server.base).await;
    server.stop();
    assert_eq!(integrity(&dir.path().join("colloquy.db")), "ok");
}
