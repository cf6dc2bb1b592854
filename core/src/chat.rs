//! Chat: the generation task that asks the model, forwards its chunks as
//! transport-neutral [`ChatEvent`]s and stores the answer.
//!
//! A generation runs in its own task, detached from the caller: a client that goes
//! away (closed browser tab, dropped connection) does not stop it, and the answer is
//! stored all the same.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::announce::Announcement;
use crate::clock::now_micros;
use crate::deps::Deps;
use crate::error::{ErrorCode, ModelError, ServiceError, StoreError};
use crate::knowledge::{Grounding, Source};
use crate::message::{ChatMessage, MessageDraft, Role};
use crate::model::{FinishInfo, FinishReason, ModelEvent, ModelRequest};
use crate::session::{Metadata, Responder, Session, SessionRef};
use crate::streams::StreamMeta;

/// One event of a streamed answer. Sequence numbers count from 0 per response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// The next piece of the answer, as the model produced it.
    Chunk {
        /// Position of this event in the response.
        seq: u64,
        /// The text.
        text: String,
    },
    /// The answer is complete and stored.
    Done {
        /// Position of this event in the response.
        seq: u64,
        /// Why it ended (`stop`, `length`, `cancelled`, ...).
        finish_reason: FinishReason,
        /// The passages the answer was grounded in; `None` when the service has no
        /// knowledge base.
        sources: Option<Vec<Source>>,
    },
    /// The answer is truncated: the model or the store failed. What was produced so
    /// far is stored with `finish_reason = "error"` when the store allows.
    Failed {
        /// Position of this event in the response.
        seq: u64,
        /// The API error code of the failure.
        code: ErrorCode,
    },
}

impl ChatEvent {
    /// The event's sequence number.
    #[must_use]
    pub fn seq(&self) -> u64 {
        match self {
            Self::Chunk { seq, .. } | Self::Done { seq, .. } | Self::Failed { seq, .. } => *seq,
        }
    }

    /// Whether this is the last event of the response.
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Self::Chunk { .. })
    }
}

/// A boxed stream of [`ChatEvent`]s.
pub type ChatEvents = Pin<Box<dyn Stream<Item = ChatEvent> + Send>>;

/// A streamed chat answer that has started: the ids are known, the events follow.
pub struct ChatStream {
    /// The session's `session_id`.
    pub session_id: String,
    /// The stored user message's id.
    pub message_id: Uuid,
    /// The id the assistant message will be stored under.
    pub response_id: Uuid,
    /// The events, ending with exactly one terminal event.
    pub events: ChatEvents,
    /// How many bytes of the answer the client already has before the first of
    /// `events` (0 for a new stream; a resume's starting point otherwise). Event ids
    /// count on from it (see docs/API.md, "Event ids").
    pub offset: u64,
    /// Who answers: `Ai` for every stream with an answer. `Human` when a person
    /// has the session (see [`crate::ChatService::request_handoff`]): the visitor's
    /// message is stored, nothing is generated, `events` is empty and
    /// `response_id` is nil (the transport sends one `done` event with
    /// `"finish_reason":"handoff"` and `"response_id":null`).
    pub responder: Responder,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("session_id", &self.session_id)
            .field("message_id", &self.message_id)
            .field("response_id", &self.response_id)
            .finish_non_exhaustive()
    }
}

/// A whole chat answer, as `POST /messages/chat/` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatReply {
    /// The assistant's answer (empty when a person has the session).
    pub response: String,
    /// The session's `session_id`.
    pub session_id: String,
    /// The stored user message's id.
    pub message_id: Uuid,
    /// The stored assistant message's id; `None` when a person has the session
    /// and nothing was generated.
    pub response_id: Option<Uuid>,
    /// The passages the answer was grounded in; absent when the service has no
    /// knowledge base.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<Source>>,
    /// Who answers the session: `ai` (this reply is the model's answer) or `human`
    /// (a person has the session: the message is stored for them, and their reply
    /// arrives on the session's events).
    pub responder: Responder,
}

impl ChatReply {
    /// The reply to a chat in a session a person has: the message stored, nothing
    /// generated.
    pub(crate) fn handoff(session_id: String, message_id: Uuid) -> Self {
        Self {
            response: String::new(),
            session_id,
            message_id,
            response_id: None,
            sources: None,
            responder: Responder::Human,
        }
    }
}

/// Everything a generation needs, decided before it starts.
pub(crate) struct Generation {
    pub(crate) session: Session,
    pub(crate) message_id: Uuid,
    pub(crate) response_id: Uuid,
    pub(crate) request: ModelRequest,
    pub(crate) grounding: Grounding,
}

