//! End-to-end tests of the HTTP transport over real loopback TCP with a real HTTP
//! client: every endpoint, every error code, SSE as a browser parses it, streaming,
//! disconnects, graceful shutdown, and property tests over random input.

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod support;

mod chat;
mod limits;
mod messages;
mod props;
mod sessions;
mod shutdown;
mod stream;
mod transport;
mod workflow;
