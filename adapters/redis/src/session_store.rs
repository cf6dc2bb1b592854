//! [`SessionStore`] on Redis.

use std::collections::HashSet;

use async_trait::async_trait;
use colloquy_core::ports::SessionStore;
use colloquy_core::{Page, Session, SessionFilter, SessionPatch, SessionRef, StoreError};
use redis::AsyncCommands;
use uuid::Uuid;

use crate::codec::{self, StoredSession};
use crate::error::Error;
use crate::RedisStore;

/// Largest number of index entries read per request while listing.
const LIST_BATCH: usize = 500;

impl RedisStore {
    async fn create_session(&self, session: &Session) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let now = self.now_us();
        if !self.conn.is_cluster() {
            // Standalone: session and index in one script, one round trip.
            let mut call = self.index_and_session_call(&self.scripts.create_standalone, session.id);
            call.arg(&session.session_id)
                .arg(session.id.to_string())
                .arg(codec::micros(session.created_at))
                .arg(codec::micros(session.expires_at))
                .arg(now)
                .arg(codec::active_flag(session.external_user_id.is_some()))
                .arg(session.external_user_id.as_deref().unwrap_or(""))
                .arg(self.keys.prefix())
                .arg(codec::millis_ceil(session.expires_at));
            for (field, value) in codec::session_fields(session)? {
                call.arg(field).arg(value);
            }
            let created: i64 = call.invoke_async(&mut conn).await?;
            return if created == 1 {
                Ok(())
            } else {
                Err(Error::Conflict)
            };
        }
        // Cluster: the session's own slot first, then the index slot.
        let mut call = self.session_call(&self.scripts.session_create, session.id);
        call.arg(now).arg(codec::millis_ceil(session.expires_at));
        for (field, value) in codec::session_fields(session)? {
            call.arg(field).arg(value);
        }
        let written: i64 = call.invoke_async(&mut conn).await?;
        if written == 0 {
            return Err(Error::Conflict);
        }
        match self.index_new_session(session, now).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Not indexed: take the session back so a failed create leaves nothing.
                let [s, m, o] = self.keys.session(session.id);
                if let Err(undo) = conn.del::<_, ()>(&[s, m, o]).await {
                    tracing::warn!(error = %undo, "could not undo a half-created session");
                }
                Err(e)
            }
        }
    }

    /// Claims the session_id and adds the session to the lists (step two of create).
    async fn index_new_session(&self, session: &Session, now: i64) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let mut overrule = String::new();
        // The second round only happens after a stale owner was verified gone.
        for _ in 0..3 {
            let mut call = self.index_call(&self.scripts.index_claim);
            call.arg(&session.session_id)
                .arg(session.id.to_string())
                .arg(codec::micros(session.created_at))
                .arg(codec::micros(session.expires_at))
                .arg(now)
                .arg(codec::active_flag(session.external_user_id.is_some()))
                .arg(session.external_user_id.as_deref().unwrap_or(""))
                .arg(&overrule);
            let owner: Option<String> = call.invoke_async(&mut conn).await?;
            let Some(owner) = owner else {
                return Ok(());
            };
            // The index says a live session holds the session_id; believe the session.
            let holder = match Uuid::parse_str(&owner) {
                Ok(id) => self.read_session(id).await?,
                Err(_) => None,
            };
            let taken = holder.is_some_and(|h| {
                self.is_live(&h.session) && h.session.session_id == session.session_id
            });
            if taken {
                return Err(Error::Conflict);
            }
            overrule = owner;
        }
        Err(Error::Reply("session_id index kept changing".into()))
    }

    async fn get_session(&self, reference: &SessionRef) -> Result<Option<Session>, Error> {
        if !self.conn.is_cluster() {
            return self.resolve_in_one_step(reference).await;
        }
        if let Some(id) = reference.uuid() {
            if let Some(stored) = self.read_session(id).await? {
                if self.is_live(&stored.session) {
                    return Ok(Some(stored.session));
                }
            }
        }
        let [sid_key, ..] = self.keys.index();
        let owner: Option<String> = self.conn.clone().hget(sid_key, reference.as_str()).await?;
        let Some(id) = owner.and_then(|o| Uuid::parse_str(&o).ok()) else {
            return Ok(None);
        };
        match self.read_session(id).await? {
            Some(stored) => Ok(Some(stored.session)
                .filter(|s| s.session_id == reference.as_str() && self.is_live(s))),
            None => {
                self.drop_from_index(&[id]).await;
                Ok(None)
            }
        }
    }

    /// Standalone: the UUID reading, then the session_id index, in one script.
    async fn resolve_in_one_step(&self, reference: &SessionRef) -> Result<Option<Session>, Error> {
        let [sid_key, ..] = self.keys.index();
        let mut call = self.scripts.session_resolve.key(sid_key);
        if let Some(id) = reference.uuid() {
            let [session_key, _, _] = self.keys.session(id);
            call.key(session_key);
        }
        call.arg(reference.as_str())
            .arg(self.keys.prefix())
            .arg(self.now_us());
        let reply: Option<(String, Vec<String>)> =
            call.invoke_async(&mut self.conn.clone()).await?;
        let Some((holder, fields)) = reply else {
            return Ok(None);
        };
        let stored = codec::session_from_fields(&codec::pairs_to_map(fields))?;
        if holder.is_empty() {
            // Named by its UUID (the script checked it is live by the same clock reading).
            return Ok(stored.map(|s| s.session).filter(|s| self.is_live(s)));
        }
        match stored {
            Some(stored) => Ok(Some(stored.session)
                .filter(|s| s.session_id == reference.as_str() && self.is_live(s))),
            None => {
                if let Ok(id) = Uuid::parse_str(&holder) {
                    self.drop_from_index(&[id]).await;
                }
                Ok(None)
            }
        }
    }

    async fn update_session(&self, id: Uuid, patch: &SessionPatch) -> Result<Session, Error> {
        let mut conn = self.conn.clone();
        let cluster = self.conn.is_cluster();
        let mut call = if cluster {
            let mut call = self.session_call(&self.scripts.session_update, id);
            call.arg(self.keys.ext_prefix());
            call
        } else {
            // Standalone: index entries and pointers follow in the same script.
            self.index_and_session_call(&self.scripts.session_update, id)
        };
        call.arg(self.now_us())
            .arg(patch.is_active.map_or("", codec::active_flag));
        match &patch.metadata {
            Some(meta) => call.arg("1").arg(serde_json::to_string(meta)?),
            None => call.arg("0").arg(""),
        };
        match &patch.external_user_id {
            None => call.arg("keep").arg(""),
            Some(None) => call.arg("clear").arg(""),
            Some(Some(ext)) => call.arg("set").arg(ext),
        };
        match patch.expires_at {
            Some(at) => call.arg(codec::micros(at)).arg(codec::millis_ceil(at)),
            None => call.arg("").arg(""),
        };
        call.arg(self.keys.prefix());
        let reply: Option<(Vec<String>, Vec<String>)> = call.invoke_async(&mut conn).await?;
        let (fields, message_ids) = reply.ok_or(Error::NotFound)?;
        let stored = codec::session_from_fields(&codec::pairs_to_map(fields))?
            .ok_or_else(|| Error::corrupt("updated session has no fields"))?;
        if !cluster {
            return Ok(stored.session);
        }
        // Cluster, step two: the global index (other slot) and the message pointers
        // (one slot each).
        if patch.external_user_id.is_some() || patch.expires_at.is_some() {
            self.reindex(&stored).await?;
        }
        if let Some(at) = patch.expires_at {
            let expires_ms = codec::millis_ceil(at);
            let pointers = message_ids
                .iter()
                .filter_map(|m| Uuid::parse_str(m).ok())
                .map(|m| self.keys.pointer(m))
                .collect();
            self.per_key(pointers, |key| {
                let mut cmd = redis::cmd("PEXPIREAT");
                cmd.arg(key).arg(expires_ms);
                cmd
            })
            .await?;
        }
        Ok(stored.session)
    }

    async fn reindex(&self, stored: &StoredSession) -> Result<(), Error> {
        let s = &stored.session;
        let mut call = self.index_call(&self.scripts.index_reindex);
        call.arg(s.id.to_string())
            .arg(stored.version)
            .arg(codec::micros(s.expires_at))
            .arg(codec::active_flag(s.external_user_id.is_some()))
            .arg(s.external_user_id.as_deref().unwrap_or(""))
            .arg(codec::micros(s.created_at));
        call.invoke_async::<i64>(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn delete_session(&self, id: Uuid) -> Result<(), Error> {
        if !self.conn.is_cluster() {
            // Standalone: session, messages, pointers and index entries in one script.
            let mut call = self.index_and_session_call(&self.scripts.delete_standalone, id);
            call.arg(self.now_us())
                .arg(id.to_string())
                .arg(self.keys.prefix());
            let deleted: i64 = call.invoke_async(&mut self.conn.clone()).await?;
            return if deleted == 1 {
                Ok(())
            } else {
                Err(Error::NotFound)
            };
        }
        let mut call = self.session_call(&self.scripts.session_delete, id);
        call.arg(self.now_us());
        let message_ids: Option<Vec<String>> = call.invoke_async(&mut self.conn.clone()).await?;
        let message_ids = message_ids.ok_or(Error::NotFound)?;
        // Step two, best effort: readers verify pointers and index entries anyway.
        let pointers: Vec<String> = message_ids
            .iter()
            .filter_map(|m| Uuid::parse_str(m).ok())
            .map(|m| self.keys.pointer(m))
            .collect();
        let unlink = async {
            if !pointers.is_empty() {
                if let Err(e) = self.conn.clone().del::<_, ()>(&pointers).await {
                    tracing::warn!(error = %e, "could not delete message pointers");
                }
            }
        };
        let deleted = [id];
        futures::join!(self.drop_from_index(&deleted), unlink);
        Ok(())
    }

    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: Page,
    ) -> Result<Vec<Session>, Error> {
        let mut out = Vec::new();
        if page.limit == 0 {
            return Ok(out);
        }
        let batch = (page.offset.saturating_add(page.limit)).clamp(16, LIST_BATCH);
        let mut skipped = 0;
        let mut rank: usize = 0;
        let mut seen = HashSet::new();
        loop {
            let entries = self.list_batch(filter, rank, rank + batch - 1).await?;
            let fetched = entries.len();
            if fetched == 0 {
                return Ok(out);
            }
            let mut gone = Vec::new();
            for (id, stored) in entries {
                let Some(stored) = stored else {
                    gone.push(id);
                    continue;
                };
                let s = stored.session;
                if !self.is_live(&s) || !filter.matches(&s) || !seen.insert(s.id) {
                    continue;
                }
                if skipped < page.offset {
                    skipped += 1;
                    continue;
                }
                out.push(s);
                if out.len() == page.limit {
                    self.drop_from_index(&gone).await;
                    return Ok(out);
                }
            }
            self.drop_from_index(&gone).await;
            if fetched < batch {
                return Ok(out);
            }
            rank += fetched - gone.len();
        }
    }
}

