//! The ports: what core needs from the outside world, as object-safe async traits.
//!
//! Each method's documentation states its contract in plain sentences; the
//! `colloquy-conformance` crate has one check per sentence, so an adapter that passes
//! the suite behaves like every other.
//!
//! # The store: [`ChatStore`]
//!
//! One trait holds sessions and their messages, and its methods are shaped like the
//! API: every API operation is **one** store call (chat is two: [`ChatStore::begin_turn`]
//! before the model runs, [`ChatStore::append`] after), taking the [`SessionRef`] the
//! client gave and returning everything the response needs. On a networked store that
//! is one round trip per API operation.
//!
//! Stores receive a [`Clock`] when they are built and judge expiry by it: a session
//! whose `expires_at` is not after `clock.now()` is *expired*, and an expired session
//! and its messages are invisible to every method, exactly as if deleted. They stay
//! stored until [`ChatStore::purge_expired`] (or, on stores with physical key expiry,
//! the backend) removes them: how long that is after expiry is the operator's
//! *retention* setting.
//!
//! Every method except [`ChatStore::begin_turn`] is required; `begin_turn` has a
//! default built from [`ChatStore::append`] and [`ChatStore::list_messages`], so a
//! custom adapter can start with the required methods and override `begin_turn` for
//! speed (one lock, one transaction, one script).
//!
//! # Writing your own adapter
//!
//! A complete (if naive) adapter that keeps everything in one `Mutex`. The
//! `colloquy-memory` crate is the production version of this; the conformance suite
//! checks either in one macro call.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
//!
//! use async_trait::async_trait;
//! use chrono::{DateTime, Utc};
//! use colloquy_core::ports::ChatStore;
//! use colloquy_core::{
//!     ChatMessage, Clock, Entity, MessageDraft, MessageQuery, Page, Session, SessionFilter,
//!     SessionPatch, SessionRef, StoreError,
//! };
//! use uuid::Uuid;
//!
//! #[derive(Default)]
//! struct Tables {
//!     sessions: HashMap<Uuid, Session>,
//!     messages: Vec<ChatMessage>, // in write order
//! }
//!
//! impl Tables {
//!     /// The live session with this UUID.
//!     fn live(&self, id: Uuid, now: DateTime<Utc>) -> Option<&Session> {
//!         self.sessions.get(&id).filter(|s| !s.is_expired_at(now))
//!     }
//!     /// The live session a reference names: by UUID first, then by session_id.
//!     fn find(&self, r: &SessionRef, now: DateTime<Utc>) -> Option<Session> {
//!         let live = |s: &&Session| !s.is_expired_at(now);
//!         let by_uuid = r.uuid().and_then(|id| self.sessions.get(&id)).filter(live);
//!         let by_sid = || self.sessions.values().filter(live).find(|s| s.session_id == r.as_str());
//!         by_uuid.or_else(by_sid).cloned()
//!     }
//! }
//!
//! struct NaiveStore {
//!     clock: Arc<dyn Clock>,
//!     tables: Mutex<Tables>,
//! }
//!
//! impl NaiveStore {
//!     fn lock(&self) -> MutexGuard<'_, Tables> {
//!         self.tables.lock().unwrap_or_else(PoisonError::into_inner)
//!     }
//! }
//!
//! const NO_SESSION: StoreError = StoreError::NotFound(Entity::Session);
//! const NO_MESSAGE: StoreError = StoreError::NotFound(Entity::Message);
//!
//! #[async_trait]
//! impl ChatStore for NaiveStore {
//!     async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
//!         let mut t = self.lock();
//!         let now = self.clock.now();
//!         let taken = t.sessions.contains_key(&session.id)
//!             || t.sessions.values()
//!                 .any(|s| !s.is_expired_at(now) && s.session_id == session.session_id);
//!         if taken {
//!             return Err(StoreError::Conflict(Entity::Session));
//!         }
//!         t.sessions.insert(session.id, session.clone());
//!         Ok(())
//!     }
//!     async fn session(&self, r: &SessionRef) -> Result<Option<Session>, StoreError> {
//!         Ok(self.lock().find(r, self.clock.now()))
//!     }
//!     async fn update_session(&self, r: &SessionRef, patch: &SessionPatch)
//!         -> Result<Session, StoreError> {
//!         let mut t = self.lock();
//!         let mut s = t.find(r, self.clock.now()).ok_or(NO_SESSION)?;
//!         patch.apply_to(&mut s);
//!         t.sessions.insert(s.id, s.clone());
//!         Ok(s)
//!     }
//!     async fn delete_session(&self, r: &SessionRef) -> Result<(), StoreError> {
//!         let mut t = self.lock();
//!         let s = t.find(r, self.clock.now()).ok_or(NO_SESSION)?;
//!         t.sessions.remove(&s.id);
//!         t.messages.retain(|m| m.session != s.id);
//!         Ok(())
//!     }
//!     async fn list_sessions(&self, f: &SessionFilter, page: Page)
//!         -> Result<Vec<Session>, StoreError> {
//!         let t = self.lock();
//!         let now = self.clock.now();
//!         let mut all: Vec<Session> = t.sessions.values()
//!             .filter(|s| !s.is_expired_at(now) && f.matches(s)).cloned().collect();
//!         all.sort_by(|a, b| (b.created_at, b.id).cmp(&(a.created_at, a.id)));
//!         Ok(all.into_iter().skip(page.offset).take(page.limit).collect())
//!     }
//!     async fn append(&self, to: &SessionRef, draft: MessageDraft)
//!         -> Result<(Session, ChatMessage), StoreError> {
//!         let mut t = self.lock();
//!         let session = t.find(to, self.clock.now()).ok_or(NO_SESSION)?;
//!         if !session.is_active {
//!             return Err(StoreError::SessionInactive);
//!         }
//!         if t.messages.iter().any(|m| m.id == draft.id) {
//!             return Err(StoreError::Conflict(Entity::Message));
//!         }
//!         let mut message = draft.into_message(session.id);
//!         if let Some(last) = t.messages.iter().rev().find(|m| m.session == session.id) {
//!             message.timestamp = message.timestamp.max(last.timestamp);
//!         }
//!         t.messages.push(message.clone());
//!         Ok((session, message))
//!     }
//!     async fn message(&self, id: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError> {
//!         let t = self.lock();
//!         let Some(m) = t.messages.iter().find(|m| m.id == id && !m.is_deleted) else {
//!             return Ok(None);
//!         };
//!         let session = t.live(m.session, self.clock.now());
//!         Ok(session.map(|s| (m.clone(), s.clone())))
//!     }
//!     async fn list_messages(&self, of: &SessionRef, q: &MessageQuery)
//!         -> Result<(Session, Vec<ChatMessage>), StoreError> {
//!         let t = self.lock();
//!         let session = t.find(of, self.clock.now()).ok_or(NO_SESSION)?;
//!         let all: Vec<&ChatMessage> =
//!             t.messages.iter().filter(|m| m.session == session.id).collect();
//!         // The cursor's place in write order; it may be soft-deleted, but must be ours.
//!         let place = |id: Uuid| all.iter().position(|m| m.id == id).ok_or(NO_MESSAGE);
//!         let (from, to) = q.cursor.map_or(Ok((0, all.len())), |c| c.range(all.len(), place))?;
//!         let window = all[from..to].iter().filter(|m| !m.is_deleted && q.filter.matches(m));
//!         let page: Vec<ChatMessage> = if q.order.is_newest_first() {
//!             window.rev().skip(q.page.offset).take(q.page.limit).map(|m| (*m).clone()).collect()
//!         } else {
//!             window.skip(q.page.offset).take(q.page.limit).map(|m| (*m).clone()).collect()
//!         };
//!         Ok((session, page))
//!     }
//!     async fn delete_message(&self, id: Uuid) -> Result<(), StoreError> {
//!         let mut t = self.lock();
//!         let now = self.clock.now();
//!         let session = t.messages.iter().find(|m| m.id == id && !m.is_deleted).map(|m| m.session);
//!         session.and_then(|s| t.live(s, now)).ok_or(NO_MESSAGE)?;
//!         for m in t.messages.iter_mut().filter(|m| m.id == id) {
//!             m.is_deleted = true;
//!         }
//!         Ok(())
//!     }
//!     async fn purge_expired(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
//!         let mut t = self.lock();
//!         let gone: Vec<Uuid> = t.sessions.values()
//!             .filter(|s| s.expires_at <= cutoff).map(|s| s.id).collect();
//!         for id in &gone {
//!             t.sessions.remove(id);
//!         }
//!         t.messages.retain(|m| !gone.contains(&m.session));
//!         Ok(gone.len() as u64)
//!     }
//!     async fn ping(&self) -> Result<(), StoreError> {
//!         Ok(())
//!     }
//! }
//! # let clock: Arc<dyn Clock> = Arc::new(colloquy_core::SystemClock);
//! # let _store: Arc<dyn ChatStore> = Arc::new(NaiveStore { clock, tables: Mutex::default() });
//! ```

