//! The request pipeline around every handler: request id and span, routing, panic
//! containment, CORS headers, and one access-log line.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use bytes::Bytes;
use colloquy_core::access::{authorize, Caller, Operation};
use colloquy_core::ratelimit::Action;
use colloquy_core::{ChatService, ServiceError};
use futures::FutureExt;
use http::{header, HeaderValue, Request};
use tracing::Instrument;

use crate::caller::Visitor;
use crate::config::HttpConfig;
use crate::cors::Cors;
use crate::error::ApiError;
use crate::mount::Mount;
use crate::static_files::Assets;
use crate::{handlers, request_id, router, Response};

/// Everything a request needs: the service, the settings, the CORS policy.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) service: ChatService,
    pub(crate) config: HttpConfig,
    pub(crate) cors: Cors,
    /// The widget's files with their ETags (computed once, here).
    pub(crate) assets: Assets,
    /// The caps on resumed streams open at once.
    pub(crate) resumes: crate::sse::ResumeShares,
}

/// The text of a panic payload, when it has one.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

impl App {
    /// Checks the access table for `operation`, then, for visitors, spends the rate
    /// limits of `action`. The operator (admin token) is never limited.
    pub(crate) async fn allow(
        &self,
        visitor: &Visitor,
        operation: Operation<'_>,
        action: Option<Action<'_>>,
    ) -> Result<(), ApiError> {
        authorize(self.config.access, visitor.caller, operation).map_err(ServiceError::from)?;
        if let (Caller::Visitor, Some(action)) = (visitor.caller, action) {
            if visitor.take_request_limit() {
                let both = [Action::Request, action];
                self.service.admit_all(visitor.ip, &both).await?;
            } else {
                self.service.admit(visitor.ip, action).await?;
            }
        }
        Ok(())
    }

    /// The app for `service` with `config`.
    pub(crate) fn new(service: ChatService, config: HttpConfig) -> Self {
        let cors = Cors::new(&config.cors_origins);
        let resumes = crate::sse::ResumeShares::new(
            config.max_resumes_per_response,
            config.max_resumes_per_ip,
        );
        Self {
            resumes,
            service,
            config,
            cors,
            assets: Assets::new(),
        }
    }

    /// Answers one request for the API mounted at `mount`. Never fails and never
    /// panics: every error, a panicking handler included, becomes a JSON error response.
    pub(crate) async fn handle<B>(&self, request: Request<B>, mount: &Mount) -> Response
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let id = request_id::from_headers(request.headers());
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            method = %request.method(),
            path = %request.uri().path(),
        );
        self.respond(request, id, mount).instrument(span).await
    }

    async fn respond<B>(&self, request: Request<B>, id: String, mount: &Mount) -> Response
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let origin = parts.headers.get(header::ORIGIN).cloned();
        // Routes by the canonical path; handlers keep the real URI (for links).
        let resolved = match mount.canonical(parts.uri.path()) {
            Some(path) => router::resolve_with_widget(&parts.method, &path, self.config.widget),
            None => Err(ApiError::no_route()),
        };
        let route = resolved
            .as_ref()
            .map_or("unmatched", router::Endpoint::name);
        let result = match resolved {
            Err(e) => Err(e),
            Ok(endpoint) => AssertUnwindSafe(handlers::dispatch(self, endpoint, parts, body))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    tracing::error!(panic = panic_message(&*panic), "handler panicked");
                    Err(ApiError::internal())
                }),
        };
        let mut response = result.unwrap_or_else(ApiError::into_response);
        self.cors.apply(origin.as_ref(), &mut response);
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(request_id::HEADER, value);
        }
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "served"
        );
        self.config
            .metrics
            .observe_request(route, response, started.elapsed())
    }
}
