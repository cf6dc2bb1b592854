//! Contracts of the [`WebhookOutbox`] port, one public async fn per sentence of
//! its documentation, each taking a [`TestOutbox`]: two handles on one fresh
//! backend (as two instances hold them) judging time by one [`ManualClock`],
//! which the contracts move forward to expire leases and retries (no waiting).
//! Every call has a deadline, so a hanging adapter fails.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use colloquy_core::webhooks::{ClaimedEntry, OutboxEntry, WebhookOutbox};
use colloquy_core::{Clock, ManualClock};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::harness::{teardown_after, Subject};

type Teardown = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send + Sync>;

/// The longest one outbox call may take in a contract.
pub const OUTBOX_CALL_DEADLINE: Duration = Duration::from_secs(10);

/// The lease the contracts claim with.
const LEASE: Duration = Duration::from_secs(30);

/// A [`WebhookOutbox`] under test; see the [module docs](self).
pub struct TestOutbox {
    /// The handle under test.
    pub outbox: Arc<dyn WebhookOutbox>,
    /// A second handle on the same backend, as another instance holds it (an
    /// in-process outbox passes a clone).
    pub other: Arc<dyn WebhookOutbox>,
    /// The clock both handles judge due times and leases by.
    pub clock: Arc<ManualClock>,
    teardown: Option<Teardown>,
}

impl std::fmt::Debug for TestOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOutbox").finish_non_exhaustive()
    }
}

impl TestOutbox {
    /// Wraps two handles on one backend, both built with `clock`.
    pub fn new(
        outbox: Arc<dyn WebhookOutbox>,
        other: Arc<dyn WebhookOutbox>,
        clock: Arc<ManualClock>,
    ) -> Self {
        Self {
            outbox,
            other,
            clock,
            teardown: None,
        }
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

    fn advance(&self, d: Duration) {
        self.clock
            .advance(chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero()));
    }
}

impl Subject for TestOutbox {
    fn teardown(mut self) -> BoxFuture<'static, ()> {
        let teardown = self.teardown.take();
        teardown_after(self, teardown)
    }
}