use std::pin::Pin;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::Stream;
use uuid::Uuid;

use crate::error::{ModelError, StoreError};
use crate::feedback::Feedback;
use crate::inbox::{InboxEntry, InboxQuery};
use crate::message::{ChatMessage, MessageDraft, MessageQuery, Role};
use crate::model::{Completion, ModelEvent, ModelRequest};
use crate::session::{Page, Session, SessionFilter, SessionPatch, SessionRef};
use crate::stats::{HourStats, StatCounts};

pub use crate::clock::Clock;

/// What [`ChatStore::begin_turn`] returns: the stored user message and the history
/// the model needs, read in the same step.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The session, as stored when the message was appended.
    pub session: Session,
    /// The user's message, as stored.
    pub message: ChatMessage,
    /// The session's oldest `window` non-deleted `system` messages, in write order.
    pub system: Vec<ChatMessage>,
    /// The session's newest `window` non-deleted messages of any role, oldest first;
    /// the last one is `message`.
    pub recent: Vec<ChatMessage>,
}

/// Stores chat sessions and their messages.
///
/// A session is named by a [`SessionRef`]: the live session whose `id` equals the
/// reference's UUID if there is one, otherwise the live session whose `session_id`
/// equals the reference's text. Every method that takes a reference fails with
/// [`StoreError::NotFound`]`(Session)` when no live session matches (never existed,
/// deleted, or expired by the store's clock), and writes nothing then.
#[async_trait]
pub trait ChatStore: Send + Sync + 'static {
    /// Stores a new session as given (the service has filled every field).
    ///
    /// Fails with [`StoreError::Conflict`]`(Session)` when a live session already has
    /// the same `session_id`, or any stored session has the same `id`; nothing is
    /// written then. The `session_id` of an expired session may be reused, even while
    /// the expired session is still stored (retention).
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;

    /// Returns the live session that `reference` names, or `Ok(None)`.
    async fn session(&self, reference: &SessionRef) -> Result<Option<Session>, StoreError>;

    /// Applies `patch` to the live session `reference` names and returns the session
    /// as stored.
    ///
    /// Fields the patch leaves `None` are unchanged; `metadata` is replaced whole. A
    /// changed `expires_at` applies to the session and all its messages at once.
    async fn update_session(
        &self,
        reference: &SessionRef,
        patch: &SessionPatch,
    ) -> Result<Session, StoreError>;

    /// Deletes the live session `reference` names and every message in it,
    /// soft-deleted ones included.
    ///
    /// A second delete fails with `NotFound(Session)`. Once it returns, no message of
    /// the session is visible, and an append racing with the delete either fails with
    /// `NotFound(Session)` or is deleted too.
    async fn delete_session(&self, reference: &SessionRef) -> Result<(), StoreError>;

    /// Lists live sessions that pass `filter`, newest `created_at` first (equal
    /// `created_at`: greater `id` first), skipping `page.offset` and returning at most
    /// `page.limit`. Filters follow [`SessionFilter::matches`] exactly.
    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: Page,
    ) -> Result<Vec<Session>, StoreError>;

    /// Appends a message to the end of the live session `to` names; returns the
    /// session and the message as stored.
    ///
    /// Fails with [`StoreError::SessionInactive`] when the session's `is_active` is
    /// false, and with [`StoreError::Conflict`]`(Message)` when a message with the
    /// draft's `id` exists; nothing is written then. When the session is missing
    /// and the id is taken too, either error is correct (the contract does not
    /// order them: a store that checks the id first, as a Redis Cluster append
    /// whose pointer lives in another slot must, may report the conflict; ids
    /// only collide when a caller chooses them). The store raises the timestamp
    /// to the previous message's when it is earlier, so ordering by
    /// `(timestamp, write order)` is the write order. When many appends race on one
    /// session, each gets its own place in one total order.
    async fn append(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
    ) -> Result<(Session, ChatMessage), StoreError>;

    /// Returns the message `id` with its session, or `Ok(None)` when the message is
    /// missing or soft-deleted, or its session is missing or expired.
    async fn message(&self, id: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError>;

    /// Lists the non-deleted messages of the live session `of` names that pass
    /// `query`; returns the session and the page.
    ///
    /// Of the session's messages in write order, a `Before(id)` cursor keeps those
    /// written before message `id`, an `After(id)` cursor those written after it (the
    /// cursor message may be soft-deleted); filters follow [`MessageFilter::matches`]
    /// exactly; the rest are taken in `query.order`, skipping `query.page.offset` and
    /// returning at most `query.page.limit`. Fails with `NotFound(Message)` when the
    /// cursor names no message of this session. Costs O(offset + page) for an
    /// unfiltered query, whatever the order, cursor or length of the session.
    ///
    /// [`MessageFilter::matches`]: crate::MessageFilter::matches
    async fn list_messages(
        &self,
        of: &SessionRef,
        query: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), StoreError>;

    /// Marks the message `id` deleted; it stays stored but no reader sees it.
    ///
    /// Fails with `NotFound(Message)` when it is missing, already soft-deleted, or its
    /// session is missing or expired.
    async fn delete_message(&self, id: Uuid) -> Result<(), StoreError>;

    /// Removes physically every session whose `expires_at` is at or before `cutoff`,
    /// with all its messages; returns how many sessions it removed.
    ///
    /// The service calls it with `now - retention`, so expired data stays stored (and
    /// invisible) for the retention period. It never removes a session expiring after
    /// `cutoff`, nor a newer session that reused a purged session's `session_id`. A
    /// store whose backend expires data by itself (Redis key expiry) may return 0.
    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Succeeds when the backend answers; used by readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// A fresh id for a message the service is about to append to the session
    /// `session` names: the user's message, and the assistant's answer (whose id is
    /// also the stream's `response_id`). Ids a client chooses do not come from here.
    ///
    /// The default is [`Uuid::now_v7`]. A store may override it to place the id
    /// where that session's data lives (the Redis adapter, on a cluster, picks the
    /// random bits that decide the message pointer's hash slot), as long as the id
    /// stays a version 7 UUID with enough random bits left (50 or more) that ids
    /// written by several instances never collide.
    fn new_message_id(&self, session: &SessionRef) -> Uuid {
        let _ = session;
        Uuid::now_v7()
    }

    /// Chat's first step: appends the user's message as [`ChatStore::append`] does and
    /// returns it with the context the model needs (see [`Turn`]), at most `window`
    /// system messages and `window` recent ones.
    ///
    /// The default makes three calls; adapters override it to do all in one step.
    /// Costs O(window), however long the session.
    async fn begin_turn(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
        window: usize,
    ) -> Result<Turn, StoreError> {
        let (session, message) = self.append(to, draft).await?;
        let this = SessionRef::from_uuid(session.id);
        let (_, system) = self
            .list_messages(&this, &MessageQuery::oldest_of_role(Role::System, window))
            .await?;
        let (_, mut recent) = self
            .list_messages(&this, &MessageQuery::newest(window))
            .await?;
        recent.reverse();
        Ok(Turn {
            session,
            message,
            system,
            recent,
        })
    }

    // ------------------------------------------------------------ the console
    //
    // Provided methods: a third-party adapter may leave them out (they answer
    // `NotSupported`); every adapter of this workspace implements them.

    /// Records visitor feedback on the message `id`: stores `feedback` as the
    /// message's `metadata.feedback` (see [`Feedback::apply_to`]), replacing any
    /// earlier feedback (the last one wins), and returns the message as stored with
    /// its session. Every later read of the message (by id, in lists, in a turn's
    /// context) shows it; nothing else of the message changes.
    ///
    /// Fails with `NotFound(Message)` when the message is missing or soft-deleted, or
    /// its session is missing or expired; nothing is written then. The session's
    /// `is_active` does not matter.
    async fn set_feedback(
        &self,
        id: Uuid,
        feedback: &Feedback,
    ) -> Result<(ChatMessage, Session), StoreError> {
        let _ = (id, feedback);
        Err(StoreError::NotSupported("feedback"))
    }

    /// Erases everything stored about one visitor: every session whose
    /// `external_user_id` equals `external_user_id` exactly, live, inactive or expired
    /// but still stored, with all its messages, soft-deleted ones included. A hard
    /// delete: afterwards no method returns any of it and the ids are free again (a
    /// SQL store also keeps no copy of the text in free pages or a search index).
    /// Returns how much it erased; a second call erases nothing and returns zeros.
    /// Sessions of other visitors, and sessions without an `external_user_id`, stay.
    async fn erase_user(&self, external_user_id: &str) -> Result<Erased, StoreError> {
        let _ = external_user_id;
        Err(StoreError::NotSupported("erasing a visitor"))
    }

    /// Finds messages by the words of their text across every live session (the
    /// console's search): the non-deleted messages of live sessions whose text
    /// matches `query` as [`search::matches`](crate::search::matches) says (each
    /// word of the query begins a word of the text, case-insensitively), each with
    /// its session, newest timestamp first, skipping `page.offset` and returning at
    /// most `page.limit`. A query without words (see
    /// [`search::query_words`](crate::search::query_words)) finds nothing.
    ///
    /// SQL stores answer from a full-text index (cost grows with the matches, not
    /// the history); a store that cannot bound the cost answers `NotSupported`.
    async fn search_messages(
        &self,
        query: &str,
        page: Page,
    ) -> Result<Vec<(ChatMessage, Session)>, StoreError> {
        let _ = (query, page);
        Err(StoreError::NotSupported("searching messages"))
    }

    /// The console's inbox: the live sessions that pass `query.filter` (see
    /// [`InboxFilter::matches`](crate::inbox::InboxFilter::matches)), each as an
    /// [`InboxEntry`] equal to what [`inbox::entry_of`](crate::inbox::entry_of)
    /// computes from the session and all its messages, latest `last_activity_at`
    /// first (equal times: greater session `id` first), starting after
    /// `query.after` when given, at most `query.limit` of them.
    ///
    /// **Decision**: what a row shows is kept *as things happen*, in the same store
    /// call that changes it (SQL: columns of the session's row and indexes on them;
    /// Redis: fields of the session hash and sorted sets by last activity):
    /// [`ChatStore::append`] and [`ChatStore::begin_turn`] move the last activity and
    /// count the message, [`ChatStore::delete_message`] uncounts it,
    /// [`ChatStore::set_feedback`] counts down ratings, and
    /// [`ChatStore::update_session`] moves the state. A page reads O(page) rows
    /// (plus the rows a filter skips), whatever the history; it never scans
    /// messages.
    async fn inbox(&self, query: &InboxQuery) -> Result<Vec<InboxEntry>, StoreError> {
        let _ = query;
        Err(StoreError::NotSupported("the inbox"))
    }

    /// The dashboard's counters of every hour from the one `from` is in up to `to`
    /// (exclusive) that has any, oldest first (see [`crate::stats`] for what counts).
    ///
    /// **Decision**: the counters are kept *as things happen*, in the same store call
    /// that stores the event, one small write per event into the counters of its hour
    /// (SQL: an upsert in the same transaction; Redis: `HINCRBY` on the hour's hash,
    /// which expires with the retention): [`ChatStore::create_session`] counts a
    /// session, [`ChatStore::append`] and [`ChatStore::begin_turn`] a message by its
    /// role and metadata ([`StatCounts::of_message`], plus the ungrounded question
    /// it answers), [`ChatStore::set_feedback`] the rating (and takes back the one it
    /// replaces). A failed call counts nothing; deleting or erasing does not
    /// uncount (the counters say what happened). So this read costs O(hours in the
    /// range), however many sessions and messages are stored.
    async fn hourly_stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HourStats>, StoreError> {
        let _ = (from, to);
        Err(StoreError::NotSupported("stats"))
    }

    /// Adds `counts` to the counters of the hour `at` is in: for events the other
    /// methods do not see (a conversation handed to a person). Counts only; the
    /// hour's questions are left alone.
    async fn add_stats(&self, at: DateTime<Utc>, counts: &StatCounts) -> Result<(), StoreError> {
        let _ = (at, counts);
        Err(StoreError::NotSupported("stats"))
    }
}

/// What [`ChatStore::erase_user`] erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    /// Sessions erased.
    pub sessions: u64,
    /// Messages erased, soft-deleted ones included.
    pub messages: u64,
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
