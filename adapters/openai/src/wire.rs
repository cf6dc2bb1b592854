//! The Chat Completions wire format: the request body sent, and the response and
//! stream chunk bodies read (only the fields Colloquy uses; unknown fields are
//! ignored, and every field a compatible server might leave out is optional).

use colloquy_core::{Completion, ContextMessage, FinishInfo, FinishReason, ModelError, Usage};

use crate::error::UpstreamError;
use serde::{Deserialize, Serialize};

/// The body of `POST {base_url}/chat/completions`.
#[derive(Debug, Serialize)]
pub(crate) struct ChatRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) messages: Vec<WireMessage<'a>>,
    pub(crate) stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_tokens: Option<u32>,
}

/// One message of the request.
#[derive(Debug, Serialize)]
pub(crate) struct WireMessage<'a> {
    pub(crate) role: &'static str,
    pub(crate) content: &'a str,
}

impl<'a> From<&'a ContextMessage> for WireMessage<'a> {
    fn from(m: &'a ContextMessage) -> Self {
        Self {
            role: m.role.as_str(),
            content: &m.content,
        }
    }
}

/// `stream_options` of a streamed request.
#[derive(Debug, Serialize)]
pub(crate) struct StreamOptions {
    pub(crate) include_usage: bool,
}

/// Token usage as servers report it; some leave fields out.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        let prompt_tokens = u.prompt_tokens.unwrap_or(0);
        let completion_tokens = u.completion_tokens.unwrap_or(0);
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: u
                .total_tokens
                .unwrap_or(prompt_tokens.saturating_add(completion_tokens)),
            estimated: false,
        }
    }
}

/// An `error` object, as servers send it in error bodies and (some) inside streams.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireError {
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// An error body: `{"error": {...}}`; some servers send `{"error": "text"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorField,
}

/// The `error` field of an error body.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ErrorField {
    Object(WireError),
    Text(String),
}

impl ErrorField {
    pub(crate) fn message(self) -> Option<String> {
        match self {
            Self::Object(e) => e.message,
            Self::Text(t) => Some(t),
        }
    }
}

/// A non-streamed response.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatResponse {
    #[serde(default)]
    pub(crate) model: Option<String>,
    #[serde(default)]
    pub(crate) choices: Vec<ResponseChoice>,
    #[serde(default)]
    pub(crate) usage: Option<WireUsage>,
}

/// One choice of a non-streamed response.
#[derive(Debug, Deserialize)]
pub(crate) struct ResponseChoice {
    #[serde(default)]
    pub(crate) index: u32,
    #[serde(default)]
    pub(crate) message: Option<ResponseMessage>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
}

/// The message of a non-streamed choice.
#[derive(Debug, Deserialize)]
pub(crate) struct ResponseMessage {
    #[serde(default)]
    pub(crate) content: Option<String>,
    #[serde(default)]
    pub(crate) refusal: Option<String>,
}

/// One chunk of a streamed response (the JSON of one SSE `data` event).
#[derive(Debug, Deserialize)]
pub(crate) struct ChatChunk {
    #[serde(default)]
    pub(crate) model: Option<String>,
    #[serde(default)]
    pub(crate) choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub(crate) usage: Option<WireUsage>,
    #[serde(default)]
    pub(crate) error: Option<ErrorField>,
}

/// One choice of a chunk.
#[derive(Debug, Deserialize)]
pub(crate) struct ChunkChoice {
    #[serde(default)]
    pub(crate) index: u32,
    #[serde(default)]
    pub(crate) delta: Option<ChunkDelta>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
}

/// The delta of a chunk's choice.
#[derive(Debug, Deserialize)]
pub(crate) struct ChunkDelta {
    #[serde(default)]
    pub(crate) content: Option<String>,
    #[serde(default)]
    pub(crate) refusal: Option<String>,
}

