//! Reading a streamed Chat Completions answer: SSE events -> chunks -> [`ModelEvent`]s,
//! under the first-chunk, between-chunks and total deadlines.
//!
//! How a stream ends:
//! - `data: [DONE]` ends it: [`ModelEvent::Finished`] follows, with the last
//!   `finish_reason` seen (`stop` when none was sent), the server's model name and
//!   the usage it reported (the usage chunk, with empty `choices`, comes just before
//!   `[DONE]` when `stream_options.include_usage` was asked).
//! - A stream that ends without `[DONE]` but after a `finish_reason` also finishes
//!   normally (some servers omit `[DONE]`).
//! - A stream that ends without either is a truncated answer:
//!   [`ModelError::Protocol`] with [`UpstreamError::Truncated`].
//! - An `error` object inside the stream is [`ModelError::Unavailable`]
//!   (not retryable); data that is not a JSON chunk is [`ModelError::Protocol`].

use std::collections::VecDeque;
use std::time::Duration;

use colloquy_core::{
    Completion, FinishInfo, FinishReason, ModelError, ModelEvent, TimeoutKind, Usage,
};
use tokio::time::Instant;

use crate::error::UpstreamError;
use crate::sse::SseDecoder;
use crate::wire::{self, ChatChunk};

/// Turns the `data` of SSE events into text deltas and the final [`FinishInfo`].
#[derive(Debug, Default)]
pub(crate) struct ChunkParser {
    model: Option<String>,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    done: bool,
}

impl ChunkParser {
    /// Reads one event's data; returns the text it adds (if any).
    pub(crate) fn data(&mut self, data: &str) -> Result<Option<String>, ModelError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let chunk: ChatChunk = serde_json::from_str(data)
            .map_err(|e| ModelError::Protocol(Box::new(UpstreamError::Json(e))))?;
        if let Some(error) = chunk.error {
            return Err(ModelError::Unavailable {
                retryable: false,
                source: Box::new(UpstreamError::InStream {
                    message: error.message(),
                }),
            });
        }
        if let Some(model) = chunk.model.filter(|m| !m.is_empty()) {
            self.model.get_or_insert(model);
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        let mut text = String::new();
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                text.extend(delta.content);
                text.extend(delta.refusal);
            }
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                self.finish_reason = Some(wire::finish_reason(&reason));
            }
        }
        Ok((!text.is_empty()).then_some(text))
    }

    /// Whether `[DONE]` was read.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// What is known about the answer so far.
    pub(crate) fn info(&self) -> FinishInfo {
        FinishInfo {
            finish_reason: self.finish_reason.unwrap_or(FinishReason::Stop),
            model: self.model.clone(),
            usage: self.usage,
        }
    }

    /// The outcome of a stream that ended (the connection closed) after what was read.
    pub(crate) fn end_of_stream(&self) -> Result<FinishInfo, ModelError> {
        if self.done || self.finish_reason.is_some() {
            Ok(self.info())
        } else {
            Err(ModelError::Protocol(Box::new(UpstreamError::Truncated)))
        }
    }
}

/// Reads a streamed answer from an HTTP response, one network read at a time.
#[derive(Debug)]
pub(crate) struct EventReader {
    /// `None` once the stream has ended (the connection is released).
    response: Option<reqwest::Response>,
    sse: SseDecoder,
    parser: ChunkParser,
    /// Items ready to hand out, in order; an `Err` is always last.
    pending: VecDeque<Result<ModelEvent, ModelError>>,
    /// When the next `data` event must have arrived by.
    data_deadline: Instant,
    /// Which deadline `data_deadline` is.
    waiting_for: TimeoutKind,
    between_chunks: Duration,
    total_deadline: Instant,
}

impl EventReader {
    /// A reader of `response`, whose first `data` event is due by `first_chunk_deadline`.
    pub(crate) fn new(
        response: reqwest::Response,
        first_chunk_deadline: Instant,
        between_chunks: Duration,
        total_deadline: Instant,
    ) -> Self {
        Self {
            response: Some(response),
            sse: SseDecoder::new(),
            parser: ChunkParser::default(),
            pending: VecDeque::new(),
            data_deadline: first_chunk_deadline,
            waiting_for: TimeoutKind::FirstChunk,
            between_chunks,
            total_deadline,
        }
    }

