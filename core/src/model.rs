//! What is sent to and received from a [`ChatModel`](crate::ports::ChatModel).

use serde::{Deserialize, Serialize};

use crate::message::Role;

/// One message of the context a model answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextMessage {
    /// Who wrote it.
    pub role: Role,
    /// The text.
    pub content: String,
}

/// A request to a model: the conversation so far, oldest first; the last message is
/// the user's new one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModelRequest {
    /// The context, oldest first.
    pub messages: Vec<ContextMessage>,
}

impl ModelRequest {
    /// An estimate of the prompt's tokens (see [`estimate_tokens`]), with 4 more per
    /// message for the chat format's framing.
    #[must_use]
    pub fn estimated_prompt_tokens(&self) -> u64 {
        self.messages
            .iter()
            .map(|m| estimate_tokens(&m.content).saturating_add(4))
            .fold(0, u64::saturating_add)
    }

    /// The text of the last user message, if any.
    #[must_use]
    pub fn last_user_message(&self) -> Option<&str> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.as_str())
    }
}

/// An honest estimate of the tokens `text` takes when the model reported none: one
/// per 4 characters (Unicode scalar values), rounded up — about what common BPE
/// tokenizers give for English prose; code and other scripts take more.
#[must_use]
pub fn estimate_tokens(text: &str) -> u64 {
    u64::try_from(text.chars().count().div_ceil(4)).unwrap_or(u64::MAX)
}

/// Why a generation ended; stored as the assistant message's `metadata.finish_reason`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model finished its answer.
    Stop,
    /// The model hit its token limit.
    Length,
    /// The model's content filter stopped it.
    ContentFilter,
    /// The model failed mid-answer; the text is truncated.
    Error,
    /// The generation was cancelled; the text is truncated.
    Cancelled,
}

impl FinishReason {
    /// Reads the name [`FinishReason::as_str`] gives.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Stop,
            Self::Length,
            Self::ContentFilter,
            Self::Error,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The reason as written in metadata and SSE events.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ContentFilter => "content_filter",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Token counts as the model server reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens in the answer.
    pub completion_tokens: u64,
    /// Their sum, as reported.
    pub total_tokens: u64,
    /// Whether these are Colloquy's estimate (see [`estimate_tokens`]) rather than
    /// the model server's count.
    #[serde(default)]
    pub estimated: bool,
}

impl Usage {
    /// Colloquy's estimate for `request` answered with `answer` (so far).
    #[must_use]
    pub fn estimate(request: &ModelRequest, answer: &str) -> Self {
        let prompt_tokens = request.estimated_prompt_tokens();
        let completion_tokens = estimate_tokens(answer);
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            estimated: true,
        }
    }
}

/// What a model says about an answer once it is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishInfo {
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// The model that answered, as the server names it.
    pub model: Option<String>,
    /// Token usage, when reported.
    pub usage: Option<Usage>,
}

impl Default for FinishInfo {
    fn default() -> Self {
        Self {
            finish_reason: FinishReason::Stop,
            model: None,
            usage: None,
        }
    }
}

/// A whole answer from [`ChatModel::complete`](crate::ports::ChatModel::complete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The answer text.
    pub text: String,
    /// How it ended.
    pub info: FinishInfo,
}

/// One item of [`ChatModel::stream`](crate::ports::ChatModel::stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelEvent {
    /// The next piece of text.
    Delta(String),
    /// The answer is complete. A stream that ends without it counts as
    /// [`FinishReason::Stop`] with no further information.
    Finished(FinishInfo),
}
