//! The command line: every setting as a `--flag` and a `COLLOQUY_*` variable, and
//! how they become the service's and the transport's configuration.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::{RangedU64ValueParser, TypedValueParser};
use clap::Parser;
use colloquy_core::validate::Limits;
use colloquy_core::ServiceConfig;
use colloquy_http::HttpConfig;

use crate::duration;
use crate::logging::LogFormat;
use crate::model::ModelSpec;
use crate::openai::OpenAiArgs;
use crate::store::{self, StoreOptions, StoreSpec};

/// The Colloquy reference server: chat sessions, their messages, and chat with a
/// language model, over a JSON HTTP API with server-sent-event streaming.
///
/// Every option can also be set with the environment variable shown. Durations are
/// seconds (`30`) or a number with a unit: `500ms`, `30s`, `15m`, `24h`, `7d`.
/// SIGTERM or Ctrl-C shut down gracefully: no new connections, requests and streams
/// in flight finish (up to --shutdown-grace), every answer is stored.
#[derive(Debug, Clone, Parser)]
#[command(name = "colloquy", version, about, long_about)]
pub(crate) struct Cli {
    /// Address to listen on, IP:PORT (port 0 picks a free port; the address is printed
    /// on stdout as "colloquy listening on http://IP:PORT").
    #[arg(long, env = "COLLOQUY_BIND", default_value_t = HttpConfig::DEFAULT_BIND)]
    pub(crate) bind: SocketAddr,