impl RedisStore {
    /// Index entries from rank `first` to `last` (newest first) with their sessions as
    /// stored (`None`: the session's hash is gone).
    async fn list_batch(
        &self,
        filter: &SessionFilter,
        first: usize,
        last: usize,
    ) -> Result<Vec<(Uuid, Option<StoredSession>)>, Error> {
        let cluster = self.conn.is_cluster();
        let script = if cluster {
            &self.scripts.index_list
        } else {
            &self.scripts.list_standalone
        };
        let mut call = self.index_call(script);
        call.arg(self.now_us());
        match &filter.external_user_id {
            Some(ext) => call.arg("1").arg(ext),
            None => call.arg("0").arg(""),
        };
        call.arg(first).arg(last);
        let parse = |i: &str| Uuid::parse_str(i).map_err(|_| Error::corrupt("indexed uuid"));
        if !cluster {
            // Standalone: the sessions come back with the index entries.
            call.arg(self.keys.prefix());
            let rows: Vec<(String, Vec<String>)> =
                call.invoke_async(&mut self.conn.clone()).await?;
            return rows
                .into_iter()
                .map(|(id, fields)| {
                    Ok((
                        parse(&id)?,
                        codec::session_from_fields(&codec::pairs_to_map(fields))?,
                    ))
                })
                .collect();
        }
        let ids: Vec<String> = call.invoke_async(&mut self.conn.clone()).await?;
        let ids: Vec<Uuid> = ids.iter().map(|i| parse(i)).collect::<Result<_, _>>()?;
        let sessions = self.read_sessions(&ids).await?;
        Ok(ids.into_iter().zip(sessions).collect())
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, session: &Session) -> Result<(), StoreError> {
        Ok(self.create_session(session).await?)
    }

    async fn get(&self, reference: &SessionRef) -> Result<Option<Session>, StoreError> {
        Ok(self.get_session(reference).await?)
    }

    async fn update(&self, id: Uuid, patch: &SessionPatch) -> Result<Session, StoreError> {
        Ok(self.update_session(id, patch).await?)
    }

    async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
        Ok(self.delete_session(id).await?)
    }

    async fn list(&self, filter: &SessionFilter, page: Page) -> Result<Vec<Session>, StoreError> {
        Ok(self.list_sessions(filter, page).await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let pong: Result<String, _> = redis::cmd("PING").query_async(&mut self.conn.clone()).await;
        pong.map(drop).map_err(|e| Error::from(e).into())
    }
}
