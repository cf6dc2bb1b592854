//! The smallest third-party store: [`NaiveStore`], the naive adapter from the module
//! docs of `colloquy_core::ports` (one `Mutex` over a `HashMap` and a `Vec`, only the
//! required methods of [`ChatStore`]), with the fixes the conformance suite found in
//! it (a message belongs to its session by UUID only; a `session_id` is checked for
//! conflicts as a `session_id`). `tests/custom_store.rs` proves it with one
//! `store_contract_tests!` call; `src/bin/custom-store.rs` serves the API over it.
//!
//! Your own store starts the same way: implement [`ChatStore`], take a [`Clock`] and
//! judge expiry by it, then run the suite (see `conformance-tests/README.md`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use colloquy_core::ports::ChatStore;
use colloquy_core::{
    ChatMessage, Clock, Entity, MessageDraft, MessageQuery, Page, Session, SessionFilter,
    SessionPatch, SessionRef, StoreError,
};
use uuid::Uuid;

#[derive(Default)]
struct Tables {
    sessions: HashMap<Uuid, Session>,
    messages: Vec<ChatMessage>, // in write order
}

impl Tables {
    /// The live session with UUID `id` (a message's own session: never by session_id).
    fn live(&self, id: Uuid, now: DateTime<Utc>) -> Option<&Session> {
        self.sessions.get(&id).filter(|s| !s.is_expired_at(now))
    }

    /// The live session a reference names: by UUID first, then by session_id.
    fn find(&self, r: &SessionRef, now: DateTime<Utc>) -> Option<Session> {
        let live = |s: &&Session| !s.is_expired_at(now);
        let by_uuid = r.uuid().and_then(|id| self.sessions.get(&id)).filter(live);
        let by_sid = || {
            self.sessions
                .values()
                .filter(live)
                .find(|s| s.session_id == r.as_str())
        };
        by_uuid.or_else(by_sid).cloned()
    }
}

/// A complete (if naive) [`ChatStore`]: everything in one `Mutex`, required methods
/// only (the provided `begin_turn` is an `append` plus two `list_messages`).
pub struct NaiveStore {
    clock: Arc<dyn Clock>,
    tables: Mutex<Tables>,
}

impl NaiveStore {
    /// An empty store judging expiry by `clock` (give the service the same clock).
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            tables: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

const NO_SESSION: StoreError = StoreError::NotFound(Entity::Session);
const NO_MESSAGE: StoreError = StoreError::NotFound(Entity::Message);

#[async_trait]
impl ChatStore for NaiveStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut t = self.lock();
        let now = self.clock.now();
        let taken = t.sessions.contains_key(&session.id)
            || t.sessions
                .values()
                .any(|s| !s.is_expired_at(now) && s.session_id == session.session_id);
        if taken {
            return Err(StoreError::Conflict(Entity::Session));
        }
        t.sessions.insert(session.id, session.clone());
        Ok(())
    }
    async fn session(&self, r: &SessionRef) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().find(r, self.clock.now()))
    }
    async fn update_session(
        &self,
        r: &SessionRef,
        patch: &SessionPatch,
    ) -> Result<Session, StoreError> {
        let mut t = self.lock();
        let mut s = t.find(r, self.clock.now()).ok_or(NO_SESSION)?;
        patch.apply_to(&mut s);
        t.sessions.insert(s.id, s.clone());
        Ok(s)
    }
    async fn delete_session(&self, r: &SessionRef) -> Result<(), StoreError> {
        let mut t = self.lock();
        let s = t.find(r, self.clock.now()).ok_or(NO_SESSION)?;
        t.sessions.remove(&s.id);
        t.messages.retain(|m| m.session != s.id);
        Ok(())
    }
    async fn list_sessions(
        &self,
        f: &SessionFilter,
        page: Page,
    ) -> Result<Vec<Session>, StoreError> {
        let t = self.lock();
        let now = self.clock.now();
        let mut all: Vec<Session> = t
            .sessions
            .values()
            .filter(|s| !s.is_expired_at(now) && f.matches(s))
            .cloned()
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
        Ok(all.into_iter().skip(page.offset).take(page.limit).collect())
    }
    async fn append(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
    ) -> Result<(Session, ChatMessage), StoreError> {
        let mut t = self.lock();
        let session = t.find(to, self.clock.now()).ok_or(NO_SESSION)?;
        if !session.is_active {
            return Err(StoreError::SessionInactive);
        }
        if t.messages.iter().any(|m| m.id == draft.id) {
            return Err(StoreError::Conflict(Entity::Message));
        }
        let mut message = draft.into_message(session.id);
        if let Some(last) = t.messages.iter().rev().find(|m| m.session == session.id) {
            message.timestamp = message.timestamp.max(last.timestamp);
        }
        t.messages.push(message.clone());
        Ok((session, message))
    }
    async fn message(&self, id: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError> {
        let t = self.lock();
        let Some(m) = t.messages.iter().find(|m| m.id == id && !m.is_deleted) else {
            return Ok(None);
        };
        let session = t.live(m.session, self.clock.now());
        Ok(session.map(|s| (m.clone(), s.clone())))
    }
    async fn list_messages(
        &self,
        of: &SessionRef,
        q: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), StoreError> {
        let t = self.lock();
        let session = t.find(of, self.clock.now()).ok_or(NO_SESSION)?;
        let all: Vec<&ChatMessage> = t
            .messages
            .iter()
            .filter(|m| m.session == session.id)
            .collect();
        // The cursor's place in write order; it may be soft-deleted, but must be ours.
        let place = |id: Uuid| all.iter().position(|m| m.id == id).ok_or(NO_MESSAGE);
        let (from, to) = q
            .cursor
            .map_or(Ok((0, all.len())), |c| c.range(all.len(), place))?;
        let window = all[from..to]
            .iter()
            .filter(|m| !m.is_deleted && q.filter.matches(m));
        let page: Vec<ChatMessage> = if q.order.is_newest_first() {
            window
                .rev()
                .skip(q.page.offset)
                .take(q.page.limit)
                .map(|m| (*m).clone())
                .collect()
        } else {
            window
                .skip(q.page.offset)
                .take(q.page.limit)
                .map(|m| (*m).clone())
                .collect()
        };
        Ok((session, page))
    }
    async fn delete_message(&self, id: Uuid) -> Result<(), StoreError> {
        let mut t = self.lock();
        let now = self.clock.now();
        let session = t
            .messages
            .iter()
            .find(|m| m.id == id && !m.is_deleted)
            .map(|m| m.session);
        session.and_then(|s| t.live(s, now)).ok_or(NO_MESSAGE)?;
        for m in t.messages.iter_mut().filter(|m| m.id == id) {
            m.is_deleted = true;
        }
        Ok(())
    }
    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut t = self.lock();
        let gone: Vec<Uuid> = t
            .sessions
            .values()
            .filter(|s| s.expires_at <= cutoff)
            .map(|s| s.id)
            .collect();
        for id in &gone {
            t.sessions.remove(id);
        }
        t.messages.retain(|m| !gone.contains(&m.session));
        Ok(gone.len() as u64)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
