//! The session-events contracts against the in-process
//! [`LocalSessionEvents`](colloquy_core::LocalSessionEvents), which the memory store
//! uses: "two instances" are two clones of one value (one process).

use std::sync::Arc;

use colloquy_conformance::TestEvents;
use colloquy_core::LocalSessionEvents;

const CAPACITY: usize = 8;

async fn events() -> Option<TestEvents> {
    let events = Arc::new(LocalSessionEvents::with_capacity(CAPACITY));
    let hub = events.hub().clone();
    Some(
        TestEvents::new(events.clone(), events, CAPACITY).with_sever(move || {
            let hub = hub.clone();
            Box::pin(async move { hub.interrupt_all() })
        }),
    )
}

colloquy_conformance::events_contract_tests!(events);
