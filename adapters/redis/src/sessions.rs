//! Sessions: create, read, update, delete, list.

use std::collections::HashMap;

use colloquy_core::stats::{self, StatCounts};
use colloquy_core::{Entity, Page, Session, SessionFilter, SessionPatch, SessionRef};
use futures::{StreamExt, TryStreamExt};
use redis::{AsyncCommands, Value};
use uuid::Uuid;

use crate::codec;
use crate::error::Error;
use crate::keys;
use crate::store::{RedisStore, Target, MAX_STEPS};

/// Largest number of list index entries read per request while listing.
pub(crate) const LIST_BATCH: usize = 500;

/// How long a create may take between writing its list entry and its session (a
/// cluster writes the entry first): a listing drops an entry naming no session only
/// when its `created_at` is older than this. Far beyond `MAX_STEPS` requests of the
/// longest response timeout a store is configured with in practice.
const CREATE_SETTLES: std::time::Duration = std::time::Duration::from_secs(120);

/// How many single-key requests run at once when keys of many slots are touched on a
/// cluster (the sessions of a list page, the pointers of a session whose expiry moves).
pub(crate) const CLUSTER_FANOUT: usize = 64;

impl RedisStore {
    pub(crate) async fn create_session(&self, session: &Session) -> Result<(), Error> {
        let purge = self.purge_time(session.expires_at);
        let entry = keys::index_entry(session.created_at, session.id, &session.session_id);
        // Cluster: the UUID pointer and list entry (other slots) live at least as long
        // as message pointers are first given, so that moving `expires_at` within that
        // needs no extra round trips (see lua/session_update.lua).
        let cover = if self.is_cluster() {
            codec::later_purge(purge.clone(), self.pointer_guess())
        } else {
            purge.clone()
        };
        if self.is_cluster() {
            // The UUID pointer and the list entry live in other slots: both first (each
            // is checked against the session's own keys when read), the session last.
            let mut index = self.plain_call(&self.scripts.index_add, self.keys.index());
            index.arg(&entry).arg(&cover);
            let claim = self.claim_checked(
                self.keys.uuid_pointer(session.id),
                &session.session_id,
                &cover,
                Entity::Session,
                session.id,
            );
            let indexed = async { index.invoke_async::<i64>(&mut self.conn.clone()).await };
            let (claimed, indexed) = futures::join!(claim, indexed);
            claimed?;
            indexed?;
        }
        let mut args = vec![
            session.id.to_string(),
            purge.clone(),
            entry,
            codec::micros(stats::hour_of(session.created_at)).to_string(),
            crate::console::deltas(&StatCounts::of_session()),
        ];
        for (field, value) in codec::session_fields(session, &purge, &cover)? {
            args.push(field.to_owned());
            args.push(value);
        }
        // Mode `sid`: the script works on the session_id's own keys, whatever it looks like.
        let reference = SessionRef::parse(&session.session_id);
        let reply = self
            .step(
                &self.scripts.session_create,
                &reference,
                &mut Target::Sid,
                &args,
            )
            .await?
            .ok_or_else(|| Error::Reply("create was redirected".into()))?;
        match reply.status() {
            "ok" => {
                self.learn(session);
                Ok(())
            }
            "conflict" => Err(Error::Conflict(Entity::Session)),
            _ => Err(reply.unexpected()),
        }
    }

