//! How sessions and messages are laid out in Redis values, and how script replies
//! are read.
//!
//! Times are stored as integer microseconds since the Unix epoch, as decimal strings
//! (Lua compares them with `tonumber`, exact below 2^53, i.e. until the year 2255);
//! purge times as milliseconds, or `never`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use colloquy_core::{ChatMessage, Metadata, Responder, Retention, Role, Session};
use redis::Value;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Error;
use crate::keys;

/// Microseconds since the epoch.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The first whole millisecond at or after `t`: physical expiry never precedes the
/// logical one.
pub(crate) fn millis_ceil(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros().div_euclid(1000) + i64::from(t.timestamp_micros().rem_euclid(1000) != 0)
}

/// When the keys of a session expiring at `expires_at` expire: milliseconds, or
/// `never` (retention forever, or a time beyond what Redis can hold).
pub(crate) fn purge_time(retention: Retention, expires_at: DateTime<Utc>) -> String {
    retention
        .purge_at(expires_at)
        .map_or_else(|| "never".to_owned(), |t| millis_ceil(t).to_string())
}

/// The later of two purge times.
pub(crate) fn later_purge(a: String, b: String) -> String {
    let value = |p: &str| {
        if p == "never" {
            i64::MAX
        } else {
            p.parse().unwrap_or(i64::MAX)
        }
    };
    if value(&b) > value(&a) {
        b
    } else {
        a
    }
}

fn time_from_micros(s: &str) -> Result<DateTime<Utc>, Error> {
    s.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| Error::corrupt(format!("time {s:?}")))
}

/// `"1"` or `"0"`.
pub(crate) fn flag(on: bool) -> &'static str {
    if on {
        "1"
    } else {
        "0"
    }
}

/// The session hash fields of a new session: the session, its bookkeeping (`seq`
/// messages written, `purge` time of its keys, `cover` time every pointer of the
/// session lives at least until, `idx` its list index entry).
pub(crate) fn session_fields(
    s: &Session,
    purge: &str,
    cover: &str,
) -> Result<Vec<(&'static str, String)>, Error> {
    let mut fields = vec![
        ("id", s.id.to_string()),
        ("sid", s.session_id.clone()),
        ("created", micros(s.created_at).to_string()),
        ("exp", micros(s.expires_at).to_string()),
        ("active", flag(s.is_active).to_owned()),
        ("meta", serde_json::to_string(&s.metadata)?),
        ("seq", "0".to_owned()),
        ("purge", purge.to_owned()),
        ("cover", cover.to_owned()),
        ("idx", keys::index_entry(s.created_at, s.id, &s.session_id)),
    ];
    if let Some(ext) = &s.external_user_id {
        fields.push(("ext", ext.clone()));
    }
    // Absent fields read as the defaults: answered by the model, no handoff pending
    // (so hashes written before these fields existed read right).
    if s.responder != Responder::Ai {
        fields.push(("resp", s.responder.as_str().to_owned()));
    }
    if let Some(at) = s.handoff_requested_at {
        fields.push(("handoff", micros(at).to_string()));
    }
    Ok(fields)
}

/// Reads a session hash (as `HGETALL` pairs); `None` when it is empty (missing key).
pub(crate) fn session_from_fields(
    fields: &HashMap<String, String>,
) -> Result<Option<Session>, Error> {
    if fields.is_empty() {
        return Ok(None);
    }
    let get = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| Error::corrupt(format!("session field {name} missing")))
    };
    let id = Uuid::try_parse(get("id")?).map_err(|_| Error::corrupt("session id"))?;
    let metadata: Metadata = serde_json::from_str(get("meta")?)?;
    Ok(Some(Session {
        id,
        session_id: get("sid")?.clone(),
        external_user_id: fields.get("ext").cloned(),
        created_at: time_from_micros(get("created")?)?,
        expires_at: time_from_micros(get("exp")?)?,
        is_active: get("active")? == "1",
        responder: match fields.get("resp") {
            None => Responder::Ai,
            Some(r) => Responder::parse(r).ok_or_else(|| Error::corrupt("session responder"))?,
        },
        handoff_requested_at: fields
            .get("handoff")
            .map(|t| time_from_micros(t))
            .transpose()?,
        metadata,
    }))
}

