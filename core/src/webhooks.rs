//! Webhooks: telling the site's people what happened, through a durable outbox.
//!
//! Every change the service stores is announced once ([`crate::announce`]). When
//! webhooks are configured ([`crate::ChatServiceBuilder::webhooks`]), the
//! announcement of a selected event type is also **enqueued** in a
//! [`WebhookOutbox`], one [`OutboxEntry`] per target URL, before the request is
//! answered. A deliverer (the `colloquy-webhook` crate, a background task of
//! each instance, never on a request's path) [`claims`](WebhookOutbox::claim)
//! due entries with a lease, POSTs them, and [`finishes`](WebhookOutbox::finish)
//! them, or [`retries`](WebhookOutbox::retry) them later with backoff.
//!
//! # Guarantees
//!
//! - **Durable.** The outbox lives in the store (SQLite and PostgreSQL tables, a
//!   Redis sorted set): an entry enqueued before an instance is killed is
//!   delivered after a restart, or by another instance.
//! - **At least once.** An entry is removed only after its receiver answered 2xx
//!   (or it was given up). A deliverer that dies mid-delivery leaves its entry
//!   claimed until the lease runs out; then any instance claims it again. So a
//!   receiver may see an event twice (the `id` tells them apart); in the normal
//!   case (no crash) it sees it once, whatever the number of instances, because
//!   a claim is exclusive while its lease lasts.
//! - **Never lost silently.** If the outbox cannot take an entry, the request that
//!   made the change fails with 503 `store_unavailable` after the change was
//!   stored (see [`crate::announce`]): "not acknowledged", as any 503 of the API.
//!   The refused entries are kept in the process (at most [`MAX_SPILLED`]) and
//!   enqueued by the deliverer ([`Webhooks::flush_spilled`]) once the store
//!   answers again. An entry is given up only after the deliverer's bounded
//!   time, counted in a metric and logged with its event id.
//!
//! # The port
//!
//! Entries are claimed oldest due first; among entries due at the same time, in
//! enqueue order. A claim takes up to `limit` due entries, counts an attempt on
//! each, and hides each from other claims for `lease` (by the adapter's clock): a
//! claimed entry that is neither finished nor retried within its lease is due
//! again. `colloquy-conformance`'s outbox contracts check every sentence on every
//! adapter.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::{serde_time, Clock};
use crate::error::StoreError;
use crate::message::{ChatMessage, MessageView};
use crate::session::Session;

/// What a webhook tells: its body's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebhookEventType {
    /// `handoff.requested`: a visitor asked for a person.
    HandoffRequested,
    /// `session.created`: a session was created.
    SessionCreated,
    /// `message.created`: a message was stored (by anyone).
    MessageCreated,
    /// `responder.changed`: an operator took a session over or handed it back.
    ResponderChanged,
    /// `handoff.timeout`: nobody answered a handoff in time; the model answers again.
    HandoffTimeout,
}

impl WebhookEventType {
    /// Every type, in documentation order.
    pub const ALL: [Self; 5] = [
        Self::HandoffRequested,
        Self::SessionCreated,
        Self::MessageCreated,
        Self::ResponderChanged,
        Self::HandoffTimeout,
    ];

    /// The name in the body's `type` and in `--webhook-events`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HandoffRequested => "handoff.requested",
            Self::SessionCreated => "session.created",
            Self::MessageCreated => "message.created",
            Self::ResponderChanged => "responder.changed",
            Self::HandoffTimeout => "handoff.timeout",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for WebhookEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for WebhookEventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A name that is no webhook event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown webhook event {0:?}; known: handoff.requested, session.created, message.created, responder.changed, handoff.timeout")]
pub struct UnknownEventType(pub String);

impl FromStr for WebhookEventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s.trim())
            .ok_or_else(|| UnknownEventType(s.trim().chars().take(64).collect()))
    }
}

