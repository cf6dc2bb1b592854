//! [`LocalStreamLog`]: the [`StreamLog`] port in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use super::ExpiryQueue;
use crate::chat::ChatEvent;
use crate::error::StoreError;
use crate::session::Session;
use crate::streams::{
    CancelOutcome, LogRead, LogState, StreamLog, StreamMeta, DEFAULT_LEASE, DEFAULT_LOG_RETENTION,
};

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
    /// Whether the log ended (completed, or its lease ran out) `retention` ago or
    /// longer: no longer kept, even before a sweep drops it.
    fn expired(&self, now: Instant, retention: Duration) -> bool {
        self.completed_at.unwrap_or(self.lease_until) + retention <= now
    }

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
    /// Session UUID -> its newest started response, while that response's log is
    /// held (a pointer goes with its log, or when the log completes).
    active: HashMap<Uuid, Uuid>,
    /// Running logs, due a lease plus the retention after their start or renewal.
    leased: ExpiryQueue<Uuid>,
    /// Completed logs, due the retention after their terminal event.
    completed: ExpiryQueue<Uuid>,
}

impl Logs {
    /// Drops the logs whose queue items are due, if they have expired (a renewed or
    /// completed log has a later item), with the active pointers that name them.
    fn expire(&mut self, now: Instant, retention: Duration) {
        while let Some(response) = self
            .leased
            .pop_due(now)
            .or_else(|| self.completed.pop_due(now))
        {
            if !self
                .responses
                .get(&response)
                .is_some_and(|e| e.expired(now, retention))
            {
                continue;
            }
            if let Some(e) = self.responses.remove(&response) {
                if self.active.get(&e.meta.session) == Some(&response) {
                    self.active.remove(&e.meta.session);
                }
            }
        }
    }
}

/// A [`StreamLog`] in this process: a bounded log per response, woken followers,
/// completed logs dropped after `retention` (in amortised O(1) per operation, see
/// [`crate::local`]).
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

    /// The response's waker, while it has no event after `after` and is not complete.
    fn waker(&self, response: Uuid, after: u64) -> Option<Arc<Notify>> {
        let logs = self.lock();
        let entry = logs.responses.get(&response)?;
        let nothing_new = entry.events.last().is_none_or(|ev| ev.seq() <= after);
        (nothing_new && entry.completed_at.is_none()).then(|| Arc::clone(&entry.notify))
    }

    /// How many responses' logs are held (expired ones no operation has dropped yet
    /// included).
    #[must_use]
    pub fn held(&self) -> usize {
        self.lock().responses.len()
    }

    /// How many sessions have an active-response pointer held.
    #[must_use]
    pub fn active_pointers(&self) -> usize {
        self.lock().active.len()
    }

    /// How many expiry items are queued (one per start, renewal and completion
    /// within the last lease plus retention).
    #[must_use]
    pub fn queued(&self) -> usize {
        let logs = self.lock();
        logs.leased.len() + logs.completed.len()
    }
}

