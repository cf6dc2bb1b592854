//! Messages: append (and the chat turn), read and soft-delete by id, list.

use colloquy_core::ports::Turn;
use colloquy_core::stats::StatCounts;
use colloquy_core::{
    ChatMessage, Cursor, Entity, MessageDraft, MessageQuery, Role, Session, SessionRef,
};
use redis::AsyncCommands;
use uuid::Uuid;

use crate::codec::{self, Reply};
use crate::error::Error;
use crate::slots;
use crate::store::{RedisStore, Target, Then, MAX_STEPS};

/// Messages read per request while scanning a session for a filtered list.
const SCAN_BATCH: usize = 500;

/// What one append script returned: the session, the message, and for a turn the
/// system and recent messages.
pub(crate) struct Appended {
    pub(crate) session: Session,
    pub(crate) message: ChatMessage,
    pub(crate) context: Option<(Vec<ChatMessage>, Vec<ChatMessage>)>,
}

impl RedisStore {
    /// Appends `draft` to the session `to` names; with a `window`, also reads the
    /// turn's context in the same script.
    pub(crate) async fn append_message(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
        window: Option<usize>,
    ) -> Result<Appended, Error> {
        let cluster = self.is_cluster();
        let body = codec::message_body(draft.role, &draft.message, &draft.metadata)?;
        // An ungrounded answer brings back the question it answers, for the dashboard.
        let question = crate::console::question_asked(&draft);
        let counts = crate::console::deltas(&StatCounts::of_message(draft.role, &draft.metadata));
        let mut target = self.first_target(to);
        let pointer = self.keys.message_pointer(draft.id);
        let pointer_slot = slots::key_slot(&pointer);
        // Cluster: when the message's pointer is in the session's slot (an id the store
        // generated for a reference by session_id), the append script writes it: one
        // round trip. Otherwise the pointer (another slot) is claimed before the append
        // commits, with a first guess of its purge time that the script checks.
        let mut purge = if cluster {
            self.pointer_guess()
        } else {
            String::new()
        };
        let mut claimed: Option<String> = None;
        let mut same_slot = cluster;
        for _ in 0..MAX_STEPS {
            let mut here = if cluster { "" } else { pointer.as_str() };
            if cluster {
                if let Some(sid) = target.sid(to) {
                    if same_slot && slots::key_slot(&self.keys.holder(sid)) == pointer_slot {
                        here = &pointer;
                        claimed = Some(sid.to_owned());
                    } else if claimed.as_deref() != Some(sid) {
                        self.claim_checked(pointer.clone(), sid, &purge, Entity::Message, draft.id)
                            .await?;
                        claimed = Some(sid.to_owned());
                    }
                }
            }
            let args = [
                draft.id.to_string(),
                codec::micros(draft.timestamp).to_string(),
                body.clone(),
                draft.role.as_str().to_owned(),
                claimed.clone().unwrap_or_default(),
                purge.clone(),
                window.map(|w| w.to_string()).unwrap_or_default(),
                here.to_owned(),
                question.map(|q| q.to_string()).unwrap_or_default(),
                counts.clone(),
                codec::flag(colloquy_core::inbox::is_rated_down(&draft.metadata)).to_owned(),
            ];
            let Some(reply) = self
                .step(&self.scripts.message_append, to, &mut target, &args)
                .await?
            else {
                continue;
            };
            match reply.status() {
                "ok" => {
                    let appended = appended(&reply, draft, window.is_some())?;
                    self.learn(&appended.session);
                    return Ok(appended);
                }
                "inactive" => return Err(Error::SessionInactive),
                "conflict" => return Err(Error::Conflict(Entity::Message)),
                "claim" => {
                    let uuid = Uuid::try_parse(&reply.string(1)?)
                        .map_err(|_| Error::corrupt("session uuid"))?;
                    target = Target::At {
                        sid: reply.string(0)?,
                        uuid,
                        then: Then::Cold,
                    };
                }
                "taken" => {
                    // The pointer names another session_id: claim it the checked way.
                    same_slot = false;
                    claimed = None;
                }
                "ttl" => {
                    // The session lives longer than the guess: extend the pointer first.
                    purge = reply.string(0)?;
                    claimed = None;
                }
                _ => return Err(reply.unexpected()),
            }
        }
        Err(Error::Reply("append did not settle".into()))
    }

    pub(crate) async fn begin(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
        window: usize,
    ) -> Result<Turn, Error> {
        let appended = self.append_message(to, draft, Some(window)).await?;
        let (system, recent) = appended
            .context
            .ok_or_else(|| Error::Reply("turn without context".into()))?;
        Ok(Turn {
            session: appended.session,
            message: appended.message,
            system,
            recent,
        })
    }

    /// Reads (`"get"`) or soft-deletes (`"delete"`) message `id`; `None` when it is
    /// missing, deleted, or its session is not live.
    pub(crate) async fn by_id(&self, id: Uuid, op: &str) -> Result<Option<Reply>, Error> {
        let pointer = self.keys.message_pointer(id);
        let (route, sid) = if self.is_cluster() {
            // Cluster: the pointer first (under its old name when missing), then the
            // session's slot.
            let mut sid: Option<String> = self.conn.clone().get(&pointer).await?;
            if sid.is_none() {
                sid = self
                    .conn
                    .clone()
                    .get(self.keys.old_message_pointer(id))
                    .await?;
            }
            let Some(sid) = sid else { return Ok(None) };
            (self.keys.holder(&sid), sid)
        } else {
            // Standalone: the script follows the pointer itself.
            (pointer, String::new())
        };
        let mut call = self.plain_call(&self.scripts.message_by_id, route);
        call.arg(id.to_string()).arg(sid).arg(op);
        let reply = self.send(&call).await?;
        match reply.status() {
            "ok" => Ok(Some(reply)),
            "notfound" => Ok(None),
            _ => Err(reply.unexpected()),
        }
    }

