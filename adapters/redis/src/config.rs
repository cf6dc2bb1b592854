//! Settings of a [`RedisStore`](crate::RedisStore) and the errors of connecting.

use std::time::Duration;

use colloquy_core::Retention;

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
    /// How long an expired session's keys stay in Redis (invisible) before Redis
    /// drops them: every key of a session expires at
    /// [`Retention::purge_at`]`(expires_at)`, and never for [`Retention::Forever`].
    /// Use the service's retention setting. Default: 0, dropped at expiry.
    pub retention: Retention,
    /// Redis Cluster only: how long past an append a message's pointer (the key that
    /// finds its session for `GET /messages/{id}`) first lives, before the append
    /// learns the session's real purge time. Set it to the service's session TTL:
    /// appends to sessions that expire later than this from now cost two more round
    /// trips (the pointer is extended first), and a longer value keeps pointers of
    /// finished sessions in memory longer. Standalone Redis ignores it. Default 24 h.
    pub pointer_ttl: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            prefix: "colloquy:".to_owned(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
            retention: Retention::default(),
            pointer_ttl: Duration::from_secs(24 * 60 * 60),
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

    /// These settings with this retention.
    #[must_use]
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
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
