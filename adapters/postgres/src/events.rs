//! [`PostgresSessionEvents`]: session events between instances over PostgreSQL
//! `LISTEN/NOTIFY`.
//!
//! # One channel, the session in the payload
//!
//! Every event goes to **one** channel per schema (`colloquy_events`, or
//! `colloquy_events_<schema>`), its payload [`SessionEvent::encode`]'s text,
//! which names the session. One channel per session would buy nothing:
//! PostgreSQL queues every notification of a database once, and every listening
//! connection reads the whole queue and filters by channel itself, so per-session
//! channels would only add a `LISTEN`/`UNLISTEN` round trip per watched session
//! and a per-notification scan of the connection's channel list (linear before
//! PostgreSQL 17). With one channel an instance listens once, re-listens with
//! one command after a reconnect, and filters by session in its [`LocalHub`]
//! (one hash lookup; a session nobody here watches costs that lookup). The
//! price: every instance receives every event (about 80 bytes each).
//!
//! # One connection per instance
//!
//! Each `PostgresSessionEvents` holds one dedicated connection (not from the
//! store's pool: a pooled connection is reset and shared). It `LISTEN`s, and
//! publishes with `SELECT pg_notify(channel, payload)` (prepared once), so one
//! instance's events of a session are notified, and delivered, in publish order.
//! PostgreSQL delivers a connection's own notifications back to it, so local and
//! remote subscribers see one order.
//!
//! # Connection loss
//!
//! When the connection drops, every local subscription ends with
//! [`EventsError::Interrupted`] (notifications sent meanwhile are lost to this
//! instance; subscribers read them from the store), and the connection is
//! opened again (backing off from 50 ms to 2 s) and `LISTEN`s again; a
//! `subscribe` waits up to the connect timeout for it to be back.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::events::LocalHub;
use colloquy_core::{
    BoxError, EventKind, EventTopic, EventsError, SessionEvent, SessionEvents, Subscription,
};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, NoTls, Socket, Statement};

use crate::config::PostgresConfig;
use crate::error::ConnectError;
use crate::store::pg_config;

/// PostgreSQL's longest identifier, in bytes.
const MAX_CHANNEL: usize = 63;

/// The live connection's client and its prepared `pg_notify`.
type Live = Option<(Arc<Client>, Statement)>;

/// [`SessionEvents`] over `LISTEN/NOTIFY`; see the [module docs](self). Cheap to
/// share behind an `Arc`; dropping it closes its connection and ends its
/// subscriptions.
pub struct PostgresSessionEvents {
    hub: LocalHub,
    channel: String,
    live: Arc<RwLock<Live>>,
    up: watch::Receiver<bool>,
    connect_timeout: Duration,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for PostgresSessionEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSessionEvents")
            .field("channel", &self.channel)
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresSessionEvents {
    fn drop(&mut self) {
        self.task.abort();
        self.hub.interrupt_all();
    }
}

impl PostgresSessionEvents {
    /// Opens the dedicated connection to the database `config` names (its URL,
    /// TLS, schema and connect timeout; nothing is migrated) and listens;
    /// subscribers may fall `capacity` events behind before they lag.
    ///
    /// # Errors
    /// [`ConnectError::Config`] for a bad URL or a schema name too long for a
    /// channel; [`ConnectError::Unavailable`] when PostgreSQL does not answer
    /// within the connect timeout.
    pub async fn connect(config: &PostgresConfig, capacity: usize) -> Result<Self, ConnectError> {
        config.validate()?;
        let channel = match &config.schema {
            None => "colloquy_events".to_owned(),
            Some(schema) => format!("colloquy_events_{schema}"),
        };
        if channel.len() > MAX_CHANNEL {
            return Err(ConnectError::Config(format!(
                "the events channel {channel:?} is longer than {MAX_CHANNEL} bytes: use a shorter schema name"
            )));
        }
        let mut pg = pg_config(config)?;
        if pg.get_ssl_mode() == SslMode::Require {
            let tls = crate::tls::connector(config.root_cert.as_deref())?;
            Self::start(pg, tls, channel, capacity, config.connect_timeout).await
        } else {
            pg.ssl_mode(SslMode::Disable);
            Self::start(pg, NoTls, channel, capacity, config.connect_timeout).await
        }
    }

    async fn start<T>(
        pg: tokio_postgres::Config,
        tls: T,
        channel: String,
        capacity: usize,
        connect_timeout: Duration,
    ) -> Result<Self, ConnectError>
    where
        T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
        T::Stream: Sync + Send,
        T::TlsConnect: Sync + Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let hub = LocalHub::new(capacity);
        let live = Arc::new(RwLock::new(None));
        let (up_tx, up) = watch::channel(false);
        let listener = Listener {
            pg,
            tls,
            channel: channel.clone(),
            hub: hub.clone(),
            live: Arc::clone(&live),
            up: up_tx,
        };
        // The first connection is made here, so a bad address fails `connect`.
        let first = tokio::time::timeout(connect_timeout, listener.open())
            .await
            .map_err(|e| ConnectError::Unavailable(e.into()))?
            .map_err(ConnectError::Unavailable)?;
        let task = tokio::spawn(listener.run(first));
        Ok(Self {
            hub,
            channel,
            live,
            up,
            connect_timeout,
            task,
        })
    }

