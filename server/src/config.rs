//! The command line: every setting as a `--flag` and a `COLLOQUY_*` variable, and
//! how they become the service's and the transport's configuration.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::{RangedU64ValueParser, TypedValueParser};
use clap::{ArgAction, Parser, Subcommand};
use colloquy_core::access::AccessMode;
use colloquy_core::budget::TokenPolicy;
use colloquy_core::ratelimit::{Quota, QuotaError, RatePolicy};
use colloquy_core::stats::{ModelPrice, ModelPriceError};
use colloquy_core::validate::Limits;
use colloquy_core::{HandoffConfig, Retention, ServiceConfig};
use colloquy_http::{AdminToken, ClientIpHeader, HttpConfig};
use ipnet::IpNet;

use crate::duration;
use crate::ingest::IngestArgs;
use crate::knowledge::KnowledgeArgs;
use crate::logging::LogFormat;
use crate::model::ModelSpec;
use crate::openai::OpenAiArgs;
use crate::store::{self, PostgresOptions, StoreOptions, StoreSpec, StreamLogPlace};

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
    #[arg(long, env = "COLLOQUY_STORE", default_value = crate::store::DEFAULT_STORE,
          value_parser = StoreParser)]
    pub(crate) store: StoreSpec,

    /// With a Redis store: prepended to every key, so several applications (or
    /// several independent deployments) share one Redis. Instances that should see the
    /// same data use the same prefix. Must not contain `{` or `}`.
    #[arg(long, env = "COLLOQUY_REDIS_PREFIX", default_value = store::DEFAULT_REDIS_PREFIX)]
    pub(crate) redis_prefix: String,

    /// With a PostgreSQL store: connections in the pool.
    #[arg(long, env = "COLLOQUY_POSTGRES_POOL_SIZE", default_value_t = colloquy_postgres::PostgresConfig::DEFAULT_POOL_SIZE,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) postgres_pool_size: usize,

    /// With a PostgreSQL store: longest a statement may run; past it the request
    /// answers 503 `store_unavailable` instead of hanging. `0` turns it off.
    #[arg(long, env = "COLLOQUY_POSTGRES_STATEMENT_TIMEOUT", default_value = "5s", value_parser = duration::parse)]
    pub(crate) postgres_statement_timeout: Duration,

    /// With a PostgreSQL store: do not migrate the schema at start-up, only check that
    /// it is the version this build expects (for operators who migrate separately).
    #[arg(long, env = "COLLOQUY_POSTGRES_NO_MIGRATE")]
    pub(crate) postgres_no_migrate: bool,

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

    /// Who may do what. `open`: every endpoint open to anyone (the seed's behaviour).
    /// `public`: for the internet — a visitor reaches only the sessions whose
    /// generated id (or UUID) they hold; listing sessions, chosen session_ids,
    /// system/assistant messages and most PATCHes need --admin-token; rate limits are
    /// on by default. Default: `open` when --bind is a loopback address; on any other
    /// address the server refuses to start until --access is given.
    #[arg(long, env = "COLLOQUY_ACCESS")]
    pub(crate) access: Option<AccessMode>,

    /// The operator's token: `Authorization: Bearer <token>` unlocks every endpoint
    /// in every mode and is never rate limited. At least 32 characters, with at
    /// least 12 distinct ones from two classes (`openssl rand -hex 32`); a weaker
    /// token is refused at start. Prefer the environment variable: command lines
    /// are visible to other users.
    #[arg(long, env = "COLLOQUY_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,

    /// Reverse proxies (CIDRs, comma-separated, e.g. `10.0.0.0/8,127.0.0.1/32`) whose
    /// --client-ip-header names the client for per-IP limits. From any other peer
    /// forwarding headers are ignored.
    #[arg(long, env = "COLLOQUY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub(crate) trusted_proxies: Vec<IpNet>,

    /// The one header a trusted proxy names the client in: `x-forwarded-for` (nginx,
    /// AWS and most load balancers; the default), `forwarded` (RFC 7239) or
    /// `x-real-ip`. Any other forwarding header a client sends is ignored.
    #[arg(
        long,
        env = "COLLOQUY_CLIENT_IP_HEADER",
        default_value = "x-forwarded-for"
    )]
    pub(crate) client_ip_header: ClientIpHeader,

    /// IPv6 clients are counted per network of this prefix length for rate limits
    /// and per-IP caps (one host usually holds a whole /64); 128 counts each address.
    #[arg(long, env = "COLLOQUY_IPV6_PREFIX", default_value_t = 64,
          value_parser = clap::value_parser!(u8).range(1..=128))]
    pub(crate) ipv6_prefix: u8,

    /// Failed authentications (a wrong `Authorization`) per client IP, in this
    /// process; beyond, 429. `off` for none. Default 10/min in every mode.
    #[arg(long, env = "COLLOQUY_RATE_FAILED_AUTH", value_parser = parse_limit)]
    pub(crate) rate_failed_auth: Option<Limit>,

    /// Requests per client IP, as COUNT/PERIOD (`300/min`); `off` for none.
    /// Default with --access public: 300/min; open: off.
    #[arg(long, env = "COLLOQUY_RATE_REQUESTS", value_parser = parse_limit)]
    pub(crate) rate_requests: Option<Limit>,

    /// Chat turns per client IP (public default 30/min).
    #[arg(long, env = "COLLOQUY_RATE_CHATS", value_parser = parse_limit)]
    pub(crate) rate_chats: Option<Limit>,

    /// Session creations per client IP (public default 20/hour).
    #[arg(long, env = "COLLOQUY_RATE_SESSIONS", value_parser = parse_limit)]
    pub(crate) rate_sessions: Option<Limit>,

    /// Chat turns per session (public default 10/min).
    #[arg(long, env = "COLLOQUY_RATE_SESSION_CHATS", value_parser = parse_limit)]
    pub(crate) rate_session_chats: Option<Limit>,

    /// The deployment's token budget, as TOKENS/PERIOD (`2000000/day`): prompt and
    /// completion tokens of every answer, in fixed windows (a `/day` is a UTC day),
    /// shared by every instance on one Redis. Spent: chat answers 503
    /// `budget_exhausted` until the window ends. `off` (default) for none.
    #[arg(long, env = "COLLOQUY_TOKEN_BUDGET", value_parser = parse_limit)]
    pub(crate) token_budget: Option<Limit>,

    /// Tokens per client IP, as TOKENS/PERIOD (`50000/hour`); spent: 429
    /// `rate_limited` (policy `tokens-per-ip`). `off` (default) for none.
    #[arg(long, env = "COLLOQUY_RATE_TOKENS_PER_IP", value_parser = parse_limit)]
    pub(crate) rate_tokens_per_ip: Option<Limit>,

    /// Tokens per session, as TOKENS/PERIOD (`20000/day`); spent: 429
    /// `rate_limited` (policy `tokens-per-session`). `off` (default) for none.
    #[arg(long, env = "COLLOQUY_RATE_TOKENS_PER_SESSION", value_parser = parse_limit)]
    pub(crate) rate_tokens_per_session: Option<Limit>,

    /// The model's price as IN/OUT, per million prompt (input) and completion
    /// (output) tokens (`0.15/0.60`), for `cost` in GET /api/chats/stats/ (null
    /// when unset).
    #[arg(long, env = "COLLOQUY_MODEL_PRICE", value_parser = parse_price)]
    pub(crate) model_price: Option<ModelPrice>,

    /// Most messages stored in one session (a chat stores two), counted over
    /// --max-session-ttl; `off` for no cap (public default 1000).
    #[arg(long, env = "COLLOQUY_MAX_SESSION_MESSAGES", value_parser = parse_cap)]
    pub(crate) max_session_messages: Option<Cap>,

    /// Most answers generated at once by this instance; beyond, chat answers 503
    /// `busy` at once instead of queueing. `0` for no limit (public default 64).
    #[arg(long, env = "COLLOQUY_MAX_GENERATIONS")]
    pub(crate) max_generations: Option<usize>,

    /// Most answers generated at once for one client address (IPv6: one /64), a
    /// share of --max-generations; beyond, 503 `busy`. `0` for no share (public
    /// default 8).
    #[arg(long, env = "COLLOQUY_MAX_GENERATIONS_PER_IP")]
    pub(crate) max_generations_per_ip: Option<usize>,

    /// Most answers generated at once in one session; beyond, 503 `busy`. `0` for
    /// no share (public default 2).
    #[arg(long, env = "COLLOQUY_MAX_GENERATIONS_PER_SESSION")]
    pub(crate) max_generations_per_session: Option<usize>,

    /// The longest a session may live: a later `expires_at` is refused with 400.
    #[arg(long, env = "COLLOQUY_MAX_SESSION_TTL", default_value = "30d", value_parser = duration::parse)]
    pub(crate) max_session_ttl: Duration,

    /// How long the events of a finished answer stay in the stream log, so a client
    /// that lost its connection resumes it event by event; after that a resume
    /// replays the stored answer.
    #[arg(long, env = "COLLOQUY_STREAM_LOG_TTL", default_value = "60s", value_parser = duration::parse)]
    pub(crate) stream_log_ttl: Duration,

    /// Where the log of running answers lives: `store` shares it through a Redis
    /// store, so any instance resumes and cancels any stream (other stores keep it in
    /// the process); `local` keeps it in this process whatever the store — only for a
    /// single instance, where it saves Redis a round trip per streamed chunk.
    #[arg(long, env = "COLLOQUY_STREAM_LOG", value_enum, default_value_t = StreamLogPlace::Store)]
    pub(crate) stream_log: StreamLogPlace,

    /// Human handoff: how long a visitor's request for a person waits for an
    /// operator's reply; then the model answers again and a notice
    /// (--handoff-timeout-message) tells the visitor. `0`: wait for ever.
    #[arg(long, env = "COLLOQUY_HANDOFF_TIMEOUT", default_value = "5m", value_parser = duration::parse)]
    pub(crate) handoff_timeout: Duration,

    /// The text of the assistant message (`metadata.notice = "handoff_timeout"`)
    /// stored when a handoff request times out.
    #[arg(long, env = "COLLOQUY_HANDOFF_TIMEOUT_MESSAGE",
          default_value = colloquy_core::DEFAULT_HANDOFF_TIMEOUT_MESSAGE)]
    pub(crate) handoff_timeout_message: String,

    /// Serve the chat widget: the script at /widget.js (embed it with
    /// `<script src="https://YOUR-SERVER/widget.js" defer></script>`) and a demo page
    /// using it at /widget/demo and /. On by default; `--widget false`,
    /// `--no-widget` or `COLLOQUY_WIDGET=false` turn it off (those paths are then 404).
    #[arg(long, env = "COLLOQUY_WIDGET", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub(crate) widget: bool,

    /// Do not serve the chat widget and its demo page; wins over --widget and
    /// COLLOQUY_WIDGET.
    #[arg(long)]
    pub(crate) no_widget: bool,

    /// Do not serve the operator's console at /console/. Without this flag the
    /// console is served whenever --admin-token is set (it signs in with the token);
    /// without a token it never is (those paths are then 404).
    #[arg(long, env = "COLLOQUY_NO_CONSOLE")]
    pub(crate) no_console: bool,

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

    /// After --body-rate-grace, the least a request body must average in bytes per
    /// second; one that falls behind is answered 408 request_timeout. 0: off.
    #[arg(long, env = "COLLOQUY_MIN_BODY_RATE", default_value_t = HttpConfig::DEFAULT_MIN_BODY_RATE)]
    pub(crate) min_body_rate: u64,

    /// How long a request body may take before --min-body-rate applies.
    #[arg(long, env = "COLLOQUY_BODY_RATE_GRACE", default_value = "5s", value_parser = duration::parse)]
    pub(crate) body_rate_grace: Duration,

    /// How long a response (SSE streams included) may make no progress because the
    /// client reads nothing; then the connection is closed (the answer is still
    /// stored).
    #[arg(long, env = "COLLOQUY_WRITE_TIMEOUT", default_value = "30s", value_parser = duration::parse)]
    pub(crate) write_timeout: Duration,

    /// Most connections open at once from one client address (IPv6: one /64;
    /// --trusted-proxies exempt); another one is closed at once.
    #[arg(long, env = "COLLOQUY_MAX_CONNECTIONS_PER_IP", default_value_t = HttpConfig::DEFAULT_MAX_CONNECTIONS_PER_IP,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_connections_per_ip: usize,

    /// Most resumed streams of one response open at once; one more is 429
    /// too_many_streams.
    #[arg(long, env = "COLLOQUY_MAX_RESUMES_PER_RESPONSE", default_value_t = HttpConfig::DEFAULT_MAX_RESUMES_PER_RESPONSE,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_resumes_per_response: usize,

    /// Most resumed streams open at once for one client address (IPv6: one /64);
    /// one more is 429 too_many_streams.
    #[arg(long, env = "COLLOQUY_MAX_RESUMES_PER_IP", default_value_t = HttpConfig::DEFAULT_MAX_RESUMES_PER_IP,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_resumes_per_ip: usize,

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

    /// Most log lines written per second; the lines over it are dropped and counted,
    /// and the count is written (one line) at the start of the next second a line is
    /// written in. `0` for no bound. With access lines' paths cut to 256 bytes this
    /// bounds the log's volume (about 1 MB/s at the default).
    #[arg(long, env = "COLLOQUY_LOG_MAX_LINES_PER_SEC", default_value_t = 2000)]
    pub(crate) log_max_lines_per_sec: u32,

    /// Serve Prometheus metrics (`GET /metrics`) on this address, IP:PORT; off by
    /// default. Keep it private (loopback, or a network only the monitoring system
    /// reaches): the figures describe the traffic and are not for visitors.
    #[arg(long, env = "COLLOQUY_METRICS_BIND")]
    pub(crate) metrics_bind: Option<SocketAddr>,

    /// The `--webhook*` flags.
    #[command(flatten)]
    pub(crate) webhooks: crate::webhooks::WebhookArgs,

    /// Check the server running on --bind instead of starting one: `GET /healthz`,
    /// exit 0 on a 200 within 5 s, 1 otherwise (a container's HEALTHCHECK).
    #[arg(long)]
    pub(crate) healthcheck: bool,
}

