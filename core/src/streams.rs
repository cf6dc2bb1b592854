//! The stream log: the events of running (and just finished) answers, so a client
//! that lost its connection resumes from any instance, a cancel reaches the
//! generation wherever it runs, and a reloaded page finds the answer in flight.
//!
//! [`StreamLog`] is the port; [`LocalStreamLog`] keeps the log in this process (one
//! instance, or stores such as SQLite that one process owns); the Redis adapter
//! shares it between instances.
//!
//! A generation [`start`](StreamLog::start)s its log, which makes it its session's
//! *active response*, [`append`](StreamLog::append)s every event, and
//! [`renew`](StreamLog::renew)s its lease while it runs. The log is complete with
//! its terminal event; it is kept for a short while after that (resumes after that
//! replay the stored answer). A log whose lease ran out before it completed was
//! abandoned: its instance died.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;
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
/// [`LocalStreamLog`] by default.
pub const DEFAULT_LOG_RETENTION: Duration = Duration::from_secs(60);

/// The default lease of a running response.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(6);

/// Most events one local log keeps; a longer answer's log stops growing (its
/// followers then finish from the stored answer).
const MAX_EVENTS: usize = 100_000;

#[derive(Debug)]
struct Entry {
    meta: StreamMeta,
    events: Vec<ChatEvent>,
    completed_at: Option<Instant>,
    lease_until: Instant,
    cancel: bool,
    notify: Arc<Notify>,
}

impl Entry {
    fn state(&self, now: Instant) -> LogState {
        match self.completed_at {
            Some(_) => LogState::Complete,
            None if now >= self.lease_until => LogState::Abandoned,
            None => LogState::Running,
        }
    }
}

#[derive(Debug, Default)]
struct Logs {
    responses: HashMap<Uuid, Entry>,
    /// Session UUID -> its newest started response.
    active: HashMap<Uuid, Uuid>,
}

/// A [`StreamLog`] in this process: a bounded log per response, woken followers,
/// completed logs dropped after `retention`.
#[derive(Debug)]
pub struct LocalStreamLog {
    logs: Mutex<Logs>,
    retention: Duration,
    lease: Duration,
}

impl Default for LocalStreamLog {
    fn default() -> Self {
        Self::new(DEFAULT_LOG_RETENTION, DEFAULT_LEASE)
    }
}

impl LocalStreamLog {
    /// A log keeping completed responses for `retention`, with leases of `lease`.
    #[must_use]
    pub fn new(retention: Duration, lease: Duration) -> Self {
        Self {
            logs: Mutex::new(Logs::default()),
            retention,
            lease,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Logs> {
        self.logs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops logs completed (or abandoned) longer than `retention` ago.
    fn sweep(&self, logs: &mut Logs, now: Instant) {
        let retention = self.retention;
        logs.responses.retain(|_, e| {
            let ended = e.completed_at.unwrap_or(e.lease_until);
            ended + retention > now
        });
        let responses = &logs.responses;
        logs.active.retain(|_, r| {
            responses
                .get(r)
                .is_some_and(|e| e.state(now) == LogState::Running)
        });
    }

    /// The response's waker, while it has no event after `after` and is not complete.
    fn waker(&self, response: Uuid, after: u64) -> Option<Arc<Notify>> {
        let logs = self.lock();
        let entry = logs.responses.get(&response)?;
        let nothing_new = entry.events.last().is_none_or(|ev| ev.seq() <= after);
        (nothing_new && entry.completed_at.is_none()).then(|| Arc::clone(&entry.notify))
    }

    /// How many responses' logs are held.
    #[must_use]
    pub fn held(&self) -> usize {
        self.lock().responses.len()
    }
}

#[async_trait]
impl StreamLog for LocalStreamLog {
    async fn start(&self, meta: &StreamMeta) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut logs = self.lock();
        self.sweep(&mut logs, now);
        logs.active.insert(meta.session, meta.response_id);
        logs.responses.insert(
            meta.response_id,
            Entry {
                meta: meta.clone(),
                events: Vec::new(),
                completed_at: None,
                lease_until: now + self.lease,
                cancel: false,
                notify: Arc::new(Notify::new()),
            },
        );
        Ok(())
    }

    async fn append(&self, response: Uuid, event: &ChatEvent) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut logs = self.lock();
        let Some(entry) = logs.responses.get_mut(&response) else {
            return Ok(()); // swept: nobody can follow it any more
        };
        if entry.events.len() < MAX_EVENTS || event.is_terminal() {
            entry.events.push(event.clone());
        }
        entry.notify.notify_waiters();
        if event.is_terminal() {
            entry.completed_at = Some(now);
            let session = entry.meta.session;
            if logs.active.get(&session) == Some(&response) {
                logs.active.remove(&session);
            }
        }
        Ok(())
    }

    async fn read(&self, response: Uuid, from: u64) -> Result<Option<LogRead>, StoreError> {
        let now = Instant::now();
        let logs = self.lock();
        Ok(logs.responses.get(&response).map(|e| LogRead {
            meta: e.meta.clone(),
            events: e
                .events
                .iter()
                .filter(|ev| ev.seq() >= from)
                .cloned()
                .collect(),
            state: e.state(now),
        }))
    }

    async fn changed(&self, response: Uuid, after: u64, within: Duration) {
        let Some(notify) = self.waker(response, after) else {
            return; // already more, or gone: read again at once
        };
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Registered: an append from now on wakes us. One before it is seen here.
        if self.waker(response, after).is_none() {
            return;
        }
        let _ = tokio::time::timeout(within, notified).await;
    }

    async fn request_cancel(&self, response: Uuid) -> Result<CancelOutcome, StoreError> {
        let mut logs = self.lock();
        Ok(match logs.responses.get_mut(&response) {
            None => CancelOutcome::Unknown,
            Some(e) if e.completed_at.is_some() => CancelOutcome::AlreadyComplete,
            Some(e) => {
                e.cancel = true;
                e.notify.notify_waiters();
                CancelOutcome::Requested
            }
        })
    }

    async fn cancel_requested(&self, response: Uuid) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .responses
            .get(&response)
            .is_some_and(|e| e.cancel))
    }

    async fn renew(&self, meta: &StreamMeta) -> Result<(), StoreError> {
        let lease_until = Instant::now() + self.lease;
        if let Some(e) = self.lock().responses.get_mut(&meta.response_id) {
            e.lease_until = lease_until;
        }
        Ok(())
    }

    async fn active(&self, session: &Session) -> Result<Option<Uuid>, StoreError> {
        let now = Instant::now();
        let logs = self.lock();
        Ok(logs.active.get(&session.id).copied().filter(|r| {
            logs.responses
                .get(r)
                .is_some_and(|e| e.state(now) == LogState::Running)
        }))
    }

    fn lease(&self) -> Duration {
        self.lease
    }
}