/// Reads a whole (non-streamed) answer; an `error` object is the server's failure.
pub(crate) fn completion(bytes: &[u8]) -> Result<Completion, ModelError> {
    if let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(bytes) {
        return Err(ModelError::Unavailable {
            retryable: false,
            source: Box::new(UpstreamError::Status {
                status: 200,
                message: error.message(),
            }),
        });
    }
    let parsed: ChatResponse = serde_json::from_slice(bytes)
        .map_err(|e| ModelError::Protocol(Box::new(UpstreamError::Json(e))))?;
    let choice = parsed
        .choices
        .into_iter()
        .find(|c| c.index == 0)
        .ok_or_else(|| ModelError::Protocol(Box::new(UpstreamError::NoChoices)))?;
    let (content, refusal) = choice
        .message
        .map(|m| (m.content, m.refusal))
        .unwrap_or_default();
    let text = content
        .filter(|c| !c.is_empty())
        .or(refusal)
        .unwrap_or_default();
    Ok(Completion {
        text,
        info: FinishInfo {
            finish_reason: choice
                .finish_reason
                .as_deref()
                .map_or(FinishReason::Stop, finish_reason),
            model: parsed.model,
            usage: parsed.usage.map(Into::into),
        },
    })
}

/// Maps a server's `finish_reason` to Colloquy's.
///
/// `stop` (and `eos`, `end_turn`, `stop_sequence` from some servers) is a finished
/// answer; `length` (`max_tokens`) hit the token limit; `content_filter` was stopped
/// by the server's filter. `tool_calls` / `function_call` end the model's turn: no
/// tools are offered, so they count as `stop`. `error` means the server failed
/// mid-answer. Anything else is taken as `stop` and logged.
pub(crate) fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" | "eos" | "eos_token" | "end_turn" | "stop_sequence" | "tool_calls"
        | "function_call" => FinishReason::Stop,
        "length" | "max_tokens" | "model_length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        "error" => FinishReason::Error,
        other => {
            tracing::debug!(
                finish_reason = other,
                "unknown finish_reason; taken as stop"
            );
            FinishReason::Stop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloquy_core::Role;

    #[test]
    fn finish_reasons_map_sensibly() {
        assert_eq!(finish_reason("stop"), FinishReason::Stop);
        assert_eq!(finish_reason("length"), FinishReason::Length);
        assert_eq!(finish_reason("content_filter"), FinishReason::ContentFilter);
        assert_eq!(finish_reason("tool_calls"), FinishReason::Stop);
        assert_eq!(finish_reason("error"), FinishReason::Error);
        assert_eq!(finish_reason("something_new"), FinishReason::Stop);
    }

    #[test]
    fn request_omits_unset_options() {
        let context = [ContextMessage {
            role: Role::User,
            content: "hi".into(),
        }];
        let body = ChatRequest {
            model: "m",
            messages: context.iter().map(WireMessage::from).collect(),
            stream: false,
            stream_options: None,
            temperature: None,
            max_tokens: None,
        };
        let json = serde_json::to_value(&body).expect("serializable");
        assert_eq!(
            json,
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": false})
        );
    }

    #[test]
    fn usage_total_is_derived_when_missing() {
        let u: WireUsage =
            serde_json::from_str(r#"{"prompt_tokens": 3, "completion_tokens": 4}"#).expect("json");
        assert_eq!(Usage::from(u).total_tokens, 7);
    }

    #[test]
    fn whole_answers_null_content_refusal_and_errors() {
        let refused = br#"{"choices":[{"index":0,"message":{"content":null,"refusal":"I can't"},"finish_reason":"content_filter"}]}"#;
        let answer = completion(refused).expect("valid");
        assert_eq!(answer.text, "I can't");
        assert_eq!(answer.info.finish_reason, FinishReason::ContentFilter);
        assert_eq!(answer.info.model, None);
        let empty = br#"{"model":"m","choices":[{"index":0,"message":{"content":null}}]}"#;
        let answer = completion(empty).expect("valid");
        assert_eq!(
            (answer.text.as_str(), answer.info.finish_reason),
            ("", FinishReason::Stop)
        );
        assert!(matches!(
            completion(br#"{"error":"busy"}"#),
            Err(ModelError::Unavailable {
                retryable: false,
                ..
            })
        ));
        assert!(matches!(completion(b"[]"), Err(ModelError::Protocol(_))));
    }

    #[test]
    fn error_bodies_in_both_shapes() {
        let object: ErrorBody =
            serde_json::from_str(r#"{"error": {"message": "bad key", "type": "auth"}}"#)
                .expect("json");
        assert_eq!(object.error.message().as_deref(), Some("bad key"));
        let text: ErrorBody =
            serde_json::from_str(r#"{"error": "model not found"}"#).expect("json");
        assert_eq!(text.error.message().as_deref(), Some("model not found"));
    }
}