/// The commands besides serving.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum Command {
    /// Read documents into a knowledge base for --knowledge.
    Ingest(IngestArgs),
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
    /// A non-loopback bind address without an explicit access mode.
    #[error("--bind {0} is not a loopback address: say who may use it with --access public (for the internet: visitors reach only their own sessions, rate limits on) or --access open (every endpoint open to anyone, as on loopback)")]
    AccessRequired(SocketAddr),
    /// An admin token that is too short.
    #[error("--admin-token: {0}")]
    AdminToken(#[from] colloquy_http::WeakToken),
    /// The session TTL is longer than the cap.
    #[error("--session-ttl must not exceed --max-session-ttl")]
    TtlOverCap,
    /// The purge interval is zero.
    #[error("--purge-interval must be more than 0")]
    PurgeInterval,
    /// A connection timeout is zero.
    #[error("--{0} must be more than 0")]
    ZeroTimeout(&'static str),
    /// The handoff timeout notice is empty or too long.
    #[error("--handoff-timeout-message must be 1 to {0} bytes")]
    HandoffMessage(usize),
}

/// `--max-generations` with `--access public` when not given.
const DEFAULT_PUBLIC_MAX_GENERATIONS: usize = 64;
/// `--max-generations-per-ip` in public mode when not set: an eighth of the slots.
const DEFAULT_PUBLIC_MAX_GENERATIONS_PER_IP: usize = 8;
/// `--max-generations-per-session` in public mode when not set.
const DEFAULT_PUBLIC_MAX_GENERATIONS_PER_SESSION: usize = 2;

/// A rate-limit flag: a quota, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// No limit.
    Off,
    /// This quota.
    Quota(Quota),
}

