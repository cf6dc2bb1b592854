//! The webhook outbox contracts against
//! [`PostgresOutbox`](colloquy_postgres::PostgresOutbox), each in a fresh schema
//! dropped afterwards, the "other instance" a second store (its own pool) on the
//! same schema.

mod common;

use std::sync::Arc;

use colloquy_conformance::{outbox_contract_tests, service_missing, TestOutbox};
use colloquy_core::ManualClock;
use colloquy_postgres::PostgresStore;

async fn outbox() -> Option<TestOutbox> {
    let schema = common::unique_schema();
    let clock = Arc::new(ManualClock::new());
    let store = match PostgresStore::connect(common::config(&schema), clock.clone()).await {
        Ok(store) => store,
        Err(e) if e.is_unavailable() => return service_missing("PostgreSQL", &e),
        Err(e) => panic!("connecting to PostgreSQL: {e:?}"),
    };
    let other = PostgresStore::connect(common::config(&schema), clock.clone())
        .await
        .expect("a second connection to the same schema");
    Some(
        TestOutbox::new(
            Arc::new(store.webhook_outbox()),
            Arc::new(other.webhook_outbox()),
            clock,
        )
        .with_teardown(move || {
            Box::pin(async move {
                store.close();
                other.close();
                common::Schema(schema).drop().await;
            })
        }),
    )
}

outbox_contract_tests!(outbox);
