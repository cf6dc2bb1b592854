//! Decorators of the ports: wrappers that forward every call to the adapter they
//! wrap and tell an observer about it.
//!
//! [`ObservedStore`] is the one [`ChatStore`] decorator. It forwards **every**
//! method of the port, the provided ones ([`ChatStore::new_message_id`],
//! [`ChatStore::begin_turn`]) included, so wrapping a store never changes what it
//! does (a Redis Cluster store keeps placing answer ids in their session's slot),
//! and reports each call to a [`StoreObserver`]: the HTTP adapter's metrics are one
//! (`colloquy_http::Metrics::store_observer`), [`CallCounter`] (the tests' round-trip
//! pins) another. No I/O happens here; the observer decides what a call is worth.
//!
//! ```
//! # use std::sync::Arc;
//! # use colloquy_core::decorators::{CallCounter, ObservedStore, StoreOperation};
//! # use colloquy_core::{ChatService, SystemClock};
//! # use colloquy_memory::MemoryStore;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), colloquy_core::ServiceError> {
//! let clock = Arc::new(SystemClock);
//! let memory = Arc::new(MemoryStore::new(clock.clone()));
//! let store = Arc::new(ObservedStore::new(memory, CallCounter::default()));
//! let service = ChatService::builder(store.clone(), clock).build();
//! service.ready().await?;
//! assert_eq!(store.observer().count(StoreOperation::Ping), 1);
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::StoreError;
use crate::feedback::Feedback;
use crate::inbox::{InboxEntry, InboxQuery};
use crate::message::{ChatMessage, MessageDraft, MessageQuery};
use crate::ports::{ChatStore, Erased, Turn};
use crate::session::{Page, Session, SessionFilter, SessionPatch, SessionRef};
use crate::stats::{HourStats, StatCounts};

/// The [`ChatStore`] methods that reach the backend (every method but the
/// synchronous [`ChatStore::new_message_id`]), named as in the trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreOperation {
    /// [`ChatStore::create_session`].
    CreateSession,
    /// [`ChatStore::session`].
    Session,
    /// [`ChatStore::update_session`].
    UpdateSession,
    /// [`ChatStore::delete_session`].
    DeleteSession,
    /// [`ChatStore::list_sessions`].
    ListSessions,
    /// [`ChatStore::append`].
    Append,
    /// [`ChatStore::message`].
    Message,
    /// [`ChatStore::list_messages`].
    ListMessages,
    /// [`ChatStore::delete_message`].
    DeleteMessage,
    /// [`ChatStore::purge_expired`].
    PurgeExpired,
    /// [`ChatStore::ping`].
    Ping,
    /// [`ChatStore::begin_turn`].
    BeginTurn,
    /// [`ChatStore::set_feedback`].
    SetFeedback,
    /// [`ChatStore::erase_user`].
    EraseUser,
    /// [`ChatStore::search_messages`].
    SearchMessages,
    /// [`ChatStore::inbox`].
    Inbox,
    /// [`ChatStore::hourly_stats`].
    HourlyStats,
    /// [`ChatStore::add_stats`].
    AddStats,
}

impl StoreOperation {
    /// Every operation, in the trait's order.
    pub const ALL: [Self; 18] = [
        Self::CreateSession,
        Self::Session,
        Self::UpdateSession,
        Self::DeleteSession,
        Self::ListSessions,
        Self::Append,
        Self::Message,
        Self::ListMessages,
        Self::DeleteMessage,
        Self::PurgeExpired,
        Self::Ping,
        Self::BeginTurn,
        Self::SetFeedback,
        Self::EraseUser,
        Self::SearchMessages,
        Self::Inbox,
        Self::HourlyStats,
        Self::AddStats,
    ];

