//! [`MessageStore`] on Redis.

use async_trait::async_trait;
use colloquy_core::ports::MessageStore;
use colloquy_core::{ChatMessage, MessageFilter, Page, StoreError};
use redis::AsyncCommands;
use uuid::Uuid;

use crate::codec;
use crate::error::Error;
use crate::RedisStore;

/// Messages read per request while scanning a session for a filtered list.
const SCAN_BATCH: i64 = 500;

fn rank(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl RedisStore {
    async fn append_message(&self, mut message: ChatMessage) -> Result<ChatMessage, Error> {
        let mut conn = self.conn.clone();
        let session = message.session;
        let pointer = self.keys.pointer(message.id);
        let mut call = self.session_call(&self.scripts.message_append, session);
        if !self.conn.is_cluster() {
            // Standalone: the pointer is claimed in the same script, one round trip.
            call.key(&pointer);
        }
        call.arg(message.id.to_string())
            .arg(codec::micros(message.timestamp))
            .arg(codec::message_json(&message)?)
            .arg(self.now_us())
            .arg(session.to_string());
        let reply: Vec<String> = call.invoke_async(&mut conn).await?;
        let [outcome, ts, expires_ms, previous_last, seq] = match reply.as_slice() {
            [o] if o == "notfound" => return Err(Error::NotFound),
            [o] if o == "inactive" => return Err(Error::SessionInactive),
            [o] if o == "conflict" => return Err(Error::Conflict),
            [o, rest @ ..] if o == "ok" && rest.len() == 4 => {
                [o, &rest[0], &rest[1], &rest[2], &rest[3]]
            }
            other => return Err(Error::Reply(format!("append answered {other:?}"))),
        };
        debug_assert_eq!(outcome, "ok");
        if self.conn.is_cluster() {
            // Cluster: the pointer lives in another slot; claim it now, undo on failure.
            let claimed: Result<Option<String>, _> = self
                .scripts
                .pointer_claim
                .key(&pointer)
                .arg(session.to_string())
                .arg(expires_ms)
                .invoke_async(&mut conn)
                .await;
            if !matches!(claimed, Ok(None)) {
                let undo: Result<i64, _> = self
                    .session_call(&self.scripts.message_unappend, session)
                    .arg(message.id.to_string())
                    .arg(seq)
                    .arg(previous_last)
                    .invoke_async(&mut conn)
                    .await;
                if let Err(e) = undo {
                    tracing::warn!(error = %e, "could not undo an append");
                }
                claimed?;
                return Err(Error::Conflict);
            }
        }
        let ts: i64 = ts.parse().map_err(|_| Error::corrupt("stored timestamp"))?;
        message.timestamp = chrono::DateTime::from_timestamp_micros(ts)
            .ok_or_else(|| Error::corrupt("stored timestamp"))?;
        message.is_deleted = false;
        Ok(message)
    }

    /// The session a message id points at, if the pointer exists.
    async fn owner_of(&self, id: Uuid) -> Result<Option<Uuid>, Error> {
        let owner: Option<String> = self.conn.clone().get(self.keys.pointer(id)).await?;
        owner
            .map(|o| Uuid::parse_str(&o).map_err(|_| Error::corrupt("message pointer")))
            .transpose()
    }

    async fn stored_message(&self, id: Uuid) -> Result<Option<ChatMessage>, Error> {
        let (mut call, known) = if self.conn.is_cluster() {
            // Cluster: find the session first, then read in its slot.
            let Some(session) = self.owner_of(id).await? else {
                return Ok(None);
            };
            (
                self.session_call(&self.scripts.message_get, session),
                Some(session),
            )
        } else {
            // Standalone: the script follows the pointer itself.
            (self.scripts.message_get.key(self.keys.pointer(id)), None)
        };
        call.arg(id.to_string())
            .arg(self.now_us())
            .arg(self.keys.prefix());
        let reply: Option<(String, String, String)> =
            call.invoke_async(&mut self.conn.clone()).await?;
        let Some((raw, deleted, owner)) = reply else {
            return Ok(None);
        };
        let session = match known {
            Some(session) => session,
            None => Uuid::parse_str(&owner).map_err(|_| Error::corrupt("message pointer"))?,
        };
        let message = codec::message_from_value(&raw, deleted == "1")?;
        Ok(Some(message).filter(|m| m.session == session && m.id == id))
    }

    /// Non-deleted messages of a live session by rank (negative ranks from the end).
    async fn range(&self, session: Uuid, start: i64, stop: i64) -> Result<Vec<ChatMessage>, Error> {
        let mut call = self.session_call(&self.scripts.message_range, session);
        call.arg(self.now_us()).arg(start).arg(stop);
        let values: Option<Vec<String>> = call.invoke_async(&mut self.conn.clone()).await?;
        values
            .ok_or(Error::NotFound)?
            .iter()
            .map(|v| codec::message_from_value(v, false))
            .collect()
    }

    async fn list_messages(
        &self,
        session: Uuid,
        filter: &MessageFilter,
        page: Page,
    ) -> Result<Vec<ChatMessage>, Error> {
        if page.limit == 0 {
            // Still answer NotFound for a missing session: an empty range checks it.
            return self.range(session, 1, 0).await;
        }
        if *filter == MessageFilter::default() {
            let start = rank(page.offset);
            return self
                .range(session, start, start.saturating_add(rank(page.limit)) - 1)
                .await;
        }
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut start = 0;
        loop {
            let batch = self.range(session, start, start + SCAN_BATCH - 1).await?;
            let done = rank(batch.len()) < SCAN_BATCH;
            for m in batch.into_iter().filter(|m| filter.matches(m)) {
                if skipped < page.offset {
                    skipped += 1;
                } else {
                    out.push(m);
                    if out.len() == page.limit {
                        return Ok(out);
                    }
                }
            }
            if done {
                return Ok(out);
            }
            start += SCAN_BATCH;
        }
    }

    async fn soft_delete_message(&self, id: Uuid) -> Result<(), Error> {
        let mut call = if self.conn.is_cluster() {
            let session = self.owner_of(id).await?.ok_or(Error::NotFound)?;
            self.session_call(&self.scripts.message_soft_delete, session)
        } else {
            self.scripts.message_soft_delete.key(self.keys.pointer(id))
        };
        call.arg(id.to_string())
            .arg(self.now_us())
            .arg(self.keys.prefix());
        let removed: i64 = call.invoke_async(&mut self.conn.clone()).await?;
        if removed == 1 {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }
}

#[async_trait]
impl MessageStore for RedisStore {
    async fn append(&self, message: ChatMessage) -> Result<ChatMessage, StoreError> {
        Ok(self.append_message(message).await?)
    }

    async fn get(&self, id: Uuid) -> Result<Option<ChatMessage>, StoreError> {
        Ok(self.stored_message(id).await?.filter(|m| !m.is_deleted))
    }

    async fn get_stored(&self, id: Uuid) -> Result<Option<ChatMessage>, StoreError> {
        Ok(self.stored_message(id).await?)
    }

    async fn list(
        &self,
        session: Uuid,
        filter: &MessageFilter,
        page: Page,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        Ok(self.list_messages(session, filter, page).await?)
    }

    async fn recent(&self, session: Uuid, limit: usize) -> Result<Vec<ChatMessage>, StoreError> {
        if limit == 0 {
            return Ok(self.range(session, 1, 0).await?);
        }
        Ok(self.range(session, -rank(limit), -1).await?)
    }

    async fn soft_delete(&self, id: Uuid) -> Result<(), StoreError> {
        Ok(self.soft_delete_message(id).await?)
    }
}
