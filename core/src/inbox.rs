//! The console's inbox: sessions by latest activity first, each with what an
//! operator needs to pick one (the first visitor question, the last message, how
//! many messages, its state), filtered by state, rating, visitor and time.
//!
//! Stores keep what the inbox reads **as things happen**, in the same call that
//! stores the change (see [`ChatStore::inbox`](crate::ports::ChatStore::inbox)), so a
//! page costs the same at a thousand sessions or a million. The functions here are
//! the reference definitions the stores follow (and the memory store computes).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::clock::serde_time;
use crate::feedback::{Feedback, Rating};
use crate::message::{ChatMessage, Role};
use crate::session::{Metadata, Responder, Session};

/// How many characters of a text an inbox row shows (first question, last message).
pub const PREVIEW_CHARS: usize = 200;

/// The page size when the client gives none.
pub const DEFAULT_INBOX_LIMIT: usize = 50;

/// The largest page a client may ask for.
pub const MAX_INBOX_LIMIT: usize = 200;

/// Where a session stands for the operator. Every session is in exactly one state,
/// decided in this order: `closed` when it is not active; `waiting` when a person
/// answers (`responder: human`) and the visitor's request is pending
/// (`handoff_requested_at` set); `human` when a person answers; `active` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InboxState {
    /// The visitor asked for a person and is waiting.
    Waiting,
    /// A person answers (no request pending).
    Human,
    /// Active, answered by the model.
    Active,
    /// Not active: takes no new messages.
    Closed,
}

impl InboxState {
    /// Every state.
    pub const ALL: [Self; 4] = [Self::Waiting, Self::Human, Self::Active, Self::Closed];

    /// The state of `session` (see the type's documentation).
    #[must_use]
    pub fn of(session: &Session) -> Self {
        Self::from_fields(
            session.is_active,
            session.responder,
            session.handoff_requested_at.is_some(),
        )
    }

    /// The state of a session with these fields.
    #[must_use]
    pub fn from_fields(is_active: bool, responder: Responder, handoff_pending: bool) -> Self {
        match (is_active, responder, handoff_pending) {
            (false, _, _) => Self::Closed,
            (true, Responder::Human, true) => Self::Waiting,
            (true, Responder::Human, false) => Self::Human,
            (true, Responder::Ai, _) => Self::Active,
        }
    }

    /// The API name: `waiting`, `human`, `active`, `closed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Human => "human",
            Self::Active => "active",
            Self::Closed => "closed",
        }
    }

    /// Parses the API name; `None` for anything else.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The last message of an inbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text, cut to [`PREVIEW_CHARS`] characters.
    pub text: String,
    /// Its (stored) timestamp.
    #[serde(with = "serde_time")]
    pub created_at: DateTime<Utc>,
}

/// One row of the inbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxEntry {
    /// The session.
    pub session: Session,
    /// The text of its oldest non-deleted `user` message, cut to [`PREVIEW_CHARS`]
    /// characters; `None` when it has none.
    pub first_question: Option<String>,
    /// Its newest non-deleted message; `None` when it has none.
    pub last_message: Option<LastMessage>,
    /// How many non-deleted messages it has.
    pub message_count: u64,
    /// See [`last_activity`].
    #[serde(with = "serde_time")]
    pub last_activity_at: DateTime<Utc>,
    /// Its state.
    pub state: InboxState,
    /// Whether one of its non-deleted messages is rated down (its current
    /// feedback; see [`is_rated_down`]).
    pub rated_down: bool,
}

/// Which sessions an inbox page lists. `None`/`false` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxFilter {
    /// Only sessions in this state.
    pub state: Option<InboxState>,
    /// Only sessions with a message rated down.
    pub rated_down: bool,
    /// Only sessions with exactly this `external_user_id`.
    pub external_user_id: Option<String>,
    /// Only sessions whose last activity is at or after this.
    pub from: Option<DateTime<Utc>>,
    /// Only sessions whose last activity is before this.
    pub to: Option<DateTime<Utc>>,
}

impl InboxFilter {
    /// Whether `entry` passes the filter; the reference definition stores follow.
    #[must_use]
    pub fn matches(&self, entry: &InboxEntry) -> bool {
        self.state.is_none_or(|s| s == entry.state)
            && (!self.rated_down || entry.rated_down)
            && self
                .external_user_id
                .as_ref()
                .is_none_or(|e| entry.session.external_user_id.as_ref() == Some(e))
            && self.from.is_none_or(|f| entry.last_activity_at >= f)
            && self.to.is_none_or(|t| entry.last_activity_at < t)
    }
}

/// A place in the inbox's order: latest `last_activity_at` first, equal times by
/// greater session `id` first. A page that starts after a cursor holds the entries
/// that come after it in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxCursor {
    /// The last activity of the entry the cursor follows.
    pub last_activity_at: DateTime<Utc>,
    /// Its session's id.
    pub id: Uuid,
}

