//! The ports: what core needs from the outside world, as object-safe async traits.
//!
//! Each method's documentation states its contract in plain sentences; the
//! `colloquy-conformance` crate has one check per sentence, so an adapter that passes
//! the suite behaves like every other.
//!
//! Stores receive a [`Clock`] when they are built and judge expiry by it: a session
//! whose `expires_at` is not after `clock.now()` is *expired*, and an expired session
//! and its messages are invisible to every method, exactly as if deleted. A store may
//! purge expired data physically at any later time.
//!
//! # Writing your own adapter
//!
//! A complete (if naive) adapter that keeps everything in one `Mutex`. The
//! `colloquy-memory` crate is the production version of this; the conformance suite
//! checks either in one macro call.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//!
//! use async_trait::async_trait;
//! use colloquy_core::ports::{MessageStore, SessionStore};
//! use colloquy_core::{
//!     ChatMessage, Clock, MessageFilter, Page, Session, SessionFilter, SessionPatch,
//!     SessionRef, StoreError,
//! };
//! use uuid::Uuid;
//!
//! #[derive(Default)]
//! struct Tables {
//!     sessions: HashMap<Uuid, Session>,
//!     messages: Vec<ChatMessage>, // in write order
//! }
//!
//! struct NaiveStore {
//!     clock: Arc<dyn Clock>,
//!     tables: Mutex<Tables>,
//! }
//!
//! impl NaiveStore {
//!     fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
//!         self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
//!     }
//!     fn live(&self, t: &Tables, id: Uuid) -> Option<Session> {
//!         let now = self.clock.now();
//!         t.sessions.get(&id).filter(|s| !s.is_expired_at(now)).cloned()
//!     }
//! }
//!
//! #[async_trait]
//! impl SessionStore for NaiveStore {
//!     async fn create(&self, session: &Session) -> Result<(), StoreError> {
//!         let mut t = self.lock();
//!         let now = self.clock.now();
//!         let taken = t.sessions.values().any(|s| {
//!             !s.is_expired_at(now) && (s.id == session.id || s.session_id == session.session_id)
//!         });
//!         if taken {
//!             return Err(StoreError::Conflict);
//!         }
//!         t.sessions.insert(session.id, session.clone());
//!         Ok(())
//!     }
//!     async fn get(&self, r: &SessionRef) -> Result<Option<Session>, StoreError> {
//!         let t = self.lock();
//!         let now = self.clock.now();
//!         let live = |s: &&Session| !s.is_expired_at(now);
//!         let by_uuid = r.uuid().and_then(|id| t.sessions.get(&id)).filter(live);
//!         let by_sid = || t.sessions.values().filter(live).find(|s| s.session_id == r.as_str());
//!         Ok(by_uuid.or_else(by_sid).cloned())
//!     }
//!     async fn update(&self, id: Uuid, patch: &SessionPatch) -> Result<Session, StoreError> {
//!         let mut t = self.lock();
//!         let mut s = self.live(&t, id).ok_or(StoreError::NotFound)?;
//!         patch.apply_to(&mut s);
//!         t.sessions.insert(id, s.clone());
//!         Ok(s)
//!     }
//!     async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
//!         let mut t = self.lock();
//!         self.live(&t, id).ok_or(StoreError::NotFound)?;
//!         t.sessions.remove(&id);
//!         t.messages.retain(|m| m.session != id);
//!         Ok(())
//!     }
//!     async fn list(&self, f: &SessionFilter, page: Page) -> Result<Vec<Session>, StoreError> {
//!         let t = self.lock();
//!         let now = self.clock.now();
//!         let mut all: Vec<Session> = t.sessions.values()
//!             .filter(|s| !s.is_expired_at(now) && f.matches(s)).cloned().collect();
//!         all.sort_by(|a, b| (b.created_at, b.id).cmp(&(a.created_at, a.id)));
//!         Ok(all.into_iter().skip(page.offset).take(page.limit).collect())
//!     }
//!     async fn ping(&self) -> Result<(), StoreError> {
//!         Ok(())
//!     }
//! }
//!
//! #[async_trait]
//! impl MessageStore for NaiveStore {
//!     async fn append(&self, message: ChatMessage) -> Result<ChatMessage, StoreError> {
//!         let mut t = self.lock();
//!         let session = self.live(&t, message.session).ok_or(StoreError::NotFound)?;
//!         if !session.is_active {
//!             return Err(StoreError::SessionInactive);
//!         }
//!         if t.messages.iter().any(|m| m.id == message.id) {
//!             return Err(StoreError::Conflict);
//!         }
//!         let mut message = message;
//!         if let Some(last) = t.messages.iter().rev().find(|m| m.session == session.id) {
//!             message.timestamp = message.timestamp.max(last.timestamp);
//!         }
//!         t.messages.push(message.clone());
//!         Ok(message)
//!     }
//!     async fn get(&self, id: Uuid) -> Result<Option<ChatMessage>, StoreError> {
//!         Ok(self.get_stored(id).await?.filter(|m| !m.is_deleted))
//!     }
//!     async fn get_stored(&self, id: Uuid) -> Result<Option<ChatMessage>, StoreError> {
//!         let t = self.lock();
//!         let m = t.messages.iter().find(|m| m.id == id).cloned();
//!         Ok(m.filter(|m| self.live(&t, m.session).is_some()))
//!     }
//!     async fn list(&self, session: Uuid, f: &MessageFilter, page: Page)
//!         -> Result<Vec<ChatMessage>, StoreError> {
//!         let t = self.lock();
//!         self.live(&t, session).ok_or(StoreError::NotFound)?;
//!         Ok(t.messages.iter()
//!             .filter(|m| m.session == session && !m.is_deleted && f.matches(m))
//!             .skip(page.offset).take(page.limit).cloned().collect())
//!     }
//!     async fn recent(&self, session: Uuid, limit: usize) -> Result<Vec<ChatMessage>, StoreError> {
//!         let t = self.lock();
//!         self.live(&t, session).ok_or(StoreError::NotFound)?;
//!         let mut newest: Vec<ChatMessage> = t.messages.iter().rev()
//!             .filter(|m| m.session == session && !m.is_deleted)
//!             .take(limit).cloned().collect();
//!         newest.reverse();
//!         Ok(newest)
//!     }
//!     async fn soft_delete(&self, id: Uuid) -> Result<(), StoreError> {
//!         let mut t = self.lock();
//!         let session = t.messages.iter().find(|m| m.id == id && !m.is_deleted).map(|m| m.session);
//!         session.and_then(|s| self.live(&t, s)).ok_or(StoreError::NotFound)?;
//!         for m in t.messages.iter_mut().filter(|m| m.id == id) {
//!             m.is_deleted = true;
//!         }
//!         Ok(())
//!     }
//! }
//! ```

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use uuid::Uuid;