/// A set of [`WebhookEventType`]s: which events are sent. The default is
/// `handoff.requested` alone.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WebhookEventTypes(u8);

impl Default for WebhookEventTypes {
    fn default() -> Self {
        Self::none().with(WebhookEventType::HandoffRequested)
    }
}

impl fmt::Debug for WebhookEventTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl WebhookEventTypes {
    /// No event.
    #[must_use]
    pub const fn none() -> Self {
        Self(0)
    }

    /// Every event.
    #[must_use]
    pub fn all() -> Self {
        WebhookEventType::ALL.into_iter().collect()
    }

    /// This set and `t`.
    #[must_use]
    pub fn with(self, t: WebhookEventType) -> Self {
        Self(self.0 | t.bit())
    }

    /// Whether `t` is in the set.
    #[must_use]
    pub fn contains(self, t: WebhookEventType) -> bool {
        self.0 & t.bit() != 0
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The types in the set, in documentation order.
    pub fn iter(self) -> impl Iterator<Item = WebhookEventType> {
        WebhookEventType::ALL
            .into_iter()
            .filter(move |t| self.contains(*t))
    }
}

impl FromIterator<WebhookEventType> for WebhookEventTypes {
    fn from_iter<I: IntoIterator<Item = WebhookEventType>>(iter: I) -> Self {
        iter.into_iter().fold(Self::none(), Self::with)
    }
}

impl FromStr for WebhookEventTypes {
    type Err = UnknownEventType;

    /// A comma-separated list, e.g. `handoff.requested,message.created`; `all`
    /// for every type.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "all" {
            return Ok(Self::all());
        }
        s.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(str::parse)
            .collect()
    }
}

/// A webhook's body, as every receiver of the `colloquy` format gets it.
///
/// ```json
/// {"id": "<event uuid>", "type": "handoff.requested", "created_at": "time",
///  "session": {session JSON}, "message": {message JSON}}
/// ```
/// `message` is present for `message.created` only, as `GET /messages/{id}/`
/// returns it to the operator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookEvent {
    /// The event's id: the same in every delivery of it (retries, other
    /// targets), so a receiver deduplicates by it.
    pub id: Uuid,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: WebhookEventType,
    /// When it was announced.
    #[serde(with = "serde_time")]
    pub created_at: DateTime<Utc>,
    /// The session as stored after the change.
    pub session: Session,
    /// The message stored (`message.created` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageView>,
}

impl WebhookEvent {
    /// The body: the event as compact JSON.
    ///
    /// # Errors
    /// When serializing fails (metadata that is not JSON cannot occur; kept typed).
    pub fn body(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// One delivery to do: an event's body for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The entry's own id (one per event and target).
    pub id: Uuid,
    /// The event's id (`Colloquy-Event-Id`, the body's `id`).
    pub event_id: Uuid,
    /// The event's type name (`Colloquy-Event-Type`).
    pub event_type: String,
    /// Where it goes: a target URL, as configured.
    pub target: String,
    /// The body, in the `colloquy` format ([`WebhookEvent::body`]).
    pub body: String,
    /// When it was enqueued: the deliverer gives up on an entry this old.
    pub created_at: DateTime<Utc>,
}

/// An entry a claim returned: deliver it, then finish or retry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEntry {
    /// The entry.
    pub entry: OutboxEntry,
    /// Which attempt this is: 1 for the first claim, counting every claim (a
    /// claim whose deliverer died counts too).
    pub attempt: u32,
    /// The claim's token: [`WebhookOutbox::retry`] applies only while the entry
    /// is still held by this claim.
    pub lease: Uuid,
}

