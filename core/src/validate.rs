//! Every input rule of the API, in one place: JSON bodies and query strings in,
//! validated domain values (or a [`ValidationError`] naming the field) out.
//!
//! Rules that need the current time (`expires_at` in the future) are checked by the
//! [`ChatService`](crate::ChatService), which owns the clock.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::clock::parse_time;
use crate::error::ValidationError;
use crate::feedback::{Feedback, NewFeedback, Rating};
use crate::message::{Cursor, MessageFilter, MessageQuery, NewMessage, Order, Role};
use crate::session::{
    Metadata, NewSession, Page, Responder, SessionFilter, SessionPatch, SessionRef,
};
use crate::stats::{Bucket, StatsQuery};

/// Size limits on input; all configurable, defaults as documented in API.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `message` text in bytes (UTF-8). Default 64 KiB.
    pub max_message_bytes: usize,
    /// Largest `metadata` object, serialized, in bytes. Default 16 KiB.
    pub max_metadata_bytes: usize,
    /// Longest `external_user_id` in characters. Default 255.
    pub max_external_user_id_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_metadata_bytes: 16 * 1024,
            max_external_user_id_chars: 255,
        }
    }
}

/// Longest custom `session_id`, in characters.
pub const MAX_SESSION_ID_CHARS: usize = 128;

/// `session_id`s no session may take, as they name routes under `/sessions/`
/// (`GET /sessions/export/?external_user_id=` exports a visitor's sessions).
pub const RESERVED_SESSION_IDS: [&str; 1] = ["export"];

/// Checks a custom `session_id`: 1..=128 characters of `A-Z a-z 0-9 . _ : -`, and
/// not one of [`RESERVED_SESSION_IDS`].
///
/// # Errors
/// `invalid_field` on `session_id` otherwise.
pub fn session_id(s: &str) -> Result<(), ValidationError> {
    if RESERVED_SESSION_IDS.contains(&s) {
        return Err(ValidationError::invalid(
            "session_id",
            format_args!("{s:?} is reserved"),
        ));
    }
    if s.is_empty() || s.len() > MAX_SESSION_ID_CHARS {
        return Err(ValidationError::invalid(
            "session_id",
            format_args!("must be 1 to {MAX_SESSION_ID_CHARS} characters"),
        ));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(ValidationError::invalid(
            "session_id",
            "may contain only A-Z a-z 0-9 . _ : -",
        ));
    }
    Ok(())
}

/// Checks message text: non-empty (after trimming) and at most `limits.max_message_bytes`.
///
/// # Errors
/// `invalid_field` on `message`.
pub fn message_text(s: &str, limits: &Limits) -> Result<(), ValidationError> {
    if s.trim().is_empty() {
        return Err(ValidationError::invalid("message", "must not be empty"));
    }
    if s.len() > limits.max_message_bytes {
        return Err(ValidationError::invalid(
            "message",
            format_args!("must be at most {} bytes", limits.max_message_bytes),
        ));
    }
    Ok(())
}

/// Checks metadata: a JSON object of at most `limits.max_metadata_bytes` serialized.
///
/// # Errors
/// `invalid_field` on `metadata`.
pub fn metadata(value: &Value, limits: &Limits) -> Result<Metadata, ValidationError> {
    let Value::Object(map) = value else {
        return Err(ValidationError::invalid(
            "metadata",
            "must be a JSON object",
        ));
    };
    if value.to_string().len() > limits.max_metadata_bytes {
        return Err(ValidationError::invalid(
            "metadata",
            format_args!(
                "must be at most {} bytes serialized",
                limits.max_metadata_bytes
            ),
        ));
    }
    Ok(map.clone())
}

/// The body of a request as a JSON object.
fn object(body: &Value) -> Result<&serde_json::Map<String, Value>, ValidationError> {
    body.as_object()
        .ok_or_else(|| ValidationError::invalid_json("the body must be a JSON object"))
}

/// A field that must be a string when present (`null` counts as absent).
fn opt_string<'a>(
    obj: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ValidationError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ValidationError::invalid(field, "must be a string")),
    }
}

