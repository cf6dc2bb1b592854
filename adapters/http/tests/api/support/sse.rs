//! The SSE parser of every test in the workspace lives in `colloquy-test-support`
//! (WHATWG event-stream rules, comments reported, every wait bounded); here it reads
//! hyper bodies.

pub use colloquy_test_support::sse::{Event, Item};

/// Reads a response body event by event.
pub type SseReader = colloquy_test_support::sse::SseReader<hyper::body::Incoming>;
