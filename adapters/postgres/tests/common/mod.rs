//! Shared by the test binaries: a fresh schema per store, dropped afterwards. Where
//! PostgreSQL is, the throwaway cluster of the fault tests and the service checks come
//! from `colloquy-test-support`.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use colloquy_core::{Clock, ManualClock};
use colloquy_postgres::{PostgresConfig, PostgresStore};

pub use colloquy_test_support::postgres::url;

/// A schema name no other test uses.
pub fn unique_schema() -> String {
    format!("colloquy_test_{}", uuid::Uuid::new_v4().simple())
}

/// The test configuration: a private schema and a small pool.
pub fn config(schema: &str) -> PostgresConfig {
    PostgresConfig {
        schema: Some(schema.to_owned()),
        pool_size: 8,
        ..PostgresConfig::new(url())
    }
}

/// A store in a fresh schema, or `None` (skip) when PostgreSQL is not reachable and
/// not required.
pub async fn store(clock: Arc<dyn Clock>) -> Option<(Arc<PostgresStore>, Schema)> {
    let schema = unique_schema();
    match PostgresStore::connect(config(&schema), clock).await {
        Ok(store) => Some((Arc::new(store), Schema(schema))),
        Err(e) if e.is_unavailable() => {
            skip_or_fail(&e);
            None
        }
        Err(e) => panic!("connecting to PostgreSQL: {e:?}"),
    }
}

/// A store on a manual clock.
pub async fn manual() -> Option<(Arc<PostgresStore>, Arc<ManualClock>, Schema)> {
    let clock = Arc::new(ManualClock::new());
    let (store, schema) = store(clock.clone()).await?;
    Some((store, clock, schema))
}

/// Skips locally, fails when `COLLOQUY_REQUIRE_SERVICES=1`.
pub fn skip_or_fail(why: &dyn std::fmt::Display) {
    colloquy_test_support::skip_missing("PostgreSQL", why);
}

/// A direct connection for test set-up and inspection.
pub async fn raw_client() -> tokio_postgres::Client {
    raw_client_to(&url()).await
}

/// A direct connection to `url`, without TLS.
pub async fn raw_client_to(url: &str) -> tokio_postgres::Client {
    colloquy_test_support::postgres::connect(url)
        .await
        .expect("direct connection")
}

/// `e` and its sources, joined with `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A test schema; [`Schema::drop`] removes it with everything in it.
pub struct Schema(pub String);

impl Schema {
    /// Drops the schema (call at the end of the test, after the store is closed).
    pub async fn drop(self) {
        let client = raw_client().await;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0))
            .await
            .expect("drop test schema");
    }
}
