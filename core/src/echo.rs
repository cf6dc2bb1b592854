//! [`EchoModel`]: the placeholder model, answering `Echo: {message}`.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::error::ModelError;
use crate::model::{Completion, FinishInfo, ModelEvent, ModelRequest, Usage};
use crate::ports::{ChatModel, ModelStream};

/// Answers exactly `Echo: {last user message}`; streamed in word chunks (each word
/// with the whitespace after it), whose concatenation is the answer exactly.
#[derive(Debug, Clone, Default)]
pub struct EchoModel {
    chunk_delay: Duration,
}

impl EchoModel {
    /// An echo model that streams without delay.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An echo model that waits `delay` before each streamed chunk (tests, benchmarks).
    #[must_use]
    pub fn with_chunk_delay(delay: Duration) -> Self {
        Self { chunk_delay: delay }
    }

    /// The answer to `request`.
    #[must_use]
    pub fn answer(request: &ModelRequest) -> String {
        format!("Echo: {}", request.last_user_message().unwrap_or_default())
    }

    /// The echo model's usage: an estimate (it has no tokenizer), see
    /// [`crate::estimate_tokens`].
    #[must_use]
    pub fn usage(request: &ModelRequest, answer: &str) -> Usage {
        Usage::estimate(request, answer)
    }

    /// Splits `text` into word chunks; concatenating them gives `text` back.
    #[must_use]
    pub fn chunks(text: &str) -> Vec<String> {
        text.split_inclusive(char::is_whitespace)
            .map(str::to_owned)
            .collect()
    }
}

#[async_trait]
impl ChatModel for EchoModel {
    async fn complete(&self, request: &ModelRequest) -> Result<Completion, ModelError> {
        let text = Self::answer(request);
        Ok(Completion {
            info: FinishInfo {
                model: Some("echo".to_owned()),
                usage: Some(Self::usage(request, &text)),
                ..FinishInfo::default()
            },
            text,
        })
    }

    fn model_name(&self) -> Option<String> {
        Some("echo".to_owned())
    }

    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ModelError> {
        let delay = self.chunk_delay;
        let answer = Self::answer(request);
        let usage = Self::usage(request, &answer);
        let deltas = Self::chunks(&answer)
            .into_iter()
            .map(ModelEvent::Delta)
            .chain(std::iter::once(ModelEvent::Finished(FinishInfo {
                model: Some("echo".to_owned()),
                usage: Some(usage),
                ..FinishInfo::default()
            })));
        Ok(futures::stream::iter(deltas)
            .then(move |event| async move {
                if delay > Duration::ZERO && matches!(event, ModelEvent::Delta(_)) {
                    tokio::time::sleep(delay).await;
                }
                Ok(event)
            })
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Role;
    use crate::model::ContextMessage;

    fn request(text: &str) -> ModelRequest {
        ModelRequest {
            messages: vec![ContextMessage {
                role: Role::User,
                content: text.into(),
            }],
        }
    }

    #[tokio::test]
    async fn streamed_chunks_concatenate_to_the_completion() {
        let model = EchoModel::new();
        let req = request("hello  wide\nworld ");
        let whole = model.complete(&req).await.expect("echo").text;
        assert_eq!(whole, "Echo: hello  wide\nworld ");
        let mut stream = model.stream(&req).await.expect("echo");
        let mut joined = String::new();
        let mut deltas = 0;
        while let Some(event) = stream.next().await {
            if let ModelEvent::Delta(d) = event.expect("no error") {
                joined.push_str(&d);
                deltas += 1;
            }
        }
        assert_eq!(joined, whole);
        assert!(deltas > 3, "streamed in several chunks, got {deltas}");
    }
}
