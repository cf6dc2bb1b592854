//! `--store`: which store the server keeps sessions and messages in.
//!
//! A store is named by a short spec string, parsed into [`StoreSpec`] and opened by
//! [`StoreSpec::open`] with the store settings of the command line
//! ([`StoreOptions`]). To add a backend, add a variant, its spec syntax in
//! `from_str` (and in [`SUPPORTED`]), and its arm in `open`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use colloquy_core::idempotency::IdempotencyStore;
use colloquy_core::local::LocalRateLimiter;
use colloquy_core::ports::ChatStore;
use colloquy_core::ratelimit::RateLimiter;
use colloquy_core::streams::{StreamLog, DEFAULT_LEASE};
use colloquy_core::webhooks::{LocalWebhookOutbox, WebhookOutbox};
use colloquy_core::{Clock, Retention, StoreError};
use colloquy_memory::MemoryStore;
use colloquy_postgres::{PostgresConfig, PostgresStore};
use colloquy_redis::{ConnectError, RedisConfig, RedisStore};
use colloquy_sqlite::{Closed, SqliteStore};

use crate::redact::redact;

/// The spec forms `--store` accepts, for help and error messages.
pub(crate) const SUPPORTED: &str = "sqlite:PATH (default sqlite:colloquy.db), memory, \
     redis://[:PASSWORD@]HOST:PORT/DB (or rediss://), \
     redis-cluster://[:PASSWORD@]HOST:PORT,HOST:PORT,..., \
     postgres://USER:PASSWORD@HOST:PORT/DB (or postgresql://)";

/// The default `--store`: a SQLite file in the working directory.
pub(crate) const DEFAULT_STORE: &str = "sqlite:colloquy.db";

/// The default `--redis-prefix`.
pub(crate) const DEFAULT_REDIS_PREFIX: &str = "colloquy:";

/// A parsed `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreSpec {
    /// `sqlite:PATH`: one durable database file, created if missing.
    Sqlite(PathBuf),
    /// `memory`: in-process, lost on restart.
    Memory,
    /// `redis://…` or `rediss://…`: one standalone Redis, shared by every instance.
    Redis(SecretUrl),
    /// `redis-cluster://[:PASSWORD@]HOST:PORT,…`: a Redis Cluster, reached through any
    /// of these nodes. Each node is kept as a `redis://` URL.
    RedisCluster(Vec<SecretUrl>),
    /// `postgres://…` or `postgresql://…`: a PostgreSQL database, shared by every
    /// instance (libpq URL syntax; `sslmode=require` for TLS).
    Postgres(SecretUrl),
}

impl StoreSpec {
    /// The store's kind, as metrics label it: `sqlite`, `memory`, `redis`,
    /// `redis-cluster` or `postgres`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Memory => "memory",
            Self::Redis(_) => "redis",
            Self::RedisCluster(_) => "redis-cluster",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// A store URL. Its `Display` (used in every log line and error) hides the password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SecretUrl(String);

impl SecretUrl {
    /// The URL, password included: for connecting only, never for printing.
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({:?})", redact(&self.0))
    }
}

/// A `--store` value that names no supported store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown store {spec:?}; supported: {SUPPORTED}")]
pub(crate) struct StoreSpecError {
    /// The value, password redacted.
    spec: String,
}

/// `spec` parsed as a URL (by the `url` crate) whose scheme is one of `schemes`;
/// `with_host`: it must also name a host (a port, if given, is a valid `u16`: the
/// parser checks that).
fn parse_url(spec: &str, schemes: &[&str], with_host: bool) -> Option<url::Url> {
    let url = url::Url::parse(spec).ok()?;
    let named = url.host_str().is_some_and(|h| !h.is_empty());
    (schemes.contains(&url.scheme()) && (named || !with_host)).then_some(url)
}

