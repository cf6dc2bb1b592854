//! [`RedisSessionEvents`]: session events between instances over Redis pub/sub.
//!
//! # Channels
//!
//! A session's events go to the channel `P{S}:U:e` (`P` the prefix, `S` the
//! session's `session_id`, `U` its UUID): in the hash slot of the session's keys,
//! and per UUID, so a later session that reuses the `session_id` never hears the
//! old one's events. On a Redis Cluster the adapter uses **sharded** pub/sub
//! (`SPUBLISH`/`SSUBSCRIBE`, Redis 7): an event stays on its session's node
//! instead of being broadcast over the cluster bus to every node. On standalone
//! Redis it uses `PUBLISH`/`SUBSCRIBE`. The payload is
//! [`SessionEvent::encode`]'s text.
//!
//! # One connection per instance
//!
//! Each `RedisSessionEvents` holds **one** RESP3 connection (a reconnecting
//! `ConnectionManager`, or the cluster connection with one link per node) that
//! carries both its publishes and the subscriptions of every session watched in
//! this process: the first local subscriber of a session subscribes its channel,
//! the last one to go unsubscribes it, and the [`LocalHub`] fans each message out
//! to the local subscribers. Subscribe and unsubscribe commands go through one
//! task, in order, so a quick unsubscribe-then-subscribe of one channel never
//! ends unsubscribed; a subscribe returns once Redis confirmed it.
//!
//! # Connection loss
//!
//! Messages published while a connection is down are lost to its subscribers, so
//! when redis-rs reports a disconnection every local subscription ends with
//! [`EventsError::Interrupted`]: subscribers subscribe again (the connection
//! reconnects by itself; on standalone Redis the channels are subscribed again as
//! subscribers come back, a cluster connection resubscribes its shard channels
//! itself) and read what they missed from the store.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use colloquy_core::events::{LocalHub, ReleaseHook};
use colloquy_core::{
    EventKind, EventTopic, EventsError, SessionEvent, SessionEvents, Subscription,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{ConnectError, RedisConfig};
use crate::store::{check_prefix, node_url};

/// The connection every publish and subscription of one instance goes through.
#[derive(Clone)]
enum Link {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Link {
    async fn publish(&self, channel: &str, payload: &str) -> redis::RedisResult<()> {
        match self {
            Self::Standalone(c) => {
                let _: Value = redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async(&mut c.clone())
                    .await?;
            }
            Self::Cluster(c) => {
                let _: Value = redis::cmd("SPUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async(&mut c.clone())
                    .await?;
            }
        }
        Ok(())
    }

    async fn subscribe(&self, channels: &[String]) -> redis::RedisResult<()> {
        match self {
            Self::Standalone(c) => c.clone().subscribe(channels).await,
            // Channels of different slots cannot share one SSUBSCRIBE.
            Self::Cluster(c) => {
                for channel in channels {
                    c.clone().ssubscribe(channel).await?;
                }
                Ok(())
            }
        }
    }

    async fn unsubscribe(&self, channel: &str) -> redis::RedisResult<()> {
        match self {
            Self::Standalone(c) => c.clone().unsubscribe(channel).await,
            Self::Cluster(c) => c.clone().sunsubscribe(channel).await,
        }
    }
}

/// What the subscription task is asked to do, in order.
enum Command {
    /// Subscribe the topic's channel unless it is subscribed; answer when it is.
    Subscribe(EventTopic, oneshot::Sender<Result<(), EventsError>>),
    /// The topic's last local subscription went: unsubscribe unless a new one came.
    Release(EventTopic),
    /// The connection dropped: a standalone connection comes back with no
    /// subscription.
    Disconnected,
}

/// [`SessionEvents`] over Redis pub/sub (sharded on a cluster); see the
/// [module docs](self). Cheap to share behind an `Arc`; dropping it stops its
/// tasks and ends its subscriptions.
pub struct RedisSessionEvents {
    hub: LocalHub,
    link: Link,
    prefix: String,
    commands: mpsc::UnboundedSender<Command>,
    tasks: [JoinHandle<()>; 2],
}

impl std::fmt::Debug for RedisSessionEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionEvents")
            .field("prefix", &self.prefix)
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisSessionEvents {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.hub.interrupt_all();
    }
}

impl RedisSessionEvents {
    /// Connects to one standalone Redis (`redis://` or `rediss://` URL; the adapter
    /// switches the connection to RESP3, Redis 6 or later); subscribers may fall
    /// `capacity` events behind before they lag.
    ///
    /// # Errors
    /// See [`ConnectError`].
    pub async fn connect(
        url: &str,
        config: &RedisConfig,
        capacity: usize,
    ) -> Result<Self, ConnectError> {
        check_prefix(&config.prefix)?;
        let info = url.into_connection_info()?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let (pushes, received) = mpsc::unbounded_channel();
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(1)
            .set_min_delay(std::time::Duration::from_millis(20))
            .set_max_delay(std::time::Duration::from_millis(200))
            .set_push_sender(pushes);
        let manager = ConnectionManager::new_with_config(client, manager_config).await?;
        Ok(Self::start(
            Link::Standalone(manager),
            &config.prefix,
            capacity,
            received,
        ))
    }

    /// Connects to a Redis Cluster (7.0 or later) through any of `nodes`
    /// (`host:port` or `redis://host:port`); subscribers may fall `capacity`
    /// events behind before they lag.
    ///
    /// # Errors
    /// See [`ConnectError`].
    pub async fn connect_cluster<S: AsRef<str>>(
        nodes: &[S],
        config: &RedisConfig,
        capacity: usize,
    ) -> Result<Self, ConnectError> {
        check_prefix(&config.prefix)?;
        if nodes.is_empty() {
            return Err(ConnectError::NoNodes);
        }
        let urls: Vec<String> = nodes.iter().map(|n| node_url(n.as_ref())).collect();
        let (pushes, received) = mpsc::unbounded_channel();
        let client = ClusterClientBuilder::new(urls)
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.response_timeout)
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(200)
            .use_protocol(ProtocolVersion::RESP3)
            .push_sender(pushes)
            .build()?;
        let connection = client.get_async_connection().await?;
        Ok(Self::start(
            Link::Cluster(connection),
            &config.prefix,
            capacity,
            received,
        ))
    }

    fn start(
        link: Link,
        prefix: &str,
        capacity: usize,
        pushes: mpsc::UnboundedReceiver<PushInfo>,
    ) -> Self {
        let (commands, queue) = mpsc::unbounded_channel();
        let release: ReleaseHook = {
            let commands = commands.clone();
            // The task is gone only when this value is dropped.
            Arc::new(move |topic: &EventTopic| {
                let _ = commands.send(Command::Release(topic.clone()));
            })
        };
        let hub = LocalHub::with_release(capacity, release);
        let dispatcher = tokio::spawn(dispatch(pushes, hub.clone(), commands.clone()));
        let subscriber = tokio::spawn(subscriptions(
            queue,
            link.clone(),
            hub.clone(),
            prefix.to_owned(),
        ));
        Self {
            hub,
            link,
            prefix: prefix.to_owned(),
            commands,
            tasks: [dispatcher, subscriber],
        }
    }

    /// The id Redis gave this instance's connection (`CLIENT ID`), standalone
    /// only: to find it in `CLIENT LIST`, or to kill it in a test.
    ///
    /// # Errors
    /// [`EventsError::Unavailable`] when Redis does not answer.
    pub async fn connection_id(&self) -> Result<i64, EventsError> {
        match &self.link {
            Link::Standalone(c) => redis::cmd("CLIENT")
                .arg("ID")
                .query_async(&mut c.clone())
                .await
                .map_err(unavailable),
            Link::Cluster(_) => Err(EventsError::Unavailable(
                "a cluster connection has one id per node".into(),
            )),
        }
    }

    /// How many sessions have a subscription in this process.
    #[must_use]
    pub fn watched_sessions(&self) -> usize {
        self.hub.watched_sessions()
    }
}

fn unavailable(e: redis::RedisError) -> EventsError {
    EventsError::Unavailable(Box::new(e))
}

/// A topic's channel: `P{S}:U:e`.
fn channel(prefix: &str, topic: &EventTopic) -> String {
    format!("{prefix}{{{}}}:{}:e", topic.session_id, topic.session)
}

#[async_trait]
impl SessionEvents for RedisSessionEvents {
    async fn publish(&self, topic: &EventTopic, kind: EventKind) -> Result<(), EventsError> {
        let event = SessionEvent {
            session: topic.session,
            kind,
        };
        self.link
            .publish(&channel(&self.prefix, topic), &event.encode())
            .await
            .map_err(unavailable)
    }

    async fn subscribe(&self, topic: &EventTopic) -> Result<Subscription, EventsError> {
        // Local first, so nothing published after the channel is subscribed is missed.
        let subscription = self.hub.subscribe(topic);
        let (done, confirmed) = oneshot::channel();
        self.commands
            .send(Command::Subscribe(topic.clone(), done))
            .map_err(|_| EventsError::Interrupted)?;
        confirmed.await.map_err(|_| EventsError::Interrupted)??;
        Ok(subscription)
    }
}

/// Delivers pushed messages to the hub; on a disconnection, interrupts every
/// local subscription.
async fn dispatch(
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    hub: LocalHub,
    commands: mpsc::UnboundedSender<Command>,
) {
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                let Some(Value::BulkString(payload)) = push.data.get(1) else {
                    continue;
                };
                match std::str::from_utf8(payload).map(SessionEvent::decode) {
                    Ok(Ok(event)) => {
                        hub.deliver(event);
                    }
                    _ => tracing::warn!(
                        bytes = payload.len(),
                        "ignored a malformed session event from Redis"
                    ),
                }
            }
            PushKind::Disconnection => {
                tracing::warn!("the Redis events connection dropped; interrupting subscribers");
                // Before the releases the interruption queues.
                let _ = commands.send(Command::Disconnected);
                hub.interrupt_all();
            }
            _ => {}
        }
    }
}