    /// The method's name (`create_session`, ...): a stable label for metrics.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::CreateSession => "create_session",
            Self::Session => "session",
            Self::UpdateSession => "update_session",
            Self::DeleteSession => "delete_session",
            Self::ListSessions => "list_sessions",
            Self::Append => "append",
            Self::Message => "message",
            Self::ListMessages => "list_messages",
            Self::DeleteMessage => "delete_message",
            Self::PurgeExpired => "purge_expired",
            Self::Ping => "ping",
            Self::BeginTurn => "begin_turn",
            Self::SetFeedback => "set_feedback",
            Self::EraseUser => "erase_user",
            Self::SearchMessages => "search_messages",
            Self::Inbox => "inbox",
            Self::HourlyStats => "hourly_stats",
            Self::AddStats => "add_stats",
        }
    }
}

/// What an [`ObservedStore`] reports. Called on the caller's task, after the inner
/// store answered: keep it cheap and never block.
pub trait StoreObserver: Send + Sync + 'static {
    /// A call of `operation` ended after `elapsed`, failed with `error` or not.
    fn finished(&self, operation: StoreOperation, elapsed: Duration, error: Option<&StoreError>);

    /// A message is stored: the result of [`ChatStore::append`] or the user's
    /// message of [`ChatStore::begin_turn`]. Default: nothing.
    fn stored(&self, message: &ChatMessage) {
        let _ = message;
    }

    /// The inner store handed out `id` for a message of the session `session` names
    /// ([`ChatStore::new_message_id`]). Default: nothing.
    fn message_id(&self, session: &SessionRef, id: Uuid) {
        let _ = (session, id);
    }
}

/// A [`ChatStore`] that forwards every method to `inner` and reports each call to
/// its [`StoreObserver`]; see the [module](self).
#[derive(Debug)]
pub struct ObservedStore<S: ?Sized, O> {
    inner: Arc<S>,
    observer: O,
}

impl<S: ChatStore + ?Sized, O: StoreObserver> ObservedStore<S, O> {
    /// Wraps `inner`, reporting to `observer`.
    pub fn new(inner: Arc<S>, observer: O) -> Self {
        Self { inner, observer }
    }

    /// The store it wraps.
    #[must_use]
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// The observer it reports to.
    #[must_use]
    pub fn observer(&self) -> &O {
        &self.observer
    }

    async fn observed<T: Send>(
        &self,
        operation: StoreOperation,
        call: impl std::future::Future<Output = Result<T, StoreError>> + Send,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.observer
            .finished(operation, started.elapsed(), result.as_ref().err());
        result
    }
}

