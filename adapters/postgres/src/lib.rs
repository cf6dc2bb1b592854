//! # colloquy-postgres
//!
//! (docs to come)

mod config;
mod error;
mod rows;
mod schema;
mod sql;
mod store;
mod text;
mod tls;

#[cfg(test)]
mod query_plans;

pub use config::PostgresConfig;
pub use error::ConnectError;
pub use schema::SCHEMA_VERSION;
pub use store::PostgresStore;
