//! [`RedisStore`]: connecting, and running scripts at the right session.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use colloquy_core::{Clock, Entity, Retention, Session, SessionRef};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::{AsyncCommands, Script, ScriptInvocation, Value};
use uuid::Uuid;

use crate::codec::{self, Reply};
use crate::config::{ConnectError, RedisConfig};
use crate::conn::Conn;
use crate::error::Error;
use crate::keys::Keys;
use crate::scripts::Scripts;

/// How many times one operation may be sent on (a UUID's pointer leads to another
/// slot, a pointer must be claimed or extended first) before it gives up.
pub(crate) const MAX_STEPS: usize = 8;

/// How many UUID -> session_id pairs a store remembers (cluster only).
const SID_CACHE_MAX: usize = 65_536;

/// A [`ChatStore`](colloquy_core::ports::ChatStore) on Redis or Redis Cluster.
///
/// Cheap to clone: clones share one multiplexed connection, which reconnects by itself
/// after Redis comes back. See the [crate docs](crate) for the key schema.
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) conn: Conn,
    pub(crate) keys: Keys,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) scripts: Arc<Scripts>,
    pub(crate) retention: Retention,
    pub(crate) pointer_ttl: chrono::Duration,
    /// How long Redis may take to answer one request.
    pub(crate) response_timeout: Duration,
    sids: Arc<SidCache>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &self.conn.is_cluster())
            .field("keys", &self.keys)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

pub(crate) fn check_prefix(prefix: &str) -> Result<(), ConnectError> {
    if prefix.contains(['{', '}']) {
        return Err(ConnectError::InvalidPrefix(prefix.to_owned()));
    }
    Ok(())
}

/// `host:port` becomes `redis://host:port`; URLs are kept.
pub(crate) fn node_url(node: &str) -> String {
    if node.contains("://") {
        node.to_owned()
    } else {
        format!("redis://{node}")
    }
}

/// Where a session script runs; the modes of `lua/common.lua`.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Mode `sid`: the session holding the reference's text as session_id, in that
    /// session_id's slot.
    Sid,
    /// Mode `ref`, for a reference that reads as a UUID: the session with that UUID
    /// (on a cluster: when its UUID pointer leads to this slot), else by session_id.
    Ref,
    /// Mode `at`: session `uuid`, stored under `sid`, in that slot.
    At {
        /// Its session_id.
        sid: String,
        /// Its UUID.
        uuid: Uuid,
        /// Where to look when it is not live.
        then: Then,
    },
}

/// What an [`Target::At`] lookup falls back to when that session is not live.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Then {
    /// It came from the cache: resolve the reference afresh.
    Cold,
    /// A live session has the reference's text as session_id: that one.
    Sid,
    /// Nothing else matches.
    NotFound,
}

impl Target {
    /// The session_id whose slot the script runs in, when known before it runs.
    pub(crate) fn sid<'a>(&'a self, reference: &'a SessionRef) -> Option<&'a str> {
        match self {
            Self::Sid => Some(reference.as_str()),
            Self::Ref => None,
            Self::At { sid, .. } => Some(sid),
        }
    }
}

/// Session UUID -> session_id pairs seen by this store (cluster only), so a lookup by
/// UUID can go straight to the session's slot. A session's session_id never changes,
/// so an entry is never wrong about a stored session; one whose session is gone is
/// noticed by the script (the session is not live there) and dropped.
#[derive(Debug, Default)]
struct SidCache(Mutex<HashMap<Uuid, String>>);

impl SidCache {
    fn get(&self, uuid: Uuid) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&uuid)
            .cloned()
    }

    fn remember(&self, uuid: Uuid, sid: &str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= SID_CACHE_MAX && !map.contains_key(&uuid) {
            if let Some(any) = map.keys().next().copied() {
                map.remove(&any);
            }
        }
        map.insert(uuid, sid.to_owned());
    }

    fn forget(&self, uuid: Uuid) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&uuid);
    }
}

