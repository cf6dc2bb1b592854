//! The one server-sent-events parser of the tests. It follows the WHATWG HTML "event
//! stream interpretation" rules, as a browser's `EventSource` does: lines end in CRLF,
//! LF or CR; a leading BOM is dropped; `:` starts a comment; `field: value` with one
//! optional space; `data` lines accumulate; `id` sets the last event id; a blank line
//! dispatches (nothing if no data); an unterminated event at the end of the stream is
//! dropped. Unlike a browser it also reports comments, so tests can see keep-alives.
//!
//! [`parse`] reads a whole body; [`SseReader`] reads a response body as it arrives,
//! each wait bounded by a deadline.

use std::collections::VecDeque;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Body;
use serde_json::Value;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `event:`, `message` when absent.
    pub event_type: String,
    /// The `data:` lines, joined with LF.
    pub data: String,
    /// The last `id:` seen so far in the stream (the event's id when it has one).
    pub last_event_id: String,
}

impl Event {
    /// The data as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {:?}", self.data))
    }
}

/// An event or a comment, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A dispatched event.
    Event(Event),
    /// A comment line's text (`: keep-alive` gives `keep-alive`).
    Comment(String),
}

/// The incremental parser: feed it bytes as they come, take the items it completed.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    started: bool,
    skip_lf: bool,
    data: String,
    event_type: String,
    last_event_id: String,
    ready: VecDeque<Item>,
}

impl Decoder {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if !self.started && (self.buf.len() >= 3 || !"\u{feff}".as_bytes().starts_with(&self.buf)) {
            self.started = true;
            if self.buf.starts_with("\u{feff}".as_bytes()) {
                self.buf.drain(..3);
            }
        }
        if !self.started {
            return;
        }
        loop {
            if self.skip_lf && !self.buf.is_empty() {
                if self.buf[0] == b'\n' {
                    self.buf.remove(0);
                }
                self.skip_lf = false;
            }
            let Some(end) = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r') else {
                return;
            };
            let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            let cr = self.buf[end] == b'\r';
            self.buf.drain(..=end);
            if cr {
                self.skip_lf = true;
            }
            self.line(&line);
        }
    }

    /// The next completed item, if any.
    pub fn next_item(&mut self) -> Option<Item> {
        self.ready.pop_front()
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            self.ready.push_back(Item::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event_type = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.last_event_id = value.to_owned(),
            _ => {} // retry and unknown fields do not matter here
        }
    }

    fn dispatch(&mut self) {
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the last LF
        let event_type = std::mem::take(&mut self.event_type);
        self.ready.push_back(Item::Event(Event {
            event_type: if event_type.is_empty() {
                "message".to_owned()
            } else {
                event_type
            },
            data,
            last_event_id: self.last_event_id.clone(),
        }));
    }
}

/// The events of a whole SSE body, in order (comments left out).
pub fn parse(body: impl AsRef<[u8]>) -> Vec<Event> {
    let mut decoder = Decoder::new();
    decoder.feed(body.as_ref());
    std::iter::from_fn(|| decoder.next_item())
        .filter_map(|item| match item {
            Item::Event(e) => Some(e),
            Item::Comment(_) => None,
        })
        .collect()
}

/// The `data` of every event of a whole SSE body, as JSON.
pub fn parse_json(body: impl AsRef<[u8]>) -> Vec<Value> {
    parse(body).iter().map(Event::json).collect()
}

/// Reads a response body event by event as it arrives; every wait for the next item
/// is bounded (by [`crate::DEADLINE`] unless set with [`SseReader::with_deadline`]),
/// and panics when it passes, so a stream that stalls fails the test.
pub struct SseReader<B> {
    body: B,
    decoder: Decoder,
    ended: bool,
    broken: Option<String>,
    deadline: Duration,
}

impl<B> SseReader<B>
where
    B: Body<Data = hyper::body::Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    /// Reads `body`.
    pub fn new(body: B) -> Self {
        Self {
            body,
            decoder: Decoder::new(),
            ended: false,
            broken: None,
            deadline: crate::DEADLINE,
        }
    }

    /// Bounds each wait by `deadline` instead.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The next event or comment; `None` at the end of the stream (or when the
    /// connection broke: a server that dies mid-stream ends it).
    pub async fn next_item(&mut self) -> Option<Item> {
        let deadline = self.deadline;
        tokio::time::timeout(deadline, self.next_item_unbounded())
            .await
            .unwrap_or_else(|_| panic!("no SSE event nor end of stream within {deadline:?}"))
    }

    async fn next_item_unbounded(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.decoder.next_item() {
                return Some(item);
            }
            if self.ended {
                return None;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.feed(&data);
                    }
                }
                Some(Err(e)) => {
                    self.broken = Some(e.to_string());
                    self.ended = true;
                }
                None => self.ended = true,
            }
        }
    }

    /// Why the stream ended without its end (the connection broke), once it has.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// The next event, skipping comments (what a browser shows the page).
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.next_item().await? {
                Item::Event(e) => return Some(e),
                Item::Comment(_) => {}
            }
        }
    }

    /// Every remaining event, until the server ends the stream.
    pub async fn rest(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = self.next_event().await {
            events.push(e);
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(chunks: &[&[u8]]) -> Vec<Item> {
        let mut decoder = Decoder::new();
        for chunk in chunks {
            decoder.feed(chunk);
        }
        std::iter::from_fn(|| decoder.next_item()).collect()
    }

    fn event(data: &str, id: &str) -> Item {
        Item::Event(Event {
            event_type: "message".into(),
            data: data.into(),
            last_event_id: id.into(),
        })
    }

    #[test]
    fn follows_the_event_stream_rules() {
        assert_eq!(
            items(&[b"retry: 1000\n\nid: r:0:2\ndata: {\"a\":1}\n\n: keep-alive\n\n"]),
            [
                event("{\"a\":1}", "r:0:2"),
                Item::Comment("keep-alive".into())
            ]
        );
        assert_eq!(
            items(&[b"data: a\r\ndata:b\r\rdata: c\n\n"]),
            [event("a\nb", ""), event("c", "")],
            "CRLF, CR and LF; one optional space"
        );
        assert_eq!(
            items(&[b"\xEF\xBB", b"\xBFdata: x\r", b"\n\r", b"\n", b"data: cut"]),
            [event("x", "")],
            "a BOM split across chunks is dropped; an unterminated event is not dispatched"
        );
        assert_eq!(
            items(&[b"event: ping\nid: 7\ndata\n\nid: 8\n\ndata: y\n\n"]),
            [
                Item::Event(Event {
                    event_type: "ping".into(),
                    data: String::new(),
                    last_event_id: "7".into()
                }),
                event("y", "8")
            ],
            "an empty data line dispatches; the last id carries over"
        );
    }

    #[test]
    fn parse_reads_whole_bodies() {
        let body = "id: 1\ndata: {\"chunk\":\"Echo: \"}\n\nid: 2\ndata: {\"done\":true}\n\n";
        assert_eq!(
            parse_json(body),
            [
                serde_json::json!({"chunk": "Echo: "}),
                serde_json::json!({"done": true})
            ]
        );
        assert_eq!(parse(body)[1].last_event_id, "2");
    }
}
