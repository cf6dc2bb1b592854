//! Reading a server-sent event stream: [`SseParser`] splits bytes into events,
//! [`read_stream`] times them.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;

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

/// Splits an SSE byte stream into the `data` of its events (comments and
/// keep-alives produce nothing).
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    /// A parser with nothing buffered.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` and returns the `data` of every event completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = find_blank_line(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end.0).collect();
            self.buffer.drain(..end.1 - end.0);
            let text = String::from_utf8_lossy(&block);
            let mut data: Option<String> = None;
            for line in text.lines() {
                let line = line.strip_suffix('\r').unwrap_or(line);
                if let Some(value) = line.strip_prefix("data:") {
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match data.as_mut() {
                        Some(d) => {
                            d.push('\n');
                            d.push_str(value);
                        }
                        None => data = Some(value.to_owned()),
                    }
                }
            }
            events.extend(data);
        }
        events
    }
}

/// Start and end (exclusive) of the first blank line ("\n\n" or "\r\n\r\n")
/// separator in `buffer`.
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
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
    let mut parser = SseParser::new();
    let mut first_event = None;
    let mut events = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let now = Instant::now();
        for data in parser.push(data) {
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
    fn splits_events_across_pushes_and_skips_comments() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"id: 0\ndata: {\"chunk\":\"a\"").is_empty());
        let events = parser.push(b",\"done\":false}\n\n: keep-alive\n\nid: 1\r\ndata: x\r\n\r\n");
        assert_eq!(
            events,
            vec![
                "{\"chunk\":\"a\",\"done\":false}".to_owned(),
                "x".to_owned()
            ]
        );
        assert!(parser.push(b"data: tail").is_empty());
    }

    #[test]
    fn joins_multi_line_data() {
        let mut parser = SseParser::new();
        assert_eq!(
            parser.push(b"data: a\ndata: b\n\n"),
            vec!["a\nb".to_owned()]
        );
    }

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
