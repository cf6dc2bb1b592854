//! One public async fn per contract sentence of [`ChatStore`]
//! ([`colloquy_core::ports`]). Each takes a fresh, isolated [`TestStore`] and panics
//! with a message that quotes the broken sentence and says what was expected.
//!
//! The same for the [`StreamLog`] port (taking a [`TestStreamLog`]), the
//! [`IdempotencyStore`] port (taking a [`TestIdempotency`]) and the [`RateLimiter`]
//! port (taking a [`TestRateLimiter`]); the knowledge ports' contract is in
//! [`knowledge`].
//!
//! [`ChatStore`]: colloquy_core::ports::ChatStore
//! The same for the [`SessionEvents`] port (taking a [`TestEvents`]).
//!
//! [`SessionEvents`]: colloquy_core::SessionEvents
//! [`StreamLog`]: colloquy_core::streams::StreamLog
//! [`IdempotencyStore`]: colloquy_core::idempotency::IdempotencyStore
//! [`TestStreamLog`]: crate::TestStreamLog
//! [`TestIdempotency`]: crate::TestIdempotency
//! [`RateLimiter`]: colloquy_core::ratelimit::RateLimiter

use std::future::Future;
use std::panic::Location;

use chrono::{DateTime, Duration, Utc};
use colloquy_core::{
    ChatMessage, Clock, MessageDraft, MessageQuery, Metadata, Page, Role, Session, SessionFilter,
    SessionPatch, SessionRef,
};
use uuid::Uuid;

use crate::TestStore;

mod concurrency;
mod cursors;
mod events;
mod expiry;
mod feedback;
mod idempotency;
mod inbox;
pub mod knowledge;
mod messages;
mod privacy;
mod purge;
mod rate_limits;
mod search;
mod sessions;
mod stats;
mod stream_log;
mod turns;

pub use concurrency::*;
pub use cursors::*;
pub use events::*;
pub use expiry::*;
pub use feedback::*;
pub use idempotency::*;
pub use inbox::*;
pub use messages::*;
pub use privacy::*;
pub use purge::*;
pub use rate_limits::*;
pub use search::*;
pub use sessions::*;
pub use stats::*;
pub use stream_log::*;
pub use turns::*;

/// Asserts that `$result` is `Err($pattern)`; the message quotes the rule and
/// shows what came back instead.
macro_rules! assert_err {
    ($result:expr, $pattern:pat, $($rule:tt)+) => {{
        let result = $result;
        assert!(
            matches!(result, Err($pattern)),
            "{}\n  expected: Err({})\n  got:      {:?}",
            format_args!($($rule)+),
            stringify!($pattern),
            result
        );
    }};
}
pub(crate) use assert_err;

// ---------------------------------------------------------------- builders

/// The store's current time.
pub(crate) fn now(s: &TestStore) -> DateTime<Utc> {
    s.clock.now()
}

/// A session as the service would build it: created now, expiring in an hour.
pub(crate) fn new_session(s: &TestStore, session_id: &str) -> Session {
    let now = now(s);
    Session {
        id: Uuid::new_v4(),
        session_id: session_id.to_owned(),
        external_user_id: None,
        created_at: now,
        expires_at: now + Duration::hours(1),
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    }
}

/// A draft as the service would build it: a fresh random (v4) id, stamped now, so
/// no store can get write order right by sorting on ids.
pub(crate) fn draft(s: &TestStore, role: Role, text: &str) -> MessageDraft {
    draft_at(role, text, now(s))
}

/// A draft stamped `timestamp`.
pub(crate) fn draft_at(role: Role, text: &str, timestamp: DateTime<Utc>) -> MessageDraft {
    MessageDraft {
        id: Uuid::new_v4(),
        role,
        message: text.to_owned(),
        metadata: Metadata::new(),
        timestamp,
    }
}

/// A reference by the session's UUID.
pub(crate) fn by_uuid(session: &Session) -> SessionRef {
    SessionRef::from_uuid(session.id)
}

/// A reference by the session's `session_id`.
pub(crate) fn by_sid(session: &Session) -> SessionRef {
    SessionRef::parse(&session.session_id)
}