/// The durable queue of webhook deliveries; see the [module docs](self).
///
/// Contracts (checked by `colloquy-conformance`'s outbox contracts):
/// - **Enqueue.** Entries enqueued are due at once and claimed, oldest due
///   first, entries due at the same time in enqueue order.
/// - **Exclusive.** A claimed entry is returned by no other claim (from this
///   handle or another on the same backend) until its lease runs out; of
///   concurrent claims, each entry goes to at most one.
/// - **Lease expiry.** An entry neither finished nor retried within its lease is
///   due again; the next claim returns it with the next attempt number.
/// - **Finish.** A finished entry is never claimed again.
/// - **Retry.** A retried entry is due after the given delay, not before, with
///   its attempt count kept; a retry by a claim that no longer holds the entry
///   (its lease ran out and another claim took it) changes nothing.
#[async_trait]
pub trait WebhookOutbox: Send + Sync + 'static {
    /// Adds `entries`, due now, all or none.
    async fn enqueue(&self, entries: &[OutboxEntry]) -> Result<(), StoreError>;

    /// Claims up to `limit` due entries for `lease`; see the contracts.
    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedEntry>, StoreError>;

    /// Removes the entry: it was delivered, or given up.
    async fn finish(&self, claimed: &ClaimedEntry) -> Result<(), StoreError>;

    /// Makes the entry due again after `delay`, if `claimed` still holds it;
    /// returns whether it did.
    async fn retry(&self, claimed: &ClaimedEntry, delay: Duration) -> Result<bool, StoreError>;

    /// How many entries are waiting (due or not, claimed or not).
    async fn pending(&self) -> Result<u64, StoreError>;
}

/// What a service sends webhooks with: the outbox, the target URLs, the event
/// types selected, and a doorbell the deliverer waits on. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    outbox: Arc<dyn WebhookOutbox>,
    targets: Arc<[String]>,
    events: WebhookEventTypes,
    wake: Arc<Notify>,
    /// Entries the outbox could not take, kept for the deliverer to enqueue
    /// again (at most [`MAX_SPILLED`]).
    spill: Arc<Mutex<SpillQueue>>,
}

#[derive(Debug, Default)]
struct SpillQueue {
    batches: std::collections::VecDeque<Vec<OutboxEntry>>,
    entries: usize,
}

/// The most entries an instance keeps in memory while its outbox cannot take
/// them; past it, a new webhook is dropped (logged at error level).
pub const MAX_SPILLED: usize = 10_000;

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhooks")
            .field("targets", &self.targets.len())
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// How many times an announcement tries to enqueue before the request fails.
const ENQUEUE_ATTEMPTS: u32 = 3;
/// The wait before the second try; doubled before each next one.
const ENQUEUE_BACKOFF: Duration = Duration::from_millis(100);

impl Webhooks {
    /// Webhooks of the `events` types to each of `targets`, through `outbox`.
    #[must_use]
    pub fn new(
        outbox: Arc<dyn WebhookOutbox>,
        targets: Vec<String>,
        events: WebhookEventTypes,
    ) -> Self {
        Self {
            outbox,
            targets: targets.into(),
            events,
            wake: Arc::new(Notify::new()),
            spill: Arc::default(),
        }
    }

    /// The outbox.
    #[must_use]
    pub fn outbox(&self) -> &Arc<dyn WebhookOutbox> {
        &self.outbox
    }

    /// The target URLs.
    #[must_use]
    pub fn targets(&self) -> &[String] {
        &self.targets
    }

    /// The event types sent.
    #[must_use]
    pub fn events(&self) -> WebhookEventTypes {
        self.events
    }

    /// Resolves after this process enqueued an entry (or at once if it did since
    /// the last wait): the deliverer claims then instead of at its next poll.
    pub async fn enqueued(&self) {
        self.wake.notified().await;
    }

