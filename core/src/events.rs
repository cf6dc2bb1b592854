//! Session events: the live doorbell that tells whoever watches a session that
//! something in it changed, so it can read what changed from the store.
//!
//! [`SessionEvents`] is the port; [`LocalSessionEvents`] delivers within this
//! process (the memory and SQLite stores, which one process owns); the Redis
//! adapter (pub/sub, sharded on a cluster) and the PostgreSQL adapter
//! (`LISTEN/NOTIFY`) deliver between instances. [`LocalHub`] is the per-process
//! fan-out every adapter builds on.
//!
//! # The store is the log; the live channel is only a doorbell
//!
//! An event names what changed and nothing more: [`EventKind::MessageStored`]
//! carries the message's id, never its text, and [`EventKind::SessionChanged`]
//! says "read the session again". Delivery is **best effort**: a subscriber that
//! falls behind, or whose channel broke, gets one error
//! ([`EventsError::Lagged`] or [`EventsError::Interrupted`]) and its stream
//! ends. Nothing is lost because nothing is *only* in the channel: the subscriber
//! subscribes again, then reads what it missed from the store.
//!
//! # Event ids, derived from the store
//!
//! The layer above (the `GET /sessions/{id}/events/` endpoint) gives every
//! message event the SSE `id:` of the message's id. Messages have a write order
//! in every store (the order `list_messages` returns), and a message id is a
//! store cursor ([`Cursor`](crate::Cursor)), so `Last-Event-ID: M` replays "the
//! session's messages written after `M`, in write order" with one
//! `list_messages` call, on any instance, after any restart. Session events
//! (handoff state, closed, expired) carry no id of their own: a session has one
//! current state, so a (re)connecting client is sent that state first, then the
//! messages after its `Last-Event-ID`. The resubscribe sequence is:
//!
//! 1. [`subscribe`](SessionEvents::subscribe) (it returns once live: every event
//!    published after it returns is delivered, unless the stream reports an
//!    error);
//! 2. read the session and the messages after the last id sent, from the store;
//! 3. forward live events, skipping message ids already sent in step 2 (a
//!    message stored between 1 and 2 is both read and rung).
//!
//! # Cost
//!
//! A session nobody watches costs nothing: publishing to it finds no entry and
//! returns. A watched session holds one bounded ring of events
//! ([`LocalHub::new`]'s capacity) shared by all its subscribers in this
//! process; an idle subscriber holds a cursor into it. No subscriber buffers
//! more than the ring: one that falls further behind is told it lagged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::error::BoxError;
use crate::session::Session;

/// Which session an event belongs to: its UUID (events never cross from one
/// session to another, even one that later reuses its `session_id`) and its
/// `session_id` (the Redis adapter places the channel in that id's hash slot,
/// next to the session's keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventTopic {
    /// The session's UUID.
    pub session: Uuid,
    /// The session's `session_id`.
    pub session_id: String,
}

impl From<&Session> for EventTopic {
    fn from(session: &Session) -> Self {
        Self {
            session: session.id,
            session_id: session.session_id.clone(),
        }
    }
}

/// What happened in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A message was stored (by anyone: the visitor, an answer, an operator);
    /// read it by id.
    MessageStored {
        /// The message's id.
        id: Uuid,
    },
    /// A message was deleted.
    MessageDeleted {
        /// The message's id.
        id: Uuid,
    },
    /// The session itself changed (metadata, active flag, handoff state, expiry):
    /// read it again.
    SessionChanged,
    /// The session was deleted; no more events follow.
    SessionDeleted,
}

/// One event of one session, as a subscriber receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEvent {
    /// The session's UUID.
    pub session: Uuid,
    /// What happened.
    pub kind: EventKind,
}

impl SessionEvent {
    /// The event as the text adapters send between instances:
    /// `"<session> m <id>"`, `"<session> d <id>"`, `"<session> s"` or
    /// `"<session> x"` (UUIDs hyphenated; at most 76 bytes).
    #[must_use]
    pub fn encode(&self) -> String {
        let session = self.session;
        match self.kind {
            EventKind::MessageStored { id } => format!("{session} m {id}"),
            EventKind::MessageDeleted { id } => format!("{session} d {id}"),
            EventKind::SessionChanged => format!("{session} s"),
            EventKind::SessionDeleted => format!("{session} x"),
        }
    }

