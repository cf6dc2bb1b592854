//! The webhook outbox contracts against core's in-process
//! [`LocalWebhookOutbox`] (the memory store's outbox).

use std::sync::Arc;

use colloquy_conformance::{outbox_contract_tests, TestOutbox};
use colloquy_core::webhooks::LocalWebhookOutbox;
use colloquy_core::ManualClock;

async fn outbox() -> Option<TestOutbox> {
    let clock = Arc::new(ManualClock::new());
    // One process: the "other instance" is a clone sharing the queue.
    let outbox = Arc::new(LocalWebhookOutbox::new(clock.clone()));
    Some(TestOutbox::new(outbox.clone(), outbox, clock))
}

outbox_contract_tests!(outbox);