impl RedisStore {
    /// Connects to a standalone Redis at `url` (`redis://host:port/db`).
    ///
    /// Fails when the URL is invalid or Redis does not answer within the connect
    /// timeout. Later outages do not need a new store: requests fail with
    /// [`StoreError::Unavailable`](colloquy_core::StoreError::Unavailable) while Redis
    /// is away and succeed again once it is back.
    ///
    /// # Errors
    /// See [`ConnectError`].
    pub async fn connect(
        url: &str,
        config: &RedisConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConnectError> {
        check_prefix(&config.prefix)?;
        let client = redis::Client::open(url)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_with_config(client, manager_config).await?;
        Ok(Self::with_conn(Conn::standalone(manager), config, clock))
    }

    /// Connects to a Redis Cluster through any of `nodes` (`host:port` or
    /// `redis://host:port`); the rest of the cluster is discovered.
    ///
    /// # Errors
    /// See [`ConnectError`].
    pub async fn connect_cluster<S: AsRef<str>>(
        nodes: &[S],
        config: &RedisConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConnectError> {
        check_prefix(&config.prefix)?;
        if nodes.is_empty() {
            return Err(ConnectError::NoNodes);
        }
        let urls: Vec<String> = nodes.iter().map(|n| node_url(n.as_ref())).collect();
        let client = ClusterClientBuilder::new(urls)
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.response_timeout)
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(200)
            .build()?;
        let connection = client.get_async_connection().await?;
        Ok(Self::with_conn(Conn::cluster(connection), config, clock))
    }

    fn with_conn(conn: Conn, config: &RedisConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            keys: Keys::new(&config.prefix, conn.is_cluster()),
            conn,
            clock,
            scripts: Arc::new(Scripts::new()),
            retention: config.retention,
            pointer_ttl: chrono::Duration::from_std(config.pointer_ttl)
                .unwrap_or(chrono::Duration::MAX),
            response_timeout: config.response_timeout,
            sids: Arc::default(),
        }
    }

    /// Requests sent to Redis so far by this store and its clones: each command,
    /// script call or pipeline counts once (a script reload after `NOSCRIPT` adds two).
    /// For observing the cost of operations; the crate docs list it per operation.
    #[must_use]
    pub fn requests_sent(&self) -> u64 {
        self.conn.requests()
    }

