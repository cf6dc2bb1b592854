//! Typed errors: the API error codes, validation failures, and the errors of the
//! store and model ports, gathered into [`ServiceError`].

use std::fmt;

use crate::access::AccessError;
use crate::ratelimit::{AdmissionError, RateLimited};

/// A boxed error kept as the `source` of a port error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The machine-readable `code` of every error body the API returns.
///
/// The transport maps each code to its HTTP status in one place; core only names it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The body is not valid JSON, or not a JSON object.
    InvalidJson,
    /// A required field or query parameter is absent.
    MissingField,
    /// A field or query parameter has a value the API does not accept.
    InvalidField,
    /// No live session matches the reference.
    SessionNotFound,
    /// No live message matches the id.
    MessageNotFound,
    /// No route matches the path.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// A custom `session_id` is already taken.
    SessionExists,
    /// The session's `is_active` is false, so it cannot be written to.
    SessionInactive,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The body is not JSON.
    UnsupportedMediaType,
    /// Same `Idempotency-Key` with a different body.
    IdempotencyMismatch,
    /// A request with the same `Idempotency-Key` is still being answered (409).
    RequestInProgress,
    /// Too many requests.
    RateLimited,
    /// The endpoint needs the admin token (401).
    Unauthorized,
    /// A visitor used something only the operator may use (403).
    Forbidden,
    /// Too many generations are running; retry shortly (503).
    Busy,
    /// The deployment's token budget (`--token-budget`) is spent until its window
    /// ends (503, with `Retry-After`).
    BudgetExhausted,
    /// The answer to cancel is already complete (409).
    ResponseComplete,
    /// The instance generating an answer stopped before finishing it (a stream's
    /// last event only).
    GenerationLost,
    /// The model failed or answered something unusable.
    LlmUnavailable,
    /// The model did not answer in time.
    LlmTimeout,
    /// The store did not answer.
    StoreUnavailable,
    /// The configured store does not implement the operation (501).
    NotSupported,
    /// Anything else; details are logged, never returned.
    Internal,
}

impl ErrorCode {
    /// The code as it appears in the JSON `code` field.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::MissingField => "missing_field",
            Self::InvalidField => "invalid_field",
            Self::SessionNotFound => "session_not_found",
            Self::MessageNotFound => "message_not_found",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::SessionExists => "session_exists",
            Self::SessionInactive => "session_inactive",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::IdempotencyMismatch => "idempotency_mismatch",
            Self::RequestInProgress => "request_in_progress",
            Self::RateLimited => "rate_limited",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::Busy => "busy",
            Self::BudgetExhausted => "budget_exhausted",
            Self::ResponseComplete => "response_complete",
            Self::GenerationLost => "generation_lost",
            Self::LlmUnavailable => "llm_unavailable",
            Self::LlmTimeout => "llm_timeout",
            Self::StoreUnavailable => "store_unavailable",
            Self::NotSupported => "not_supported",
            Self::Internal => "internal_error",
        }
    }
}

impl ErrorCode {
    /// Every code, for lookups by name.
    pub const ALL: [Self; 25] = [
        Self::InvalidJson,
        Self::MissingField,
        Self::InvalidField,
        Self::SessionNotFound,
        Self::MessageNotFound,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::SessionExists,
        Self::SessionInactive,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::IdempotencyMismatch,
        Self::RateLimited,
        Self::Unauthorized,
        Self::Forbidden,
        Self::Busy,
        Self::BudgetExhausted,
        Self::ResponseComplete,
        Self::GenerationLost,
        Self::LlmUnavailable,
        Self::LlmTimeout,
        Self::StoreUnavailable,
        Self::Internal,
        Self::RequestInProgress,
        Self::NotSupported,
    ];

    /// Reads the name [`ErrorCode::as_str`] gives.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected input: which field, which rule, and the API code to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// `missing_field`, `invalid_field` or `invalid_json`.
    pub code: ErrorCode,
    /// The input field at fault, when there is one.
    pub field: Option<String>,
    /// A human-readable explanation, safe to show to the caller.
    pub message: String,
}

impl ValidationError {
    /// A required `field` is absent.
    #[must_use]
    pub fn missing(field: &str) -> Self {
        Self {
            code: ErrorCode::MissingField,
            field: Some(field.to_owned()),
            message: format!("{field} is required"),
        }
    }

    /// `field` is present but breaks a rule, explained by `why`.
    #[must_use]
    pub fn invalid(field: &str, why: impl fmt::Display) -> Self {
        Self {
            code: ErrorCode::InvalidField,
            field: Some(field.to_owned()),
            message: format!("{field}: {why}"),
        }
    }

