//! Failures: a PostgreSQL restart under load on a throwaway cluster (no acknowledged
//! write is lost, calls during the outage fail as `Unavailable` promptly, the store
//! recovers within 2 s of the server coming back), a statement timeout and an
//! exhausted pool fail as `Unavailable` instead of hanging.
//!
//! The cluster needs PostgreSQL's server binaries (`initdb`, `pg_ctl`); without them
//! the restart test skips, or fails under `COLLOQUY_REQUIRE_SERVICES=1`.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use colloquy_core::ports::ChatStore;
use colloquy_core::{
    Clock, Entity, MessageDraft, Metadata, Role, Session, SessionRef, StoreError, SystemClock,
};
use colloquy_postgres::{PostgresConfig, PostgresStore};
use colloquy_test_support::postgres::Cluster;
use uuid::Uuid;

/// An operation during an outage must fail within this.
const PROMPT: Duration = Duration::from_millis(1500);
/// After the server is back, the store must succeed again within this.
const RECOVERY: Duration = Duration::from_secs(2);
/// Any wait in these tests.
const DEADLINE: Duration = Duration::from_secs(90);

fn new_session(clock: &dyn Clock) -> Session {
    let now = clock.now();
    Session {
        id: Uuid::new_v4(),
        session_id: format!("s-{}", Uuid::new_v4().simple()),
        external_user_id: None,
        created_at: now,
        expires_at: now + ChronoDuration::hours(1),
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    }
}

fn draft(clock: &dyn Clock, text: String) -> MessageDraft {
    MessageDraft {
        id: Uuid::new_v4(),
        role: Role::User,
        message: text,
        metadata: Metadata::new(),
        timestamp: clock.now(),
    }
}

/// What the writers saw.
#[derive(Default)]
struct Log {
    acked: Vec<Uuid>,
    /// Every failed call: its error and how long it took.
    failed: Vec<(String, Duration)>,
    /// When each success completed.
    successes: Vec<Instant>,
}

