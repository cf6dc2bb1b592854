//! [`OpenAiModel`]: the [`ChatModel`] over an OpenAI-compatible Chat Completions API.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use colloquy_core::ports::{ChatModel, ModelStream};
use colloquy_core::{Completion, ModelError, ModelRequest, TimeoutKind};
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use tokio::time::Instant;

use crate::config::OpenAiConfig;
use crate::error::{ConfigError, UpstreamError};
use crate::retry;
use crate::stream::EventReader;
use crate::wire::{self, ChatRequest, ErrorBody, StreamOptions, WireMessage};

/// The largest non-streamed answer body accepted: 16 MiB.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// How much of an error body is read for its message: 16 KiB.
const MAX_ERROR_BYTES: usize = 16 * 1024;

/// A [`ChatModel`] that talks to any OpenAI-compatible server (OpenAI, Ollama, vLLM,
/// llama.cpp server, LM Studio, LiteLLM, ...) through `POST {base_url}/chat/completions`.
///
/// Cheap to clone; clones share one connection pool. Every call runs under the
/// configured [`Timeouts`](crate::Timeouts) and retries by the
/// [`RetryPolicy`](crate::RetryPolicy); a streamed call is retried only until its
/// first chunk is handed out. Dropping a [`ModelStream`] closes its connection, so
/// the server sees the client go away and can stop generating.
#[derive(Clone)]
pub struct OpenAiModel {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    config: OpenAiConfig,
}

impl std::fmt::Debug for OpenAiModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiModel")
            .field("url", &self.inner.url.as_str())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A failed attempt, and whether another may follow.
type Failure = colloquy_core::retry::Failure<ModelError>;

/// Retries transport failures before the first chunk; nothing else.
fn read_failure(error: ModelError) -> Failure {
    match &error {
        ModelError::Unavailable {
            retryable: true, ..
        }
        | ModelError::Timeout(TimeoutKind::Connect) => Failure::retryable(error, None),
        _ => Failure::fatal(error),
    }
}

