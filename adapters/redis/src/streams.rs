//! [`RedisStreamLog`]: the [`StreamLog`] port shared by every instance on one Redis
//! (or Redis Cluster), so a stream resumes, and cancels, on any instance.
//!
//! Keys, all under the store's prefix:
//! - `sl:{<tag>}:<response>` — a Redis Stream of the answer's events; entry `0-(seq+1)`
//!   holds `k` (`c` chunk, `d` done, `f` failed) and `v` (the text, the finish
//!   reason or the error code), so a read from a sequence number is one `XRANGE`;
//! - `sl:{<tag>}:<response>:m` — a hash: session UUID, message id, `session_id`,
//!   complete, cancel requested, lease end (Redis `TIME`, ms), and whether the
//!   session's pointer is in the same slot;
//! - `{<session_id>}:<session>:a` — the session's running answer, expiring with its
//!   lease; it sits in the session's own slot, beside the session's other keys.
//!
//! `<tag>` is the hash tag of the slot the response id's low 14 bits name (see
//! `slots.rs`): the store gives an answer generated in a session referenced by its
//! `session_id` an id in that session's slot, so on a Redis Cluster too the
//! response's keys and the session's pointer share one slot. A chunk costs one
//! round trip (one script). Starting, renewing and finishing an answer cost one
//! round trip where one script reaches the response's keys and the session's
//! pointer (standalone Redis, or the shared slot), else two (the response's slot,
//! then the session's, so the pointer never names a log that does not exist). The
//! log of a running answer expires
//! `lease + log TTL` after its last renewal (an instance that died leaves nothing
//! behind), and `log TTL` after its terminal event. Followers on other instances
//! poll every [`POLL`]; the instance that generates pushes to its own client
//! directly.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::streams::{CancelOutcome, LogRead, LogState, StreamLog, StreamMeta};
use colloquy_core::{ChatEvent, ErrorCode, FinishReason, Session, StoreError};
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use crate::conn::Conn;
use crate::error::Error;
use crate::keys::Keys;
use crate::slots;
use crate::store::RedisStore;

/// How often a follower on another instance looks for new events.
pub(crate) const POLL: Duration = Duration::from_millis(25);

struct Scripts {
    start: Script,
    append: Script,
    read: Script,
    cancel: Script,
    renew: Script,
    pointer: Script,
}

/// A stream log on the store's Redis; see the [module docs](self).
#[derive(Clone)]
pub struct RedisStreamLog {
    conn: Conn,
    keys: Keys,
    log_ttl: Duration,
    lease: Duration,
    scripts: Arc<Scripts>,
}

