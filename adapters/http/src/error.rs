//! The one place where an API error code becomes an HTTP status, and where every
//! error becomes the documented JSON body `{"error", "code", "field"?}`.

use std::error::Error as _;

use std::time::Duration;

use colloquy_core::ratelimit::RateLimited;
use colloquy_core::{ErrorCode, ServiceError, ValidationError};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use crate::json;
use crate::Response;

/// The `Retry-After` value (seconds) sent with 503 `store_unavailable` and 429.
pub const RETRY_AFTER_SECS: u32 = 1;

/// The HTTP status of an API error code.
///
/// `internal_error` and any code this transport does not know yet are 500.
#[must_use]
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidJson | ErrorCode::MissingField | ErrorCode::InvalidField => {
            StatusCode::BAD_REQUEST
        }
        ErrorCode::SessionNotFound | ErrorCode::MessageNotFound | ErrorCode::NotFound => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::SessionExists
        | ErrorCode::SessionInactive
        | ErrorCode::ResponseComplete
        | ErrorCode::RequestInProgress => StatusCode::CONFLICT,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::LlmUnavailable | ErrorCode::GenerationLost => StatusCode::BAD_GATEWAY,
        ErrorCode::LlmTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::StoreUnavailable | ErrorCode::Busy | ErrorCode::BudgetExhausted => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotSupported => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The response the API gives for `error`: its status (see [`status_for`]), the JSON
/// body `{"error", "code", "field"?}` with the error's safe message, and the headers
/// that go with the code (`Retry-After` on 503 and 429, `RateLimit-Policy` and
/// `RateLimit` on 429). For handlers of your own that call
/// [`ChatService`](colloquy_core::ChatService) and must answer failures exactly as
/// the API does. A server-side failure's cause is logged (`tracing`), never returned.
#[must_use]
pub fn error_response(error: &ServiceError) -> Response {
    ApiError::from(error).into_response()
}

/// The `code` of an error body: one of core's [`ErrorCode`]s, or one that only this
/// transport produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// A code of the API contract, named by core.
    Api(ErrorCode),
    /// 408 `request_timeout`: the request body did not arrive in full in time.
    RequestTimeout,
    /// 429 `too_many_streams`: the response, or the client, already has its most
    /// resumes streaming at once.
    TooManyStreams,
}

impl Code {
    /// The HTTP status.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::Api(code) => status_for(code),
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The code as it appears in the JSON `code` field.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Api(code) => code.as_str(),
            Self::RequestTimeout => "request_timeout",
            Self::TooManyStreams => "too_many_streams",
        }
    }
}

impl PartialEq<ErrorCode> for Code {
    fn eq(&self, other: &ErrorCode) -> bool {
        *self == Self::Api(*other)
    }
}

/// An error on its way to the client: code, safe message, and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    code: Code,
    message: String,
    field: Option<String>,
    allow: Option<&'static str>,
    /// Seconds for `Retry-After`, when the default is not right (429).
    retry_after: Option<u64>,
    /// `RateLimit-Policy` and `RateLimit` of a 429.
    /// (Boxed: it is rare, and keeps `Result<_, ApiError>` small.)
    rate_limit: Option<Box<(String, String)>>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error with `code` and a message safe to show.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: Code::Api(code),
            message: message.into(),
            field: None,
            allow: None,
            retry_after: None,
            rate_limit: None,
        }
    }

    /// 408 `request_timeout`: the body did not arrive within `timeout`.
    pub(crate) fn request_timeout(timeout: std::time::Duration) -> Self {
        Self {
            code: Code::RequestTimeout,
            message: format!(
                "the request body did not arrive within {} ms",
                timeout.as_millis()
            ),
            field: None,
            allow: None,
            retry_after: None,
            rate_limit: None,
        }
    }

    /// 429 `too_many_streams`, with `message` saying whose share is full.
    pub(crate) fn too_many_streams(message: &str) -> Self {
        Self {
            code: Code::TooManyStreams,
            ..Self::new(ErrorCode::RateLimited, message)
        }
    }

    /// 404 `not_found`: no route for the path.
    pub(crate) fn no_route() -> Self {
        Self::new(ErrorCode::NotFound, "no such endpoint")
    }

    /// 405 `method_not_allowed`, with the `Allow` header listing `allow`.
    pub(crate) fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(ErrorCode::MethodNotAllowed, "method not allowed")
        }
    }

    /// 500 `internal_error` with the generic message; the cause must be logged by the caller.
    pub(crate) fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal server error")
    }

    /// 503 `store_unavailable`.
    pub(crate) fn store_unavailable() -> Self {
        Self::new(
            ErrorCode::StoreUnavailable,
            "the store is unavailable, retry later",
        )
    }

    /// The API code.
    #[cfg(test)]
    pub(crate) fn code(&self) -> Code {
        self.code
    }

    /// The JSON error response, with `Allow` on 405 and `Retry-After` on 503/429.
    pub(crate) fn into_response(self) -> Response {
        let status = self.code.status();
        let body = ErrorBody {
            error: &self.message,
            code: self.code.as_str(),
            field: self.field.as_deref(),
        };
        let mut response = json::response(status, &body);
        let headers = response.headers_mut();
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if matches!(
            self.code,
            Code::Api(
                ErrorCode::StoreUnavailable
                    | ErrorCode::RateLimited
                    | ErrorCode::Busy
                    | ErrorCode::BudgetExhausted
            ) | Code::TooManyStreams
        ) {
            let secs = self.retry_after.unwrap_or(u64::from(RETRY_AFTER_SECS));
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some((policy, state)) = self.rate_limit.map(|fields| *fields) {
            for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
        }
        if self.code == ErrorCode::Unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"colloquy\""),
            );
        }
        response
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self {
            code: Code::Api(e.code),
            message: e.message,
            field: e.field,
            allow: None,
            retry_after: None,
            rate_limit: None,
        }
    }
}

