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
//! use colloquy_core::ports::{MessageStore, SessionStore};
//! use colloquy_http::{serve, HttpConfig};
//!
//! async fn run<S: SessionStore + MessageStore>(store: Arc<S>) -> std::io::Result<()> {
//!     let service = ChatService::new(
//!         store.clone(),
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

mod app;
mod body;
mod config;
pub mod cors;
mod error;
mod handlers;
mod json;
mod query;
mod request_id;
mod router;
mod server;
mod sse;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use colloquy_core::ChatService;
use http_body_util::combinators::UnsyncBoxBody;

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
