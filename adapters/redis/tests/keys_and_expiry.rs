//! The key schema as Redis sees it: every key of a session (and every message pointer)
//! carries `PEXPIREAT expires_at`, an expiry change moves all of them, only the global
//! index structures have no TTL, and index entries left behind are pruned when met.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as Span;
use colloquy_core::ports::{MessageStore, SessionStore};
use colloquy_core::{
    ChatMessage, Clock, ManualClock, Metadata, Page, Role, Session, SessionFilter, SessionPatch,
    SessionRef,
};
use colloquy_redis::{RedisConfig, RedisStore};
use redis::aio::MultiplexedConnection;
use uuid::Uuid;

struct Fixture {
    store: RedisStore,
    clock: Arc<ManualClock>,
    prefix: String,
    raw: MultiplexedConnection,
}

impl Fixture {
    async fn new() -> Option<Self> {
        let clock = Arc::new(ManualClock::new());
        let prefix = common::unique_prefix();
        let store = match RedisStore::connect(
            common::SHARED_URL,
            &RedisConfig::with_prefix(&prefix),
            clock.clone(),
        )
        .await
        {
            Ok(store) => store,
            Err(e) => {
                assert!(
                    !colloquy_conformance::services_required(),
                    "redis is required but not reachable: {e}"
                );
                eprintln!("skipping: redis not reachable ({e})");
                return None;
            }
        };
        let raw = redis::Client::open(common::SHARED_URL)
            .expect("valid url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection");
        Some(Self {
            store,
            clock,
            prefix,
            raw,
        })
    }

    fn session(&self, sid: &str, ttl: Span) -> Session {
        let now = self.clock.now();
        Session {
            id: Uuid::new_v4(),
            session_id: sid.into(),
            external_user_id: Some("user".into()),
            created_at: now,
            expires_at: now + ttl,
            is_active: true,
            metadata: Metadata::new(),
        }
    }

    async fn append(&self, s: &Session) -> ChatMessage {
        self.store
            .append(ChatMessage {
                id: Uuid::now_v7(),
                session: s.id,
                message: "hi".into(),
                role: Role::User,
                metadata: Metadata::new(),
                timestamp: self.clock.now(),
                is_deleted: false,
            })
            .await
            .expect("append")
    }

    /// Every key under the prefix with its PEXPIRETIME (-1: no TTL).
    async fn expiries(&self) -> Vec<(String, i64)> {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut self.raw.clone())
            .await
            .expect("KEYS");
        let mut out = Vec::new();
        for key in keys {
            let at: i64 = redis::cmd("PEXPIRETIME")
                .arg(&key)
                .query_async(&mut self.raw.clone())
                .await
                .expect("PEXPIRETIME");
            out.push((key, at));
        }
        out.sort();
        out
    }

    async fn cleanup(self) {
        common::purge(&[common::SHARED_URL.to_owned()], &self.prefix).await;
    }
}

fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    let us = t.timestamp_micros();
    us.div_euclid(1000) + i64::from(us.rem_euclid(1000) != 0)
}

#[tokio::test]
async fn session_keys_carry_the_session_expiry_and_move_with_it() {
    let Some(f) = Fixture::new().await else {
        return;
    };
    let s = f.session("ttl", Span::hours(1));
    f.store.create(&s).await.expect("create");
    let m1 = f.append(&s).await;
    let m2 = f.append(&s).await;
    f.store.soft_delete(m2.id).await.expect("soft delete");

    let check = |expiries: Vec<(String, i64)>, expected: i64| {
        let idx = format!("{}{{idx}}", f.prefix);
        let mut session_keys = 0;
        for (key, at) in expiries {
            if key.starts_with(&idx) {
                assert_eq!(at, -1, "{key}: index structures carry no TTL");
            } else {
                assert_eq!(at, expected, "{key}: carries the session's expiry");
                session_keys += 1;
            }
        }
        // session hash, messages hash, order zset, two message pointers
        assert_eq!(session_keys, 5);
    };
    check(f.expiries().await, ms(s.expires_at));
    assert!(f
        .expiries()
        .await
        .iter()
        .any(|(k, _)| k.contains(&m1.id.to_string())));

    let later = s.expires_at + Span::minutes(90) + Span::microseconds(1);
    f.store
        .update(
            s.id,
            &SessionPatch {
                expires_at: Some(later),
                ..SessionPatch::default()
            },
        )
        .await
        .expect("extend");
    check(f.expiries().await, ms(later));

    let sooner = f.clock.now() + Span::minutes(5);
    f.store
        .update(
            s.id,
            &SessionPatch {
                expires_at: Some(sooner),
                ..SessionPatch::default()
            },
        )
        .await
        .expect("shorten");
    check(f.expiries().await, ms(sooner));
    f.cleanup().await;
}