use crate::error::{ModelError, StoreError};
use crate::message::{ChatMessage, MessageFilter};
use crate::model::{Completion, ModelEvent, ModelRequest};
use crate::session::{Page, Session, SessionFilter, SessionPatch, SessionRef};

pub use crate::clock::Clock;

/// Stores chat sessions.
///
/// Usually implemented by the same type as [`MessageStore`], since deleting a session
/// deletes its messages.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session as given (the service has filled every field).
    ///
    /// Fails with [`StoreError::Conflict`] when a live session already has the same
    /// `session_id` or the same `id`; nothing is written then. The `session_id` of an
    /// expired session may be reused.
    async fn create(&self, session: &Session) -> Result<(), StoreError>;

    /// Returns the live session that `reference` names: the one whose `id` equals the
    /// reference's UUID if there is one, otherwise the one whose `session_id` equals
    /// the reference's text.
    ///
    /// Returns `Ok(None)` when no live session matches (never existed, deleted, or
    /// expired by the store's clock).
    async fn get(&self, reference: &SessionRef) -> Result<Option<Session>, StoreError>;

    /// Applies `patch` to the live session `id` and returns the session as stored.
    ///
    /// Fields the patch leaves `None` are unchanged; `metadata` is replaced whole. A
    /// changed `expires_at` applies to the session and all its messages at once.
    /// Fails with [`StoreError::NotFound`] when the session is missing or expired.
    async fn update(&self, id: Uuid, patch: &SessionPatch) -> Result<Session, StoreError>;

    /// Deletes the live session `id` and every message in it, soft-deleted ones included.
    ///
    /// Fails with [`StoreError::NotFound`] when the session is missing or expired, so a
    /// second delete fails. Once it returns, no message of the session is visible, and
    /// an append racing with the delete either fails with `NotFound` or is deleted too.
    async fn delete(&self, id: Uuid) -> Result<(), StoreError>;

    /// Lists live sessions that pass `filter`, newest `created_at` first (equal
    /// `created_at`: greater `id` first), skipping `page.offset` and returning at most
    /// `page.limit`. Filters follow [`SessionFilter::matches`] exactly.
    async fn list(&self, filter: &SessionFilter, page: Page) -> Result<Vec<Session>, StoreError>;

    /// Succeeds when the backend answers; used by readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Stores the messages of sessions.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Appends `message` to the end of its session's order and returns it as stored.
    ///
    /// Fails with [`StoreError::NotFound`] when the session is missing or expired, with
    /// [`StoreError::SessionInactive`] when its `is_active` is false, and with
    /// [`StoreError::Conflict`] when a message with the same `id` exists; nothing is
    /// written then. The store raises the timestamp to the previous message's when it
    /// is earlier, so ordering by `(timestamp, write order)` is the write order. When
    /// many appends race on one session, each gets its own place in one total order.
    async fn append(&self, message: ChatMessage) -> Result<ChatMessage, StoreError>;

    /// Returns the message `id`, or `Ok(None)` when it is missing, soft-deleted, or its
    /// session is missing or expired.
    async fn get(&self, id: Uuid) -> Result<Option<ChatMessage>, StoreError>;

    /// Returns the message `id` even when it is soft-deleted (with `is_deleted` set),
    /// for audits; `Ok(None)` when it never existed or its session is missing or
    /// expired. Soft delete never removes a row.
    async fn get_stored(&self, id: Uuid) -> Result<Option<ChatMessage>, StoreError>;

    /// Lists the session's non-deleted messages that pass `filter`, in write order,
    /// skipping `page.offset` and returning at most `page.limit`. Filters follow
    /// [`MessageFilter::matches`] exactly.
    ///
    /// Fails with [`StoreError::NotFound`] when the session is missing or expired. Costs
    /// O(page) for an unfiltered list, however long the session.
    async fn list(
        &self,
        session: Uuid,
        filter: &MessageFilter,
        page: Page,
    ) -> Result<Vec<ChatMessage>, StoreError>;

    /// Returns the session's `limit` newest non-deleted messages, oldest first.
    ///
    /// Fails with [`StoreError::NotFound`] when the session is missing or expired.
    async fn recent(&self, session: Uuid, limit: usize) -> Result<Vec<ChatMessage>, StoreError>;

    /// Marks the message `id` deleted; it stays stored but no reader sees it.
    ///
    /// Fails with [`StoreError::NotFound`] when it is missing, already soft-deleted, or
    /// its session is missing or expired.
    async fn soft_delete(&self, id: Uuid) -> Result<(), StoreError>;
}

/// A stream of model output; see [`ChatModel::stream`].
pub type ModelStream = Pin<Box<dyn Stream<Item = Result<ModelEvent, ModelError>> + Send>>;

/// A language model.
#[async_trait]
pub trait ChatModel: Send + Sync + 'static {
    /// Answers the conversation in `request` in one piece.
    async fn complete(&self, request: &ModelRequest) -> Result<Completion, ModelError>;

    /// Answers the conversation in `request` as a stream of text deltas, ending with
    /// [`ModelEvent::Finished`]. An `Err` item ends the stream: the answer is
    /// truncated. Dropping the stream abandons the generation (and the upstream
    /// request, for remote models).
    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ModelError>;
}