fn parse_price(s: &str) -> Result<ModelPrice, ModelPriceError> {
    s.parse()
}

fn parse_limit(s: &str) -> Result<Limit, QuotaError> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(Limit::Off);
    }
    s.parse().map(Limit::Quota)
}

/// `--max-session-messages`: a count of at least 1, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cap {
    /// No cap.
    Off,
    /// At most this many.
    Count(u32),
}

/// A `--max-session-messages` that is neither a positive count nor `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cap {0:?}: use a count of at least 1, or off")]
pub(crate) struct CapError(String);

fn parse_cap(s: &str) -> Result<Cap, CapError> {
    match s.trim() {
        off if off.eq_ignore_ascii_case("off") => Ok(Cap::Off),
        n => match n.parse::<u32>() {
            Ok(count) if count > 0 => Ok(Cap::Count(count)),
            _ => Err(CapError(s.to_owned())),
        },
    }
}

/// Sessions may not live longer than this.
const MAX_SESSION_TTL: Duration = Duration::from_secs(100 * 365 * 86_400);

impl Cli {
    /// The service's configuration.
    /// The handoff settings: `--handoff-timeout` (`0`: never) and its notice.
    pub(crate) fn handoff_config(&self) -> Result<HandoffConfig, ConfigError> {
        let max = ServiceConfig::default().limits.max_message_bytes;
        let message = self.handoff_timeout_message.trim();
        if message.is_empty() || message.len() > max {
            return Err(ConfigError::HandoffMessage(max));
        }
        Ok(HandoffConfig {
            timeout: (!self.handoff_timeout.is_zero()).then_some(self.handoff_timeout),
            timeout_message: message.to_owned(),
        })
    }

