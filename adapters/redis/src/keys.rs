//! Key names: the one place that knows the key schema (documented in the crate docs).

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

    /// The prefix every key starts with (scripts that build keys need it).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The three keys of one session, all with the hash tag `{<uuid>}`:
    /// the session hash, the messages hash and the order zset.
    pub(crate) fn session(&self, id: Uuid) -> [String; 3] {
        let p = &self.prefix;
        [
            format!("{p}{{{id}}}:s"),
            format!("{p}{{{id}}}:m"),
            format!("{p}{{{id}}}:o"),
        ]
    }

    /// The pointer from a message id to its session's uuid.
    pub(crate) fn pointer(&self, message: Uuid) -> String {
        format!("{}msg:{{{message}}}", self.prefix)
    }

    /// The six global index keys, in the order the index scripts expect them, all with
    /// the hash tag `{idx}`.
    pub(crate) fn index(&self) -> [String; 6] {
        let p = &self.prefix;
        [
            format!("{p}{{idx}}:sid"),
            format!("{p}{{idx}}:created"),
            format!("{p}{{idx}}:exp"),
            format!("{p}{{idx}}:sidof"),
            format!("{p}{{idx}}:extof"),
            format!("{p}{{idx}}:ver"),
        ]
    }

    /// The prefix of the per-`external_user_id` zsets (same hash tag as the index).
    pub(crate) fn ext_prefix(&self) -> String {
        format!("{}{{idx}}:ext:", self.prefix)
    }
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
    fn session_keys_share_the_session_tag() {
        let keys = Keys::new("app:");
        let id = Uuid::new_v4();
        for key in keys.session(id) {
            assert!(key.starts_with("app:"));
            assert_eq!(tag(&key), id.to_string());
        }
        assert_eq!(tag(&keys.pointer(id)), id.to_string());
    }

    #[test]
    fn index_keys_share_one_tag() {
        let keys = Keys::new("app:");
        for key in keys.index() {
            assert_eq!(tag(&key), "idx");
        }
        assert_eq!(tag(&format!("{}user{{x}}", keys.ext_prefix())), "idx");
    }
}
