//! The suite's capability flag for stores that expire data physically (Redis key
//! expiry): a store whose `purge_expired` leaves everything to its backend and
//! answers `Ok(0)` passes once it declares `.expires_physically()`.

#![allow(missing_docs)]

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use colloquy_conformance::{store_contract_tests, TestStore};
use colloquy_core::ports::{ChatStore, Turn};
use colloquy_core::{
    ChatMessage, ManualClock, MessageDraft, MessageQuery, Page, Session, SessionFilter,
    SessionPatch, SessionRef, StoreError,
};
use colloquy_memory::MemoryStore;
use uuid::Uuid;

/// The memory store, except that purging is left to a (simulated) backend whose
/// keys expire by wall time, later than any contract looks.
struct LeavesPurgeToBackend(MemoryStore);

#[async_trait]
impl ChatStore for LeavesPurgeToBackend {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        self.0.create_session(session).await
    }
    async fn session(&self, r: &SessionRef) -> Result<Option<Session>, StoreError> {
        self.0.session(r).await
    }
    async fn update_session(
        &self,
        r: &SessionRef,
        patch: &SessionPatch,
    ) -> Result<Session, StoreError> {
        self.0.update_session(r, patch).await
    }
    async fn delete_session(&self, r: &SessionRef) -> Result<(), StoreError> {
        self.0.delete_session(r).await
    }
    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: Page,
    ) -> Result<Vec<Session>, StoreError> {
        self.0.list_sessions(filter, page).await
    }
    async fn append(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
    ) -> Result<(Session, ChatMessage), StoreError> {
        self.0.append(to, draft).await
    }
    async fn message(&self, id: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError> {
        self.0.message(id).await
    }
    async fn list_messages(
        &self,
        of: &SessionRef,
        query: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), StoreError> {
        self.0.list_messages(of, query).await
    }
    async fn delete_message(&self, id: Uuid) -> Result<(), StoreError> {
        self.0.delete_message(id).await
    }
    async fn purge_expired(&self, _cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await
    }
    async fn begin_turn(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
        window: usize,
    ) -> Result<Turn, StoreError> {
        self.0.begin_turn(to, draft, window).await
    }
}

async fn store() -> Option<TestStore> {
    let clock = Arc::new(ManualClock::new());
    let store = LeavesPurgeToBackend(MemoryStore::new(clock.clone()));
    Some(TestStore::new(Arc::new(store), clock).expires_physically())
}

store_contract_tests!(store);
