//! [`HttpConfig`]: the transport's settings, a plain struct with documented defaults.

use std::net::SocketAddr;
use std::time::Duration;

use colloquy_core::access::AccessMode;
use colloquy_core::ratelimit::Quota;
use ipnet::IpNet;

use crate::caller::{AdminToken, ClientIpHeader};
use crate::metrics::Metrics;

/// Settings of the HTTP transport. Every field has a default (see [`HttpConfig::default`]);
/// the `colloquy` binary fills them from flags and `COLLOQUY_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where the server listens. Default `127.0.0.1:8080`. Used by callers that bind
    /// the listener themselves from the config; [`serve`](crate::serve) takes a bound
    /// listener, and [`Api::new`](crate::Api::new) ignores it.
    pub bind: SocketAddr,
    /// Largest request body in bytes; a larger one is answered 413 `payload_too_large`
    /// as soon as the excess is read (or at once, from `Content-Length`). Default 1 MiB.
    pub max_body_bytes: usize,
    /// Origins allowed to call the API from a browser (CORS), e.g.
    /// `https://landing.example`. `*` allows every origin. Default: none.
    pub cors_origins: Vec<String>,
    /// How long an SSE stream may stay silent before a `: keep-alive` comment is sent.
    /// Default 15 s.
    pub sse_keep_alive: Duration,
    /// On shutdown, how long requests and streams in flight may take to finish before
    /// the generations still running are cancelled (their partial answers are stored
    /// with `finish_reason = "cancelled"`). Default 20 s. Used by
    /// [`serve`](crate::serve); [`Api::new`](crate::Api::new) ignores it (an embedder
    /// calls `ChatService::shutdown(grace)` itself).
    pub shutdown_grace: Duration,
    /// Who may do what: [`AccessMode::Open`] (the default; every endpoint open) or
    /// [`AccessMode::Public`] (visitors reach only their own sessions). See
    /// [`colloquy_core::access`].
    pub access: AccessMode,
    /// The operator's token (`Authorization: Bearer ...`): unlocks every endpoint in
    /// every mode and bypasses rate limits. Default: none.
    pub admin_token: Option<AdminToken>,
    /// Reverse proxies whose [`client_ip_header`](Self::client_ip_header) names the
    /// client (for per-IP rate limits). Default: none, so the socket's peer is the
    /// client.
    pub trusted_proxies: Vec<IpNet>,
    /// The one header a trusted proxy names the client in; every other forwarding
    /// header is ignored. Default `X-Forwarded-For`.
    pub client_ip_header: ClientIpHeader,
    /// IPv6 clients are counted (rate limits, per-IP caps) per network of this prefix
    /// length: one host usually holds a whole /64. Default 64; 128 counts each address.
    pub ipv6_prefix: u8,
    /// Failed authentications (a wrong `Authorization`) per client address, counted in
    /// this process; over it the answer is 429. `None`: unlimited. Default 10/min.
    pub failed_auth_quota: Option<Quota>,
    /// Whether to serve the chat widget: `GET /widget.js`, and its demo page at
    /// `GET /widget/demo` and `GET /`. When off those paths are 404. Default on.
    pub widget: bool,
    /// Whether to serve the operator's console at `GET /console/` (and its files under
    /// `/console/`). It is served only when [`admin_token`](Self::admin_token) is set
    /// too (the console signs in with it); otherwise those paths are 404. Default on.
    pub console: bool,
    /// Most connections open at once. A connection accepted over the cap is closed at
    /// once, without a response, and the others are not affected. Default 10,000 (the
    /// `colloquy` binary lowers it to fit its open-files limit).
    pub max_connections: usize,
    /// How long a new connection may stay silent before its first byte; then it is
    /// closed without a response. Default 10 s.
    pub first_byte_timeout: Duration,
    /// HTTP/1.1: how long a request head (request line and headers) may take to
    /// arrive. hyper starts this timer whenever it waits for a request, so it also
    /// closes an idle keep-alive HTTP/1.1 connection. On expiry the connection is
    /// closed without a response. Default 10 s.
    pub header_read_timeout: Duration,
    /// How long a request body may take to arrive in full, counted from the end of
    /// its request head. On expiry the answer is 408 `request_timeout` and the
    /// connection is not reused. Default 30 s.
    pub body_read_timeout: Duration,
    /// After `body_rate_grace`, the least a request body must average, in bytes per
    /// second since its request head: one that falls behind is answered 408
    /// `request_timeout` at once (a body dripped a byte at a time holds a connection
    /// for seconds, not for the whole `body_read_timeout`). 0 turns the check off.
    /// Default 1024 (1 KiB/s).
    pub min_body_rate: u64,
    /// How long a request body may take before `min_body_rate` applies. Default 5 s.
    pub body_rate_grace: Duration,
    /// How long a response (an SSE stream included) may make no progress at all
    /// because the client reads nothing (its socket accepts no byte); then the
    /// connection is closed. A generation whose stream is closed runs on and stores
    /// its answer. Default 30 s.
    pub write_timeout: Duration,
    /// Most connections open at once from one client address (IPv6: one /64);
    /// another one is closed at once, without a response. Peers listed in
    /// `trusted_proxies` are exempt. Default 256.
    pub max_connections_per_ip: usize,
    /// Most resumes (`GET /messages/chat/stream/{response_id}/`, and `EventSource`
    /// reconnections) streaming one response at once; one more is answered 429
    /// `too_many_streams`. Default 16.
    pub max_resumes_per_response: usize,
    /// Most resumes streaming at once for one client address (IPv6: one /64); one
    /// more is answered 429 `too_many_streams`. Default 32.
    pub max_resumes_per_ip: usize,
    /// Most session event streams (`GET /sessions/{id}/events/`) open at once for
    /// one client address (IPv6: one /64); one more is answered 429
    /// `too_many_streams`. The operator's token is exempt. Default 32.
    pub max_event_streams_per_ip: usize,
    /// Most event streams of one session open at once (visitors); one more is
    /// answered 429 `too_many_streams`. Default 16.
    pub max_event_streams_per_session: usize,
    /// How long a connection may stay open with no request in flight (HTTP/1.1
    /// keep-alive, or HTTP/2 with no open stream); then it is closed gracefully
    /// (HTTP/2: `GOAWAY`). An open SSE stream is a request in flight. Default 60 s.
    pub idle_timeout: Duration,
    /// HTTP/2: how often a `PING` is sent to check that the peer is still there.
    /// Default 20 s.
    pub http2_keep_alive_interval: Duration,
    /// HTTP/2: how long a `PING` may go unanswered before the connection is closed.
    /// Default 20 s.
    pub http2_keep_alive_timeout: Duration,
    /// Where requests are counted (by endpoint and status) and timed; serve it with
    /// [`serve_metrics`](crate::serve_metrics). Default: a fresh registry.
    pub metrics: Metrics,
}

