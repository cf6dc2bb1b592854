//! Chat messages: roles, the stored record, the API view and list filters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::serde_time;
use crate::session::{Metadata, Page, Session};

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

impl NewMessage {
    /// A `user` message `message` for the session `session` names, without
    /// metadata. The service checks it ([`crate::validate::check_new_message`])
    /// before storing it, as it does a message read from JSON.
    ///
    /// ```
    /// use colloquy_core::{NewMessage, Role, SessionRef};
    /// let new = NewMessage::new(SessionRef::parse("support-42"), "hello").role(Role::System);
    /// assert_eq!((new.message.as_str(), new.role), ("hello", Role::System));
    /// ```
    #[must_use]
    pub fn new(session: crate::SessionRef, message: impl Into<String>) -> Self {
        Self {
            session,
            message: message.into(),
            role: Role::User,
            metadata: Metadata::new(),
        }
    }

    /// This message, written by `role`.
    #[must_use]
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// This message, with `metadata`.
    #[must_use]
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// A message the service asks a store to append: everything but its session, which
/// the store resolves from the [`SessionRef`](crate::SessionRef) it is given.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDraft {
    /// Identifier chosen by the service.
    pub id: Uuid,
    /// Who wrote it.
    pub role: Role,
    /// The text, already validated.
    pub message: String,
    /// Application data.
    pub metadata: Metadata,
    /// When it was written; the store raises it to the previous message's if earlier.
    pub timestamp: DateTime<Utc>,
}

impl MessageDraft {
    /// The stored form of this draft in session `session`, not deleted.
    #[must_use]
    pub fn into_message(self, session: Uuid) -> ChatMessage {
        ChatMessage {
            id: self.id,
            session,
            message: self.message,
            role: self.role,
            metadata: self.metadata,
            timestamp: self.timestamp,
            is_deleted: false,
        }
    }
}

/// The order of a message list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// Write order, oldest first (the default, as the seed lists).
    #[default]
    Asc,
    /// Newest first: the page a chat UI loads first.
    Desc,
}

impl Order {
    /// Reads `asc` or `desc`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "asc" => Some(Self::Asc),
            "desc" => Some(Self::Desc),
            _ => None,
        }
    }

    /// The order as the `order` query parameter spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }

    /// Whether the newest message comes first.
    #[must_use]
    pub const fn is_newest_first(self) -> bool {
        matches!(self, Self::Desc)
    }
}

/// Where in a session's write order a list starts: relative to a message, never to
/// an offset, so pages neither skip nor repeat while messages are appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cursor {
    /// Only messages written before this one.
    Before(Uuid),
    /// Only messages written after this one.
    After(Uuid),
}

impl Cursor {
    /// The message the cursor is relative to.
    #[must_use]
    pub const fn message(self) -> Uuid {
        match self {
            Self::Before(id) | Self::After(id) => id,
        }
    }

    /// The half-open range of positions, in a session of `len` messages in write
    /// order, that this cursor keeps; `place` finds the cursor message's position.
    ///
    /// # Errors
    /// Whatever `place` fails with (the cursor names no message of the session).
    pub fn range<E>(
        self,
        len: usize,
        place: impl FnOnce(Uuid) -> Result<usize, E>,
    ) -> Result<(usize, usize), E> {
        Ok(match self {
            Self::Before(id) => (0, place(id)?),
            Self::After(id) => (place(id)? + 1, len),
        })
    }
}

/// Which page of a session's messages a list returns; see
/// [`ChatStore::list_messages`](crate::ports::ChatStore::list_messages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageQuery {
    /// Only messages that pass this filter.
    pub filter: MessageFilter,
    /// Oldest or newest first.
    pub order: Order,
    /// Only messages before or after a given one.
    pub cursor: Option<Cursor>,
    /// How many to skip (after the cursor, in `order`) and return at most.
    pub page: Page,
}

impl MessageQuery {
    /// The `limit` newest messages, newest first.
    #[must_use]
    pub fn newest(limit: usize) -> Self {
        Self {
            order: Order::Desc,
            page: Page { limit, offset: 0 },
            ..Self::default()
        }
    }

    /// The `limit` oldest messages of one role, in write order.
    #[must_use]
    pub fn oldest_of_role(role: Role, limit: usize) -> Self {
        Self {
            filter: MessageFilter {
                role: Some(role),
                search: None,
            },
            page: Page { limit, offset: 0 },
            ..Self::default()
        }
    }
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