    /// Where sessions and messages are kept.
    /// `sqlite:PATH`: a durable SQLite file, created if missing (default
    /// `sqlite:colloquy.db`, i.e. ./colloquy.db in the working directory).
    /// `memory`: in this process, lost on restart.
    /// `redis://[:PASSWORD@]HOST:PORT/DB` (or `rediss://`): a standalone Redis, which
    /// several colloquy instances can share.
    /// `redis-cluster://[:PASSWORD@]HOST:PORT,HOST:PORT,...`: a Redis Cluster, reached
    /// through any of the listed nodes.
    /// Passwords are never printed.
    #[arg(long, env = "COLLOQUY_STORE", default_value = crate::store::DEFAULT_STORE,
          value_parser = StoreParser)]
    pub(crate) store: StoreSpec,

    /// With a Redis store: prepended to every key, so several applications (or
    /// several independent deployments) share one Redis. Instances that should see the
    /// same data use the same prefix. Must not contain `{` or `}`.
    #[arg(long, env = "COLLOQUY_REDIS_PREFIX", default_value = store::DEFAULT_REDIS_PREFIX)]
    pub(crate) redis_prefix: String,

    /// With a SQLite store: how often expired sessions and their messages are deleted
    /// from the file (they are invisible from the moment they expire either way).
    #[arg(long, env = "COLLOQUY_SQLITE_PURGE_INTERVAL", default_value = "10m", value_parser = duration::parse)]
    pub(crate) sqlite_purge_interval: Duration,

    /// The language model. `echo`: answers "Echo: <message>", streamed word by word.
    /// `openai`: any OpenAI-compatible server (OpenAI, Ollama, vLLM, llama.cpp server,
    /// LM Studio, LiteLLM), set up with the --openai-* options below.
    #[arg(long, env = "COLLOQUY_MODEL", default_value = "echo")]
    pub(crate) model: ModelSpec,

    /// Settings of `--model openai`.
    #[command(flatten)]
    pub(crate) openai: OpenAiArgs,

    /// With `--model echo`: how long the echo model waits before each streamed chunk
    /// (demos of streaming, benchmarks of many slow streams). `0` streams at once.
    #[arg(long, env = "COLLOQUY_ECHO_CHUNK_DELAY", default_value = "0s", value_parser = duration::parse)]
    pub(crate) echo_chunk_delay: Duration,

    /// Browser origins allowed to call the API (CORS), comma-separated, e.g.
    /// `https://www.example.com,https://landing.example.com`; `*` allows any origin.
    /// Default: none (browsers on other origins are refused).
    #[arg(long, env = "COLLOQUY_CORS_ORIGINS", value_delimiter = ',')]
    pub(crate) cors_origins: Vec<String>,

    /// Largest request body in bytes; larger ones are refused with 413.
    #[arg(long, env = "COLLOQUY_MAX_BODY_BYTES", default_value_t = HttpConfig::DEFAULT_MAX_BODY_BYTES,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_body_bytes: usize,

    /// Largest message text in bytes (UTF-8); longer ones are refused with 400.
    #[arg(long, env = "COLLOQUY_MAX_MESSAGE_BYTES", default_value_t = Limits::default().max_message_bytes,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_message_bytes: usize,

    /// Lifetime of a session created without `expires_at`.
    #[arg(long, env = "COLLOQUY_SESSION_TTL", default_value = "24h", value_parser = duration::parse)]
    pub(crate) session_ttl: Duration,

    /// Silence after which an SSE stream gets a `: keep-alive` comment.
    #[arg(long, env = "COLLOQUY_SSE_KEEP_ALIVE", default_value = "15s", value_parser = duration::parse)]
    pub(crate) sse_keep_alive: Duration,

    /// On SIGTERM/Ctrl-C, how long requests and streams in flight may take to finish;
    /// generations still running then are cancelled and their partial answers stored.
    #[arg(long, env = "COLLOQUY_SHUTDOWN_GRACE", default_value = "20s", value_parser = duration::parse)]
    pub(crate) shutdown_grace: Duration,

    /// Most client connections open at once; one more is closed at once, without a
    /// response. Lowered at start-up to fit the open-files limit (the soft limit,
    /// which colloquy raises to the hard limit, less a reserve for the store and the
    /// model: a quarter of it, at least 64 and at most 4096).
    #[arg(long, env = "COLLOQUY_MAX_CONNECTIONS", default_value_t = HttpConfig::DEFAULT_MAX_CONNECTIONS,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_connections: usize,

    /// How long a new connection may stay silent before its first byte; then it is
    /// closed.
    #[arg(long, env = "COLLOQUY_FIRST_BYTE_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub(crate) first_byte_timeout: Duration,

    /// HTTP/1.1: how long a request's head (request line and headers) may take to
    /// arrive; also the longest wait for the next request on a keep-alive connection.
    /// Then the connection is closed.
    #[arg(long, env = "COLLOQUY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub(crate) header_read_timeout: Duration,

    /// How long a request body may take to arrive in full; then the answer is
    /// 408 `request_timeout`.
    #[arg(long, env = "COLLOQUY_BODY_READ_TIMEOUT", default_value = "30s", value_parser = duration::parse)]
    pub(crate) body_read_timeout: Duration,

    /// How long a connection may stay open with no request in flight (an open SSE
    /// stream is one); then it is closed (HTTP/2: GOAWAY).
    #[arg(long, env = "COLLOQUY_IDLE_TIMEOUT", default_value = "60s", value_parser = duration::parse)]
    pub(crate) idle_timeout: Duration,

    /// HTTP/2: interval between keep-alive PINGs.
    #[arg(long, env = "COLLOQUY_HTTP2_KEEP_ALIVE_INTERVAL", default_value = "20s", value_parser = duration::parse)]
    pub(crate) http2_keep_alive_interval: Duration,

    /// HTTP/2: how long a PING may go unanswered before the connection is closed.
    #[arg(long, env = "COLLOQUY_HTTP2_KEEP_ALIVE_TIMEOUT", default_value = "20s", value_parser = duration::parse)]
    pub(crate) http2_keep_alive_timeout: Duration,

    /// Log line format, written to stderr.
    #[arg(long, env = "COLLOQUY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// Which log lines to write: a level (`error`, `warn`, `info`, `debug`, `trace`) or
    /// per-crate directives such as `colloquy_http=debug,info`.
    #[arg(long, env = "COLLOQUY_LOG_LEVEL", default_value = "info")]
    pub(crate) log_level: String,
}

/// Parses `--store` like `StoreSpec::from_str`, but its error never quotes the value
/// as given (clap's usual message does): it may hold a password. The error's own
/// text shows the value with the password hidden.
#[derive(Debug, Clone, Copy)]
struct StoreParser;