    /// The events an announcement sends, before filtering by the selection.
    pub(crate) fn events_of(&self, now: DateTime<Utc>, kind: Announced<'_>) -> Vec<WebhookEvent> {
        let event = |event_type, message: Option<&ChatMessage>, session: &Session| WebhookEvent {
            id: Uuid::now_v7(),
            event_type,
            created_at: now,
            session: session.clone(),
            message: message.map(|m| MessageView::new(m.clone(), session.clone())),
        };
        let mut out = Vec::new();
        match kind {
            Announced::SessionCreated(s) => {
                out.push(event(WebhookEventType::SessionCreated, None, s))
            }
            Announced::HandoffRequested(s) => {
                out.push(event(WebhookEventType::HandoffRequested, None, s));
            }
            Announced::ResponderChanged(s) => {
                out.push(event(WebhookEventType::ResponderChanged, None, s));
            }
            Announced::HandoffTimedOut(s) => {
                out.push(event(WebhookEventType::HandoffTimeout, None, s));
            }
            Announced::MessageStored(s, m) => {
                out.push(event(WebhookEventType::MessageCreated, Some(m), s));
            }
            Announced::Other => {}
        }
        out.retain(|e| self.events.contains(e.event_type));
        out
    }

    /// Enqueues what `kind` sends, one entry per target, trying a few times
    /// over a fraction of a second before giving up.
    pub(crate) async fn announce(
        &self,
        now: DateTime<Utc>,
        kind: Announced<'_>,
    ) -> Result<(), StoreError> {
        let events = self.events_of(now, kind);
        if events.is_empty() || self.targets.is_empty() {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(events.len() * self.targets.len());
        for event in &events {
            let body = event.body().map_err(StoreError::backend)?;
            for target in self.targets.iter() {
                entries.push(OutboxEntry {
                    id: Uuid::now_v7(),
                    event_id: event.id,
                    event_type: event.event_type.as_str().to_owned(),
                    target: target.clone(),
                    body: body.clone(),
                    created_at: now,
                });
            }
        }
        if self.spilled() > 0 {
            // The outbox refused earlier entries: keep the order, queue behind them.
            if let Err(e) = self.flush_spilled().await {
                self.keep(entries);
                return Err(e);
            }
        }
        let mut wait = ENQUEUE_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.outbox.enqueue(&entries).await {
                Ok(()) => {
                    self.wake.notify_one();
                    return Ok(());
                }
                Err(e) if attempt < ENQUEUE_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "webhook enqueue failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                Err(e) => {
                    self.keep(entries);
                    return Err(e);
                }
            }
        }
    }

    fn spill(&self) -> std::sync::MutexGuard<'_, SpillQueue> {
        self.spill.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps entries the outbox refused, for [`Webhooks::flush_spilled`].
    fn keep(&self, entries: Vec<OutboxEntry>) {
        let mut spill = self.spill();
        if spill.entries + entries.len() > MAX_SPILLED {
            for e in &entries {
                tracing::error!(event = %e.event_id, r#type = %e.event_type, "webhook lost: the outbox is unavailable and this instance already keeps the most it may");
            }
            return;
        }
        spill.entries += entries.len();
        spill.batches.push_back(entries);
    }

    /// How many entries this instance keeps because the outbox refused them.
    #[must_use]
    pub fn spilled(&self) -> usize {
        self.spill().entries
    }

    /// Enqueues the entries kept since the outbox refused them, oldest first;
    /// stops at the first failure (they stay kept). The deliverer calls it before
    /// each claim. Returns how many were enqueued.
    ///
    /// # Errors
    /// The outbox's, when it still refuses.
    pub async fn flush_spilled(&self) -> Result<usize, StoreError> {
        let mut flushed = 0;
        loop {
            let Some(batch) = self.spill().batches.pop_front() else {
                return Ok(flushed);
            };
            match self.outbox.enqueue(&batch).await {
                Ok(()) => {
                    flushed += batch.len();
                    self.spill().entries -= batch.len();
                }
                Err(e) => {
                    self.spill().batches.push_front(batch);
                    return Err(e);
                }
            }
        }
    }
}

