//! A Server-Sent Events decoder: bytes in, events out, however the bytes are split.
//!
//! It follows the WHATWG "event stream interpretation" rules that matter to a client
//! reading a Chat Completions stream:
//!
//! - lines end with CRLF, LF or a lone CR, and a CRLF split across two reads is
//!   still one line end;
//! - a blank line dispatches the event; an event whose `data` buffer is empty is not
//!   dispatched;
//! - `data:` lines are joined with `\n`; one space after the colon is removed;
//! - lines starting with `:` are comments, and the `event`, `id` and `retry` fields
//!   and unknown fields are ignored;
//! - a UTF-8 byte order mark at the very start is skipped;
//! - bytes are buffered until a line is complete, so multi-byte UTF-8 characters
//!   split across reads decode correctly (line ends are ASCII and never occur inside
//!   a multi-byte character). Invalid UTF-8 is replaced with U+FFFD, as the rules say;
//! - an event still incomplete when the stream ends is discarded
//!   ([`SseDecoder::has_partial_event`] tells whether there was one).
//!
//! Memory is bounded: an event larger than the decoder's limit is an error.

/// One dispatched event: its `data` lines joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event's data.
    pub data: String,
}

/// Why the decoder gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event (or one line) grew past the decoder's limit.
    #[error("server-sent event larger than {limit} bytes")]
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// The default limit on one event's size: 4 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

const BOM: char = '\u{FEFF}';