    /// A reader that hands out a whole answer as one delta and its finish.
    pub(crate) fn from_completion(completion: Completion) -> Self {
        let now = Instant::now();
        let mut reader = Self {
            response: None,
            sse: SseDecoder::new(),
            parser: ChunkParser::default(),
            pending: VecDeque::new(),
            data_deadline: now,
            waiting_for: TimeoutKind::FirstChunk,
            between_chunks: Duration::ZERO,
            total_deadline: now,
        };
        if !completion.text.is_empty() {
            reader
                .pending
                .push_back(Ok(ModelEvent::Delta(completion.text)));
        }
        reader
            .pending
            .push_back(Ok(ModelEvent::Finished(completion.info)));
        reader
    }

    /// The next item, or `None` after the last.
    pub(crate) async fn next(&mut self) -> Option<Result<ModelEvent, ModelError>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            self.response.as_ref()?;
            self.fill().await;
        }
    }

    /// Reads until an item is ready. Returns the error when the first item would be
    /// one (the stream failed before producing anything, so the call may be retried).
    pub(crate) async fn first_item(&mut self) -> Result<(), ModelError> {
        loop {
            match self.pending.front() {
                Some(Ok(_)) => return Ok(()),
                Some(Err(_)) => {
                    return match self.pending.pop_front() {
                        Some(Err(e)) => Err(e),
                        _ => Ok(()),
                    }
                }
                None if self.response.is_none() => return Ok(()),
                None => self.fill().await,
            }
        }
    }

    /// Ends the stream with `item` as its last item.
    fn end(&mut self, item: Result<ModelEvent, ModelError>) {
        self.pending.push_back(item);
        self.response = None;
    }

    /// One network read, turned into pending items.
    async fn fill(&mut self) {
        let Some(response) = self.response.as_mut() else {
            return;
        };
        let (deadline, kind) = if self.total_deadline <= self.data_deadline {
            (self.total_deadline, TimeoutKind::Total)
        } else {
            (self.data_deadline, self.waiting_for)
        };
        let read = tokio::time::timeout_at(deadline, response.chunk()).await;
        let bytes = match read {
            Err(_elapsed) => return self.end(Err(ModelError::Timeout(kind))),
            Ok(Err(e)) => {
                return self.end(Err(ModelError::Unavailable {
                    retryable: true,
                    source: Box::new(UpstreamError::Transport(e)),
                }))
            }
            Ok(Ok(None)) => {
                if self.sse.has_partial_event() {
                    tracing::debug!("model stream ended inside an event");
                }
                let last = self.parser.end_of_stream().map(ModelEvent::Finished);
                return self.end(last);
            }
            Ok(Ok(Some(bytes))) => bytes,
        };
        let events = match self.sse.push(&bytes) {
            Ok(events) => events,
            Err(e) => {
                return self.end(Err(ModelError::Protocol(Box::new(UpstreamError::Sse(e)))));
            }
        };
        for event in events {
            self.data_deadline = Instant::now() + self.between_chunks;
            self.waiting_for = TimeoutKind::BetweenChunks;
            match self.parser.data(&event.data) {
                Ok(Some(text)) => self.pending.push_back(Ok(ModelEvent::Delta(text))),
                Ok(None) => {}
                Err(e) => return self.end(Err(e)),
            }
            if self.parser.is_done() {
                let info = self.parser.info();
                if let Some(response) = self.response.take() {
                    release(response).await;
                }
                return self.end(Ok(ModelEvent::Finished(info)));
            }
        }
    }
}

/// How long the end of a body is waited for after `data: [DONE]`.
const RELEASE_WAIT: Duration = Duration::from_millis(250);