/// Runs subscribe and unsubscribe commands in order; batches the subscribes
/// queued together into one request on standalone Redis.
async fn subscriptions(
    mut queue: mpsc::UnboundedReceiver<Command>,
    link: Link,
    hub: LocalHub,
    prefix: String,
) {
    let cluster = matches!(link, Link::Cluster(_));
    let mut subscribed: HashSet<String> = HashSet::new();
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        let mut waiting: Vec<(String, oneshot::Sender<Result<(), EventsError>>)> = Vec::new();
        for command in batch {
            match command {
                Command::Subscribe(topic, done) => {
                    let name = channel(&prefix, &topic);
                    if subscribed.contains(&name) {
                        let _ = done.send(Ok(()));
                    } else {
                        waiting.push((name, done));
                    }
                }
                Command::Release(topic) => {
                    // Subscribes queued before this release must run first.
                    flush(&link, &mut subscribed, &mut waiting).await;
                    let name = channel(&prefix, &topic);
                    if !hub.is_watched(topic.session) && subscribed.remove(&name) {
                        if let Err(e) = link.unsubscribe(&name).await {
                            tracing::warn!(error = %e, "unsubscribing a session's events failed");
                        }
                    }
                }
                Command::Disconnected => {
                    flush(&link, &mut subscribed, &mut waiting).await;
                    // A cluster connection resubscribes its shard channels itself.
                    if !cluster {
                        subscribed.clear();
                    }
                }
            }
        }
        flush(&link, &mut subscribed, &mut waiting).await;
    }
}

/// Subscribes the waiting channels in one request and answers their callers.
async fn flush(
    link: &Link,
    subscribed: &mut HashSet<String>,
    waiting: &mut Vec<(String, oneshot::Sender<Result<(), EventsError>>)>,
) {
    if waiting.is_empty() {
        return;
    }
    let mut names: Vec<String> = waiting.iter().map(|(name, _)| name.clone()).collect();
    names.sort();
    names.dedup();
    match link.subscribe(&names).await {
        Ok(()) => {
            subscribed.extend(names);
            for (_, done) in waiting.drain(..) {
                let _ = done.send(Ok(()));
            }
        }
        Err(e) => {
            let message = e.to_string();
            for (_, done) in waiting.drain(..) {
                let _ = done.send(Err(EventsError::Unavailable(message.clone().into())));
            }
        }
    }
}