fn required_string<'a>(
    obj: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<&'a str, ValidationError> {
    opt_string(obj, field)?.ok_or_else(|| ValidationError::missing(field))
}

fn external_user_id(s: &str, limits: &Limits) -> Result<String, ValidationError> {
    if s.chars().count() > limits.max_external_user_id_chars {
        return Err(ValidationError::invalid(
            "external_user_id",
            format_args!(
                "must be at most {} characters",
                limits.max_external_user_id_chars
            ),
        ));
    }
    Ok(s.to_owned())
}

fn time_field(
    obj: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, ValidationError> {
    match obj.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => parse_time(s)
            .map(Some)
            .map_err(|_| ValidationError::invalid(field, "must be an RFC 3339 time")),
        Some(_) => Err(ValidationError::invalid(
            field,
            "must be an RFC 3339 time string",
        )),
    }
}

fn opt_metadata(
    obj: &serde_json::Map<String, Value>,
    limits: &Limits,
) -> Result<Option<Metadata>, ValidationError> {
    obj.get("metadata").map(|v| metadata(v, limits)).transpose()
}

/// Checks a typed [`NewSession`] by the rules its JSON form is read with, so typed
/// callers of the service are held to the same limits as the HTTP API.
///
/// # Errors
/// `invalid_field` naming the field.
pub fn check_new_session(new: &NewSession, limits: &Limits) -> Result<(), ValidationError> {
    if let Some(id) = &new.session_id {
        session_id(id)?;
    }
    if let Some(ext) = &new.external_user_id {
        external_user_id(ext, limits)?;
    }
    metadata(&Value::Object(new.metadata.clone()), limits)?;
    Ok(())
}

/// Checks a typed [`SessionPatch`] by the rules of `PATCH /sessions/{id}/`.
///
/// # Errors
/// `invalid_field` naming the field.
pub fn check_session_patch(patch: &SessionPatch, limits: &Limits) -> Result<(), ValidationError> {
    if let Some(Some(ext)) = &patch.external_user_id {
        external_user_id(ext, limits)?;
    }
    if let Some(m) = &patch.metadata {
        metadata(&Value::Object(m.clone()), limits)?;
    }
    Ok(())
}

/// Checks a typed [`NewMessage`] by the rules of `POST /messages/` and chat.
///
/// # Errors
/// `invalid_field` naming the field.
pub fn check_new_message(new: &NewMessage, limits: &Limits) -> Result<(), ValidationError> {
    message_text(&new.message, limits)?;
    metadata(&Value::Object(new.metadata.clone()), limits)?;
    operator(new.role, &new.metadata)?;
    Ok(())
}

/// The longest operator display name (`metadata.operator`), in characters.
pub const MAX_OPERATOR_CHARS: usize = 100;

/// The rule of `metadata.operator`, the display name of the person who wrote an
/// operator's reply: when present it is a string of 1 to [`MAX_OPERATOR_CHARS`]
/// characters (not only white space), on an `assistant` message only (a visitor's
/// message cannot pass for a person's). Returns the name when there is one.
///
/// # Errors
/// `invalid_field` (`metadata.operator`).
pub fn operator(role: Role, metadata: &Metadata) -> Result<Option<&str>, ValidationError> {
    const FIELD: &str = "metadata.operator";
    let Some(value) = metadata.get("operator") else {
        return Ok(None);
    };
    let Value::String(name) = value else {
        return Err(ValidationError::invalid(FIELD, "must be a string"));
    };
    if name.trim().is_empty() || name.chars().count() > MAX_OPERATOR_CHARS {
        return Err(ValidationError::invalid(
            FIELD,
            format_args!("must be 1 to {MAX_OPERATOR_CHARS} characters"),
        ));
    }
    if role != Role::Assistant {
        return Err(ValidationError::invalid(
            FIELD,
            "is allowed on assistant messages only",
        ));
    }
    Ok(Some(name))
}

