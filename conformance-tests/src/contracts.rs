//! One public async fn per contract sentence of the store ports
//! ([`colloquy_core::ports`]). Each takes a fresh, isolated [`TestStore`] and panics
//! with a message naming the broken rule.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use colloquy_core::{
    ChatMessage, MessageFilter, Metadata, Page, Role, Session, SessionFilter, SessionPatch,
    SessionRef, StoreError,
};
use serde_json::json;
use uuid::Uuid;

use crate::TestStore;

// ---------------------------------------------------------------- helpers

fn now(s: &TestStore) -> DateTime<Utc> {
    colloquy_core::Clock::now(s.clock.as_ref())
}

/// A session as the service would build it: created now, expiring in an hour.
fn session(s: &TestStore, session_id: &str) -> Session {
    let now = now(s);
    Session {
        id: Uuid::now_v7(),
        session_id: session_id.to_owned(),
        external_user_id: None,
        created_at: now,
        expires_at: now + Duration::hours(1),
        is_active: true,
        metadata: Metadata::new(),
    }
}

async fn create(s: &TestStore, session_id: &str) -> Session {
    let new = session(s, session_id);
    s.sessions.create(&new).await.expect("create session");
    new
}

/// A message as the service would build it, with a fresh random id.
fn new_message(session: Uuid, role: Role, text: String, timestamp: DateTime<Utc>) -> ChatMessage {
    ChatMessage {
        id: Uuid::new_v4(),
        session,
        message: text,
        role,
        metadata: Metadata::new(),
        timestamp,
        is_deleted: false,
    }
}

fn message(s: &TestStore, session: &Session, role: Role, text: &str) -> ChatMessage {
    new_message(session.id, role, text.to_owned(), now(s))
}

async fn append(s: &TestStore, session: &Session, role: Role, text: &str) -> ChatMessage {
    s.messages
        .append(message(s, session, role, text))
        .await
        .expect("append message")
}

async fn get(s: &TestStore, reference: &str) -> Option<Session> {
    s.sessions
        .get(&SessionRef::parse(reference))
        .await
        .expect("get session")
}

async fn list_all(s: &TestStore, session: &Session) -> Vec<ChatMessage> {
    s.messages
        .list(session.id, &MessageFilter::default(), big_page())
        .await
        .expect("list messages")
}

fn big_page() -> Page {
    Page {
        limit: Page::MAX_LIMIT,
        offset: 0,
    }
}

fn texts(messages: &[ChatMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.message.as_str()).collect()
}

fn ids(sessions: &[Session]) -> Vec<Uuid> {
    sessions.iter().map(|s| s.id).collect()
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::NotFound)),
        "{what}: expected NotFound, got {result:?}"
    );
}

// ---------------------------------------------------------------- sessions

/// `create` stores the session as given; `get` finds it by UUID and by session_id.
pub async fn create_then_get_by_uuid_and_session_id(s: &TestStore) {
    let mut new = session(s, "landing-page.visitor_1:a-b");
    new.external_user_id = Some("user-42".into());
    new.metadata = json!({"page": "/pricing", "nested": {"n": [1, 2.5, null, "é"]}})
        .as_object()
        .cloned()
        .unwrap_or_default();
    s.sessions.create(&new).await.expect("create");
    assert_eq!(
        get(s, &new.id.to_string()).await,
        Some(new.clone()),
        "by UUID"
    );
    assert_eq!(
        get(s, &new.session_id).await,
        Some(new.clone()),
        "by session_id"
    );
    assert_eq!(
        get(s, &new.id.to_string().to_uppercase()).await,
        Some(new),
        "by upper-case UUID"
    );
}

/// `get` of something that was never created is `None`.
pub async fn unknown_session_is_none(s: &TestStore) {
    create(s, "exists").await;
    assert_eq!(get(s, "does-not-exist").await, None);
    assert_eq!(get(s, &Uuid::new_v4().to_string()).await, None);
}

/// `create` fails with Conflict when a live session has the same session_id, and
/// writes nothing then.
pub async fn duplicate_session_id_conflicts(s: &TestStore) {
    let first = create(s, "taken").await;
    let second = session(s, "taken");
    let result = s.sessions.create(&second).await;
    assert!(
        matches!(result, Err(StoreError::Conflict)),
        "expected Conflict, got {result:?}"
    );
    assert_eq!(get(s, "taken").await, Some(first));
    assert_eq!(
        get(s, &second.id.to_string()).await,
        None,
        "the loser is not stored"
    );
    let all = s
        .sessions
        .list(&SessionFilter::default(), big_page())
        .await
        .expect("list");
    assert_eq!(all.len(), 1);
}

