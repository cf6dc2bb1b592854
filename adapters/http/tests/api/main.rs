//! End-to-end tests of the HTTP transport over real loopback TCP with a real HTTP
//! client: every endpoint, every error code, SSE as a browser parses it, streaming,
//! disconnects, graceful shutdown, and property tests over random input.

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod support;

mod access;
mod chat;
mod console;
mod console_page;
mod events;
mod handoff;
mod hostile;
mod idempotency;
mod limits;
mod messages;
mod metrics;
mod mount;
mod openapi;
mod props;
mod rate_limits;
mod resume;
mod sessions;
mod shutdown;
mod stream;
mod transport;
mod widget;
mod workflow;