#[async_trait]
impl StreamLog for LocalStreamLog {
    async fn start(&self, meta: &StreamMeta) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut logs = self.lock();
        logs.expire(now, self.retention);
        logs.active.insert(meta.session, meta.response_id);
        logs.leased
            .push(now + self.lease + self.retention, meta.response_id);
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
        logs.expire(now, self.retention);
        let Some(entry) = logs.responses.get_mut(&response) else {
            return Ok(()); // expired: nobody can follow it any more
        };
        if entry.events.len() < MAX_EVENTS || event.is_terminal() {
            entry.events.push(event.clone());
        }
        entry.notify.notify_waiters();
        if event.is_terminal() && entry.completed_at.is_none() {
            entry.completed_at = Some(now);
            let session = entry.meta.session;
            if logs.active.get(&session) == Some(&response) {
                logs.active.remove(&session);
            }
            logs.completed.push(now + self.retention, response);
        }
        Ok(())
    }

    async fn read(&self, response: Uuid, from: u64) -> Result<Option<LogRead>, StoreError> {
        self.read_page(response, from, usize::MAX).await
    }

    /// Clones only the page: O(log events + page).
    async fn read_page(
        &self,
        response: Uuid,
        from: u64,
        max: usize,
    ) -> Result<Option<LogRead>, StoreError> {
        let now = Instant::now();
        let logs = self.lock();
        let kept = logs.responses.get(&response);
        Ok(kept.filter(|e| !e.expired(now, self.retention)).map(|e| {
            // Appended in order: the events are sorted by seq.
            let first = e.events.partition_point(|ev| ev.seq() < from);
            LogRead {
                meta: e.meta.clone(),
                events: e.events[first..].iter().take(max.max(1)).cloned().collect(),
                state: e.state(now),
            }
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
        let now = Instant::now();
        let mut logs = self.lock();
        Ok(match logs.responses.get_mut(&response) {
            Some(e) if e.expired(now, self.retention) => CancelOutcome::Unknown,
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
        let now = Instant::now();
        let mut logs = self.lock();
        logs.expire(now, self.retention);
        if let Some(e) = logs.responses.get_mut(&meta.response_id) {
            e.lease_until = now + self.lease;
            logs.leased
                .push(now + self.lease + self.retention, meta.response_id);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FinishReason;

    const RETENTION: Duration = Duration::from_secs(1);
    const LEASE: Duration = Duration::from_millis(500);

    fn meta() -> StreamMeta {
        let session = Uuid::new_v4();
        StreamMeta {
            response_id: Uuid::new_v4(),
            message_id: Uuid::new_v4(),
            session,
            session_id: session.to_string(),
        }
    }

    fn done(seq: u64) -> ChatEvent {
        ChatEvent::Done {
            seq,
            finish_reason: FinishReason::Stop,
            sources: None,
        }
    }

    async fn kept(log: &LocalStreamLog, m: &StreamMeta) -> bool {
        log.read(m.response_id, 0).await.expect("read").is_some()
    }

    #[tokio::test(start_paused = true)]
    async fn a_log_expires_at_its_retention_never_before() {
        let log = LocalStreamLog::new(RETENTION, LEASE);
        let (finished, abandoned) = (meta(), meta());
        log.start(&finished).await.expect("start");
        log.start(&abandoned).await.expect("start");
        log.append(finished.response_id, &done(0))
            .await
            .expect("append");
        tokio::time::advance(LEASE).await;
        // The finished log ended at 0, the abandoned one at LEASE.
        tokio::time::advance(RETENTION - LEASE - Duration::from_millis(1)).await;
        assert!(
            kept(&log, &finished).await,
            "a finished log is kept until its retention"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!kept(&log, &finished).await, "and gone after it");
        assert!(
            kept(&log, &abandoned).await,
            "an abandoned log is kept a retention after its lease"
        );
        tokio::time::advance(LEASE).await;
        assert!(!kept(&log, &abandoned).await, "and gone after it");
    }

    #[tokio::test(start_paused = true)]
    async fn sustained_chat_holds_a_bounded_number_of_logs() {
        let log = LocalStreamLog::new(RETENTION, LEASE);
        let every = Duration::from_millis(10);
        // One answer started every 10 ms; two in three complete, the third is
        // abandoned.
        let mut most = 0;
        for i in 0..5_000 {
            let m = meta();
            log.start(&m).await.expect("start");
            if i % 3 != 0 {
                log.append(m.response_id, &done(0)).await.expect("append");
            }
            most = most.max(log.held());
            tokio::time::advance(every).await;
        }
        // A log is held from its start to a retention after its end (its lease's
        // end when abandoned): at most a lease plus a retention of starts.
        let window =
            usize::try_from((RETENTION + LEASE).as_millis() / every.as_millis()).unwrap_or(0);
        assert!(
            most <= window + 1,
            "{most} logs held at most, for {window} started within a lease plus a retention"
        );
        assert!(
            log.queued() <= 2 * (window + 1),
            "{} expiry items queued",
            log.queued()
        );
        assert!(
            log.active_pointers() <= window + 1,
            "active pointers go with their logs: {} held",
            log.active_pointers()
        );
        tokio::time::advance(RETENTION + LEASE).await;
        log.start(&meta()).await.expect("start");
        assert_eq!(log.held(), 1, "one operation drops every expired log");
        assert_eq!(log.active_pointers(), 1, "and the pointers that named them");
    }
}
