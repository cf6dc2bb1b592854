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
//!     let service = ChatService::new(
//!         store,
//!         Arc::new(EchoModel::new()),
//!         Arc::new(SystemClock),
//!         ServiceConfig::default(),
//!     );
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
//! To mount the API in a hyper server of your own, call [`Api::handle`] from your
//! service function.
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
//! - **Shutdown**: the listener closes at once; connections drain while
//!   `ChatService::shutdown(grace)` waits for the generations, so both share one
//!   deadline (default 20 s); cancelled streams get 2 s more to send their last event.
//! - **Limits not enforced here**: request headers must arrive within 30 s (hyper's
//!   default); there is no body read timeout and no connection cap — put a reverse
//!   proxy in front for those.

mod app;
mod body;
mod caller;
mod config;
pub mod cors;
mod error;
mod failure_log;
mod handlers;
mod idempotency;
mod json;
mod link;
mod query;
mod request_id;
mod router;
mod server;
mod sse;
mod static_files;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use colloquy_core::ChatService;
use http_body_util::combinators::UnsyncBoxBody;

pub use caller::{AdminToken, PeerAddr, WeakToken};
pub use config::HttpConfig;
pub use error::{status_for, RETRY_AFTER_SECS};
pub use server::serve;

/// The body of every response: a JSON document, nothing, or an SSE stream.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// A response of the API.
pub type Response = http::Response<ResponseBody>;

/// The API as a request handler, for serving it from your own hyper setup; [`serve`]
/// uses it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Api {
    app: Arc<app::App>,
}

impl Api {
    /// The API over `service`, with `config`'s body limit, CORS origins and SSE
    /// keep-alive interval.
    #[must_use]
    pub fn new(service: ChatService, config: HttpConfig) -> Self {
        Self {
            app: Arc::new(app::App::new(service, config)),
        }
    }

    /// Answers one request. Never fails: every error, a panicking handler included,
    /// is a JSON error response (a 500's cause is logged, never returned).
    pub async fn handle<B>(&self, request: http::Request<B>) -> Response
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        self.app.handle(request).await
    }
}
