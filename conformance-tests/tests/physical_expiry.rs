//! The suite's capability flag for stores that expire data physically (Redis key
//! expiry): a store whose `purge_expired` leaves everything to its backend and
//! answers `Ok(0)` passes once it declares `.expires_physically()`. The same
//! wrapper, made to hang in `purge_expired`, shows the model-based check failing by
//! its deadline.

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
struct LeavesPurgeToBackend {
    inner: MemoryStore,
    /// `purge_expired` never returns (a broken backend).
    hangs: bool,
}

#[async_trait]
impl ChatStore for LeavesPurgeToBackend {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        self.inner.create_session(session).await
    }
    async fn session(&self, r: &SessionRef) -> Result<Option<Session>, StoreError> {
        self.inner.session(r).await
    }
    async fn update_session(
        &self,
        r: &SessionRef,
        patch: &SessionPatch,
    ) -> Result<Session, StoreError> {
        self.inner.update_session(r, patch).await
    }
    async fn delete_session(&self, r: &SessionRef) -> Result<(), StoreError> {
        self.inner.delete_session(r).await
    }
    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: Page,
    ) -> Result<Vec<Session>, StoreError> {
        self.inner.list_sessions(filter, page).await
    }
    async fn append(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
    ) -> Result<(Session, ChatMessage), StoreError> {
        self.inner.append(to, draft).await
    }
    async fn message(&self, id: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError> {
        self.inner.message(id).await
    }
    async fn list_messages(
        &self,
        of: &SessionRef,
        query: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), StoreError> {
        self.inner.list_messages(of, query).await
    }
    async fn delete_message(&self, id: Uuid) -> Result<(), StoreError> {
        self.inner.delete_message(id).await
    }
    async fn purge_expired(&self, _cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        if self.hangs {
            futures::future::pending::<()>().await;
        }
        Ok(0)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn begin_turn(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
        window: usize,
    ) -> Result<Turn, StoreError> {
        self.inner.begin_turn(to, draft, window).await
    }
}

async fn store() -> Option<TestStore> {
    let clock = Arc::new(ManualClock::new());
    let store = LeavesPurgeToBackend {
        inner: MemoryStore::new(clock.clone()),
        hangs: false,
    };
    Some(TestStore::new(Arc::new(store), clock).expires_physically())
}

store_contract_tests!(store);

#[tokio::test]
async fn a_store_call_that_hangs_fails_the_model_based_sequence() {
    use colloquy_conformance::model_based::{run_sequence, Op, SequenceError};

    let clock = Arc::new(ManualClock::new());
    let store = LeavesPurgeToBackend {
        inner: MemoryStore::new(clock.clone()),
        hangs: true,
    };
    let store = TestStore::new(Arc::new(store), clock).expires_physically();
    let ops = [Op::Advance { secs: 1 }, Op::Purge { retention: 0 }];
    let deadline = std::time::Duration::from_millis(200);
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        run_sequence(&store, &ops, deadline),
    )
    .await
    .expect("run_sequence must return by its own deadline");
    match outcome {
        Err(SequenceError::Hung(message)) => assert!(
            message.contains("Purge") && message.contains("did not return within"),
            "the failure names the operation and the deadline: {message}"
        ),
        other => panic!("a hanging purge_expired must fail as Hung, got {other:?}"),
    }
}
