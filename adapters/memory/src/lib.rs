//! # colloquy-memory
//!
//! A concurrent in-memory store implementing both Colloquy store ports,
//! [`SessionStore`] and [`MessageStore`]. Nothing survives a restart: use it for
//! tests, demos and single-process deployments where chat history is disposable.
//!
//! - Lookups by UUID and by `session_id` are hash-map lookups (O(1)).
//! - A session's messages live in one vector in write order, so listing a page
//!   costs O(offset + page), however long the session.
//! - One `RwLock` guards the tables; it is never held across an `.await`.
//! - Expired sessions are purged on every write (an ordered expiry index makes that
//!   O(expired)), and [`MemoryStore::purge_expired`] does it on demand, so memory
//!   does not grow with sessions nobody can see.
//!
//! ```
//! use std::sync::Arc;
//! use colloquy_core::{ChatService, EchoModel, ServiceConfig, SystemClock};
//! use colloquy_memory::MemoryStore;
//!
//! let clock = Arc::new(SystemClock);
//! let store = Arc::new(MemoryStore::new(clock.clone()));
//! let service = ChatService::new(
//!     store.clone(),
//!     store,
//!     Arc::new(EchoModel::new()),
//!     clock,
//!     ServiceConfig::default(),
//! );
//! # let _ = service;
//! ```

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use colloquy_core::ports::{MessageStore, SessionStore};
use colloquy_core::{
    ChatMessage, Clock, MessageFilter, Page, Session, SessionFilter, SessionPatch, SessionRef,
    StoreError,
};
use uuid::Uuid;

/// One session with its messages in write order (soft-deleted ones included).
#[derive(Debug)]
struct Entry {
    session: Session,
    messages: Vec<ChatMessage>,
}

#[derive(Debug, Default)]
struct Tables {
    sessions: HashMap<Uuid, Entry>,
    by_session_id: HashMap<String, Uuid>,
    /// `(created_at, id)`; iterated backwards for newest first.
    by_created: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// `(expires_at, id)`; the front holds the next sessions to expire.
    by_expiry: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// Message id -> (session id, position in the session's vector).
    message_index: HashMap<Uuid, (Uuid, usize)>,
}

impl Tables {
    fn live(&self, id: Uuid, now: DateTime<Utc>) -> Option<&Entry> {
        self.sessions
            .get(&id)
            .filter(|e| !e.session.is_expired_at(now))
    }

    fn live_mut(&mut self, id: Uuid, now: DateTime<Utc>) -> Option<&mut Entry> {
        self.sessions
            .get_mut(&id)
            .filter(|e| !e.session.is_expired_at(now))
    }

    fn remove(&mut self, id: Uuid) {
        if let Some(entry) = self.sessions.remove(&id) {
            let s = &entry.session;
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

    /// Removes every session expired at `now`; returns how many.
    fn purge(&mut self, now: DateTime<Utc>) -> usize {
        let mut purged = 0;
        while let Some(&(expires_at, id)) = self.by_expiry.first() {
            if expires_at > now {
                break;
            }
            self.remove(id);
            purged += 1;
        }
        purged
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

    /// A write guard, after purging what has expired.
    fn write(&self, now: DateTime<Utc>) -> RwLockWriteGuard<'_, Tables> {
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        tables.purge(now);
        tables
    }

    /// Removes every expired session and its messages now; returns how many sessions.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        self.tables
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .purge(now)
    }

    /// How many sessions are held, expired-but-not-yet-purged ones included.
    #[must_use]
    pub fn stored_sessions(&self) -> usize {
        self.read().sessions.len()
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, session: &Session) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut t = self.write(now);
        let sid_taken = t
            .by_session_id
            .get(&session.session_id)
            .is_some_and(|id| t.live(*id, now).is_some());
        if sid_taken || t.sessions.contains_key(&session.id) {
            return Err(StoreError::Conflict);
        }
        // An expired holder of the session_id may linger until purged: it goes now.
        if let Some(old) = t.by_session_id.get(&session.session_id).copied() {
            t.remove(old);
        }
        t.by_session_id
            .insert(session.session_id.clone(), session.id);
        t.by_created.insert((session.created_at, session.id));
        t.by_expiry.insert((session.expires_at, session.id));
        t.sessions.insert(
            session.id,
            Entry {
                session: session.clone(),
                messages: Vec::new(),
            },
        );
        Ok(())
    }

    async fn get(&self, reference: &SessionRef) -> Result<Option<Session>, StoreError> {
        let now = self.clock.now();
        let t = self.read();
        let by_uuid = reference.uuid().and_then(|id| t.live(id, now));
        let found = by_uuid.or_else(|| {
            t.by_session_id
                .get(reference.as_str())
                .and_then(|id| t.live(*id, now))
        });
        Ok(found.map(|e| e.session.clone()))
    }

