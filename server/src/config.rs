//! The command line: every setting as a `--flag` and a `COLLOQUY_*` variable, and
//! how they become the service's and the transport's configuration.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Parser, Subcommand};
use colloquy_core::validate::Limits;
use colloquy_core::{Retention, ServiceConfig};
use colloquy_http::HttpConfig;

use crate::duration;
use crate::ingest::IngestArgs;
use crate::knowledge::KnowledgeArgs;
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
///
/// `colloquy ingest --knowledge sqlite:PATH FILE_OR_DIR...` fills a knowledge base
/// for --knowledge; with no command, colloquy serves.
#[derive(Debug, Clone, Parser)]
#[command(name = "colloquy", version, about, long_about)]
pub(crate) struct Cli {
    /// What to do instead of serving.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

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
    #[arg(long, env = "COLLOQUY_STORE", default_value = crate::store::DEFAULT_STORE)]
    pub(crate) store: StoreSpec,

    /// With a Redis store: prepended to every key, so several applications (or
    /// several independent deployments) share one Redis. Instances that should see the
    /// same data use the same prefix. Must not contain `{` or `}`.
    #[arg(long, env = "COLLOQUY_REDIS_PREFIX", default_value = store::DEFAULT_REDIS_PREFIX)]
    pub(crate) redis_prefix: String,

    /// How long an expired session and its messages stay stored (invisible to the
    /// API from the moment they expire) before they are deleted: `0` (the default)
    /// deletes them at the next purge, a duration such as `90d` keeps transcripts that
    /// long, `forever` never deletes them. With Redis it sets each key's expiry.
    #[arg(long, env = "COLLOQUY_RETENTION", default_value = "0", value_parser = duration::parse_retention)]
    pub(crate) retention: Retention,

    /// How often expired sessions past their retention are deleted from the store
    /// (SQLite, PostgreSQL, memory; Redis expires its keys by itself).
    #[arg(long, alias = "sqlite-purge-interval", env = "COLLOQUY_PURGE_INTERVAL",
          default_value = "10m", value_parser = duration::parse)]
    pub(crate) purge_interval: Duration,

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

    /// Answers from your documents.
    #[command(flatten)]
    pub(crate) knowledge: KnowledgeArgs,

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

    /// Log line format, written to stderr.
    #[arg(long, env = "COLLOQUY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// Which log lines to write: a level (`error`, `warn`, `info`, `debug`, `trace`) or
    /// per-crate directives such as `colloquy_http=debug,info`.
    #[arg(long, env = "COLLOQUY_LOG_LEVEL", default_value = "info")]
    pub(crate) log_level: String,
}

/// The commands besides serving.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum Command {
    /// Read documents into a knowledge base for --knowledge.
    Ingest(IngestArgs),
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
    /// The purge interval is zero.
    #[error("--purge-interval must be more than 0")]
    PurgeInterval,
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
        if self.purge_interval.is_zero() {
            return Err(ConfigError::PurgeInterval);
        }
        Ok(ServiceConfig {
            session_ttl,
            retention: self.retention,
            limits: Limits {
                max_message_bytes: self.max_message_bytes,
                ..defaults.limits
            },
            ..defaults
        })
    }

    /// The store settings that are not part of `--store`.
    pub(crate) fn store_options(&self) -> StoreOptions {
        StoreOptions {
            redis_prefix: self.redis_prefix.clone(),
            retention: self.retention,
        }
    }

    /// The transport's configuration.
    pub(crate) fn http_config(&self) -> Result<HttpConfig, ConfigError> {
        if self.sse_keep_alive.is_zero() {
            return Err(ConfigError::KeepAlive);
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
        assert_eq!(cli.store_options(), StoreOptions::default());
        assert_eq!(cli.purge_interval, Duration::from_secs(600));
        assert!(cli.command.is_none(), "no subcommand: serve");
        assert_eq!(cli.knowledge.knowledge, None);
        assert_eq!(
            cli.knowledge.config(),
            colloquy_core::KnowledgeConfig::default()
        );
    }

    #[test]
    fn ingest_is_a_subcommand_and_serving_flags_still_parse() {
        let cli = parse(&[
            "--log-level",
            "warn",
            "ingest",
            "--knowledge",
            "sqlite:kb.db",
            "--prune",
            "--embeddings-base-url",
            "http://127.0.0.1:9/v1",
            "docs",
            "faq.md",
        ]);
        let Some(Command::Ingest(ingest)) = cli.command else {
            panic!("ingest expected");
        };
        assert_eq!(ingest.knowledge.to_string(), "sqlite:kb.db");
        assert_eq!(ingest.paths.len(), 2);
        assert!(ingest.prune);
        assert_eq!(
            ingest.embeddings.embeddings_base_url.as_deref(),
            Some("http://127.0.0.1:9/v1")
        );
        assert_eq!(cli.log_level, "warn");
        let serve = parse(&[
            "--knowledge",
            "sqlite:kb.db",
            "--knowledge-top-k",
            "3",
            "--knowledge-search",
            "bm25",
        ]);
        assert!(serve.command.is_none());
        assert_eq!(serve.knowledge.config().top_k, 3);
        for args in [
            &["ingest", "--knowledge", "sqlite:kb.db"][..],
            &["ingest", "docs"],
            &["--knowledge", "kb.db"],
            &["--knowledge-top-k", "0"],
        ] {
            let all = std::iter::once("colloquy").chain(args.iter().copied());
            assert!(Cli::try_parse_from(all).is_err(), "{args:?}");
        }
    }

    #[test]
    fn store_flags_reach_the_store_options() {
        let cli = parse(&[
            "--store",
            "redis://:pw@127.0.0.1:6380/1",
            "--redis-prefix",
            "app1:",
            "--retention",
            "forever",
            "--sqlite-purge-interval",
            "90s",
        ]);
        assert_eq!(cli.store.to_string(), "redis://:***@127.0.0.1:6380/1");
        assert_eq!(
            cli.store_options(),
            StoreOptions {
                redis_prefix: "app1:".to_owned(),
                retention: Retention::Forever,
            }
        );
        assert_eq!(
            cli.purge_interval,
            Duration::from_secs(90),
            "the old flag name still works"
        );
        assert_eq!(
            cli.service_config().map(|c| c.retention),
            Ok(Retention::Forever)
        );
        assert_eq!(
            parse(&["--purge-interval", "0"]).service_config(),
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
        let service = cli.service_config().expect("valid");
        assert_eq!(service.limits.max_message_bytes, 100);
        assert_eq!(service.session_ttl, chrono::Duration::minutes(30));
        assert_eq!(cli.log_format, LogFormat::Json);
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
    }
}
