//! Errors: [`ConnectError`] for start-up, and the mapping of PostgreSQL failures onto
//! the port's [`StoreError`].
//!
//! | failure | `StoreError` |
//! | --- | --- |
//! | no pooled connection (connect refused or timed out, pool wait timed out) | `Unavailable` |
//! | connection lost or closed mid-statement | `Unavailable` |
//! | SQLSTATE class `08` (connection), `53` (resources), `57` (operator intervention: `57014` statement timeout, `57P01` shutdown, ...), `40` (serialization failure, deadlock), `55P03` (lock not available) | `Unavailable` |
//! | `23505` unique violation | `Conflict(Message)` on the message id index, `Conflict(Session)` on the session id or live session_id index; `Backend` on any other |
//! | anything else (a bad row, an unexpected SQL error) | `Backend` |
//!
//! No error carries the connection string: the password never reaches a log line.

use colloquy_core::{BoxError, Entity, StoreError};
use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::schema::{MESSAGE_ID_INDEX, SESSION_ID_INDEX, SESSION_PKEY};

/// Why [`PostgresStore::connect`](crate::PostgresStore::connect) failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The configuration is not valid (a bad connection string, pool size or schema
    /// name, an unreadable CA file). The message never contains the password.
    #[error("invalid PostgreSQL configuration: {0}")]
    Config(String),
    /// PostgreSQL did not answer, or refused the connection (retryable).
    #[error("PostgreSQL is not reachable")]
    Unavailable(#[source] BoxError),
    /// Applying schema migration `version` failed; nothing of it was applied.
    #[error("applying PostgreSQL schema migration {version}")]
    Migrate {
        /// The schema version the migration leads to.
        version: usize,
        /// PostgreSQL's reason.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database was migrated by a newer build.
    #[error(
        "the database schema is at version {found}, newer than this build supports ({supported})"
    )]
    SchemaTooNew {
        /// The version recorded in the database.
        found: i64,
        /// The newest version this build knows.
        supported: usize,
    },
    /// `no_migrate` is set but the schema is not at this build's version.
    #[error(
        "the database schema is at version {found} but this build needs {expected}; \
         start once without no_migrate (or apply the migrations) first"
    )]
    NotMigrated {
        /// The version recorded in the database (0: no schema).
        found: i64,
        /// The version this build needs.
        expected: usize,
    },
    /// PostgreSQL answered with an unexpected error while setting up.
    #[error("PostgreSQL failed during start-up")]
    Backend(#[source] BoxError),
}

impl ConnectError {
    /// Whether the failure is PostgreSQL not being reachable (worth retrying later),
    /// rather than a configuration or schema problem.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Maps a failure of a start-up statement.
    pub(crate) fn from_pg(e: tokio_postgres::Error) -> Self {
        if is_unavailable(&e) {
            Self::Unavailable(e.into())
        } else {
            Self::Backend(e.into())
        }
    }
}

impl From<ConnectError> for StoreError {
    fn from(e: ConnectError) -> Self {
        if e.is_unavailable() {
            Self::unavailable(e)
        } else {
            Self::backend(e)
        }
    }
}

/// A stored row the store cannot read back (an unknown role, bad escaping).
#[derive(Debug, thiserror::Error)]
#[error("stored row is corrupt: {0}")]
pub(crate) struct Corrupt(pub(crate) &'static str);

/// Maps a failure to get a pooled connection: always retryable.
pub(crate) fn pool_error(e: PoolError) -> StoreError {
    StoreError::unavailable(e)
}

/// Maps a failed statement. A unique violation names its entity by the index it hit.
pub(crate) fn query_error(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        match e.as_db_error().and_then(|db| db.constraint()) {
            Some(MESSAGE_ID_INDEX) => return StoreError::Conflict(Entity::Message),
            Some(SESSION_PKEY | SESSION_ID_INDEX) => return StoreError::Conflict(Entity::Session),
            // Any other unique index (a message position) clashing is a bug.
            _ => return StoreError::backend(e),
        }
    }
    if is_unavailable(&e) {
        StoreError::unavailable(e)
    } else {
        StoreError::backend(e)
    }
}

/// Whether `e` means "PostgreSQL cannot serve this now" (retryable) rather than a bug
/// or a bad row.
pub(crate) fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => is_unavailable_state(code.code()),
        // No SQLSTATE: the connection broke (I/O error, closed) or a value did not
        // convert. Only the former is retryable.
        None => e.is_closed() || has_io_source(e),
    }
}

/// The SQLSTATEs that mean "retry later", by class or code.
fn is_unavailable_state(code: &str) -> bool {
    let class = code.get(..2).unwrap_or("");
    matches!(class, "08" | "53" | "57" | "40") || code == "55P03"
}

fn has_io_source(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_sqlstates_are_unavailable() {
        for code in [
            "57014", "57P01", "57P02", "57P03", "08006", "08001", "53300", "40001", "40P01",
            "55P03",
        ] {
            assert!(is_unavailable_state(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "22021", "XX000", "P0001"] {
            assert!(!is_unavailable_state(code), "{code}");
        }
    }

    #[test]
    fn connect_errors_map_to_store_errors_by_kind() {
        let down = ConnectError::Unavailable("refused".into());
        assert!(down.is_unavailable());
        assert!(matches!(StoreError::from(down), StoreError::Unavailable(_)));
        let config = ConnectError::Config("pool_size must be at least 1".into());
        assert!(!config.is_unavailable());
        assert!(matches!(StoreError::from(config), StoreError::Backend(_)));
    }
}
