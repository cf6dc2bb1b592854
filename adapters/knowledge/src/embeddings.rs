//! Embeddings from any OpenAI-compatible `POST {base_url}/embeddings` server
//! (OpenAI, Ollama, vLLM, llama.cpp server, LM Studio, LiteLLM, text-embeddings-
//! inference, ...), with the same settings style as the chat model adapter.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use colloquy_core::retry::{parse_retry_after, with_retries, Failure, RetryPolicy};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

/// Turns texts into vectors.
#[async_trait]
pub trait Embedder: Send + Sync + 'static {
    /// The model's name, stored with each vector: vectors of another model are not
    /// compared with this one's.
    fn model(&self) -> &str;

    /// One unit-length vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbeddingsError>;
}

/// Settings of [`OpenAiEmbeddings`]; build it with struct update syntax over
/// [`EmbeddingsConfig::default`]. `Debug` never shows the API key.
#[derive(Clone, PartialEq)]
pub struct EmbeddingsConfig {
    /// The API root, ending in `/v1` for most servers; `/embeddings` is appended.
    /// Default `https://api.openai.com/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer {key}` when set. Local servers need none.
    pub api_key: Option<String>,
    /// The embedding model's name. Default `text-embedding-3-small`.
    pub model: String,
    /// Texts per request. Default 64.
    pub batch_size: usize,
    /// Opening the connection. Default 10 s.
    pub connect_timeout: Duration,
    /// One whole request, response included. Default 60 s.
    pub request_timeout: Duration,
    /// When a failed request is tried again: connection failures, `429` and `5xx`
    /// answers are retried (honouring `Retry-After` up to
    /// [`RetryPolicy::max_retry_after`]), with the policy's backoff and jitter. The
    /// same policy type as the chat model's. Default: 3 attempts, backoff from
    /// 250 ms doubling up to 4 s.
    pub retry: RetryPolicy,
}

