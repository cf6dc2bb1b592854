//! # colloquy-http
//!
//! The HTTP/SSE transport of Colloquy on bare hyper 1.x (HTTP/1.1 and HTTP/2): every
//! endpoint of the API contract as JSON, the chat stream as server-sent events, CORS,
//! health and readiness checks, a request id and a `tracing` span per request, and
//! graceful shutdown. It only speaks HTTP: every rule of the API lives in
//! [`colloquy_core::ChatService`] and [`colloquy_core::validate`]; the one HTTP-specific
//! decision, which status an error code gets, is [`status_for`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use colloquy_core::{ChatService, EchoModel, ServiceConfig, SystemClock};
//! use colloquy_core::ports::ChatStore;
//! use colloquy_http::{serve, HttpConfig};
//!
//! async fn run(store: Arc<dyn ChatStore>) -> std::io::Result<()> {
//!     let service = ChatService::builder(store, Arc::new(SystemClock))
//!         .model(Arc::new(EchoModel::new()))
//!         .config(ServiceConfig::default())
//!         .build();
//!     let config = HttpConfig::default(); // 127.0.0.1:8080, 1 MiB bodies, ...
//!     let listener = tokio::net::TcpListener::bind(config.bind).await?;
//!     let ctrl_c = async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     };
//!     serve(listener, service, config, ctrl_c).await; // returns after a graceful shutdown
//!     Ok(())
//! }
//! ```
//!
//! To mount the API in a server of your own (axum, hyper, anything speaking
//! `tower::Service` or `hyper::service::Service`), build an [`Api`]: see its docs
//! for the base path, the optional service endpoints, and what the embedder owns.
//! [`sse_response`] and [`error_response`] let handlers of your own that call
//! [`ChatService`] answer in the API's exact wire format. Runnable examples are the
//! `colloquy-examples` crate (`examples/` in the repository).
//!
//! # Behaviour where the API contract is silent
//! - **Bodies**: an empty body counts as `{}` whatever its content type (so
//!   `POST /sessions/` with no body works); a non-empty body must be
//!   `application/json` or `application/*+json` (parameters ignored), otherwise 415.
//!   Checks run in this order: 413 (size, from `Content-Length` or while reading),
//!   415, 400 `invalid_json` (also for JSON that is not an object), then the fields.
//! - **Routing**: an unknown path is 404 with code `not_found`; a known path with
//!   another method is 405 with `Allow`. `HEAD` works wherever `GET` only reads (not
//!   on the chat stream, which writes). `OPTIONS` on a known route is 204 with
//!   `Allow` (and the CORS preflight headers for an allowed origin, see [`cors`]).
//!   Ids in paths are percent-decoded; a message id that is not a UUID is 404
//!   `message_not_found`.
//! - **Queries**: `application/x-www-form-urlencoded` (`+` is a space); a repeated
//!   parameter's last value wins, an empty one counts as absent, unknown ones are
//!   ignored; `limit` defaults to 100.
//! - **Errors**: JSON bodies are `application/json; charset=utf-8`; 503 and 429 carry
//!   `Retry-After: 1` ([`RETRY_AFTER_SECS`]); a 500 is always
//!   `{"error":"internal server error","code":"internal_error"}`, its cause logged
//!   with the request id. A panicking handler is such a 500.
//! - **Request ids**: an incoming `X-Request-Id` of 1..=128 characters of
//!   `A-Z a-z 0-9 - _ . : / + = @` is kept, anything else replaced by a UUID; the id
//!   is on the request's log span and in the response's `X-Request-Id`.
//! - **OpenAPI**: `GET /openapi.json` is the OpenAPI 3.1 document of every route
//!   ([`OPENAPI_JSON`]); tests keep it equal to the router's table and run its examples.
//! - **Metrics**: every response is counted by endpoint name and status in
//!   [`HttpConfig::metrics`]; [`serve_metrics`] serves them as Prometheus text on a
//!   listener of their own, and a store wrapped in core's
//!   [`ObservedStore`](colloquy_core::decorators::ObservedStore) with
//!   [`Metrics::store_observer`] adds store and model figures.
//! - **Health**: `GET /healthz` → 200 `{"status":"ok"}`; `GET /readyz` → 200
//!   `{"status":"ready"}`, or 503 `store_unavailable` whatever the store's failure.
//! - **SSE**: the `data` object's keys come in the order `chunk`, `done`,
//!   `message_id`, `response_id`, then `finish_reason` (on `done`) or `error` (on a
//!   failure, with no `finish_reason`). A model that fails before producing any text
//!   still gets a 200 stream with one event, `id: 0`, carrying the `error`: the
//!   stream starts before the model is asked. If a generation ended without a last
//!   event, the stream ends with `"error":"internal_error"`. The keep-alive is the
//!   comment line `: keep-alive` followed by a blank line.
//! - **Widget**: with [`HttpConfig::widget`] on (the default), `GET /widget.js` is
//!   the chat widget (`text/javascript`, `Cache-Control: public, max-age=300`) and
//!   `GET /widget/demo` and `GET /` its demo page (`text/html`, `no-cache`), both
//!   embedded in the binary, with a strong `ETag` and `304` for a matching
//!   `If-None-Match`. Turned off, those paths are 404.
//! - **Console**: with an admin token and [`HttpConfig::console`] on (the default),
//!   `GET /console/` is the operator's console and `/console/{file}` its script,
//!   style sheet and uPlot, embedded like the widget, each with a strict
//!   Content-Security-Policy, `X-Frame-Options: DENY` and `Referrer-Policy:
//!   no-referrer`. Without a token, or turned off, those paths are 404.
//! - **Shutdown**: the listener closes at once; connections drain while
//!   `ChatService::shutdown(grace)` waits for the generations, so both share one
//!   deadline (default 20 s); cancelled streams get 2 s more to send their last event.
//! - **Connections** ([`serve`]): at most `max_connections` at once (one over the cap
//!   is closed at once, without a response); a connection silent for
//!   `first_byte_timeout` after accept, an HTTP/1.1 request head not in within
//!   `header_read_timeout` (which also bounds an idle HTTP/1.1 keep-alive), and a
//!   connection with no request in flight for `idle_timeout` are closed; a request
//!   body not in within `body_read_timeout` is 408 `request_timeout`; HTTP/2 peers
//!   are pinged. Request heads over 8 KiB are refused by hyper with an empty 431.
//!   See [`HttpConfig`] for the defaults.
//! - **Percent-decoding**: a path or query parameter that is not UTF-8 once decoded
//!   (`%FF`) is 400 `invalid_field`.