#[async_trait]
impl<S: ChatStore + ?Sized, O: StoreObserver> ChatStore for ObservedStore<S, O> {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let call = self.inner.create_session(session);
        self.observed(StoreOperation::CreateSession, call).await
    }

    async fn session(&self, reference: &SessionRef) -> Result<Option<Session>, StoreError> {
        let call = self.inner.session(reference);
        self.observed(StoreOperation::Session, call).await
    }

    async fn update_session(
        &self,
        reference: &SessionRef,
        patch: &SessionPatch,
    ) -> Result<Session, StoreError> {
        let call = self.inner.update_session(reference, patch);
        self.observed(StoreOperation::UpdateSession, call).await
    }

    async fn delete_session(&self, reference: &SessionRef) -> Result<(), StoreError> {
        let call = self.inner.delete_session(reference);
        self.observed(StoreOperation::DeleteSession, call).await
    }

    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: Page,
    ) -> Result<Vec<Session>, StoreError> {
        let call = self.inner.list_sessions(filter, page);
        self.observed(StoreOperation::ListSessions, call).await
    }

    async fn append(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
    ) -> Result<(Session, ChatMessage), StoreError> {
        let call = self.inner.append(to, draft);
        let stored = self.observed(StoreOperation::Append, call).await?;
        self.observer.stored(&stored.1);
        Ok(stored)
    }

    async fn message(&self, id: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError> {
        let call = self.inner.message(id);
        self.observed(StoreOperation::Message, call).await
    }

    async fn list_messages(
        &self,
        of: &SessionRef,
        query: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), StoreError> {
        let call = self.inner.list_messages(of, query);
        self.observed(StoreOperation::ListMessages, call).await
    }

    async fn delete_message(&self, id: Uuid) -> Result<(), StoreError> {
        let call = self.inner.delete_message(id);
        self.observed(StoreOperation::DeleteMessage, call).await
    }

    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let call = self.inner.purge_expired(cutoff);
        self.observed(StoreOperation::PurgeExpired, call).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.observed(StoreOperation::Ping, self.inner.ping()).await
    }

    fn new_message_id(&self, session: &SessionRef) -> Uuid {
        let id = self.inner.new_message_id(session);
        self.observer.message_id(session, id);
        id
    }

    async fn begin_turn(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
        window: usize,
    ) -> Result<Turn, StoreError> {
        let call = self.inner.begin_turn(to, draft, window);
        let turn = self.observed(StoreOperation::BeginTurn, call).await?;
        self.observer.stored(&turn.message);
        Ok(turn)
    }

    async fn set_feedback(
        &self,
        id: Uuid,
        feedback: &Feedback,
    ) -> Result<(ChatMessage, Session), StoreError> {
        let call = self.inner.set_feedback(id, feedback);
        self.observed(StoreOperation::SetFeedback, call).await
    }

    async fn erase_user(&self, external_user_id: &str) -> Result<Erased, StoreError> {
        let call = self.inner.erase_user(external_user_id);
        self.observed(StoreOperation::EraseUser, call).await
    }

    async fn search_messages(
        &self,
        query: &str,
        page: Page,
    ) -> Result<Vec<(ChatMessage, Session)>, StoreError> {
        let call = self.inner.search_messages(query, page);
        self.observed(StoreOperation::SearchMessages, call).await
    }

    async fn inbox(&self, query: &InboxQuery) -> Result<Vec<InboxEntry>, StoreError> {
        let call = self.inner.inbox(query);
        self.observed(StoreOperation::Inbox, call).await
    }

    async fn hourly_stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HourStats>, StoreError> {
        let call = self.inner.hourly_stats(from, to);
        self.observed(StoreOperation::HourlyStats, call).await
    }

    async fn add_stats(&self, at: DateTime<Utc>, counts: &StatCounts) -> Result<(), StoreError> {
        let call = self.inner.add_stats(at, counts);
        self.observed(StoreOperation::AddStats, call).await
    }
}

/// A [`StoreObserver`] that counts the calls of each operation (each one a round
/// trip on a networked store) and keeps every message id handed out, with the
/// reference it was asked for. Meant for tests and benchmarks that pin how many
/// store calls a use case makes: it keeps every id, so it grows without bound.
#[derive(Debug, Default)]
pub struct CallCounter {
    calls: [AtomicUsize; StoreOperation::ALL.len()],
    ids: Mutex<Vec<(SessionRef, Uuid)>>,
}

impl CallCounter {
    /// Calls of `operation` so far.
    #[must_use]
    pub fn count(&self, operation: StoreOperation) -> usize {
        self.calls[operation as usize].load(Ordering::SeqCst)
    }

    /// Calls of every operation so far.
    #[must_use]
    pub fn total(&self) -> usize {
        self.calls.iter().map(|c| c.load(Ordering::SeqCst)).sum()
    }

    /// Every message id handed out so far, with the reference it was asked for.
    #[must_use]
    pub fn message_ids(&self) -> Vec<(SessionRef, Uuid)> {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl StoreObserver for CallCounter {
    fn finished(&self, operation: StoreOperation, _: Duration, _: Option<&StoreError>) {
        self.calls[operation as usize].fetch_add(1, Ordering::SeqCst);
    }

    fn message_id(&self, session: &SessionRef, id: Uuid) {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((session.clone(), id));
    }
}
