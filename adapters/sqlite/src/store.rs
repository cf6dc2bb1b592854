//! [`SqliteStore`]: opening, closing, and the [`ChatStore`] port.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use colloquy_core::ports::{ChatStore, Erased, Turn};
use colloquy_core::stats::{HourStats, StatCounts};
use colloquy_core::{
    ChatMessage, Clock, Feedback, MessageDraft, MessageQuery, Page, Session, SessionFilter,
    SessionPatch, SessionRef, StoreError,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::SqliteError;
use crate::schema::{self, ConnectionOptions};
use crate::worker::Workers;
use crate::{console, idempotency, inbox, messages, sessions};
use colloquy_core::inbox::{InboxEntry, InboxQuery};

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

/// A durable [`ChatStore`] in one SQLite database file.
///
/// See the [crate documentation](crate) for durability, concurrency and expiry.
pub struct SqliteStore {
    pub(crate) workers: Arc<Workers>,
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
    /// waits for it when the store is shared.
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
}

impl SqliteStore {
    /// Deletes the sessions expired at or before `cutoff`, in batches; returns how
    /// many.
    async fn purge_sessions(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let purged = self
                .workers
                .write(move |conn, _| sessions::purge_expired(conn, cutoff, PURGE_BATCH))
                .await?;
            total += u64::try_from(purged).unwrap_or(u64::MAX);
            if purged < PURGE_BATCH {
                return Ok(total);
            }
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

/// Every method is one job on one connection thread: a write is one savepoint in
/// the writer's group-committed transaction (answered after its fsync), a read one
/// read transaction (one snapshot) on a reader.
#[async_trait]
impl ChatStore for SqliteStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let session = session.clone();
        Ok(self
            .workers
            .write(move |conn, now| {
                sessions::create(conn, now, &session)?;
                console::count_session(conn, &session)
            })
            .await?)
    }

    async fn session(&self, reference: &SessionRef) -> Result<Option<Session>, StoreError> {
        let reference = reference.clone();
        Ok(self
            .workers
            .read(move |conn, now| sessions::find(conn, now, &reference))
            .await?)
    }

    async fn update_session(
        &self,
        reference: &SessionRef,
        patch: &SessionPatch,
    ) -> Result<Session, StoreError> {
        let (reference, patch) = (reference.clone(), patch.clone());
        Ok(self
            .workers
            .write(move |conn, now| sessions::update(conn, now, &reference, &patch))
            .await?)
    }

    async fn delete_session(&self, reference: &SessionRef) -> Result<(), StoreError> {
        let reference = reference.clone();
        Ok(self
            .workers
            .write(move |conn, now| sessions::delete(conn, now, &reference))
            .await?)
    }

    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: Page,
    ) -> Result<Vec<Session>, StoreError> {
        let filter = filter.clone();
        Ok(self
            .workers
            .read(move |conn, now| sessions::list(conn, now, &filter, page))
            .await?)
    }

    async fn append(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
    ) -> Result<(Session, ChatMessage), StoreError> {
        let to = to.clone();
        Ok(self
            .workers
            .write(move |conn, now| {
                let appended = messages::append(conn, now, &to, draft)?;
                console::count_message(conn, &appended.1)?;
                Ok(appended)
            })
            .await?)
    }

    async fn message(&self, id: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError> {
        Ok(self
            .workers
            .read(move |conn, now| messages::get(conn, now, id))
            .await?)
    }

    async fn list_messages(
        &self,
        of: &SessionRef,
        query: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), StoreError> {
        let (of, query) = (of.clone(), query.clone());
        Ok(self
            .workers
            .read(move |conn, now| messages::list(conn, now, &of, &query))
            .await?)
    }

    async fn delete_message(&self, id: Uuid) -> Result<(), StoreError> {
        Ok(self
            .workers
            .write(move |conn, now| messages::soft_delete(conn, now, id))
            .await?)
    }

    /// Deletes in transactions of [`PURGE_BATCH`] sessions each, so a large purge
    /// never holds the writer for long: other writes interleave between batches.
    /// On failure the batches before stay purged. Then the `Idempotency-Key` rows
    /// expired by the store's clock go, in batches of the same size.
    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let total = self.purge_sessions(cutoff).await?;
        while self
            .workers
            .write(|conn, now| idempotency::purge(conn, now, PURGE_BATCH))
            .await?
            == PURGE_BATCH
        {}
        Ok(total)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(self
            .workers
            .read(|conn, _| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await?)
    }

    /// One write job: the append and both context reads in one transaction, so one
    /// fsync, with the system messages read from their own index.
    async fn begin_turn(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
        window: usize,
    ) -> Result<Turn, StoreError> {
        let to = to.clone();
        Ok(self
            .workers
            .write(move |conn, now| {
                let turn = messages::begin_turn(conn, now, &to, draft, window)?;
                console::count_message(conn, &turn.message)?;
                Ok(turn)
            })
            .await?)
    }

    /// One read job on the full-text index (`messages_fts`).
    async fn search_messages(
        &self,
        query: &str,
        page: Page,
    ) -> Result<Vec<(ChatMessage, Session)>, StoreError> {
        let query = query.to_owned();
        Ok(self
            .workers
            .read(move |conn, now| console::search(conn, now, &query, page))
            .await?)
    }

    /// One read job: a walk of one inbox index from the cursor, and two index
    /// lookups per row (first question, last message).
    async fn inbox(&self, query: &InboxQuery) -> Result<Vec<InboxEntry>, StoreError> {
        let query = query.clone();
        Ok(self
            .workers
            .read(move |conn, now| inbox::page(conn, now, &query))
            .await?)
    }

    /// One read job: O(hours in the range) rows of two small tables.
    async fn hourly_stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HourStats>, StoreError> {
        Ok(self
            .workers
            .read(move |conn, _| console::hours(conn, from, to))
            .await?)
    }

    async fn add_stats(&self, at: DateTime<Utc>, counts: &StatCounts) -> Result<(), StoreError> {
        let counts = *counts;
        Ok(self
            .workers
            .write(move |conn, _| console::count(conn, at, &counts))
            .await?)
    }

    async fn set_feedback(
        &self,
        id: Uuid,
        feedback: &Feedback,
    ) -> Result<(ChatMessage, Session), StoreError> {
        let feedback = feedback.clone();
        Ok(self
            .workers
            .write(move |conn, now| console::set_feedback(conn, now, id, &feedback))
            .await?)
    }

    /// One write job, with `PRAGMA secure_delete` on for its deletes. The
    /// write-ahead log may still hold older page images with the text until the next
    /// checkpoint (at the latest when the store closes).
    async fn erase_user(&self, external_user_id: &str) -> Result<Erased, StoreError> {
        let external = external_user_id.to_owned();
        Ok(self
            .workers
            .write(move |conn, _| console::erase_user(conn, &external))
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