/// Whole seconds, rounded up: a client that waits this long is admitted.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The IETF draft's `RateLimit-Policy` and `RateLimit` field values of a refusal
/// (draft-ietf-httpapi-ratelimit-headers: `"name";q=QUOTA;w=WINDOW` and
/// `"name";r=REMAINING;t=RESET`).
fn rate_limit_fields(limited: &RateLimited) -> (String, String) {
    let name = limited.policy;
    (
        format!(
            "\"{name}\";q={};w={}",
            limited.quota.count,
            ceil_secs(limited.quota.period)
        ),
        format!("\"{name}\";r=0;t={}", ceil_secs(limited.reset)),
    )
}

/// The full `source` chain of an error, for the log.
fn cause_chain(e: &ServiceError) -> String {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self::from(&e)
    }
}

impl From<&ServiceError> for ApiError {
    /// Keeps only the safe message; an internal error's cause is logged here, inside the
    /// request's span (so with its request id), and never returned.
    fn from(e: &ServiceError) -> Self {
        let code = e.code();
        let status = status_for(code);
        if status.is_server_error() {
            let cause = cause_chain(e);
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(error = %cause, code = code.as_str(), "internal error");
            } else {
                // Upstream failures come in storms (every request while the store is
                // down): aggregated, at most one line per kind per interval.
                crate::failure_log::record(code.as_str(), &cause);
            }
        }
        let limited = match e {
            ServiceError::RateLimited(limited) | ServiceError::BudgetExhausted(limited) => {
                Some(limited)
            }
            _ => None,
        };
        Self {
            code: Code::Api(code),
            message: e.public_message(),
            field: e.field().map(str::to_owned),
            allow: None,
            retry_after: limited.map(|l| ceil_secs(l.retry_after).max(1)),
            rate_limit: limited.map(|l| Box::new(rate_limit_fields(l))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloquy_core::{ModelError, StoreError, TimeoutKind};

    #[test]
    fn every_documented_code_has_its_status() {
        let cases = [
            (ErrorCode::InvalidJson, 400),
            (ErrorCode::MissingField, 400),
            (ErrorCode::InvalidField, 400),
            (ErrorCode::SessionNotFound, 404),
            (ErrorCode::MessageNotFound, 404),
            (ErrorCode::NotFound, 404),
            (ErrorCode::MethodNotAllowed, 405),
            (ErrorCode::SessionExists, 409),
            (ErrorCode::SessionInactive, 409),
            (ErrorCode::PayloadTooLarge, 413),
            (ErrorCode::UnsupportedMediaType, 415),
            (ErrorCode::IdempotencyMismatch, 422),
            (ErrorCode::RateLimited, 429),
            (ErrorCode::Unauthorized, 401),
            (ErrorCode::Forbidden, 403),
            (ErrorCode::Busy, 503),
            (ErrorCode::BudgetExhausted, 503),
            (ErrorCode::ResponseComplete, 409),
            (ErrorCode::RequestInProgress, 409),
            (ErrorCode::GenerationLost, 502),
            (ErrorCode::LlmUnavailable, 502),
            (ErrorCode::StoreUnavailable, 503),
            (ErrorCode::LlmTimeout, 504),
            (ErrorCode::Internal, 500),
            (ErrorCode::NotSupported, 501),
        ];
        for (code, status) in cases {
            assert_eq!(status_for(code).as_u16(), status, "{code}");
        }
    }

    #[test]
    fn internal_errors_keep_their_cause_out_of_the_body() {
        let e = ApiError::from(ServiceError::Store(StoreError::backend(
            "secret table xyz is corrupt",
        )));
        assert_eq!(e.code(), ErrorCode::Internal);
        assert!(!e.message.contains("xyz"));
        let timeout = ApiError::from(ServiceError::Model(ModelError::Timeout(TimeoutKind::Total)));
        assert_eq!(timeout.code().status(), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn unavailable_store_says_when_to_retry() {
        let r = ApiError::store_unavailable().into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            r.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(RETRY_AFTER_SECS))
        );
        let r = ApiError::method_not_allowed("GET, OPTIONS").into_response();
        assert_eq!(
            r.headers().get(header::ALLOW),
            Some(&HeaderValue::from_static("GET, OPTIONS"))
        );
    }
}