/// Reads the body of `POST /sessions/`: every field optional.
///
/// # Errors
/// `invalid_json` when the body is not an object; `invalid_field` for a bad field.
pub fn new_session(body: &Value, limits: &Limits) -> Result<NewSession, ValidationError> {
    let obj = object(body)?;
    let custom_id = opt_string(obj, "session_id")?;
    if let Some(id) = custom_id {
        session_id(id)?;
    }
    Ok(NewSession {
        session_id: custom_id.map(str::to_owned),
        external_user_id: opt_string(obj, "external_user_id")?
            .map(|e| external_user_id(e, limits))
            .transpose()?,
        metadata: opt_metadata(obj, limits)?.unwrap_or_default(),
        expires_at: time_field(obj, "expires_at")?,
    })
}

/// Reads the body of `PATCH /sessions/{id}/`: any of `is_active`, `metadata`,
/// `external_user_id` (`null` clears it), `expires_at`, `responder` (`"ai"` or
/// `"human"`; who may set it is the service's rule, not this one's).
///
/// # Errors
/// `invalid_json` when the body is not an object; `invalid_field` for a bad field.
pub fn session_patch(body: &Value, limits: &Limits) -> Result<SessionPatch, ValidationError> {
    let obj = object(body)?;
    let is_active = match obj.get("is_active") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(ValidationError::invalid("is_active", "must be a boolean")),
    };
    let external = match obj.get("external_user_id") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(external_user_id(s, limits)?)),
        Some(_) => {
            return Err(ValidationError::invalid(
                "external_user_id",
                "must be a string or null",
            ))
        }
    };
    let responder =
        match obj.get("responder") {
            None => None,
            Some(Value::String(s)) => Some(Responder::parse(s).ok_or_else(|| {
                ValidationError::invalid("responder", "must be \"ai\" or \"human\"")
            })?),
            Some(_) => {
                return Err(ValidationError::invalid(
                    "responder",
                    "must be \"ai\" or \"human\"",
                ))
            }
        };
    Ok(SessionPatch {
        is_active,
        metadata: opt_metadata(obj, limits)?,
        external_user_id: external,
        expires_at: time_field(obj, "expires_at")?,
        responder,
        handoff_requested_at: None,
    })
}

/// Reads the body of `POST /messages/`: `session_id` and `message` required, `role`
/// (default `user`) and `metadata` (default `{}`) optional.
///
/// # Errors
/// `missing_field`, `invalid_field` or `invalid_json`.
pub fn new_message(body: &Value, limits: &Limits) -> Result<NewMessage, ValidationError> {
    let obj = object(body)?;
    let role = match opt_string(obj, "role")? {
        None => Role::User,
        Some(r) => Role::parse(r).ok_or_else(|| {
            ValidationError::invalid("role", "must be one of user, assistant, system")
        })?,
    };
    message_fields(obj, role, limits)
}

/// Reads the body of the chat endpoints: `session_id` and `message` required,
/// `metadata` optional (stored on the user message). The role is always `user`.
///
/// # Errors
/// `missing_field`, `invalid_field` or `invalid_json`.
pub fn chat_request(body: &Value, limits: &Limits) -> Result<NewMessage, ValidationError> {
    message_fields(object(body)?, Role::User, limits)
}

fn message_fields(
    obj: &serde_json::Map<String, Value>,
    role: Role,
    limits: &Limits,
) -> Result<NewMessage, ValidationError> {
    let session = required_string(obj, "session_id")?;
    let text = required_string(obj, "message")?;
    message_text(text, limits)?;
    Ok(NewMessage {
        session: SessionRef::parse(session),
        message: text.to_owned(),
        role,
        metadata: opt_metadata(obj, limits)?.unwrap_or_default(),
    })
}

/// Reads the query of the chat stream `GET` (for `EventSource`): `session_id` and
/// `message` required.
///
/// # Errors
/// `missing_field` or `invalid_field`.
pub fn chat_query(
    pairs: &[(String, String)],
    limits: &Limits,
) -> Result<NewMessage, ValidationError> {
    let session =
        last(pairs, "session_id").ok_or_else(|| ValidationError::missing("session_id"))?;
    let text = last(pairs, "message").ok_or_else(|| ValidationError::missing("message"))?;
    message_text(text, limits)?;
    Ok(NewMessage {
        session: SessionRef::parse(session),
        message: text.to_owned(),
        role: Role::User,
        metadata: Metadata::new(),
    })
}