    pub(crate) async fn get_message(
        &self,
        id: Uuid,
    ) -> Result<Option<(ChatMessage, Session)>, Error> {
        let Some(reply) = self.by_id(id, "get").await? else {
            return Ok(None);
        };
        let session = reply.session(0)?;
        let (_, message) = codec::message_from_value(id, session.id, &reply.string(1)?, false)?;
        self.learn(&session);
        Ok(Some((message, session)))
    }

    pub(crate) async fn soft_delete(&self, id: Uuid) -> Result<(), Error> {
        match self.by_id(id, "delete").await? {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(Entity::Message)),
        }
    }

    pub(crate) async fn list(
        &self,
        of: &SessionRef,
        query: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), Error> {
        let filter = &query.filter;
        // System messages have their own index; any other filter is applied here.
        let source = if filter.role == Some(Role::System) {
            "y"
        } else {
            "v"
        };
        let (kind, cursor) = match query.cursor {
            None => ("", String::new()),
            Some(Cursor::Before(id)) => ("before", id.to_string()),
            Some(Cursor::After(id)) => ("after", id.to_string()),
        };
        let order = query.order.as_str();
        let direct = filter.search.is_none() && matches!(filter.role, None | Some(Role::System));
        if direct || query.page.limit == 0 {
            let args = [
                source.to_owned(),
                order.to_owned(),
                kind.to_owned(),
                cursor,
                String::new(),
                query.page.offset.to_string(),
                if direct { query.page.limit } else { 0 }.to_string(),
            ];
            let reply = self
                .on_session(&self.scripts.message_list, of, &args)
                .await?;
            let (session, page, _) = listed(&reply)?;
            return Ok((session, page.into_iter().map(|(_, m)| m).collect()));
        }
        // Filtered: scan the session in batches, in the requested order.
        let mut target = self.first_target(of);
        let mut bounds: Option<(String, String)> = None;
        let mut out = Vec::new();
        let mut skipped = 0;
        loop {
            let (kind, low, high) = match &bounds {
                None => (kind, cursor.clone(), String::new()),
                Some((lo, hi)) => ("bounds", lo.clone(), hi.clone()),
            };
            let args = [
                source.to_owned(),
                order.to_owned(),
                kind.to_owned(),
                low,
                high,
                "0".to_owned(),
                SCAN_BATCH.to_string(),
            ];
            let Some(reply) = self
                .step(&self.scripts.message_list, of, &mut target, &args)
                .await?
            else {
                continue;
            };
            let (session, batch, (lo, hi)) = listed(&reply)?;
            let fetched = batch.len();
            let mut last = None;
            for (seq, message) in batch {
                last = Some(seq);
                if !filter.matches(&message) {
                    continue;
                }
                if skipped < query.page.offset {
                    skipped += 1;
                    continue;
                }
                out.push(message);
                if out.len() == query.page.limit {
                    return Ok((session, out));
                }
            }
            let Some(last) = last.filter(|_| fetched == SCAN_BATCH) else {
                return Ok((session, out));
            };
            // The next batch: past the last message seen, within the cursor's bounds,
            // in this very session.
            bounds = Some(if query.order.is_newest_first() {
                (lo, format!("({last}"))
            } else {
                (format!("({last}"), hi)
            });
            target = Target::At {
                sid: session.session_id.clone(),
                uuid: session.id,
                then: Then::NotFound,
            };
        }
    }
}

/// Reads an append's `ok` reply (see lua/message_append.lua).
fn appended(reply: &Reply, draft: MessageDraft, turn: bool) -> Result<Appended, Error> {
    let session = reply.session(0)?;
    let stored_at = reply
        .string(1)?
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .ok_or_else(|| Error::corrupt("stored timestamp"))?;
    let mut message = draft.into_message(session.id);
    message.timestamp = stored_at;
    let context = if turn {
        let system = reply.messages(3, session.id)?;
        let mut recent = reply.messages(5, session.id)?;
        recent.reverse();
        Some((
            system.into_iter().map(|(_, m)| m).collect(),
            recent.into_iter().map(|(_, m)| m).collect(),
        ))
    } else {
        None
    };
    Ok(Appended {
        session,
        message,
        context,
    })
}

type Listed = (Session, Vec<(u64, ChatMessage)>, (String, String));

/// Reads a list reply (see lua/message_list.lua).
fn listed(reply: &Reply) -> Result<Listed, Error> {
    match reply.status() {
        "ok" => {
            let session = reply.session(0)?;
            let messages = reply.messages(1, session.id)?;
            Ok((session, messages, (reply.string(3)?, reply.string(4)?)))
        }
        "nomessage" => Err(Error::NotFound(Entity::Message)),
        _ => Err(reply.unexpected()),
    }
}
