//! # colloquy-openai
//!
//! A [`ChatModel`](colloquy_core::ports::ChatModel) for any server that speaks the
//! OpenAI Chat Completions API: OpenAI itself, Ollama, vLLM, llama.cpp's server,
//! LM Studio, LiteLLM and others. Whole answers use `stream: false`; streamed
//! answers use `stream: true` and are read as Server-Sent Events by the decoder in
//! [`sse`].
//!
//! - **Settings** are a plain struct, [`OpenAiConfig`], with defaults: base URL, API
//!   key (sent as a bearer token, never logged or shown by `Debug`), model,
//!   temperature, `max_tokens`, a system prompt sent first, extra headers.
//! - **Deadlines** ([`Timeouts`]): connect, first chunk, silence between chunks, and
//!   total; each missed one is `ModelError::Timeout` of its kind (`llm_timeout`).
//! - **Retries** ([`RetryPolicy`]): exponential backoff with jitter on connection
//!   failures, `429` (honouring `Retry-After`) and `5xx`, only until the first chunk
//!   has been handed out. Other `4xx` answers fail at once as
//!   `ModelError::Unavailable { retryable: false, .. }` (`llm_unavailable`).
//! - **Metadata**: the server's model name, `finish_reason` and token usage come back
//!   in [`FinishInfo`](colloquy_core::FinishInfo); streamed calls ask for
//!   `stream_options.include_usage`.
//! - **Cancellation**: dropping the stream drops the HTTP response, which closes the
//!   connection; the server sees the client go away.
//! - **Tests**: the `fake-server` feature adds the `fake` module, a scripted
//!   fake OpenAI-compatible server on loopback, for end-to-end tests of code that
//!   uses this crate.
//!
//! ```no_run
//! use std::sync::Arc;
//! use colloquy_core::{ChatService, SystemClock};
//! use colloquy_memory::MemoryStore;
//! use colloquy_openai::{OpenAiConfig, OpenAiModel};
//!
//! # fn main() -> Result<(), colloquy_openai::ConfigError> {
//! let model = OpenAiModel::new(OpenAiConfig {
//!     base_url: "http://localhost:11434/v1".into(), // Ollama
//!     model: "llama3.2".into(),
//!     api_key: std::env::var("OPENAI_API_KEY").ok(),
//!     system_prompt: Some("You are a helpful assistant.".into()),
//!     ..OpenAiConfig::default()
//! })?;
//! let clock = Arc::new(SystemClock);
//! let store = Arc::new(MemoryStore::new(clock.clone()));
//! let service = ChatService::builder(store, clock).model(Arc::new(model)).build();
//! # let _ = service;
//! # Ok(()) }
//! ```

mod config;
mod error;
#[cfg(feature = "fake-server")]
pub mod fake;
mod model;
mod retry;
pub mod sse;
mod stream;
mod wire;

pub use colloquy_core::retry::RetryPolicy;
pub use config::{OpenAiConfig, Timeouts};
pub use error::{ConfigError, UpstreamError};
pub use model::OpenAiModel;
