//! A server-sent-events parser that follows the WHATWG HTML "event stream
//! interpretation" rules, as a browser's `EventSource` does: lines end in CRLF, LF or
//! CR; `:` starts a comment; `field: value` with one optional space; `data` lines
//! accumulate; `id` sets the last event id; a blank line dispatches (nothing if no
//! data); an unterminated event at the end of the stream is dropped. Unlike a
//! browser it also reports comments, so tests can see keep-alives.

use std::collections::VecDeque;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_type: String,
    pub data: String,
    pub last_event_id: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Event(Event),
    Comment(String),
}

pub struct SseReader {
    body: Incoming,
    buf: Vec<u8>,
    ended: bool,
    started: bool,
    skip_lf: bool,
    data: String,
    event_type: String,
    last_event_id: String,
    ready: VecDeque<Item>,
}

impl SseReader {
    pub fn new(body: Incoming) -> Self {
        Self {
            body,
            buf: Vec::new(),
            ended: false,
            started: false,
            skip_lf: false,
            data: String::new(),
            event_type: String::new(),
            last_event_id: String::new(),
            ready: VecDeque::new(),
        }
    }

    /// The next event or comment; `None` at the end of the stream.
    pub async fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if self.ended {
                return None;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.feed(&data);
                    }
                }
                Some(Err(e)) => panic!("stream broke: {e}"),
                None => self.ended = true,
            }
        }
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

    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if !self.started && self.buf.len() >= 3 {
            self.started = true;
            if self.buf.starts_with("\u{feff}".as_bytes()) {
                self.buf.drain(..3);
            }
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
