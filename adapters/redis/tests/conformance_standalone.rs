//! The whole store contract suite against a standalone Redis on 127.0.0.1:6379, each
//! contract under its own random key prefix, deleted afterwards.

mod common;

use colloquy_conformance::{console_contract_tests, store_contract_tests, TestStore};

async fn store() -> Option<TestStore> {
    common::standalone_test_store().await
}

store_contract_tests!(store);
console_contract_tests!(store);
colloquy_conformance::inbox_contract_tests!(store);