    /// The body as a whole is not the JSON object expected.
    #[must_use]
    pub fn invalid_json(why: impl fmt::Display) -> Self {
        Self {
            code: ErrorCode::InvalidJson,
            field: None,
            message: format!("invalid JSON body: {why}"),
        }
    }
}

/// Which kind of record a store error is about.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    /// A chat session.
    Session,
    /// A message.
    Message,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Session => "session",
            Self::Message => "message",
        })
    }
}

/// The outcome of a store operation that did not succeed.
///
/// Variants name contract outcomes, whatever the adapter; the cause is kept as `source`.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The session or message does not exist, has expired, or is soft-deleted.
    #[error("{0} not found")]
    NotFound(Entity),
    /// A session with the same `session_id` (or id), or a message with the same id,
    /// already exists.
    #[error("{0} already exists")]
    Conflict(Entity),
    /// The session exists but its `is_active` is false, so it takes no new messages.
    #[error("session is inactive")]
    SessionInactive,
    /// The backend did not answer (connection refused, timeout, failover). Retryable.
    #[error("store unavailable")]
    Unavailable(#[source] BoxError),
    /// The backend answered with something unexpected (corrupt data, protocol error).
    #[error("store backend error")]
    Backend(#[source] BoxError),
    /// The store does not implement this operation (a provided port method a
    /// third-party adapter has not overridden).
    #[error("the store does not support {0}")]
    NotSupported(&'static str),
}

impl StoreError {
    /// Wraps a connection-level failure.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::Unavailable(source.into())
    }

    /// Wraps an unexpected backend failure.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        Self::Backend(source.into())
    }
}

/// Which deadline a model call missed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Connecting to the model server.
    Connect,
    /// Waiting for the first chunk (or the whole answer of a non-streamed call).
    FirstChunk,
    /// Silence between two chunks.
    BetweenChunks,
    /// The whole generation.
    Total,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::FirstChunk => "first chunk",
            Self::BetweenChunks => "between chunks",
            Self::Total => "total",
        })
    }
}

/// A failed call to the [`ChatModel`](crate::ports::ChatModel) port.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A deadline passed (maps to 504 `llm_timeout`).
    #[error("model timed out ({0})")]
    Timeout(TimeoutKind),
    /// The model server could not be reached or refused the call (maps to 502).
    #[error("model unavailable")]
    Unavailable {
        /// Whether the same call may succeed if retried.
        retryable: bool,
        /// The underlying cause.
        #[source]
        source: BoxError,
    },
    /// The model server answered something that is not a valid response (maps to 502).
    #[error("model answered an invalid response")]
    Protocol(#[source] BoxError),
}

impl ModelError {
    /// Whether retrying the same call may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout(kind) => matches!(kind, TimeoutKind::Connect | TimeoutKind::FirstChunk),
            Self::Unavailable { retryable, .. } => *retryable,
            Self::Protocol(_) => false,
        }
    }

    /// The API error code this failure is reported with.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Timeout(_) => ErrorCode::LlmTimeout,
            Self::Unavailable { .. } | Self::Protocol(_) => ErrorCode::LlmUnavailable,
        }
    }
}