// ---------------------------------------------------------------- helpers

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// An entry enqueued now, with a body that exercises escaping.
fn entry(o: &TestOutbox, n: usize) -> OutboxEntry {
    OutboxEntry {
        id: Uuid::new_v4(),
        event_id: Uuid::new_v4(),
        event_type: "message.created".to_owned(),
        target: format!("https://receiver-{n}.test/hook?x=1&y=\"2\""),
        body: format!(r#"{{"n":{n},"text":"héllo \"quoted\" \u0000 ✓","nl":"a\nb"}}"#),
        created_at: micros(o.clock.now()),
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(OUTBOX_CALL_DEADLINE, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not return within {OUTBOX_CALL_DEADLINE:?}"),
    }
}

async fn enqueue(outbox: &dyn WebhookOutbox, entries: &[OutboxEntry]) {
    if let Err(e) = within("enqueue", outbox.enqueue(entries)).await {
        panic!("enqueue of {} entries failed: {e:?}", entries.len());
    }
}

async fn claim(outbox: &dyn WebhookOutbox, limit: usize, lease: Duration) -> Vec<ClaimedEntry> {
    match within("claim", outbox.claim(limit, lease)).await {
        Ok(claimed) => claimed,
        Err(e) => panic!("claim({limit}) failed: {e:?}"),
    }
}

async fn finish(outbox: &dyn WebhookOutbox, claimed: &ClaimedEntry) {
    if let Err(e) = within("finish", outbox.finish(claimed)).await {
        panic!("finish failed: {e:?}");
    }
}

async fn retry(outbox: &dyn WebhookOutbox, claimed: &ClaimedEntry, delay: Duration) -> bool {
    match within("retry", outbox.retry(claimed, delay)).await {
        Ok(done) => done,
        Err(e) => panic!("retry failed: {e:?}"),
    }
}

async fn pending(outbox: &dyn WebhookOutbox) -> u64 {
    match within("pending", outbox.pending()).await {
        Ok(n) => n,
        Err(e) => panic!("pending failed: {e:?}"),
    }
}

fn ids(claimed: &[ClaimedEntry]) -> Vec<Uuid> {
    claimed.iter().map(|c| c.entry.id).collect()
}

// ---------------------------------------------------------------- contracts

/// "Entries enqueued are due at once and claimed, oldest due first, entries due
/// at the same time in enqueue order" — and they come back as enqueued, their
/// first claim counted as attempt 1.
pub async fn enqueued_entries_are_claimed_in_order_as_enqueued(o: &TestOutbox) {
    let first: Vec<OutboxEntry> = (0..3).map(|n| entry(o, n)).collect();
    enqueue(o.outbox.as_ref(), &first).await;
    let second: Vec<OutboxEntry> = (3..5).map(|n| entry(o, n)).collect();
    enqueue(o.outbox.as_ref(), &second).await;
    assert_eq!(pending(o.outbox.as_ref()).await, 5, "five entries wait");
    let claimed = claim(o.outbox.as_ref(), 10, LEASE).await;
    let expected: Vec<OutboxEntry> = first.into_iter().chain(second).collect();
    let got: Vec<OutboxEntry> = claimed.iter().map(|c| c.entry.clone()).collect();
    assert_eq!(
        got, expected,
        "entries enqueued at the same time are claimed in enqueue order, unchanged"
    );
    assert!(
        claimed.iter().all(|c| c.attempt == 1),
        "a first claim is attempt 1: {:?}",
        claimed.iter().map(|c| c.attempt).collect::<Vec<_>>()
    );
}

/// A claim takes at most `limit` entries; the next claim takes the next ones.
pub async fn a_claim_takes_at_most_its_limit(o: &TestOutbox) {
    let all: Vec<OutboxEntry> = (0..5).map(|n| entry(o, n)).collect();
    enqueue(o.outbox.as_ref(), &all).await;
    let one = claim(o.outbox.as_ref(), 2, LEASE).await;
    let two = claim(o.other.as_ref(), 2, LEASE).await;
    let three = claim(o.outbox.as_ref(), 2, LEASE).await;
    assert_eq!(ids(&one), [all[0].id, all[1].id], "the first two");
    assert_eq!(ids(&two), [all[2].id, all[3].id], "the next two");
    assert_eq!(ids(&three), [all[4].id], "the last one");
}

/// "A claimed entry is returned by no other claim (from this handle or another
/// on the same backend) until its lease runs out."
pub async fn a_claimed_entry_is_hidden_from_every_claim_during_its_lease(o: &TestOutbox) {
    enqueue(o.outbox.as_ref(), &[entry(o, 0)]).await;
    assert_eq!(claim(o.outbox.as_ref(), 10, LEASE).await.len(), 1);
    o.advance(LEASE - Duration::from_secs(1));
    assert!(
        claim(o.other.as_ref(), 10, LEASE).await.is_empty(),
        "another instance must not claim a leased entry"
    );
    assert!(
        claim(o.outbox.as_ref(), 10, LEASE).await.is_empty(),
        "nor the same one"
    );
    assert_eq!(pending(o.other.as_ref()).await, 1, "it still waits");
}

/// "Of concurrent claims, each entry goes to at most one": two instances
/// claiming in a loop together get every entry exactly once.
pub async fn concurrent_claims_from_two_instances_share_no_entry(o: &TestOutbox) {
    let all: Vec<OutboxEntry> = (0..40).map(|n| entry(o, n)).collect();
    enqueue(o.outbox.as_ref(), &all).await;
    let drain = |outbox: Arc<dyn WebhookOutbox>| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let claimed = claim(outbox.as_ref(), 3, LEASE).await;
                if claimed.is_empty() {
                    return got;
                }
                got.extend(ids(&claimed));
            }
        })
    };
    let (a, b, c) = (
        drain(Arc::clone(&o.outbox)),
        drain(Arc::clone(&o.other)),
        drain(Arc::clone(&o.outbox)),
    );
    let mut got = Vec::new();
    for task in [a, b, c] {
        got.extend(
            within("a claiming task", task)
                .await
                .expect("claiming task"),
        );
    }
    let unique: HashSet<Uuid> = got.iter().copied().collect();
    assert_eq!(
        got.len(),
        unique.len(),
        "an entry was claimed twice while leased"
    );
    assert_eq!(
        unique,
        all.iter().map(|e| e.id).collect::<HashSet<_>>(),
        "every entry is claimed"
    );
}

/// "An entry neither finished nor retried within its lease is due again; the
/// next claim returns it with the next attempt number" — on any instance.
pub async fn an_expired_lease_makes_the_entry_due_again(o: &TestOutbox) {
    let e = entry(o, 0);
    enqueue(o.outbox.as_ref(), std::slice::from_ref(&e)).await;
    assert_eq!(claim(o.outbox.as_ref(), 10, LEASE).await.len(), 1);
    o.advance(LEASE + Duration::from_secs(1));
    let again = claim(o.other.as_ref(), 10, LEASE).await;
    assert_eq!(
        ids(&again),
        [e.id],
        "the entry of a dead deliverer is claimed again after its lease"
    );
    assert_eq!(again[0].attempt, 2, "the second claim is attempt 2");
    assert_eq!(again[0].entry, e, "unchanged");
}