/// The last value given for `key` in a query's decoded pairs: the one place the
/// rule "a repeated parameter's last value wins" is written (the HTTP transport's
/// `last_event_id` uses it too).
#[must_use]
pub fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn page(pairs: &[(String, String)]) -> Result<Page, ValidationError> {
    let mut page = Page::default();
    if let Some(v) = last(pairs, "limit") {
        page.limit = v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=Page::MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ValidationError::invalid(
                    "limit",
                    format_args!("must be an integer from 1 to {}", Page::MAX_LIMIT),
                )
            })?;
    }
    if let Some(v) = last(pairs, "offset") {
        page.offset = v
            .parse::<usize>()
            .map_err(|_| ValidationError::invalid("offset", "must be a non-negative integer"))?;
    }
    Ok(page)
}

fn non_empty(pairs: &[(String, String)], key: &str) -> Option<String> {
    last(pairs, key)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Reads the query of `GET /sessions/`: `is_active`, `external_user_id`, `search`,
/// `limit`, `offset`. Unknown parameters are ignored; empty ones count as absent.
///
/// # Errors
/// `invalid_field` naming the parameter.
pub fn session_query(pairs: &[(String, String)]) -> Result<(SessionFilter, Page), ValidationError> {
    let is_active = match last(pairs, "is_active") {
        None | Some("") => None,
        Some("true" | "True" | "1") => Some(true),
        Some("false" | "False" | "0") => Some(false),
        Some(_) => {
            return Err(ValidationError::invalid(
                "is_active",
                "must be true or false",
            ))
        }
    };
    let filter = SessionFilter {
        is_active,
        external_user_id: non_empty(pairs, "external_user_id"),
        search: non_empty(pairs, "search"),
    };
    Ok((filter, page(pairs)?))
}

/// Reads the query of `GET /messages/`: `session_id` (required), `role`, `search`,
/// `order` (`asc`|`desc`), `before` / `after` (a message id; not both), `limit`,
/// `offset`.
///
/// # Errors
/// `missing_field` without `session_id`; `invalid_field` naming a bad parameter.
pub fn message_query(
    pairs: &[(String, String)],
) -> Result<(SessionRef, MessageQuery), ValidationError> {
    let session =
        non_empty(pairs, "session_id").ok_or_else(|| ValidationError::missing("session_id"))?;
    let role = match last(pairs, "role") {
        None | Some("") => None,
        Some(r) => Some(Role::parse(r).ok_or_else(|| {
            ValidationError::invalid("role", "must be one of user, assistant, system")
        })?),
    };
    let order = match last(pairs, "order") {
        None | Some("") => Order::default(),
        Some(o) => Order::parse(o)
            .ok_or_else(|| ValidationError::invalid("order", "must be asc or desc"))?,
    };
    let cursor_id = |key: &str| -> Result<Option<Uuid>, ValidationError> {
        non_empty(pairs, key)
            .map(|v| {
                Uuid::try_parse(&v)
                    .map_err(|_| ValidationError::invalid(key, "must be a message id (a UUID)"))
            })
            .transpose()
    };
    let cursor = match (cursor_id("before")?, cursor_id("after")?) {
        (Some(_), Some(_)) => {
            return Err(ValidationError::invalid(
                "after",
                "give before or after, not both",
            ))
        }
        (Some(id), None) => Some(Cursor::Before(id)),
        (None, Some(id)) => Some(Cursor::After(id)),
        (None, None) => None,
    };
    let query = MessageQuery {
        filter: MessageFilter {
            role,
            search: non_empty(pairs, "search"),
        },
        order,
        cursor,
        page: page(pairs)?,
    };
    Ok((SessionRef::parse(&session), query))
}

/// Reads the body of `POST /messages/{id}/feedback/`: `rating` (`up` or `down`)
/// required; `comment` (at most [`Feedback::MAX_COMMENT_CHARS`] characters) and
/// `session_id` (the session the message is in, which a public visitor must give)
/// optional.
///
/// # Errors
/// `missing_field`, `invalid_field` or `invalid_json`.
pub fn new_feedback(body: &Value) -> Result<NewFeedback, ValidationError> {
    let obj = object(body)?;
    let rating = Rating::parse(required_string(obj, "rating")?)
        .ok_or_else(|| ValidationError::invalid("rating", "must be up or down"))?;
    let comment = opt_string(obj, "comment")?;
    if comment.is_some_and(|c| c.chars().count() > Feedback::MAX_COMMENT_CHARS) {
        return Err(ValidationError::invalid(
            "comment",
            format_args!("must be at most {} characters", Feedback::MAX_COMMENT_CHARS),
        ));
    }
    Ok(NewFeedback {
        rating,
        comment: comment.map(str::to_owned),
        session: opt_string(obj, "session_id")?
            .filter(|s| !s.is_empty())
            .map(SessionRef::parse),
    })
}

/// A `from`/`to` of the stats query: a date (`YYYY-MM-DD`, midnight UTC; as `to`,
/// the midnight after it, so the day is included) or an RFC 3339 time.
fn stats_time(
    pairs: &[(String, String)],
    key: &str,
) -> Result<Option<DateTime<Utc>>, ValidationError> {
    let Some(v) = non_empty(pairs, key) else {
        return Ok(None);
    };
    if let Ok(day) = chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d") {
        let day = if key == "to" {
            day.succ_opt()
        } else {
            Some(day)
        };
        if let Some(t) = day.and_then(|d| d.and_hms_opt(0, 0, 0)) {
            return Ok(Some(t.and_utc()));
        }
    }
    parse_time(&v).map(Some).map_err(|_| {
        ValidationError::invalid(key, "must be a date (YYYY-MM-DD) or an RFC 3339 time")
    })
}

