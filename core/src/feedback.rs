//! Visitor feedback on a message: a thumbs up or down with an optional comment,
//! stored with the message as `metadata.feedback` (the last one given wins).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::serde_time;
use crate::session::{Metadata, SessionRef};

/// Whether an answer helped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    /// It helped.
    Up,
    /// It did not.
    Down,
}

impl Rating {
    /// The rating as written in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }

    /// Reads `up` or `down`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "up" => Some(Self::Up),
            "down" => Some(Self::Down),
            _ => None,
        }
    }
}

/// Feedback on one message, as stored in its `metadata.feedback`:
/// `{"rating": "up"|"down", "comment": text or null, "at": RFC 3339 time}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    /// Up or down.
    pub rating: Rating,
    /// What the visitor wrote, if anything (at most [`Feedback::MAX_COMMENT_CHARS`]
    /// characters; the transport checks it).
    pub comment: Option<String>,
    /// When it was given.
    #[serde(with = "serde_time")]
    pub at: DateTime<Utc>,
}

impl Feedback {
    /// The metadata key the feedback is stored under.
    pub const METADATA_KEY: &'static str = "feedback";

    /// The longest comment accepted, in characters.
    pub const MAX_COMMENT_CHARS: usize = 2000;

    /// The feedback as its JSON object.
    #[must_use]
    pub fn to_value(&self) -> Value {
        serde_json::json!({
            "rating": self.rating.as_str(),
            "comment": self.comment,
            "at": crate::clock::format_time(&self.at),
        })
    }

    /// The feedback stored in `metadata`, if any (and well-formed).
    #[must_use]
    pub fn of(metadata: &Metadata) -> Option<Self> {
        metadata
            .get(Self::METADATA_KEY)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Stores this feedback in `metadata`, replacing any earlier one, which it
    /// returns.
    pub fn apply_to(&self, metadata: &mut Metadata) -> Option<Self> {
        let previous = Self::of(metadata);
        metadata.insert(Self::METADATA_KEY.into(), self.to_value());
        previous
    }
}

/// Feedback as a client gives it (`POST /messages/{id}/feedback/`); the service
/// adds the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFeedback {
    /// Up or down.
    pub rating: Rating,
    /// An optional comment (checked by [`crate::validate::new_feedback`]).
    pub comment: Option<String>,
    /// The session the caller says the message is in (its `session_id` or UUID):
    /// when given it must be the message's, which proves a visitor holds it.
    pub session: Option<SessionRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_round_trips_through_metadata_and_the_last_one_wins() {
        let at = crate::parse_time("2024-05-01T10:00:00.123456Z").expect("time");
        let up = Feedback {
            rating: Rating::Up,
            comment: None,
            at,
        };
        let down = Feedback {
            rating: Rating::Down,
            comment: Some("wrong <b>price</b>".into()),
            at: at + chrono::Duration::seconds(1),
        };
        let mut m = Metadata::new();
        m.insert("model".into(), Value::from("echo"));
        assert_eq!(up.apply_to(&mut m), None);
        assert_eq!(
            m["feedback"],
            serde_json::json!({"rating": "up", "comment": null, "at": "2024-05-01T10:00:00.123456Z"})
        );
        assert_eq!(down.apply_to(&mut m), Some(up));
        assert_eq!(Feedback::of(&m), Some(down));
        assert_eq!(m["model"], "echo");
        assert_eq!(Rating::parse("down"), Some(Rating::Down));
        assert_eq!(Rating::parse("meh"), None);
    }
}