impl fmt::Debug for RedisStreamLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStreamLog")
            .field("prefix", &self.keys.prefix())
            .field("log_ttl", &self.log_ttl)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A stream log sharing this store's connection and key prefix, keeping finished
    /// answers' events for `log_ttl`, with leases of `lease`.
    #[must_use]
    pub fn stream_log(&self, log_ttl: Duration, lease: Duration) -> RedisStreamLog {
        RedisStreamLog {
            conn: self.conn.clone(),
            keys: self.keys.clone(),
            log_ttl,
            lease,
            scripts: Arc::new(Scripts {
                start: Script::new(include_str!("../lua/stream_start.lua")),
                append: Script::new(include_str!("../lua/stream_append.lua")),
                read: Script::new(include_str!("../lua/stream_read.lua")),
                cancel: Script::new(include_str!("../lua/stream_cancel.lua")),
                renew: Script::new(include_str!("../lua/stream_renew.lua")),
                pointer: Script::new(include_str!("../lua/pointer_if_mine.lua")),
            }),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn store_error(e: redis::RedisError) -> StoreError {
    StoreError::from(Error::from(e))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::from(Error::corrupt(what))
}

/// `(entry id, [k, kind, v, value])` of `XRANGE`.
type Entry = (String, Vec<String>);
/// What `stream_read.lua` answers.
type Read = Option<(String, String, String, String, String, Vec<Entry>)>;

impl RedisStreamLog {
    fn meta_key(&self, response: Uuid) -> String {
        format!("{}:m", self.stream_key(response))
    }

    fn stream_key(&self, response: Uuid) -> String {
        let tag = slots::slot_tag(slots::message_slot(response));
        format!("{}sl:{{{tag}}}:{response}", self.keys.prefix())
    }

    /// `P{<session_id>}:<session>:a`: the session's active pointer, one of the
    /// session's own keys (`lua/stream_append.lua` builds the same name).
    fn active_key(&self, session: Uuid, session_id: &str) -> String {
        self.keys.session(session_id, session, 'a')
    }

    /// Whether one script may touch a response's keys and its session's pointer:
    /// always on standalone Redis; on a cluster when they share a slot.
    fn one_script(&self, meta: &StreamMeta) -> bool {
        !self.conn.is_cluster()
            || slots::key_slot(&self.active_key(meta.session, &meta.session_id))
                == slots::message_slot(meta.response_id)
    }

    /// Moves the expiry of the session's pointer to `lease_end` (Redis time, ms), or
    /// deletes it (`0`), if it names `response`.
    async fn pointer(
        &self,
        (session, session_id): (Uuid, &str),
        response: Uuid,
        lease_end: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .scripts
            .pointer
            .key(self.active_key(session, session_id))
            .arg(response.to_string())
            .arg(lease_end)
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

/// An event's kind and value. A `done` value is the finish reason, then, when the
/// answer has sources, a newline and their JSON.
fn encode(event: &ChatEvent) -> (&'static str, String) {
    match event {
        ChatEvent::Chunk { text, .. } => ("c", text.clone()),
        ChatEvent::Done {
            finish_reason,
            sources,
            ..
        } => {
            let mut value = finish_reason.as_str().to_owned();
            if let Some(json) = sources.as_ref().and_then(|s| serde_json::to_string(s).ok()) {
                value.push('\n');
                value.push_str(&json);
            }
            ("d", value)
        }
        ChatEvent::Failed { code, .. } => ("f", code.as_str().to_owned()),
    }
}

fn decode((id, fields): Entry) -> Result<ChatEvent, StoreError> {
    let seq = id
        .strip_prefix("0-")
        .and_then(|n| n.parse::<u64>().ok())
        .and_then(|n| n.checked_sub(1))
        .ok_or_else(|| corrupt("stream entry id"))?;
    let (kind, value) = match fields.as_slice() {
        [k, kind, v, value] if k == "k" && v == "v" => (kind.as_str(), value.clone()),
        _ => return Err(corrupt("stream entry fields")),
    };
    Ok(match kind {
        "c" => ChatEvent::Chunk { seq, text: value },
        "d" => {
            let (reason, sources) = value.split_once('\n').unwrap_or((value.as_str(), ""));
            ChatEvent::Done {
                seq,
                finish_reason: FinishReason::parse(reason)
                    .ok_or_else(|| corrupt("finish reason"))?,
                sources: (!sources.is_empty())
                    .then(|| serde_json::from_str(sources))
                    .transpose()
                    .map_err(|_| corrupt("sources"))?,
            }
        }
        "f" => ChatEvent::Failed {
            seq,
            code: ErrorCode::parse(&value).ok_or_else(|| corrupt("error code"))?,
        },
        _ => return Err(corrupt("stream entry kind")),
    })
}

#[async_trait]
impl StreamLog for RedisStreamLog {
    async fn start(&self, meta: &StreamMeta) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let response = meta.response_id;
        let one_script = self.one_script(meta);
        let mut call = self.scripts.start.prepare_invoke();
        call.key(self.meta_key(response))
            .key(self.stream_key(response));
        if one_script {
            call.key(self.active_key(meta.session, &meta.session_id));
        }
        let lease_end: u64 = call
            .arg(meta.session.to_string())
            .arg(meta.message_id.to_string())
            .arg(&meta.session_id)
            .arg(millis(self.lease))
            .arg(millis(self.lease + self.log_ttl))
            .arg(response.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        if !one_script {
            // Expires with the lease the log records, to the millisecond.
            let _: () = redis::cmd("SET")
                .arg(self.active_key(meta.session, &meta.session_id))
                .arg(response.to_string())
                .arg("PXAT")
                .arg(lease_end)
                .query_async(&mut conn)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    async fn append(&self, response: Uuid, event: &ChatEvent) -> Result<(), StoreError> {
        let (kind, value) = encode(event);
        let mut conn = self.conn.clone();
        // `(session, session_id)` when the caller must clear the pointer itself.
        let pointer: Option<(String, String)> = self
            .scripts
            .append
            .key(self.meta_key(response))
            .key(self.stream_key(response))
            .arg(event.seq())
            .arg(kind)
            .arg(&value)
            .arg(if event.is_terminal() { "1" } else { "0" })
            .arg(millis(self.lease + self.log_ttl))
            .arg(millis(self.log_ttl).max(1))
            .arg(self.keys.prefix())
            .arg(response.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        if let Some((session, session_id)) = pointer {
            let session = Uuid::try_parse(&session).map_err(|_| corrupt("session uuid"))?;
            self.pointer((session, &session_id), response, 0).await?;
        }
        Ok(())
    }

    async fn read(&self, response: Uuid, from: u64) -> Result<Option<LogRead>, StoreError> {
        let mut conn = self.conn.clone();
        let read: Read = self
            .scripts
            .read
            .key(self.meta_key(response))
            .key(self.stream_key(response))
            .arg(from)
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        let Some((session, message_id, session_id, complete, expired, entries)) = read else {
            return Ok(None);
        };
        let parse = |s: &str| Uuid::try_parse(s).map_err(|_| corrupt("uuid in stream meta"));
        let events = entries
            .into_iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        let state = match (complete.as_str(), expired.as_str()) {
            ("1", _) => LogState::Complete,
            (_, "1") => LogState::Abandoned,
            _ => LogState::Running,
        };
        Ok(Some(LogRead {
            meta: StreamMeta {
                response_id: response,
                message_id: parse(&message_id)?,
                session: parse(&session)?,
                session_id,
            },
            events,
            state,
        }))
    }

    async fn changed(&self, _response: Uuid, _after: u64, within: Duration) {
        tokio::time::sleep(POLL.min(within)).await;
    }

    async fn request_cancel(&self, response: Uuid) -> Result<CancelOutcome, StoreError> {
        let mut conn = self.conn.clone();
        let outcome: String = self
            .scripts
            .cancel
            .key(self.meta_key(response))
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(match outcome.as_str() {
            "requested" => CancelOutcome::Requested,
            "complete" => CancelOutcome::AlreadyComplete,
            _ => CancelOutcome::Unknown,
        })
    }

    async fn cancel_requested(&self, response: Uuid) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let flag: Option<String> = conn
            .hget(self.meta_key(response), "x")
            .await
            .map_err(store_error)?;
        Ok(flag.as_deref() == Some("1"))
    }

    async fn renew(&self, meta: &StreamMeta) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let response = meta.response_id;
        let one_script = self.one_script(meta);
        let mut call = self.scripts.renew.prepare_invoke();
        call.key(self.meta_key(response))
            .key(self.stream_key(response));
        if one_script {
            call.key(self.active_key(meta.session, &meta.session_id));
        }
        let lease_end: u64 = call
            .arg(millis(self.lease))
            .arg(millis(self.lease + self.log_ttl))
            .arg(response.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        if one_script || lease_end == 0 {
            return Ok(());
        }
        self.pointer(
            (meta.session, &meta.session_id),
            meta.response_id,
            lease_end,
        )
        .await
    }

    async fn active(&self, session: &Session) -> Result<Option<Uuid>, StoreError> {
        let mut conn = self.conn.clone();
        let active: Option<String> = conn
            .get(self.active_key(session.id, &session.session_id))
            .await
            .map_err(store_error)?;
        Ok(active.and_then(|r| Uuid::try_parse(&r).ok()))
    }

    fn lease(&self) -> Duration {
        self.lease
    }
}