    /// Whether this store talks to a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// The retention this store gives expired sessions' keys.
    #[must_use]
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// A script call with the seven arguments every script takes (see
    /// `lua/common.lua`), routed by `route` (a key of the slot it works in); `at` is
    /// the session_id (for mode `at`) and UUID (modes `at` and `ref`).
    pub(crate) fn call<'a>(
        &self,
        script: &'a Script,
        route: String,
        mode: &str,
        reference: &str,
        at: Option<(&str, Uuid)>,
    ) -> ScriptInvocation<'a> {
        // ARGV[3]: on a cluster the tag of the routed slot (where the script counts).
        let tag = if self.conn.is_cluster() {
            crate::slots::slot_tag(crate::slots::key_slot(&route))
        } else {
            ""
        };
        let mut call = script.key(route);
        call.arg(self.keys.prefix())
            .arg(codec::micros(self.clock.now()))
            .arg(tag)
            .arg(mode)
            .arg(reference);
        match at {
            Some((sid, uuid)) => call.arg(sid).arg(uuid.to_string()),
            None => call.arg("").arg(""),
        };
        call
    }

    /// Sends a script call and reads its `{status, ...}` reply.
    ///
    /// On a cluster, a session script that changed what the inbox shows hands back
    /// the session's inbox record: it is applied in the `{idx}` slot before this
    /// returns (one more request; see `inbox.rs`).
    pub(crate) async fn send(&self, call: &ScriptInvocation<'_>) -> Result<Reply, Error> {
        let value: Value = call.invoke_async(&mut self.conn.clone()).await?;
        let mut reply = Reply::parse(value)?;
        if let Some(record) = reply.inbox.take() {
            self.apply_inbox(&record, &[]).await;
        }
        Ok(reply)
    }

    /// Where a session script for `reference` runs first: by session_id, by UUID
    /// (then session_id), or straight at the slot of a session this store has seen.
    pub(crate) fn first_target(&self, reference: &SessionRef) -> Target {
        match reference.uuid() {
            None => Target::Sid,
            Some(uuid) if self.conn.is_cluster() => match self.sids.get(uuid) {
                Some(sid) => Target::At {
                    sid,
                    uuid,
                    then: Then::Cold,
                },
                None => Target::Ref,
            },
            Some(_) => Target::Ref,
        }
    }

    /// Runs a session script once at `target`, with its own arguments `args`.
    ///
    /// Returns the reply for the caller to read, or `None` after moving `target`
    /// (the reference's UUID lives in another slot, or the session found there is not
    /// live and another one may match): the caller sends again.
    ///
    /// # Errors
    /// `NotFound(Session)` when no live session matches; Redis failures.
    pub(crate) async fn step(
        &self,
        script: &Script,
        reference: &SessionRef,
        target: &mut Target,
        args: &[String],
    ) -> Result<Option<Reply>, Error> {
        let mut call = match &*target {
            Target::Sid => self.call(
                script,
                self.keys.holder(reference.as_str()),
                "sid",
                reference.as_str(),
                None,
            ),
            Target::Ref => {
                let uuid = reference
                    .uuid()
                    .ok_or_else(|| Error::Reply("not a UUID".into()))?;
                let text = reference.as_str();
                if self.conn.is_cluster() && text != uuid.to_string() {
                    // Upper-case text: the UUID's pointer and the session_id are in two
                    // slots; read the pointer first.
                    let sid: Option<String> =
                        self.conn.clone().get(self.keys.uuid_pointer(uuid)).await?;
                    *target = match sid {
                        Some(sid) => Target::At {
                            sid,
                            uuid,
                            then: Then::Sid,
                        },
                        None => Target::Sid,
                    };
                    return Ok(None);
                }
                self.call(
                    script,
                    self.keys.holder(text),
                    "ref",
                    text,
                    Some(("", uuid)),
                )
            }
            Target::At { sid, uuid, .. } => self.call(
                script,
                self.keys.holder(sid),
                "at",
                reference.as_str(),
                Some((sid, *uuid)),
            ),
        };
        for arg in args {
            call.arg(arg);
        }
        let reply = self.send(&call).await?;
        match reply.status() {
            "notfound" => Err(Error::NotFound(Entity::Session)),
            "goto" => {
                let sid = reply.string(0)?;
                let then = if reply.string(1)? == "1" {
                    Then::Sid
                } else {
                    Then::NotFound
                };
                let uuid = reference.uuid().ok_or_else(|| reply.unexpected())?;
                self.sids.remember(uuid, &sid);
                *target = Target::At { sid, uuid, then };
                Ok(None)
            }
            "fallback" => {
                let Target::At { uuid, then, .. } = &*target else {
                    return Err(reply.unexpected());
                };
                *target = match then {
                    Then::Cold => {
                        self.sids.forget(*uuid);
                        Target::Ref
                    }
                    Then::Sid => Target::Sid,
                    Then::NotFound => return Err(Error::NotFound(Entity::Session)),
                };
                Ok(None)
            }
            _ => Ok(Some(reply)),
        }
    }

    /// Runs a session script for `reference` until it answers something else than a
    /// redirection (see [`RedisStore::step`]).
    pub(crate) async fn on_session(
        &self,
        script: &Script,
        reference: &SessionRef,
        args: &[String],
    ) -> Result<Reply, Error> {
        let mut target = self.first_target(reference);
        for _ in 0..MAX_STEPS {
            if let Some(reply) = self.step(script, reference, &mut target, args).await? {
                return Ok(reply);
            }
        }
        Err(Error::Reply("session resolution did not settle".into()))
    }

    /// Notes a session's UUID and session_id (cluster only), for later lookups by UUID.
    pub(crate) fn learn(&self, session: &Session) {
        if self.conn.is_cluster() {
            self.sids.remember(session.id, &session.session_id);
        }
    }

    /// A call of a script that names no session (mode `''`), routed by `route`.
    pub(crate) fn plain_call<'a>(&self, script: &'a Script, route: String) -> ScriptInvocation<'a> {
        self.call(script, route, "", "", None)
    }

    /// Points `pointer` (a UUID or message pointer) at session_id `sid` until `purge`;
    /// returns the session_id it points at instead, when it does. `overrule`: a
    /// session_id verified to hold nothing under this id ("" none).
    pub(crate) async fn claim(
        &self,
        pointer: String,
        sid: &str,
        purge: &str,
        overrule: &str,
    ) -> Result<Option<String>, Error> {
        let mut call = self.plain_call(&self.scripts.pointer_claim, pointer);
        call.arg(sid).arg(purge).arg(overrule);
        Ok(call.invoke_async(&mut self.conn.clone()).await?)
    }

    /// Claims `pointer` for `sid`, overruling a pointer at another session_id when
    /// `stored` finds nothing under it ("session" or "message" `id`).
    ///
    /// # Errors
    /// `Conflict(entity)` when a stored session or message has this id.
    pub(crate) async fn claim_checked(
        &self,
        pointer: String,
        sid: &str,
        purge: &str,
        entity: Entity,
        id: Uuid,
    ) -> Result<(), Error> {
        let Some(other) = self.claim(pointer.clone(), sid, purge, "").await? else {
            return Ok(());
        };
        let kind = match entity {
            Entity::Message => "message",
            _ => "session",
        };
        let mut check = self.plain_call(&self.scripts.stored_under, self.keys.holder(&other));
        check.arg(kind).arg(&other).arg(id.to_string());
        let stored: i64 = check.invoke_async(&mut self.conn.clone()).await?;
        if stored == 1 {
            return Err(Error::Conflict(entity));
        }
        // A pointer left by a write that never committed: take it over, unless another
        // writer took it in between.
        match self.claim(pointer, sid, purge, &other).await? {
            None => Ok(()),
            Some(_) => Err(Error::Conflict(entity)),
        }
    }

    /// Cluster: the purge time a pointer is first given, before the session's own is
    /// known: that of a session expiring `pointer_ttl` from now.
    pub(crate) fn pointer_guess(&self) -> String {
        let now = self.clock.now();
        self.purge_time(now.checked_add_signed(self.pointer_ttl).unwrap_or(now))
    }

    /// The purge time of a session expiring at `expires_at`, by this store's retention.
    pub(crate) fn purge_time(&self, expires_at: chrono::DateTime<chrono::Utc>) -> String {
        codec::purge_time(self.retention, expires_at)
    }
}
