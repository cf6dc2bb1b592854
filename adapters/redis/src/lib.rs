//! # colloquy-redis
//!
//! (crate docs: see below, being rewritten)

mod chat_store;
mod codec;
mod config;
mod conn;
mod error;
mod keys;
mod messages;
mod scripts;
mod sessions;
mod store;

pub use config::{ConnectError, RedisConfig};
pub use store::RedisStore;
