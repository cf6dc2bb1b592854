//! Shared by the test binaries: a fresh schema per store, dropped afterwards.

#![allow(dead_code, unreachable_pub)]

pub mod cluster;

use std::sync::Arc;

use colloquy_core::{Clock, ManualClock};
use colloquy_postgres::{PostgresConfig, PostgresStore};

/// Where the tests find PostgreSQL: `COLLOQUY_POSTGRES_URL`, else the local server's
/// unix socket as the `postgres` role.
pub fn url() -> String {
    std::env::var("COLLOQUY_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres".to_owned())
}

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
    let required = std::env::var("COLLOQUY_REQUIRE_SERVICES")
        .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    assert!(!required, "PostgreSQL is required but not reachable: {why}");
    eprintln!("skipping: PostgreSQL not reachable ({why})");
}

/// A direct connection for test set-up and inspection.
pub async fn raw_client() -> tokio_postgres::Client {
    raw_client_to(&url()).await
}

/// A direct connection to `url`, without TLS.
pub async fn raw_client_to(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("direct connection");
    tokio::spawn(connection);
    client
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