mod accept;
mod app;
mod body;
mod caller;
mod config;
mod connection;
pub mod cors;
mod deadline;
mod error;
mod failed_auth;
mod failure_log;
mod first_byte;
mod handlers;
mod idempotency;
mod json;
mod link;
mod metrics;
mod mount;
mod openapi;
mod percent;
mod pipeline;
mod query;
mod request_id;
mod router;
mod server;
mod shares;
mod sse;
mod static_files;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use colloquy_core::ChatService;
use futures::future::BoxFuture;
use http_body_util::combinators::UnsyncBoxBody;

pub use caller::{limit_key, AdminToken, ClientIpHeader, ClientIpHeaderError, PeerAddr, WeakToken};
pub use config::HttpConfig;
pub use error::{error_response, status_for, RETRY_AFTER_SECS};
pub use metrics::{serve_metrics, Metrics, StoreMetrics};
pub use openapi::OPENAPI_JSON;
pub use server::serve;
pub use sse::response as sse_response;

/// The body of every response: a JSON document, nothing, or an SSE stream.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// A response of the API.
pub type Response = http::Response<ResponseBody>;

/// The API as a request handler, to serve it from a server of your own; [`serve`]
/// uses it. Cheap to clone (clones share everything).
///
/// It is a [`tower_service::Service`] (so axum's `Router::route_service` and
/// `fallback_service` take it) and a [`hyper::service::Service`] (so hyper's
/// `serve_connection` takes it), for requests with any body of [`Bytes`]; it never
/// fails (`Error = Infallible`). [`Api::handle`] is the same as an `async fn`.
///
/// ```no_run
/// use std::sync::Arc;
/// use colloquy_core::{ChatService, SystemClock};
/// use colloquy_http::{Api, HttpConfig};
/// # fn store() -> Arc<dyn colloquy_core::ports::ChatStore> { unimplemented!() }
///
/// let service = ChatService::builder(store(), Arc::new(SystemClock)).build();
/// let api = Api::new(service.clone(), HttpConfig::default())
///     .with_base_path("/support/api/chats") // POST /support/api/chats/sessions/ ...
///     .with_service_endpoints(false); // no /healthz, /readyz, widget: the app has its own
/// // axum:  Router::new().route("/hello", get(hello)).fallback_service(api)
/// // hyper: serve_connection(io, api) or api.handle(request).await in a service_fn
/// ```
///
/// # Where it answers
/// - The API's endpoints are under the **base path**, `/api/chats` by default
///   ([`Api::with_base_path`]): the path of each request is matched as it arrives,
///   so mount the `Api` where the request's path is left whole (axum's
///   `route_service`/`fallback_service`, not `nest_service`, which strips the
///   prefix) and give it the full base path. The `Link` headers of list responses
///   name the request's own path, so they work under any base path.
/// - The **service endpoints** `GET /healthz`, `GET /readyz`, `GET /openapi.json`
///   and the widget's `/widget.js`, `/widget/demo` and `/` are at the root and on
///   by default; turn them off with [`Api::with_service_endpoints`] when your app
///   has its own (then they are 404 like any unknown path).
/// - The **OpenAPI document** is also at `GET <base>/openapi.json`, always (with
///   the service endpoints off too). Both are rendered for the mount: its paths are
///   the ones this `Api` answers at (`/support/api/chats/sessions/` under that base;
///   `servers` is `/` since every path is written whole), without the service
///   endpoints when they are off. [`OPENAPI_JSON`] is the default mount's. The
///   widget calls `/api/chats/...` on its `data-api` origin, so it only works with
///   the default base path.
/// - Any other path is a JSON 404 `not_found`.
///
/// # What the embedder owns
/// [`Api::new`] takes an [`HttpConfig`] for what happens per request (body limit,
/// CORS, SSE keep-alive, access mode, admin token, trusted proxies, widget, console);
/// **`HttpConfig::bind` and `HttpConfig::shutdown_grace` are ignored** — they are
/// for [`serve`], and when you serve, these are yours:
/// - **Binding the listener** and running the accept loop (with HTTP/1.1 and, if
///   you want, HTTP/2).
/// - **`TCP_NODELAY`** on accepted sockets (`TcpStream::set_nodelay(true)` on each
///   accepted stream; with axum 0.8, accept through a listener that sets it, as
///   `examples/src/bin/axum-mount.rs` does): each SSE event is a small write that
///   must leave at once, not wait for Nagle's algorithm.
/// - **Graceful shutdown**: stop accepting, let requests and streams drain, and
///   call [`ChatService::shutdown`]`(grace)` so running generations finish (or are
///   cancelled after `grace` and stored with `finish_reason = "cancelled"`) before
///   the process exits; otherwise answers in flight are lost.
/// - **The client's address**: insert [`PeerAddr`] (the connection's peer) into
///   each request's extensions before calling the `Api`; without it per-IP rate
///   limits do not apply (a request without an address is not counted per IP).
///   `Forwarded`/`X-Forwarded-For` are honoured from [`HttpConfig::trusted_proxies`]
///   only, as in [`serve`].
/// - Timeouts and connection limits of your server.
///
/// The accept loop with all of these, on hyper (examples/ has axum's):
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use colloquy_core::{ChatService, SystemClock};
/// use colloquy_http::{Api, HttpConfig, PeerAddr};
/// use hyper_util::rt::{TokioExecutor, TokioIo};
/// use hyper_util::server::conn::auto;
/// use hyper_util::server::graceful::GracefulShutdown;
/// # fn store() -> Arc<dyn colloquy_core::ports::ChatStore> { unimplemented!() }
///
/// # async fn run() -> std::io::Result<()> {
/// const GRACE: Duration = Duration::from_secs(20);
/// let service = ChatService::builder(store(), Arc::new(SystemClock)).build();
/// let api = Api::new(service.clone(), HttpConfig::default());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let graceful = GracefulShutdown::new();
/// let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
/// loop {
///     let (stream, peer) = tokio::select! {
///         accepted = listener.accept() => accepted?,
///         _ = &mut ctrl_c => break,
///     };
///     stream.set_nodelay(true)?; // each SSE event leaves at once
///     let api = api.clone();
///     let handler = hyper::service::service_fn(move |mut request| {
///         request.extensions_mut().insert(PeerAddr(peer)); // per-IP rate limits
///         let api = api.clone();
///         async move { Ok::<_, std::convert::Infallible>(api.handle(request).await) }
///     });
///     let connection = auto::Builder::new(TokioExecutor::new())
///         .serve_connection(TokioIo::new(stream), handler)
///         .into_owned();
///     tokio::spawn(graceful.watch(connection));
/// }
/// // Shutdown order: stop accepting, then drain the connections while the answers
/// // in flight finish (or are cancelled and stored after GRACE), under one deadline.
/// drop(listener);
/// let drain = tokio::time::timeout(GRACE + Duration::from_secs(2), graceful.shutdown());
/// let (_, ()) = tokio::join!(drain, service.shutdown(GRACE));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Api {
    app: Arc<app::App>,
    mount: Arc<mount::Mount>,
}

