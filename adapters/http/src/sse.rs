//! Server-sent events: a [`ChatStream`] rendered exactly as API.md shows it.
//!
//! ```text
//! retry: 1000
//!
//! id: <response_id>:0:6
//! data: {"chunk":"Echo: ","done":false,"message_id":"…","response_id":"…"}
//!
//! id: <response_id>:1:6
//! data: {"chunk":"","done":true,"message_id":"…","response_id":"…","finish_reason":"stop"}
//!
//! ```
//! An event id is `<response_id>:<seq>:<end>`: the response, the event's sequence
//! number (0, 1, 2, ... per response) and how many bytes of the answer the client
//! holds once it has this event. A browser sends it back as `Last-Event-ID`, which
//! makes every resume exact (see docs/API.md, "Event ids").
//! A failed generation ends with `"done":true` and `"error":"<code>"` instead of
//! `finish_reason`. Each event is written as soon as the model produced it; after
//! `keep_alive` of silence a `: keep-alive` comment is sent. When the client goes
//! away, hyper drops this body: only the receiving end of the generation is dropped,
//! the generation itself runs on and stores the answer.

use std::convert::Infallible;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use colloquy_core::{ChatEvent, ChatEvents, ChatStream, ErrorCode, Responder, ResumePoint, Source};
use futures::StreamExt;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde::Serialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::shares::{client_key, Share, Shares};
use crate::Response;

/// The reconnection delay an `EventSource` is told to use, first thing.
pub(crate) const RETRY: &[u8] = b"retry: 1000\n\n";

/// The comment sent on silence.
pub(crate) const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// The JSON of one event's `data:` line, fields in the documented order.
#[derive(Serialize)]
struct EventData<'a> {
    chunk: &'a str,
    done: bool,
    message_id: Uuid,
    response_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// On the `done` event, when the service has a knowledge base.
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<&'a [Source]>,
}

/// The ids every event of one response carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ids {
    pub(crate) message_id: Uuid,
    pub(crate) response_id: Uuid,
}