/// What [`crate::announce`] hands the webhooks: the announcements that can send
/// one, the rest as `Other`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Announced<'a> {
    SessionCreated(&'a Session),
    HandoffRequested(&'a Session),
    ResponderChanged(&'a Session),
    HandoffTimedOut(&'a Session),
    MessageStored(&'a Session, &'a ChatMessage),
    Other,
}

// ---------------------------------------------------------------- in process

/// One entry of a [`LocalWebhookOutbox`].
#[derive(Debug, Clone)]
struct Held {
    entry: OutboxEntry,
    due: DateTime<Utc>,
    seq: u64,
    attempts: u32,
    lease: Option<Uuid>,
}

#[derive(Debug, Default)]
struct LocalState {
    entries: HashMap<Uuid, Held>,
    /// `(due, seq) -> id`: the claim order.
    queue: BTreeMap<(DateTime<Utc>, u64), Uuid>,
    next_seq: u64,
}

/// A [`WebhookOutbox`] in this process (the memory store's, and tests'): lost on
/// restart, like everything the memory store holds. Cheap to clone; clones share
/// the queue.
#[derive(Clone)]
pub struct LocalWebhookOutbox {
    clock: Arc<dyn Clock>,
    state: Arc<Mutex<LocalState>>,
}

impl fmt::Debug for LocalWebhookOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalWebhookOutbox")
            .field("entries", &self.lock().entries.len())
            .finish_non_exhaustive()
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl LocalWebhookOutbox {
    /// An empty outbox judging due times and leases by `clock`.
    #[must_use]
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LocalState {
    fn schedule(&mut self, id: Uuid, due: DateTime<Utc>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(held) = self.entries.get_mut(&id) {
            self.queue.remove(&(held.due, held.seq));
            held.due = due;
            held.seq = seq;
            self.queue.insert((due, seq), id);
        }
    }
}

#[async_trait]
impl WebhookOutbox for LocalWebhookOutbox {
    async fn enqueue(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut state = self.lock();
        for entry in entries {
            let seq = state.next_seq;
            state.next_seq += 1;
            state.queue.insert((now, seq), entry.id);
            state.entries.insert(
                entry.id,
                Held {
                    entry: entry.clone(),
                    due: now,
                    seq,
                    attempts: 0,
                    lease: None,
                },
            );
        }
        Ok(())
    }

    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedEntry>, StoreError> {
        let now = self.clock.now();
        let until = now + chrono_duration(lease);
        let mut state = self.lock();
        let due: Vec<Uuid> = state
            .queue
            .range(..=(now, u64::MAX))
            .take(limit)
            .map(|(_, id)| *id)
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for id in due {
            state.schedule(id, until);
            if let Some(held) = state.entries.get_mut(&id) {
                let token = Uuid::new_v4();
                held.attempts += 1;
                held.lease = Some(token);
                out.push(ClaimedEntry {
                    entry: held.entry.clone(),
                    attempt: held.attempts,
                    lease: token,
                });
            }
        }
        Ok(out)
    }

    async fn finish(&self, claimed: &ClaimedEntry) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(held) = state.entries.remove(&claimed.entry.id) {
            state.queue.remove(&(held.due, held.seq));
        }
        Ok(())
    }

    async fn retry(&self, claimed: &ClaimedEntry, delay: Duration) -> Result<bool, StoreError> {
        let due = self.clock.now() + chrono_duration(delay);
        let mut state = self.lock();
        let holds = state
            .entries
            .get(&claimed.entry.id)
            .is_some_and(|h| h.lease == Some(claimed.lease));
        if holds {
            state.schedule(claimed.entry.id, due);
            if let Some(held) = state.entries.get_mut(&claimed.entry.id) {
                held.lease = None;
            }
        }
        Ok(holds)
    }

    async fn pending(&self) -> Result<u64, StoreError> {
        Ok(self.lock().entries.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Role;

    #[test]
    fn event_types_parse_and_print() {
        for t in WebhookEventType::ALL {
            assert_eq!(t.as_str().parse::<WebhookEventType>(), Ok(t));
        }
        assert!("handoff.requested ,message.created"
            .parse::<WebhookEventTypes>()
            .is_ok_and(|s| s.contains(WebhookEventType::MessageCreated)
                && s.contains(WebhookEventType::HandoffRequested)
                && !s.contains(WebhookEventType::SessionCreated)));
        assert_eq!("all".parse(), Ok(WebhookEventTypes::all()));
        assert!("handoff.requested,nope"
            .parse::<WebhookEventTypes>()
            .is_err());
        let default = WebhookEventTypes::default();
        assert_eq!(
            default.iter().collect::<Vec<_>>(),
            vec![WebhookEventType::HandoffRequested]
        );
    }

    fn session() -> Session {
        let now = Utc::now();
        Session {
            id: Uuid::new_v4(),
            session_id: "s".into(),
            external_user_id: None,
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
            is_active: true,
            responder: crate::Responder::Ai,
            handoff_requested_at: None,
            metadata: crate::Metadata::new(),
        }
    }

    fn message(session: &Session, role: Role, notice: Option<&str>) -> ChatMessage {
        let mut metadata = crate::Metadata::new();
        if let Some(n) = notice {
            metadata.insert("notice".into(), n.into());
        }
        ChatMessage {
            id: Uuid::new_v4(),
            session: session.id,
            message: "hi".into(),
            role,
            metadata,
            timestamp: Utc::now(),
            is_deleted: false,
        }
    }

    #[test]
    fn announcements_map_to_the_selected_types() {
        let outbox = Arc::new(LocalWebhookOutbox::new(Arc::new(crate::SystemClock)));
        let all = Webhooks::new(outbox.clone(), vec!["u".into()], WebhookEventTypes::all());
        let s = session();
        let types = |w: &Webhooks, a| -> Vec<WebhookEventType> {
            w.events_of(Utc::now(), a)
                .into_iter()
                .map(|e| e.event_type)
                .collect()
        };
        assert_eq!(
            types(&all, Announced::SessionCreated(&s)),
            [WebhookEventType::SessionCreated]
        );
        assert_eq!(
            types(&all, Announced::HandoffTimedOut(&s)),
            [WebhookEventType::HandoffTimeout]
        );
        let notice = message(&s, Role::Assistant, Some("handoff_timeout"));
        assert_eq!(
            types(&all, Announced::MessageStored(&s, &notice)),
            [WebhookEventType::MessageCreated],
            "the notice message is a message.created; the timeout is its own event"
        );
        let default = Webhooks::new(outbox, vec!["u".into()], WebhookEventTypes::default());
        assert!(types(&default, Announced::MessageStored(&s, &notice)).is_empty());
        assert_eq!(
            types(&default, Announced::HandoffRequested(&s)),
            [WebhookEventType::HandoffRequested]
        );
    }

    #[test]
    fn the_body_has_the_documented_fields() {
        let s = session();
        let m = message(&s, Role::User, None);
        let event = WebhookEvent {
            id: Uuid::nil(),
            event_type: WebhookEventType::MessageCreated,
            created_at: s.created_at,
            session: s.clone(),
            message: Some(MessageView::new(m.clone(), s.clone())),
        };
        let body: serde_json::Value =
            serde_json::from_str(&event.body().expect("serializes")).expect("JSON");
        assert_eq!(body["type"], "message.created");
        assert_eq!(body["id"], Uuid::nil().to_string());
        assert_eq!(body["session"]["responder"], "ai");
        assert_eq!(body["message"]["id"], m.id.to_string());
        let without = WebhookEvent {
            message: None,
            event_type: WebhookEventType::SessionCreated,
            ..event
        };
        let body: serde_json::Value =
            serde_json::from_str(&without.body().expect("serializes")).expect("JSON");
        assert!(body.get("message").is_none());
    }
}