impl TypedValueParser for StoreParser {
    type Value = StoreSpec;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<StoreSpec, clap::Error> {
        let invalid = |message: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for --store: {message}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| invalid("not UTF-8".to_owned()))?;
        text.parse()
            .map_err(|e: store::StoreSpecError| invalid(e.to_string()))
    }
}

/// A setting that is well-formed but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The session TTL is zero or too large.
    #[error("--session-ttl must be more than 0 and at most 100 years")]
    SessionTtl,
    /// The keep-alive interval is zero.
    #[error("--sse-keep-alive must be more than 0")]
    KeepAlive,
    /// The SQLite purge interval is zero.
    #[error("--sqlite-purge-interval must be more than 0")]
    PurgeInterval,
    /// A connection timeout is zero.
    #[error("--{0} must be more than 0")]
    ZeroTimeout(&'static str),
}

/// Sessions may not live longer than this.
const MAX_SESSION_TTL: Duration = Duration::from_secs(100 * 365 * 86_400);

impl Cli {
    /// The service's configuration.
    pub(crate) fn service_config(&self) -> Result<ServiceConfig, ConfigError> {
        if self.session_ttl.is_zero() || self.session_ttl > MAX_SESSION_TTL {
            return Err(ConfigError::SessionTtl);
        }
        let session_ttl =
            chrono::Duration::from_std(self.session_ttl).map_err(|_| ConfigError::SessionTtl)?;
        let defaults = ServiceConfig::default();
        Ok(ServiceConfig {
            session_ttl,
            limits: Limits {
                max_message_bytes: self.max_message_bytes,
                ..defaults.limits
            },
            ..defaults
        })
    }

    /// The store settings that are not part of `--store`.
    pub(crate) fn store_options(&self) -> Result<StoreOptions, ConfigError> {
        if self.sqlite_purge_interval.is_zero() {
            return Err(ConfigError::PurgeInterval);
        }
        Ok(StoreOptions {
            redis_prefix: self.redis_prefix.clone(),
            sqlite_purge_interval: self.sqlite_purge_interval,
        })
    }

