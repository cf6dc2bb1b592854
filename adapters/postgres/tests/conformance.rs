//! The whole store contract suite against [`PostgresStore`] on a real PostgreSQL,
//! each contract (and each model-based case) in a fresh schema dropped afterwards.
//! `COLLOQUY_POSTGRES_URL` names the server (default: the local unix socket as
//! `postgres`); when it does not answer the tests skip, or fail under
//! `COLLOQUY_REQUIRE_SERVICES=1`.

mod common;

use std::sync::Arc;

use colloquy_conformance::{
    console_contract_tests, search_contract_tests, service_missing, store_contract_tests, TestStore,
};
use colloquy_core::ManualClock;
use colloquy_postgres::PostgresStore;

async fn store() -> Option<TestStore> {
    let clock = Arc::new(ManualClock::new());
    let schema = common::unique_schema();
    let store = match PostgresStore::connect(common::config(&schema), clock.clone()).await {
        Ok(store) => store,
        Err(e) if e.is_unavailable() => return service_missing("PostgreSQL", &e),
        Err(e) => panic!("connecting to PostgreSQL: {e:?}"),
    };
    Some(
        TestStore::new(Arc::new(store), clock)
            .with_teardown(move || Box::pin(common::Schema(schema).drop())),
    )
}

store_contract_tests!(store);
console_contract_tests!(store);
colloquy_conformance::inbox_contract_tests!(store);
search_contract_tests!(store);