/// `create` fails with Conflict when a session with the same id exists.
pub async fn duplicate_session_uuid_conflicts(s: &TestStore) {
    let first = create(s, "one").await;
    let mut again = session(s, "two");
    again.id = first.id;
    let result = s.sessions.create(&again).await;
    assert!(
        matches!(result, Err(StoreError::Conflict)),
        "expected Conflict, got {result:?}"
    );
    assert_eq!(get(s, "two").await, None);
}

/// The session_id of an expired session may be reused.
pub async fn expired_session_id_can_be_reused(s: &TestStore) {
    let old = create(s, "reused").await;
    s.clock.advance(Duration::hours(2));
    let new = create(s, "reused").await;
    assert_eq!(get(s, "reused").await, Some(new));
    assert_eq!(get(s, &old.id.to_string()).await, None);
}

/// `get` matches the UUID first, the session_id second.
pub async fn get_prefers_uuid_over_session_id(s: &TestStore) {
    let a = create(s, "plain").await;
    let b = create(s, &a.id.to_string()).await;
    assert_eq!(get(s, &a.id.to_string()).await.map(|x| x.id), Some(a.id));
    assert_eq!(get(s, &b.id.to_string()).await.map(|x| x.id), Some(b.id));
}

/// `update` changes each patched field, leaves the others, replaces metadata whole,
/// and returns the session as stored.
pub async fn update_changes_each_field(s: &TestStore) {
    let mut original = session(s, "patch-me");
    original.external_user_id = Some("ext".into());
    original.metadata = json!({"a": 1, "b": 2})
        .as_object()
        .cloned()
        .unwrap_or_default();
    s.sessions.create(&original).await.expect("create");

    let meta = json!({"c": 3}).as_object().cloned().unwrap_or_default();
    let new_expiry = original.expires_at + Duration::hours(5);
    let steps = [
        SessionPatch {
            is_active: Some(false),
            ..SessionPatch::default()
        },
        SessionPatch {
            metadata: Some(meta.clone()),
            ..SessionPatch::default()
        },
        SessionPatch {
            external_user_id: Some(Some("other".into())),
            ..SessionPatch::default()
        },
        SessionPatch {
            expires_at: Some(new_expiry),
            ..SessionPatch::default()
        },
        SessionPatch {
            external_user_id: Some(None),
            ..SessionPatch::default()
        },
        SessionPatch::default(),
    ];
    let mut expected = original.clone();
    for patch in steps {
        patch.apply_to(&mut expected);
        let returned = s
            .sessions
            .update(original.id, &patch)
            .await
            .expect("update");
        assert_eq!(returned, expected, "returned after {patch:?}");
        assert_eq!(
            get(s, "patch-me").await,
            Some(expected.clone()),
            "stored after {patch:?}"
        );
    }
    assert!(!expected.is_active);
    assert_eq!(expected.metadata, meta);
    assert_eq!(expected.external_user_id, None);
    assert_eq!(expected.expires_at, new_expiry);
}

/// `update` of a missing or expired session fails with NotFound.
pub async fn update_missing_or_expired_is_not_found(s: &TestStore) {
    let patch = SessionPatch {
        is_active: Some(false),
        ..SessionPatch::default()
    };
    assert_not_found(s.sessions.update(Uuid::new_v4(), &patch).await, "missing");
    let expiring = create(s, "expiring").await;
    s.clock.advance(Duration::hours(2));
    assert_not_found(s.sessions.update(expiring.id, &patch).await, "expired");
}