/// What a message value holds besides its place: written by [`message_body`].
#[derive(Serialize)]
struct BodyOut<'a> {
    role: Role,
    message: &'a str,
    metadata: &'a Metadata,
}

#[derive(Deserialize)]
struct BodyIn {
    role: Role,
    message: String,
    metadata: Metadata,
}

/// The JSON part of a message value: role, text and metadata. The id, session,
/// timestamp and deletion are known from where the value is stored.
pub(crate) fn message_body(
    role: Role,
    message: &str,
    metadata: &Metadata,
) -> Result<String, Error> {
    Ok(serde_json::to_string(&BodyOut {
        role,
        message,
        metadata,
    })?)
}

/// A message read from its value `"<seq>|<timestamp us>|<body JSON>"`, with its place
/// (`seq`) in the session's write order.
pub(crate) fn message_from_value(
    id: Uuid,
    session: Uuid,
    value: &str,
    is_deleted: bool,
) -> Result<(u64, ChatMessage), Error> {
    let mut parts = value.splitn(3, '|');
    let (Some(seq), Some(ts), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::corrupt("message value"));
    };
    let seq = seq
        .parse()
        .map_err(|_| Error::corrupt("message write order"))?;
    let body: BodyIn = serde_json::from_str(json)?;
    Ok((
        seq,
        ChatMessage {
            id,
            session,
            message: body.message,
            role: body.role,
            metadata: body.metadata,
            timestamp: time_from_micros(ts)?,
            is_deleted,
        },
    ))
}

/// A script's reply: `{status, ...}`.
#[derive(Debug)]
pub(crate) struct Reply {
    status: String,
    items: Vec<Value>,
    /// Cluster: the inbox record a session script handed back (its last item,
    /// `{'inbox', ...}`), for the caller to apply in the `{idx}` slot.
    pub(crate) inbox: Option<Vec<String>>,
}

impl Reply {
    pub(crate) fn parse(value: Value) -> Result<Self, Error> {
        let Value::Array(mut items) = value else {
            return Err(Error::Reply(format!("not an array: {value:?}")));
        };
        if items.is_empty() {
            return Err(Error::Reply("empty reply".into()));
        }
        let status = redis::from_redis_value(items.remove(0))
            .map_err(|e| Error::Reply(format!("status: {e}")))?;
        let inbox = match items.last() {
            Some(Value::Array(last)) if matches!(last.first(), Some(Value::BulkString(b)) if b.as_slice() == b"inbox") =>
            {
                let record: Vec<String> =
                    redis::from_redis_value_ref(items.last().unwrap_or(&Value::Nil))
                        .map_err(|e| Error::Reply(format!("inbox record: {e}")))?;
                items.pop();
                Some(record.into_iter().skip(1).collect())
            }
            _ => None,
        };
        Ok(Self {
            status,
            items,
            inbox,
        })
    }

    /// The first element.
    pub(crate) fn status(&self) -> &str {
        &self.status
    }

    fn item<T: redis::FromRedisValue>(&self, i: usize) -> Result<T, Error> {
        let value = self
            .items
            .get(i)
            .ok_or_else(|| Error::Reply(format!("{} reply has no item {i}", self.status)))?;
        redis::from_redis_value_ref(value)
            .map_err(|e| Error::Reply(format!("{} reply item {i}: {e}", self.status)))
    }

    /// Item `i` (after the status) as Redis returned it.
    pub(crate) fn raw(&self, i: usize) -> Result<&Value, Error> {
        self.items
            .get(i)
            .ok_or_else(|| Error::Reply(format!("{} reply has no item {i}", self.status)))
    }

    /// Item `i` (after the status) as a string.
    pub(crate) fn string(&self, i: usize) -> Result<String, Error> {
        self.item(i)
    }

    /// Item `i` as a list of strings.
    pub(crate) fn strings(&self, i: usize) -> Result<Vec<String>, Error> {
        self.item(i)
    }

    /// Item `i` as a list of strings or nils (an `HMGET`).
    pub(crate) fn optional_strings(&self, i: usize) -> Result<Vec<Option<String>>, Error> {
        self.item(i)
    }

