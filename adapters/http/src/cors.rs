//! CORS for the configured origins, preflight included.
//!
//! - A request whose `Origin` is allowed gets `Access-Control-Allow-Origin` (the
//!   origin itself, or `*` when `*` is configured) and
//!   `Access-Control-Expose-Headers: X-Request-Id, Retry-After`. A disallowed origin
//!   gets no CORS header, so the browser hides the answer from the page.
//! - With a list of origins (not `*`), every response carries `Vary: Origin`.
//! - `OPTIONS` on a known route is answered 204 with `Allow`, and for an allowed
//!   origin `Access-Control-Allow-Methods` (the route's methods),
//!   `Access-Control-Allow-Headers` ([`ALLOW_HEADERS`]) and
//!   `Access-Control-Max-Age` ([`MAX_AGE_SECS`]).
//! - No credentials are involved (the API has no cookies), so
//!   `Access-Control-Allow-Credentials` is never sent.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ALLOW, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::json;
use crate::Response;

/// Request headers a page may send (answer to `Access-Control-Request-Headers`).
pub const ALLOW_HEADERS: &str =
    "content-type, x-request-id, last-event-id, idempotency-key, authorization";
/// Response headers a page may read.
pub const EXPOSE_HEADERS: &str =
    "x-request-id, retry-after, link, ratelimit, ratelimit-policy, idempotent-replayed";
/// How long a browser may cache a preflight answer, in seconds.
pub const MAX_AGE_SECS: u32 = 3600;

/// The CORS policy built from `HttpConfig::cors_origins`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cors {
    any: bool,
    origins: Vec<String>,
}

impl Cors {
    /// A policy allowing `origins` (`*` allows all). Trailing slashes are ignored, as
    /// a browser's `Origin` never has one.
    pub(crate) fn new(origins: &[String]) -> Self {
        let origins: Vec<String> = origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        Self {
            any: origins.iter().any(|o| o == "*"),
            origins,
        }
    }

    fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if allowed.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        if self.any {
            return Some(HeaderValue::from_static("*"));
        }
        let text = origin.to_str().ok()?;
        self.origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(text))
            .then(|| origin.clone())
    }

    /// Whether a page of `origin` may call the API (`--cors-origins`).
    pub(crate) fn allows(&self, origin: &HeaderValue) -> bool {
        self.allow_origin(Some(origin)).is_some()
    }

    /// Adds the CORS headers a response to a request from `origin` needs.
    pub(crate) fn apply(&self, origin: Option<&HeaderValue>, response: &mut Response) {
        if !self.enabled() {
            return;
        }
        let headers = response.headers_mut();
        if !self.any {
            headers.append(VARY, HeaderValue::from_static("origin"));
        }
        if let Some(origin) = self.allow_origin(origin) {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }

    /// The answer to `OPTIONS` on a route whose methods are `allow`.
    pub(crate) fn preflight(&self, request: &HeaderMap, allow: &'static str) -> Response {
        let origin = request.get(ORIGIN);
        let mut response = json::empty(StatusCode::NO_CONTENT);
        let headers = response.headers_mut();
        headers.insert(ALLOW, HeaderValue::from_static(allow));
        if self.allow_origin(origin).is_some() {
            headers.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(allow),
            );
            headers.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_SECS));
        }
        if self.enabled() && !self.any {
            headers.append(
                VARY,
                HeaderValue::from_static(
                    "access-control-request-method, access-control-request-headers",
                ),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_static(origin));
        h
    }

    fn applied(cors: &Cors, origin: &'static str) -> Response {
        let mut r = json::empty(StatusCode::OK);
        cors.apply(request(origin).get(ORIGIN), &mut r);
        r
    }

    #[test]
    fn listed_origins_are_echoed_others_get_nothing() {
        let cors = Cors::new(&["https://a.example/".to_owned()]);
        let r = applied(&cors, "https://a.example");
        assert_eq!(
            r.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(&HeaderValue::from_static("https://a.example"))
        );
        assert_eq!(
            r.headers().get(VARY),
            Some(&HeaderValue::from_static("origin"))
        );
        let r = applied(&cors, "https://evil.example");
        assert!(r.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert_eq!(
            r.headers().get(VARY),
            Some(&HeaderValue::from_static("origin"))
        );
    }

    #[test]
    fn wildcard_allows_all_without_vary() {
        let cors = Cors::new(&["*".to_owned()]);
        let r = applied(&cors, "https://any.example");
        assert_eq!(
            r.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(&HeaderValue::from_static("*"))
        );
        assert!(r.headers().get(VARY).is_none());
    }

    #[test]
    fn disabled_by_default() {
        let r = applied(&Cors::new(&[]), "https://a.example");
        assert!(r.headers().is_empty());
    }

    #[test]
    fn preflight_lists_methods_headers_and_max_age() {
        let cors = Cors::new(&["https://a.example".to_owned()]);
        let r = cors.preflight(&request("https://a.example"), "POST, OPTIONS");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let h = r.headers();
        assert_eq!(
            h.get(ALLOW),
            Some(&HeaderValue::from_static("POST, OPTIONS"))
        );
        assert_eq!(
            h.get(ACCESS_CONTROL_ALLOW_METHODS),
            Some(&HeaderValue::from_static("POST, OPTIONS"))
        );
        assert!(h.get(ACCESS_CONTROL_ALLOW_HEADERS).is_some());
        assert_eq!(
            h.get(ACCESS_CONTROL_MAX_AGE),
            Some(&HeaderValue::from(MAX_AGE_SECS))
        );
        let r = cors.preflight(&request("https://evil.example"), "POST, OPTIONS");
        assert!(r.headers().get(ACCESS_CONTROL_ALLOW_METHODS).is_none());
    }
}
