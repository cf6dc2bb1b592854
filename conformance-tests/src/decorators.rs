//! The contract of a [`ChatStore`] decorator: it forwards **every** method of the
//! port to the store it wraps, the provided ones ([`ChatStore::new_message_id`],
//! [`ChatStore::begin_turn`]) included, and hands back the inner store's answer
//! unchanged, success or failure.
//!
//! [`assert_forwards_every_method`] wraps a [`SentinelStore`], whose every method
//! records its own name and answers with a value no default could produce, and calls
//! each method once through the decorator. A decorator that lets a provided method
//! fall back to the trait's default fails: the default runs on the decorator (other
//! methods, or a fresh id) and the sentinel never hears the call.
//!
//! A method added to the port is caught in two steps: colloquy-core's
//! `tests/decorators.rs` compares the trait's methods, read from its source, with
//! [`StoreOperation::ALL`] (plus `new_message_id`), and [`call`] matches on
//! [`StoreOperation`] exhaustively, so the new operation must be called here, and
//! answered by the sentinel, before this compiles.
//!
//! ```
//! use std::sync::Arc;
//! use colloquy_conformance::decorators::assert_forwards_every_method;
//! use colloquy_core::decorators::{CallCounter, ObservedStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! assert_forwards_every_method(|inner| Arc::new(ObservedStore::new(inner, CallCounter::default()))).await;
//! # }
//! ```

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use colloquy_core::decorators::StoreOperation;
use colloquy_core::ports::{ChatStore, Erased, Turn};
use colloquy_core::stats::{HourStats, StatCounts};
use colloquy_core::{
    ChatMessage, Entity, Feedback, MessageDraft, MessageQuery, Metadata, Page, Rating, Role,
    Session, SessionFilter, SessionPatch, SessionRef, StoreError,
};
use uuid::Uuid;

/// The name under which [`SentinelStore`] records [`ChatStore::new_message_id`].
pub const NEW_MESSAGE_ID: &str = "new_message_id";

/// The id [`SentinelStore::new_message_id`] hands out (the default makes a fresh v7).
pub const SENTINEL_ID: Uuid = Uuid::from_u128(0x5e47_1ae1_0000_7000_8000_0000_0000_0042);

/// A store that records every call by method name and answers each with a sentinel
/// (or, when built failing, with [`StoreError::Conflict`] of [`Entity::Message`]).
#[derive(Debug, Default)]
pub struct SentinelStore {
    calls: Mutex<Vec<&'static str>>,
    failing: bool,
}

impl SentinelStore {
    /// A sentinel whose every async method fails.
    #[must_use]
    pub fn failing() -> Self {
        Self {
            calls: Mutex::default(),
            failing: true,
        }
    }

    /// The methods called since the last call of `take`.
    pub fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn answer<T>(&self, method: &'static str, value: T) -> Result<T, StoreError> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(method);
        if self.failing {
            Err(StoreError::Conflict(Entity::Message))
        } else {
            Ok(value)
        }
    }
}

/// The session every sentinel answer carries.
#[must_use]
pub fn sentinel_session() -> Session {
    let at = Utc
        .timestamp_opt(1_000_000_000, 0)
        .single()
        .unwrap_or_default();
    Session {
        id: SENTINEL_ID,
        session_id: "sentinel".to_owned(),
        external_user_id: None,
        created_at: at,
        expires_at: at,
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    }
}

/// The message every sentinel answer carries.
#[must_use]
pub fn sentinel_message() -> ChatMessage {
    ChatMessage {
        id: SENTINEL_ID,
        session: SENTINEL_ID,
        message: "sentinel".to_owned(),
        role: Role::Assistant,
        metadata: Metadata::new(),
        timestamp: sentinel_session().created_at,
        is_deleted: false,
    }
}

fn sentinel_turn() -> Turn {
    Turn {
        session: sentinel_session(),
        message: sentinel_message(),
        system: vec![sentinel_message()],
        recent: vec![sentinel_message(), sentinel_message()],
    }
}

