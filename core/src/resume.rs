//! Resuming a streamed answer: replay what the client missed from the stream log,
//! then follow the live events to the end; once the log is gone, replay the stored
//! answer from where the client stopped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use uuid::Uuid;

use crate::chat::{ChatEvent, ChatStream};
use crate::deps::Deps;
use crate::error::{ErrorCode, ServiceError, StoreError};
use crate::message::ChatMessage;
use crate::model::FinishReason;
use crate::session::Session;
use crate::streams::{LogRead, LogState, StreamLog, StreamMeta};

/// How long a follower waits for news before reading the log again (the lease
/// check runs at least this often).
const FOLLOW_WAIT: Duration = Duration::from_secs(1);

/// Most events a follower holds at once; it reads the log again for the next ones.
/// So a reader that reads nothing holds a page, not the whole answer.
const PAGE_EVENTS: usize = 2048;
/// Most answer bytes a follower holds at once (a page has at least one event).
const PAGE_BYTES: u64 = 32 * 1024;

/// The first page of `events`: at most [`PAGE_EVENTS`] events and [`PAGE_BYTES`] of
/// text (at least one event); the rest is dropped, to be read again later.
fn page(events: impl IntoIterator<Item = ChatEvent>) -> VecDeque<ChatEvent> {
    let mut bytes = 0_u64;
    let mut page = VecDeque::new();
    for event in events {
        bytes = bytes.saturating_add(text_len(&event));
        if !page.is_empty() && (page.len() >= PAGE_EVENTS || bytes > PAGE_BYTES) {
            break;
        }
        page.push_back(event);
    }
    page
}

/// Where a client stopped, from its `Last-Event-ID` (see docs/API.md, "Event ids").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    /// The response the id names, when the id carries it.
    pub response: Option<Uuid>,
    /// The last event the client received.
    pub seq: u64,
    /// How many bytes of the answer it holds, when the id carries it.
    pub end: Option<u64>,
}

impl ResumePoint {
    /// Reads an event id: `<response_id>:<seq>:<end>` as Colloquy sends them, or a
    /// bare `<seq>`. `None` for anything else.
    #[must_use]
    pub fn parse(id: &str) -> Option<Self> {
        let mut parts = id.trim().split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(seq), None, None, None) => Some(Self {
                response: None,
                seq: seq.parse().ok()?,
                end: None,
            }),
            (Some(response), Some(seq), Some(end), None) => Some(Self {
                response: Some(Uuid::try_parse(response).ok()?),
                seq: seq.parse().ok()?,
                end: Some(end.parse().ok()?),
            }),
            _ => None,
        }
    }

    /// The id of the event with `seq` after which the client holds `end` bytes.
    #[must_use]
    pub fn format(response: Uuid, seq: u64, end: u64) -> String {
        format!("{response}:{seq}:{end}")
    }
}

/// What a resume found.
#[derive(Debug)]
pub enum Resume {
    /// Events the client has not seen, to the end of the answer.
    Stream(ChatStream),
    /// The client already has the whole answer (an `EventSource` reconnecting after
    /// `done`): nothing to send.
    Finished,
}

fn text_len(event: &ChatEvent) -> u64 {
    match event {
        ChatEvent::Chunk { text, .. } => u64::try_from(text.len()).unwrap_or(u64::MAX),
        _ => 0,
    }
}

/// The log of `response` as [`from_log`] needs it to resume after `after`: from
/// sequence 0, every event when the client holds some (their text gives the offset
/// it resumes at), one page when it holds none (a new reader of a long answer costs
/// a page, not the answer).
pub(crate) async fn read_log(
    streams: &dyn StreamLog,
    response: Uuid,
    after: Option<ResumePoint>,
) -> Result<Option<LogRead>, StoreError> {
    let max = if after.is_some() {
        usize::MAX
    } else {
        PAGE_EVENTS
    };
    streams.read_page(response, 0, max).await
}

/// Resumes from the log `read` (read from sequence 0) after `after`.
pub(crate) fn from_log(deps: Arc<Deps>, read: LogRead, after: Option<ResumePoint>) -> Resume {
    let next = after.map_or(0, |p| p.seq + 1);
    let offset: u64 = read
        .events
        .iter()
        .filter(|e| e.seq() < next)
        .map(text_len)
        .sum();
    let pending = page(read.events.into_iter().filter(|e| e.seq() >= next));
    if pending.is_empty() && read.state == LogState::Complete {
        return Resume::Finished;
    }
    let meta = read.meta;
    let stream = ChatStream {
        session_id: meta.session_id.clone(),
        message_id: meta.message_id,
        response_id: meta.response_id,
        events: follow(deps, meta, pending, next).boxed(),
        offset,
        responder: crate::session::Responder::Ai,
    };
    Resume::Stream(stream)
}

