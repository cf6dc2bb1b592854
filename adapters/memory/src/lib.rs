//! # colloquy-memory
//!
//! A concurrent in-memory [`ChatStore`]. Nothing survives a restart: use it for
//! tests, demos and single-process deployments where chat history is disposable.
//!
//! - Every operation takes the lock once: lookups by UUID and by `session_id` are
//!   hash-map lookups (O(1)).
//! - A session's messages live in one vector in write order, with the positions of
//!   its system messages beside it, so a page costs O(offset + page) in either order
//!   and from any cursor, and a chat turn O(context window), however long the session.
//! - One `RwLock` guards the tables; it is never held across an `.await`.
//! - Expired sessions stay invisible until [`ChatStore::purge_expired`] removes them
//!   (an ordered expiry index makes that O(expired)); `ChatService::purge_expired`,
//!   which the `colloquy` server runs periodically, calls it with the retention.
//!
//! ```
//! use std::sync::Arc;
//! use colloquy_core::{ChatService, EchoModel, ServiceConfig, SystemClock};
//! use colloquy_memory::MemoryStore;
//!
//! let clock = Arc::new(SystemClock);
//! let store = Arc::new(MemoryStore::new(clock.clone()));
//! let service = ChatService::builder(store, clock)
//!     .model(Arc::new(EchoModel::new()))
//!     .config(ServiceConfig::default())
//!     .build();
//! # let _ = service;
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use colloquy_core::ports::{ChatStore, Erased, Turn};
use colloquy_core::stats::{self, HourStats, StatCounts};
use colloquy_core::{
    ChatMessage, Clock, Entity, Feedback, MessageDraft, MessageQuery, Page, Role, Session,
    SessionFilter, SessionPatch, SessionRef, StoreError,
};
use uuid::Uuid;

const NO_SESSION: StoreError = StoreError::NotFound(Entity::Session);
const NO_MESSAGE: StoreError = StoreError::NotFound(Entity::Message);

/// One session with its messages in write order (soft-deleted ones included).
#[derive(Debug)]
struct Entry {
    session: Session,
    messages: Vec<ChatMessage>,
    /// Positions in `messages` of the system messages, in write order.
    system: Vec<usize>,
}

impl Entry {
    /// Appends a draft, raising its timestamp to the previous message's.
    fn push(&mut self, draft: MessageDraft) -> ChatMessage {
        let mut message = draft.into_message(self.session.id);
        if let Some(last) = self.messages.last() {
            message.timestamp = message.timestamp.max(last.timestamp);
        }
        if message.role == Role::System {
            self.system.push(self.messages.len());
        }
        self.messages.push(message.clone());
        message
    }

    /// The oldest `limit` non-deleted system messages.
    fn system_messages(&self, limit: usize) -> Vec<ChatMessage> {
        self.system
            .iter()
            .map(|&i| &self.messages[i])
            .filter(|m| !m.is_deleted)
            .take(limit)
            .cloned()
            .collect()
    }
}

#[derive(Debug, Default)]
struct Tables {
    sessions: HashMap<Uuid, Entry>,
    /// The newest session to take each `session_id`.
    by_session_id: HashMap<String, Uuid>,
    /// `(created_at, id)`; iterated backwards for newest first.
    by_created: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// `(expires_at, id)`; the front holds the next sessions to purge.
    by_expiry: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// Message id -> (session id, position in the session's vector).
    message_index: HashMap<Uuid, (Uuid, usize)>,
    /// The dashboard's counters by hour (see `colloquy_core::stats`).
    stats: BTreeMap<DateTime<Utc>, HourEntry>,
}

/// The counters of one hour.
#[derive(Debug, Default)]
struct HourEntry {
    counts: StatCounts,
    /// Ungrounded question key -> how often; at most `MAX_QUESTIONS_PER_HOUR` keys.
    questions: HashMap<String, u64>,
}

impl Tables {
    fn live(&self, id: Uuid, now: DateTime<Utc>) -> Option<&Entry> {
        self.sessions
            .get(&id)
            .filter(|e| !e.session.is_expired_at(now))
    }

    /// The id of the live session `reference` names: by UUID first, then session_id.
    fn resolve(&self, reference: &SessionRef, now: DateTime<Utc>) -> Result<Uuid, StoreError> {
        let by_uuid = reference.uuid().filter(|id| self.live(*id, now).is_some());
        let by_sid = || {
            self.by_session_id
                .get(reference.as_str())
                .copied()
                .filter(|id| self.live(*id, now).is_some())
        };
        by_uuid.or_else(by_sid).ok_or(NO_SESSION)
    }

    fn entry(&self, reference: &SessionRef, now: DateTime<Utc>) -> Result<&Entry, StoreError> {
        let id = self.resolve(reference, now)?;
        self.sessions.get(&id).ok_or(NO_SESSION)
    }