#[async_trait]
impl ChatStore for SentinelStore {
    async fn create_session(&self, _: &Session) -> Result<(), StoreError> {
        self.answer("create_session", ())
    }
    async fn session(&self, _: &SessionRef) -> Result<Option<Session>, StoreError> {
        self.answer("session", Some(sentinel_session()))
    }
    async fn update_session(
        &self,
        _: &SessionRef,
        _: &SessionPatch,
    ) -> Result<Session, StoreError> {
        self.answer("update_session", sentinel_session())
    }
    async fn delete_session(&self, _: &SessionRef) -> Result<(), StoreError> {
        self.answer("delete_session", ())
    }
    async fn list_sessions(&self, _: &SessionFilter, _: Page) -> Result<Vec<Session>, StoreError> {
        self.answer("list_sessions", vec![sentinel_session()])
    }
    async fn append(
        &self,
        _: &SessionRef,
        _: MessageDraft,
    ) -> Result<(Session, ChatMessage), StoreError> {
        self.answer("append", (sentinel_session(), sentinel_message()))
    }
    async fn message(&self, _: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError> {
        self.answer("message", Some((sentinel_message(), sentinel_session())))
    }
    async fn list_messages(
        &self,
        _: &SessionRef,
        _: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), StoreError> {
        self.answer(
            "list_messages",
            (sentinel_session(), vec![sentinel_message()]),
        )
    }
    async fn delete_message(&self, _: Uuid) -> Result<(), StoreError> {
        self.answer("delete_message", ())
    }
    async fn purge_expired(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        self.answer("purge_expired", 4242)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.answer("ping", ())
    }
    fn new_message_id(&self, _: &SessionRef) -> Uuid {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(NEW_MESSAGE_ID);
        SENTINEL_ID
    }
    async fn begin_turn(
        &self,
        _: &SessionRef,
        _: MessageDraft,
        _: usize,
    ) -> Result<Turn, StoreError> {
        self.answer("begin_turn", sentinel_turn())
    }
    async fn set_feedback(
        &self,
        _: Uuid,
        _: &Feedback,
    ) -> Result<(ChatMessage, Session), StoreError> {
        self.answer("set_feedback", (sentinel_message(), sentinel_session()))
    }
    async fn erase_user(&self, _: &str) -> Result<Erased, StoreError> {
        self.answer(
            "erase_user",
            Erased {
                sessions: 7,
                messages: 42,
            },
        )
    }
    async fn search_messages(
        &self,
        _: &str,
        _: Page,
    ) -> Result<Vec<(ChatMessage, Session)>, StoreError> {
        self.answer(
            "search_messages",
            vec![(sentinel_message(), sentinel_session())],
        )
    }
    async fn inbox(
        &self,
        _: &colloquy_core::inbox::InboxQuery,
    ) -> Result<Vec<colloquy_core::inbox::InboxEntry>, StoreError> {
        let session = sentinel_session();
        let message = sentinel_message();
        self.answer(
            "inbox",
            vec![colloquy_core::inbox::entry_of(&session, &[&message])],
        )
    }
    async fn hourly_stats(
        &self,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<Vec<HourStats>, StoreError> {
        let hour = HourStats {
            hour: sentinel_session().created_at,
            counts: sentinel_counts(),
            questions: vec![("sentinel".to_owned(), 42)],
        };
        self.answer("hourly_stats", vec![hour])
    }
    async fn add_stats(&self, _: DateTime<Utc>, _: &StatCounts) -> Result<(), StoreError> {
        self.answer("add_stats", ())
    }
}

/// The counters the sentinel's stats carry.
fn sentinel_counts() -> StatCounts {
    let mut counts = StatCounts::default();
    counts.set("sessions", 42);
    counts
}

/// What one call answered, reduced to something comparable.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// The call succeeded with this value, printed.
    Ok(String),
    /// The call failed with this error, printed.
    Err(String),
}

fn answer<T: std::fmt::Debug>(result: Result<T, StoreError>) -> Answer {
    match result {
        Ok(v) => Answer::Ok(format!("{v:?}")),
        Err(e) => Answer::Err(format!("{e:?}")),
    }
}

/// Calls `operation` once on `store` with arbitrary arguments.
pub async fn call(store: &dyn ChatStore, operation: StoreOperation) -> Answer {
    let r = SessionRef::parse("sentinel");
    let draft = || MessageDraft {
        id: SENTINEL_ID,
        role: Role::User,
        message: "hi".to_owned(),
        metadata: Metadata::new(),
        timestamp: sentinel_session().created_at,
    };
    let page = Page {
        limit: 1,
        offset: 0,
    };
    match operation {
        StoreOperation::CreateSession => answer(store.create_session(&sentinel_session()).await),
        StoreOperation::Session => answer(store.session(&r).await),
        StoreOperation::UpdateSession => {
            answer(store.update_session(&r, &SessionPatch::default()).await)
        }
        StoreOperation::DeleteSession => answer(store.delete_session(&r).await),
        StoreOperation::ListSessions => {
            answer(store.list_sessions(&SessionFilter::default(), page).await)
        }
        StoreOperation::Append => answer(store.append(&r, draft()).await),
        StoreOperation::Message => answer(store.message(SENTINEL_ID).await),
        StoreOperation::ListMessages => {
            answer(store.list_messages(&r, &MessageQuery::newest(1)).await)
        }
        StoreOperation::DeleteMessage => answer(store.delete_message(SENTINEL_ID).await),
        StoreOperation::PurgeExpired => answer(store.purge_expired(Utc::now()).await),
        StoreOperation::Ping => answer(store.ping().await),
        StoreOperation::BeginTurn => answer(store.begin_turn(&r, draft(), 2).await),
        StoreOperation::SetFeedback => {
            let feedback = Feedback {
                rating: Rating::Down,
                comment: Some("sentinel".to_owned()),
                at: sentinel_session().created_at,
            };
            answer(store.set_feedback(SENTINEL_ID, &feedback).await)
        }
        StoreOperation::EraseUser => answer(store.erase_user("sentinel").await),
        StoreOperation::SearchMessages => answer(store.search_messages("sentinel", page).await),
        StoreOperation::Inbox => {
            let query = colloquy_core::inbox::InboxQuery {
                limit: 3,
                ..colloquy_core::inbox::InboxQuery::default()
            };
            answer(store.inbox(&query).await)
        }
        StoreOperation::HourlyStats => {
            let at = sentinel_session().created_at;
            answer(store.hourly_stats(at, at).await)
        }
        StoreOperation::AddStats => {
            let at = sentinel_session().created_at;
            answer(store.add_stats(at, &sentinel_counts()).await)
        }
    }
}

/// Checks that the decorator `wrap` builds around a store forwards every method of
/// [`ChatStore`] to it, once, and returns its answer unchanged — successes (from a
/// [`SentinelStore`]) and failures (from [`SentinelStore::failing`]).
///
/// # Panics
/// When a method is not forwarded, forwarded to another method or more than once,
/// or its answer changed: the message names the method.
pub async fn assert_forwards_every_method<F>(wrap: F)
where
    F: Fn(Arc<dyn ChatStore>) -> Arc<dyn ChatStore>,
{
    for failing in [false, true] {
        let sentinel = Arc::new(if failing {
            SentinelStore::failing()
        } else {
            SentinelStore::default()
        });
        let decorated = wrap(sentinel.clone());
        for operation in StoreOperation::ALL {
            let expected = call(sentinel.as_ref(), operation).await;
            sentinel.take();
            let got = call(decorated.as_ref(), operation).await;
            assert_eq!(
                sentinel.take(),
                [operation.name()],
                "the decorator must forward `{}` to the store it wraps, once",
                operation.name()
            );
            assert_eq!(
                got,
                expected,
                "the decorator changed the answer of `{}`",
                operation.name()
            );
        }
        let id = decorated.new_message_id(&SessionRef::parse("sentinel"));
        assert_eq!(
            (sentinel.take(), id),
            (vec![NEW_MESSAGE_ID], SENTINEL_ID),
            "the decorator must forward `new_message_id` (a provided method) and return its id"
        );
    }
}
