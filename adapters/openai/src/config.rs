//! [`OpenAiConfig`]: every setting of the adapter, as a plain struct with defaults.

use std::fmt;
use std::time::Duration;

use colloquy_core::retry::RetryPolicy;

/// Settings of an [`OpenAiModel`](crate::OpenAiModel).
///
/// Build it with struct update syntax over [`OpenAiConfig::default`]. The binary
/// fills it from flags and the environment; the API key in particular should come
/// from the environment. `Debug` never shows the API key or the values of
/// [`extra_headers`](Self::extra_headers).
#[derive(Clone, PartialEq)]
pub struct OpenAiConfig {
    /// The API root, ending in `/v1` for most servers; `/chat/completions` is appended.
    /// Default `https://api.openai.com/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer {key}` when set. Local servers need none.
    pub api_key: Option<String>,
    /// The model name the server knows (`gpt-4o-mini`, `llama3.2`, ...). Default
    /// `gpt-4o-mini`.
    pub model: String,
    /// Sampling temperature; the server's default when `None` (the default).
    pub temperature: Option<f32>,
    /// `max_tokens` of the answer; the server's default when `None` (the default).
    pub max_tokens: Option<u32>,
    /// Sent first, as a `system` message, ahead of the session's own messages.
    pub system_prompt: Option<String>,
    /// More request headers (name, value), e.g. `OpenAI-Organization`, or `api-key`
    /// for servers that authenticate that way.
    pub extra_headers: Vec<(String, String)>,
    /// Ask streamed answers to report token usage (`stream_options.include_usage`).
    /// Default true; turn off for a server that rejects `stream_options`.
    pub include_usage: bool,
    /// Deadlines.
    pub timeouts: Timeouts,
    /// When a failed call is tried again. Retried: connection failures, `429 Too
    /// Many Requests` and `5xx` answers (honouring `Retry-After` up to
    /// [`RetryPolicy::max_retry_after`]), and a stream that breaks before its first
    /// chunk — never once a chunk has been forwarded. Not retried: other `4xx`
    /// answers, invalid responses, and missed first-chunk, between-chunk or total
    /// deadlines.
    pub retry: RetryPolicy,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_owned(),
            api_key: None,
            model: "gpt-4o-mini".to_owned(),
            temperature: None,
            max_tokens: None,
            system_prompt: None,
            extra_headers: Vec::new(),
            include_usage: true,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.extra_headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field(
                "system_prompt",
                &self.system_prompt.as_ref().map(String::len),
            )
            .field("extra_headers", &header_names)
            .field("include_usage", &self.include_usage)
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The deadlines of one call. Each one missed is a
/// [`ModelError::Timeout`](colloquy_core::ModelError::Timeout) of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the TCP (and TLS) connection. Default 10 s.
    pub connect: Duration,
    /// From sending the request to the first `data` event of a stream, or to the
    /// whole answer of a non-streamed call. Default 60 s.
    pub first_chunk: Duration,
    /// Longest silence between two `data` events of a stream (comment lines such as
    /// keep-alives do not count as chunks). Default 30 s.
    pub between_chunks: Duration,
    /// The whole call, retries and backoff included. Default 300 s. A retry whose
    /// wait would end past it is not made: the last failure is returned instead.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_chunk: Duration::from_secs(60),
            between_chunks: Duration::from_secs(30),
            total: Duration::from_secs(300),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let config = OpenAiConfig {
            api_key: Some("sk-very-secret".into()),
            extra_headers: vec![("api-key".into(), "also-secret".into())],
            system_prompt: Some("private instructions".into()),
            ..OpenAiConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(!shown.contains("also-secret"), "{shown}");
        assert!(!shown.contains("private instructions"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("api-key"),
            "{shown}"
        );
    }
}
