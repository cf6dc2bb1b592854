//! What surrounds the pipeline ([`crate::pipeline`]) of every request: request id
//! and span, routing, panic containment, CORS and `nosniff` headers, and one
//! access-log line.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use bytes::Bytes;
use colloquy_core::ChatService;
use futures::FutureExt;
use http::{header, HeaderValue, Request};
use tracing::Instrument;

use crate::config::HttpConfig;
use crate::cors::Cors;
use crate::error::ApiError;
use crate::failed_auth::FailedAuth;
use crate::mount::Mount;
use crate::static_files::Assets;
use crate::{pipeline, request_id, router, Response};

/// `X-Content-Type-Options: nosniff`, on every response.
const NOSNIFF: (&str, &str) = ("x-content-type-options", "nosniff");

/// Everything a request needs: the service, the settings, the CORS policy.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) service: ChatService,
    pub(crate) config: HttpConfig,
    pub(crate) cors: Cors,
    /// The widget's files with their ETags (computed once, here).
    pub(crate) assets: Assets,
    /// Failed authentications per client address.
    pub(crate) failed_auth: FailedAuth,
    /// The caps on resumed streams open at once.
    pub(crate) resumes: crate::sse::ResumeShares,
    /// The caps on session event streams open at once.
    pub(crate) event_streams: crate::handlers::events::EventShares,
}

/// The text of a panic payload, when it has one.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

/// The longest path an access-log line carries, in bytes; a longer one is cut (at a
/// character boundary) and marked with `...`, so a client's path cannot make a line
/// long.
pub(crate) const MAX_LOGGED_PATH_BYTES: usize = 256;

/// `path` as the access log writes it: at most [`MAX_LOGGED_PATH_BYTES`] bytes.
fn logged_path(path: &str) -> std::borrow::Cow<'_, str> {
    if path.len() <= MAX_LOGGED_PATH_BYTES {
        return path.into();
    }
    let mut end = MAX_LOGGED_PATH_BYTES;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &path[..end]).into()
}

impl App {
    /// The app for `service` with `config`.
    pub(crate) fn new(service: ChatService, config: HttpConfig) -> Self {
        let cors = Cors::new(&config.cors_origins);
        let resumes = crate::sse::ResumeShares::new(
            config.max_resumes_per_response,
            config.max_resumes_per_ip,
        );
        let event_streams = crate::handlers::events::EventShares::new(
            config.max_event_streams_per_ip,
            config.max_event_streams_per_session,
        );
        Self {
            resumes,
            event_streams,
            service,
            failed_auth: FailedAuth::new(config.failed_auth_quota),
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
            path = %logged_path(request.uri().path()),
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
        // Routes by the canonical path (the path parsed once); handlers keep the
        // real URI (for links).
        let files = router::Files {
            widget: self.config.widget,
            console: self.config.console && self.config.admin_token.is_some(),
        };
        let resolved = mount
            .route(parts.uri.path())
            .and_then(|route| router::endpoint(route, &parts.method, files));
        let route = resolved
            .as_ref()
            .map_or("unmatched", router::Endpoint::name);
        let result = AssertUnwindSafe(pipeline::run(self, mount, resolved, parts, body))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                tracing::error!(panic = panic_message(&*panic), "handler panicked");
                Err(ApiError::internal())
            });
        let mut response = result.unwrap_or_else(ApiError::into_response);
        self.cors.apply(origin.as_ref(), &mut response);
        // No response is to be sniffed into another type (a JSON error rendered as HTML).
        response
            .headers_mut()
            .insert(NOSNIFF.0, HeaderValue::from_static(NOSNIFF.1));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_paths_are_cut() {
        assert_eq!(logged_path("/api/chats/sessions/"), "/api/chats/sessions/");
        let long = format!("/{}", "é".repeat(300));
        let cut = logged_path(&long);
        assert!(cut.len() <= MAX_LOGGED_PATH_BYTES + 3);
        assert!(cut.ends_with("..."));
        assert!(long.starts_with(cut.trim_end_matches("...")));
    }
}