/// Reads the query of `GET /stats/`: `from`, `to` (see the API for dates and times)
/// and `bucket` (`day`, the default, or `hour`). The range itself is checked by
/// the service, which knows the time.
///
/// # Errors
/// `invalid_field` naming the parameter.
pub fn stats_query(pairs: &[(String, String)]) -> Result<StatsQuery, ValidationError> {
    let bucket = match non_empty(pairs, "bucket") {
        None => Bucket::Day,
        Some(b) => Bucket::parse(&b)
            .ok_or_else(|| ValidationError::invalid("bucket", "must be day or hour"))?,
    };
    Ok(StatsQuery {
        from: stats_time(pairs, "from")?,
        to: stats_time(pairs, "to")?,
        bucket,
    })
}

/// Reads a `limit` from 1 to `max` (default `default`).
fn bounded_limit(
    pairs: &[(String, String)],
    default: usize,
    max: usize,
) -> Result<usize, ValidationError> {
    match non_empty(pairs, "limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| {
                ValidationError::invalid(
                    "limit",
                    format_args!("must be an integer from 1 to {max}"),
                )
            }),
    }
}

/// Reads the query of `GET /inbox/`: `state` (`waiting`, `human`, `active`,
/// `closed`), `rating` (`down`), `external_user_id`, `from` / `to` (last activity;
/// dates or times as for the stats), `limit` (1 to [`MAX_INBOX_LIMIT`], default
/// [`DEFAULT_INBOX_LIMIT`]) and `cursor` (a `next` the server gave).
///
/// [`MAX_INBOX_LIMIT`]: crate::inbox::MAX_INBOX_LIMIT
/// [`DEFAULT_INBOX_LIMIT`]: crate::inbox::DEFAULT_INBOX_LIMIT
///
/// # Errors
/// `invalid_field` naming the parameter.
pub fn inbox_query(
    pairs: &[(String, String)],
    limits: &Limits,
) -> Result<crate::inbox::InboxQuery, ValidationError> {
    use crate::inbox::{InboxCursor, InboxFilter, InboxQuery, InboxState};
    let state = match non_empty(pairs, "state") {
        None => None,
        Some(s) => Some(InboxState::parse(&s).ok_or_else(|| {
            ValidationError::invalid("state", "must be one of waiting, human, active, closed")
        })?),
    };
    let rated_down = match non_empty(pairs, "rating") {
        None => false,
        Some(r) if r == "down" => true,
        Some(_) => return Err(ValidationError::invalid("rating", "must be down")),
    };
    let external_user_id = non_empty(pairs, "external_user_id")
        .map(|e| external_user_id(&e, limits))
        .transpose()?;
    let after = match non_empty(pairs, "cursor") {
        None => None,
        Some(c) => Some(InboxCursor::decode(&c).ok_or_else(|| {
            ValidationError::invalid("cursor", "must be a `next` value this server gave")
        })?),
    };
    Ok(InboxQuery {
        filter: InboxFilter {
            state,
            rated_down,
            external_user_id,
            from: stats_time(pairs, "from")?,
            to: stats_time(pairs, "to")?,
        },
        after,
        limit: bounded_limit(
            pairs,
            crate::inbox::DEFAULT_INBOX_LIMIT,
            crate::inbox::MAX_INBOX_LIMIT,
        )?,
    })
}