/// One event as SSE bytes: `id: <response>:<seq>:<end>\ndata: <json>\n\n`, where
/// `end` counts the answer's bytes up to and including this event.
pub(crate) fn render(event: &ChatEvent, ids: Ids, end: u64) -> Bytes {
    let (chunk, done, finish_reason, error, sources) = match event {
        ChatEvent::Chunk { text, .. } => (text.as_str(), false, None, None, None),
        ChatEvent::Done {
            finish_reason,
            sources,
            ..
        } => (
            "",
            true,
            Some(finish_reason.as_str()),
            None,
            sources.as_deref(),
        ),
        ChatEvent::Failed { code, .. } => ("", true, None, Some(code.as_str()), None),
    };
    let data = EventData {
        chunk,
        done,
        message_id: ids.message_id,
        response_id: ids.response_id,
        finish_reason,
        error,
        sources,
    };
    // One buffer for the whole event (id line, JSON, blank line): one allocation.
    let mut out = Vec::with_capacity(EVENT_OVERHEAD + chunk.len());
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(ResumePoint::format(ids.response_id, event.seq(), end).as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let json_at = out.len();
    // Serializing strings, bools, UUIDs and numbers cannot fail; JSON escapes newlines, so
    // the data is one line.
    if serde_json::to_writer(&mut out, &data).is_err() {
        out.truncate(json_at);
        out.extend_from_slice(br#"{"chunk":"","done":true,"error":"internal_error"}"#);
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The bytes of an event besides its chunk's text (ids, field names), with room for
/// JSON escapes: a buffer of this plus the text rarely grows.
const EVENT_OVERHEAD: usize = 256;

/// Where the body stream stands.
enum State {
    /// The `retry:` field is not sent yet.
    Start { events: ChatEvents, end: u64 },
    /// Waiting for the next event; `next_seq` is the sequence number it should have,
    /// `end` the answer's bytes sent so far (from the resume point on).
    Open {
        events: ChatEvents,
        next_seq: u64,
        end: u64,
    },
    /// The terminal event was sent.
    Finished,
}

/// The SSE byte stream of `events`, with keep-alive comments after `keep_alive` of
/// silence. It ends after the terminal event; if the events end without one (the
/// generation task died), it ends with an `internal_error` event, so a client never
/// mistakes a truncated answer for a complete one.
pub(crate) fn byte_stream(
    events: ChatEvents,
    ids: Ids,
    offset: u64,
    keep_alive: Duration,
) -> impl futures::Stream<Item = Bytes> + Send {
    futures::stream::unfold(
        State::Start {
            events,
            end: offset,
        },
        move |state| async move {
            let (mut events, next_seq, end) = match state {
                State::Start { events, end } => {
                    let open = State::Open {
                        events,
                        next_seq: 0,
                        end,
                    };
                    return Some((Bytes::from_static(RETRY), open));
                }
                State::Open {
                    events,
                    next_seq,
                    end,
                } => (events, next_seq, end),
                State::Finished => return None,
            };
            match tokio::time::timeout(keep_alive, events.next()).await {
                Err(_silence) => Some((
                    Bytes::from_static(KEEP_ALIVE),
                    State::Open {
                        events,
                        next_seq,
                        end,
                    },
                )),
                Ok(Some(event)) => {
                    let end = match &event {
                        ChatEvent::Chunk { text, .. } => {
                            end + u64::try_from(text.len()).unwrap_or(u64::MAX)
                        }
                        _ => end,
                    };
                    let bytes = render(&event, ids, end);
                    let next = if event.is_terminal() {
                        State::Finished
                    } else {
                        State::Open {
                            events,
                            next_seq: event.seq() + 1,
                            end,
                        }
                    };
                    Some((bytes, next))
                }
                Ok(None) => {
                    tracing::error!(response_id = %ids.response_id, "generation ended without a terminal event");
                    let failed = ChatEvent::Failed {
                        seq: next_seq,
                        code: ErrorCode::Internal,
                    };
                    Some((render(&failed, ids, end), State::Finished))
                }
            }
        },
    )
}

/// The `200 text/event-stream` response for a started chat stream, in the API's exact
/// wire format: a `retry:` field first, then one event per [`ChatEvent`] with the
/// documented `id:` and `data:` lines, a `: keep-alive` comment after `keep_alive`
/// of silence, and a synthetic `internal_error` event if the events end without a
/// terminal one. Headers: `Content-Type: text/event-stream`, `Cache-Control:
/// no-cache`, `X-Accel-Buffering: no`.
///
/// For handlers of your own that start a stream with
/// [`ChatService::chat_stream`](colloquy_core::ChatService::chat_stream) (or resume
/// one) and must speak the same protocol as the API, so the widget and every SSE
/// client of the API can read it. Dropping the response (the client went away)
/// does not stop the generation: the answer is still stored.
#[must_use]
pub fn response(stream: ChatStream, keep_alive: Duration) -> Response {
    response_holding(stream, keep_alive, None)
}

/// The one event of a chat stream in a session a person has (no answer is
/// generated): `data: {"chunk":"","done":true,"message_id":..,"response_id":null,
/// "finish_reason":"handoff","responder":"human"}`, without an `id:` (there is no
/// answer to resume).
pub(crate) fn handoff_event(message_id: Uuid) -> String {
    let data = serde_json::json!({
        "chunk": "",
        "done": true,
        "message_id": message_id,
        "response_id": null,
        "finish_reason": "handoff",
        "responder": Responder::Human.as_str(),
    });
    format!("data: {data}\n\n")
}

/// The response to a chat stream in a session a person has: `retry:` and `event`
/// (see [`handoff_event`]), then the end.
pub(crate) fn handoff_response(event: String) -> Response {
    let frames = futures::stream::iter([Bytes::from_static(RETRY), Bytes::from(event)])
        .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
    event_stream_response(StreamBody::new(frames).boxed_unsync())
}

/// A `200 text/event-stream` response with `body`.
fn event_stream_response(body: crate::ResponseBody) -> Response {
    let mut response = http::Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// [`response`], whose body keeps `hold` until it is dropped.
fn response_holding(
    stream: ChatStream,
    keep_alive: Duration,
    hold: Option<ResumeHold>,
) -> Response {
    if stream.responder == Responder::Human {
        return handoff_response(handoff_event(stream.message_id));
    }
    let ids = Ids {
        message_id: stream.message_id,
        response_id: stream.response_id,
    };
    let frames = byte_stream(stream.events, ids, stream.offset, keep_alive).map(move |bytes| {
        // The body owns the hold: the places return when the stream is dropped.
        let _hold = &hold;
        Ok::<_, Infallible>(Frame::data(bytes))
    });
    event_stream_response(StreamBody::new(frames).boxed_unsync())
}

/// The caps on resumes streaming at once: per response and per client address.
#[derive(Debug)]
pub(crate) struct ResumeShares {
    per_response: Shares<Uuid>,
    per_ip: Shares<IpAddr>,
}

/// The places a resume holds until its stream ends.
#[derive(Debug)]
pub(crate) struct ResumeHold {
    _response: Share<Uuid>,
    _ip: Option<Share<IpAddr>>,
}

impl ResumeShares {
    /// At most `per_response` resumes of one response and `per_ip` of one client
    /// address streaming at once.
    pub(crate) fn new(per_response: usize, per_ip: usize) -> Self {
        Self {
            per_response: Shares::new(per_response),
            per_ip: Shares::new(per_ip),
        }
    }

    /// A place for a resume of `response` by a client at `ip` (unknown: only the
    /// response's cap applies), or 429 `too_many_streams`.
    pub(crate) fn take(&self, response: Uuid, ip: Option<IpAddr>) -> Result<ResumeHold, ApiError> {
        let ip = match ip {
            Some(ip) => Some(self.per_ip.try_take(client_key(ip)).ok_or_else(|| {
                ApiError::too_many_streams("this client already has its most resumed streams open")
            })?),
            None => None,
        };
        let response = self.per_response.try_take(response).ok_or_else(|| {
            ApiError::too_many_streams("this response already has its most resumed streams open")
        })?;
        Ok(ResumeHold {
            _response: response,
            _ip: ip,
        })
    }
}

/// [`response`] for a resumed stream, holding `hold` until the stream ends.
pub(crate) fn resumed(stream: ChatStream, keep_alive: Duration, hold: ResumeHold) -> Response {
    response_holding(stream, keep_alive, Some(hold))
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloquy_core::FinishReason;

    fn ids() -> Ids {
        Ids {
            message_id: Uuid::nil(),
            response_id: Uuid::max(),
        }
    }

    #[test]
    fn events_render_as_documented() {
        let chunk = render(
            &ChatEvent::Chunk {
                seq: 0,
                text: "Once\nupon".into(),
            },
            ids(),
            9,
        );
        assert_eq!(
            chunk,
            format!(
                "id: {}:0:9\ndata: {{\"chunk\":\"Once\\nupon\",\"done\":false,\"message_id\":\"{}\",\"response_id\":\"{}\"}}\n\n",
                Uuid::max(),
                Uuid::nil(),
                Uuid::max()
            )
        );
        let done = render(
            &ChatEvent::Done {
                seq: 3,
                finish_reason: FinishReason::Stop,
                sources: None,
            },
            ids(),
            9,
        );
        let text = std::str::from_utf8(&done).expect("utf-8");
        let head = format!(
            "id: {}:3:9\ndata: {{\"chunk\":\"\",\"done\":true,",
            Uuid::max()
        );
        assert!(text.starts_with(&head), "{text}");
        assert!(text.ends_with(",\"finish_reason\":\"stop\"}\n\n"));
        let grounded = render(
            &ChatEvent::Done {
                seq: 4,
                finish_reason: FinishReason::Stop,
                sources: Some(vec![Source {
                    id: "faq.md#1".into(),
                    document: "faq.md".into(),
                    title: "FAQ".into(),
                    uri: "https://example.com/faq".into(),
                    score: 2.5,
                    snippet: "Yes.".into(),
                }]),
            },
            ids(),
            9,
        );
        let text = std::str::from_utf8(&grounded).expect("utf-8");
        assert!(
            text.ends_with(",\"finish_reason\":\"stop\",\"sources\":[{\"id\":\"faq.md#1\",\"document\":\"faq.md\",\"title\":\"FAQ\",\"uri\":\"https://example.com/faq\",\"score\":2.5,\"snippet\":\"Yes.\"}]}\n\n"),
            "{text}"
        );
        let failed = render(
            &ChatEvent::Failed {
                seq: 2,
                code: ErrorCode::LlmTimeout,
            },
            ids(),
            0,
        );
        let text = std::str::from_utf8(&failed).expect("utf-8");
        assert!(text.ends_with(",\"error\":\"llm_timeout\"}\n\n"), "{text}");
        assert!(!text.contains("finish_reason"));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_sends_keep_alive_comments() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<ChatEvent>();
        let events: ChatEvents = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|e| (e, rx))
        }));
        let mut stream = Box::pin(byte_stream(events, ids(), 0, Duration::from_secs(15)));
        let retry = stream.next().await.expect("retry field");
        assert_eq!(retry, Bytes::from_static(RETRY));
        // Paused time auto-advances while every task waits: the timeout fires.
        let first = stream.next().await.expect("keep-alive");
        assert_eq!(first, Bytes::from_static(KEEP_ALIVE));
        tx.send(ChatEvent::Chunk {
            seq: 0,
            text: "a".into(),
        })
        .expect("receiver alive");
        let second = stream.next().await.expect("chunk");
        assert!(second.starts_with(format!("id: {}:0:1\n", Uuid::max()).as_bytes()));
        drop(tx);
        let last = stream.next().await.expect("synthetic failure");
        let text = std::str::from_utf8(&last).expect("utf-8");
        assert!(
            text.starts_with(&format!("id: {}:1:1\n", Uuid::max())),
            "{text}"
        );
        assert!(text.contains("\"error\":\"internal_error\""));
        assert!(stream.next().await.is_none());
    }
}
