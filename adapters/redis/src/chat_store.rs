//! [`ChatStore`] on Redis: each method is one of the operations in `sessions.rs` and
//! `messages.rs`, with the adapter's errors mapped to the port's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use colloquy_core::ports::{ChatStore, Erased, Turn};
use colloquy_core::stats::{HourStats, StatCounts};
use colloquy_core::{
    ChatMessage, Feedback, MessageDraft, MessageQuery, Page, Session, SessionFilter, SessionPatch,
    SessionRef, StoreError,
};
use uuid::Uuid;

use crate::RedisStore;

#[async_trait]
impl ChatStore for RedisStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        Ok(RedisStore::create_session(self, session).await?)
    }

    async fn session(&self, reference: &SessionRef) -> Result<Option<Session>, StoreError> {
        Ok(self.get_session(reference).await?)
    }

    async fn update_session(
        &self,
        reference: &SessionRef,
        patch: &SessionPatch,
    ) -> Result<Session, StoreError> {
        Ok(RedisStore::update_session(self, reference, patch).await?)
    }

    async fn delete_session(&self, reference: &SessionRef) -> Result<(), StoreError> {
        Ok(RedisStore::delete_session(self, reference).await?)
    }

    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: Page,
    ) -> Result<Vec<Session>, StoreError> {
        Ok(RedisStore::list_sessions(self, filter, page).await?)
    }

    async fn append(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
    ) -> Result<(Session, ChatMessage), StoreError> {
        let appended = self.append_message(to, draft, None).await?;
        Ok((appended.session, appended.message))
    }

    async fn message(&self, id: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError> {
        Ok(self.get_message(id).await?)
    }

    async fn list_messages(
        &self,
        of: &SessionRef,
        query: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), StoreError> {
        Ok(self.list(of, query).await?)
    }

    async fn delete_message(&self, id: Uuid) -> Result<(), StoreError> {
        Ok(self.soft_delete(id).await?)
    }

    /// Redis drops every key of a session at its purge time by itself (see
    /// [`RedisConfig::retention`](crate::RedisConfig::retention)): nothing to do here.
    async fn purge_expired(&self, _cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.ready().await?)
    }

    /// On a cluster, for a session named by its `session_id`: a v7 id whose pointer
    /// lives in that session's slot (see the crate docs), so that the append touches
    /// one slot in one round trip. Otherwise (standalone, or a UUID reference, whose
    /// session_id is not known yet) the default.
    fn new_message_id(&self, session: &SessionRef) -> Uuid {
        if self.is_cluster() && session.uuid().is_none() {
            crate::slots::id_in_slot(crate::slots::key_slot(&self.keys.holder(session.as_str())))
        } else {
            Uuid::now_v7()
        }
    }

    async fn begin_turn(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
        window: usize,
    ) -> Result<Turn, StoreError> {
        Ok(self.begin(to, draft, window).await?)
    }

    /// Two round trips: a read, then a compare-and-set write (see `console.rs`).
    async fn set_feedback(
        &self,
        id: Uuid,
        feedback: &Feedback,
    ) -> Result<(ChatMessage, Session), StoreError> {
        Ok(self.feedback(id, feedback).await?)
    }

    /// Walks every stored session (no index by visitor): O(stored sessions), 500
    /// per round trip; see `console.rs`.
    async fn erase_user(&self, external_user_id: &str) -> Result<Erased, StoreError> {
        Ok(self.erase(external_user_id).await?)
    }

    /// One script per 744 hours in the range (on a cluster per slot: 16,384 per 744
    /// hours); see `console.rs` for how Redis counts.
    async fn hourly_stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HourStats>, StoreError> {
        Ok(self.hours(from, to).await?)
    }

    /// A page script in the `{idx}` slot, then the rows (standalone: one script; a
    /// cluster: one per row, concurrently); see `inbox.rs`.
    async fn inbox(
        &self,
        query: &colloquy_core::inbox::InboxQuery,
    ) -> Result<Vec<colloquy_core::inbox::InboxEntry>, StoreError> {
        Ok(self.inbox_page(query).await?)
    }

    async fn add_stats(&self, at: DateTime<Utc>, counts: &StatCounts) -> Result<(), StoreError> {
        Ok(self.count(at, counts).await?)
    }
}