impl HttpConfig {
    /// The default `bind` address.
    pub const DEFAULT_BIND: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        8080,
    ));
    /// The default `max_body_bytes`: 1 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
    /// The default `sse_keep_alive`: 15 s.
    pub const DEFAULT_SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);
    /// The default `shutdown_grace`: 20 s.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
    /// The default `ipv6_prefix`: 64.
    pub const DEFAULT_IPV6_PREFIX: u8 = 64;
    /// The default `failed_auth_quota`: 10 per minute.
    pub const DEFAULT_FAILED_AUTH_QUOTA: Quota = Quota {
        count: 10,
        period: Duration::from_secs(60),
    };
    /// The default `max_connections`: 10,000.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    /// The default `first_byte_timeout`: 10 s.
    pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default `header_read_timeout`: 10 s.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default `body_read_timeout`: 30 s.
    pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default `min_body_rate`: 1 KiB/s.
    pub const DEFAULT_MIN_BODY_RATE: u64 = 1024;
    /// The default `body_rate_grace`: 5 s.
    pub const DEFAULT_BODY_RATE_GRACE: Duration = Duration::from_secs(5);
    /// The default `write_timeout`: 30 s.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default `max_connections_per_ip`: 256.
    pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
    /// The default `max_resumes_per_response`: 16.
    pub const DEFAULT_MAX_RESUMES_PER_RESPONSE: usize = 16;
    /// The default `max_resumes_per_ip`: 32.
    pub const DEFAULT_MAX_RESUMES_PER_IP: usize = 32;
    /// The default `max_event_streams_per_ip`: 32.
    pub const DEFAULT_MAX_EVENT_STREAMS_PER_IP: usize = 32;
    /// The default `max_event_streams_per_session`: 16.
    pub const DEFAULT_MAX_EVENT_STREAMS_PER_SESSION: usize = 16;
    /// The default `idle_timeout`: 60 s.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// The default `http2_keep_alive_interval`: 20 s.
    pub const DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
    /// The default `http2_keep_alive_timeout`: 20 s.
    pub const DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: Self::DEFAULT_BIND,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            cors_origins: Vec::new(),
            sse_keep_alive: Self::DEFAULT_SSE_KEEP_ALIVE,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            access: AccessMode::Open,
            admin_token: None,
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::default(),
            ipv6_prefix: Self::DEFAULT_IPV6_PREFIX,
            failed_auth_quota: Some(Self::DEFAULT_FAILED_AUTH_QUOTA),
            widget: true,
            console: true,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            first_byte_timeout: Self::DEFAULT_FIRST_BYTE_TIMEOUT,
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: Self::DEFAULT_BODY_READ_TIMEOUT,
            min_body_rate: Self::DEFAULT_MIN_BODY_RATE,
            body_rate_grace: Self::DEFAULT_BODY_RATE_GRACE,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
            max_connections_per_ip: Self::DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_resumes_per_response: Self::DEFAULT_MAX_RESUMES_PER_RESPONSE,
            max_resumes_per_ip: Self::DEFAULT_MAX_RESUMES_PER_IP,
            max_event_streams_per_ip: Self::DEFAULT_MAX_EVENT_STREAMS_PER_IP,
            max_event_streams_per_session: Self::DEFAULT_MAX_EVENT_STREAMS_PER_SESSION,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            http2_keep_alive_interval: Self::DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL,
            http2_keep_alive_timeout: Self::DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT,
            metrics: Metrics::default(),
        }
    }
}
