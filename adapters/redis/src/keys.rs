//! Key names on the Rust side; `lua/common.lua` builds the same names inside scripts.
//! The schema is documented in the crate docs.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::slots;

/// Builds every key the store uses from its prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
    cluster: bool,
}

impl Keys {
    /// Keys under `prefix`, which must not contain `{` or `}` (checked by the caller),
    /// for a cluster or a standalone Redis (message pointers are named differently).
    pub(crate) fn new(prefix: &str, cluster: bool) -> Self {
        Self {
            prefix: prefix.to_owned(),
            cluster,
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
    /// `v` visible order, `y` system order, `a` the stream log's active answer).
    pub(crate) fn session(&self, sid: &str, uuid: Uuid, kind: char) -> String {
        format!("{}{{{sid}}}:{uuid}:{kind}", self.prefix)
    }

    /// `P{U}:u`: the session_id session `uuid` is stored under.
    pub(crate) fn uuid_pointer(&self, uuid: Uuid) -> String {
        format!("{}{{{uuid}}}:u", self.prefix)
    }

    /// The session_id of the session message `id` was appended to. On a cluster
    /// `P{T}:M:p`, where `T` is the tag of the slot the id's low 14 bits name (see
    /// `slots.rs`): the session's own slot for ids the store generated. On standalone
    /// Redis `P{M}:p` (the scripts that delete or extend all of a session's pointers
    /// build this name from the id).
    pub(crate) fn message_pointer(&self, id: Uuid) -> String {
        if self.cluster {
            let tag = slots::slot_tag(slots::message_slot(id));
            format!("{}{{{tag}}}:{id}:p", self.prefix)
        } else {
            self.old_message_pointer(id)
        }
    }

    /// `P{M}:p`: a message pointer as a cluster named it before slot-tagged pointers
    /// (and as standalone Redis still names it); read on a cluster when the new one is
    /// missing, until every session of before the upgrade has expired.
    pub(crate) fn old_message_pointer(&self, id: Uuid) -> String {
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
        let keys = Keys::new("app:", false);
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
        assert_eq!(keys.message_pointer(id), format!("app:{{{id}}}:p"));
        assert_eq!(keys.old_message_pointer(id), format!("app:{{{id}}}:p"));
    }

    #[test]
    fn cluster_message_pointers_live_in_the_slot_their_id_names() {
        let keys = Keys::new("app:", true);
        let sid = "chat:42";
        let session_slot = slots::key_slot(&keys.holder(sid));
        // An id the store generates for the session: its pointer is in the session's slot.
        let id = slots::id_in_slot(session_slot);
        let pointer = keys.message_pointer(id);
        assert_eq!(slots::key_slot(&pointer), session_slot);
        assert_eq!(
            pointer,
            format!("app:{{{}}}:{id}:p", slots::slot_tag(session_slot))
        );
        // Any other id: the slot its low 14 bits name.
        let other = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_0007);
        assert_eq!(slots::key_slot(&keys.message_pointer(other)), 7);
        assert_eq!(tag(&keys.old_message_pointer(other)), other.to_string());
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
