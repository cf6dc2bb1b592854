//! The session-events contracts against
//! [`PostgresSessionEvents`](colloquy_postgres::PostgresSessionEvents): `events`
//! and `other` are two instances (two listening connections) on one fresh
//! schema's channel; the broken-channel contract ends `events`' backend with
//! `pg_terminate_backend`.

mod common;

use std::sync::Arc;

use colloquy_conformance::{service_missing, TestEvents};
use colloquy_postgres::PostgresSessionEvents;

const CAPACITY: usize = 8;

async fn events() -> Option<TestEvents> {
    // LISTEN/NOTIFY keeps no rows: the schema only names the channel.
    let schema = common::unique_schema();
    let config = common::config(&schema);
    let connect = || PostgresSessionEvents::connect(&config, CAPACITY);
    let events = match connect().await {
        Ok(events) => Arc::new(events),
        Err(e) => return service_missing("postgres", &e),
    };
    let other = match connect().await {
        Ok(events) => Arc::new(events),
        Err(e) => return service_missing("postgres", &e),
    };
    Some(
        TestEvents::new(events.clone(), other, CAPACITY).with_sever(move || {
            let events = events.clone();
            Box::pin(async move {
                let pid = events.backend_pid().await.expect("pg_backend_pid()");
                let client = common::raw_client().await;
                let row = client
                    .query_one("SELECT pg_terminate_backend($1)", &[&pid])
                    .await
                    .expect("pg_terminate_backend");
                assert!(row.get::<_, bool>(0), "backend {pid} must be terminated");
            })
        }),
    )
}

colloquy_conformance::events_contract_tests!(events);
