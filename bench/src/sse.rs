//! Reading a server-sent event stream: [`read_stream`] times its events, split by
//! the project's one SSE parser (`colloquy_test_support::sse`).

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;

use colloquy_test_support::sse::{Decoder, Event, Item};

use crate::BenchError;

/// The fields of a Colloquy stream event that the benchmark looks at.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct StreamEvent {
    /// The text of this chunk.
    #[serde(default)]
    pub chunk: String,
    /// Whether this is the last event.
    #[serde(default)]
    pub done: bool,
    /// The error code on a failed last event.
    #[serde(default)]
    pub error: Option<String>,
}

/// What one stream looked like from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTiming {
    /// From the request to the first event.
    pub first_event: Duration,
    /// From the request to the `done` event.
    pub last_event: Duration,
    /// Events received.
    pub events: usize,
}

/// Reads an event stream to its `done` event. `started` is when the request was
/// sent; `on_event` sees the arrival time of every event.
///
/// # Errors
/// [`BenchError::Hyper`] when the body fails, [`BenchError::Stream`] when it ends
/// without `done`, with an error event, or with an event that is not JSON.
pub async fn read_stream(
    mut body: Incoming,
    started: Instant,
    mut on_event: impl FnMut(Instant),
) -> Result<StreamTiming, BenchError> {
    let mut parser = Decoder::new();
    let mut first_event = None;
    let mut events = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let now = Instant::now();
        parser.feed(data);
        while let Some(item) = parser.next_item() {
            let Item::Event(Event { data, .. }) = item else {
                continue; // a comment (keep-alive)
            };
            events += 1;
            on_event(now);
            first_event.get_or_insert(now - started);
            let event: StreamEvent =
                serde_json::from_str(&data).map_err(|_| BenchError::Stream {
                    events,
                    reason: "an event's data is not the expected JSON",
                })?;
            if event.error.is_some() {
                return Err(BenchError::Stream {
                    events,
                    reason: "the done event carries an error",
                });
            }
            if event.done {
                return Ok(StreamTiming {
                    first_event: first_event.unwrap_or_default(),
                    last_event: now - started,
                    events,
                });
            }
        }
    }
    Err(BenchError::Stream {
        events,
        reason: "the stream ended without a done event",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_event_reads_done_and_error() {
        let event: StreamEvent = serde_json::from_str(
            r#"{"chunk":"","done":true,"message_id":"m","response_id":"r","error":"llm_timeout"}"#,
        )
        .expect("valid event JSON");
        assert!(event.done);
        assert_eq!(event.error.as_deref(), Some("llm_timeout"));
    }
}