    pub(crate) async fn get_session(
        &self,
        reference: &SessionRef,
    ) -> Result<Option<Session>, Error> {
        match self
            .on_session(&self.scripts.session_get, reference, &[])
            .await
        {
            Ok(reply) if reply.status() == "ok" => {
                let session = reply.session(0)?;
                self.learn(&session);
                Ok(Some(session))
            }
            Ok(reply) => Err(reply.unexpected()),
            Err(Error::NotFound(Entity::Session)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn update_session(
        &self,
        reference: &SessionRef,
        patch: &SessionPatch,
    ) -> Result<Session, Error> {
        let (expires, purge) = match patch.expires_at {
            Some(at) => (codec::micros(at).to_string(), self.purge_time(at)),
            None => (String::new(), String::new()),
        };
        let mut args = vec![patch
            .is_active
            .map_or(String::new(), |a| codec::flag(a).to_owned())];
        match &patch.metadata {
            Some(meta) => args.extend(["1".to_owned(), serde_json::to_string(meta)?]),
            None => args.extend(["0".to_owned(), String::new()]),
        }
        match &patch.external_user_id {
            None => args.extend(["keep".to_owned(), String::new()]),
            Some(None) => args.extend(["clear".to_owned(), String::new()]),
            Some(Some(ext)) => args.extend(["set".to_owned(), ext.clone()]),
        }
        args.extend([expires, purge.clone()]);
        // Cluster: the purge time the session's pointers were extended to, and the
        // message count then (see lua/session_update.lua).
        let mut covered = (String::new(), String::new());
        let mut target = self.first_target(reference);
        let responder = patch
            .responder
            .map_or(String::new(), |r| r.as_str().to_owned());
        let handoff = match patch.handoff_requested_at {
            None => ["keep".to_owned(), String::new()],
            Some(None) => ["clear".to_owned(), String::new()],
            Some(Some(at)) => ["set".to_owned(), codec::micros(at).to_string()],
        };
        for _ in 0..MAX_STEPS {
            let mut call_args = args.clone();
            call_args.extend([covered.0.clone(), covered.1.clone()]);
            call_args.push(responder.clone());
            call_args.extend(handoff.iter().cloned());
            let Some(reply) = self
                .step(
                    &self.scripts.session_update,
                    reference,
                    &mut target,
                    &call_args,
                )
                .await?
            else {
                continue;
            };
            match reply.status() {
                "ok" => {
                    let session = reply.session(0)?;
                    self.learn(&session);
                    return Ok(session);
                }
                "extend" => {
                    let uuid = parse_uuid(&reply.string(1)?)?;
                    let seq = reply.string(2)?;
                    let entry = reply.string(3)?;
                    let messages = reply.strings(4)?;
                    self.extend_pointers(uuid, &entry, &messages, &purge)
                        .await?;
                    covered = (purge.clone(), seq);
                }
                _ => return Err(reply.unexpected()),
            }
        }
        Err(Error::Reply(
            "the session kept changing while its expiry moved".into(),
        ))
    }

    /// Cluster: moves the purge time of a session's UUID pointer, message pointers and
    /// list entry to `purge` at least (never earlier), concurrently.
    async fn extend_pointers(
        &self,
        uuid: Uuid,
        entry: &str,
        messages: &[String],
        purge: &str,
    ) -> Result<(), Error> {
        let extend = |key: String| {
            if purge == "never" {
                redis::cmd("PERSIST").arg(key).clone()
            } else {
                redis::cmd("PEXPIREAT")
                    .arg(key)
                    .arg(purge)
                    .arg("GT")
                    .clone()
            }
        };
        let score = if purge == "never" { "+inf" } else { purge };
        let mut cmds = vec![
            extend(self.keys.uuid_pointer(uuid)),
            redis::cmd("ZADD")
                .arg(self.keys.index_purge())
                .arg("XX")
                .arg("GT")
                .arg(score)
                .arg(entry)
                .clone(),
        ];
        let ids = messages
            .iter()
            .map(|id| parse_uuid(id))
            .collect::<Result<Vec<_>, _>>()?;
        cmds.extend(ids.iter().map(|&id| extend(self.keys.message_pointer(id))));
        let replies = self.fan_out(cmds).await?;
        // A message appended before slot-tagged pointers has its pointer under the old
        // name: tried when the new name was not extended (missing, or already later).
        let old: Vec<_> = ids
            .iter()
            .zip(&replies[2..])
            .filter(|(_, reply)| matches!(reply, Value::Int(0)))
            .map(|(&id, _)| extend(self.keys.old_message_pointer(id)))
            .collect();
        self.fan_out(old).await?;
        Ok(())
    }

    /// Cluster: sends single-key commands of many slots concurrently; their replies,
    /// in order.
    async fn fan_out(&self, cmds: Vec<redis::Cmd>) -> Result<Vec<Value>, Error> {
        Ok(futures::stream::iter(cmds.into_iter().map(|cmd| {
            let mut conn = self.conn.clone();
            async move { cmd.query_async::<Value>(&mut conn).await }
        }))
        .buffered(CLUSTER_FANOUT)
        .try_collect::<Vec<_>>()
        .await?)
    }

    pub(crate) async fn delete_session(&self, reference: &SessionRef) -> Result<(), Error> {
        let reply = self
            .on_session(&self.scripts.session_delete, reference, &[])
            .await?;
        match reply.status() {
            "ok" => Ok(()),
            _ => Err(reply.unexpected()),
        }
    }

    pub(crate) async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: Page,
    ) -> Result<Vec<Session>, Error> {
        let mut out = Vec::new();
        if page.limit == 0 {
            return Ok(out);
        }
        let now = self.clock.now();
        let settled = now - chrono::Duration::from_std(CREATE_SETTLES).unwrap_or_default();
        let batch = page
            .offset
            .saturating_add(page.limit)
            .saturating_add(8)
            .clamp(16, LIST_BATCH);
        let mut skipped = 0;
        let mut after = String::new();
        loop {
            let rows = self.list_batch(&after, batch).await?;
            let fetched = rows.len();
            let mut gone = Vec::new();
            for (entry, fields) in &rows {
                // An entry names its session only when the session's own `idx` is that
                // entry: on a cluster a create writes its entry first, and one that then
                // conflicted leaves an entry naming no session, or naming a stored
                // session (same UUID and session_id) at another created_at.
                let named = fields.get("idx").is_some_and(|idx| idx == entry);
                let session = if named {
                    codec::session_from_fields(fields)?
                } else {
                    None
                };
                let Some(session) = session else {
                    // A create in flight has written its entry but not yet its session:
                    // only entries older than that can take are dropped.
                    if keys::index_entry_created(entry).is_none_or(|at| at < settled) {
                        gone.push(entry.clone());
                    }
                    continue;
                };
                if session.is_expired_at(now) || !filter.matches(&session) {
                    continue;
                }
                if skipped < page.offset {
                    skipped += 1;
                    continue;
                }
                out.push(session);
                if out.len() == page.limit {
                    break;
                }
            }
            self.drop_from_index(gone).await;
            if out.len() == page.limit || fetched < batch {
                return Ok(out);
            }
            if let Some((last, _)) = rows.last() {
                after.clone_from(last);
            }
        }
    }

    /// Up to `count` list entries after `after` ("" from the newest), each with its
    /// session hash (empty when the session is gone).
    pub(crate) async fn list_batch(
        &self,
        after: &str,
        count: usize,
    ) -> Result<Vec<(String, HashMap<String, String>)>, Error> {
        let cluster = self.is_cluster();
        let mut call = self.plain_call(&self.scripts.index_list, self.keys.index());
        call.arg(after).arg(count).arg(codec::flag(!cluster));
        let value: Value = call.invoke_async(&mut self.conn.clone()).await?;
        if !cluster {
            // Standalone: the sessions come with the entries (gone ones dropped there).
            let (entries, sessions): (Vec<String>, Vec<Vec<String>>) =
                redis::from_redis_value(value).map_err(|e| Error::Reply(e.to_string()))?;
            return Ok(entries
                .into_iter()
                .zip(sessions.into_iter().map(codec::pairs_to_map))
                .collect());
        }
        let (entries,): (Vec<String>,) =
            redis::from_redis_value(value).map_err(|e| Error::Reply(e.to_string()))?;
        // Cluster: each session lives in its own slot.
        let keys: Vec<Option<String>> = entries
            .iter()
            .map(|entry| {
                keys::parse_index_entry(entry).map(|(uuid, sid)| self.keys.session(sid, uuid, 's'))
            })
            .collect();
        let sessions: Vec<HashMap<String, String>> =
            futures::stream::iter(keys.into_iter().map(|key| {
                let mut conn = self.conn.clone();
                async move {
                    match key {
                        Some(key) => conn.hgetall(key).await.map_err(Error::from),
                        None => Ok(HashMap::new()),
                    }
                }
            }))
            .buffered(CLUSTER_FANOUT)
            .try_collect()
            .await?;
        Ok(entries.into_iter().zip(sessions).collect())
    }

    /// Cluster: drops list entries whose session was found gone. Failures only leave
    /// work for the next reader, so they are logged, not returned.
    async fn drop_from_index(&self, entries: Vec<String>) {
        if entries.is_empty() || !self.is_cluster() {
            return;
        }
        let mut call = self.plain_call(&self.scripts.index_drop, self.keys.index());
        for entry in &entries {
            call.arg(entry);
        }
        if let Err(e) = call.invoke_async::<i64>(&mut self.conn.clone()).await {
            tracing::warn!(error = %e, "could not prune the session list index");
        }
    }
}

fn parse_uuid(s: &str) -> Result<Uuid, Error> {
    Uuid::try_parse(s).map_err(|_| Error::corrupt(format!("uuid {s:?}")))
}
