//! The key schema as Redis sees it: every key of a session lives in its session_id's
//! slot and expires at `retention.purge_at(expires_at)` (never for
//! `Retention::Forever`), an expiry change moves them, expired-but-retained sessions
//! keep their keys beside a new holder of their session_id, and the list index
//! forgets sessions past their purge time.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Span, Utc};
use colloquy_core::ports::ChatStore;
use colloquy_core::{
    ChatMessage, Clock, ManualClock, MessageDraft, Metadata, Page, Retention, Role, Session,
    SessionFilter, SessionPatch, SessionRef,
};
use colloquy_redis::{RedisConfig, RedisStore};
use redis::aio::MultiplexedConnection;
use uuid::Uuid;

struct Fixture {
    store: RedisStore,
    clock: Arc<ManualClock>,
    prefix: String,
    /// One raw connection per server (one standalone, or every cluster master).
    raw: Vec<MultiplexedConnection>,
    urls: Vec<String>,
}

async fn raw_connection(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

impl Fixture {
    async fn standalone(retention: Retention) -> Option<Self> {
        let clock = Arc::new(ManualClock::new());
        let prefix = common::unique_prefix();
        let config = RedisConfig::with_prefix(&prefix).with_retention(retention);
        let store = match RedisStore::connect(common::SHARED_URL, &config, clock.clone()).await {
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
        let urls = vec![common::SHARED_URL.to_owned()];
        Some(Self {
            store,
            clock,
            prefix,
            raw: vec![raw_connection(common::SHARED_URL).await],
            urls,
        })
    }

    async fn cluster() -> Option<Self> {
        let Some(nodes) = common::cluster_nodes() else {
            assert!(
                !colloquy_conformance::services_required(),
                "{} must name the cluster nodes",
                common::CLUSTER_ENV
            );
            eprintln!("skipping: {} not set", common::CLUSTER_ENV);
            return None;
        };
        let clock = Arc::new(ManualClock::new());
        let prefix = common::unique_prefix();
        let store =
            RedisStore::connect_cluster(&nodes, &RedisConfig::with_prefix(&prefix), clock.clone())
                .await
                .expect("connect to the cluster");
        let urls: Vec<String> = nodes.iter().map(|n| format!("redis://{n}")).collect();
        let mut raw = Vec::new();
        for url in &urls {
            raw.push(raw_connection(url).await);
        }
        Some(Self {
            store,
            clock,
            prefix,
            raw,
            urls,
        })
    }

    fn session(&self, sid: &str, ttl: Span) -> Session {
        let now = self.clock.now();
        Session {
            id: Uuid::now_v7(),
            session_id: sid.into(),
            external_user_id: Some("user".into()),
            created_at: now,
            expires_at: now + ttl,
            is_active: true,
            responder: colloquy_core::Responder::Ai,
            handoff_requested_at: None,
            metadata: Metadata::new(),
        }
    }

    /// Appends to `s` by session_id, with an id the store generated for it (as the
    /// service does).
    async fn append(&self, s: &Session, role: Role) -> ChatMessage {
        let to = SessionRef::parse(&s.session_id);
        self.append_as(s, role, self.store.new_message_id(&to))
            .await
    }

    /// Appends to `s` by session_id a message with id `id`.
    async fn append_as(&self, s: &Session, role: Role, id: Uuid) -> ChatMessage {
        let draft = MessageDraft {
            id,
            role,
            message: "hi".into(),
            metadata: Metadata::new(),
            timestamp: self.clock.now(),
        };
        self.store
            .append(&SessionRef::parse(&s.session_id), draft)
            .await
            .expect("append")
            .1
    }

    /// Every key under the prefix, on every server.
    async fn keys(&self) -> Vec<String> {
        let mut all = Vec::new();
        for conn in &self.raw {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", self.prefix))
                .query_async(&mut conn.clone())
                .await
                .expect("KEYS");
            all.extend(keys);
        }
        all.sort();
        all
    }

    /// Every key under the prefix with its PEXPIRETIME (-1: no expiry).
    async fn expiries(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for key in self.keys().await {
            out.push((key.clone(), self.query("PEXPIRETIME", &key).await));
        }
        out
    }

    /// A one-key command on the server that holds `key` (standalone: the only one).
    async fn query<T: redis::FromRedisValue>(&self, cmd: &str, key: &str) -> T {
        let mut conn = self.raw[0].clone();
        redis::cmd(cmd)
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect(cmd)
    }

    async fn cleanup(self) {
        common::purge(&self.urls, &self.prefix).await;
    }
}

/// The first whole millisecond at or after `t`, as `PEXPIREAT` gets it.
fn ms(t: DateTime<Utc>) -> i64 {
    let us = t.timestamp_micros();
    us.div_euclid(1000) + i64::from(us.rem_euclid(1000) != 0)
}

/// The keys of one session: its session_id's holder key and its own four.
fn session_key_names(prefix: &str, s: &Session) -> Vec<String> {
    let sid = &s.session_id;
    let mut keys = vec![format!("{prefix}{{{sid}}}:h")];
    for kind in ["s", "m", "v", "y"] {
        keys.push(format!("{prefix}{{{sid}}}:{}:{kind}", s.id));
    }
    keys
}

#[tokio::test]
async fn every_key_of_a_session_expires_at_its_purge_time_and_moves_with_it() {
    let hour = Span::hours(1);
    let Some(f) = Fixture::standalone(Retention::For(hour)).await else {
        return;
    };
    let s = f.session("ttl", hour);
    f.store.create_session(&s).await.expect("create");
    let system = f.append(&s, Role::System).await;
    let user = f.append(&s, Role::User).await;
    f.store.delete_message(user.id).await.expect("soft delete");

    // The list index and the console's inbox sets (the session is active, its
    // visitor "user"): no expiry, entries leave with their sessions.
    let index = [
        format!("{}{{idx}}:c", f.prefix),
        format!("{}{{idx}}:p", f.prefix),
        format!("{}{{idx}}:i", f.prefix),
        format!("{}{{idx}}:i:r", f.prefix),
        format!("{}{{idx}}:i:s:active", f.prefix),
        format!("{}{{idx}}:i:u:user", f.prefix),
    ];
    let mut expected: Vec<String> = session_key_names(&f.prefix, &s);
    expected.push(format!("{}{{{}}}:u", f.prefix, s.id));
    expected.push(format!("{}{{{}}}:p", f.prefix, system.id));
    expected.push(format!("{}{{{}}}:p", f.prefix, user.id));
    expected.extend(index.iter().cloned());
    // The dashboard's counters of the hour (written by the same scripts).
    let counters = counters_key(&f.prefix, &s);
    expected.push(counters.clone());
    expected.sort();
    assert_eq!(f.keys().await, expected, "the documented keys, no others");

    let check = |expiries: Vec<(String, i64)>, purge: i64| {
        for (key, at) in expiries {
            if key == counters {
                assert_counters_expiry(&key, at);
            } else if index.contains(&key) {
                assert_eq!(at, -1, "{key}: the list index has no expiry");
            } else {
                assert_eq!(at, purge, "{key}: expires at purge_at(expires_at)");
            }
        }
    };
    check(f.expiries().await, ms(s.expires_at + hour));

    let later = s.expires_at + Span::minutes(90) + Span::microseconds(1);
    let patch = |at| SessionPatch {
        expires_at: Some(at),
        ..SessionPatch::default()
    };
    let by_sid = SessionRef::parse("ttl");
    f.store
        .update_session(&by_sid, &patch(later))
        .await
        .expect("extend");
    check(f.expiries().await, ms(later + hour));

    // Shortening moves the session's own keys; pointers never move earlier (a
    // pointer that outlives its session is harmless: readers check it).
    let sooner = f.clock.now() + Span::minutes(5);
    f.store
        .update_session(&by_sid, &patch(sooner))
        .await
        .expect("shorten");
    for (key, at) in f.expiries().await {
        if index.contains(&key) || key == counters {
            continue;
        }
        if key.ends_with(":s") || key.ends_with(":m") || key.ends_with(":v") || key.ends_with(":y")
        {
            assert_eq!(at, ms(sooner + hour), "{key}: moved earlier");
        } else {
            assert_eq!(at, ms(later + hour), "{key}: kept");
        }
    }
    f.cleanup().await;
}

#[tokio::test]
async fn a_pointer_written_after_a_shortening_follows_a_later_extension() {
    let Some(f) = Fixture::standalone(Retention::default()).await else {
        return;
    };
    let s = f.session("moving", Span::hours(1));
    f.store.create_session(&s).await.expect("create");
    let by_sid = SessionRef::parse("moving");
    let patch = |at| SessionPatch {
        expires_at: Some(at),
        ..SessionPatch::default()
    };
    let sooner = s.expires_at - Span::minutes(30);
    f.store
        .update_session(&by_sid, &patch(sooner))
        .await
        .expect("shorten");
    let m = f.append(&s, Role::User).await;
    let pointer = format!("{}{{{}}}:p", f.prefix, m.id);
    assert_eq!(f.query::<i64>("PEXPIRETIME", &pointer).await, ms(sooner));
    // Back within the session's first expiry: the new pointer must move too.
    f.store
        .update_session(&by_sid, &patch(s.expires_at))
        .await
        .expect("extend");
    assert_eq!(
        f.query::<i64>("PEXPIRETIME", &pointer).await,
        ms(s.expires_at)
    );
    f.cleanup().await;
}

#[tokio::test]
async fn retention_forever_gives_no_key_an_expiry() {
    let Some(f) = Fixture::standalone(Retention::Forever).await else {
        return;
    };
    let s = f.session("forever", Span::hours(1));
    f.store.create_session(&s).await.expect("create");
    f.append(&s, Role::System).await;
    f.append(&s, Role::User).await;
    f.store
        .update_session(
            &SessionRef::parse("forever"),
            &SessionPatch {
                expires_at: Some(s.expires_at + Span::days(3)),
                ..SessionPatch::default()
            },
        )
        .await
        .expect("extend");
    let expiries = f.expiries().await;
    // h, s, m, v, y, the UUID pointer, two message pointers, the list index, the
    // dashboard's counters of the hour (which live 400 days whatever the retention),
    // the console's inbox sets (all, by state, by visitor, the records).
    assert_eq!(expiries.len(), 14, "{expiries:?}");
    let counters = counters_key(&f.prefix, &s);
    for (key, at) in expiries {
        if key == counters {
            assert_counters_expiry(&key, at);
        } else {
            assert_eq!(at, -1, "{key}: no expiry");
        }
    }
    // Expired, yet kept forever: invisible.
    f.clock.advance(Span::days(4));
    assert_eq!(
        f.store
            .session(&SessionRef::from_uuid(s.id))
            .await
            .expect("get"),
        None
    );
    assert_eq!(f.keys().await.len(), 14);
    f.cleanup().await;
}

/// On standalone Redis: the counters hash of the hour session `s` was created in.
fn counters_key(prefix: &str, s: &Session) -> String {
    let hour = colloquy_core::stats::hour_of(s.created_at).timestamp_micros();
    format!("{prefix}{{st}}:st:{hour}:c")
}

/// The dashboard's counters live 400 days after their last change (Redis's clock).
fn assert_counters_expiry(key: &str, at: i64) {
    assert!(
        at > ms(Utc::now() + Span::days(399)),
        "{key}: the counters live 400 days, not as long as a session ({at})"
    );
}

async fn keyslot(conn: &mut redis::cluster_async::ClusterConnection, text: &str) -> i64 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(text)
        .query_async(conn)
        .await
        .expect("CLUSTER KEYSLOT")
}

#[tokio::test]
async fn every_key_of_a_session_is_in_its_session_id_slot() {
    let Some(f) = Fixture::cluster().await else {
        return;
    };
    let generated = colloquy_core::generate_session_id().expect("random source");
    let sessions = [
        f.session(&generated, Span::hours(1)),
        f.session("Landing.page_7:a-b", Span::hours(1)),
    ];
    let mut messages = Vec::new();
    for s in &sessions {
        f.store.create_session(s).await.expect("create");
        messages.push((s, f.append(s, Role::System).await));
        messages.push((s, f.append(s, Role::User).await));
    }
    // An id a client chose, in slot 7 (its low 14 bits).
    let chosen = Uuid::from_u128(0x0191_0000_0000_7000_8000_0000_0000_0007);
    let client = f.append_as(&sessions[0], Role::User, chosen).await;
    let mut conn = redis::cluster::ClusterClient::new(f.urls.clone())
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("connect");
    let keys = f.keys().await;
    for s in &sessions {
        let tag_slot = keyslot(&mut conn, &s.session_id).await;
        let names = session_key_names(&f.prefix, s);
        for name in &names {
            assert!(keys.contains(name), "{name} exists");
            assert_eq!(keyslot(&mut conn, name).await, tag_slot, "{name}");
        }
        // Nothing else carries the session_id's tag: the pointers live in their ids' slots.
        let tagged = keys
            .iter()
            .filter(|k| k.starts_with(&format!("{}{{{}}}", f.prefix, s.session_id)))
            .count();
        assert_eq!(tagged, names.len());
        let uuid_pointer = format!("{}{{{}}}:u", f.prefix, s.id);
        assert!(keys.contains(&uuid_pointer));
    }
    // Message pointers `P{T}:M:p`: T a tag of the slot M's low 14 bits name, which
    // for ids the store generated is the session's slot.
    let pointer_slot = async |conn: &mut redis::cluster_async::ClusterConnection, id: Uuid| {
        let suffix = format!("}}:{id}:p");
        let pointer = keys
            .iter()
            .find(|k| k.starts_with(&format!("{}{{", f.prefix)) && k.ends_with(&suffix))
            .unwrap_or_else(|| panic!("the pointer of {id} in {keys:?}"));
        keyslot(conn, pointer).await
    };
    for (s, m) in &messages {
        let session_slot = keyslot(&mut conn, &s.session_id).await;
        assert_eq!(
            pointer_slot(&mut conn, m.id).await,
            session_slot,
            "{}",
            m.id
        );
    }
    assert_eq!(pointer_slot(&mut conn, client.id).await, 7);
    // The dashboard's counters are written by the same scripts, in the sessions'
    // slots: none anywhere else (no slot every write of the cluster would go to).
    let mut counted = 0;
    for key in keys
        .iter()
        .filter(|k| k.contains(":st:") && k.ends_with(":c"))
    {
        let slot = keyslot(&mut conn, key).await;
        let mut in_a_session_slot = false;
        for s in &sessions {
            in_a_session_slot |= keyslot(&mut conn, &s.session_id).await == slot;
        }
        assert!(in_a_session_slot, "{key} is in a session's slot");
        let n: Option<i64> = on_cluster(&mut conn, &["HGET", key, "sessions"]).await;
        counted += n.unwrap_or(0);
    }
    assert_eq!(counted, 2, "each create counted once, in its own slot");
    let (found, _) = f
        .store
        .message(client.id)
        .await
        .expect("message")
        .expect("a client's id is found through its pointer");
    assert_eq!(found.id, chosen);
    f.cleanup().await;
}

#[tokio::test]
async fn redis_drops_expired_sessions_by_wall_time_and_the_list_forgets_them() {
    let Some(f) = Fixture::standalone(Retention::default()).await else {
        return;
    };
    // Expires by wall time almost at once; the manual clock still calls it live.
    let short = f.session("short-lived", Span::milliseconds(200));
    f.store.create_session(&short).await.expect("create");
    f.append(&short, Role::User).await;
    let kept = f.session("kept", Span::hours(1));
    f.store.create_session(&kept).await.expect("create");

    let deadline = Instant::now() + Duration::from_secs(5);
    let session_key = format!("{}{{short-lived}}:{}:s", f.prefix, short.id);
    while f.query::<bool>("EXISTS", &session_key).await {
        assert!(
            Instant::now() < deadline,
            "Redis never expired {session_key}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    }

    // Physically gone: invisible, whatever the clock says; its list entry goes.
    assert_eq!(
        f.store
            .session(&SessionRef::parse("short-lived"))
            .await
            .expect("get"),
        None
    );
    let listed = f
        .store
        .list_sessions(&SessionFilter::default(), Page::default())
        .await
        .expect("list");
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), [kept.id]);
    let entries: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{}{{idx}}:c", f.prefix))
        .arg(0)
        .arg(-1)
        .query_async(&mut f.raw[0].clone())
        .await
        .expect("ZRANGE");
    assert_eq!(
        entries.len(),
        1,
        "the list dropped the dead entry: {entries:?}"
    );
    assert!(entries[0].contains(&kept.id.to_string()));

    // Only the survivor's keys and the index are left, and the session_id is free.
    let left = f.keys().await;
    assert!(
        left.iter()
            .all(|k| !k.contains("short-lived") && !k.contains(&short.id.to_string())),
        "{left:?}"
    );
    let again = f.session("short-lived", Span::hours(1));
    f.store
        .create_session(&again)
        .await
        .expect("session_id reusable");
    f.cleanup().await;
}

#[tokio::test]
async fn an_expired_but_retained_session_keeps_its_keys_beside_the_new_holder() {
    let Some(f) = Fixture::standalone(Retention::For(Span::days(1))).await else {
        return;
    };
    let old = f.session("reused", Span::minutes(10));
    f.store.create_session(&old).await.expect("create");
    let old_message = f.append(&old, Role::User).await;
    f.clock.advance(Span::minutes(11));
    assert_eq!(
        f.store
            .session(&SessionRef::from_uuid(old.id))
            .await
            .expect("get"),
        None
    );
    assert_eq!(f.store.message(old_message.id).await.expect("get"), None);

    let new = f.session("reused", Span::hours(1));
    f.store
        .create_session(&new)
        .await
        .expect("the session_id is free");
    let new_message = f.append(&new, Role::User).await;
    let old_keys = session_key_names(&f.prefix, &old);
    let keys = f.keys().await;
    for key in old_keys.iter().skip(1).filter(|k| !k.ends_with(":y")) {
        assert!(keys.contains(key), "{key} retained");
    }
    let found = f
        .store
        .session(&SessionRef::parse("reused"))
        .await
        .expect("get")
        .expect("the new holder");
    assert_eq!(found.id, new.id);
    assert_eq!(
        f.store
            .message(new_message.id)
            .await
            .expect("get")
            .map(|(m, _)| m.id),
        Some(new_message.id)
    );
    // The old message's id stays taken while the old session is stored.
    let reuse = MessageDraft {
        id: old_message.id,
        role: Role::User,
        message: "again".into(),
        metadata: Metadata::new(),
        timestamp: f.clock.now(),
    };
    assert!(matches!(
        f.store.append(&SessionRef::parse("reused"), reuse).await,
        Err(colloquy_core::StoreError::Conflict(
            colloquy_core::Entity::Message
        ))
    ));

    // Deleting the new one leaves the old one stored and the session_id free again.
    f.store
        .delete_session(&SessionRef::parse("reused"))
        .await
        .expect("delete");
    assert_eq!(
        f.store
            .session(&SessionRef::parse("reused"))
            .await
            .expect("get"),
        None
    );
    assert!(
        f.keys().await.contains(&old_keys[1]),
        "old session retained"
    );
    f.store
        .create_session(&f.session("reused", Span::hours(1)))
        .await
        .expect("free again");
    f.cleanup().await;
}

#[tokio::test]
async fn list_entries_past_their_purge_time_are_dropped_by_creates() {
    let Some(f) = Fixture::standalone(Retention::default()).await else {
        return;
    };
    let old = f.session("old", Span::minutes(10));
    f.store.create_session(&old).await.expect("create");
    f.clock.advance(Span::minutes(11));
    let young = f.session("young", Span::hours(1));
    f.store.create_session(&young).await.expect("create prunes");
    for index in ["c", "p"] {
        let entries: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{}{{idx}}:{index}", f.prefix))
            .arg(0)
            .arg(-1)
            .query_async(&mut f.raw[0].clone())
            .await
            .expect("ZRANGE");
        assert_eq!(entries.len(), 1, "{index}: {entries:?}");
        assert!(entries[0].contains(&young.id.to_string()));
    }
    f.cleanup().await;
}

#[tokio::test]
async fn a_message_pointer_under_its_old_name_is_still_followed_on_a_cluster() {
    let Some(f) = Fixture::cluster().await else {
        return;
    };
    let s = f.session("before-upgrade", Span::hours(1));
    f.store.create_session(&s).await.expect("create");
    let m = f.append(&s, Role::User).await;
    // As the previous layout left it: `P{M}:p`, in the slot of the id's text.
    let mut conn = redis::cluster::ClusterClient::new(f.urls.clone())
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("connect");
    let keys = f.keys().await;
    let pointer = keys
        .iter()
        .find(|k| k.ends_with(&format!("}}:{}:p", m.id)))
        .expect("the new pointer")
        .clone();
    let old = format!("{}{{{}}}:p", f.prefix, m.id);
    let purge: i64 = on_cluster(&mut conn, &["PEXPIRETIME", &pointer]).await;
    let () = on_cluster(
        &mut conn,
        &["SET", &old, &s.session_id, "PXAT", &purge.to_string()],
    )
    .await;
    let _: i64 = on_cluster(&mut conn, &["DEL", &pointer]).await;

    let (found, _) = f
        .store
        .message(m.id)
        .await
        .expect("message")
        .expect("found under the old name");
    assert_eq!(found.id, m.id);
    // Moving the session's expiry far beyond its pointers' moves the old one too.
    let later = s.expires_at + Span::days(30);
    f.store
        .update_session(
            &SessionRef::parse(&s.session_id),
            &colloquy_core::SessionPatch {
                expires_at: Some(later),
                ..colloquy_core::SessionPatch::default()
            },
        )
        .await
        .expect("update");
    let moved: i64 = on_cluster(&mut conn, &["PEXPIRETIME", &old]).await;
    assert_eq!(
        moved,
        ms(later),
        "the old pointer lives as long as its session"
    );
    f.store
        .delete_message(m.id)
        .await
        .expect("delete by the old name");
    assert_eq!(f.store.message(m.id).await.expect("message"), None);
    f.cleanup().await;
}

/// One command through a cluster connection (routed by its key).
async fn on_cluster<T: redis::FromRedisValue>(
    conn: &mut redis::cluster_async::ClusterConnection,
    args: &[&str],
) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(conn).await.expect(args[0])
}
