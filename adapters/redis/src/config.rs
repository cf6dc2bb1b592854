//! Settings of a [`RedisStore`](crate::RedisStore) and the errors of connecting.

use std::time::Duration;

/// How the store talks to Redis. A plain struct with defaults; fill what you need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Prepended to every key, so several applications (or test runs) share one
    /// Redis. Must not contain `{` or `}` (they would break the cluster hash tags).
    pub prefix: String,
    /// How long one attempt to connect may take.
    pub connect_timeout: Duration,
    /// How long Redis may take to answer one request before it fails as unavailable.
    pub response_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            prefix: "colloquy:".to_owned(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
        }
    }
}

impl RedisConfig {
    /// The default settings with this key prefix.
    #[must_use]
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }
}

/// Why a store could not be built.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The key prefix contains `{` or `}`.
    #[error("invalid key prefix {0:?}: it must not contain '{{' or '}}'")]
    InvalidPrefix(String),
    /// No cluster node was given.
    #[error("no Redis Cluster node given")]
    NoNodes,
    /// The URL is invalid or Redis could not be reached.
    #[error("cannot connect to Redis")]
    Redis(#[from] redis::RedisError),
}
