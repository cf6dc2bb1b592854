//! Contracts of the [`SessionEvents`] port, one public async fn per sentence of
//! its documentation, each taking a [`TestEvents`]. Every wait has a deadline
//! ([`RECEIVE_DEADLINE`]), so a broken adapter fails instead of hanging.

use std::sync::Arc;
use std::time::Duration;

use colloquy_core::{
    EventKind, EventTopic, EventsError, SessionEvent, SessionEvents, Subscription,
};
use futures::future::BoxFuture;
use futures::StreamExt;
use uuid::Uuid;

use crate::harness::{teardown_after, Subject};

/// How long a contract waits for one event that must arrive: far beyond the
/// 1 s cross-instance goal, so a loaded machine never fails a correct adapter.
pub const RECEIVE_DEADLINE: Duration = Duration::from_secs(10);

type Sever = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;
type Teardown = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send + Sync>;

/// A [`SessionEvents`] under test: two handles on one fresh backend (as two
/// instances hold them; an in-process adapter passes two clones), how far a
/// subscriber may fall behind before it lags, and optionally a way to break the
/// handle's broker connection.
pub struct TestEvents {
    /// The handle under test.
    pub events: Arc<dyn SessionEvents>,
    /// A second handle on the same backend, as another instance holds it.
    pub other: Arc<dyn SessionEvents>,
    /// The ring capacity of `events`: a subscriber more than this many events
    /// behind lags.
    pub capacity: usize,
    sever: Option<Sever>,
    teardown: Option<Teardown>,
}

impl std::fmt::Debug for TestEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEvents")
            .field("capacity", &self.capacity)
            .field("sever", &self.sever.is_some())
            .finish_non_exhaustive()
    }
}

impl TestEvents {
    /// Wraps two handles on one backend; `capacity` is `events`' ring capacity.
    pub fn new(
        events: Arc<dyn SessionEvents>,
        other: Arc<dyn SessionEvents>,
        capacity: usize,
    ) -> Self {
        Self {
            events,
            other,
            capacity,
            sever: None,
            teardown: None,
        }
    }

    /// Declares how to break `events`' broker connection (kill it on the broker):
    /// the broken-channel contract runs only with it.
    #[must_use]
    pub fn with_sever<F>(mut self, sever: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, ()> + Send + Sync + 'static,
    {
        self.sever = Some(Arc::new(sever));
        self
    }

    /// Runs `teardown` after the contract, whether it passed, failed or timed out.
    #[must_use]
    pub fn with_teardown<F>(mut self, teardown: F) -> Self
    where
        F: FnOnce() -> BoxFuture<'static, ()> + Send + Sync + 'static,
    {
        self.teardown = Some(Box::new(teardown));
        self
    }
}

impl Subject for TestEvents {
    fn teardown(mut self) -> BoxFuture<'static, ()> {
        let teardown = self.teardown.take();
        teardown_after(self, teardown)
    }
}

// ---------------------------------------------------------------- helpers

fn topic(session_id: &str) -> EventTopic {
    EventTopic {
        session: Uuid::new_v4(),
        session_id: format!("{session_id}-{}", Uuid::new_v4().simple()),
    }
}

fn stored() -> EventKind {
    EventKind::MessageStored { id: Uuid::new_v4() }
}

async fn subscribe(events: &dyn SessionEvents, topic: &EventTopic) -> Subscription {
    match tokio::time::timeout(RECEIVE_DEADLINE, events.subscribe(topic)).await {
        Ok(Ok(sub)) => sub,
        Ok(Err(e)) => panic!("subscribe({topic:?}) failed: {e:?}"),
        Err(_) => panic!("subscribe({topic:?}) did not return within {RECEIVE_DEADLINE:?}"),
    }
}

async fn publish(events: &dyn SessionEvents, topic: &EventTopic, kind: EventKind) {
    match tokio::time::timeout(RECEIVE_DEADLINE, events.publish(topic, kind)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("publish({topic:?}, {kind:?}) failed: {e:?}"),
        Err(_) => panic!("publish({topic:?}) did not return within {RECEIVE_DEADLINE:?}"),
    }
}

/// The next item of `sub`, which must come within [`RECEIVE_DEADLINE`].
async fn next(sub: &mut Subscription, rule: &str) -> Option<Result<SessionEvent, EventsError>> {
    match tokio::time::timeout(RECEIVE_DEADLINE, sub.next()).await {
        Ok(item) => item,
        Err(_) => panic!("{rule}\n  no event arrived within {RECEIVE_DEADLINE:?}"),
    }
}