/// Reads what follows `data: [DONE]` (normally just the end of the body) so the
/// connection goes back to the pool for the next call; gives up after a short wait
/// or a few reads, which closes the connection instead.
async fn release(mut response: reqwest::Response) {
    let drained = tokio::time::timeout(RELEASE_WAIT, async {
        for _ in 0..8 {
            match response.chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
        false
    })
    .await;
    if !matches!(drained, Ok(true)) {
        tracing::debug!("model stream went on after [DONE]; closing the connection");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk(content: &str) -> String {
        serde_json::json!({
            "id": "c1", "object": "chat.completion.chunk", "model": "llama3.2",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
        })
        .to_string()
    }

    #[test]
    fn deltas_finish_reason_model_and_usage() {
        let mut p = ChunkParser::default();
        let role_only =
            r#"{"model":"m-1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
        assert_eq!(p.data(role_only).expect("valid"), None);
        assert_eq!(
            p.data(&chunk("Hel")).expect("valid").as_deref(),
            Some("Hel")
        );
        let last = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#;
        assert_eq!(p.data(last).expect("valid"), None);
        let usage =
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        assert_eq!(p.data(usage).expect("valid"), None);
        assert!(!p.is_done());
        assert_eq!(p.data("[DONE]").expect("valid"), None);
        assert!(p.is_done());
        let info = p.end_of_stream().expect("complete");
        assert_eq!(info.finish_reason, FinishReason::Length);
        assert_eq!(info.model.as_deref(), Some("m-1"), "first model name kept");
        assert_eq!(
            info.usage,
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 2,
                total_tokens: 7,
                estimated: false
            })
        );
    }

    #[test]
    fn other_choices_are_ignored() {
        let mut p = ChunkParser::default();
        let two = r#"{"choices":[{"index":1,"delta":{"content":"no"}},{"index":0,"delta":{"content":"yes"}}]}"#;
        assert_eq!(p.data(two).expect("valid").as_deref(), Some("yes"));
    }

    #[test]
    fn end_without_done_is_truncated_unless_finished() {
        let mut p = ChunkParser::default();
        p.data(&chunk("partial")).expect("valid");
        let err = p.end_of_stream().expect_err("truncated");
        assert!(matches!(err, ModelError::Protocol(_)), "{err:?}");
        p.data(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#)
            .expect("valid");
        assert_eq!(
            p.end_of_stream().expect("finished").finish_reason,
            FinishReason::Stop
        );
    }

    #[test]
    fn malformed_data_is_a_protocol_error() {
        let mut p = ChunkParser::default();
        let err = p.data("{not json").expect_err("invalid");
        assert!(matches!(err, ModelError::Protocol(_)), "{err:?}");
    }

    #[test]
    fn error_object_in_stream_is_unavailable() {
        let mut p = ChunkParser::default();
        let err = p
            .data(r#"{"error":{"message":"overloaded","code":503}}"#)
            .expect_err("error event");
        assert!(
            matches!(
                err,
                ModelError::Unavailable {
                    retryable: false,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(std::error::Error::source(&err)
            .map(ToString::to_string)
            .is_some_and(|s| s.contains("overloaded")));
    }

    proptest! {
        #[test]
        fn any_split_of_a_chunk_stream_gives_the_same_answer(
            pieces in proptest::collection::vec("[a-zé🌍 \n\"\\\\]{0,8}", 0..8),
            crlf in proptest::bool::ANY,
            cuts in proptest::collection::vec(proptest::num::usize::ANY, 0..10),
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut bytes = String::new();
            for piece in &pieces {
                bytes.push_str(&format!("data: {}{end}{end}", chunk(piece)));
            }
            bytes.push_str(&format!(": keep-alive{end}{end}"));
            bytes.push_str(&format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}{end}{end}"
            ));
            bytes.push_str(&format!("data: [DONE]{end}{end}"));
            let bytes = bytes.into_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.push(bytes.len());
            let (mut sse, mut parser, mut text, mut from) =
                (SseDecoder::new(), ChunkParser::default(), String::new(), 0);
            for cut in cuts {
                for event in sse.push(&bytes[from..cut]).expect("small events") {
                    text.extend(parser.data(&event.data).expect("valid chunk"));
                }
                from = cut;
            }
            prop_assert!(parser.is_done());
            prop_assert_eq!(text, pieces.concat());
            let info = parser.end_of_stream().expect("complete");
            prop_assert_eq!(info.finish_reason, FinishReason::Stop);
            prop_assert_eq!(info.model.as_deref(), if pieces.is_empty() { None } else { Some("llama3.2") });
        }
    }
}