    pub(crate) fn service_config(&self) -> Result<ServiceConfig, ConfigError> {
        if self.session_ttl.is_zero() || self.session_ttl > MAX_SESSION_TTL {
            return Err(ConfigError::SessionTtl);
        }
        let session_ttl =
            chrono::Duration::from_std(self.session_ttl).map_err(|_| ConfigError::SessionTtl)?;
        if self.purge_interval.is_zero() {
            return Err(ConfigError::PurgeInterval);
        }
        let max_session_ttl = chrono::Duration::from_std(self.max_session_ttl)
            .map_err(|_| ConfigError::SessionTtl)?;
        if session_ttl > max_session_ttl {
            return Err(ConfigError::TtlOverCap);
        }
        let public = self.access_mode()? == AccessMode::Public;
        let max_generations = match self.max_generations {
            Some(0) => None,
            Some(n) => Some(n),
            None => public.then_some(DEFAULT_PUBLIC_MAX_GENERATIONS),
        };
        let share = |flag: Option<usize>, public_default: usize| match flag {
            Some(0) => None,
            Some(n) => Some(n),
            None => public.then_some(public_default),
        };
        let defaults = ServiceConfig::default();
        Ok(ServiceConfig {
            session_ttl,
            max_session_ttl,
            max_generations,
            max_generations_per_client: share(
                self.max_generations_per_ip,
                DEFAULT_PUBLIC_MAX_GENERATIONS_PER_IP,
            ),
            max_generations_per_session: share(
                self.max_generations_per_session,
                DEFAULT_PUBLIC_MAX_GENERATIONS_PER_SESSION,
            ),
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
            stream_log_ttl: self.stream_log_ttl,
            stream_log: self.stream_log,
            postgres: PostgresOptions {
                pool_size: self.postgres_pool_size,
                statement_timeout: self.postgres_statement_timeout,
                no_migrate: self.postgres_no_migrate,
            },
            session_ttl: self.session_ttl,
        }
    }

    /// The access mode: as given, or `open` on a loopback bind address.
    pub(crate) fn access_mode(&self) -> Result<AccessMode, ConfigError> {
        match self.access {
            Some(mode) => Ok(mode),
            None if self.bind.ip().is_loopback() => Ok(AccessMode::Open),
            None => Err(ConfigError::AccessRequired(self.bind)),
        }
    }

    /// The rate limits: the flags, over the mode's defaults.
    pub(crate) fn rate_policy(&self) -> Result<RatePolicy, ConfigError> {
        let defaults = match self.access_mode()? {
            AccessMode::Public => RatePolicy::public_defaults(self.max_session_ttl),
            AccessMode::Open => RatePolicy::default(),
        };
        let pick = |flag: Option<Limit>, default: Option<Quota>| match flag {
            Some(Limit::Off) => None,
            Some(Limit::Quota(q)) => Some(q),
            None => default,
        };
        Ok(RatePolicy {
            requests_per_ip: pick(self.rate_requests, defaults.requests_per_ip),
            chats_per_ip: pick(self.rate_chats, defaults.chats_per_ip),
            sessions_per_ip: pick(self.rate_sessions, defaults.sessions_per_ip),
            chats_per_session: pick(self.rate_session_chats, defaults.chats_per_session),
            messages_per_session: match self.max_session_messages {
                Some(Cap::Off) => None,
                Some(Cap::Count(count)) => Some(Quota {
                    count,
                    period: self.max_session_ttl,
                }),
                None => defaults.messages_per_session,
            },
        })
    }

    /// The token budgets: the flags; none by default in every mode.
    pub(crate) fn token_policy(&self) -> TokenPolicy {
        let pick = |flag: Option<Limit>| match flag {
            Some(Limit::Quota(q)) => Some(q),
            Some(Limit::Off) | None => None,
        };
        TokenPolicy {
            deployment: pick(self.token_budget),
            per_ip: pick(self.rate_tokens_per_ip),
            per_session: pick(self.rate_tokens_per_session),
        }
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
            ("write-timeout", self.write_timeout),
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
            access: self.access_mode()?,
            admin_token: self.admin_token.clone().map(AdminToken::new).transpose()?,
            trusted_proxies: self.trusted_proxies.clone(),
            client_ip_header: self.client_ip_header,
            ipv6_prefix: self.ipv6_prefix,
            failed_auth_quota: match self.rate_failed_auth {
                None => Some(HttpConfig::DEFAULT_FAILED_AUTH_QUOTA),
                Some(Limit::Off) => None,
                Some(Limit::Quota(q)) => Some(q),
            },
            widget: self.widget && !self.no_widget,
            console: !self.no_console,
            max_connections: self.max_connections,
            first_byte_timeout: self.first_byte_timeout,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            idle_timeout: self.idle_timeout,
            min_body_rate: self.min_body_rate,
            body_rate_grace: self.body_rate_grace,
            write_timeout: self.write_timeout,
            max_connections_per_ip: self.max_connections_per_ip,
            max_resumes_per_response: self.max_resumes_per_response,
            max_resumes_per_ip: self.max_resumes_per_ip,
            max_event_streams_per_ip: HttpConfig::DEFAULT_MAX_EVENT_STREAMS_PER_IP,
            max_event_streams_per_session: HttpConfig::DEFAULT_MAX_EVENT_STREAMS_PER_SESSION,
            http2_keep_alive_interval: self.http2_keep_alive_interval,
            http2_keep_alive_timeout: self.http2_keep_alive_timeout,
            metrics: colloquy_http::Metrics::default(),
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
    fn handoff_flags() {
        let default = parse(&[]).handoff_config().expect("valid");
        assert_eq!(default, HandoffConfig::default());
        assert_eq!(default.timeout, Some(Duration::from_secs(300)));
        let off = parse(&["--handoff-timeout", "0"])
            .handoff_config()
            .expect("valid");
        assert_eq!(off.timeout, None, "0 waits for ever");
        let custom = parse(&[
            "--handoff-timeout",
            "90s",
            "--handoff-timeout-message",
            " Leave your email, we will write back. ",
        ])
        .handoff_config()
        .expect("valid");
        assert_eq!(custom.timeout, Some(Duration::from_secs(90)));
        assert_eq!(
            custom.timeout_message,
            "Leave your email, we will write back."
        );
        assert!(matches!(
            parse(&["--handoff-timeout-message", "  "]).handoff_config(),
            Err(ConfigError::HandoffMessage(_))
        ));
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
            HttpConfig {
                // A registry equals only itself: compare the settings.
                metrics: http.metrics.clone(),
                ..HttpConfig::default()
            }
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
                ..StoreOptions::default()
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
            "--access",
            "open",
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
            "--client-ip-header",
            "forwarded",
            "--ipv6-prefix",
            "56",
            "--rate-failed-auth",
            "3/min",
        ]);
        let http = cli.http_config().expect("valid");
        assert_eq!(http.client_ip_header, ClientIpHeader::Forwarded);
        assert_eq!(http.ipv6_prefix, 56);
        assert_eq!(
            http.failed_auth_quota,
            Some("3/min".parse().expect("quota"))
        );
        let defaults = parse(&[]).http_config().expect("valid");
        assert_eq!(defaults.client_ip_header, ClientIpHeader::XForwardedFor);
        assert_eq!(defaults.ipv6_prefix, 64);
        assert_eq!(
            defaults.failed_auth_quota,
            Some(HttpConfig::DEFAULT_FAILED_AUTH_QUOTA)
        );
        assert_eq!(
            parse(&["--rate-failed-auth", "off"])
                .http_config()
                .expect("valid")
                .failed_auth_quota,
            None
        );
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
    fn the_widget_is_on_unless_turned_off() {
        for (args, on) in [
            (&[][..], true),
            (&["--widget"], true),
            (&["--widget", "true"], true),
            (&["--widget=false"], false),
            (&["--widget", "false"], false),
            (&["--no-widget"], false),
            (&["--no-widget", "--widget"], false),
            (&["--widget", "--no-widget"], false),
        ] {
            assert_eq!(
                parse(args).http_config().expect("valid").widget,
                on,
                "{args:?}"
            );
        }
        let bad = ["colloquy", "--widget", "maybe"];
        assert!(Cli::try_parse_from(bad).is_err());
    }

    #[test]
    fn the_console_is_on_unless_turned_off() {
        assert!(parse(&[]).http_config().expect("valid").console);
        assert!(
            !parse(&["--no-console"])
                .http_config()
                .expect("valid")
                .console
        );
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
            &["--client-ip-header", "true-client-ip"],
            &["--ipv6-prefix", "129"],
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
        for weak in ["short", "s3cret-s3cret-s3c", &"x".repeat(40)] {
            assert_eq!(
                parse(&["--admin-token", weak]).http_config(),
                Err(ConfigError::AdminToken(colloquy_http::WeakToken)),
                "{weak}"
            );
        }
        assert_eq!(
            parse(&["--session-ttl", "40d"]).service_config(),
            Err(ConfigError::TtlOverCap)
        );
    }

    #[test]
    fn access_defaults_to_open_on_loopback_and_must_be_said_elsewhere() {
        assert_eq!(parse(&[]).access_mode(), Ok(AccessMode::Open));
        assert_eq!(
            parse(&["--bind", "[::1]:8080"]).access_mode(),
            Ok(AccessMode::Open)
        );
        let exposed = parse(&["--bind", "0.0.0.0:8080"]);
        let refused = exposed.http_config().expect_err("no --access on 0.0.0.0");
        assert!(refused.to_string().contains("--access public"), "{refused}");
        assert!(exposed.rate_policy().is_err());
        let public = parse(&["--bind", "0.0.0.0:8080", "--access", "public"]);
        assert_eq!(
            public.http_config().map(|c| c.access),
            Ok(AccessMode::Public)
        );
    }

    #[test]
    fn limits_are_on_in_public_mode_and_off_in_open_mode_unless_set() {
        assert!(parse(&[]).rate_policy().expect("valid").is_unlimited());
        assert_eq!(
            parse(&[]).service_config().map(|c| c.max_generations),
            Ok(None)
        );
        let public = parse(&["--access", "public"]);
        let policy = public.rate_policy().expect("valid");
        assert_eq!(
            policy,
            RatePolicy::public_defaults(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            public.service_config().map(|c| c.max_generations),
            Ok(Some(DEFAULT_PUBLIC_MAX_GENERATIONS))
        );
        let tuned = parse(&[
            "--access",
            "public",
            "--rate-chats",
            "5/min",
            "--rate-requests",
            "off",
            "--max-session-messages",
            "50",
            "--max-generations",
            "0",
        ]);
        let policy = tuned.rate_policy().expect("valid");
        assert_eq!(
            policy.chats_per_ip.map(|q| q.to_string()),
            Some("5/min".to_owned())
        );
        assert_eq!(policy.requests_per_ip, None);
        assert_eq!(policy.messages_per_session.map(|q| q.count), Some(50));
        assert_eq!(tuned.service_config().map(|c| c.max_generations), Ok(None));
        let open = parse(&["--rate-chats", "10/min"])
            .rate_policy()
            .expect("valid");
        assert_eq!(open.chats_per_ip.map(|q| q.count), Some(10));
        assert_eq!(open.requests_per_ip, None);
    }
}