    /// The process id of the listening connection's backend
    /// (`pg_backend_pid()`): to find it in `pg_stat_activity`, or to end it in a
    /// test.
    ///
    /// # Errors
    /// [`EventsError::Unavailable`] when the connection is down.
    pub async fn backend_pid(&self) -> Result<i32, EventsError> {
        let (client, _) = self.client()?;
        let row = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(|e| EventsError::Unavailable(e.into()))?;
        row.try_get(0)
            .map_err(|e| EventsError::Unavailable(e.into()))
    }

    /// How many sessions have a subscription in this process.
    #[must_use]
    pub fn watched_sessions(&self) -> usize {
        self.hub.watched_sessions()
    }

    fn client(&self) -> Result<(Arc<Client>, Statement), EventsError> {
        self.live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                EventsError::Unavailable("the PostgreSQL events connection is down".into())
            })
    }
}

#[async_trait]
impl SessionEvents for PostgresSessionEvents {
    async fn publish(&self, topic: &EventTopic, kind: EventKind) -> Result<(), EventsError> {
        let (client, notify) = self.client()?;
        let payload = SessionEvent {
            session: topic.session,
            kind,
        }
        .encode();
        let params: [&(dyn ToSql + Sync); 2] = [&self.channel, &payload];
        let sent = client.execute(&notify, &params);
        match tokio::time::timeout(self.connect_timeout, sent).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(EventsError::Unavailable(e.into())),
            Err(e) => Err(EventsError::Unavailable(e.into())),
        }
    }

    async fn subscribe(&self, topic: &EventTopic) -> Result<Subscription, EventsError> {
        // Local first: a drop noticed after this interrupts the new subscription too.
        let subscription = self.hub.subscribe(topic);
        let mut up = self.up.clone();
        let waited = tokio::time::timeout(self.connect_timeout, up.wait_for(|up| *up))
            .await
            .map(|up| up.is_ok());
        match waited {
            Ok(true) => Ok(subscription),
            Ok(false) => Err(EventsError::Interrupted),
            Err(e) => Err(EventsError::Unavailable(e.into())),
        }
    }
}

/// The dedicated connection's life: open, listen, deliver, reopen.
struct Listener<T> {
    pg: tokio_postgres::Config,
    tls: T,
    channel: String,
    hub: LocalHub,
    live: Arc<RwLock<Live>>,
    up: watch::Sender<bool>,
}

type Connection<T> = tokio_postgres::Connection<Socket, <T as MakeTlsConnect<Socket>>::Stream>;

impl<T> Listener<T>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    /// Connects and listens; returns the connection to drive.
    async fn open(&self) -> Result<Connection<T>, BoxError> {
        let (client, mut connection) = self.pg.connect(self.tls.clone()).await?;
        let client = Arc::new(client);
        let quoted = format!("LISTEN \"{}\"", self.channel.replace('"', "\"\""));
        let notify = {
            let prepare = async {
                client.batch_execute(&quoted).await?;
                client.prepare("SELECT pg_notify($1, $2)").await
            };
            // The connection must be driven while the client waits on it.
            let mut messages = futures::stream::poll_fn(|cx| connection.poll_message(cx));
            tokio::pin!(prepare);
            loop {
                tokio::select! {
                    prepared = &mut prepare => break prepared?,
                    message = messages.next() => match message {
                        Some(Ok(message)) => self.handle(message),
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err("the connection closed while listening".into()),
                    },
                }
            }
        };
        *self.live.write().unwrap_or_else(PoisonError::into_inner) = Some((client, notify));
        self.up.send_replace(true);
        Ok(connection)
    }

    async fn run(self, mut connection: Connection<T>) {
        loop {
            let mut messages = futures::stream::poll_fn(|cx| connection.poll_message(cx));
            let why = loop {
                match messages.next().await {
                    Some(Ok(message)) => self.handle(message),
                    Some(Err(e)) => break e.to_string(),
                    None => break "closed".to_owned(),
                }
            };
            tracing::warn!(error = %why, "the PostgreSQL events connection dropped; interrupting subscribers");
            // Down before the interruption, so a subscriber who saw it up is interrupted.
            self.up.send_replace(false);
            *self.live.write().unwrap_or_else(PoisonError::into_inner) = None;
            self.hub.interrupt_all();
            connection = self.reopen().await;
        }
    }

    async fn reopen(&self) -> Connection<T> {
        let mut pause = Duration::from_millis(50);
        loop {
            match self.open().await {
                Ok(connection) => return connection,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?pause, "reconnecting the PostgreSQL events connection failed");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn handle(&self, message: AsyncMessage) {
        let AsyncMessage::Notification(notification) = message else {
            return;
        };
        if notification.channel() != self.channel {
            return;
        }
        match SessionEvent::decode(notification.payload()) {
            Ok(event) => {
                self.hub.deliver(event);
            }
            Err(e) => tracing::warn!(error = %e, "ignored a malformed session event"),
        }
    }
}