/// Every way a [`ChatService`](crate::ChatService) use case can fail.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input broke a rule of the API.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No live session matches.
    #[error("session not found")]
    SessionNotFound,
    /// No live message matches.
    #[error("message not found")]
    MessageNotFound,
    /// The custom `session_id` is taken.
    #[error("a session with this session_id already exists")]
    SessionExists,
    /// The session does not accept new messages.
    #[error("session is inactive")]
    SessionInactive,
    /// The store failed.
    #[error("store error")]
    Store(#[source] StoreError),
    /// The model failed.
    #[error("model error")]
    Model(#[from] ModelError),
    /// A rate limit is reached.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The access mode refuses the caller.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Every generation slot is taken (`--max-generations`).
    #[error("too many answers are being generated; retry shortly")]
    Busy,
    /// The deployment's token budget is spent (see [`crate::budget`]); the quota
    /// and when its window ends.
    #[error("the assistant's token budget is spent; retry in {}s", .0.retry_after.as_secs().max(1))]
    BudgetExhausted(RateLimited),
    /// The answer to cancel is already complete.
    #[error("the answer is already complete")]
    ResponseComplete,
    /// Same `Idempotency-Key`, different request.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyMismatch,
    /// Same `Idempotency-Key`, first request still running.
    #[error("a request with this Idempotency-Key is still being answered; retry shortly")]
    RequestInProgress,
    /// A bug or an unexpected failure inside the service (a task panicked).
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ServiceError {
    /// The API error code to answer with.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(e) => e.code,
            Self::SessionNotFound => ErrorCode::SessionNotFound,
            Self::MessageNotFound => ErrorCode::MessageNotFound,
            Self::SessionExists => ErrorCode::SessionExists,
            Self::SessionInactive => ErrorCode::SessionInactive,
            Self::Store(StoreError::Unavailable(_)) => ErrorCode::StoreUnavailable,
            Self::Store(StoreError::NotSupported(_)) => ErrorCode::NotSupported,
            Self::Store(_) | Self::Internal(_) => ErrorCode::Internal,
            Self::Model(e) => e.code(),
            Self::RateLimited(_) => ErrorCode::RateLimited,
            Self::Access(AccessError::AdminOnly(_)) => ErrorCode::Unauthorized,
            Self::Access(AccessError::Forbidden(_)) => ErrorCode::Forbidden,
            Self::Busy => ErrorCode::Busy,
            Self::BudgetExhausted(_) => ErrorCode::BudgetExhausted,
            Self::ResponseComplete => ErrorCode::ResponseComplete,
            Self::IdempotencyMismatch => ErrorCode::IdempotencyMismatch,
            Self::RequestInProgress => ErrorCode::RequestInProgress,
        }
    }

    /// The input field at fault, for validation errors.
    #[must_use]
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Validation(e) => e.field.as_deref(),
            _ => None,
        }
    }

    /// A message that is safe to return to the caller (no internals).
    #[must_use]
    pub fn public_message(&self) -> String {
        match self {
            Self::Validation(e) => e.message.clone(),
            Self::Store(StoreError::Unavailable(_)) => {
                "the store is unavailable, retry later".to_owned()
            }
            Self::Store(e @ StoreError::NotSupported(_)) => e.to_string(),
            Self::Store(_) | Self::Internal(_) => "internal server error".to_owned(),
            Self::Model(ModelError::Timeout(_)) => "the language model timed out".to_owned(),
            Self::Model(_) => "the language model is unavailable".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<AdmissionError> for ServiceError {
    fn from(e: AdmissionError) -> Self {
        match e {
            AdmissionError::Limited(limited) => Self::RateLimited(limited),
            AdmissionError::Store(store) => Self::Store(store),
        }
    }
}

impl From<StoreError> for ServiceError {
    /// Maps a store outcome to the API's: the entity the store names decides the code.
    /// A message id conflict cannot come from a client (the service chooses message
    /// ids), so it is an internal error, never `session_exists`.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(Entity::Message) => Self::MessageNotFound,
            StoreError::NotFound(_) => Self::SessionNotFound,
            StoreError::Conflict(Entity::Session) => Self::SessionExists,
            StoreError::SessionInactive => Self::SessionInactive,
            StoreError::Conflict(_) => Self::Store(e),
            other => Self::Store(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn codes_render_as_documented() {
        assert_eq!(ErrorCode::SessionNotFound.as_str(), "session_not_found");
        assert_eq!(ErrorCode::LlmTimeout.to_string(), "llm_timeout");
    }

    #[test]
    fn store_errors_map_to_api_codes_by_entity() {
        let code = |e: StoreError| ServiceError::from(e).code();
        assert_eq!(
            code(StoreError::unavailable("down")),
            ErrorCode::StoreUnavailable
        );
        let unsupported = ServiceError::from(StoreError::NotSupported("searching messages"));
        assert_eq!(unsupported.code(), ErrorCode::NotSupported);
        assert_eq!(
            unsupported.public_message(),
            "the store does not support searching messages"
        );
        let backend = ServiceError::from(StoreError::backend("corrupt row"));
        assert_eq!(backend.code(), ErrorCode::Internal);
        assert!(!backend.public_message().contains("corrupt"));
        assert_eq!(
            code(StoreError::NotFound(Entity::Message)),
            ErrorCode::MessageNotFound
        );
        assert_eq!(
            code(StoreError::NotFound(Entity::Session)),
            ErrorCode::SessionNotFound
        );
        assert_eq!(
            code(StoreError::Conflict(Entity::Session)),
            ErrorCode::SessionExists
        );
        // The service picks message ids: a clash is a bug, never `session_exists`.
        assert_eq!(
            code(StoreError::Conflict(Entity::Message)),
            ErrorCode::Internal
        );
    }

    #[test]
    fn model_errors_map_to_502_and_504_codes() {
        assert_eq!(
            ModelError::Timeout(TimeoutKind::Total).code(),
            ErrorCode::LlmTimeout
        );
        let e = ModelError::Unavailable {
            retryable: true,
            source: "refused".into(),
        };
        assert_eq!(e.code(), ErrorCode::LlmUnavailable);
        assert!(e.is_retryable());
    }
}
