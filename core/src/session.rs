//! Chat sessions: the record, how it is referenced, patched and listed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::serde_time;

/// Free-form JSON object attached to sessions and messages.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// A chat session, exactly as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Server-assigned identifier.
    pub id: Uuid,
    /// Client-facing identifier: custom, or generated with 128 random bits.
    pub session_id: String,
    /// The embedding application's own user id, if it gave one.
    pub external_user_id: Option<String>,
    /// When the session was created.
    #[serde(with = "serde_time")]
    pub created_at: DateTime<Utc>,
    /// From this instant on the session and its messages are gone for every reader.
    #[serde(with = "serde_time")]
    pub expires_at: DateTime<Utc>,
    /// An inactive session can be read but takes no new messages.
    pub is_active: bool,
    /// Application data, a JSON object.
    pub metadata: Metadata,
    /// Who answers the visitor: the model (the default) or a person.
    #[serde(default)]
    pub responder: Responder,
    /// When the visitor last asked for a person; `None` when no request is pending.
    #[serde(default, with = "serde_time::option")]
    pub handoff_requested_at: Option<DateTime<Utc>>,
}

/// Who answers a session's visitor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Responder {
    /// The model answers every chat (the default).
    #[default]
    Ai,
    /// A person answers: chats store the visitor's message and generate nothing.
    Human,
}

impl Responder {
    /// The name the API uses: `"ai"` or `"human"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ai => "ai",
            Self::Human => "human",
        }
    }

    /// Parses the API name; `None` for anything else.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ai" => Some(Self::Ai),
            "human" => Some(Self::Human),
            _ => None,
        }
    }
}

impl Session {
    /// Whether the session is expired at `now` (expiry is inclusive of `expires_at`).
    #[must_use]
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

/// A reference to a session given by a client: its UUID **or** its `session_id`.
///
/// Only the hyphenated 36-character form counts as a UUID (the form the API
/// returns); any other text, 32 bare hex digits included, is a `session_id` only. A
/// custom `session_id` may itself be a hyphenated UUID, so a store resolves a
/// reference by trying the UUID first and the `session_id` second (see
/// [`ChatStore`](crate::ports::ChatStore)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionRef {
    raw: String,
    uuid: Option<Uuid>,
}

impl SessionRef {
    /// Reads a reference from client input. Never fails: a string that is neither a
    /// UUID nor a valid `session_id` simply matches nothing.
    #[must_use]
    pub fn parse(input: &str) -> Self {
        let hyphenated = input.len() == 36;
        Self {
            raw: input.to_owned(),
            uuid: hyphenated.then(|| Uuid::try_parse(input).ok()).flatten(),
        }
    }

    /// A reference to the session with this UUID.
    #[must_use]
    pub fn from_uuid(id: Uuid) -> Self {
        Self {
            raw: id.to_string(),
            uuid: Some(id),
        }
    }

    /// The text as given, to be matched against `session_id`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The UUID, when the text parses as one.
    #[must_use]
    pub fn uuid(&self) -> Option<Uuid> {
        self.uuid
    }

    /// Whether `session` is the one this reference names, by UUID or by session_id.
    #[must_use]
    pub fn matches(&self, session: &Session) -> bool {
        self.uuid == Some(session.id) || self.raw == session.session_id
    }
}

/// A validated request to create a session; the service fills in the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewSession {
    /// Custom session_id; generated when `None`.
    pub session_id: Option<String>,
    /// The embedding application's user id.
    pub external_user_id: Option<String>,
    /// Application data.
    pub metadata: Metadata,
    /// Custom expiry; `created_at + ttl` when `None`. Must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A validated change to a session; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionPatch {
    /// New `is_active`.
    pub is_active: Option<bool>,
    /// New metadata, replacing the old object whole.
    pub metadata: Option<Metadata>,
    /// New `external_user_id`; `Some(None)` clears it.
    pub external_user_id: Option<Option<String>>,
    /// New expiry (extend or shorten); the service checks it is in the future.
    pub expires_at: Option<DateTime<Utc>>,
    /// New responder.
    pub responder: Option<Responder>,
    /// New handoff request time; `Some(None)` clears it.
    pub handoff_requested_at: Option<Option<DateTime<Utc>>>,
}

impl SessionPatch {
    /// Applies the patch to `session` in place; the one definition of what a patch does.
    pub fn apply_to(&self, session: &mut Session) {
        if let Some(active) = self.is_active {
            session.is_active = active;
        }
        if let Some(metadata) = &self.metadata {
            session.metadata = metadata.clone();
        }
        if let Some(external) = &self.external_user_id {
            session.external_user_id = external.clone();
        }
        if let Some(expires_at) = self.expires_at {
            session.expires_at = expires_at;
        }
        if let Some(responder) = self.responder {
            session.responder = responder;
        }
        if let Some(requested) = self.handoff_requested_at {
            session.handoff_requested_at = requested;
        }
    }
}

/// Which sessions a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only sessions with this `is_active`.
    pub is_active: Option<bool>,
    /// Only sessions with exactly this `external_user_id`.
    pub external_user_id: Option<String>,
    /// Only sessions whose `session_id` or `external_user_id` contains this,
    /// compared case-insensitively.
    pub search: Option<String>,
}

impl SessionFilter {
    /// Whether `session` passes the filter; the reference definition adapters follow.
    #[must_use]
    pub fn matches(&self, session: &Session) -> bool {
        if self.is_active.is_some_and(|a| a != session.is_active) {
            return false;
        }
        if let Some(ext) = &self.external_user_id {
            if session.external_user_id.as_deref() != Some(ext.as_str()) {
                return false;
            }
        }
        if let Some(needle) = &self.search {
            let needle = needle.to_lowercase();
            let in_sid = session.session_id.to_lowercase().contains(&needle);
            let in_ext = session
                .external_user_id
                .as_deref()
                .is_some_and(|e| e.to_lowercase().contains(&needle));
            if !in_sid && !in_ext {
                return false;
            }
        }
        true
    }
}