/// The follower's state between events.
struct Follow {
    deps: Arc<Deps>,
    meta: StreamMeta,
    queue: VecDeque<ChatEvent>,
    next: u64,
    done: bool,
}

/// Yields `pending`, then the log's new events as they are appended, to the
/// terminal event; a log abandoned by a dead instance (or gone) ends with a
/// `generation_lost` failure, never a hang.
fn follow(
    deps: Arc<Deps>,
    meta: StreamMeta,
    pending: VecDeque<ChatEvent>,
    next: u64,
) -> impl futures::Stream<Item = ChatEvent> + Send {
    let state = Follow {
        deps,
        meta,
        queue: pending,
        next,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            if let Some(event) = s.queue.pop_front() {
                s.next = event.seq() + 1;
                s.done = event.is_terminal();
                return Some((event, s));
            }
            let streams = &s.deps.streams;
            let lost = ChatEvent::Failed {
                seq: s.next,
                code: ErrorCode::GenerationLost,
            };
            match streams
                .read_page(s.meta.response_id, s.next, PAGE_EVENTS)
                .await
            {
                Ok(Some(read)) if !read.events.is_empty() => s.queue = page(read.events),
                Ok(Some(read)) if read.state == LogState::Running => {
                    streams
                        .changed(s.meta.response_id, s.next.saturating_sub(1), FOLLOW_WAIT)
                        .await;
                }
                Ok(_) => s.queue.push_back(lost),
                Err(e) => {
                    tracing::warn!(error = %e, response_id = %s.meta.response_id, "the stream log failed while following an answer");
                    s.queue.push_back(lost);
                }
            }
        }
    })
}

/// How a stored answer's stream ends: its `finish_reason`, or the error it stored.
fn terminal(message: &ChatMessage, seq: u64) -> ChatEvent {
    let reason = message
        .metadata
        .get("finish_reason")
        .and_then(|v| v.as_str())
        .and_then(FinishReason::parse)
        .unwrap_or(FinishReason::Stop);
    if reason == FinishReason::Error {
        let code = message
            .metadata
            .get("error")
            .and_then(|v| v.as_str())
            .and_then(ErrorCode::parse)
            .unwrap_or(ErrorCode::LlmUnavailable);
        return ChatEvent::Failed { seq, code };
    }
    ChatEvent::Done {
        seq,
        finish_reason: reason,
        sources: message
            .metadata
            .get("sources")
            .and_then(|v| serde_json::from_value(v.clone()).ok()),
    }
}

/// Replays a stored answer after `after`: the text the client lacks as one chunk,
/// then the terminal event.
pub(crate) fn from_store(
    message: ChatMessage,
    session: &Session,
    message_id: Uuid,
    after: Option<ResumePoint>,
) -> Result<Resume, ServiceError> {
    let text = message.message.as_str();
    let offset = match after.and_then(|p| p.end) {
        Some(end) => usize::try_from(end)
            .ok()
            .filter(|end| *end <= text.len() && text.is_char_boundary(*end))
            .unwrap_or(0),
        None => 0,
    };
    let mut seq = after.map_or(0, |p| p.seq + 1);
    let mut events = Vec::new();
    if offset < text.len() {
        events.push(ChatEvent::Chunk {
            seq,
            text: text[offset..].to_owned(),
        });
        seq += 1;
    } else if after.is_some() {
        return Ok(Resume::Finished);
    }
    events.push(terminal(&message, seq));
    Ok(Resume::Stream(ChatStream {
        session_id: session.session_id.clone(),
        message_id,
        response_id: message.id,
        events: futures::stream::iter(events).boxed(),
        offset: u64::try_from(offset).unwrap_or(u64::MAX),
        responder: crate::session::Responder::Ai,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip() {
        let r = Uuid::now_v7();
        let id = ResumePoint::format(r, 7, 120);
        assert_eq!(
            ResumePoint::parse(&id),
            Some(ResumePoint {
                response: Some(r),
                seq: 7,
                end: Some(120)
            })
        );
        assert_eq!(
            ResumePoint::parse("3"),
            Some(ResumePoint {
                response: None,
                seq: 3,
                end: None
            })
        );
        for bad in ["", "x", "1:2", "not-a-uuid:1:2", "1:2:3:4", "-1"] {
            assert_eq!(ResumePoint::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_page_is_bounded_by_events_and_bytes_but_never_empty() {
        let chunks = |n: u64, len: usize| {
            (0..n).map(move |seq| ChatEvent::Chunk {
                seq,
                text: "a".repeat(len),
            })
        };
        assert_eq!(page(chunks(5000, 2)).len(), PAGE_EVENTS);
        assert_eq!(page(chunks(100, 1024)).len(), 32, "32 KiB of 1 KiB chunks");
        let big = page(chunks(3, 100_000));
        assert_eq!(big.len(), 1, "one event even when larger than a page");
        assert_eq!(big[0].seq(), 0);
        assert!(page(chunks(0, 1)).is_empty());
    }
}
