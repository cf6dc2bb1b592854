//! Durability of the default store (SQLite) through the `colloquy` binary: a graceful
//! restart keeps every message (same ids, timestamps, order), and `kill -9` under
//! load from several clients loses no write that was answered 2xx.

#![allow(missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use common::{all_messages, call, client, must, Server, TempDir};

/// `PRAGMA integrity_check` on a closed database file.
fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("the database opens");
    conn.query_row("PRAGMA integrity_check", [], |row| row.get::<_, String>(0))
        .expect("integrity_check runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_keeps_every_message_in_order() {
    let dir = TempDir::new("restart");
    // No --store: the default is ./colloquy.db in the working directory.
    let server = Server::start(&dir.0, &[]);
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
    let db = dir.0.join("colloquy.db");
    assert!(db.is_file(), "the default store is ./colloquy.db");
    assert!(
        !dir.0.join("colloquy.db-wal").exists(),
        "a graceful stop checkpoints and closes the database"
    );

    let server = Server::start(&dir.0, &[]);
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

/// What one client got acknowledged: session_id → session uuid and the ids of its
/// messages answered 201, in the order written.
type Acked = BTreeMap<String, (String, Vec<String>)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_write() {
    const CLIENTS: usize = 8;
    const KILL_AFTER: usize = 400;
    const MESSAGES_PER_SESSION: usize = 15;
    let dir = TempDir::new("crash");
    let db = dir.0.join("crash.db");
    let store = format!("sqlite:{}", db.display());
    let server = Server::start(&dir.0, &["--store", &store]);
    let client = client();
    // Each client creates sessions and writes messages to them until the server dies,
    // recording every session and message answered 201.
    let acked = Arc::new(AtomicUsize::new(0));
    let (enough_tx, enough_rx) = tokio::sync::oneshot::channel::<()>();
    let enough_tx = Arc::new(std::sync::Mutex::new(Some(enough_tx)));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, base, acked, enough_tx) = (
            client.clone(),
            server.base.clone(),
            acked.clone(),
            enough_tx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine = Acked::new();
            let ack = || {
                if acked.fetch_add(1, Ordering::SeqCst) + 1 >= KILL_AFTER {
                    if let Some(tx) = enough_tx.lock().map(|mut g| g.take()).ok().flatten() {
                        let _ = tx.send(());
                    }
                }
            };
            'sessions: for s in 0.. {
                let session_id = format!("client-{c}-{s}");
                let answer = call(
                    &client,
                    Method::POST,
                    &format!("{base}/api/chats/sessions/"),
                    Some(json!({"session_id": session_id})),
                )
                .await;
                let uuid = match answer {
                    Ok(a) if a.status == StatusCode::CREATED && a.body["id"].is_string() => {
                        a.body["id"].as_str().unwrap_or_default().to_owned()
                    }
                    _ => break, // the server is gone: not acknowledged
                };
                ack();
                mine.insert(session_id.clone(), (uuid, Vec::new()));
                for i in 0..MESSAGES_PER_SESSION {
                    let body = json!({"session_id": session_id, "message": format!("m{i}")});
                    match call(
                        &client,
                        Method::POST,
                        &format!("{base}/api/chats/messages/"),
                        Some(body),
                    )
                    .await
                    {
                        Ok(a) if a.status == StatusCode::CREATED && a.body["id"].is_string() => {
                            let id = a.body["id"].as_str().unwrap_or_default().to_owned();
                            if let Some((_, ids)) = mine.get_mut(&session_id) {
                                ids.push(id);
                            }
                            ack();
                        }
                        _ => break 'sessions,
                    }
                }
            }
            mine
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), enough_rx)
        .await
        .expect("the load reached the kill point within 60 s")
        .expect("signal");
    server.kill_9(); // the clients are still writing
    let mut acknowledged = Acked::new();
    for t in tasks {
        acknowledged.extend(t.await.expect("client task"));
    }
    let messages: usize = acknowledged.values().map(|(_, ids)| ids.len()).sum();
    eprintln!(
        "killed with {} sessions and {messages} messages acknowledged",
        acknowledged.len()
    );
    assert!(
        messages + acknowledged.len() >= KILL_AFTER,
        "{} sessions, {messages} messages acknowledged",
        acknowledged.len()
    );

    let server = Server::start(&dir.0, &["--store", &store]);
    let ready = must(
        &client,
        Method::GET,
        &format!("{}/readyz", server.base),
        None,
    )
    .await;
    assert_eq!(ready.status, StatusCode::OK, "the database opens clean");
    for (session_id, (uuid, ids)) in &acknowledged {
        let session = must(
            &client,
            Method::GET,
            &format!("{}/api/chats/sessions/{session_id}/", server.base),
            None,
        )
        .await;
        assert_eq!(
            session.status,
            StatusCode::OK,
            "{session_id} was acknowledged"
        );
        assert_eq!(session.body["id"], Value::from(uuid.as_str()));
        let stored: Vec<String> = all_messages(&client, &server.base, session_id)
            .await
            .iter()
            .map(|m| m["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        // A write may have committed without its answer arriving, so the store can
        // hold one more than was acknowledged, at the end.
        assert!(
            stored.len() >= ids.len() && stored.len() <= ids.len() + 1,
            "{session_id}: {} acked, {} stored",
            ids.len(),
            stored.len()
        );
        assert_eq!(
            &stored[..ids.len()],
            &ids[..],
            "{session_id}: every acknowledged write is stored, in order"
        );
    }
    // The restarted server takes writes too.
    let after = must(
        &client,
        Method::POST,
        &format!("{}/api/chats/sessions/", server.base),
        Some(json!({"session_id": "after-the-crash"})),
    )
    .await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.text);
    server.stop();
    assert_eq!(integrity(&db), "ok");
}
