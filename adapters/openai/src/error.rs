//! The adapter's own errors: why building a model failed ([`ConfigError`]), and the
//! causes kept as the `source` of a [`ModelError`](colloquy_core::ModelError)
//! ([`UpstreamError`]).

use crate::sse::SseError;

/// A setting of [`OpenAiConfig`](crate::OpenAiConfig) that cannot be used.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `base_url` is not an absolute `http` or `https` URL.
    #[error("invalid base URL {url:?}: {reason}")]
    BaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The API key cannot be sent in a header (control characters, for instance).
    #[error("the API key contains characters not allowed in an HTTP header")]
    ApiKey,
    /// An extra header has an invalid name or value.
    #[error("invalid extra header {name:?}")]
    Header {
        /// The header's name as given (its value is never shown).
        name: String,
    },
    /// `model` is empty.
    #[error("the model name is empty")]
    Model,
    /// A retry or timeout setting is out of range.
    #[error("invalid setting {field}: {reason}")]
    Setting {
        /// The field at fault.
        field: &'static str,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The HTTP client could not be built (TLS setup failed).
    #[error("could not build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Why a call to the model server failed; the `source` of the
/// [`ModelError`](colloquy_core::ModelError) returned.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The connection could not be opened.
    #[error("could not connect to the model server")]
    Connect(#[source] reqwest::Error),
    /// The connection failed while sending the request or reading the answer.
    #[error("connection to the model server failed")]
    Transport(#[source] reqwest::Error),
    /// The server answered with an error status.
    #[error("model server answered HTTP {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The `error.message` of the body, when it had one.
        message: Option<String>,
    },
    /// The server reported an error inside a 200 stream.
    #[error("model server reported an error mid-stream{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    InStream {
        /// The `error.message` of the event, when it had one.
        message: Option<String>,
    },
    /// A body or stream event is not the JSON expected.
    #[error("invalid JSON from the model server")]
    Json(#[source] serde_json::Error),
    /// The event stream is malformed.
    #[error("invalid event stream")]
    Sse(#[source] SseError),
    /// A non-streamed answer has no choice.
    #[error("the answer has no choices")]
    NoChoices,
    /// A body is larger than the adapter accepts.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The stream ended before `data: [DONE]` and before any `finish_reason`.
    #[error("the stream ended before the answer was complete")]
    Truncated,
    /// The request body could not be encoded.
    #[error("could not encode the request")]
    Encode(#[source] serde_json::Error),
}