    /// Item `i` as `HGETALL` pairs.
    pub(crate) fn fields(&self, i: usize) -> Result<HashMap<String, String>, Error> {
        Ok(pairs_to_map(self.strings(i)?))
    }

    /// Item `i` as a stored session (an empty hash is corrupt here: scripts only
    /// return sessions they found).
    pub(crate) fn session(&self, i: usize) -> Result<Session, Error> {
        session_from_fields(&self.fields(i)?)?.ok_or_else(|| Error::corrupt("session hash empty"))
    }

    /// Items `ids` and `ids + 1`: message ids and their values, as messages of
    /// `session` with their write-order places.
    pub(crate) fn messages(
        &self,
        ids: usize,
        session: Uuid,
    ) -> Result<Vec<(u64, ChatMessage)>, Error> {
        let id_list = self.strings(ids)?;
        let values = self.optional_strings(ids + 1)?;
        id_list
            .iter()
            .zip(values)
            .map(|(id, value)| {
                let id = Uuid::try_parse(id).map_err(|_| Error::corrupt("message id"))?;
                let value = value.ok_or_else(|| Error::corrupt("message value missing"))?;
                message_from_value(id, session, &value, false)
            })
            .collect()
    }

    /// The reply as an error, for statuses the caller does not expect.
    pub(crate) fn unexpected(&self) -> Error {
        Error::Reply(format!("unexpected script reply {:?}", self.status))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
            responder: colloquy_core::Responder::Ai,
            handoff_requested_at: None,
            metadata,
        }
    }

    #[test]
    fn sessions_round_trip_through_hash_fields() {
        let s = session();
        let fields = session_fields(&s, "never", "never").expect("encodes");
        let map: HashMap<String, String> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(map["idx"], keys::index_entry(s.created_at, s.id, "s-1"));
        let back = session_from_fields(&map)
            .expect("decodes")
            .expect("present");
        assert_eq!(back, s);
        assert!(session_from_fields(&HashMap::new())
            .expect("empty is fine")
            .is_none());
        assert!(!map.contains_key("resp") && !map.contains_key("handoff"));
        let mut human = s.clone();
        human.responder = colloquy_core::Responder::Human;
        human.handoff_requested_at = Some(s.created_at);
        let fields = session_fields(&human, "never", "never").expect("encodes");
        let map: HashMap<String, String> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(map["resp"], "human");
        let back = session_from_fields(&map)
            .expect("decodes")
            .expect("present");
        assert_eq!(back, human);
    }

    #[test]
    fn millis_round_up_and_purge_follows_retention() {
        let t = colloquy_core::parse_time("2024-05-01T10:00:00.000001Z").expect("time");
        assert_eq!(millis_ceil(t) * 1000, micros(t) + 999);
        let whole = colloquy_core::parse_time("2024-05-01T10:00:00.001Z").expect("time");
        assert_eq!(millis_ceil(whole) * 1000, micros(whole));
        assert_eq!(
            purge_time(Retention::default(), whole),
            millis_ceil(whole).to_string()
        );
        let day = chrono::Duration::days(1);
        assert_eq!(
            purge_time(Retention::For(day), whole),
            millis_ceil(whole + day).to_string()
        );
        assert_eq!(purge_time(Retention::Forever, whole), "never");
        assert_eq!(later_purge("5".into(), "12".into()), "12");
        assert_eq!(later_purge("never".into(), "12".into()), "never");
    }

    #[test]
    fn message_values_round_trip() {
        let s = session();
        let mut metadata = Metadata::new();
        metadata.insert("k".into(), serde_json::json!("a|b"));
        let body = message_body(Role::System, "hi | there", &metadata).expect("encodes");
        let id = Uuid::new_v4();
        let value = format!("7|{}|{body}", micros(s.created_at));
        let (seq, m) = message_from_value(id, s.id, &value, true).expect("decodes");
        assert_eq!(seq, 7);
        assert_eq!(m.id, id);
        assert_eq!(m.session, s.id);
        assert_eq!(m.timestamp, s.created_at);
        assert_eq!(m.role, Role::System);
        assert_eq!(m.message, "hi | there");
        assert_eq!(m.metadata, metadata);
        assert!(m.is_deleted);
        assert!(message_from_value(id, s.id, "7|x", false).is_err());
    }
}
