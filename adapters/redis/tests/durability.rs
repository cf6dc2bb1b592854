//! Acknowledged appends survive `kill -9` of a Redis running with `appendonly yes` and
//! `appendfsync always`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as Span;
use colloquy_core::ports::{MessageStore, SessionStore};
use colloquy_core::{
    ChatMessage, Clock, ManualClock, MessageFilter, Metadata, Page, Role, Session, SessionRef,
};
use colloquy_redis::{RedisConfig, RedisStore};
use common::{free_port, RedisServer, TempDir};
use uuid::Uuid;

const N: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_kill_9() {
    let dir = TempDir::new("aof");
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
        metadata: Metadata::new(),
    };
    store.create(&session).await.expect("create");
    let mut acknowledged = Vec::with_capacity(N);
    for i in 0..N {
        let m = ChatMessage {
            id: Uuid::now_v7(),
            session: session.id,
            message: format!("message {i}"),
            role: Role::User,
            metadata: Metadata::new(),
            timestamp: clock.now(),
            is_deleted: false,
        };
        acknowledged.push(store.append(m).await.expect("append acknowledged"));
    }

    server.kill(); // SIGKILL: no shutdown, no final fsync
    server.restart(); // same port, same directory: replays the AOF

    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        match MessageStore::list(
            &store,
            session.id,
            &MessageFilter::default(),
            Page {
                limit: Page::MAX_LIMIT,
                offset: 0,
            },
        )
        .await
        {
            Ok(listed) => break listed,
            Err(e) => assert!(Instant::now() < deadline, "store did not come back: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    };
    assert_eq!(listed.len(), N, "every acknowledged append survived");
    assert_eq!(listed, acknowledged, "same messages, same order");
    let found = SessionStore::get(&store, &SessionRef::parse("durable"))
        .await
        .expect("get");
    assert_eq!(found, Some(session));
}
