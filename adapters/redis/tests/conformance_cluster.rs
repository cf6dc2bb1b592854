//! The whole store contract suite against a Redis Cluster named by
//! `COLLOQUY_REDIS_CLUSTER_NODES` (start one with `scripts/cluster.sh start`).

mod common;

use colloquy_conformance::{console_contract_tests, store_contract_tests, TestStore};

async fn store() -> Option<TestStore> {
    common::cluster_test_store().await
}

store_contract_tests!(store);
console_contract_tests!(store);
colloquy_conformance::inbox_contract_tests!(store);