/// A changed `expires_at` applies to the session and all its messages at once:
/// extended, they outlive the old expiry; shortened, they vanish at the new one.
pub async fn changed_expiry_applies_to_messages(s: &TestStore) {
    let extended = create(s, "extended").await;
    let shortened = create(s, "shortened").await;
    let kept = append(s, &extended, Role::User, "kept").await;
    let gone = append(s, &shortened, Role::User, "gone").await;
    let extend = SessionPatch {
        expires_at: Some(extended.expires_at + Duration::hours(3)),
        ..SessionPatch::default()
    };
    s.sessions
        .update(extended.id, &extend)
        .await
        .expect("extend");
    let shorten = SessionPatch {
        expires_at: Some(now(s) + Duration::minutes(10)),
        ..SessionPatch::default()
    };
    s.sessions
        .update(shortened.id, &shorten)
        .await
        .expect("shorten");

    s.clock.advance(Duration::minutes(30));
    assert!(get(s, "extended").await.is_some());
    assert_eq!(
        get(s, "shortened").await,
        None,
        "shortened expiry hides the session"
    );
    assert_eq!(s.messages.get(gone.id).await.expect("get"), None);

    s.clock.advance(Duration::hours(2));
    assert!(
        get(s, "extended").await.is_some(),
        "extended past the old expiry"
    );
    assert_eq!(
        s.messages.get(kept.id).await.expect("get"),
        Some(kept.clone())
    );
    assert_eq!(texts(&list_all(s, &extended).await), ["kept"]);
}

/// `delete` removes the session and every message in it, soft-deleted ones included;
/// a second delete fails with NotFound.
pub async fn delete_cascades_to_messages(s: &TestStore) {
    let doomed = create(s, "doomed").await;
    let other = create(s, "other").await;
    let a = append(s, &doomed, Role::User, "a").await;
    let b = append(s, &doomed, Role::Assistant, "b").await;
    s.messages.soft_delete(b.id).await.expect("soft delete");
    let survivor = append(s, &other, Role::User, "survivor").await;

    s.sessions.delete(doomed.id).await.expect("delete");
    assert_eq!(get(s, "doomed").await, None);
    for m in [&a, &b] {
        assert_eq!(s.messages.get(m.id).await.expect("get"), None);
        assert_eq!(s.messages.get_stored(m.id).await.expect("get_stored"), None);
    }
    assert_not_found(
        s.messages
            .list(doomed.id, &MessageFilter::default(), big_page())
            .await,
        "list after delete",
    );
    assert_not_found(s.sessions.delete(doomed.id).await, "second delete");
    assert_eq!(
        s.messages.get(survivor.id).await.expect("get"),
        Some(survivor),
        "other sessions keep their messages"
    );
}

/// `list` returns sessions newest `created_at` first (ties: greater id first) and
/// pages with limit and offset.
pub async fn list_sessions_newest_first_with_paging(s: &TestStore) {
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(create(s, &format!("s{i}")).await);
        s.clock.advance(Duration::seconds(1));
    }
    // Two more with the very same created_at.
    let twin_a = create(s, "twin-a").await;
    let twin_b = create(s, "twin-b").await;
    let mut twins = [twin_a.id, twin_b.id];
    twins.sort_unstable_by(|x, y| y.cmp(x));

    let all = s
        .sessions
        .list(&SessionFilter::default(), big_page())
        .await
        .expect("list");
    let mut expected: Vec<Uuid> = twins.to_vec();
    expected.extend(created.iter().rev().map(|s| s.id));
    assert_eq!(ids(&all), expected, "newest first, ties by id descending");

    let page = s
        .sessions
        .list(
            &SessionFilter::default(),
            Page {
                limit: 2,
                offset: 3,
            },
        )
        .await
        .expect("page");
    assert_eq!(ids(&page), expected[3..5].to_vec(), "limit 2 offset 3");
    let beyond = s
        .sessions
        .list(
            &SessionFilter::default(),
            Page {
                limit: 10,
                offset: 7,
            },
        )
        .await
        .expect("beyond");
    assert!(beyond.is_empty(), "offset past the end gives nothing");
}