/// Incremental SSE decoder; feed it reads with [`SseDecoder::push`].
#[derive(Debug)]
pub struct SseDecoder {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The data buffer of the event being read (each line followed by `\n`).
    data: String,
    /// Whether any `data` field was seen for the event being read.
    has_data: bool,
    /// The previous read ended with CR: a leading LF belongs to that line end.
    skip_lf: bool,
    /// No line has been completed yet (a BOM may lead the first).
    at_start: bool,
    max_event_bytes: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the default event size limit.
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder that rejects events larger than `limit` bytes.
    #[must_use]
    pub fn with_max_event_bytes(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            skip_lf: false,
            at_start: true,
            max_event_bytes: limit,
        }
    }

    /// Feeds the next bytes read from the stream and returns the events they complete,
    /// in order.
    ///
    /// # Errors
    /// [`SseError::EventTooLarge`] when an event grows past the limit; the decoder
    /// should not be used after that.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if self.skip_lf {
                self.skip_lf = false;
                if b == b'\n' {
                    start = i + 1;
                    continue;
                }
            }
            if b == b'\n' || b == b'\r' {
                self.line.extend_from_slice(&bytes[start..i]);
                let line = std::mem::take(&mut self.line);
                if let Some(event) = self.line_done(&line) {
                    events.push(event);
                }
                self.line = line;
                self.line.clear();
                start = i + 1;
                self.skip_lf = b == b'\r';
            }
        }
        self.line.extend_from_slice(&bytes[start..]);
        if self.line.len() + self.data.len() > self.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(events)
    }

    /// Whether the bytes fed so far end inside an event that was never dispatched
    /// (a stream cut off mid-event). Such an event is discarded.
    #[must_use]
    pub fn has_partial_event(&self) -> bool {
        self.has_data || !self.line.is_empty()
    }

    /// Interprets one complete line; returns the event a blank line dispatches.
    fn line_done(&mut self, raw: &[u8]) -> Option<SseEvent> {
        let decoded = String::from_utf8_lossy(raw);
        let mut line: &str = &decoded;
        if self.at_start {
            self.at_start = false;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            self.data.push_str(value);
            self.data.push('\n');
            self.has_data = true;
        }
        // `event`, `id`, `retry` and unknown fields do not matter to this client.
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        Some(SseEvent { data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(reads: &[&[u8]]) -> Vec<String> {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        for read in reads {
            let events = decoder.push(read).expect("within limit");
            out.extend(events.into_iter().map(|e| e.data));
        }
        out
    }

    fn decode(bytes: &[u8]) -> Vec<String> {
        decode_all(&[bytes])
    }

    #[test]
    fn data_lines_dispatch_on_blank_line() {
        assert_eq!(
            decode(b"data: {\"a\":1}\n\ndata: [DONE]\n\n"),
            ["{\"a\":1}", "[DONE]"]
        );
    }

    #[test]
    fn multi_line_data_is_joined_with_newline() {
        assert_eq!(
            decode(b"data: first\ndata:second\ndata:  third\n\n"),
            ["first\nsecond\n third"]
        );
    }

    #[test]
    fn empty_data_field_counts_as_data() {
        assert_eq!(decode(b"data\n\ndata:\ndata:\n\n"), ["", "\n"]);
    }

    #[test]
    fn comments_and_other_fields_are_ignored() {
        let stream = b": keep-alive\n\nevent: message\nid: 7\nretry: 100\nfoo: bar\ndata: x\n\n";
        assert_eq!(decode(stream), ["x"]);
    }

    #[test]
    fn blank_lines_without_data_dispatch_nothing() {
        assert_eq!(decode(b"\n\n\nevent: ping\n\n"), Vec::<String>::new());
    }

    #[test]
    fn crlf_cr_and_lf_line_ends_are_equivalent() {
        let expected = ["a\nb", "c"];
        assert_eq!(
            decode(b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"),
            expected
        );
        assert_eq!(decode(b"data: a\rdata: b\r\rdata: c\r\r"), expected);
        assert_eq!(decode(b"data: a\ndata: b\n\ndata: c\n\n"), expected);
        assert_eq!(decode(b"data: a\r\ndata: b\r\rdata: c\n\r\n"), expected);
    }

    #[test]
    fn crlf_split_across_reads_is_one_line_end() {
        assert_eq!(
            decode_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]),
            ["a\nb"]
        );
    }

    #[test]
    fn utf8_split_across_reads_decodes_whole() {
        let text = "data: héllo 🌍 wörld\n\n".as_bytes();
        // Split inside the 4-byte emoji and inside the 2-byte é.
        let emoji = text.iter().position(|&b| b == 0xF0).expect("emoji");
        let e_acute = text.iter().position(|&b| b == 0xC3).expect("é");
        let parts: [&[u8]; 4] = [
            &text[..=e_acute],
            &text[e_acute + 1..emoji + 2],
            &text[emoji + 2..emoji + 3],
            &text[emoji + 3..],
        ];
        assert_eq!(decode_all(&parts), ["héllo 🌍 wörld"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(decode(b"data: a\xFFb\n\n"), ["a\u{FFFD}b"]);
    }

    #[test]
    fn leading_bom_is_skipped_once() {
        assert_eq!(
            decode_all(&[b"\xEF\xBB", b"\xBFdata: x\n\n"]),
            ["x"],
            "a BOM split across reads is still skipped"
        );
        assert_eq!(decode(b"\n\xEF\xBB\xBFdata: x\n\n"), Vec::<String>::new());
    }

    #[test]
    fn unfinished_event_is_reported_and_not_dispatched() {
        let mut decoder = SseDecoder::new();
        let events = decoder.push(b"data: a\n\ndata: cut").expect("small");
        assert_eq!(events, [SseEvent { data: "a".into() }]);
        assert!(decoder.has_partial_event());
        let mut clean = SseDecoder::new();
        clean.push(b"data: a\n\n: bye\n").expect("small");
        assert!(!clean.has_partial_event());
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut decoder = SseDecoder::with_max_event_bytes(16);
        assert!(decoder.push(b"data: 0123456789\n").is_ok());
        assert_eq!(
            decoder.push(b"data: 0123456789\n"),
            Err(SseError::EventTooLarge { limit: 16 })
        );
        let mut long_line = SseDecoder::with_max_event_bytes(16);
        assert!(long_line.push(&[b'x'; 17]).is_err());
    }

    fn event_stream() -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
        let line_end = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
        let data = "[a-zé🌍:{} \"]{0,12}";
        let event = (
            proptest::collection::vec(data, 1..4),
            proptest::bool::ANY,
            line_end.clone(),
        );
        proptest::collection::vec(event, 0..6).prop_map(|events| {
            let mut bytes = Vec::new();
            let mut expected = Vec::new();
            for (lines, comment, end) in events {
                if comment {
                    bytes.extend_from_slice(format!(": ping{end}").as_bytes());
                }
                for line in &lines {
                    bytes.extend_from_slice(format!("data: {line}{end}").as_bytes());
                }
                bytes.extend_from_slice(end.as_bytes());
                expected.push(lines.join("\n"));
            }
            bytes.extend_from_slice(b"data: [DONE]\n\n");
            expected.push("[DONE]".into());
            (bytes, expected)
        })
    }

    proptest! {
        #[test]
        fn any_split_into_reads_yields_the_same_events(
            (bytes, expected) in event_stream(),
            cuts in proptest::collection::vec(proptest::num::usize::ANY, 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut reads: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for cut in cuts {
                reads.push(&bytes[from..cut]);
                from = cut;
            }
            reads.push(&bytes[from..]);
            prop_assert_eq!(decode_all(&reads), expected.clone());
            prop_assert_eq!(decode(&bytes), expected);
        }
    }
}