    async fn update(&self, id: Uuid, patch: &SessionPatch) -> Result<Session, StoreError> {
        let now = self.clock.now();
        let mut t = self.write(now);
        let entry = t.live_mut(id, now).ok_or(StoreError::NotFound)?;
        let old_expiry = entry.session.expires_at;
        patch.apply_to(&mut entry.session);
        let session = entry.session.clone();
        if session.expires_at != old_expiry {
            t.by_expiry.remove(&(old_expiry, id));
            t.by_expiry.insert((session.expires_at, id));
        }
        Ok(session)
    }

    async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut t = self.write(now);
        t.live(id, now).ok_or(StoreError::NotFound)?;
        t.remove(id);
        Ok(())
    }

    async fn list(&self, filter: &SessionFilter, page: Page) -> Result<Vec<Session>, StoreError> {
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

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl MessageStore for MemoryStore {
    async fn append(&self, mut message: ChatMessage) -> Result<ChatMessage, StoreError> {
        let now = self.clock.now();
        let mut t = self.write(now);
        if t.message_index.contains_key(&message.id) {
            return Err(StoreError::Conflict);
        }
        let entry = t
            .live_mut(message.session, now)
            .ok_or(StoreError::NotFound)?;
        if !entry.session.is_active {
            return Err(StoreError::SessionInactive);
        }
        if let Some(last) = entry.messages.last() {
            message.timestamp = message.timestamp.max(last.timestamp);
        }
        let position = entry.messages.len();
        entry.messages.push(message.clone());
        t.message_index
            .insert(message.id, (message.session, position));
        Ok(message)
    }

    async fn get(&self, id: Uuid) -> Result<Option<ChatMessage>, StoreError> {
        Ok(self.get_stored(id).await?.filter(|m| !m.is_deleted))
    }

    async fn get_stored(&self, id: Uuid) -> Result<Option<ChatMessage>, StoreError> {
        let now = self.clock.now();
        let t = self.read();
        Ok(t.message_index.get(&id).and_then(|(session, pos)| {
            t.live(*session, now)
                .and_then(|e| e.messages.get(*pos))
                .cloned()
        }))
    }

    async fn list(
        &self,
        session: Uuid,
        filter: &MessageFilter,
        page: Page,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let now = self.clock.now();
        let t = self.read();
        let entry = t.live(session, now).ok_or(StoreError::NotFound)?;
        Ok(entry
            .messages
            .iter()
            .filter(|m| !m.is_deleted && filter.matches(m))
            .skip(page.offset)
            .take(page.limit)
            .cloned()
            .collect())
    }

    async fn recent(&self, session: Uuid, limit: usize) -> Result<Vec<ChatMessage>, StoreError> {
        let now = self.clock.now();
        let t = self.read();
        let entry = t.live(session, now).ok_or(StoreError::NotFound)?;
        let mut newest: Vec<ChatMessage> = entry
            .messages
            .iter()
            .rev()
            .filter(|m| !m.is_deleted)
            .take(limit)
            .cloned()
            .collect();
        newest.reverse();
        Ok(newest)
    }

    async fn soft_delete(&self, id: Uuid) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut t = self.write(now);
        let (session, pos) = *t.message_index.get(&id).ok_or(StoreError::NotFound)?;
        let message = t
            .live_mut(session, now)
            .and_then(|e| e.messages.get_mut(pos))
            .filter(|m| !m.is_deleted)
            .ok_or(StoreError::NotFound)?;
        message.is_deleted = true;
        Ok(())
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
            metadata: Metadata::new(),
        }
    }

    #[tokio::test]
    async fn expired_sessions_are_purged_physically() {
        let clock = Arc::new(ManualClock::new());
        let store = MemoryStore::new(clock.clone());
        for i in 0..10 {
            store
                .create(&session(&clock, &format!("s{i}"), Duration::minutes(1)))
                .await
                .expect("create");
        }
        let keeper = session(&clock, "keeper", Duration::hours(1));
        store.create(&keeper).await.expect("create");
        assert_eq!(store.stored_sessions(), 11);
        clock.advance(Duration::minutes(2));
        assert_eq!(store.purge_expired(), 10);
        assert_eq!(store.stored_sessions(), 1);
        // Writes purge too: the next expiry goes with the next create.
        clock.advance(Duration::hours(2));
        store
            .create(&session(&clock, "late", Duration::hours(1)))
            .await
            .expect("create");
        assert_eq!(store.stored_sessions(), 1);
        assert!(SessionStore::get(&store, &SessionRef::from_uuid(keeper.id))
            .await
            .expect("get")
            .is_none());
    }
}