    /// Reads what [`SessionEvent::encode`] wrote.
    ///
    /// # Errors
    /// [`EventsError::Malformed`] for anything else.
    pub fn decode(text: &str) -> Result<Self, EventsError> {
        let malformed = || EventsError::Malformed(text.chars().take(100).collect());
        let mut parts = text.split(' ');
        let session = parts
            .next()
            .and_then(|s| Uuid::try_parse(s).ok())
            .ok_or_else(malformed)?;
        let id = |part: Option<&str>| part.and_then(|s| Uuid::try_parse(s).ok());
        let kind = match parts.next() {
            Some("m") => EventKind::MessageStored {
                id: id(parts.next()).ok_or_else(malformed)?,
            },
            Some("d") => EventKind::MessageDeleted {
                id: id(parts.next()).ok_or_else(malformed)?,
            },
            Some("s") => EventKind::SessionChanged,
            Some("x") => EventKind::SessionDeleted,
            _ => return Err(malformed()),
        };
        if parts.next().is_some() {
            return Err(malformed());
        }
        Ok(Self { session, kind })
    }
}

/// Why publishing, subscribing or a subscription failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The subscriber fell more than the ring's capacity behind; events were
    /// dropped. Subscribe again and read the rest from the store.
    #[error("the subscriber fell behind and missed events")]
    Lagged,
    /// The live channel broke (a connection to the broker dropped, or the
    /// adapter shut down); events may have been missed. Subscribe again and read
    /// the rest from the store.
    #[error("the live event channel was interrupted")]
    Interrupted,
    /// The broker (Redis, PostgreSQL) could not be reached in time.
    #[error("the event channel is unavailable")]
    Unavailable(#[source] BoxError),
    /// A payload from the broker was not an event this crate encodes.
    #[error("malformed event payload {0:?}")]
    Malformed(String),
}

/// A live subscription to one session: its events in publish order, until the
/// subscription is dropped. It yields at most one error, then ends.
pub type Subscription = BoxStream<'static, Result<SessionEvent, EventsError>>;

/// Publishes and delivers session events; see the [module docs](self).
///
/// Contracts (checked by `colloquy-conformance`'s events contracts):
/// - **Delivery.** Every event [`publish`](Self::publish)ed for a topic after a
///   [`subscribe`](Self::subscribe) to it returned is delivered to that
///   subscription, from this handle or any other handle on the same backend
///   (another instance), unless the subscription first yields an error.
/// - **Order.** One publisher's events of one session (each publish awaited
///   before the next) arrive in publish order.
/// - **Isolation.** A subscription yields only its own session's events.
/// - **Fan-out.** Every subscription to a session gets every event.
/// - **Bounded.** A subscriber that does not read is not buffered for without
///   bound: past the adapter's capacity it gets [`EventsError::Lagged`] and
///   its stream ends.
/// - **Broken channel.** When the adapter may have missed events (a broker
///   connection dropped), each of its subscriptions yields
///   [`EventsError::Interrupted`] and ends; a new `subscribe` works again once
///   the broker is back.
/// - **No subscriber, no cost.** Dropping the last subscription of a session
///   releases everything held for it.
#[async_trait]
pub trait SessionEvents: Send + Sync + 'static {
    /// Rings the doorbell of `topic`'s session: call it after the change is
    /// stored. Publishing to a session nobody watches is cheap and succeeds.
    ///
    /// # Errors
    /// [`EventsError::Unavailable`] when the broker cannot be reached; the change
    /// is stored anyway, and subscribers catch up on their next replay.
    async fn publish(&self, topic: &EventTopic, kind: EventKind) -> Result<(), EventsError>;

    /// Subscribes to `topic`'s session; returns once the subscription is live.
    ///
    /// # Errors
    /// [`EventsError::Unavailable`] when the broker cannot be reached.
    async fn subscribe(&self, topic: &EventTopic) -> Result<Subscription, EventsError>;
}

/// Called with a session's topic when its last subscription in this process is
/// dropped (the Redis adapter unsubscribes its channel).
pub type ReleaseHook = Arc<dyn Fn(&EventTopic) + Send + Sync>;