/// The longest search query, in characters.
pub const MAX_SEARCH_QUERY_CHARS: usize = 500;

/// Reads the query of `GET /messages/search/`: `q` (required, at most
/// [`MAX_SEARCH_QUERY_CHARS`] characters), `limit` (1 to
/// [`MAX_INBOX_LIMIT`](crate::inbox::MAX_INBOX_LIMIT), default
/// [`DEFAULT_INBOX_LIMIT`](crate::inbox::DEFAULT_INBOX_LIMIT)) and `cursor` (a
/// `next` the server gave: where the page starts).
///
/// # Errors
/// `missing_field` without `q`; `invalid_field` naming a bad parameter.
pub fn search_query(pairs: &[(String, String)]) -> Result<(String, Page), ValidationError> {
    let q = non_empty(pairs, "q").ok_or_else(|| ValidationError::missing("q"))?;
    if q.chars().count() > MAX_SEARCH_QUERY_CHARS {
        return Err(ValidationError::invalid(
            "q",
            format_args!("must be at most {MAX_SEARCH_QUERY_CHARS} characters"),
        ));
    }
    let offset = match non_empty(pairs, "cursor") {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|o| *o <= MAX_SEARCH_OFFSET)
            .ok_or_else(|| {
                ValidationError::invalid("cursor", "must be a `next` value this server gave")
            })?,
    };
    let limit = bounded_limit(
        pairs,
        crate::inbox::DEFAULT_INBOX_LIMIT,
        crate::inbox::MAX_INBOX_LIMIT,
    )?;
    Ok((q, Page { limit, offset }))
}

/// How deep a search may page: the matches past it are not served (a search is
/// for finding, and a deep page costs every match before it).
pub const MAX_SEARCH_OFFSET: usize = 10_000;

