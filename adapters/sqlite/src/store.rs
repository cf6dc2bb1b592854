//! [`SqliteStore`]: opening, closing, purging, and the two store ports.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::ports::{MessageStore, SessionStore};
use colloquy_core::{
    ChatMessage, Clock, MessageFilter, Page, Session, SessionFilter, SessionPatch, SessionRef,
    StoreError,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::SqliteError;
use crate::schema::{self, ConnectionOptions};
use crate::worker::Workers;
use crate::{messages, sessions};

/// How many expired sessions one purge transaction deletes, so a large purge never
/// holds the writer for long: other writes interleave between batches.
const PURGE_BATCH: usize = 500;

/// Settings of a [`SqliteStore`]; [`Default`] suits the reference server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// Read-only connections, each on its own thread (default 2). With 0 every read
    /// runs on the writer's thread. An in-memory store always has 0.
    pub readers: usize,
    /// How long a statement waits for a lock held by another process before it fails
    /// with [`StoreError::Unavailable`] (default 5 s).
    pub busy_timeout: Duration,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            readers: 2,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// A durable [`SessionStore`] and [`MessageStore`] in one SQLite database file.
///
/// See the [crate documentation](crate) for durability, concurrency and expiry.
pub struct SqliteStore {
    workers: Arc<Workers>,
    /// Set when every connection is closed.
    closed: watch::Receiver<bool>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("closed", &*self.closed.borrow())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with the default
    /// [`SqliteConfig`], applying any pending schema migration. The file work runs on
    /// Tokio's blocking pool.
    ///
    /// # Errors
    /// When the file cannot be opened or created, is not a database, cannot use WAL,
    /// or has a schema newer than this build ([`StoreError::Backend`]), or is locked by
    /// another process beyond the busy timeout ([`StoreError::Unavailable`]).
    pub async fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        Self::open_with(path, clock, SqliteConfig::default()).await
    }

    /// [`SqliteStore::open`] with explicit settings.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub async fn open_with(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
        config: SqliteConfig,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path, clock, &config))
            .await
            .map_err(StoreError::backend)?
    }

    /// [`SqliteStore::open_with`] for callers outside an async context (it blocks on
    /// file I/O). Needs no runtime.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn open_blocking(
        path: &Path,
        clock: Arc<dyn Clock>,
        config: &SqliteConfig,
    ) -> Result<Self, StoreError> {
        let opts = ConnectionOptions {
            busy_timeout: config.busy_timeout,
        };
        let writer = schema::open_writer(path, opts)?;
        let readers = (0..config.readers)
            .map(|_| schema::open_reader(path, opts))
            .collect::<Result<Vec<_>, _>>()?;
        let store = Self::start(writer, readers, clock)?;
        tracing::info!(path = %path.display(), readers = config.readers, "opened SQLite store");
        Ok(store)
    }

    /// A private in-memory database: same schema and behaviour, nothing survives the
    /// store. Reads share the writer's connection and thread.
    ///
    /// # Errors
    /// When SQLite cannot allocate the database or a thread cannot start.
    pub fn open_in_memory(clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let writer = schema::open_memory()?;
        Ok(Self::start(writer, Vec::new(), clock)?)
    }

    fn start(
        writer: rusqlite::Connection,
        readers: Vec<rusqlite::Connection>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SqliteError> {
        let (workers, closed) = Workers::start(writer, readers, clock)?;
        Ok(Self {
            workers: Arc::new(workers),
            closed,
        })
    }

    /// Finishes the queued work, closes every connection (checkpointing the WAL into
    /// the database file) and waits until that is done.
    ///
    /// Dropping the store does the same without waiting; [`SqliteStore::closed`]
    /// waits for it when the store is shared. A running [`Purger`] delays the close
    /// until its current purge ends.
    pub async fn close(self) {
        let closed = self.closed();
        drop(self);
        closed.wait().await;
    }

    /// A handle that resolves once this store has been dropped everywhere and its
    /// connections are closed: for a server that shares the store (`Arc`) and wants a
    /// clean file at exit. Take it at startup, drop every store handle at shutdown,
    /// then await [`Closed::wait`].
    #[must_use]
    pub fn closed(&self) -> Closed {
        Closed(self.closed.clone())
    }

    /// Physically deletes every session expired by the store's clock, with all its
    /// messages, in batches of a few hundred sessions. Returns how many sessions went.
    ///
    /// Readers never see expired data anyway; this only reclaims space.
    ///
    /// # Errors
    /// When a batch fails to commit; the batches before it stay purged.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        Ok(purge(&self.workers).await?)
    }

    /// Runs [`SqliteStore::purge_expired`] every `every` (at least 1 ms) on the current
    /// Tokio runtime until the returned [`Purger`] is dropped or the store is gone.
    /// Failures are logged and retried at the next tick.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    #[must_use = "dropping the Purger stops the purge"]
    pub fn spawn_purger(&self, every: Duration) -> Purger {
        let workers = Arc::downgrade(&self.workers);
        let every = every.max(Duration::from_millis(1));
        Purger {
            task: tokio::spawn(purge_loop(workers, every)),
        }
    }
}