impl OpenAiModel {
    /// A model with the given settings.
    ///
    /// # Errors
    /// [`ConfigError`] when the base URL, API key, a header or a retry setting
    /// cannot be used, or the HTTP client cannot be built.
    pub fn new(config: OpenAiConfig) -> Result<Self, ConfigError> {
        let url = completions_url(&config.base_url)?;
        if config.model.trim().is_empty() {
            return Err(ConfigError::Model);
        }
        config.retry.validate().map_err(|e| ConfigError::Setting {
            field: e.field(),
            reason: e.reason(),
        })?;
        let headers = request_headers(&config)?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .user_agent(concat!("colloquy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ConfigError::Client)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                url,
                headers,
                config,
            }),
        })
    }

    /// The settings this model was built with.
    #[must_use]
    pub fn config(&self) -> &OpenAiConfig {
        &self.inner.config
    }

    /// The URL requests go to: `{base_url}/chat/completions`.
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.inner.url
    }

    /// The JSON request body for `request`.
    fn body(&self, request: &ModelRequest, stream: bool) -> Result<Bytes, ModelError> {
        let config = &self.inner.config;
        let system = config.system_prompt.as_deref().map(|content| WireMessage {
            role: "system",
            content,
        });
        let body = ChatRequest {
            model: &config.model,
            messages: system
                .into_iter()
                .chain(request.messages.iter().map(WireMessage::from))
                .collect(),
            stream,
            stream_options: (stream && config.include_usage).then_some(StreamOptions {
                include_usage: true,
            }),
            temperature: config.temperature,
            max_tokens: config.max_tokens,
        };
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .map_err(|e| ModelError::Protocol(Box::new(UpstreamError::Encode(e))))
    }

    /// Runs `attempt` until it succeeds, fails for good, runs out of attempts, or
    /// the next wait would pass `deadline`.
    async fn with_retries<T, F, Fut>(
        &self,
        deadline: Instant,
        mut attempt: F,
    ) -> Result<T, ModelError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        colloquy_core::retry::with_retries(
            &self.inner.config.retry,
            Some(deadline),
            &mut attempt,
            |error, number, wait| {
                tracing::warn!(
                    error = %error,
                    cause = failure_cause(error),
                    attempt = number,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "model call failed; retrying"
                );
            },
        )
        .await
    }

    /// Sends one request and checks its status. The deadline covers connecting and
    /// the response head.
    async fn send(
        &self,
        body: Bytes,
        stream: bool,
        deadline: Instant,
        kind: TimeoutKind,
    ) -> Result<reqwest::Response, Failure> {
        let inner = &self.inner;
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let request = inner
            .client
            .post(inner.url.clone())
            .headers(inner.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .body(body)
            .send();
        let response = match tokio::time::timeout_at(deadline, request).await {
            Err(_elapsed) => return Err(Failure::fatal(ModelError::Timeout(kind))),
            Ok(Err(e)) => return Err(send_failure(e)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry::retry_after(response.headers(), SystemTime::now());
        let message = error_message(response, deadline).await;
        let error = UpstreamError::Status {
            status: status.as_u16(),
            message,
        };
        let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        Err(Failure {
            error: ModelError::Unavailable {
                retryable,
                source: Box::new(error),
            },
            retry: retryable.then_some(retry_after),
        })
    }

    async fn complete_once(&self, body: Bytes, total: Instant) -> Result<Completion, Failure> {
        let (deadline, kind) = phase_deadline(total, self.inner.config.timeouts.first_chunk);
        let response = self.send(body, false, deadline, kind).await?;
        let bytes = read_body(response, deadline, kind, MAX_RESPONSE_BYTES)
            .await
            .map_err(read_failure)?;
        wire::completion(&bytes).map_err(Failure::fatal)
    }

    async fn open_stream(&self, body: Bytes, total: Instant) -> Result<EventReader, Failure> {
        let timeouts = &self.inner.config.timeouts;
        let (deadline, kind) = phase_deadline(total, timeouts.first_chunk);
        let response = self.send(body, true, deadline, kind).await?;
        if is_json(&response) {
            // The server answered in one piece (it ignored `stream`, or sent an error
            // object with 200): hand the answer out as one chunk.
            let bytes = read_body(response, deadline, kind, MAX_RESPONSE_BYTES)
                .await
                .map_err(read_failure)?;
            let completion = wire::completion(&bytes).map_err(Failure::fatal)?;
            return Ok(EventReader::from_completion(completion));
        }
        let mut reader = EventReader::new(response, deadline, timeouts.between_chunks, total);
        reader.first_item().await.map_err(read_failure)?;
        Ok(reader)
    }
}

#[async_trait]
impl ChatModel for OpenAiModel {
    async fn complete(&self, request: &ModelRequest) -> Result<Completion, ModelError> {
        let total = Instant::now() + self.inner.config.timeouts.total;
        let body = self.body(request, false)?;
        tracing::debug!(url = %without_password(&self.inner.url), model = %self.inner.config.model, messages = request.messages.len(), "model call");
        self.with_retries(total, || self.complete_once(body.clone(), total))
            .await
    }

    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ModelError> {
        let total = Instant::now() + self.inner.config.timeouts.total;
        let body = self.body(request, true)?;
        tracing::debug!(url = %without_password(&self.inner.url), model = %self.inner.config.model, messages = request.messages.len(), "model stream");
        let reader = self
            .with_retries(total, || self.open_stream(body.clone(), total))
            .await?;
        Ok(futures::stream::unfold(reader, |mut reader| async move {
            reader.next().await.map(|item| (item, reader))
        })
        .boxed())
    }
    fn model_name(&self) -> Option<String> {
        Some(self.inner.config.model.clone())
    }
}

/// The deadline of an attempt's first phase: `first_chunk` from now, unless the
/// total deadline comes sooner.
fn phase_deadline(total: Instant, first_chunk: std::time::Duration) -> (Instant, TimeoutKind) {
    let first = Instant::now() + first_chunk;
    if total <= first {
        (total, TimeoutKind::Total)
    } else {
        (first, TimeoutKind::FirstChunk)
    }
}

/// `url` with its password, if any, replaced by `***`: for log lines.
fn without_password(url: &Url) -> Url {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Cannot fail: the URL has a password, so it has a host.
        let _ = shown.set_password(Some("***"));
    }
    shown
}

/// `{base_url}/chat/completions`, checked.
fn completions_url(base_url: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::BaseUrl {
        url: base_url.to_owned(),
        reason: reason.to_owned(),
    };
    let joined = format!("{}/chat/completions", base_url.trim_end_matches('/'));
    let url = Url::parse(&joined).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("no query or fragment allowed"));
    }
    Ok(url)
}

/// The headers of every request: the API key (marked sensitive) and the extra ones.
fn request_headers(config: &OpenAiConfig) -> Result<HeaderMap, ConfigError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &config.extra_headers {
        let invalid = || ConfigError::Header { name: name.clone() };
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let mut value = HeaderValue::from_str(value).map_err(|_| invalid())?;
        value.set_sensitive(true);
        headers.append(header, value);
    }
    if let Some(key) = &config.api_key {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| ConfigError::ApiKey)?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// Maps a failure to send a request (no response).
