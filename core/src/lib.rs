//! # colloquy-core
//!
//! The storage-agnostic heart of Colloquy: chat sessions, their messages, and chat
//! with a language model, as domain types, validation rules, ports (traits) and the
//! [`ChatService`] use cases. No I/O happens here: stores, models and transports
//! are adapters in their own crates.
//!
//! ```
//! use std::sync::Arc;
//! use colloquy_core::{validate, ChatService, EchoModel, ServiceConfig, SystemClock};
//! use colloquy_memory::MemoryStore; // any store adapter
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), colloquy_core::ServiceError> {
//! let clock = Arc::new(SystemClock);
//! let store = Arc::new(MemoryStore::new(clock.clone()));
//! let service = ChatService::builder(store, clock)
//!     .model(Arc::new(EchoModel::new())) // or any ChatModel adapter
//!     .config(ServiceConfig::default())
//!     .build();
//! // Transports validate JSON bodies with `validate`, then call the use case.
//! let session = service
//!     .create_session(validate::new_session(&serde_json::json!({}), service.limits())?)
//!     .await?;
//! let chat = serde_json::json!({"session_id": session.session_id, "message": "hello"});
//! let reply = service.chat(validate::chat_request(&chat, service.limits())?).await?;
//! assert_eq!(reply.response, "Echo: hello");
//! # Ok(()) }
//! ```

pub mod access;
mod announce;
mod chat;
mod clock;
pub mod context;
pub mod decorators;
mod deps;
mod echo;
mod error;
pub mod events;
mod feedback;
pub mod idempotency;
pub mod inbox;
pub mod knowledge;
pub mod local;
mod message;
mod model;
pub mod ports;
pub mod ratelimit;
mod resume;
pub mod retry;
pub mod search;
mod service;
mod session;
pub mod slots;
pub mod stats;
pub mod streams;
pub mod validate;

/// Re-exported so a custom adapter or model needs no direct dependency on them:
/// `#[colloquy_core::async_trait]` on an `impl ChatStore`/`impl ChatModel`, and the
/// exact `chrono`, `uuid` and `futures` versions the ports' signatures use.
pub use async_trait::async_trait;
pub use {chrono, futures, uuid};

pub use chat::{ChatEvent, ChatEvents, ChatReply, ChatStream};
pub use clock::{format_time, parse_time, serde_time, Clock, ManualClock, SystemClock};
pub use context::ContextBudget;
pub use echo::EchoModel;
pub use error::{
    BoxError, Entity, ErrorCode, ModelError, ServiceError, StoreError, TimeoutKind, ValidationError,
};
pub use events::{
    EventKind, EventTopic, EventsError, LocalSessionEvents, SessionEvent, SessionEvents,
    Subscription,
};
pub use feedback::{Feedback, NewFeedback, Rating};
pub use knowledge::{
    DocumentInfo, KnowledgeBase, KnowledgeConfig, KnowledgeError, KnowledgeIngest, NewDocument,
    NewPassage, Passage, Source,
};
pub use message::{
    ChatMessage, Cursor, MessageDraft, MessageFilter, MessageQuery, MessageView, NewMessage, Order,
    Role,
};
pub use model::{
    Completion, ContextMessage, FinishInfo, FinishReason, ModelEvent, ModelRequest, Usage,
};
pub use resume::{Resume, ResumePoint};
pub use service::{
    ChatService, ChatServiceBuilder, HandoffConfig, InboxPage, MessagePage, SearchHit, SearchPage,
    ServiceConfig, SessionExport, SessionPage, SessionView, UserExport,
    DEFAULT_HANDOFF_TIMEOUT_MESSAGE, HANDOFF_TIMEOUT_NOTICE, MAX_EXPORT_SESSIONS,
    MAX_HOURLY_STATS_DAYS, MAX_STATS_DAYS, STATS_TOP_QUESTIONS,
};
pub use session::{
    generate_session_id, Metadata, NewSession, Page, Responder, Retention, Session, SessionFilter,
    SessionPatch, SessionRef, GENERATED_SESSION_ID_CHARS,
};
