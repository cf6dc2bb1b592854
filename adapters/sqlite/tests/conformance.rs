//! The whole store contract suite against [`SqliteStore`], on a fresh database file
//! (WAL, reader pool) per contract.

mod common;

use std::sync::Arc;

use colloquy_conformance::{
    console_contract_tests, search_contract_tests, store_contract_tests, TestStore,
};
use colloquy_core::ManualClock;
use colloquy_sqlite::SqliteStore;

async fn store() -> Option<TestStore> {
    let clock = Arc::new(ManualClock::new());
    let db = common::TempDb::new();
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open a fresh database");
    let dir = db.into_dir();
    Some(
        TestStore::new(Arc::new(store), clock)
            .with_teardown(move || Box::pin(async move { common::remove_dir(&dir) })),
    )
}

store_contract_tests!(store);
console_contract_tests!(store);
colloquy_conformance::inbox_contract_tests!(store);
search_contract_tests!(store);

/// The same suite against the in-memory variant (one connection, no reader pool).
mod in_memory {
    use super::{
        console_contract_tests, search_contract_tests, store_contract_tests, Arc, ManualClock,
        SqliteStore, TestStore,
    };

    async fn store() -> Option<TestStore> {
        let clock = Arc::new(ManualClock::new());
        let store = SqliteStore::open_in_memory(clock.clone()).expect("open in memory");
        Some(TestStore::new(Arc::new(store), clock))
    }

    store_contract_tests!(store);
    console_contract_tests!(store);
    colloquy_conformance::inbox_contract_tests!(store);
    search_contract_tests!(store);
}
