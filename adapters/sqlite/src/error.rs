//! The adapter's private error type and its mapping onto the port's [`StoreError`].

use std::sync::Arc;

use colloquy_core::{Entity, StoreError};
use rusqlite::ffi;

/// Everything that can go wrong inside the adapter. Never leaves the crate: the ports
/// see a [`StoreError`], with this value kept as its `source`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqliteError {
    /// The session (no live session matches the reference) or the message (missing,
    /// soft-deleted, of an expired session, or a cursor naming no message of the
    /// session) is not there.
    #[error("{0} not found")]
    NotFound(Entity),
    /// The identifier is taken: a session's `id` (by any stored session) or live
    /// `session_id`, or a message's `id`.
    #[error("{0} already exists")]
    Conflict(Entity),
    /// The session takes no new messages.
    #[error("session is inactive")]
    Inactive,
    /// SQLite refused or failed a statement.
    #[error("sqlite statement failed")]
    Sqlite(#[from] rusqlite::Error),
    /// Opening the database file failed.
    #[error("opening database {path}")]
    Open {
        /// The path given to `open`.
        path: String,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// `PRAGMA journal_mode=WAL` did not take (e.g. a file system without shared memory).
    #[error("could not switch the database to WAL mode (journal_mode is {0})")]
    NoWal(String),
    /// Applying schema migration number `version` failed.
    #[error("applying schema migration {version}")]
    Migrate {
        /// The schema version the migration leads to.
        version: usize,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer build with a schema this one does not know.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this build knows.
        supported: usize,
    },
    /// Stored metadata is not a JSON object.
    #[error("stored metadata is not a JSON object")]
    Json(#[from] serde_json::Error),
    /// A stored value cannot be decoded (a bad UUID, role or time).
    #[error("stored row is corrupt: {0}")]
    Corrupt(&'static str),
    /// The job's work was rolled back because its batch failed to commit.
    #[error("the write transaction failed")]
    Batch(#[source] Arc<SqliteError>),
    /// An earlier job's failure aborted the shared write transaction.
    #[error("the write transaction was aborted by SQLite")]
    TransactionAborted,
    /// The job panicked; its work was rolled back.
    #[error("a database job panicked")]
    JobPanicked,
    /// The connection thread is gone (the store was closed).
    #[error("the database connection thread has stopped")]
    Closed,
    /// Starting a connection thread failed.
    #[error("starting a database thread")]
    Thread(#[source] std::io::Error),
}

impl SqliteError {
    /// Whether the failure is SQLite being busy or locked by another connection:
    /// retryable, so reported as [`StoreError::Unavailable`].
    fn is_busy(&self) -> bool {
        match self {
            Self::Sqlite(e) | Self::Open { source: e, .. } => matches!(
                e.sqlite_error_code(),
                Some(ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked)
            ),
            Self::Batch(inner) => inner.is_busy(),
            _ => false,
        }
    }

    /// Whether the failure is a UNIQUE or PRIMARY KEY violation. The statements that
    /// can hit one map it to [`SqliteError::Conflict`] with their entity; one that
    /// escapes is a bug and reported as a backend error.
    pub(crate) fn is_unique_violation(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }
}

impl From<SqliteError> for StoreError {
    fn from(e: SqliteError) -> Self {
        match e {
            SqliteError::NotFound(entity) => Self::NotFound(entity),
            SqliteError::Conflict(entity) => Self::Conflict(entity),
            SqliteError::Inactive => Self::SessionInactive,
            e @ (SqliteError::Closed | SqliteError::Thread(_)) => Self::unavailable(e),
            e if e.is_busy() => Self::unavailable(e),
            e => Self::backend(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> SqliteError {
        SqliteError::Sqlite(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None))
    }

    #[test]
    fn busy_and_locked_are_unavailable() {
        assert!(matches!(
            StoreError::from(failure(ffi::SQLITE_BUSY)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(failure(ffi::SQLITE_LOCKED)),
            StoreError::Unavailable(_)
        ));
        let batch = SqliteError::Batch(Arc::new(failure(ffi::SQLITE_BUSY)));
        assert!(matches!(
            StoreError::from(batch),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn unique_violations_are_recognised_but_only_mapped_with_an_entity() {
        assert!(failure(ffi::SQLITE_CONSTRAINT_UNIQUE).is_unique_violation());
        assert!(failure(ffi::SQLITE_CONSTRAINT_PRIMARYKEY).is_unique_violation());
        assert!(!failure(ffi::SQLITE_CONSTRAINT_FOREIGNKEY).is_unique_violation());
        // One that no statement mapped to its entity is a bug, not a client conflict.
        assert!(matches!(
            StoreError::from(failure(ffi::SQLITE_CONSTRAINT_UNIQUE)),
            StoreError::Backend(_)
        ));
        assert!(matches!(
            StoreError::from(failure(ffi::SQLITE_CONSTRAINT_FOREIGNKEY)),
            StoreError::Backend(_)
        ));
    }

    #[test]
    fn domain_outcomes_map_to_their_variants_with_the_entity() {
        for entity in [Entity::Session, Entity::Message] {
            assert!(matches!(
                StoreError::from(SqliteError::NotFound(entity)),
                StoreError::NotFound(e) if e == entity
            ));
            assert!(matches!(
                StoreError::from(SqliteError::Conflict(entity)),
                StoreError::Conflict(e) if e == entity
            ));
        }
        assert!(matches!(
            StoreError::from(SqliteError::Inactive),
            StoreError::SessionInactive
        ));
        assert!(matches!(
            StoreError::from(SqliteError::Closed),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(SqliteError::Corrupt("bad uuid")),
            StoreError::Backend(_)
        ));
    }
}