    /// The transport's configuration.
    pub(crate) fn http_config(&self) -> Result<HttpConfig, ConfigError> {
        if self.sse_keep_alive.is_zero() {
            return Err(ConfigError::KeepAlive);
        }
        for (flag, timeout) in [
            ("first-byte-timeout", self.first_byte_timeout),
            ("header-read-timeout", self.header_read_timeout),
            ("body-read-timeout", self.body_read_timeout),
            ("idle-timeout", self.idle_timeout),
            ("http2-keep-alive-interval", self.http2_keep_alive_interval),
            ("http2-keep-alive-timeout", self.http2_keep_alive_timeout),
        ] {
            if timeout.is_zero() {
                return Err(ConfigError::ZeroTimeout(flag));
            }
        }
        Ok(HttpConfig {
            bind: self.bind,
            max_body_bytes: self.max_body_bytes,
            cors_origins: self
                .cors_origins
                .iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            sse_keep_alive: self.sse_keep_alive,
            shutdown_grace: self.shutdown_grace,
            max_connections: self.max_connections,
            first_byte_timeout: self.first_byte_timeout,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            idle_timeout: self.idle_timeout,
            http2_keep_alive_interval: self.http2_keep_alive_interval,
            http2_keep_alive_timeout: self.http2_keep_alive_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("colloquy").chain(args.iter().copied()))
            .expect("valid arguments")
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let cli = parse(&[]);
        let http = cli.http_config().expect("valid");
        assert_eq!(
            HttpConfig {
                shutdown_grace: Duration::from_secs(20),
                ..http.clone()
            },
            HttpConfig::default()
        );
        assert_eq!(http.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(
            cli.service_config().expect("valid"),
            ServiceConfig::default()
        );
        assert_eq!(
            cli.store,
            StoreSpec::Sqlite(std::path::PathBuf::from("colloquy.db"))
        );
        assert_eq!(cli.model, ModelSpec::Echo);
        assert_eq!(cli.echo_chunk_delay, Duration::ZERO);
        assert_eq!(cli.store_options().expect("valid"), StoreOptions::default());
    }

    #[test]
    fn store_flags_reach_the_store_options() {
        let cli = parse(&[
            "--store",
            "redis://:pw@127.0.0.1:6380/1",
            "--redis-prefix",
            "app1:",
            "--sqlite-purge-interval",
            "90s",
        ]);
        assert_eq!(cli.store.to_string(), "redis://:***@127.0.0.1:6380/1");
        assert_eq!(
            cli.store_options().expect("valid"),
            StoreOptions {
                redis_prefix: "app1:".to_owned(),
                sqlite_purge_interval: Duration::from_secs(90),
            }
        );
        assert_eq!(
            parse(&["--sqlite-purge-interval", "0"]).store_options(),
            Err(ConfigError::PurgeInterval)
        );
    }

    #[test]
    fn flags_reach_the_configs() {
        let cli = parse(&[
            "--bind",
            "0.0.0.0:9000",
            "--cors-origins",
            "https://a.example, https://b.example",
            "--max-body-bytes",
            "2048",
            "--max-message-bytes",
            "100",
            "--session-ttl",
            "30m",
            "--sse-keep-alive",
            "5s",
            "--shutdown-grace",
            "3s",
            "--log-format",
            "json",
            "--max-connections",
            "500",
            "--first-byte-timeout",
            "2s",
            "--header-read-timeout",
            "3s",
            "--body-read-timeout",
            "4s",
            "--idle-timeout",
            "5m",
            "--http2-keep-alive-interval",
            "6s",
            "--http2-keep-alive-timeout",
            "7s",
        ]);
        let http = cli.http_config().expect("valid");
        assert_eq!(http.bind.port(), 9000);
        assert_eq!(
            http.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(http.max_body_bytes, 2048);
        assert_eq!(http.sse_keep_alive, Duration::from_secs(5));
        assert_eq!(http.shutdown_grace, Duration::from_secs(3));
        assert_eq!(http.max_connections, 500);
        assert_eq!(http.first_byte_timeout, Duration::from_secs(2));
        assert_eq!(http.header_read_timeout, Duration::from_secs(3));
        assert_eq!(http.body_read_timeout, Duration::from_secs(4));
        assert_eq!(http.idle_timeout, Duration::from_secs(300));
        assert_eq!(http.http2_keep_alive_interval, Duration::from_secs(6));
        assert_eq!(http.http2_keep_alive_timeout, Duration::from_secs(7));
        let service = cli.service_config().expect("valid");
        assert_eq!(service.limits.max_message_bytes, 100);
        assert_eq!(service.session_ttl, chrono::Duration::minutes(30));
        assert_eq!(cli.log_format, LogFormat::Json);
    }

    #[test]
    fn an_invalid_store_is_refused_without_showing_its_password() {
        let e = Cli::try_parse_from(["colloquy", "--store", "redis://:s3cret@host:port/0"])
            .expect_err("no such port");
        let text = e.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("redis://:***@host:port/0"), "{text}");
    }

    #[test]
    fn unusable_values_are_refused() {
        for args in [
            &["--max-body-bytes", "0"][..],
            &["--store", "floppy"],
            &["--model", "oracle"],
            &["--session-ttl", "soon"],
            &["--log-format", "xml"],
            &["--bind", "nowhere"],
            &["--max-connections", "0"],
            &["--idle-timeout", "soon"],
        ] {
            let all = std::iter::once("colloquy").chain(args.iter().copied());
            assert!(Cli::try_parse_from(all).is_err(), "{args:?}");
        }
        assert_eq!(
            parse(&["--session-ttl", "0"]).service_config(),
            Err(ConfigError::SessionTtl)
        );
        assert_eq!(
            parse(&["--sse-keep-alive", "0"]).http_config(),
            Err(ConfigError::KeepAlive)
        );
        assert_eq!(
            parse(&["--body-read-timeout", "0s"]).http_config(),
            Err(ConfigError::ZeroTimeout("body-read-timeout"))
        );
    }
}