    fn entry_mut(
        &mut self,
        reference: &SessionRef,
        now: DateTime<Utc>,
    ) -> Result<&mut Entry, StoreError> {
        let id = self.resolve(reference, now)?;
        self.sessions.get_mut(&id).ok_or(NO_SESSION)
    }

    /// Appends to the live, active session `to` names.
    fn append(
        &mut self,
        to: &SessionRef,
        draft: MessageDraft,
        now: DateTime<Utc>,
    ) -> Result<(&Entry, ChatMessage), StoreError> {
        if self.message_index.contains_key(&draft.id) {
            return Err(StoreError::Conflict(Entity::Message));
        }
        let id = self.resolve(to, now)?;
        let entry = self.sessions.get_mut(&id).ok_or(NO_SESSION)?;
        if !entry.session.is_active {
            return Err(StoreError::SessionInactive);
        }
        let message = entry.push(draft);
        self.message_index
            .insert(message.id, (id, entry.messages.len() - 1));
        self.count_message(&message);
        let entry = self.sessions.get(&id).ok_or(NO_SESSION)?;
        Ok((entry, message))
    }

    /// Adds `counts` to the hour `at` is in.
    fn count(&mut self, at: DateTime<Utc>, counts: &StatCounts) {
        self.stats
            .entry(stats::hour_of(at))
            .or_default()
            .counts
            .add(counts);
    }

    /// Counts what appending `message` adds, with the ungrounded question it answers.
    fn count_message(&mut self, message: &ChatMessage) {
        let counts = StatCounts::of_message(message.role, &message.metadata);
        self.count(message.timestamp, &counts);
        if counts.ungrounded == 0 {
            return;
        }
        let question = stats::in_reply_to(&message.metadata)
            .and_then(|q| self.message_index.get(&q))
            .and_then(|(session, pos)| self.sessions.get(session)?.messages.get(*pos))
            .map(|m| stats::question_key(&m.message));
        if let Some(key) = question {
            let hour = self
                .stats
                .entry(stats::hour_of(message.timestamp))
                .or_default();
            let known = hour.questions.len() < stats::MAX_QUESTIONS_PER_HOUR;
            match hour.questions.get_mut(&key) {
                Some(n) => *n += 1,
                None if known => {
                    hour.questions.insert(key, 1);
                }
                None => {}
            }
        }
    }

    fn remove(&mut self, id: Uuid) {
        if let Some(entry) = self.sessions.remove(&id) {
            let s = &entry.session;
            // A newer session may have taken the session_id since: it keeps it.
            if self.by_session_id.get(&s.session_id) == Some(&id) {
                self.by_session_id.remove(&s.session_id);
            }
            self.by_created.remove(&(s.created_at, id));
            self.by_expiry.remove(&(s.expires_at, id));
            for m in &entry.messages {
                self.message_index.remove(&m.id);
            }
        }
    }
}

/// The in-memory store; see the crate docs.
pub struct MemoryStore {
    clock: Arc<dyn Clock>,
    tables: RwLock<Tables>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("stored_sessions", &self.stored_sessions())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store judging expiry by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            tables: RwLock::new(Tables::default()),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many sessions are held, expired-but-not-yet-purged ones included.
    #[must_use]
    pub fn stored_sessions(&self) -> usize {
        self.read().sessions.len()
    }
}

