//! The adapter's private error, mapped into the port's [`StoreError`].

use colloquy_core::{Entity, StoreError};
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// What can go wrong inside the adapter.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Contract outcome: the session or message is missing, expired or deleted.
    #[error("{0} not found")]
    NotFound(Entity),
    /// Contract outcome: the session's id or session_id, or the message's id, is taken.
    #[error("{0} already exists")]
    Conflict(Entity),
    /// Contract outcome: the session takes no new messages.
    #[error("session is inactive")]
    SessionInactive,
    /// Redis (or the way to it) failed.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// A stored value is not what this adapter writes.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A stored JSON value does not parse.
    #[error("stored JSON does not parse")]
    Json(#[from] serde_json::Error),
    /// A script answered something it never answers.
    #[error("unexpected script reply: {0}")]
    Reply(String),
}

impl Error {
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        Self::Corrupt(what.into())
    }
}

/// Whether a Redis error means "not reachable right now" (retryable) rather than
/// "answered something wrong".
pub(crate) fn is_unavailable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::TryAgain
                )
        )
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(entity) => StoreError::NotFound(entity),
            Error::Conflict(entity) => StoreError::Conflict(entity),
            Error::SessionInactive => StoreError::SessionInactive,
            Error::Redis(r) if is_unavailable(&r) => StoreError::unavailable(r),
            other => StoreError::backend(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable_and_others_backend() {
        let io = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(matches!(
            StoreError::from(Error::Redis(io)),
            StoreError::Unavailable(_)
        ));
        let parse = RedisError::from((ErrorKind::UnexpectedReturnType, "bad"));
        assert!(matches!(
            StoreError::from(Error::Redis(parse)),
            StoreError::Backend(_)
        ));
        assert!(matches!(
            StoreError::from(Error::corrupt("x")),
            StoreError::Backend(_)
        ));
        assert!(matches!(
            StoreError::from(Error::NotFound(Entity::Message)),
            StoreError::NotFound(Entity::Message)
        ));
    }
}
