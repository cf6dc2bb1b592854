//! [`RedisStore`]: connecting, and the helpers both port implementations share.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use colloquy_core::{Clock, Session};
use futures::{StreamExt, TryStreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::{AsyncCommands, Script, ScriptInvocation};
use uuid::Uuid;

use crate::codec::{self, StoredSession};
use crate::config::{ConnectError, RedisConfig};
use crate::conn::Conn;
use crate::error::Error;
use crate::keys::Keys;
use crate::scripts::Scripts;

/// How many single-key requests run at once when keys of many slots are touched in
/// cluster mode (session fetches for a list, message pointers after an expiry change).
const CLUSTER_FANOUT: usize = 64;

/// A [`SessionStore`](colloquy_core::ports::SessionStore) and
/// [`MessageStore`](colloquy_core::ports::MessageStore) on Redis or Redis Cluster.
///
/// Cheap to clone: clones share one multiplexed connection, which reconnects by itself
/// after Redis comes back. See the [crate docs](crate) for the key schema.
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) conn: Conn,
    pub(crate) keys: Keys,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) scripts: Arc<Scripts>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &self.conn.is_cluster())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

fn check_prefix(prefix: &str) -> Result<(), ConnectError> {
    if prefix.contains(['{', '}']) {
        return Err(ConnectError::InvalidPrefix(prefix.to_owned()));
    }
    Ok(())
}

/// `host:port` becomes `redis://host:port`; URLs are kept.
fn node_url(node: &str) -> String {
    if node.contains("://") {
        node.to_owned()
    } else {
        format!("redis://{node}")
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
            conn,
            keys: Keys::new(&config.prefix),
            clock,
            scripts: Arc::new(Scripts::new()),
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

    pub(crate) fn now_us(&self) -> i64 {
        codec::micros(self.clock.now())
    }

    pub(crate) fn is_live(&self, session: &Session) -> bool {
        !session.is_expired_at(self.clock.now())
    }

    /// A script call on the global index slot, its keys and first argument filled in.
    pub(crate) fn index_call<'a>(&self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        for key in self.keys.index() {
            call.key(key);
        }
        call.arg(self.keys.ext_prefix());
        call
    }

    /// A standalone-only script call on the index and one session: the six index keys,
    /// then the session's three, and the ext prefix as first argument.
    pub(crate) fn index_and_session_call<'a>(
        &self,
        script: &'a Script,
        id: Uuid,
    ) -> ScriptInvocation<'a> {
        let mut call = self.index_call(script);
        for key in self.keys.session(id) {
            call.key(key);
        }
        call
    }

    /// A script call on one session's slot, its three keys filled in.
    pub(crate) fn session_call<'a>(&self, script: &'a Script, id: Uuid) -> ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        for key in self.keys.session(id) {
            call.key(key);
        }
        call
    }

    /// The session hash as stored, live or not.
    pub(crate) async fn read_session(&self, id: Uuid) -> Result<Option<StoredSession>, Error> {
        let [key, _, _] = self.keys.session(id);
        let fields: HashMap<String, String> = self.conn.clone().hgetall(key).await?;
        codec::session_from_fields(&fields)
    }

    /// Several session hashes: one pipeline on standalone Redis, concurrent requests on
    /// a cluster (each session lives in its own slot).
    pub(crate) async fn read_sessions(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<Option<StoredSession>>, Error> {
        if self.conn.is_cluster() {
            return futures::stream::iter(ids.iter().copied().map(|id| self.read_session(id)))
                .buffered(CLUSTER_FANOUT)
                .try_collect()
                .await;
        }
        let mut pipe = redis::pipe();
        for id in ids {
            let [key, _, _] = self.keys.session(*id);
            pipe.hgetall(key);
        }
        let maps: Vec<HashMap<String, String>> = pipe.query_async(&mut self.conn.clone()).await?;
        maps.iter().map(codec::session_from_fields).collect()
    }

    /// Drops the index entries of sessions found missing; failures only leave work for
    /// the next reader, so they are logged, not returned.
    pub(crate) async fn drop_from_index(&self, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        let mut call = self.index_call(&self.scripts.index_drop);
        for id in ids {
            call.arg(id.to_string());
        }
        if let Err(e) = call.invoke_async::<i64>(&mut self.conn.clone()).await {
            tracing::warn!(error = %e, "could not prune the session index");
        }
    }

    /// Runs single-key commands built by `cmd` for each key: one pipeline on standalone
    /// Redis, concurrent requests on a cluster.
    pub(crate) async fn per_key(
        &self,
        keys: Vec<String>,
        cmd: impl Fn(&str) -> redis::Cmd,
    ) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        if self.conn.is_cluster() {
            let cmds: Vec<redis::Cmd> = keys.iter().map(|k| cmd(k)).collect();
            futures::stream::iter(cmds.into_iter().map(|c| {
                let mut conn = self.conn.clone();
                async move { c.query_async::<()>(&mut conn).await }
            }))
            .buffer_unordered(CLUSTER_FANOUT)
            .try_collect::<Vec<()>>()
            .await?;
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.add_command(cmd(key)).ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }
}