impl Api {
    /// The API over `service`, with `config`'s per-request settings (see the type's
    /// docs: `bind` and `shutdown_grace` are not used here), its endpoints under
    /// `/api/chats` and the service endpoints on.
    ///
    /// [`HttpConfig::access`] defaults to [`AccessMode::Open`](colloquy_core::access::AccessMode::Open):
    /// every endpoint, listing and deleting any session included, is open to anyone
    /// who reaches the `Api`. An `Api` built in that mode logs a warning (once per
    /// process); set `AccessMode::Public` when the internet reaches it.
    #[must_use]
    pub fn new(service: ChatService, config: HttpConfig) -> Self {
        if config.access == colloquy_core::access::AccessMode::Open {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "the API's access mode is open: anyone who reaches it may read, change \
                     and delete every session (set HttpConfig::access to AccessMode::Public \
                     for the internet)"
                );
            });
        }
        Self {
            app: Arc::new(app::App::new(service, config)),
            mount: Arc::new(mount::Mount::default()),
        }
    }

    /// Serves the API's endpoints under `base` instead of `/api/chats`: with
    /// `"/support/api/chats"`, `POST /support/api/chats/sessions/` creates a session
    /// and `/api/chats/...` is 404. A trailing slash is ignored, a missing leading one
    /// added; `"/"` (or `""`) puts the endpoints at the root (`/sessions/`). The path
    /// is compared as it arrives (not percent-decoded).
    #[must_use]
    pub fn with_base_path(mut self, base: &str) -> Self {
        self.mount = Arc::new(self.mount.as_ref().clone().with_base(base));
        self
    }

    /// Whether to serve the service endpoints — `/healthz`, `/readyz` and the
    /// widget's files (these also need [`HttpConfig::widget`]) — at the root.
    /// Default `true`; with `false` they are 404.
    #[must_use]
    pub fn with_service_endpoints(mut self, on: bool) -> Self {
        self.mount = Arc::new(self.mount.as_ref().clone().with_service_endpoints(on));
        self
    }

    /// The base path of the API's endpoints, without a trailing slash (`""` at the
    /// root).
    #[must_use]
    pub fn base_path(&self) -> &str {
        self.mount.base()
    }

    /// Answers one request. Never fails: every error, a panicking handler included,
    /// is a JSON error response (a 500's cause is logged, never returned).
    pub async fn handle<B>(&self, request: http::Request<B>) -> Response
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        self.app.handle(request, &self.mount).await
    }
}

impl<B> tower_service::Service<http::Request<B>> for Api
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    /// Always ready: the `Api` has no back-pressure of its own.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let api = self.clone();
        Box::pin(async move { Ok(api.handle(request).await) })
    }
}

impl<B> hyper::service::Service<http::Request<B>> for Api
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn call(&self, request: http::Request<B>) -> Self::Future {
        let api = self.clone();
        Box::pin(async move { Ok(api.handle(request).await) })
    }
}