impl Generation {
    /// What followers of this generation's log need.
    pub(crate) fn meta(&self) -> StreamMeta {
        StreamMeta {
            response_id: self.response_id,
            message_id: self.message_id,
            session: self.session.id,
            session_id: self.session.session_id.clone(),
        }
    }
}

/// Where a generation's events go: the client that started it (if it still
/// listens) and the stream log, for resumes and reloads.
pub(crate) struct Publisher {
    deps: Arc<Deps>,
    response_id: Uuid,
    client: Option<mpsc::UnboundedSender<ChatEvent>>,
    /// Whether the log failed once already (logged once per response).
    log_failed: bool,
}

impl Publisher {
    pub(crate) fn new(
        deps: Arc<Deps>,
        response_id: Uuid,
        client: Option<mpsc::UnboundedSender<ChatEvent>>,
    ) -> Self {
        Self {
            deps,
            response_id,
            client,
            log_failed: false,
        }
    }

    /// Sends `event` to the client and appends it to the log. A client that left or
    /// a log that fails does not stop the generation: the answer is still stored.
    async fn publish(&mut self, event: ChatEvent) {
        // A chunk reaches the client without waiting for the log's round trip; a
        // terminal event only once the log is complete, so that a client acting on
        // `done` (a cancel, a resume) finds the answer complete everywhere.
        let terminal = event.is_terminal();
        if !terminal {
            self.send(event.clone());
        }
        if let Err(e) = self.deps.streams.append(self.response_id, &event).await {
            if !self.log_failed {
                tracing::warn!(error = %e, response_id = %self.response_id, "the stream log failed; resumes of this answer will replay it from the store");
                self.log_failed = true;
            }
        }
        if terminal {
            self.send(event);
        }
    }

    fn send(&self, event: ChatEvent) {
        if let Some(client) = &self.client {
            let _ = client.send(event);
        }
    }
}

/// Why a streamed generation ended.
enum Outcome {
    Finished(FinishInfo),
    Failed(ModelError),
    Cancelled,
}

/// How often, and how long apart, storing the answer is retried while the store is
/// unavailable.
const STORE_RETRIES: u32 = 3;
const STORE_RETRY_DELAY: Duration = Duration::from_millis(250);

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The assistant message's metadata: how the answer ended and what it cost.
fn answer_metadata(
    generation: &Generation,
    info: &FinishInfo,
    latency_ms: u64,
    first_chunk_ms: Option<u64>,
    error: Option<ErrorCode>,
) -> Metadata {
    let mut m = Metadata::new();
    m.insert("in_reply_to".into(), json!(generation.message_id));
    if let Some(code) = error {
        m.insert("error".into(), json!(code.as_str()));
    }
    m.insert("finish_reason".into(), json!(info.finish_reason.as_str()));
    if let Some(model) = &info.model {
        m.insert("model".into(), json!(model));
    }
    if let Some(usage) = &info.usage {
        m.insert(
            "usage".into(),
            serde_json::to_value(usage).unwrap_or(Value::Null),
        );
    }
    m.insert("latency_ms".into(), json!(latency_ms));
    if let Some(ms) = first_chunk_ms {
        m.insert("time_to_first_chunk_ms".into(), json!(ms));
    }
    generation.grounding.add_to(&mut m);
    m
}