/// The next event of `sub`, which must be `expected`.
async fn expect(sub: &mut Subscription, expected: SessionEvent, rule: &str) {
    let got = next(sub, rule).await;
    assert!(
        matches!(&got, Some(Ok(event)) if *event == expected),
        "{rule}\n  expected: {expected:?}\n  got:      {got:?}"
    );
}

fn event(topic: &EventTopic, kind: EventKind) -> SessionEvent {
    SessionEvent {
        session: topic.session,
        kind,
    }
}

// ---------------------------------------------------------------- contracts

/// "Every event published for a topic after a subscribe to it returned is
/// delivered to that subscription."
pub async fn an_event_published_after_subscribe_is_delivered(t: &TestEvents) {
    let rule = "SessionEvents: an event published after subscribe returned is delivered";
    let topic = topic("deliver");
    let mut sub = subscribe(&*t.events, &topic).await;
    for kind in [
        stored(),
        EventKind::MessageDeleted { id: Uuid::new_v4() },
        EventKind::SessionChanged,
        EventKind::SessionDeleted,
    ] {
        publish(&*t.events, &topic, kind).await;
        expect(&mut sub, event(&topic, kind), rule).await;
    }
}

/// "One publisher's events of one session arrive in publish order."
pub async fn one_publishers_events_arrive_in_order(t: &TestEvents) {
    let rule = "SessionEvents: one publisher's events of one session arrive in publish order";
    let topic = topic("order");
    let mut here = subscribe(&*t.events, &topic).await;
    let mut there = subscribe(&*t.other, &topic).await;
    // Fewer than the ring holds, so the subscribers need not read concurrently.
    let count = t.capacity.clamp(1, 20);
    let kinds: Vec<EventKind> = (0..count).map(|_| stored()).collect();
    for kind in &kinds {
        publish(&*t.events, &topic, *kind).await;
    }
    for kind in &kinds {
        expect(&mut here, event(&topic, *kind), rule).await;
        expect(&mut there, event(&topic, *kind), rule).await;
    }
}

/// "A subscription yields only its own session's events", also for a session
/// that reuses another's `session_id`.
pub async fn no_event_crosses_to_another_session(t: &TestEvents) {
    let rule = "SessionEvents: a subscription yields only its own session's events";
    let mine = topic("mine");
    let neighbour = topic("neighbour");
    // A later session that took `mine`'s session_id: a different UUID.
    let namesake = EventTopic {
        session: Uuid::new_v4(),
        session_id: mine.session_id.clone(),
    };
    let mut sub = subscribe(&*t.events, &mine).await;
    let mut witnesses = Vec::new();
    for other in [&neighbour, &namesake] {
        witnesses.push((other, subscribe(&*t.other, other).await));
    }
    for (other, witness) in &mut witnesses {
        let kind = stored();
        publish(&*t.events, other, kind).await;
        // Once the witness has it, a leak would already be queued before `last`.
        expect(witness, event(other, kind), "the witness's own event").await;
    }
    let last = stored();
    publish(&*t.events, &mine, last).await;
    expect(&mut sub, event(&mine, last), rule).await;
}

/// "Every subscription to a session gets every event", on this handle and on
/// another instance's.
pub async fn every_subscriber_of_a_session_gets_every_event(t: &TestEvents) {
    let rule = "SessionEvents: every subscription to a session gets every event";
    let topic = topic("fanout");
    let mut subs = Vec::new();
    for i in 0..8 {
        let events = if i % 2 == 0 { &t.events } else { &t.other };
        subs.push(subscribe(&**events, &topic).await);
    }
    let kinds: Vec<EventKind> = (0..t.capacity.clamp(1, 5)).map(|_| stored()).collect();
    for kind in &kinds {
        publish(&*t.events, &topic, *kind).await;
    }
    for sub in &mut subs {
        for kind in &kinds {
            expect(sub, event(&topic, *kind), rule).await;
        }
    }
}