/// "A finished entry is never claimed again."
pub async fn a_finished_entry_is_never_claimed_again(o: &TestOutbox) {
    let entries = [entry(o, 0), entry(o, 1)];
    enqueue(o.outbox.as_ref(), &entries).await;
    let claimed = claim(o.outbox.as_ref(), 10, LEASE).await;
    assert_eq!(claimed.len(), 2);
    finish(o.outbox.as_ref(), &claimed[0]).await;
    o.advance(LEASE * 3);
    let again = claim(o.other.as_ref(), 10, LEASE).await;
    assert_eq!(
        ids(&again),
        [entries[1].id],
        "only the unfinished entry is due after the lease"
    );
    finish(o.other.as_ref(), &again[0]).await;
    // A finish by the stale first claim of an entry already finished is harmless.
    finish(o.outbox.as_ref(), &claimed[1]).await;
    o.advance(LEASE * 3);
    assert!(claim(o.outbox.as_ref(), 10, LEASE).await.is_empty());
    assert_eq!(pending(o.outbox.as_ref()).await, 0, "nothing waits");
}

/// "A retried entry is due after the given delay, not before, with its attempt
/// count kept."
pub async fn a_retried_entry_is_due_after_its_delay(o: &TestOutbox) {
    let e = entry(o, 0);
    enqueue(o.outbox.as_ref(), std::slice::from_ref(&e)).await;
    let first = claim(o.outbox.as_ref(), 10, LEASE).await;
    assert_eq!(first.len(), 1);
    let delay = Duration::from_secs(90);
    assert!(
        retry(o.outbox.as_ref(), &first[0], delay).await,
        "the claim holding the entry may retry it"
    );
    o.advance(delay - Duration::from_secs(1));
    assert!(
        claim(o.other.as_ref(), 10, LEASE).await.is_empty(),
        "a retried entry is not due before its delay"
    );
    o.advance(Duration::from_secs(2));
    let second = claim(o.other.as_ref(), 10, LEASE).await;
    assert_eq!(ids(&second), [e.id], "it is due after its delay");
    assert_eq!(second[0].attempt, 2, "attempts are counted across retries");
    assert!(retry(o.other.as_ref(), &second[0], Duration::ZERO).await);
    let third = claim(o.outbox.as_ref(), 10, LEASE).await;
    assert_eq!(ids(&third), [e.id], "a zero delay makes it due at once");
    assert_eq!(third[0].attempt, 3);
}

/// Retried entries take their place by due time: one retried for later is
/// claimed after an entry enqueued meanwhile.
pub async fn a_retried_entry_waits_behind_entries_due_before_it(o: &TestOutbox) {
    let late = entry(o, 0);
    enqueue(o.outbox.as_ref(), std::slice::from_ref(&late)).await;
    let claimed = claim(o.outbox.as_ref(), 10, LEASE).await;
    assert!(retry(o.outbox.as_ref(), &claimed[0], Duration::from_secs(10)).await);
    o.advance(Duration::from_secs(5));
    let fresh = entry(o, 1);
    enqueue(o.other.as_ref(), std::slice::from_ref(&fresh)).await;
    o.advance(Duration::from_secs(6));
    let both = claim(o.outbox.as_ref(), 10, LEASE).await;
    assert_eq!(
        ids(&both),
        [fresh.id, late.id],
        "oldest due first: the fresh entry was due 5 s before the retried one"
    );
}

/// "A retry by a claim that no longer holds the entry (its lease ran out and
/// another claim took it) changes nothing."
pub async fn a_retry_by_a_stale_claim_changes_nothing(o: &TestOutbox) {
    let e = entry(o, 0);
    enqueue(o.outbox.as_ref(), std::slice::from_ref(&e)).await;
    let stale = claim(o.outbox.as_ref(), 10, LEASE).await;
    o.advance(LEASE + Duration::from_secs(1));
    let current = claim(o.other.as_ref(), 10, LEASE).await;
    assert_eq!(ids(&current), [e.id]);
    assert!(
        !retry(o.outbox.as_ref(), &stale[0], Duration::ZERO).await,
        "a stale claim's retry reports that it changed nothing"
    );
    assert!(
        claim(o.outbox.as_ref(), 10, LEASE).await.is_empty(),
        "the current claim still holds the entry"
    );
    assert!(
        retry(o.other.as_ref(), &current[0], Duration::ZERO).await,
        "the current claim may retry it"
    );
}
