//! Redis going away and coming back, on a private `redis-server` on its own port:
//! operations fail fast with `StoreError::Unavailable` (no hang), the service reports
//! `store_unavailable`, and everything works again within 2 s of Redis being back.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as Span;
use colloquy_core::ports::{MessageStore, SessionStore};
use colloquy_core::{
    ChatMessage, ChatService, Clock, EchoModel, ErrorCode, ManualClock, Metadata, Role,
    ServiceConfig, Session, SessionRef, StoreError,
};
use colloquy_redis::{RedisConfig, RedisStore};
use common::{free_port, RedisServer, TempDir};
use uuid::Uuid;

/// Longer than any failure may take with the timeouts below; only guards against a hang.
const HANG_GUARD: Duration = Duration::from_secs(10);

fn session(clock: &ManualClock) -> Session {
    let now = clock.now();
    Session {
        id: Uuid::new_v4(),
        session_id: format!("fault-{}", Uuid::new_v4().simple()),
        external_user_id: None,
        created_at: now,
        expires_at: now + Span::hours(1),
        is_active: true,
        metadata: Metadata::new(),
    }
}

fn message(clock: &ManualClock, session: &Session) -> ChatMessage {
    ChatMessage {
        id: Uuid::now_v7(),
        session: session.id,
        message: "hello".into(),
        role: Role::User,
        metadata: Metadata::new(),
        timestamp: clock.now(),
        is_deleted: false,
    }
}

/// Creates a session and appends to it; the whole round must succeed.
async fn write_round(store: &RedisStore, clock: &ManualClock) -> Result<(), StoreError> {
    let s = session(clock);
    store.create(&s).await?;
    store.append(message(clock, &s)).await?;
    let got = SessionStore::get(store, &SessionRef::parse(&s.session_id)).await?;
    assert_eq!(got.map(|g| g.id), Some(s.id));
    Ok(())
}

fn assert_unavailable<T: std::fmt::Debug>(what: &str, result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{what}: expected Unavailable, got {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_is_unavailable_then_service_resumes_within_2s() {
    let dir = TempDir::new("fault");
    let port = free_port();
    let Some(mut server) = RedisServer::start(port, dir.path()) else {
        return;
    };
    let clock = Arc::new(ManualClock::new());
    let config = RedisConfig {
        prefix: "fault:".into(),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_secs(1),
    };
    let store = Arc::new(
        RedisStore::connect(&server.url(), &config, clock.clone())
            .await
            .expect("connect to the private server"),
    );
    let service = ChatService::new(
        store.clone(),
        store.clone(),
        Arc::new(EchoModel::new()),
        clock.clone(),
        ServiceConfig::default(),
    );
    write_round(&store, &clock).await.expect("works while up");
    service.ready().await.expect("ready while up");
    let known = session(&clock);
    store.create(&known).await.expect("create");

    server.kill();

    let guard = |f| tokio::time::timeout(HANG_GUARD, f);
    assert_unavailable(
        "get",
        guard(SessionStore::get(
            store.as_ref(),
            &SessionRef::from_uuid(known.id),
        ))
        .await
        .expect("get does not hang"),
    );
    assert_unavailable(
        "append",
        tokio::time::timeout(HANG_GUARD, store.append(message(&clock, &known)))
            .await
            .expect("append does not hang"),
    );
    assert_unavailable(
        "create",
        tokio::time::timeout(HANG_GUARD, store.create(&session(&clock)))
            .await
            .expect("create does not hang"),
    );
    assert_unavailable(
        "ping",
        tokio::time::timeout(HANG_GUARD, store.ping())
            .await
            .expect("ping does not hang"),
    );
    let not_ready = tokio::time::timeout(HANG_GUARD, service.ready())
        .await
        .expect("ready does not hang");
    let code = not_ready.expect_err("not ready while Redis is down").code();
    assert_eq!(code, ErrorCode::StoreUnavailable);
    assert_eq!(code.as_str(), "store_unavailable");

    server.restart(); // returns once the new server answers PING
    let back = Instant::now();
    loop {
        let attempt = tokio::time::timeout(HANG_GUARD, write_round(&store, &clock))
            .await
            .expect("no hang after restart");
        match attempt {
            Ok(()) => break,
            Err(e) => assert!(
                back.elapsed() < Duration::from_secs(2),
                "not recovered 2 s after Redis came back: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval, not a sync
    }
    let recovered_in = back.elapsed();
    assert!(recovered_in < Duration::from_secs(2));
    service.ready().await.expect("ready again");
    eprintln!("recovered {recovered_in:?} after Redis came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_times_out_as_unavailable_instead_of_hanging() {
    let dir = TempDir::new("frozen");
    let port = free_port();
    let Some(server) = RedisServer::start(port, dir.path()) else {
        return;
    };
    let clock = Arc::new(ManualClock::new());
    let config = RedisConfig {
        prefix: "frozen:".into(),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
    };
    let store = RedisStore::connect(&server.url(), &config, clock.clone())
        .await
        .expect("connect to the private server");
    write_round(&store, &clock).await.expect("works while up");

    server.signal("STOP"); // the socket stays open but nothing answers
    let result = tokio::time::timeout(HANG_GUARD, store.ping())
        .await
        .expect("the response timeout ends the wait");
    server.signal("CONT");
    assert_unavailable("ping to a frozen Redis", result);

    let back = Instant::now();
    loop {
        match write_round(&store, &clock).await {
            Ok(()) => break,
            Err(e) => assert!(
                back.elapsed() < Duration::from_secs(2),
                "not recovered 2 s after Redis resumed: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval, not a sync
    }
}
