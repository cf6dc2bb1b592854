//! Chat messages: roles, the stored record, the API view and list filters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::serde_time;
use crate::session::{Metadata, Session};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The visitor.
    User,
    /// The model.
    Assistant,
    /// Instructions for the model.
    System,
}

impl Role {
    /// The role as written in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::System => "system",
        }
    }

    /// Reads `user`, `assistant` or `system`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            "system" => Some(Self::System),
            _ => None,
        }
    }
}

/// A message as a store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Server-assigned identifier.
    pub id: Uuid,
    /// The UUID of the session it belongs to.
    pub session: Uuid,
    /// The text, non-empty.
    pub message: String,
    /// Who wrote it.
    pub role: Role,
    /// Application data (RAG sources, finish_reason, token usage, ...).
    pub metadata: Metadata,
    /// When it was written; never earlier than the message written before it.
    #[serde(with = "serde_time")]
    pub timestamp: DateTime<Utc>,
    /// Soft-deleted: hidden from every reader, still stored.
    #[serde(default)]
    pub is_deleted: bool,
}

/// A message exactly as the API returns it, with its session nested.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageView {
    /// Server-assigned identifier.
    pub id: Uuid,
    /// The session the message belongs to.
    pub session: Session,
    /// The text.
    pub message: String,
    /// Who wrote it.
    pub role: Role,
    /// Application data.
    pub metadata: Metadata,
    /// When it was written.
    #[serde(with = "serde_time")]
    pub timestamp: DateTime<Utc>,
}

impl MessageView {
    /// Joins a stored message with its session.
    #[must_use]
    pub fn new(message: ChatMessage, session: Session) -> Self {
        Self {
            id: message.id,
            session,
            message: message.message,
            role: message.role,
            metadata: message.metadata,
            timestamp: message.timestamp,
        }
    }
}

/// A validated request to add a message to a session.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// The session's UUID or session_id.
    pub session: crate::SessionRef,
    /// The text, already checked non-empty and within the size limit.
    pub message: String,
    /// Who wrote it (default `user`).
    pub role: Role,
    /// Application data.
    pub metadata: Metadata,
}

/// Which messages of a session a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only messages with this role.
    pub role: Option<Role>,
    /// Only messages whose text contains this, compared case-insensitively.
    pub search: Option<String>,
}

impl MessageFilter {
    /// Whether `message` passes the filter; the reference definition adapters follow.
    /// Soft-deletion is not the filter's business: lists never include deleted rows.
    #[must_use]
    pub fn matches(&self, message: &ChatMessage) -> bool {
        if self.role.is_some_and(|r| r != message.role) {
            return false;
        }
        match &self.search {
            Some(needle) => message
                .message
                .to_lowercase()
                .contains(&needle.to_lowercase()),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_as_lowercase() {
        for role in [Role::User, Role::Assistant, Role::System] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            let json = serde_json::to_string(&role).expect("serializes");
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
        assert_eq!(Role::parse("User"), None);
    }
}
