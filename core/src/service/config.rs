//! The service's settings and the shapes its use cases answer with.

use uuid::Uuid;

use crate::context::ContextBudget;
use crate::message::{ChatMessage, Cursor, MessageView};
use crate::session::{Page, Retention, Session};
use crate::validate::Limits;

/// Settings of the service; every field has a documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Lifetime of a session created without `expires_at`. Default 24 h.
    pub session_ttl: chrono::Duration,
    /// Input size limits.
    pub limits: Limits,
    /// How much history the model sees.
    pub context: ContextBudget,
    /// How long expired sessions stay stored before [`crate::ChatService::purge_expired`]
    /// removes them. Default 0 (purged at the first purge after expiry).
    pub retention: Retention,
    /// The longest a session may live: `expires_at` further than this from now is
    /// refused (400 `invalid_field`). Default 30 days.
    pub max_session_ttl: chrono::Duration,
    /// How many generations may run at once in this service; beyond, chat answers
    /// 503 `busy` at once instead of queueing. `None` (the default): no limit.
    pub max_generations: Option<usize>,
    /// How many of them one client may hold (as the transport counts clients: an
    /// IPv4 address, an IPv6 /64); beyond, 503 `busy`. `None` (the default): no
    /// share. See [`crate::slots`].
    pub max_generations_per_client: Option<usize>,
    /// How many generations one session may have at once; beyond, 503 `busy`.
    /// `None` (the default): no share.
    pub max_generations_per_session: Option<usize>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            session_ttl: chrono::Duration::hours(24),
            limits: Limits::default(),
            context: ContextBudget::default(),
            retention: Retention::default(),
            max_session_ttl: chrono::Duration::days(30),
            max_generations: None,
            max_generations_per_client: None,
            max_generations_per_session: None,
        }
    }
}

/// A session with all its live messages; see [`crate::ChatService::export_session`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionExport {
    /// The session.
    pub session: Session,
    /// Its live messages in write order (each names the session by UUID).
    pub messages: Vec<ChatMessage>,
}

/// A page of sessions; see [`crate::ChatService::list_sessions`].
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    /// The sessions, newest first.
    pub sessions: Vec<Session>,
    /// The next page, when this one was cut by the limit.
    pub next: Option<Page>,
}

/// A page of a session's messages; see [`crate::ChatService::list_messages`].
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    /// The messages, in the order asked for.
    pub messages: Vec<MessageView>,
    /// Where the next page starts, when this one was cut by the limit.
    pub next: Option<Cursor>,
}

/// A session as `GET /sessions/{id}/` shows it: the record and the answer being
/// generated in it right now, if any.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionView {
    /// The session.
    #[serde(flatten)]
    pub session: Session,
    /// The id of the answer being generated in the session now (the newest started,
    /// when several are), or `None`. Cleared when the generation ends, however it
    /// ends; at most the stream log's lease after its instance died.
    pub active_response_id: Option<Uuid>,
}