/// `list` filters follow `SessionFilter::matches`: is_active, exact external_user_id,
/// case-insensitive search in session_id or external_user_id.
pub async fn list_sessions_filters(s: &TestStore) {
    let mut alpha = session(s, "Alpha-Landing");
    alpha.external_user_id = Some("User@Example.com".into());
    let mut beta = session(s, "beta");
    beta.external_user_id = Some("someone-else".into());
    let gamma = session(s, "gamma-LANDING");
    for x in [&alpha, &beta, &gamma] {
        s.sessions.create(x).await.expect("create");
        s.clock.advance(Duration::seconds(1));
    }
    let off = SessionPatch {
        is_active: Some(false),
        ..SessionPatch::default()
    };
    s.sessions.update(beta.id, &off).await.expect("deactivate");

    let cases = [
        (
            SessionFilter {
                is_active: Some(false),
                ..SessionFilter::default()
            },
            vec![beta.id],
        ),
        (
            SessionFilter {
                is_active: Some(true),
                ..SessionFilter::default()
            },
            vec![gamma.id, alpha.id],
        ),
        (
            SessionFilter {
                external_user_id: Some("User@Example.com".into()),
                ..SessionFilter::default()
            },
            vec![alpha.id],
        ),
        (
            SessionFilter {
                external_user_id: Some("user@example.com".into()),
                ..SessionFilter::default()
            },
            vec![],
        ),
        (
            SessionFilter {
                search: Some("landing".into()),
                ..SessionFilter::default()
            },
            vec![gamma.id, alpha.id],
        ),
        (
            SessionFilter {
                search: Some("EXAMPLE".into()),
                ..SessionFilter::default()
            },
            vec![alpha.id],
        ),
        (
            SessionFilter {
                search: Some("ELSE".into()),
                is_active: Some(true),
                ..SessionFilter::default()
            },
            vec![],
        ),
        (
            SessionFilter {
                search: Some("%".into()),
                ..SessionFilter::default()
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        let got = s.sessions.list(&filter, big_page()).await.expect("list");
        assert_eq!(ids(&got), expected, "filter {filter:?}");
    }
}

/// Once the clock passes `expires_at`, the session and its messages are invisible to
/// every operation, lists included.
pub async fn expired_session_is_invisible_everywhere(s: &TestStore) {
    let old = create(s, "old").await;
    let m = append(s, &old, Role::User, "hello").await;
    s.clock.advance(Duration::minutes(30));
    let young = create(s, "young").await;
    s.clock.advance(Duration::minutes(31));

    assert_eq!(get(s, "old").await, None);
    assert_eq!(get(s, &old.id.to_string()).await, None);
    let listed = s
        .sessions
        .list(&SessionFilter::default(), big_page())
        .await
        .expect("list");
    assert_eq!(
        ids(&listed),
        vec![young.id],
        "expired session absent from lists"
    );
    let searched = s
        .sessions
        .list(
            &SessionFilter {
                search: Some("old".into()),
                ..SessionFilter::default()
            },
            big_page(),
        )
        .await
        .expect("list");
    assert!(searched.is_empty());
    assert_not_found(
        s.sessions.update(old.id, &SessionPatch::default()).await,
        "update",
    );
    assert_not_found(s.sessions.delete(old.id).await, "delete");
    assert_not_found(
        s.messages
            .append(message(s, &old, Role::User, "late"))
            .await,
        "append",
    );
    assert_eq!(s.messages.get(m.id).await.expect("get"), None);
    assert_eq!(s.messages.get_stored(m.id).await.expect("get_stored"), None);
    assert_not_found(
        s.messages
            .list(old.id, &MessageFilter::default(), big_page())
            .await,
        "list messages",
    );
    assert_not_found(s.messages.recent(old.id, 10).await, "recent");
    assert_not_found(s.messages.soft_delete(m.id).await, "soft delete");
    assert!(
        get(s, "young").await.is_some(),
        "a live session is unaffected"
    );
}

/// Expiry is inclusive: at exactly `expires_at` the session is gone.
pub async fn session_expires_at_its_expiry_instant(s: &TestStore) {
    let x = create(s, "edge").await;
    s.clock.set(x.expires_at - Duration::microseconds(1));
    assert!(get(s, "edge").await.is_some(), "alive just before");
    s.clock.set(x.expires_at);
    assert_eq!(get(s, "edge").await, None, "gone at expires_at");
}

/// `ping` succeeds when the backend answers.
pub async fn ping_succeeds(s: &TestStore) {
    s.sessions.ping().await.expect("ping");
}

// ---------------------------------------------------------------- messages

/// `append` returns the message as stored, and `get` returns the same, field for field.
pub async fn append_then_get_round_trips(s: &TestStore) {
    let chat = create(s, "chat").await;
    let mut m = message(s, &chat, Role::Assistant, "Grüße 👋\nline two \"quoted\"");
    m.metadata = json!({"sources": [{"url": "https://example.com", "score": 0.93}], "finish_reason": "stop"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let stored = s.messages.append(m.clone()).await.expect("append");
    assert_eq!(stored, m);
    assert_eq!(s.messages.get(m.id).await.expect("get"), Some(m.clone()));
    assert_eq!(s.messages.get(Uuid::new_v4()).await.expect("get"), None);
}

/// `append` to a missing session fails with NotFound and writes nothing.
pub async fn append_to_missing_session_is_not_found(s: &TestStore) {
    let ghost = session(s, "never-created");
    let m = message(s, &ghost, Role::User, "hello?");
    assert_not_found(
        s.messages.append(m.clone()).await,
        "append to missing session",
    );
    assert_eq!(s.messages.get_stored(m.id).await.expect("get_stored"), None);
}

/// `append` to an inactive session fails with SessionInactive and writes nothing.
pub async fn append_to_inactive_session_is_rejected(s: &TestStore) {
    let chat = create(s, "closed").await;
    let off = SessionPatch {
        is_active: Some(false),
        ..SessionPatch::default()
    };
    s.sessions.update(chat.id, &off).await.expect("deactivate");
    let m = message(s, &chat, Role::User, "anyone?");
    let result = s.messages.append(m.clone()).await;
    assert!(
        matches!(result, Err(StoreError::SessionInactive)),
        "expected SessionInactive, got {result:?}"
    );
    assert!(list_all(s, &chat).await.is_empty());
    assert_eq!(s.messages.get_stored(m.id).await.expect("get_stored"), None);
}

/// `append` of an id that exists fails with Conflict and changes nothing.
pub async fn duplicate_message_id_conflicts(s: &TestStore) {
    let chat = create(s, "dup").await;
    let first = append(s, &chat, Role::User, "first").await;
    let mut again = message(s, &chat, Role::User, "second");
    again.id = first.id;
    let result = s.messages.append(again).await;
    assert!(
        matches!(result, Err(StoreError::Conflict)),
        "expected Conflict, got {result:?}"
    );
    assert_eq!(texts(&list_all(s, &chat).await), ["first"]);
}

/// Messages come back in write order, also when their timestamps are equal.
pub async fn messages_keep_write_order_with_equal_timestamps(s: &TestStore) {
    let chat = create(s, "order").await;
    let written: Vec<String> = (0..12).map(|i| format!("m{i:02}")).collect();
    // Ids are random (v4), so no store can get the order right by sorting on them.
    for text in &written {
        s.messages
            .append(message(s, &chat, Role::User, text))
            .await
            .expect("append");
    }
    let listed = list_all(s, &chat).await;
    assert_eq!(
        texts(&listed),
        written.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(listed.iter().all(|m| m.timestamp == listed[0].timestamp));
}

/// A timestamp earlier than the previous message's is raised to it, so ordering by
/// `(timestamp, write order)` is the write order.
pub async fn earlier_timestamp_is_raised(s: &TestStore) {
    let chat = create(s, "skew").await;
    s.clock.advance(Duration::seconds(10));
    let first = append(s, &chat, Role::User, "first").await;
    let mut late = message(s, &chat, Role::Assistant, "written second, stamped earlier");
    late.timestamp = first.timestamp - Duration::seconds(5);
    let stored = s.messages.append(late.clone()).await.expect("append");
    assert_eq!(
        stored.timestamp, first.timestamp,
        "raised to the previous timestamp"
    );
    assert_eq!(
        s.messages
            .get(late.id)
            .await
            .expect("get")
            .map(|m| m.timestamp),
        Some(first.timestamp)
    );
    assert_eq!(
        texts(&list_all(s, &chat).await),
        ["first", "written second, stamped earlier"]
    );
}

/// `list` filters follow `MessageFilter::matches`: role, case-insensitive search.
pub async fn list_messages_filters(s: &TestStore) {
    let chat = create(s, "filters").await;
    append(s, &chat, Role::System, "You are a helpful Assistant").await;
    append(s, &chat, Role::User, "What does PRICING look like?").await;
    append(s, &chat, Role::Assistant, "Pricing starts at 10 EUR").await;
    append(s, &chat, Role::User, "thanks 100%").await;
    let cases: [(MessageFilter, Vec<&str>); 5] = [
        (
            MessageFilter {
                role: Some(Role::User),
                search: None,
            },
            vec!["What does PRICING look like?", "thanks 100%"],
        ),
        (
            MessageFilter {
                role: None,
                search: Some("pricing".into()),
            },
            vec!["What does PRICING look like?", "Pricing starts at 10 EUR"],
        ),
        (
            MessageFilter {
                role: Some(Role::Assistant),
                search: Some("PRICING".into()),
            },
            vec!["Pricing starts at 10 EUR"],
        ),
        (
            MessageFilter {
                role: None,
                search: Some("0%".into()),
            },
            vec!["thanks 100%"],
        ),
        (
            MessageFilter {
                role: None,
                search: Some("_".into()),
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        let got = s
            .messages
            .list(chat.id, &filter, big_page())
            .await
            .expect("list");
        assert_eq!(texts(&got), expected, "filter {filter:?}");
    }
}

/// `list` pages with limit and offset over non-deleted messages.
pub async fn list_messages_paging(s: &TestStore) {
    let chat = create(s, "paging").await;
    let mut all = Vec::new();
    for i in 0..10 {
        all.push(append(s, &chat, Role::User, &format!("m{i}")).await);
    }
    s.messages
        .soft_delete(all[1].id)
        .await
        .expect("soft delete");
    let page = s
        .messages
        .list(
            chat.id,
            &MessageFilter::default(),
            Page {
                limit: 3,
                offset: 2,
            },
        )
        .await
        .expect("page");
    assert_eq!(
        texts(&page),
        ["m3", "m4", "m5"],
        "deleted rows do not count for offset"
    );
    let tail = s
        .messages
        .list(
            chat.id,
            &MessageFilter::default(),
            Page {
                limit: 5,
                offset: 7,
            },
        )
        .await
        .expect("tail");
    assert_eq!(texts(&tail), ["m8", "m9"]);
}

/// `list` of a missing session fails with NotFound.
pub async fn list_messages_of_missing_session_is_not_found(s: &TestStore) {
    assert_not_found(
        s.messages
            .list(Uuid::new_v4(), &MessageFilter::default(), big_page())
            .await,
        "list",
    );
    assert_not_found(s.messages.recent(Uuid::new_v4(), 5).await, "recent");
}

/// `recent` returns the `limit` newest non-deleted messages, oldest first.
pub async fn recent_returns_newest_oldest_first(s: &TestStore) {
    let chat = create(s, "recent").await;
    let mut all = Vec::new();
    for i in 0..6 {
        all.push(append(s, &chat, Role::User, &format!("m{i}")).await);
    }
    s.messages
        .soft_delete(all[4].id)
        .await
        .expect("soft delete");
    let got = s.messages.recent(chat.id, 3).await.expect("recent");
    assert_eq!(texts(&got), ["m2", "m3", "m5"]);
    let more = s.messages.recent(chat.id, 100).await.expect("recent");
    assert_eq!(texts(&more), ["m0", "m1", "m2", "m3", "m5"]);
}

/// Soft delete hides a message from `get` and `list`; it stays stored (`get_stored`
/// shows it with `is_deleted`); a second soft delete fails with NotFound.
pub async fn soft_delete_hides_but_keeps_the_row(s: &TestStore) {
    let chat = create(s, "soft").await;
    let keep = append(s, &chat, Role::User, "keep").await;
    let hide = append(s, &chat, Role::Assistant, "hide").await;
    s.messages.soft_delete(hide.id).await.expect("soft delete");

    assert_eq!(s.messages.get(hide.id).await.expect("get"), None);
    assert_eq!(texts(&list_all(s, &chat).await), ["keep"]);
    let stored = s
        .messages
        .get_stored(hide.id)
        .await
        .expect("get_stored")
        .expect("the row is still stored");
    assert!(stored.is_deleted);
    assert_eq!(
        (stored.message.as_str(), stored.role, stored.timestamp),
        ("hide", Role::Assistant, hide.timestamp)
    );
    assert_not_found(s.messages.soft_delete(hide.id).await, "second soft delete");
    assert_not_found(s.messages.soft_delete(Uuid::new_v4()).await, "unknown id");
    let kept = s.messages.get_stored(keep.id).await.expect("get_stored");
    assert_eq!(
        kept,
        Some(keep),
        "get_stored of a live message is the message"
    );
}

// ---------------------------------------------------------------- concurrency

/// Many tasks appending to one session lose nothing and agree on one total order.
pub async fn concurrent_appends_lose_nothing_and_agree_on_one_order(s: &TestStore) {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let chat = create(s, "busy").await;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let messages = Arc::clone(&s.messages);
        let chat = chat.clone();
        let clock = Arc::clone(&s.clock);
        handles.push(tokio::spawn(async move {
            for i in 0..EACH {
                let now = colloquy_core::Clock::now(clock.as_ref());
                let m = new_message(chat.id, Role::User, format!("{task}:{i}"), now);
                messages.append(m).await.expect("append");
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let first = list_all(s, &chat).await;
    assert_eq!(first.len(), TASKS * EACH, "no append lost");
    let unique: HashSet<Uuid> = first.iter().map(|m| m.id).collect();
    assert_eq!(unique.len(), TASKS * EACH, "no duplicates");
    for task in 0..TASKS {
        let own: Vec<usize> = first
            .iter()
            .filter_map(|m| m.message.split_once(':'))
            .filter(|(t, _)| *t == task.to_string())
            .filter_map(|(_, i)| i.parse().ok())
            .collect();
        assert_eq!(
            own,
            (0..EACH).collect::<Vec<_>>(),
            "task {task}'s own order"
        );
    }
    assert!(
        first.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
        "timestamps never go backwards in list order"
    );
    assert_eq!(
        list_all(s, &chat).await,
        first,
        "every reader sees the same order"
    );
    let paged: Vec<ChatMessage> = {
        let mut out = Vec::new();
        for offset in (0..TASKS * EACH).step_by(30) {
            out.extend(
                s.messages
                    .list(
                        chat.id,
                        &MessageFilter::default(),
                        Page { limit: 30, offset },
                    )
                    .await
                    .expect("page"),
            );
        }
        out
    };
    assert_eq!(paged, first, "pages agree with the whole list");
}

/// A delete racing appends leaves no visible orphan: every append either failed
/// with NotFound or its message is gone with the session.
pub async fn delete_racing_appends_leaves_no_orphans(s: &TestStore) {
    let chat = create(s, "race").await;
    let mut handles = Vec::new();
    for task in 0..6 {
        let messages = Arc::clone(&s.messages);
        let chat = chat.clone();
        let clock = Arc::clone(&s.clock);
        handles.push(tokio::spawn(async move {
            let mut written = Vec::new();
            for i in 0..40 {
                let now = colloquy_core::Clock::now(clock.as_ref());
                let m = new_message(chat.id, Role::User, format!("{task}:{i}"), now);
                match messages.append(m.clone()).await {
                    Ok(_) => written.push(m.id),
                    Err(StoreError::NotFound) => break,
                    Err(e) => panic!("append failed unexpectedly: {e:?}"),
                }
            }
            written
        }));
    }
    // Let some appends land first, then delete while the others keep going.
    while list_all(s, &chat).await.len() < 10 {
        tokio::task::yield_now().await;
    }
    s.sessions.delete(chat.id).await.expect("delete");
    let mut written = Vec::new();
    for h in handles {
        written.extend(h.await.expect("task"));
    }
    assert!(
        written.len() >= 10,
        "some appends succeeded before the delete"
    );
    for id in written {
        assert_eq!(
            s.messages.get_stored(id).await.expect("get_stored"),
            None,
            "message {id} outlived its session"
        );
    }
    assert_not_found(
        s.messages
            .list(chat.id, &MessageFilter::default(), big_page())
            .await,
        "list after delete",
    );
}

/// Concurrent creates with one session_id: exactly one wins, the rest get Conflict.
pub async fn concurrent_creates_with_one_session_id_have_one_winner(s: &TestStore) {
    let mut handles = Vec::new();
    for _ in 0..8 {
        let sessions = Arc::clone(&s.sessions);
        let candidate = session(s, "contested");
        handles.push(tokio::spawn(async move {
            sessions.create(&candidate).await.map(|()| candidate.id)
        }));
    }
    let mut winners = Vec::new();
    for h in handles {
        match h.await.expect("task") {
            Ok(id) => winners.push(id),
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins");
    assert_eq!(get(s, "contested").await.map(|x| x.id), Some(winners[0]));
}