/// Reads the required `external_user_id` of the visitor-wide export and erase.
///
/// # Errors
/// `missing_field` without it (or empty), `invalid_field` when too long.
pub fn external_user_query(
    pairs: &[(String, String)],
    limits: &Limits,
) -> Result<String, ValidationError> {
    let id = non_empty(pairs, "external_user_id")
        .ok_or_else(|| ValidationError::missing("external_user_id"))?;
    external_user_id(&id, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn session_id_charset_and_length() {
        assert!(session_id("abc.DEF_12:3-x").is_ok());
        assert!(session_id(&"a".repeat(128)).is_ok());
        for bad in ["", "has space", "slash/", "é", &"a".repeat(129)] {
            let e = session_id(bad).expect_err(bad);
            assert_eq!(e.code, ErrorCode::InvalidField);
            assert_eq!(e.field.as_deref(), Some("session_id"));
        }
    }

    #[test]
    fn new_session_accepts_empty_object_and_rejects_non_objects() {
        let s = new_session(&json!({}), &Limits::default()).expect("empty is fine");
        assert_eq!(s, NewSession::default());
        let e = new_session(&json!([1]), &Limits::default()).expect_err("array");
        assert_eq!(e.code, ErrorCode::InvalidJson);
        let e = new_session(&json!({"metadata": [1]}), &Limits::default()).expect_err("meta");
        assert_eq!(e.field.as_deref(), Some("metadata"));
        let e =
            new_session(&json!({"expires_at": "tomorrow"}), &Limits::default()).expect_err("time");
        assert_eq!(e.field.as_deref(), Some("expires_at"));
    }

    #[test]
    fn metadata_size_is_limited() {
        let limits = Limits {
            max_metadata_bytes: 20,
            ..Limits::default()
        };
        assert!(metadata(&json!({"a": "short"}), &limits).is_ok());
        let e = metadata(&json!({"a": "x".repeat(20)}), &limits).expect_err("too big");
        assert_eq!(e.code, ErrorCode::InvalidField);
    }

    #[test]
    fn new_message_rules() {
        let l = Limits {
            max_message_bytes: 8,
            ..Limits::default()
        };
        let m = new_message(&json!({"session_id": "s", "message": "hi"}), &l).expect("ok");
        assert_eq!(m.role, Role::User);
        let cases = [
            (
                json!({"message": "hi"}),
                ErrorCode::MissingField,
                "session_id",
            ),
            (
                json!({"session_id": "s"}),
                ErrorCode::MissingField,
                "message",
            ),
            (
                json!({"session_id": "s", "message": "  "}),
                ErrorCode::InvalidField,
                "message",
            ),
            (
                json!({"session_id": "s", "message": "123456789"}),
                ErrorCode::InvalidField,
                "message",
            ),
            (
                json!({"session_id": "s", "message": "hi", "role": "bot"}),
                ErrorCode::InvalidField,
                "role",
            ),
            (
                json!({"session_id": 5, "message": "hi"}),
                ErrorCode::InvalidField,
                "session_id",
            ),
        ];
        for (body, code, field) in cases {
            let e = new_message(&body, &l).expect_err("must fail");
            assert_eq!((e.code, e.field.as_deref()), (code, Some(field)), "{body}");
        }
    }

    #[test]
    fn patch_distinguishes_clear_from_absent() {
        let p = session_patch(&json!({"external_user_id": null}), &Limits::default()).expect("ok");
        assert_eq!(p.external_user_id, Some(None));
        let p = session_patch(&json!({}), &Limits::default()).expect("ok");
        assert_eq!(p, SessionPatch::default());
        let e = session_patch(&json!({"is_active": "yes"}), &Limits::default()).expect_err("bool");
        assert_eq!(e.field.as_deref(), Some("is_active"));
    }

    #[test]
    fn query_paging_bounds() {
        let (_, p) = session_query(&q(&[("limit", "1000"), ("offset", "5")])).expect("ok");
        assert_eq!(
            p,
            Page {
                limit: 1000,
                offset: 5
            }
        );
        for (k, v) in [
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "x"),
            ("offset", "-1"),
            ("is_active", "maybe"),
        ] {
            let e = session_query(&q(&[(k, v)])).expect_err(v);
            assert_eq!(e.field.as_deref(), Some(k));
        }
    }

    #[test]
    fn message_query_requires_session() {
        let e = message_query(&q(&[("role", "user")])).expect_err("missing");
        assert_eq!(e.code, ErrorCode::MissingField);
        let (r, query) =
            message_query(&q(&[("session_id", "abc"), ("role", "system")])).expect("ok");
        assert_eq!(r.as_str(), "abc");
        assert_eq!(query.filter.role, Some(Role::System));
        assert_eq!(query.order, Order::Asc);
        assert_eq!(query.cursor, None);
        assert!(message_query(&q(&[("session_id", "abc"), ("role", "x")])).is_err());
    }

    #[test]
    fn message_query_cursors_and_order() {
        let id = Uuid::new_v4().to_string();
        let (_, query) = message_query(&q(&[
            ("session_id", "abc"),
            ("order", "desc"),
            ("before", &id),
            ("limit", "50"),
        ]))
        .expect("ok");
        assert_eq!(query.order, Order::Desc);
        assert_eq!(
            query.cursor.map(Cursor::message).map(|u| u.to_string()),
            Some(id.clone())
        );
        assert!(matches!(query.cursor, Some(Cursor::Before(_))));
        assert_eq!(query.page.limit, 50);
        let (_, after) =
            message_query(&q(&[("session_id", "abc"), ("after", &id)])).expect("after");
        assert!(matches!(after.cursor, Some(Cursor::After(_))));
        for (bad, field) in [
            (vec![("order", "newest")], "order"),
            (vec![("before", "not-a-uuid")], "before"),
            (vec![("after", "42")], "after"),
            (
                vec![("before", id.as_str()), ("after", id.as_str())],
                "after",
            ),
        ] {
            let mut pairs = vec![("session_id", "abc")];
            pairs.extend(bad);
            let e = message_query(&q(&pairs)).expect_err(field);
            assert_eq!(e.code, ErrorCode::InvalidField);
            assert_eq!(e.field.as_deref(), Some(field));
        }
    }
}