/// Both references to `session`, labelled for messages.
pub(crate) fn both_refs(session: &Session) -> [(&'static str, SessionRef); 2] {
    [
        ("by UUID", by_uuid(session)),
        ("by session_id", by_sid(session)),
    ]
}

/// Every message, oldest first, in one page.
pub(crate) fn everything() -> MessageQuery {
    MessageQuery {
        page: big_page(),
        ..MessageQuery::default()
    }
}

/// The largest page a client may ask for.
pub(crate) fn big_page() -> Page {
    Page {
        limit: Page::MAX_LIMIT,
        offset: 0,
    }
}

/// A patch that changes nothing.
pub(crate) fn no_change() -> SessionPatch {
    SessionPatch::default()
}

/// A patch setting `is_active`.
pub(crate) fn set_active(active: bool) -> SessionPatch {
    SessionPatch {
        is_active: Some(active),
        ..SessionPatch::default()
    }
}

/// A JSON object literal as metadata.
pub(crate) fn meta(value: serde_json::Value) -> Metadata {
    value.as_object().cloned().unwrap_or_default()
}

pub(crate) fn texts(messages: &[ChatMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.message.as_str()).collect()
}

pub(crate) fn message_ids(messages: &[ChatMessage]) -> Vec<Uuid> {
    messages.iter().map(|m| m.id).collect()
}

pub(crate) fn session_ids(sessions: &[Session]) -> Vec<Uuid> {
    sessions.iter().map(|s| s.id).collect()
}

// ---------------------------------------------------------------- setup steps
//
// Steps that must succeed for a contract to test anything. They are plain fns
// returning futures so that `#[track_caller]` works: a failing step names the
// line of the contract that called it.

/// Creates a session with `session_id`, expiring in an hour.
#[track_caller]
pub(crate) fn create<'a>(
    s: &'a TestStore,
    session_id: &'a str,
) -> impl Future<Output = Session> + 'a {
    let at = Location::caller();
    async move {
        let session = new_session(s, session_id);
        if let Err(e) = s.store.create_session(&session).await {
            panic!("{at}: setup step create_session({session_id:?}) failed: {e:?}");
        }
        session
    }
}

/// Stores a prepared session.
#[track_caller]
pub(crate) fn create_as<'a>(
    s: &'a TestStore,
    session: &'a Session,
) -> impl Future<Output = ()> + 'a {
    let at = Location::caller();
    async move {
        if let Err(e) = s.store.create_session(session).await {
            panic!("{at}: setup step create_session({session:?}) failed: {e:?}");
        }
    }
}

/// Appends a message stamped now to `session` (by UUID); returns it as stored.
#[track_caller]
pub(crate) fn append<'a>(
    s: &'a TestStore,
    session: &'a Session,
    role: Role,
    text: &'a str,
) -> impl Future<Output = ChatMessage> + 'a {
    let at = Location::caller();
    async move {
        match s
            .store
            .append(&by_uuid(session), draft(s, role, text))
            .await
        {
            Ok((_, message)) => message,
            Err(e) => panic!(
                "{at}: setup step append({text:?}) to session {:?} failed: {e:?}",
                session.session_id
            ),
        }
    }
}

/// Appends `texts` in order as user messages; returns them as stored.
#[track_caller]
pub(crate) fn append_all<'a>(
    s: &'a TestStore,
    session: &'a Session,
    texts: &'a [&'a str],
) -> impl Future<Output = Vec<ChatMessage>> + 'a {
    let at = Location::caller();
    async move {
        let mut out = Vec::new();
        for text in texts {
            match s
                .store
                .append(&by_uuid(session), draft(s, Role::User, text))
                .await
            {
                Ok((_, message)) => out.push(message),
                Err(e) => panic!("{at}: setup step append({text:?}) failed: {e:?}"),
            }
        }
        out
    }
}

/// `session(reference)` by text, which must not fail.
#[track_caller]
pub(crate) fn get<'a>(
    s: &'a TestStore,
    reference: &'a str,
) -> impl Future<Output = Option<Session>> + 'a {
    let at = Location::caller();
    async move {
        match s.store.session(&SessionRef::parse(reference)).await {
            Ok(found) => found,
            Err(e) => panic!("{at}: session({reference:?}) failed: {e:?}"),
        }
    }
}

/// `message(id)`, which must not fail.
#[track_caller]
pub(crate) fn get_message(
    s: &TestStore,
    id: Uuid,
) -> impl Future<Output = Option<(ChatMessage, Session)>> + '_ {
    let at = Location::caller();
    async move {
        match s.store.message(id).await {
            Ok(found) => found,
            Err(e) => panic!("{at}: message({id}) failed: {e:?}"),
        }
    }
}

/// `list_messages(reference, query)`, which must succeed.
#[track_caller]
pub(crate) fn list<'a>(
    s: &'a TestStore,
    reference: &'a SessionRef,
    query: &'a MessageQuery,
) -> impl Future<Output = Vec<ChatMessage>> + 'a {
    let at = Location::caller();
    async move {
        match s.store.list_messages(reference, query).await {
            Ok((_, page)) => page,
            Err(e) => panic!(
                "{at}: list_messages({:?}, {query:?}) failed: {e:?}",
                reference.as_str()
            ),
        }
    }
}

/// Every non-deleted message of `session`, oldest first.
#[track_caller]
pub(crate) fn list_all<'a>(
    s: &'a TestStore,
    session: &'a Session,
) -> impl Future<Output = Vec<ChatMessage>> + 'a {
    let at = Location::caller();
    async move {
        match s
            .store
            .list_messages(&by_uuid(session), &everything())
            .await
        {
            Ok((_, page)) => page,
            Err(e) => panic!(
                "{at}: list_messages of session {:?} failed: {e:?}",
                session.session_id
            ),
        }
    }
}

