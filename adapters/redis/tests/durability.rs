//! Acknowledged appends survive `kill -9` of a Redis running with `appendonly yes` and
//! `appendfsync always`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as Span;
use colloquy_core::ports::ChatStore;
use colloquy_core::{
    Clock, ManualClock, MessageDraft, MessageQuery, Metadata, Page, Role, Session, SessionRef,
};
use colloquy_redis::{RedisConfig, RedisStore};
use common::{free_port, temp_dir, RedisServer};
use uuid::Uuid;

const N: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_kill_9() {
    let dir = temp_dir("aof");
    let port = free_port();
    let aof = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let Some(mut server) = RedisServer::start_with(port, dir.path(), &aof) else {
        return;
    };
    let clock = Arc::new(ManualClock::new());
    let store = RedisStore::connect(
        &server.url(),
        &RedisConfig::with_prefix("aof:"),
        clock.clone(),
    )
    .await
    .expect("connect");
    let now = clock.now();
    let session = Session {
        id: Uuid::new_v4(),
        session_id: "durable".into(),
        external_user_id: None,
        created_at: now,
        expires_at: now + Span::hours(1),
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    };
    store.create_session(&session).await.expect("create");
    let durable = SessionRef::parse("durable");
    let mut acknowledged = Vec::with_capacity(N);
    for i in 0..N {
        let draft = MessageDraft {
            id: Uuid::now_v7(),
            role: Role::User,
            message: format!("message {i}"),
            metadata: Metadata::new(),
            timestamp: clock.now(),
        };
        let (_, stored) = store
            .append(&durable, draft)
            .await
            .expect("append acknowledged");
        acknowledged.push(stored);
    }

    server.kill(); // SIGKILL: no shutdown, no final fsync
    server.restart(); // same port, same directory: replays the AOF

    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let all = MessageQuery {
            page: Page {
                limit: Page::MAX_LIMIT,
                offset: 0,
            },
            ..MessageQuery::default()
        };
        match store.list_messages(&durable, &all).await {
            Ok((_, listed)) => break listed,
            Err(e) => assert!(Instant::now() < deadline, "store did not come back: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    };
    assert_eq!(listed.len(), N, "every acknowledged append survived");
    assert_eq!(listed, acknowledged, "same messages, same order");
    let (first, _) = store
        .message(acknowledged[0].id)
        .await
        .expect("get")
        .expect("message pointers survived too");
    assert_eq!(first, acknowledged[0]);
    let found = store.session(&durable).await.expect("get");
    assert_eq!(found, Some(session));
}
