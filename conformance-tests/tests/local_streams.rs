//! The stream-log and idempotency contracts against core's in-process
//! [`LocalStreamLog`] and [`LocalIdempotency`] (the memory and SQLite stores' log,
//! and the memory store's idempotency store).

use std::sync::Arc;
use std::time::Duration;

use colloquy_conformance::{
    idempotency_contract_tests, stream_log_contract_tests, TestIdempotency, TestStreamLog,
};
use colloquy_core::local::{LocalIdempotency, LocalStreamLog};

/// Lease and retention of the logs the non-expiry contracts use: longer than any
/// contract takes.
const PATIENT: Duration = Duration::from_secs(120);
const HASTY_LEASE: Duration = Duration::from_millis(200);
const HASTY_RETENTION: Duration = Duration::from_secs(1);
const HASTY_CLAIM: Duration = Duration::from_millis(200);
const HASTY_RESULT: Duration = Duration::from_millis(300);

async fn log() -> Option<TestStreamLog> {
    // One process: the "other instance" is the same log.
    let log = Arc::new(LocalStreamLog::new(PATIENT, PATIENT));
    let hasty = Arc::new(LocalStreamLog::new(HASTY_RETENTION, HASTY_LEASE));
    Some(TestStreamLog::new(log.clone(), log, hasty, HASTY_RETENTION))
}

async fn idempotency() -> Option<TestIdempotency> {
    Some(TestIdempotency::new(
        Arc::new(LocalIdempotency::new()),
        Arc::new(LocalIdempotency::with_ttls(HASTY_CLAIM, HASTY_RESULT)),
        HASTY_CLAIM,
        HASTY_RESULT,
    ))
}

stream_log_contract_tests!(log);
idempotency_contract_tests!(idempotency);