async fn purge(workers: &Workers) -> Result<usize, SqliteError> {
    let mut total = 0;
    loop {
        let purged = workers
            .write(|conn, now| sessions::purge_expired(conn, now, PURGE_BATCH))
            .await?;
        total += purged;
        if purged < PURGE_BATCH {
            return Ok(total);
        }
    }
}

async fn purge_loop(workers: Weak<Workers>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate; purge after one period
    loop {
        ticks.tick().await;
        let Some(workers) = workers.upgrade() else {
            return; // the store is closed
        };
        match purge(&workers).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "purged expired sessions"),
            Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
        }
    }
}

/// Resolves when a [`SqliteStore`] is closed; see [`SqliteStore::closed`].
#[derive(Debug, Clone)]
pub struct Closed(watch::Receiver<bool>);

impl Closed {
    /// Waits until every handle of the store is dropped and its connections are
    /// closed (returns at once if they already are).
    pub async fn wait(mut self) {
        // An error means the writer thread is gone without saying so (it panicked):
        // its connection is closed either way.
        let _ = self.0.wait_for(|closed| *closed).await;
    }
}

/// The background expiry purge started by [`SqliteStore::spawn_purger`]; dropping it
/// stops the purge.
#[derive(Debug)]
pub struct Purger {
    task: tokio::task::JoinHandle<()>,
}

impl Purger {
    /// Stops the purge (same as dropping it).
    pub fn stop(self) {}
}

impl Drop for Purger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create(&self, session: &Session) -> Result<(), StoreError> {
        let session = session.clone();
        Ok(self
            .workers
            .write(move |conn, now| sessions::create(conn, now, &session))
            .await?)
    }

    async fn get(&self, reference: &SessionRef) -> Result<Option<Session>, StoreError> {
        let reference = reference.clone();
        Ok(self
            .workers
            .read(move |conn, now| sessions::get(conn, now, &reference))
            .await?)
    }

    async fn update(&self, id: Uuid, patch: &SessionPatch) -> Result<Session, StoreError> {
        let patch = patch.clone();
        Ok(self
            .workers
            .write(move |conn, now| sessions::update(conn, now, id, &patch))
            .await?)
    }

    async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
        Ok(self
            .workers
            .write(move |conn, now| sessions::delete(conn, now, id))
            .await?)
    }

    async fn list(&self, filter: &SessionFilter, page: Page) -> Result<Vec<Session>, StoreError> {
        let filter = filter.clone();
        Ok(self
            .workers
            .read(move |conn, now| sessions::list(conn, now, &filter, page))
            .await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(self
            .workers
            .read(|conn, _| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await?)
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn append(&self, message: ChatMessage) -> Result<ChatMessage, StoreError> {
        Ok(self
            .workers
            .write(move |conn, now| messages::append(conn, now, message))
            .await?)
    }

    async fn get(&self, id: Uuid) -> Result<Option<ChatMessage>, StoreError> {
        Ok(self.get_stored(id).await?.filter(|m| !m.is_deleted))
    }

    async fn get_stored(&self, id: Uuid) -> Result<Option<ChatMessage>, StoreError> {
        Ok(self
            .workers
            .read(move |conn, now| messages::get_stored(conn, now, id))
            .await?)
    }

    async fn list(
        &self,
        session: Uuid,
        filter: &MessageFilter,
        page: Page,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let filter = filter.clone();
        Ok(self
            .workers
            .read(move |conn, now| messages::list(conn, now, session, &filter, page))
            .await?)
    }

    async fn recent(&self, session: Uuid, limit: usize) -> Result<Vec<ChatMessage>, StoreError> {
        Ok(self
            .workers
            .read(move |conn, now| messages::recent(conn, now, session, limit))
            .await?)
    }

    async fn soft_delete(&self, id: Uuid) -> Result<(), StoreError> {
        Ok(self
            .workers
            .write(move |conn, now| messages::soft_delete(conn, now, id))
            .await?)
    }
}

/// The SQLite files that belong to the database at `path`: the file itself and its
/// `-wal` and `-shm` companions. Handy for removing a database completely.
#[must_use]
pub fn database_files(path: &Path) -> [PathBuf; 3] {
    let with_suffix = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_path_buf(), with_suffix("-wal"), with_suffix("-shm")]
}