impl FromStr for StoreSpec {
    type Err = StoreSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let unknown = || StoreSpecError { spec: redact(spec) };
        let spec = spec.trim();
        if spec == "memory" {
            return Ok(Self::Memory);
        }
        if spec == "sqlite" {
            return Ok(Self::Sqlite(PathBuf::from("colloquy.db")));
        }
        if let Some(path) = spec.strip_prefix("sqlite:") {
            return match path {
                "" => Err(unknown()),
                path => Ok(Self::Sqlite(PathBuf::from(path))),
            };
        }
        if let Some(rest) = spec.strip_prefix("redis-cluster://") {
            // Not one URL (a comma-separated host list): each node is parsed as
            // `redis://[userinfo@]node`, which must be a bare host and port.
            let (userinfo, nodes) = match rest.rsplit_once('@') {
                Some((userinfo, nodes)) => (format!("{userinfo}@"), nodes),
                None => (String::new(), rest),
            };
            let nodes = nodes
                .trim_end_matches('/')
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|node| {
                    let url = format!("redis://{userinfo}{node}");
                    match parse_url(&url, &["redis"], true) {
                        Some(parsed)
                            if parsed.path().is_empty()
                                && parsed.query().is_none()
                                && parsed.fragment().is_none() =>
                        {
                            Ok(SecretUrl(url))
                        }
                        _ => Err(unknown()),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            if nodes.is_empty() {
                return Err(unknown());
            }
            return Ok(Self::RedisCluster(nodes));
        }
        // libpq URL syntax; the host may be left to a `host=` parameter (a socket).
        if parse_url(spec, &["postgres", "postgresql"], false).is_some() {
            return Ok(Self::Postgres(SecretUrl(spec.to_owned())));
        }
        if parse_url(spec, &["redis", "rediss"], true).is_some() {
            return Ok(Self::Redis(SecretUrl(spec.to_owned())));
        }
        Err(unknown())
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Memory => f.write_str("memory"),
            Self::Redis(url) | Self::Postgres(url) => url.fmt(f),
            Self::RedisCluster(nodes) => {
                f.write_str("redis-cluster://")?;
                for (i, node) in nodes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    let shown = node.to_string();
                    f.write_str(shown.strip_prefix("redis://").unwrap_or(&shown))?;
                }
                Ok(())
            }
        }
    }
}

/// The settings of the stores that are not part of the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreOptions {
    /// Prepended to every Redis key (`--redis-prefix`).
    pub(crate) redis_prefix: String,
    /// How long expired sessions stay stored (`--retention`); Redis sets each key's
    /// expiry from it, the other stores are purged by the service.
    pub(crate) retention: Retention,
    /// How long a finished answer's events stay in the stream log (`--stream-log-ttl`).
    pub(crate) stream_log_ttl: Duration,
    /// Where the stream log lives (`--stream-log`).
    pub(crate) stream_log: StreamLogPlace,
    /// The `--postgres-*` settings.
    pub(crate) postgres: PostgresOptions,
    /// `--session-ttl`: on a Redis Cluster, how long message pointers are written to
    /// live (the store's `pointer_ttl`).
    pub(crate) session_ttl: Duration,
}

/// Where the stream log of running answers lives (`--stream-log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum StreamLogPlace {
    /// In the store when every instance on it can share it (Redis), so a stream
    /// resumes and cancels on any instance; in this process otherwise.
    #[default]
    Store,
    /// In this process, whatever the store: for a single instance, it saves the
    /// store a round trip per streamed chunk.
    Local,
}

/// The `--postgres-*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PostgresOptions {
    /// Connections in the pool.
    pub(crate) pool_size: usize,
    /// Longest a statement may run before it fails as unavailable (503).
    pub(crate) statement_timeout: Duration,
    /// Only check the schema version at start-up instead of migrating.
    pub(crate) no_migrate: bool,
}

