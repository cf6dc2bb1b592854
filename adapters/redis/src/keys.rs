//! Key names on the Rust side; `lua/common.lua` builds the same names inside scripts.
//! The schema is documented in the crate docs.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Builds every key the store uses from its prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`, which must not contain `{` or `}` (checked by the caller).
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix every key starts with (scripts build keys from it).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `P{sid}:h`: the UUID of the session holding `sid`.
    pub(crate) fn holder(&self, sid: &str) -> String {
        format!("{}{{{sid}}}:h", self.prefix)
    }

    /// `P{sid}:U:kind`: one of the keys of session `uuid` (`s` hash, `m` messages,
    /// `v` visible order, `y` system order).
    pub(crate) fn session(&self, sid: &str, uuid: Uuid, kind: char) -> String {
        format!("{}{{{sid}}}:{uuid}:{kind}", self.prefix)
    }

    /// `P{U}:u`: the session_id session `uuid` is stored under.
    pub(crate) fn uuid_pointer(&self, uuid: Uuid) -> String {
        format!("{}{{{uuid}}}:u", self.prefix)
    }

    /// `P{M}:p`: the session_id of the session message `id` was appended to.
    pub(crate) fn message_pointer(&self, id: Uuid) -> String {
        format!("{}{{{id}}}:p", self.prefix)
    }

    /// `P{idx}:c`: the list index (a zset ordered by its entries' text).
    pub(crate) fn index(&self) -> String {
        format!("{}{{idx}}:c", self.prefix)
    }

    /// `P{idx}:p`: the list index entries by purge time.
    pub(crate) fn index_purge(&self) -> String {
        format!("{}{{idx}}:p", self.prefix)
    }
}

/// A session's entry in the list index: `<created_at us, 17 digits> <uuid> <sid>`, so
/// the index's text order is (created_at, id), and the entry names the session's keys.
pub(crate) fn index_entry(created_at: DateTime<Utc>, uuid: Uuid, sid: &str) -> String {
    let micros = created_at.timestamp_micros().max(0);
    format!("{micros:017} {uuid} {sid}")
}

/// The `created_at` an index entry was written for.
pub(crate) fn index_entry_created(entry: &str) -> Option<DateTime<Utc>> {
    let micros = entry.split(' ').next()?.parse::<i64>().ok()?;
    DateTime::from_timestamp_micros(micros)
}

/// The UUID and session_id an index entry names.
pub(crate) fn parse_index_entry(entry: &str) -> Option<(Uuid, &str)> {
    let mut parts = entry.splitn(3, ' ');
    let _created = parts.next()?;
    let uuid = Uuid::try_parse(parts.next()?).ok()?;
    Some((uuid, parts.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str) -> &str {
        let open = key.find('{').expect("key has a hash tag");
        let close = key[open..].find('}').expect("tag is closed") + open;
        &key[open + 1..close]
    }

    #[test]
    fn session_keys_share_the_session_id_tag() {
        let keys = Keys::new("app:");
        let id = Uuid::new_v4();
        for kind in ['s', 'm', 'v', 'y'] {
            let key = keys.session("chat:42", id, kind);
            assert!(key.starts_with("app:"));
            assert_eq!(tag(&key), "chat:42");
        }
        assert_eq!(tag(&keys.holder("chat:42")), "chat:42");
        assert_eq!(tag(&keys.uuid_pointer(id)), id.to_string());
        assert_eq!(tag(&keys.message_pointer(id)), id.to_string());
        assert_eq!(tag(&keys.index()), "idx");
        assert_eq!(tag(&keys.index_purge()), "idx");
    }

    #[test]
    fn index_entries_sort_by_time_then_id_and_name_the_session() {
        let t = colloquy_core::parse_time("2024-05-01T10:00:00.000001Z").expect("time");
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let early = index_entry(t, b, "x");
        let late_a = index_entry(t + chrono::Duration::microseconds(1), a, "y");
        let late_b = index_entry(t + chrono::Duration::microseconds(1), b, "x");
        assert!(early < late_a && late_a < late_b);
        assert_eq!(parse_index_entry(&late_a), Some((a, "y")));
        assert_eq!(index_entry_created(&early), Some(t));
    }
}