/// Stores the assistant's answer, retrying briefly while the store is unavailable,
/// and announces it.
async fn store_answer(
    deps: &Deps,
    generation: &Generation,
    text: String,
    metadata: Metadata,
) -> Result<ChatMessage, StoreError> {
    let draft = MessageDraft {
        id: generation.response_id,
        role: Role::Assistant,
        message: text,
        metadata,
        timestamp: now_micros(deps.clock.as_ref()),
    };
    let session = SessionRef::from_uuid(generation.session.id);
    let mut attempt = 0;
    loop {
        match deps.store.append(&session, draft.clone()).await {
            Err(StoreError::Unavailable(e)) if attempt < STORE_RETRIES => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "store unavailable while saving the answer; retrying");
                tokio::time::sleep(STORE_RETRY_DELAY * attempt).await;
            }
            Ok((session, message)) => {
                deps.announce(Announcement::MessageStored(&session, &message))
                    .await;
                return Ok(message);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Asks the model for a whole answer and stores it. Its log gets only the terminal
/// event (a reloaded page sees the answer running, then done). A non-streamed answer
/// is not cancelled: it runs to its end (or the model's timeouts).
pub(crate) async fn complete(
    deps: Arc<Deps>,
    generation: Generation,
    mut publisher: Publisher,
) -> Result<ChatReply, ServiceError> {
    let started = Instant::now();
    let outcome = async {
        let completion = deps.model.complete(&generation.request).await?;
        let finish_reason = completion.info.finish_reason;
        let metadata = answer_metadata(
            &generation,
            &completion.info,
            elapsed_ms(started),
            None,
            None,
        );
        let stored = store_answer(&deps, &generation, completion.text, metadata).await?;
        Ok::<_, ServiceError>((stored, finish_reason))
    }
    .await;
    match outcome {
        Ok((stored, finish_reason)) => {
            let sources = generation.grounding.sources();
            publisher
                .publish(ChatEvent::Done {
                    seq: 0,
                    finish_reason,
                    sources: sources.clone(),
                })
                .await;
            Ok(ChatReply {
                response: stored.message,
                session_id: generation.session.session_id,
                message_id: generation.message_id,
                response_id: Some(generation.response_id),
                sources,
                responder: Responder::Ai,
            })
        }
        Err(e) => {
            publisher
                .publish(ChatEvent::Failed {
                    seq: 0,
                    code: e.code(),
                })
                .await;
            Err(e)
        }
    }
}

/// Streams the model's answer into `events`, then stores it and sends the terminal
/// event. Runs to the end even when nobody listens any more.
pub(crate) async fn stream(
    deps: Arc<Deps>,
    generation: Generation,
    mut events: Publisher,
    cancel: CancellationToken,
) {
    let started = Instant::now();
    let mut text = String::new();
    let mut seq = 0u64;
    let mut first_chunk_ms = None;
    let outcome = tokio::select! {
        () = cancel.cancelled() => Outcome::Cancelled,
        opened = deps.model.stream(&generation.request) => match opened {
            Err(e) => Outcome::Failed(e),
            Ok(mut model_stream) => loop {
                let next = tokio::select! {
                    () = cancel.cancelled() => break Outcome::Cancelled,
                    next = model_stream.next() => next,
                };
                match next {
                    Some(Ok(ModelEvent::Delta(delta))) => {
                        if delta.is_empty() {
                            continue;
                        }
                        first_chunk_ms.get_or_insert_with(|| elapsed_ms(started));
                        text.push_str(&delta);
                        // A client that left does not stop the generation.
                        events.publish(ChatEvent::Chunk { seq, text: delta }).await;
                        seq += 1;
                    }
                    Some(Ok(ModelEvent::Finished(info))) => break Outcome::Finished(info),
                    Some(Err(e)) => break Outcome::Failed(e),
                    None => break Outcome::Finished(FinishInfo::default()),
                }
            },
        },
    };
    let (info, failure) = match outcome {
        Outcome::Finished(info) => (info, None),
        Outcome::Cancelled => (
            FinishInfo {
                finish_reason: FinishReason::Cancelled,
                ..FinishInfo::default()
            },
            None,
        ),
        Outcome::Failed(e) => {
            tracing::warn!(error = %e, response_id = %generation.response_id, "model failed mid-stream");
            (
                FinishInfo {
                    finish_reason: FinishReason::Error,
                    ..FinishInfo::default()
                },
                Some(e.code()),
            )
        }
    };
    let finish_reason = info.finish_reason;
    let terminal = match failure {
        // Nothing was produced: there is no answer to store.
        Some(code) if text.is_empty() => ChatEvent::Failed { seq, code },
        _ => {
            let metadata = answer_metadata(
                &generation,
                &info,
                elapsed_ms(started),
                first_chunk_ms,
                failure,
            );
            match store_answer(&deps, &generation, text, metadata).await {
                Ok(_) => match failure {
                    Some(code) => ChatEvent::Failed { seq, code },
                    None => ChatEvent::Done {
                        seq,
                        finish_reason,
                        sources: generation.grounding.sources(),
                    },
                },
                Err(e) => {
                    tracing::error!(error = %e, response_id = %generation.response_id, "could not store the answer");
                    ChatEvent::Failed {
                        seq,
                        code: ServiceError::from(e).code(),
                    }
                }
            }
        }
    };
    events.publish(terminal).await;
}

/// Turns the receiving end of a generation's channel into a [`ChatEvents`] stream.
pub(crate) fn event_stream(rx: mpsc::UnboundedReceiver<ChatEvent>) -> ChatEvents {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) }).boxed()
}