/// The in-process fan-out of session events: one bounded
/// [`broadcast`](tokio::sync::broadcast) ring per watched session, created by its
/// first subscription and removed with its last. Cheap to clone (a handle).
#[derive(Clone)]
pub struct LocalHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    sessions: Mutex<HashMap<Uuid, Entry>>,
    capacity: usize,
    release: Option<ReleaseHook>,
}

struct Entry {
    sender: broadcast::Sender<SessionEvent>,
    topic: EventTopic,
}

impl std::fmt::Debug for LocalHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalHub")
            .field("capacity", &self.inner.capacity)
            .field("sessions", &self.watched_sessions())
            .finish_non_exhaustive()
    }
}

impl LocalHub {
    /// How many events a subscriber may fall behind by default before it lags.
    pub const DEFAULT_CAPACITY: usize = 32;

    /// A hub whose subscribers may fall `capacity` events behind (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self::build(capacity, None)
    }

    /// A hub that calls `release` when a session's last subscription is dropped.
    #[must_use]
    pub fn with_release(capacity: usize, release: ReleaseHook) -> Self {
        Self::build(capacity, Some(release))
    }

    fn build(capacity: usize, release: Option<ReleaseHook>) -> Self {
        Self {
            inner: Arc::new(HubInner {
                sessions: Mutex::new(HashMap::new()),
                capacity: capacity.max(1),
                release,
            }),
        }
    }

    /// A live subscription to `topic`'s session in this process.
    #[must_use]
    pub fn subscribe(&self, topic: &EventTopic) -> Subscription {
        let receiver = {
            let mut sessions = self.lock();
            match sessions.get(&topic.session) {
                Some(entry) => entry.sender.subscribe(),
                None => {
                    let (sender, receiver) = broadcast::channel(self.inner.capacity);
                    let topic = topic.clone();
                    sessions.insert(topic.session, Entry { sender, topic });
                    receiver
                }
            }
        };
        let guard = Guard {
            hub: Arc::clone(&self.inner),
            session: topic.session,
            receiver: Some(receiver),
        };
        futures::stream::unfold(Some(guard), |guard| async move {
            let mut guard = guard?;
            let receiver = guard.receiver.as_mut()?;
            let received = receiver.recv().await;
            match received {
                Ok(event) => Some((Ok(event), Some(guard))),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Some((Err(EventsError::Lagged), None))
                }
                Err(broadcast::error::RecvError::Closed) => {
                    Some((Err(EventsError::Interrupted), None))
                }
            }
        })
        .boxed()
    }

    /// Delivers `event` to every subscription of its session in this process;
    /// returns how many there were.
    pub fn deliver(&self, event: SessionEvent) -> usize {
        let sessions = self.lock();
        sessions
            .get(&event.session)
            .and_then(|entry| entry.sender.send(event).ok())
            .unwrap_or(0)
    }

    /// Ends every subscription in this process with
    /// [`EventsError::Interrupted`] (after the events already in its ring).
    pub fn interrupt_all(&self) {
        let dropped: Vec<Entry> = self.lock().drain().map(|(_, entry)| entry).collect();
        if let Some(release) = &self.inner.release {
            for entry in &dropped {
                release(&entry.topic);
            }
        }
    }

    /// Whether `session` has a subscription in this process.
    #[must_use]
    pub fn is_watched(&self, session: Uuid) -> bool {
        self.lock().contains_key(&session)
    }

    /// How many sessions have a subscription in this process.
    #[must_use]
    pub fn watched_sessions(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.inner.lock()
    }
}

impl HubInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        // The map stays consistent whatever panicked while holding it.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes a session's entry when its last subscription goes.
struct Guard {
    hub: Arc<HubInner>,
    session: Uuid,
    receiver: Option<broadcast::Receiver<SessionEvent>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let released = {
            let mut sessions = self.hub.lock();
            drop(self.receiver.take());
            match sessions.get(&self.session) {
                Some(entry) if entry.sender.receiver_count() == 0 => {
                    sessions.remove(&self.session).map(|entry| entry.topic)
                }
                _ => None,
            }
        };
        if let (Some(topic), Some(release)) = (released, &self.hub.release) {
            release(&topic);
        }
    }
}

