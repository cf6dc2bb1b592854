//! The stream log: the events of running (and just finished) answers, so a client
//! that lost its connection resumes from any instance, a cancel reaches the
//! generation wherever it runs, and a reloaded page finds the answer in flight.
//!
//! [`StreamLog`] is the port; [`LocalStreamLog`] keeps the log in this process (one
//! instance, or stores such as SQLite that one process owns); the Redis adapter
//! shares it between instances.
//!
//! [`LocalStreamLog`]: crate::local::LocalStreamLog
//!
//! A generation [`start`](StreamLog::start)s its log, which makes it its session's
//! *active response*, [`append`](StreamLog::append)s every event, and
//! [`renew`](StreamLog::renew)s its lease while it runs. The log is complete with
//! its terminal event; it is kept for a short while after that (resumes after that
//! replay the stored answer). A log whose lease ran out before it completed was
//! abandoned: its instance died.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::chat::ChatEvent;
use crate::error::StoreError;
use crate::session::Session;

/// What followers of a response need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMeta {
    /// The assistant message's id, under which the answer is stored.
    pub response_id: Uuid,
    /// The user message's id.
    pub message_id: Uuid,
    /// The session's UUID.
    pub session: Uuid,
    /// The session's `session_id`.
    pub session_id: String,
}

/// Where a response's log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogState {
    /// Events may follow.
    Running,
    /// The terminal event is in the log.
    Complete,
    /// Not complete, and its lease ran out: the generating instance is gone.
    Abandoned,
}

/// A read of a response's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// The response.
    pub meta: StreamMeta,
    /// Its events from the requested sequence number on, in order.
    pub events: Vec<ChatEvent>,
    /// Where the log stands.
    pub state: LogState,
}

/// What a cancel request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The generation was asked to stop; its streams end with `cancelled`.
    Requested,
    /// The answer was already complete.
    AlreadyComplete,
    /// No running or recent response has this id.
    Unknown,
}

/// The log of running answers; see the [module docs](self).
#[async_trait]
pub trait StreamLog: Send + Sync + 'static {
    /// Starts the log of a response, empty and running, with a lease of
    /// [`StreamLog::lease`], and makes it its session's active response (the newest
    /// started wins).
    async fn start(&self, meta: &StreamMeta) -> Result<(), StoreError>;

    /// Appends the response's next event. A terminal event completes the log: it is
    /// kept for a short, configured while, and the session's active response is
    /// cleared if it still names this one.
    async fn append(&self, response: Uuid, event: &ChatEvent) -> Result<(), StoreError>;

    /// The response's events with `seq >= from`, in order, and its state; `None` when
    /// no log of this response is kept (never started, or expired).
    async fn read(&self, response: Uuid, from: u64) -> Result<Option<LogRead>, StoreError>;

    /// [`StreamLog::read`] of at most `max` events (at least one, when there is
    /// one): the response's first events with `seq >= from`, in order, and its
    /// state. A follower reads an answer page by page with it, so a page costs what
    /// it holds, not the rest of the answer. The default reads every event from
    /// `from` and keeps the first `max`; an adapter that can bound the read itself
    /// overrides it.
    async fn read_page(
        &self,
        response: Uuid,
        from: u64,
        max: usize,
    ) -> Result<Option<LogRead>, StoreError> {
        let mut read = self.read(response, from).await?;
        if let Some(read) = &mut read {
            read.events.truncate(max.max(1));
        }
        Ok(read)
    }

    /// Waits until events after `after` may have been appended, or at most
    /// `within`. Followers call [`StreamLog::read`] again after it.
    async fn changed(&self, response: Uuid, after: u64, within: Duration);

    /// Asks the generation of `response` to stop, wherever it runs.
    async fn request_cancel(&self, response: Uuid) -> Result<CancelOutcome, StoreError>;

    /// Whether a cancel of `response` was requested.
    async fn cancel_requested(&self, response: Uuid) -> Result<bool, StoreError>;

    /// Extends the lease of a running response (and of its active-response pointer)
    /// by [`StreamLog::lease`] from now.
    async fn renew(&self, meta: &StreamMeta) -> Result<(), StoreError>;

    /// The session's active response: the newest started whose log is running and
    /// whose lease is live; `None` otherwise. (The whole session is passed so an
    /// adapter can keep the pointer beside the session's own data, e.g. in its Redis
    /// Cluster slot.)
    async fn active(&self, session: &Session) -> Result<Option<Uuid>, StoreError>;

    /// How long a lease lasts without renewal: the longest an active-response
    /// pointer outlives a dead instance.
    fn lease(&self) -> Duration;
}

/// How long a log without a lease holder, or a completed one, stays readable in a
/// [`LocalStreamLog`](crate::local::LocalStreamLog) by default.
pub const DEFAULT_LOG_RETENTION: Duration = Duration::from_secs(60);

/// The default lease of a running response.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(6);