/// "Dropping the last subscription of a session releases everything held for
/// it": subscribing again works, and dropping one of two subscriptions leaves
/// the other receiving.
pub async fn a_dropped_subscription_can_subscribe_again(t: &TestEvents) {
    let rule = "SessionEvents: after the last subscription is dropped, a new one is delivered to";
    let topic = topic("again");
    for round in 0..3 {
        let mut sub = subscribe(&*t.events, &topic).await;
        let kind = stored();
        publish(&*t.other, &topic, kind).await;
        expect(
            &mut sub,
            event(&topic, kind),
            &format!("{rule} (round {round})"),
        )
        .await;
        drop(sub);
    }
    let kept_rule = "SessionEvents: dropping one subscription leaves the others receiving";
    let mut kept = subscribe(&*t.events, &topic).await;
    let dropped = subscribe(&*t.events, &topic).await;
    drop(dropped);
    let kind = stored();
    publish(&*t.other, &topic, kind).await;
    expect(&mut kept, event(&topic, kind), kept_rule).await;
}

/// "Delivered from this handle or any other handle on the same backend":
/// events cross between two instances both ways.
pub async fn another_instance_sees_the_events(t: &TestEvents) {
    let rule = "SessionEvents: an event published on one instance reaches a subscriber on another";
    let topic = topic("cross");
    let mut here = subscribe(&*t.events, &topic).await;
    let mut there = subscribe(&*t.other, &topic).await;
    let from_here = stored();
    publish(&*t.events, &topic, from_here).await;
    expect(&mut there, event(&topic, from_here), rule).await;
    expect(&mut here, event(&topic, from_here), rule).await;
    let from_there = stored();
    publish(&*t.other, &topic, from_there).await;
    expect(&mut here, event(&topic, from_there), rule).await;
    expect(&mut there, event(&topic, from_there), rule).await;
}

/// "A subscriber that does not read gets `Lagged` past the capacity, and its
/// stream ends", while one that reads gets everything.
pub async fn a_subscriber_that_does_not_read_lags_and_ends(t: &TestEvents) {
    let rule = "SessionEvents: a subscriber past the capacity gets Lagged and its stream ends";
    let topic = topic("lag");
    let mut idle = subscribe(&*t.events, &topic).await;
    let mut reader = subscribe(&*t.events, &topic).await;
    let total = t.capacity + 5;
    for _ in 0..total {
        let kind = stored();
        publish(&*t.events, &topic, kind).await;
        expect(
            &mut reader,
            event(&topic, kind),
            "a reading subscriber gets every event",
        )
        .await;
    }
    // The reader has every event, so the idle one's ring has them all too.
    let mut delivered = 0;
    loop {
        match next(&mut idle, rule).await {
                Some(Ok(_)) => delivered += 1,
                Some(Err(EventsError::Lagged)) => break,
                other => panic!("{rule}\n  expected Err(Lagged) after at most {} events, got {other:?} after {delivered}", t.capacity),
            }
    }
    assert!(
        delivered <= t.capacity,
        "{rule}\n  {delivered} events were buffered for a subscriber, more than the capacity {}",
        t.capacity
    );
    assert!(
        next(&mut idle, rule).await.is_none(),
        "{rule}\n  the stream must end after Lagged"
    );
}

/// "When the adapter may have missed events, each subscription yields
/// `Interrupted` and ends; a new subscribe works again once the broker is
/// back." Runs only when the subject can sever its connection.
pub async fn a_severed_channel_interrupts_then_recovers(t: &TestEvents) {
    let Some(sever) = t.sever.clone() else {
        return;
    };
    let rule = "SessionEvents: a broken broker connection interrupts every subscription";
    let topic = topic("sever");
    let mut sub = subscribe(&*t.events, &topic).await;
    sever().await;
    let got = next(&mut sub, rule).await;
    assert!(
        matches!(got, Some(Err(EventsError::Interrupted))),
        "{rule}\n  expected Some(Err(Interrupted)), got {got:?}"
    );
    let back = "SessionEvents: after an interruption a new subscription is delivered to";
    let deadline = tokio::time::Instant::now() + RECEIVE_DEADLINE;
    // The broker connection comes back on its own; subscribe until it does.
    let mut sub = loop {
        match t.events.subscribe(&topic).await {
            Ok(sub) => break sub,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("subscribe after sever: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{back}\n  subscribe kept failing: {e:?}"),
        }
    };
    let kind = stored();
    publish(&*t.other, &topic, kind).await;
    expect(&mut sub, event(&topic, kind), back).await;
}
