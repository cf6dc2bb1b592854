//! The whole store contract suite against [`MemoryStore`].

use std::sync::Arc;

use colloquy_conformance::{
    console_contract_tests, search_contract_tests, store_contract_tests, TestStore,
};
use colloquy_core::ManualClock;
use colloquy_memory::MemoryStore;

async fn store() -> Option<TestStore> {
    let clock = Arc::new(ManualClock::new());
    Some(TestStore::new(
        Arc::new(MemoryStore::new(clock.clone())),
        clock,
    ))
}

store_contract_tests!(store);
console_contract_tests!(store);
colloquy_conformance::inbox_contract_tests!(store);
search_contract_tests!(store);