/// A window into an ordered list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// How many items at most (1..=[`Page::MAX_LIMIT`]).
    pub limit: usize,
    /// How many items to skip first.
    pub offset: usize,
}

impl Page {
    /// The largest `limit` a client may ask for.
    pub const MAX_LIMIT: usize = 1000;
    /// The `limit` used when the client gives none.
    pub const DEFAULT_LIMIT: usize = 100;
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// How long an expired session's data stays stored, invisible to every reader,
/// before it is purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Purge this long after expiry (`0`: as soon as the purge runs; the default).
    For(chrono::Duration),
    /// Never purge: transcripts are kept for the operator.
    Forever,
}

impl Default for Retention {
    fn default() -> Self {
        Self::For(chrono::Duration::zero())
    }
}

impl Retention {
    /// The `cutoff` for [`ChatStore::purge_expired`](crate::ports::ChatStore::purge_expired)
    /// at `now`: sessions expired at or before it may go. `None` for `Forever`.
    #[must_use]
    pub fn cutoff(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::For(keep) => now.checked_sub_signed(keep),
            Self::Forever => None,
        }
    }

    /// When the data of a session expiring at `expires_at` may be removed; `None`
    /// for `Forever`. Stores with physical key expiry set their keys' expiry to this.
    #[must_use]
    pub fn purge_at(self, expires_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::For(keep) => expires_at.checked_add_signed(keep),
            Self::Forever => None,
        }
    }
}

/// Length of a generated `session_id`: 26 characters of base32, 128 random bits.
pub const GENERATED_SESSION_ID_CHARS: usize = 26;

/// Generates a `session_id`: 128 bits from the operating system's random source,
/// written as 26 lowercase base32 characters (`a-z`, `2-7`; RFC 4648 alphabet, no
/// padding). It can never be read as a UUID (wrong length), so resolving it costs
/// one lookup; ids issued before (32 hex digits) keep working as `session_id`s.
///
/// # Errors
/// When the operating system's random source fails.
pub fn generate_session_id() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    let bits = u128::from_be_bytes(bytes);
    // 26 five-bit groups cover 130 bits; the top group holds the 3 highest bits.
    Ok((0..GENERATED_SESSION_ID_CHARS)
        .rev()
        .map(|group| {
            let shift = group * 5;
            let index = (bits >> shift) & 0x1f;
            char::from(ALPHABET[usize::try_from(index).unwrap_or(0)])
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sid: &str, ext: Option<&str>) -> Session {
        let now = Utc::now();
        Session {
            id: Uuid::new_v4(),
            session_id: sid.into(),
            external_user_id: ext.map(Into::into),
            created_at: now,
            expires_at: now,
            is_active: true,
            responder: crate::session::Responder::Ai,
            handoff_requested_at: None,
            metadata: Metadata::new(),
        }
    }

    #[test]
    fn generated_ids_are_unique_base32_never_uuids() {
        let a = generate_session_id().expect("random source");
        let b = generate_session_id().expect("random source");
        assert_eq!(a.len(), GENERATED_SESSION_ID_CHARS);
        assert!(a.bytes().all(|c| matches!(c, b'a'..=b'z' | b'2'..=b'7')));
        assert!(crate::validate::session_id(&a).is_ok());
        assert_ne!(a, b);
        assert_eq!(SessionRef::parse(&a).uuid(), None);
    }

    #[test]
    fn only_hyphenated_uuids_are_uuid_references() {
        let id = Uuid::new_v4();
        assert_eq!(SessionRef::parse(&id.to_string()).uuid(), Some(id));
        assert_eq!(SessionRef::parse(&id.simple().to_string()).uuid(), None);
        assert_eq!(SessionRef::parse(&id.braced().to_string()).uuid(), None);
        assert_eq!(SessionRef::parse(&id.urn().to_string()).uuid(), None);
    }

    #[test]
    fn retention_cutoff_and_purge_time() {
        let now = Utc::now();
        assert_eq!(Retention::default().cutoff(now), Some(now));
        let day = chrono::Duration::days(1);
        assert_eq!(Retention::For(day).cutoff(now), Some(now - day));
        assert_eq!(Retention::For(day).purge_at(now), Some(now + day));
        assert_eq!(Retention::Forever.cutoff(now), None);
        assert_eq!(Retention::Forever.purge_at(now), None);
    }

    #[test]
    fn reference_matches_uuid_or_session_id() {
        let s = session("abc", None);
        assert!(SessionRef::parse("abc").matches(&s));
        assert!(SessionRef::parse(&s.id.to_string()).matches(&s));
        assert!(SessionRef::from_uuid(s.id).matches(&s));
        assert!(!SessionRef::parse("abd").matches(&s));
    }

    #[test]
    fn filter_search_is_case_insensitive_on_both_fields() {
        let s = session("Landing-42", Some("User@Example"));
        let f = |q: &str| SessionFilter {
            search: Some(q.into()),
            ..SessionFilter::default()
        };
        assert!(f("landing").matches(&s));
        assert!(f("@example").matches(&s));
        assert!(!f("nope").matches(&s));
        let exact = SessionFilter {
            external_user_id: Some("user@example".into()),
            ..SessionFilter::default()
        };
        assert!(!exact.matches(&s), "external_user_id filter is exact");
    }
}
