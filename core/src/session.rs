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
/// A `session_id` may itself look like a UUID, so a store resolves a reference by
/// trying the UUID first and the `session_id` second (see
/// [`SessionStore::get`](crate::ports::SessionStore::get)).
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
        Self {
            raw: input.to_owned(),
            uuid: Uuid::parse_str(input).ok(),
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

/// Generates a `session_id`: 128 random bits as 32 lowercase hex characters.
///
/// # Errors
/// When the operating system's random source fails.
pub fn generate_session_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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
            metadata: Metadata::new(),
        }
    }

    #[test]
    fn generated_ids_are_unique_hex_of_128_bits() {
        let a = generate_session_id().expect("random source");
        let b = generate_session_id().expect("random source");
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
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
