//! End-to-end tests of `OpenAiModel` against a fake OpenAI-compatible server on
//! loopback, directly and through `ChatService`.

mod complete;
mod service;
mod streaming;

use std::time::Duration;

use colloquy_core::{ContextMessage, ModelError, ModelRequest, Role};
use colloquy_openai::{OpenAiConfig, OpenAiModel, RetryPolicy, Timeouts};

use colloquy_openai::fake::FakeServer;

/// Settings for tests against `server`: generous deadlines, fast retries.
fn config(server: &FakeServer) -> OpenAiConfig {
    config_for(server.base_url())
}

/// Settings for tests against `base_url`.
fn config_for(base_url: String) -> OpenAiConfig {
    OpenAiConfig {
        base_url,
        api_key: Some("sk-test-key".into()),
        model: "test-model".into(),
        timeouts: Timeouts {
            connect: Duration::from_secs(10),
            first_chunk: Duration::from_secs(30),
            between_chunks: Duration::from_secs(30),
            total: Duration::from_secs(60),
        },
        retry: RetryPolicy {
            max_attempts: 3,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            jitter: 0.5,
            max_retry_after: Duration::from_secs(5),
        },
        ..OpenAiConfig::default()
    }
}

fn model(config: OpenAiConfig) -> OpenAiModel {
    OpenAiModel::new(config).expect("valid config")
}

fn message(role: Role, content: &str) -> ContextMessage {
    ContextMessage {
        role,
        content: content.into(),
    }
}

/// A short conversation ending with the user's question.
fn request() -> ModelRequest {
    ModelRequest {
        messages: vec![
            message(Role::System, "session rules"),
            message(Role::User, "first question"),
            message(Role::Assistant, "first answer"),
            message(Role::User, "second question"),
        ],
    }
}

/// The cause kept inside a model error, as text.
fn cause(error: &ModelError) -> String {
    std::error::Error::source(error)
        .map(ToString::to_string)
        .unwrap_or_default()
}