#[async_trait]
impl ChatStore for MemoryStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut t = self.write();
        let sid_taken = t
            .by_session_id
            .get(&session.session_id)
            .is_some_and(|id| t.live(*id, now).is_some());
        if sid_taken || t.sessions.contains_key(&session.id) {
            return Err(StoreError::Conflict(Entity::Session));
        }
        // An expired holder of the session_id stays stored (retention) but loses it.
        t.by_session_id
            .insert(session.session_id.clone(), session.id);
        t.by_created.insert((session.created_at, session.id));
        t.by_expiry.insert((session.expires_at, session.id));
        t.count(session.created_at, &StatCounts::of_session());
        t.sessions.insert(
            session.id,
            Entry {
                session: session.clone(),
                messages: Vec::new(),
                system: Vec::new(),
            },
        );
        Ok(())
    }

    async fn session(&self, reference: &SessionRef) -> Result<Option<Session>, StoreError> {
        let now = self.clock.now();
        let t = self.read();
        Ok(t.entry(reference, now).ok().map(|e| e.session.clone()))
    }

    async fn update_session(
        &self,
        reference: &SessionRef,
        patch: &SessionPatch,
    ) -> Result<Session, StoreError> {
        let now = self.clock.now();
        let mut t = self.write();
        let entry = t.entry_mut(reference, now)?;
        let old_expiry = entry.session.expires_at;
        patch.apply_to(&mut entry.session);
        let session = entry.session.clone();
        if session.expires_at != old_expiry {
            t.by_expiry.remove(&(old_expiry, session.id));
            t.by_expiry.insert((session.expires_at, session.id));
        }
        Ok(session)
    }

    async fn delete_session(&self, reference: &SessionRef) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut t = self.write();
        let id = t.resolve(reference, now)?;
        t.remove(id);
        Ok(())
    }

    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: Page,
    ) -> Result<Vec<Session>, StoreError> {
        let now = self.clock.now();
        let t = self.read();
        Ok(t.by_created
            .iter()
            .rev()
            .filter_map(|(_, id)| t.live(*id, now))
            .map(|e| &e.session)
            .filter(|s| filter.matches(s))
            .skip(page.offset)
            .take(page.limit)
            .cloned()
            .collect())
    }

    async fn append(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
    ) -> Result<(Session, ChatMessage), StoreError> {
        let now = self.clock.now();
        let mut t = self.write();
        let (entry, message) = t.append(to, draft, now)?;
        Ok((entry.session.clone(), message))
    }

    async fn message(&self, id: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError> {
        let now = self.clock.now();
        let t = self.read();
        Ok(t.message_index.get(&id).and_then(|(session, pos)| {
            let entry = t.live(*session, now)?;
            let message = entry.messages.get(*pos).filter(|m| !m.is_deleted)?;
            Some((message.clone(), entry.session.clone()))
        }))
    }

    async fn list_messages(
        &self,
        of: &SessionRef,
        query: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), StoreError> {
        let now = self.clock.now();
        let t = self.read();
        let entry = t.entry(of, now)?;
        let all = &entry.messages;
        let place = |id: Uuid| match t.message_index.get(&id) {
            Some(&(session, pos)) if session == entry.session.id => Ok(pos),
            _ => Err(NO_MESSAGE),
        };
        let (from, to) = match query.cursor {
            Some(cursor) => cursor.range(all.len(), place)?,
            None => (0, all.len()),
        };
        let window = all[from..to]
            .iter()
            .filter(|m| !m.is_deleted && query.filter.matches(m));
        let Page { limit, offset } = query.page;
        let page = if query.order.is_newest_first() {
            window.rev().skip(offset).take(limit).cloned().collect()
        } else {
            window.skip(offset).take(limit).cloned().collect()
        };
        Ok((entry.session.clone(), page))
    }

    async fn delete_message(&self, id: Uuid) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut t = self.write();
        let (session, pos) = *t.message_index.get(&id).ok_or(NO_MESSAGE)?;
        let message = t
            .sessions
            .get_mut(&session)
            .filter(|e| !e.session.is_expired_at(now))
            .and_then(|e| e.messages.get_mut(pos))
            .filter(|m| !m.is_deleted)
            .ok_or(NO_MESSAGE)?;
        message.is_deleted = true;
        Ok(())
    }

    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut t = self.write();
        let mut purged = 0;
        while let Some(&(expires_at, id)) = t.by_expiry.first() {
            if expires_at > cutoff {
                break;
            }
            t.remove(id);
            purged += 1;
        }
        Ok(purged)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn set_feedback(
        &self,
        id: Uuid,
        feedback: &Feedback,
    ) -> Result<(ChatMessage, Session), StoreError> {
        let now = self.clock.now();
        let mut t = self.write();
        let (session, pos) = *t.message_index.get(&id).ok_or(NO_MESSAGE)?;
        let entry = t
            .sessions
            .get_mut(&session)
            .filter(|e| !e.session.is_expired_at(now))
            .ok_or(NO_MESSAGE)?;
        let message = entry
            .messages
            .get_mut(pos)
            .filter(|m| !m.is_deleted)
            .ok_or(NO_MESSAGE)?;
        let previous = feedback.apply_to(&mut message.metadata);
        let stored = (message.clone(), entry.session.clone());
        for (hour, counts) in stats::feedback_changes(previous.as_ref(), feedback) {
            t.count(hour, &counts);
        }
        Ok(stored)
    }

    /// A linear scan of every stored message: O(messages), for tests and demos.
    async fn search_messages(
        &self,
        query: &str,
        page: Page,
    ) -> Result<Vec<(ChatMessage, Session)>, StoreError> {
        let words = colloquy_core::search::query_words(query);
        let now = self.clock.now();
        let t = self.read();
        let mut found: Vec<(&ChatMessage, &Session)> = t
            .sessions
            .values()
            .filter(|e| !e.session.is_expired_at(now))
            .flat_map(|e| e.messages.iter().map(move |m| (m, &e.session)))
            .filter(|(m, _)| !m.is_deleted && colloquy_core::search::matches(&m.message, &words))
            .collect();
        found.sort_by_key(|(m, _)| std::cmp::Reverse((m.timestamp, m.id)));
        Ok(found
            .into_iter()
            .skip(page.offset)
            .take(page.limit)
            .map(|(m, s)| (m.clone(), s.clone()))
            .collect())
    }

    /// Computes every live session's row from its messages and sorts them:
    /// O(stored messages) per page, for tests and demos (the reference the other
    /// stores' kept values are checked against).
    async fn inbox(
        &self,
        query: &colloquy_core::inbox::InboxQuery,
    ) -> Result<Vec<colloquy_core::inbox::InboxEntry>, StoreError> {
        let now = self.clock.now();
        let t = self.read();
        let mut rows: Vec<colloquy_core::inbox::InboxEntry> = t
            .sessions
            .values()
            .filter(|e| !e.session.is_expired_at(now))
            .map(|e| {
                let all: Vec<&ChatMessage> = e.messages.iter().collect();
                colloquy_core::inbox::entry_of(&e.session, &all)
            })
            .filter(|row| query.filter.matches(row))
            .filter(|row| {
                query
                    .after
                    .is_none_or(|c| c.precedes(row.last_activity_at, row.session.id))
            })
            .collect();
        rows.sort_by_key(|row| std::cmp::Reverse((row.last_activity_at, row.session.id)));
        rows.truncate(query.limit);
        Ok(rows)
    }

    /// O(log hours + hours in the range).
    async fn hourly_stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HourStats>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let t = self.read();
        Ok(t.stats
            .range(stats::hour_of(from)..to)
            .map(|(hour, e)| HourStats {
                hour: *hour,
                counts: e.counts,
                questions: e.questions.iter().map(|(k, n)| (k.clone(), *n)).collect(),
            })
            .collect())
    }

    async fn add_stats(&self, at: DateTime<Utc>, counts: &StatCounts) -> Result<(), StoreError> {
        self.write().count(at, counts);
        Ok(())
    }

    /// Walks the session table once: O(stored sessions).
    async fn erase_user(&self, external_user_id: &str) -> Result<Erased, StoreError> {
        let mut t = self.write();
        let theirs: Vec<Uuid> = t
            .sessions
            .values()
            .filter(|e| e.session.external_user_id.as_deref() == Some(external_user_id))
            .map(|e| e.session.id)
            .collect();
        let mut erased = Erased::default();
        for id in theirs {
            let messages = t.sessions.get(&id).map_or(0, |e| e.messages.len());
            t.remove(id);
            erased.sessions += 1;
            erased.messages += u64::try_from(messages).unwrap_or(u64::MAX);
        }
        Ok(erased)
    }

    async fn begin_turn(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
        window: usize,
    ) -> Result<Turn, StoreError> {
        let now = self.clock.now();
        let mut t = self.write();
        let (entry, message) = t.append(to, draft, now)?;
        let mut recent: Vec<ChatMessage> = entry
            .messages
            .iter()
            .rev()
            .filter(|m| !m.is_deleted)
            .take(window)
            .cloned()
            .collect();
        recent.reverse();
        Ok(Turn {
            session: entry.session.clone(),
            system: entry.system_messages(window),
            message,
            recent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use colloquy_core::{ManualClock, Metadata};

    fn session(clock: &ManualClock, sid: &str, ttl: Duration) -> Session {
        let now = clock.now();
        Session {
            id: Uuid::now_v7(),
            session_id: sid.into(),
            external_user_id: None,
            created_at: now,
            expires_at: now + ttl,
            is_active: true,
            responder: colloquy_core::Responder::Ai,
            handoff_requested_at: None,
            metadata: Metadata::new(),
        }
    }

    #[tokio::test]
    async fn purge_frees_memory_of_expired_sessions_only() {
        let clock = Arc::new(ManualClock::new());
        let store = MemoryStore::new(clock.clone());
        for i in 0..10 {
            store
                .create_session(&session(&clock, &format!("s{i}"), Duration::minutes(1)))
                .await
                .expect("create");
        }
        let keeper = session(&clock, "keeper", Duration::hours(1));
        store.create_session(&keeper).await.expect("create");
        clock.advance(Duration::minutes(2));
        // Expired but retained: still held, invisible.
        assert_eq!(store.stored_sessions(), 11);
        let purged = store.purge_expired(clock.now()).await.expect("purge");
        assert_eq!(purged, 10);
        assert_eq!(store.stored_sessions(), 1);
        let found = store
            .session(&SessionRef::from_uuid(keeper.id))
            .await
            .expect("get");
        assert_eq!(found, Some(keeper));
    }
}