/// Waits (with the deadline) until `done(log)` holds, checking every 10 ms.
async fn wait_for(log: &Mutex<Log>, what: &str, done: impl Fn(&Log) -> bool) {
    tokio::time::timeout(DEADLINE, async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            if done(&log.lock().expect("log")) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waiting for {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarts_under_load_lose_no_acknowledged_write_and_recover_quickly() {
    let cluster = match Cluster::start(&[]).await {
        Ok(cluster) => cluster,
        Err(why) => {
            common::skip_or_fail(&why);
            return;
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = PostgresConfig {
        pool_size: 6,
        connect_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(2),
        ..PostgresConfig::new(cluster.url())
    };
    let store = Arc::new(
        PostgresStore::connect(config, clock.clone())
            .await
            .expect("connect to the throwaway cluster"),
    );
    let session = new_session(clock.as_ref());
    store.create_session(&session).await.expect("create");
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, log, stop, clock) =
                (store.clone(), log.clone(), stop.clone(), clock.clone());
            let r = SessionRef::from_uuid(session.id);
            tokio::spawn(async move {
                // Paces the load (2 ms between calls); no test step waits on it.
                let mut pace = tokio::time::interval(Duration::from_millis(2));
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    pace.tick().await;
                    i += 1;
                    let started = Instant::now();
                    let outcome = store
                        .append(&r, draft(clock.as_ref(), format!("{w}:{i}")))
                        .await;
                    let mut log = log.lock().expect("log");
                    match outcome {
                        Ok((_, m)) => {
                            log.acked.push(m.id);
                            log.successes.push(Instant::now());
                        }
                        Err(e) => log.failed.push((format!("{e:?}"), started.elapsed())),
                    }
                }
            })
        })
        .collect();

    for mode in ["fast", "immediate"] {
        let before = log.lock().expect("log").acked.len();
        wait_for(&log, "writes before the restart", |l| {
            l.acked.len() >= before + 50
        })
        .await;
        let failed_before = log.lock().expect("log").failed.len();
        // Down: stop, check that calls fail promptly, start again.
        cluster.stop(mode).await.expect("stop");
        wait_for(&log, "writes failing during the outage", |l| {
            l.failed.len() >= failed_before + 8
        })
        .await;
        let outage_ping = Instant::now();
        let pinged = store.ping().await;
        assert!(
            matches!(pinged, Err(StoreError::Unavailable(_))),
            "ping while down: {pinged:?}"
        );
        assert!(
            outage_ping.elapsed() < PROMPT,
            "ping took {:?}",
            outage_ping.elapsed()
        );
        cluster.start_again().await.expect("start");
        let back = Instant::now();
        wait_for(&log, "the first write after the restart", |l| {
            l.successes.last().is_some_and(|t| *t > back)
        })
        .await;
        let first_success = log
            .lock()
            .expect("log")
            .successes
            .iter()
            .copied()
            .find(|t| *t > back)
            .expect("a success after the restart");
        let recovery = first_success - back;
        assert!(recovery < RECOVERY, "{mode}: recovered after {recovery:?}");
        println!("{mode} stop/start: first write {recovery:?} after the server was back");
    }
    // And a plain restart, which writers see only as a short burst of failures.
    cluster.restart("fast").await.expect("restart");
    let back = Instant::now();
    wait_for(&log, "a write after pg_ctl restart", |l| {
        l.successes.last().is_some_and(|t| *t > back)
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    for w in writers {
        tokio::time::timeout(DEADLINE, w)
            .await
            .expect("writer stops")
            .expect("writer");
    }
    let log = Arc::try_unwrap(log)
        .ok()
        .expect("writers are done")
        .into_inner()
        .expect("log");
    for (error, took) in &log.failed {
        assert!(
            error.starts_with("Unavailable"),
            "a failure that is not Unavailable: {error}"
        );
        assert!(*took < PROMPT, "a failure took {took:?}: {error}");
    }
    // Every acknowledged write is there, in one order, after two restarts.
    let acked: HashSet<Uuid> = log.acked.iter().copied().collect();
    let mut lost = 0;
    for id in &acked {
        if store.message(*id).await.expect("read back").is_none() {
            lost += 1;
        }
    }
    println!(
        "acknowledged {}, failed {} (slowest {:?}), lost {lost}",
        acked.len(),
        log.failed.len(),
        log.failed.iter().map(|(_, t)| *t).max().unwrap_or_default()
    );
    assert_eq!(lost, 0, "acknowledged writes lost");
    store.close();
}

#[tokio::test]
async fn a_statement_timeout_and_an_exhausted_pool_are_unavailable() {
    let schema = common::unique_schema();
    let config = PostgresConfig {
        pool_size: 1,
        // The pool wait gives up long before the statement timeout fires.
        statement_timeout: Duration::from_millis(1500),
        connect_timeout: Duration::from_millis(200),
        ..common::config(&schema)
    };
    let store = match PostgresStore::connect(config, Arc::new(SystemClock)).await {
        Ok(store) => Arc::new(store),
        Err(e) if e.is_unavailable() => return common::skip_or_fail(&e),
        Err(e) => panic!("connect: {e:?}"),
    };
    let session = new_session(&SystemClock);
    store.create_session(&session).await.expect("create");

    // Another client holds the session row: the append waits for the lock until the
    // statement timeout cancels it (SQLSTATE 57014).
    let mut holder = common::raw_client().await;
    let tx = holder.transaction().await.expect("begin");
    tx.execute(
        &format!("SELECT 1 FROM {schema}.colloquy_sessions WHERE id = $1 FOR UPDATE"),
        &[&session.id],
    )
    .await
    .expect("lock the session row");
    let r = SessionRef::from_uuid(session.id);
    let blocked = {
        let (store, r) = (store.clone(), r.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = store.append(&r, draft(&SystemClock, "waits".into())).await;
            (outcome, started.elapsed())
        })
    };
    // Once the append waits for the lock, the pool's only connection is busy: a
    // second call waits for a connection no longer than the connect timeout.
    let holder_pid: i32 = tx
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let observer = common::raw_client().await;
    tokio::time::timeout(DEADLINE, async {
        loop {
            let waiting: i64 = observer
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))",
                    &[&holder_pid],
                )
                .await
                .expect("pg_stat_activity")
                .get(0);
            if waiting > 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the append waits for the row lock");
    let waiting = Instant::now();
    let second = tokio::time::timeout(DEADLINE, store.ping())
        .await
        .expect("the pool wait has a deadline");
    let waited = waiting.elapsed();
    assert!(
        matches!(second, Err(StoreError::Unavailable(_))),
        "{second:?}"
    );
    assert!(
        waited < Duration::from_secs(1),
        "the pool wait took {waited:?}"
    );

    let (first, took) = tokio::time::timeout(DEADLINE, blocked)
        .await
        .expect("the statement timeout fires")
        .expect("task");
    tx.rollback().await.expect("release the lock");
    assert!(
        took < Duration::from_secs(3),
        "the timed-out append took {took:?}"
    );
    match first {
        Err(StoreError::Unavailable(source)) => {
            let code = source
                .downcast_ref::<tokio_postgres::Error>()
                .and_then(tokio_postgres::Error::code);
            assert_eq!(code, Some(&tokio_postgres::error::SqlState::QUERY_CANCELED));
        }
        other => panic!("the timed-out append: {other:?}"),
    }
    // The store works again once the lock is gone.
    store
        .append(&r, draft(&SystemClock, "after".into()))
        .await
        .expect("append after the lock is released");
    assert!(matches!(
        store
            .append(&SessionRef::parse("nope"), draft(&SystemClock, "x".into()))
            .await,
        Err(StoreError::NotFound(Entity::Session))
    ));
    store.close();
    common::Schema(schema).drop().await;
}