impl StoreOptions {
    /// The Redis store's settings.
    pub(crate) fn redis_config(&self) -> RedisConfig {
        RedisConfig {
            retention: self.retention,
            pointer_ttl: self.session_ttl,
            ..RedisConfig::with_prefix(self.redis_prefix.clone())
        }
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: colloquy_postgres::PostgresConfig::DEFAULT_POOL_SIZE,
            statement_timeout: colloquy_postgres::PostgresConfig::DEFAULT_STATEMENT_TIMEOUT,
            no_migrate: false,
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            retention: Retention::default(),
            stream_log_ttl: Duration::from_secs(60),
            stream_log: StreamLogPlace::default(),
            postgres: PostgresOptions::default(),
            session_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// An opened store, and the rate limiter, stream log and idempotency store that go
/// with it.
pub(crate) struct OpenedStore {
    pub(crate) store: Arc<dyn ChatStore>,
    /// Shared by every instance on a Redis store; this process's own otherwise.
    pub(crate) limiter: Arc<dyn RateLimiter>,
    /// Shared by every instance on a Redis store; `None`: this process's own.
    pub(crate) stream_log: Option<Arc<dyn StreamLog>>,
    /// In the store (Redis, PostgreSQL: shared by every instance; SQLite: kept
    /// across restarts); `None` (memory): this process's own.
    pub(crate) idempotency: Option<Arc<dyn IdempotencyStore>>,
    /// Resolves once a SQLite store is dropped everywhere and its file closed.
    pub(crate) closed: Option<Closed>,
    /// The webhook outbox: in the store (SQLite, PostgreSQL, Redis), in this
    /// process for `memory`.
    pub(crate) outbox: Arc<dyn WebhookOutbox>,
}

impl OpenedStore {
    /// A store whose instances share no limiter: each process counts its own.
    fn local(store: impl ChatStore) -> Self {
        Self {
            store: Arc::new(store),
            limiter: Arc::new(LocalRateLimiter::new()),
            stream_log: None,
            idempotency: None,
            closed: None,
            outbox: Arc::new(LocalWebhookOutbox::new(Arc::new(
                colloquy_core::SystemClock,
            ))),
        }
    }

    /// A Redis store, with the rate limiter, stream log and idempotency store every
    /// instance on it shares.
    fn redis(store: RedisStore, options: &StoreOptions) -> Self {
        Self {
            limiter: Arc::new(store.rate_limiter()),
            stream_log: (options.stream_log == StreamLogPlace::Store).then(|| {
                Arc::new(store.stream_log(options.stream_log_ttl, DEFAULT_LEASE))
                    as Arc<dyn StreamLog>
            }),
            idempotency: Some(Arc::new(store.idempotency())),
            outbox: Arc::new(store.webhook_outbox()),
            ..Self::local(store)
        }
    }
}

/// A store that could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum OpenStoreError {
    /// The SQLite file could not be opened, created or migrated.
    #[error("opening the SQLite database failed")]
    Sqlite(#[source] StoreError),
    /// Redis was not reachable, refused the connection, or the prefix is invalid.
    #[error("connecting to Redis failed")]
    Redis(#[source] ConnectError),
    /// PostgreSQL was not reachable, refused us, or its schema could not be migrated.
    #[error("connecting to PostgreSQL failed")]
    Postgres(#[source] colloquy_postgres::ConnectError),
}

impl StoreSpec {
    /// Opens the store, judging expiry by `clock`.
    pub(crate) async fn open(
        &self,
        clock: Arc<dyn Clock>,
        options: &StoreOptions,
    ) -> Result<OpenedStore, OpenStoreError> {
        match self {
            Self::Sqlite(path) => {
                let store = SqliteStore::open(path, clock)
                    .await
                    .map_err(OpenStoreError::Sqlite)?;
                Ok(OpenedStore {
                    closed: Some(store.closed()),
                    idempotency: Some(Arc::new(store.idempotency())),
                    outbox: Arc::new(store.webhook_outbox()),
                    ..OpenedStore::local(store)
                })
            }
            Self::Memory => Ok(OpenedStore::local(MemoryStore::new(clock))),
            Self::Redis(url) => {
                let config = options.redis_config();
                let store = RedisStore::connect(url.secret(), &config, clock)
                    .await
                    .map_err(OpenStoreError::Redis)?;
                Ok(OpenedStore::redis(store, options))
            }
            Self::RedisCluster(nodes) => {
                let config = options.redis_config();
                let urls: Vec<&str> = nodes.iter().map(SecretUrl::secret).collect();
                let store = RedisStore::connect_cluster(&urls, &config, clock)
                    .await
                    .map_err(OpenStoreError::Redis)?;
                Ok(OpenedStore::redis(store, options))
            }
            Self::Postgres(url) => {
                let config = PostgresConfig {
                    no_migrate: options.postgres.no_migrate,
                    pool_size: options.postgres.pool_size,
                    statement_timeout: options.postgres.statement_timeout,
                    ..PostgresConfig::new(url.secret())
                };
                let store = PostgresStore::connect(config, clock)
                    .await
                    .map_err(OpenStoreError::Postgres)?;
                Ok(OpenedStore {
                    idempotency: Some(Arc::new(store.idempotency())),
                    outbox: Arc::new(store.webhook_outbox()),
                    ..OpenedStore::local(store)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }

    #[test]
    fn parses_known_specs_and_explains_unknown_ones() {
        assert_eq!("memory".parse(), Ok(StoreSpec::Memory));
        assert_eq!(StoreSpec::Memory.to_string(), "memory");
        assert_eq!(
            DEFAULT_STORE.parse(),
            Ok(StoreSpec::Sqlite(PathBuf::from("colloquy.db")))
        );
        assert_eq!(
            "sqlite:/var/lib/colloquy/chat.db"
                .parse::<StoreSpec>()
                .map(|s| s.to_string()),
            Ok("sqlite:/var/lib/colloquy/chat.db".to_owned())
        );
        assert_eq!(
            "sqlite".parse(),
            Ok(StoreSpec::Sqlite(PathBuf::from("colloquy.db")))
        );
        let pg: StoreSpec = "postgresql://app:s3cret@db.internal:5432/chat?sslmode=require"
            .parse()
            .expect("postgres");
        assert!(matches!(pg, StoreSpec::Postgres(_)));
        assert_eq!(
            pg.to_string(),
            "postgresql://app:***@db.internal:5432/chat?sslmode=require",
            "the password is never shown"
        );
        for socket in [
            "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres",
            "postgresql:///chat?host=/var/run/postgresql",
        ] {
            let spec: StoreSpec = socket.parse().expect(socket);
            assert_eq!(spec, StoreSpec::Postgres(SecretUrl(socket.to_owned())));
        }
        let e = "postgresql://app:s3cret@db:99999/chat"
            .parse::<StoreSpec>()
            .expect_err("no such port");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        for bad in [
            "mysql://x",
            "sqlite:",
            "floppy",
            "redis://",
            "redis://:pw@/0",
            "redis://:pw@host:notaport/0",
            "redis-cluster://",
            "redis-cluster://a:1,b:x",
            "redis-cluster://a:1/0",
            "redis-cluster://a:1?x=y",
            "postgres://h:notaport/db",
            "postgresql://app:s3cret@db:99999/chat",
            "postgres//h/db",
        ] {
            let e = bad.parse::<StoreSpec>().expect_err("unknown");
            assert!(e.to_string().contains(SUPPORTED), "{bad}");
        }
    }

    #[test]
    fn redis_specs_keep_the_url_and_hide_the_password() {
        let spec: StoreSpec = "redis://:s3cret@10.0.0.5:6379/2".parse().expect("valid");
        let StoreSpec::Redis(url) = &spec else {
            panic!("a redis spec: {spec:?}");
        };
        assert_eq!(url.secret(), "redis://:s3cret@10.0.0.5:6379/2");
        assert_eq!(spec.to_string(), "redis://:***@10.0.0.5:6379/2");
        assert!(!format!("{spec:?}").contains("s3cret"));

        let spec: StoreSpec = "rediss://app:s3cret@cache.example:6380/0"
            .parse()
            .expect("valid");
        assert_eq!(spec.to_string(), "rediss://app:***@cache.example:6380/0");

        for plain in [
            "redis://127.0.0.1:6379/0",
            "redis://localhost",
            "redis://[::1]:6379/0",
            "redis://[::1]/0",
        ] {
            let spec: StoreSpec = plain.parse().expect(plain);
            assert_eq!(spec.to_string(), plain);
        }

        let e = "redis://:s3cret@host:63790000/0"
            .parse::<StoreSpec>()
            .expect_err("no such port");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn cluster_specs_list_their_nodes() {
        let spec: StoreSpec = "redis-cluster://127.0.0.1:7001, 127.0.0.1:7002,127.0.0.1:7003"
            .parse()
            .expect("valid");
        let StoreSpec::RedisCluster(nodes) = &spec else {
            panic!("a cluster spec: {spec:?}");
        };
        let urls: Vec<&str> = nodes.iter().map(SecretUrl::secret).collect();
        assert_eq!(
            urls,
            [
                "redis://127.0.0.1:7001",
                "redis://127.0.0.1:7002",
                "redis://127.0.0.1:7003"
            ]
        );
        assert_eq!(
            spec.to_string(),
            "redis-cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
        );

        let spec: StoreSpec = "redis-cluster://:pw@h1:1,h2:2".parse().expect("valid");
        let StoreSpec::RedisCluster(nodes) = &spec else {
            panic!("a cluster spec: {spec:?}");
        };
        assert_eq!(nodes[1].secret(), "redis://:pw@h2:2");
        assert_eq!(spec.to_string(), "redis-cluster://:***@h1:1,:***@h2:2");
    }

    #[tokio::test]
    async fn memory_opens_and_answers() {
        let stores = StoreSpec::Memory
            .open(
                Arc::new(colloquy_core::SystemClock),
                &StoreOptions::default(),
            )
            .await
            .expect("memory opens");
        stores.store.ping().await.expect("memory answers");
        assert!(
            stores.idempotency.is_none(),
            "memory keeps Idempotency-Key results in the process"
        );
    }

    #[tokio::test]
    async fn sqlite_opens_answers_and_closes() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path();
        let spec = StoreSpec::Sqlite(dir.join("t.db"));
        let stores = spec
            .open(
                Arc::new(colloquy_core::SystemClock),
                &StoreOptions::default(),
            )
            .await
            .expect("sqlite opens");
        stores.store.ping().await.expect("sqlite answers");
        assert!(
            stores.idempotency.is_some(),
            "SQLite keeps Idempotency-Key results in its file"
        );
        let closed = stores.closed.clone().expect("sqlite reports its close");
        drop(stores);
        tokio::time::timeout(Duration::from_secs(10), closed.wait())
            .await
            .expect("closes once dropped");
        assert!(dir.join("t.db").is_file());
        assert!(!dir.join("t.db-wal").exists(), "closed and checkpointed");
    }

    #[tokio::test]
    async fn an_unopenable_sqlite_path_is_an_error_with_the_cause() {
        let spec = StoreSpec::Sqlite(PathBuf::from("/nonexistent-dir/colloquy.db"));
        let Err(e) = spec
            .open(
                Arc::new(colloquy_core::SystemClock),
                &StoreOptions::default(),
            )
            .await
        else {
            panic!("a missing directory cannot hold the database");
        };
        let chain = chain(&e);
        assert!(chain.contains("/nonexistent-dir/colloquy.db"), "{chain}");
    }

    #[tokio::test]
    async fn a_braced_redis_prefix_is_refused_before_connecting() {
        let spec: StoreSpec = "redis://127.0.0.1:1/0".parse().expect("valid");
        let options = StoreOptions {
            redis_prefix: "bad{tag}:".to_owned(),
            ..StoreOptions::default()
        };
        let Err(e) = spec
            .open(Arc::new(colloquy_core::SystemClock), &options)
            .await
        else {
            panic!("the prefix is invalid");
        };
        assert!(chain(&e).contains("bad{tag}:"), "{}", chain(&e));
    }
}