fn send_failure(e: reqwest::Error) -> Failure {
    if e.is_connect() {
        let error = if e.is_timeout() {
            ModelError::Timeout(TimeoutKind::Connect)
        } else {
            ModelError::Unavailable {
                retryable: true,
                source: Box::new(UpstreamError::Connect(e)),
            }
        };
        return Failure {
            error,
            retry: Some(None),
        };
    }
    // The connection broke before an answer: nothing was forwarded, so retry.
    Failure {
        error: ModelError::Unavailable {
            retryable: true,
            source: Box::new(UpstreamError::Transport(e)),
        },
        retry: Some(None),
    }
}

/// Reads a whole body of at most `limit` bytes by `deadline`.
async fn read_body(
    mut response: reqwest::Response,
    deadline: Instant,
    kind: TimeoutKind,
    limit: usize,
) -> Result<Vec<u8>, ModelError> {
    let mut body = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_elapsed) => return Err(ModelError::Timeout(kind)),
            Ok(Err(e)) => {
                return Err(ModelError::Unavailable {
                    retryable: true,
                    source: Box::new(UpstreamError::Transport(e)),
                })
            }
            Ok(Ok(None)) => return Ok(body),
            Ok(Ok(Some(bytes))) => {
                if body.len() + bytes.len() > limit {
                    return Err(ModelError::Protocol(Box::new(UpstreamError::TooLarge {
                        limit,
                    })));
                }
                body.extend_from_slice(&bytes);
            }
        }
    }
}

/// The `error.message` of an error answer, if it can be read in time.
async fn error_message(response: reqwest::Response, deadline: Instant) -> Option<String> {
    let mut response = response;
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BYTES {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(bytes))) => body.extend_from_slice(&bytes),
            _ => break,
        }
    }
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(&body) {
        return parsed.error.message();
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(500).collect())
}

/// Whether a response body is JSON rather than an event stream.
fn is_json(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

/// The failure's causes, outermost first, for logs.
fn failure_cause(error: &ModelError) -> String {
    let mut causes = Vec::new();
    let mut next = std::error::Error::source(error);
    while let Some(cause) = next {
        causes.push(cause.to_string());
        next = cause.source();
    }
    causes.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_urls_hide_the_password() {
        let url = completions_url("http://me:hunter2@localhost:11434/v1").expect("valid");
        let shown = without_password(&url).to_string();
        assert_eq!(shown, "http://me:***@localhost:11434/v1/chat/completions");
        let plain = completions_url("http://localhost:11434/v1").expect("valid");
        assert_eq!(without_password(&plain), plain);
    }

    #[test]
    fn base_url_is_joined_and_checked() {
        let url = completions_url("http://localhost:11434/v1/").expect("valid");
        assert_eq!(url.as_str(), "http://localhost:11434/v1/chat/completions");
        assert!(completions_url("localhost:11434").is_err());
        assert!(completions_url("ftp://example.com/v1").is_err());
        assert!(completions_url("http://h/v1?x=1").is_err());
    }

    #[test]
    fn bad_settings_are_rejected() {
        let base = OpenAiConfig::default();
        let bad_key = OpenAiConfig {
            api_key: Some("line\nbreak".into()),
            ..base.clone()
        };
        assert!(matches!(
            OpenAiModel::new(bad_key),
            Err(ConfigError::ApiKey)
        ));
        let bad_header = OpenAiConfig {
            extra_headers: vec![("bad header".into(), "v".into())],
            ..base.clone()
        };
        assert!(matches!(
            OpenAiModel::new(bad_header),
            Err(ConfigError::Header { .. })
        ));
        let no_model = OpenAiConfig {
            model: " ".into(),
            ..base.clone()
        };
        assert!(matches!(
            OpenAiModel::new(no_model),
            Err(ConfigError::Model)
        ));
        let mut no_attempts = base;
        no_attempts.retry.max_attempts = 0;
        assert!(OpenAiModel::new(no_attempts).is_err());
    }

    #[test]
    fn system_prompt_goes_first_and_options_are_sent() {
        let model = OpenAiModel::new(OpenAiConfig {
            model: "m".into(),
            system_prompt: Some("be brief".into()),
            temperature: Some(0.5),
            max_tokens: Some(64),
            ..OpenAiConfig::default()
        })
        .expect("valid");
        let request = ModelRequest {
            messages: vec![colloquy_core::ContextMessage {
                role: colloquy_core::Role::User,
                content: "hi".into(),
            }],
        };
        let body: serde_json::Value =
            serde_json::from_slice(&model.body(&request, true).expect("encodes")).expect("json");
        assert_eq!(
            body,
            serde_json::json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"}
                ],
                "stream": true,
                "stream_options": {"include_usage": true},
                "temperature": 0.5,
                "max_tokens": 64
            })
        );
    }
}