impl InboxCursor {
    /// The cursor just after `entry`.
    #[must_use]
    pub fn after(entry: &InboxEntry) -> Self {
        Self {
            last_activity_at: entry.last_activity_at,
            id: entry.session.id,
        }
    }

    /// Whether an entry at `(at, id)` comes after this cursor in the inbox order.
    #[must_use]
    pub fn precedes(&self, at: DateTime<Utc>, id: Uuid) -> bool {
        (at, id) < (self.last_activity_at, self.id)
    }

    /// The opaque text the API hands out: `<microseconds>-<32 hex digits>`.
    #[must_use]
    pub fn encode(&self) -> String {
        format!(
            "{}-{}",
            self.last_activity_at.timestamp_micros(),
            self.id.simple()
        )
    }

    /// Reads [`InboxCursor::encode`]'s text; `None` when it is not one.
    #[must_use]
    pub fn decode(text: &str) -> Option<Self> {
        let (micros, id) = text.rsplit_once('-')?;
        if id.len() != 32 {
            return None;
        }
        Some(Self {
            last_activity_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// What [`ChatStore::inbox`](crate::ports::ChatStore::inbox) is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxQuery {
    /// Which sessions.
    pub filter: InboxFilter,
    /// Start after this place (the previous page's last entry); `None`: from the top.
    pub after: Option<InboxCursor>,
    /// At most this many entries.
    pub limit: usize,
}

impl Default for InboxQuery {
    fn default() -> Self {
        Self {
            filter: InboxFilter::default(),
            after: None,
            limit: DEFAULT_INBOX_LIMIT,
        }
    }
}

/// A text as an inbox row shows it: its first [`PREVIEW_CHARS`] characters.
#[must_use]
pub fn preview(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// A session's last activity: the latest of its `created_at`, the timestamp of the
/// newest message ever appended to it (`newest_message_at`; a message soft-deleted
/// since still counts: it happened) and its pending `handoff_requested_at`.
#[must_use]
pub fn last_activity(session: &Session, newest_message_at: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let mut at = session.created_at;
    for t in [newest_message_at, session.handoff_requested_at]
        .into_iter()
        .flatten()
    {
        at = at.max(t);
    }
    at
}

/// Whether a message's metadata holds feedback rating it down.
#[must_use]
pub fn is_rated_down(metadata: &Metadata) -> bool {
    Feedback::of(metadata).is_some_and(|f| f.rating == Rating::Down)
}

/// The inbox row of `session` computed from all its messages in write order
/// (soft-deleted ones included): the reference the stores' kept values equal.
#[must_use]
pub fn entry_of(session: &Session, messages: &[&ChatMessage]) -> InboxEntry {
    let live: Vec<&&ChatMessage> = messages.iter().filter(|m| !m.is_deleted).collect();
    InboxEntry {
        session: session.clone(),
        first_question: live
            .iter()
            .find(|m| m.role == Role::User)
            .map(|m| preview(&m.message)),
        last_message: live.last().map(|m| LastMessage {
            role: m.role,
            text: preview(&m.message),
            created_at: m.timestamp,
        }),
        message_count: live.len() as u64,
        last_activity_at: last_activity(session, messages.last().map(|m| m.timestamp)),
        state: InboxState::of(session),
        rated_down: live.iter().any(|m| is_rated_down(&m.metadata)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = InboxCursor {
            last_activity_at: crate::parse_time("2026-01-02T03:04:05.123456Z").expect("time"),
            id: Uuid::new_v4(),
        };
        assert_eq!(InboxCursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "x",
            "12-abc",
            "12",
            "-",
            "abc-0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(InboxCursor::decode(bad), None, "{bad:?}");
        }
        let later = c.last_activity_at + chrono::Duration::microseconds(1);
        assert!(!c.precedes(later, c.id));
        assert!(c.precedes(c.last_activity_at, Uuid::nil()));
        assert!(!c.precedes(c.last_activity_at, c.id));
    }

    #[test]
    fn previews_cut_at_characters_not_bytes() {
        let long = "ü".repeat(PREVIEW_CHARS + 5);
        assert_eq!(preview(&long).chars().count(), PREVIEW_CHARS);
        assert_eq!(preview("short"), "short");
    }

    #[test]
    fn states_partition_sessions() {
        use InboxState::{Active, Closed, Human, Waiting};
        assert_eq!(
            InboxState::from_fields(false, Responder::Human, true),
            Closed
        );
        assert_eq!(
            InboxState::from_fields(true, Responder::Human, true),
            Waiting
        );
        assert_eq!(
            InboxState::from_fields(true, Responder::Human, false),
            Human
        );
        assert_eq!(InboxState::from_fields(true, Responder::Ai, true), Active);
        for s in InboxState::ALL {
            assert_eq!(InboxState::parse(s.as_str()), Some(s));
        }
        assert_eq!(InboxState::parse("open"), None);
    }
}