#[tokio::test]
async fn redis_drops_expired_sessions_by_wall_time_and_the_index_heals() {
    let Some(f) = Fixture::new().await else {
        return;
    };
    // Expires by wall time almost at once; the manual clock still calls it live.
    let short = f.session("short-lived", Span::milliseconds(200));
    f.store.create(&short).await.expect("create");
    f.append(&short).await;
    let kept = f.session("kept", Span::hours(1));
    f.store.create(&kept).await.expect("create");

    let deadline = Instant::now() + Duration::from_secs(5);
    let session_key = format!("{}{{{}}}:s", f.prefix, short.id);
    loop {
        let exists: bool = redis::cmd("EXISTS")
            .arg(&session_key)
            .query_async(&mut f.raw.clone())
            .await
            .expect("EXISTS");
        if !exists {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Redis never expired {session_key}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    }

    // Physically gone: invisible, whatever the clock says, and index entries are pruned.
    assert_eq!(
        SessionStore::get(&f.store, &SessionRef::parse("short-lived"))
            .await
            .expect("get"),
        None
    );
    let listed = SessionStore::list(&f.store, &SessionFilter::default(), Page::default())
        .await
        .expect("list");
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), [kept.id]);
    let in_index: Option<f64> = redis::cmd("ZSCORE")
        .arg(format!("{}{{idx}}:created", f.prefix))
        .arg(short.id.to_string())
        .query_async(&mut f.raw.clone())
        .await
        .expect("ZSCORE");
    assert_eq!(in_index, None, "the list pruned the dead entry");
    let sid_entry: Option<String> = redis::cmd("HGET")
        .arg(format!("{}{{idx}}:sid", f.prefix))
        .arg("short-lived")
        .query_async(&mut f.raw.clone())
        .await
        .expect("HGET");
    assert_eq!(sid_entry, None, "the session_id entry went with it");

    // The session_id is free again.
    let again = f.session("short-lived", Span::hours(1));
    f.store.create(&again).await.expect("session_id reusable");
    f.cleanup().await;
}

#[tokio::test]
async fn index_entries_of_clock_expired_sessions_are_pruned() {
    let Some(f) = Fixture::new().await else {
        return;
    };
    let old = f.session("old", Span::minutes(10));
    f.store.create(&old).await.expect("create");
    f.clock.advance(Span::minutes(11));
    let young = f.session("young", Span::hours(1));
    f.store.create(&young).await.expect("create prunes");
    let remaining: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{}{{idx}}:exp", f.prefix))
        .arg(0)
        .arg(-1)
        .query_async(&mut f.raw.clone())
        .await
        .expect("ZRANGE");
    assert_eq!(remaining, [young.id.to_string()]);
    f.cleanup().await;
}

#[tokio::test]
async fn a_session_id_held_by_a_vanished_session_is_taken_over() {
    let Some(f) = Fixture::new().await else {
        return;
    };
    let lost = f.session("contested", Span::hours(1));
    f.store.create(&lost).await.expect("create");
    // Simulate a session whose own keys vanished while its index entries stayed.
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{}{{{}}}:s", f.prefix, lost.id))
        .query_async(&mut f.raw.clone())
        .await
        .expect("DEL");
    let winner = f.session("contested", Span::hours(1));
    f.store
        .create(&winner)
        .await
        .expect("the stale entry does not block the session_id");
    let got = SessionStore::get(&f.store, &SessionRef::parse("contested"))
        .await
        .expect("get");
    assert_eq!(got.map(|s| s.id), Some(winner.id));
    f.cleanup().await;
}