/// Every live session, in list order.
#[track_caller]
pub(crate) fn list_sessions<'a>(
    s: &'a TestStore,
    filter: &'a SessionFilter,
) -> impl Future<Output = Vec<Session>> + 'a {
    let at = Location::caller();
    async move {
        match s.store.list_sessions(filter, big_page()).await {
            Ok(found) => found,
            Err(e) => panic!("{at}: list_sessions({filter:?}) failed: {e:?}"),
        }
    }
}

/// `update_session`, which must succeed.
#[track_caller]
pub(crate) fn update<'a>(
    s: &'a TestStore,
    reference: &'a SessionRef,
    patch: &'a SessionPatch,
) -> impl Future<Output = Session> + 'a {
    let at = Location::caller();
    async move {
        match s.store.update_session(reference, patch).await {
            Ok(session) => session,
            Err(e) => panic!(
                "{at}: setup step update_session({:?}, {patch:?}) failed: {e:?}",
                reference.as_str()
            ),
        }
    }
}

/// `delete_message(id)`, which must succeed.
#[track_caller]
pub(crate) fn delete_message(s: &TestStore, id: Uuid) -> impl Future<Output = ()> + '_ {
    let at = Location::caller();
    async move {
        if let Err(e) = s.store.delete_message(id).await {
            panic!("{at}: setup step delete_message({id}) failed: {e:?}");
        }
    }
}

// ---------------------------------------------------------------- stored-or-not probes
//
// What is stored but invisible (soft-deleted rows, expired sessions kept for
// retention) is observable through the uniqueness rules: a stored session's UUID
// and a stored message's id are taken; once removed, they are free again.

/// Asserts that a message with `id` is stored (visible or not): appending a draft
/// with that id to a fresh session fails with `Conflict(Message)`.
#[track_caller]
pub(crate) fn assert_message_stored<'a>(
    s: &'a TestStore,
    id: Uuid,
    rule: &'a str,
) -> impl Future<Output = ()> + 'a {
    let at = Location::caller();
    async move {
        let probe = probe_session(s, at).await;
        let mut d = draft(s, Role::User, "probe");
        d.id = id;
        let result = s.store.append(&by_uuid(&probe), d).await;
        assert!(
            matches!(
                result,
                Err(colloquy_core::StoreError::Conflict(
                    colloquy_core::Entity::Message
                ))
            ),
            "{at}: {rule}\n  expected message {id} to be still stored, so that appending a \
             draft with its id fails with Err(Conflict(Message))\n  got: {result:?}"
        );
    }
}

/// Asserts that no message with `id` is stored: a draft with that id can be
/// appended to a fresh session (which then holds it).
#[track_caller]
pub(crate) fn assert_message_gone<'a>(
    s: &'a TestStore,
    id: Uuid,
    rule: &'a str,
) -> impl Future<Output = ()> + 'a {
    let at = Location::caller();
    async move {
        let probe = probe_session(s, at).await;
        let mut d = draft(s, Role::User, "probe");
        d.id = id;
        let result = s.store.append(&by_uuid(&probe), d).await;
        assert!(
            result.is_ok(),
            "{at}: {rule}\n  expected message {id} to be removed from the store, so that its \
             id can be appended again\n  got: {result:?} (the row is still stored)"
        );
    }
}

/// Asserts that a session with UUID `id` is stored (live or expired): creating a
/// session with that UUID fails with `Conflict(Session)`.
#[track_caller]
pub(crate) fn assert_session_stored<'a>(
    s: &'a TestStore,
    id: Uuid,
    rule: &'a str,
) -> impl Future<Output = ()> + 'a {
    let at = Location::caller();
    async move {
        let mut again = probe(s, "uuid-probe");
        again.id = id;
        let result = s.store.create_session(&again).await;
        assert!(
            matches!(
                result,
                Err(colloquy_core::StoreError::Conflict(
                    colloquy_core::Entity::Session
                ))
            ),
            "{at}: {rule}\n  expected session {id} to be still stored, so that creating a \
             session with its UUID fails with Err(Conflict(Session))\n  got: {result:?}"
        );
    }
}

/// Asserts that no session with UUID `id` is stored: a new session can take it.
#[track_caller]
pub(crate) fn assert_session_gone<'a>(
    s: &'a TestStore,
    id: Uuid,
    rule: &'a str,
) -> impl Future<Output = ()> + 'a {
    let at = Location::caller();
    async move {
        let mut again = probe(s, "uuid-probe");
        again.id = id;
        let result = s.store.create_session(&again).await;
        assert!(
            result.is_ok(),
            "{at}: {rule}\n  expected session {id} to be removed from the store, so that a new \
             session can take its UUID\n  got: {result:?} (the session is still stored)"
        );
    }
}

/// A session for probing that outlives every contract, so that it never counts
/// in a purge.
fn probe(s: &TestStore, prefix: &str) -> Session {
    let mut session = new_session(s, &format!("{prefix}-{}", Uuid::new_v4().simple()));
    session.expires_at = session.created_at + Duration::days(1000);
    session
}

async fn probe_session(s: &TestStore, at: &Location<'_>) -> Session {
    let probe = probe(s, "probe");
    if let Err(e) = s.store.create_session(&probe).await {
        panic!("{at}: setup step create_session(probe) failed: {e:?}");
    }
    probe
}
