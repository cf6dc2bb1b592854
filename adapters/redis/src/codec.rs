//! How sessions and messages are laid out in Redis values.
//!
//! Times are stored as integer microseconds since the Unix epoch, as decimal strings
//! (Lua compares them with `tonumber`, exact below 2^53, i.e. until the year 2255).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use colloquy_core::{ChatMessage, Metadata, Session};
use uuid::Uuid;

use crate::error::Error;

/// Microseconds since the epoch.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The first whole millisecond at or after `t`: physical expiry never precedes the
/// logical one.
pub(crate) fn millis_ceil(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros().div_euclid(1000) + i64::from(t.timestamp_micros().rem_euclid(1000) != 0)
}

fn time_from_micros(s: &str) -> Result<DateTime<Utc>, Error> {
    s.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| Error::corrupt(format!("time {s:?}")))
}

/// The session hash fields for a new session (the counters start at zero).
pub(crate) fn session_fields(s: &Session) -> Result<Vec<(&'static str, String)>, Error> {
    let mut fields = vec![
        ("id", s.id.to_string()),
        ("sid", s.session_id.clone()),
        ("created", micros(s.created_at).to_string()),
        ("exp", micros(s.expires_at).to_string()),
        ("expms", millis_ceil(s.expires_at).to_string()),
        ("active", active_flag(s.is_active).to_owned()),
        ("meta", serde_json::to_string(&s.metadata)?),
        ("seq", "0".to_owned()),
        ("ver", "0".to_owned()),
    ];
    if let Some(ext) = &s.external_user_id {
        fields.push(("ext", ext.clone()));
    }
    Ok(fields)
}

/// `"1"` or `"0"`.
pub(crate) fn active_flag(active: bool) -> &'static str {
    if active {
        "1"
    } else {
        "0"
    }
}

/// What the store keeps about a session besides the [`Session`] itself.
#[derive(Debug, Clone)]
pub(crate) struct StoredSession {
    pub(crate) session: Session,
    /// Incremented by every update; orders index refreshes.
    pub(crate) version: i64,
}

/// Reads a session hash; `None` when the hash is empty (missing key).
pub(crate) fn session_from_fields(
    fields: &HashMap<String, String>,
) -> Result<Option<StoredSession>, Error> {
    if fields.is_empty() {
        return Ok(None);
    }
    let get = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| Error::corrupt(format!("session field {name} missing")))
    };
    let id = Uuid::parse_str(get("id")?).map_err(|_| Error::corrupt("session id"))?;
    let metadata: Metadata = serde_json::from_str(get("meta")?)?;
    let version = match fields.get("ver") {
        Some(v) => v.parse().map_err(|_| Error::corrupt("session version"))?,
        None => 0,
    };
    Ok(Some(StoredSession {
        session: Session {
            id,
            session_id: get("sid")?.clone(),
            external_user_id: fields.get("ext").cloned(),
            created_at: time_from_micros(get("created")?)?,
            expires_at: time_from_micros(get("exp")?)?,
            is_active: get("active")? == "1",
            metadata,
        },
        version,
    }))
}

/// Reads a flat `HGETALL`-style list of field, value, field, value...
pub(crate) fn pairs_to_map(flat: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    map
}

/// The JSON stored for a message (its timestamp is stored beside it, see [`message_from_value`]).
pub(crate) fn message_json(m: &ChatMessage) -> Result<String, Error> {
    Ok(serde_json::to_string(m)?)
}

/// Reads a messages-hash value `"<timestamp us>|<json>"`; the stored timestamp wins
/// over the JSON's (the append script may have raised it).
pub(crate) fn message_from_value(value: &str, is_deleted: bool) -> Result<ChatMessage, Error> {
    let (ts, json) = value
        .split_once('|')
        .ok_or_else(|| Error::corrupt("message value has no timestamp"))?;
    let mut message: ChatMessage = serde_json::from_str(json)?;
    message.timestamp = time_from_micros(ts)?;
    message.is_deleted = is_deleted;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloquy_core::Role;

    fn session() -> Session {
        let now = colloquy_core::parse_time("2024-05-01T10:00:00.123456Z").expect("time");
        let mut metadata = Metadata::new();
        metadata.insert("big".into(), serde_json::json!(12_345_678_901_234_567_u64));
        Session {
            id: Uuid::new_v4(),
            session_id: "s-1".into(),
            external_user_id: Some("u|1".into()),
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
            is_active: true,
            metadata,
        }
    }

    #[test]
    fn sessions_round_trip_through_hash_fields() {
        let s = session();
        let fields = session_fields(&s).expect("encodes");
        let map: HashMap<String, String> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let back = session_from_fields(&map)
            .expect("decodes")
            .expect("present");
        assert_eq!(back.session, s);
        assert_eq!(back.version, 0);
        assert!(session_from_fields(&HashMap::new())
            .expect("empty is fine")
            .is_none());
    }

    #[test]
    fn millis_round_up() {
        let t = colloquy_core::parse_time("2024-05-01T10:00:00.000001Z").expect("time");
        assert_eq!(millis_ceil(t) * 1000, micros(t) + 999);
        let whole = colloquy_core::parse_time("2024-05-01T10:00:00.001Z").expect("time");
        assert_eq!(millis_ceil(whole) * 1000, micros(whole));
    }

    #[test]
    fn message_value_timestamp_wins() {
        let s = session();
        let m = ChatMessage {
            id: Uuid::new_v4(),
            session: s.id,
            message: "hi | there".into(),
            role: Role::User,
            metadata: Metadata::new(),
            timestamp: s.created_at,
            is_deleted: false,
        };
        let later = micros(s.created_at) + 5;
        let value = format!("{later}|{}", message_json(&m).expect("encodes"));
        let back = message_from_value(&value, true).expect("decodes");
        assert_eq!(micros(back.timestamp), later);
        assert!(back.is_deleted);
        assert_eq!(back.message, m.message);
    }
}