/// [`SessionEvents`] within one process: for the memory and SQLite stores.
/// Cheap to clone; clones share subscriptions.
#[derive(Debug, Clone)]
pub struct LocalSessionEvents {
    hub: LocalHub,
}

impl Default for LocalSessionEvents {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalSessionEvents {
    /// Subscribers may fall [`LocalHub::DEFAULT_CAPACITY`] events behind.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(LocalHub::DEFAULT_CAPACITY)
    }

    /// Subscribers may fall `capacity` events behind (at least 1).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            hub: LocalHub::new(capacity),
        }
    }

    /// The hub (to interrupt subscribers, or count watched sessions).
    #[must_use]
    pub fn hub(&self) -> &LocalHub {
        &self.hub
    }
}

#[async_trait]
impl SessionEvents for LocalSessionEvents {
    async fn publish(&self, topic: &EventTopic, kind: EventKind) -> Result<(), EventsError> {
        self.hub.deliver(SessionEvent {
            session: topic.session,
            kind,
        });
        Ok(())
    }

    async fn subscribe(&self, topic: &EventTopic) -> Result<Subscription, EventsError> {
        Ok(self.hub.subscribe(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> EventTopic {
        EventTopic {
            session: Uuid::new_v4(),
            session_id: "s".into(),
        }
    }

    #[test]
    fn events_round_trip_through_their_text() {
        let session = Uuid::new_v4();
        let id = Uuid::new_v4();
        for kind in [
            EventKind::MessageStored { id },
            EventKind::MessageDeleted { id },
            EventKind::SessionChanged,
            EventKind::SessionDeleted,
        ] {
            let event = SessionEvent { session, kind };
            assert_eq!(SessionEvent::decode(&event.encode()).ok(), Some(event));
        }
        for bad in [
            "",
            "x",
            &format!("{session} m"),
            &format!("{session} s extra"),
            &format!("{session} q"),
        ] {
            assert!(
                matches!(SessionEvent::decode(bad), Err(EventsError::Malformed(_))),
                "{bad:?} must be malformed"
            );
        }
    }

    #[tokio::test]
    async fn the_last_subscription_releases_its_session() {
        let released = Arc::new(Mutex::new(Vec::new()));
        let hook: ReleaseHook = {
            let released = Arc::clone(&released);
            Arc::new(move |t: &EventTopic| {
                released
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(t.session)
            })
        };
        let hub = LocalHub::with_release(4, hook);
        let t = topic();
        let one = hub.subscribe(&t);
        let two = hub.subscribe(&t);
        assert_eq!(hub.watched_sessions(), 1);
        drop(one);
        assert!(hub.is_watched(t.session), "one subscription is left");
        drop(two);
        assert!(!hub.is_watched(t.session), "no subscription is left");
        assert_eq!(
            *released.lock().unwrap_or_else(PoisonError::into_inner),
            vec![t.session]
        );
    }

    #[tokio::test]
    async fn a_subscriber_past_the_capacity_lags_and_ends() {
        let events = LocalSessionEvents::with_capacity(2);
        let t = topic();
        let mut sub = events.subscribe(&t).await.expect("subscribe");
        for _ in 0..3 {
            events
                .publish(&t, EventKind::SessionChanged)
                .await
                .expect("publish");
        }
        assert!(matches!(sub.next().await, Some(Err(EventsError::Lagged))));
        assert!(
            sub.next().await.is_none(),
            "the stream ends after the error"
        );
    }

    #[tokio::test]
    async fn interrupt_ends_every_subscription_after_its_pending_events() {
        let events = LocalSessionEvents::new();
        let t = topic();
        let mut sub = events.subscribe(&t).await.expect("subscribe");
        events
            .publish(&t, EventKind::SessionChanged)
            .await
            .expect("publish");
        events.hub().interrupt_all();
        assert!(matches!(sub.next().await, Some(Ok(_))));
        assert!(matches!(
            sub.next().await,
            Some(Err(EventsError::Interrupted))
        ));
        assert!(sub.next().await.is_none());
        assert_eq!(events.hub().watched_sessions(), 0);
    }
}
