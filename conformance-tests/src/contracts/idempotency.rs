//! The [`IdempotencyStore`] contracts: claim, complete, release, one winner among
//! concurrent claims, expiry. Each takes a fresh [`TestIdempotency`].
//!
//! [`IdempotencyStore`]: colloquy_core::idempotency::IdempotencyStore

use std::sync::Arc;
use std::time::Duration;

use colloquy_core::idempotency::{Claim, IdempotencyStore, Recorded};
use tokio::sync::Barrier;
use tokio::time::Instant;
use uuid::Uuid;

use crate::{TestIdempotency, EXPIRY_SLACK};

/// A key no other contract uses.
fn key() -> String {
    format!("conformance:{}", Uuid::new_v4())
}

fn record(fingerprint: &str, stream: Option<Uuid>) -> Recorded {
    Recorded {
        fingerprint: fingerprint.to_owned(),
        status: 201,
        body: r#"{"id":"x","message":"Grüße, \"quoted\" ✓"}"#.to_owned(),
        stream,
    }
}

async fn claim(store: &dyn IdempotencyStore, key: &str, fingerprint: &str) -> Claim {
    store
        .claim(key, fingerprint)
        .await
        .unwrap_or_else(|e| panic!("claim({key}, {fingerprint}) failed: {e}"))
}

/// Claims `key` until the claim is [`Claim::Claimed`], at most `ttl` plus
/// [`EXPIRY_SLACK`]: for expiry, which no event announces. Every claim before that
/// must find `before`.
async fn claimed_after_expiry(
    store: &dyn IdempotencyStore,
    key: &str,
    ttl: Duration,
    before: &Claim,
    what: &str,
) {
    let within = ttl + EXPIRY_SLACK;
    let deadline = Instant::now() + within;
    loop {
        match claim(store, key, "retry").await {
            Claim::Claimed => return,
            found => assert_eq!(&found, before, "{what}: until it expires"),
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still held {within:?} after it was written (its TTL is {ttl:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// "Claims `key` ...: the caller does the work": the first claim of a key wins; a
/// later one finds it in progress, with the first request's fingerprint. Keys are
/// independent.
pub async fn the_first_claim_wins_and_later_ones_see_it_in_progress(s: &TestIdempotency) {
    let (k, other) = (key(), key());
    assert_eq!(
        claim(&*s.store, &k, "first").await,
        Claim::Claimed,
        "a new key"
    );
    assert_eq!(
        claim(&*s.store, &k, "second").await,
        Claim::InProgress {
            fingerprint: "first".to_owned()
        },
        "a claimed key is in progress, with the fingerprint of the request holding it"
    );
    assert_eq!(
        claim(&*s.store, &other, "second").await,
        Claim::Claimed,
        "another key is independent"
    );
}

/// "Records the result of the claimed `key`": later claims get exactly the recorded
/// result, and a release does not remove it.
pub async fn a_completed_key_returns_the_recorded_result(s: &TestIdempotency) {
    for stream in [None, Some(Uuid::new_v4())] {
        let k = key();
        let recorded = record("fp", stream);
        assert_eq!(
            claim(&*s.store, &k, "fp").await,
            Claim::Claimed,
            "a new key"
        );
        s.store.complete(&k, &recorded).await.expect("complete");
        assert_eq!(
            claim(&*s.store, &k, "fp").await,
            Claim::Done(recorded.clone()),
            "a completed key returns its result as recorded"
        );
        assert_eq!(
            claim(&*s.store, &k, "another").await,
            Claim::Done(recorded.clone()),
            "whatever the new fingerprint (the caller compares it)"
        );
        s.store.release(&k).await.expect("release");
        assert_eq!(
            claim(&*s.store, &k, "fp").await,
            Claim::Done(recorded),
            "release frees a claim without a result only: a result stays"
        );
    }
}

/// "Frees the claimed `key` without a result": the next claim wins; releasing an
/// unknown key is harmless.
pub async fn a_released_key_can_be_claimed_again(s: &TestIdempotency) {
    let k = key();
    assert_eq!(
        claim(&*s.store, &k, "first").await,
        Claim::Claimed,
        "a new key"
    );
    s.store.release(&k).await.expect("release");
    assert_eq!(
        claim(&*s.store, &k, "second").await,
        Claim::Claimed,
        "after a release the next claim wins"
    );
    assert_eq!(
        claim(&*s.store, &k, "third").await,
        Claim::InProgress {
            fingerprint: "second".to_owned()
        },
        "and holds the key with its own fingerprint"
    );
    s.store
        .release(&key())
        .await
        .expect("releasing an unknown key is no error");
}

/// "of any number of concurrent claims of one key, exactly one gets
/// [`Claim::Claimed`]"; the others see it in progress with the winner's fingerprint.
pub async fn concurrent_claims_of_one_key_have_exactly_one_winner(s: &TestIdempotency) {
    const TASKS: usize = 16;
    for round in 0..4 {
        let k = Arc::new(key());
        let start = Arc::new(Barrier::new(TASKS));
        let claims: Vec<_> = (0..TASKS)
            .map(|i| {
                let (store, k, start) = (Arc::clone(&s.store), Arc::clone(&k), Arc::clone(&start));
                tokio::spawn(async move {
                    let fingerprint = format!("task {i}");
                    start.wait().await;
                    let claim = claim(&*store, &k, &fingerprint).await;
                    (fingerprint, claim)
                })
            })
            .collect();
        let mut results = Vec::with_capacity(TASKS);
        for task in claims {
            results.push(task.await.expect("a claiming task"));
        }
        let winners: Vec<&String> = results
            .iter()
            .filter(|(_, c)| *c == Claim::Claimed)
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one of {TASKS} concurrent claims wins, got {results:?}"
        );
        let winner = winners[0].clone();
        for (fingerprint, claim) in &results {
            if *fingerprint != winner {
                assert_eq!(
                    claim,
                    &Claim::InProgress {
                        fingerprint: winner.clone()
                    },
                    "round {round}: a losing claim sees the winner's claim"
                );
            }
        }
    }
}

/// "A claim expires after [`CLAIM_TTL`] unless completed" (the store's claim TTL):
/// a request whose instance died frees its key.
///
/// [`CLAIM_TTL`]: colloquy_core::idempotency::CLAIM_TTL
pub async fn an_abandoned_claim_expires(s: &TestIdempotency) {
    let k = key();
    assert_eq!(
        claim(&*s.hasty, &k, "dead").await,
        Claim::Claimed,
        "a new key"
    );
    let held = Claim::InProgress {
        fingerprint: "dead".to_owned(),
    };
    claimed_after_expiry(
        &*s.hasty,
        &k,
        s.hasty_claim_ttl,
        &held,
        "an abandoned claim",
    )
    .await;
}

/// "Records the result ..., kept for [`IDEMPOTENCY_TTL`]" (the store's result TTL):
/// after it, the key is new again.
///
/// [`IDEMPOTENCY_TTL`]: colloquy_core::idempotency::IDEMPOTENCY_TTL
pub async fn a_result_expires(s: &TestIdempotency) {
    let k = key();
    let recorded = record("fp", None);
    assert_eq!(
        claim(&*s.hasty, &k, "fp").await,
        Claim::Claimed,
        "a new key"
    );
    s.hasty.complete(&k, &recorded).await.expect("complete");
    let kept = Claim::Done(recorded);
    claimed_after_expiry(&*s.hasty, &k, s.hasty_result_ttl, &kept, "a result").await;
}