#[cfg(test)]
mod console_tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn export_is_a_reserved_session_id() {
        let e = new_session(&json!({"session_id": "export"}), &Limits::default())
            .expect_err("reserved");
        assert_eq!(e.field.as_deref(), Some("session_id"));
        assert!(new_session(&json!({"session_id": "exports"}), &Limits::default()).is_ok());
    }

    #[test]
    fn feedback_bodies() {
        let f = new_feedback(&json!({"rating": "down", "comment": "no", "session_id": "abc"}))
            .expect("ok");
        assert_eq!(f.rating, Rating::Down);
        assert_eq!(f.session, Some(SessionRef::parse("abc")));
        let e = new_feedback(&json!({})).expect_err("missing");
        assert_eq!(e.code, ErrorCode::MissingField);
        let e = new_feedback(&json!({"rating": "meh"})).expect_err("bad");
        assert_eq!(e.field.as_deref(), Some("rating"));
        let long = "é".repeat(Feedback::MAX_COMMENT_CHARS + 1);
        let e = new_feedback(&json!({"rating": "up", "comment": long})).expect_err("long");
        assert_eq!(e.field.as_deref(), Some("comment"));
        let fits = "é".repeat(Feedback::MAX_COMMENT_CHARS);
        assert!(new_feedback(&json!({"rating": "up", "comment": fits})).is_ok());
    }

    #[test]
    fn stats_queries_take_dates_and_times() {
        let s = stats_query(&q(&[("from", "2024-05-01"), ("to", "2024-05-07")])).expect("ok");
        assert_eq!(s.from, parse_time("2024-05-01T00:00:00Z").ok());
        assert_eq!(
            s.to,
            parse_time("2024-05-08T00:00:00Z").ok(),
            "a date as to is included"
        );
        assert_eq!(s.bucket, Bucket::Day);
        let s = stats_query(&q(&[
            ("to", "2024-05-07T10:00:00+02:00"),
            ("bucket", "hour"),
        ]))
        .expect("ok");
        assert_eq!(s.to, parse_time("2024-05-07T08:00:00Z").ok());
        assert_eq!(s.bucket, Bucket::Hour);
        let e = stats_query(&q(&[("bucket", "week")])).expect_err("bucket");
        assert_eq!(e.field.as_deref(), Some("bucket"));
        let e = stats_query(&q(&[("from", "yesterday")])).expect_err("from");
        assert_eq!(e.field.as_deref(), Some("from"));
    }

    #[test]
    fn the_visitor_to_export_or_erase_is_required() {
        let l = Limits::default();
        let e = external_user_query(&q(&[("external_user_id", "")]), &l).expect_err("empty");
        assert_eq!(e.code, ErrorCode::MissingField);
        assert_eq!(
            external_user_query(&q(&[("external_user_id", "u-1")]), &l).expect("ok"),
            "u-1"
        );
    }
}
