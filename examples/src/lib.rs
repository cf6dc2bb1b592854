//! # colloquy-examples
//!
//! Runnable examples of embedding Colloquy, each a binary of this crate, each
//! started and driven over HTTP by this crate's tests:
//!
//! - `axum-mount` (`src/bin/axum-mount.rs`): an axum app with routes of its own
//!   that mounts the chat API under `/support` and streams answers from a handler of
//!   its own with [`colloquy_http::sse_response`].
//! - `hyper-mount` (`src/bin/hyper-mount.rs`): the same on plain hyper/hyper-util.
//! - `custom-store` (`src/bin/custom-store.rs`): the API over [`NaiveStore`], the
//!   smallest third-party store; `tests/custom_store.rs` runs the conformance suite
//!   against it in one macro call.
//!
//! `cargo run -p colloquy-examples --bin axum-mount -- --bind 127.0.0.1:3000`

pub mod naive_store;

pub use naive_store::NaiveStore;