impl Default for EmbeddingsConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_owned(),
            api_key: None,
            model: "text-embedding-3-small".to_owned(),
            batch_size: 64,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for EmbeddingsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingsConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("batch_size", &self.batch_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Why embeddings could not be had.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum EmbeddingsError {
    /// A setting cannot be used.
    #[error("invalid embeddings setting {field}: {reason}")]
    Config {
        /// The setting at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached, or the request timed out.
    #[error("embeddings server unreachable")]
    Transport(#[source] reqwest::Error),
    /// The server answered with an error status.
    #[error("embeddings server answered HTTP {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The `error.message` of the body, when it had one.
        message: Option<String>,
    },
    /// The answer is not what the API specifies.
    #[error("invalid answer from the embeddings server: {0}")]
    Protocol(String),
}

/// An [`Embedder`] over an OpenAI-compatible `/embeddings` endpoint.
#[derive(Clone)]
pub struct OpenAiEmbeddings {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    config: EmbeddingsConfig,
}

impl fmt::Debug for OpenAiEmbeddings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiEmbeddings")
            .field("url", &self.url.as_str())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

impl OpenAiEmbeddings {
    /// An embedder with the given settings.
    ///
    /// # Errors
    /// [`EmbeddingsError::Config`] for a base URL that is not http(s), an empty
    /// model, a zero batch size, retry settings out of range, or an API key that cannot be sent.
    pub fn new(config: EmbeddingsConfig) -> Result<Self, EmbeddingsError> {
        let bad = |field, reason: &str| EmbeddingsError::Config {
            field,
            reason: reason.to_owned(),
        };
        let mut url =
            Url::parse(config.base_url.trim()).map_err(|e| bad("base_url", &e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("base_url", "must be an http or https URL"));
        }
        let path = format!("{}/embeddings", url.path().trim_end_matches('/'));
        url.set_path(&path);
        if config.model.trim().is_empty() {
            return Err(bad("model", "is empty"));
        }
        if config.batch_size == 0 {
            return Err(bad("batch_size", "must be at least 1"));
        }
        config
            .retry
            .validate()
            .map_err(|e| bad(e.field(), e.reason()))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &config.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| bad("api_key", "contains characters not allowed in a header"))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("colloquy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad("client", &e.to_string()))?;
        Ok(Self {
            client,
            url,
            headers,
            config,
        })
    }

    /// The URL requests go to: `{base_url}/embeddings`.
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The settings it was built with.
    #[must_use]
    pub fn config(&self) -> &EmbeddingsConfig {
        &self.config
    }

    async fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbeddingsError> {
        let body = json!({"model": self.config.model, "input": texts, "encoding_format": "float"});
        with_retries(
            &self.config.retry,
            None,
            || self.attempt(&body, texts.len()),
            |error, attempt, wait| {
                tracing::warn!(
                    error = %error,
                    attempt,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "embeddings request failed; retrying"
                );
            },
        )
        .await
    }

    /// One request: connection failures, `429` and `5xx` may be retried.
    async fn attempt(
        &self,
        body: &serde_json::Value,
        expected: usize,
    ) -> Result<Vec<Vec<f32>>, Failure<EmbeddingsError>> {
        let sent = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body.to_string())
            .send()
            .await;
        let response = sent.map_err(|e| Failure::retryable(EmbeddingsError::Transport(e), None))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::fatal(EmbeddingsError::Transport(e)))?;
        if status.is_success() {
            return parse(&bytes, expected).map_err(Failure::fatal);
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .ok()
            .and_then(|b| b.error.message);
        let error = EmbeddingsError::Status {
            status: status.as_u16(),
            message,
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(Failure::retryable(error, retry_after))
        } else {
            Err(Failure::fatal(error))
        }
    }
}

/// The vectors of an answer, in input order, each scaled to unit length.
fn parse(bytes: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, EmbeddingsError> {
    let answer: Answer =
        serde_json::from_slice(bytes).map_err(|e| EmbeddingsError::Protocol(e.to_string()))?;
    if answer.data.len() != expected {
        return Err(EmbeddingsError::Protocol(format!(
            "{} vectors for {expected} texts",
            answer.data.len()
        )));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in answer.data.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        let slot = slots
            .get_mut(index)
            .ok_or_else(|| EmbeddingsError::Protocol(format!("index {index} out of range")))?;
        *slot = Some(item.embedding);
    }
    let vectors: Vec<Vec<f32>> = slots
        .into_iter()
        .map(|v| v.ok_or_else(|| EmbeddingsError::Protocol("an index is missing".into())))
        .collect::<Result<_, _>>()?;
    let dims = vectors.first().map_or(0, Vec::len);
    if vectors.iter().any(|v| v.len() != dims || v.is_empty()) {
        return Err(EmbeddingsError::Protocol(
            "vectors of different or zero length".into(),
        ));
    }
    Ok(vectors.into_iter().map(normalized).collect())
}

/// `v` scaled to unit length (a zero vector stays zero).
#[must_use]
pub fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

#[async_trait]
impl Embedder for OpenAiEmbeddings {
    fn model(&self) -> &str {
        &self.config.model
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbeddingsError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.config.batch_size) {
            out.extend(self.request(batch).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_ordered_by_index_and_normalized() {
        let body = br#"{"object":"list","data":[{"index":1,"embedding":[0,2]},{"index":0,"embedding":[3,4]}],"model":"m"}"#;
        let v = parse(body, 2).expect("valid");
        assert_eq!(v, [vec![0.6, 0.8], vec![0.0, 1.0]]);
        assert!(parse(body, 3).is_err());
        assert!(parse(br#"{"data":[{"embedding":[1]},{"embedding":[1,2]}]}"#, 2).is_err());
        assert!(parse(b"not json", 1).is_err());
    }

    #[test]
    fn settings_are_checked_and_the_key_is_hidden() {
        let config = EmbeddingsConfig {
            base_url: "http://127.0.0.1:9/v1/".into(),
            api_key: Some("sk-secret".into()),
            ..EmbeddingsConfig::default()
        };
        assert!(!format!("{config:?}").contains("sk-secret"));
        let e = OpenAiEmbeddings::new(config.clone()).expect("valid");
        assert_eq!(e.url().as_str(), "http://127.0.0.1:9/v1/embeddings");
        for bad in [
            EmbeddingsConfig {
                base_url: "ftp://x".into(),
                ..config.clone()
            },
            EmbeddingsConfig {
                model: " ".into(),
                ..config.clone()
            },
            EmbeddingsConfig {
                batch_size: 0,
                ..config.clone()
            },
        ] {
            assert!(OpenAiEmbeddings::new(bad).is_err());
        }
    }
}
