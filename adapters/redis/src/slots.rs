//! Redis Cluster hash slots: which slot a key lives in ([`key_slot`]), a short hash
//! tag for every slot ([`slot_tag`]), and message ids that name a slot of the
//! store's choosing ([`message_slot`], [`id_in_slot`]).
//!
//! A message's pointer (message id → session_id, read by `GET /messages/{id}`) must
//! be found from the id alone, yet should live in the session's slot so that an
//! append touches one slot. So 14 bits of every message id name a slot
//! ([`message_slot`]: the id's low 14 bits), the pointer's key is tagged with that
//! slot's tag (`P{slot_tag(message_slot(M))}:M:p`), and the ids the store generates
//! ([`id_in_slot`]) carry the slot of their session's `{session_id}` tag.
//!
//! redis-rs 1.8 computes slots (`cluster_routing::Slot::for_key`) but does not expose
//! the number, so [`key_slot`] is Redis's own rule (CRC16-XMODEM of the hash tag,
//! modulo 16384), tested equal to redis-rs's. A slot's tag cannot be computed
//! backwards from CRC16 as printable text, so the table of tags is found once, on
//! first use, by enumerating short strings: the first one of each slot, in order of
//! length, then of the alphabet `0-9 A-Z a-z` (1 to 4 characters; about 150,000
//! checksums, a few milliseconds; 16,384 tags of at most 4 characters). The table is
//! a pure function of the rule, so every process builds the same one: it is part of
//! the key schema.

use std::sync::OnceLock;

use uuid::Uuid;

/// Number of hash slots in a Redis Cluster.
pub(crate) const SLOTS: u16 = 16_384;

/// The characters tags are made of, in enumeration order.
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Longest tag tried (62^4 strings cover every slot many times over).
const MAX_TAG_LEN: u32 = 4;

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster
/// hashes keys with.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
        }
    }
    crc
}

/// The slot Redis Cluster stores `key` in: the checksum of its hash tag (the text
/// between the first `{` and the next `}`, when not empty), else of the whole key.
pub(crate) fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &bytes[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(bytes);
    crc16(hashed) % SLOTS
}

/// The hash tag (without braces) of slot `slot` (taken modulo [`SLOTS`]): a key
/// `…{slot_tag(s)}…` lives in slot `s`. At most four characters of `0-9 A-Z a-z`.
pub(crate) fn slot_tag(slot: u16) -> &'static str {
    static TAGS: OnceLock<Vec<Box<str>>> = OnceLock::new();
    let tags = TAGS.get_or_init(build_tags);
    &tags[usize::from(slot % SLOTS)]
}

/// The first tag of every slot, by length, then alphabet.
fn build_tags() -> Vec<Box<str>> {
    let mut tags: Vec<Option<Box<str>>> = vec![None; usize::from(SLOTS)];
    let mut missing = tags.len();
    let base = ALPHABET.len();
    for len in 1..=MAX_TAG_LEN {
        let count = base.pow(len);
        let mut text = vec![0_u8; len as usize];
        for mut n in 0..count {
            for place in text.iter_mut().rev() {
                *place = ALPHABET[n % base];
                n /= base;
            }
            let slot = &mut tags[usize::from(crc16(&text) % SLOTS)];
            if slot.is_none() {
                // The alphabet is ASCII.
                *slot = Some(String::from_utf8_lossy(&text).into());
                missing -= 1;
                if missing == 0 {
                    return tags.into_iter().flatten().collect();
                }
            }
        }
    }
    unreachable!("four characters of 62 reach every slot (checked by the tests)")
}

/// The slot message `id`'s pointer lives in: the id's low 14 bits.
pub(crate) fn message_slot(id: Uuid) -> u16 {
    let bytes = id.as_bytes();
    u16::from_be_bytes([bytes[14], bytes[15]]) % SLOTS
}

/// A new version 7 message id (time-ordered, as [`Uuid::now_v7`]) whose
/// [`message_slot`] is `slot`: its low 14 random bits are replaced, the timestamp,
/// the counter that orders ids within a millisecond and 18 more random bits stay.
pub(crate) fn id_in_slot(slot: u16) -> Uuid {
    let mut bytes = *Uuid::now_v7().as_bytes();
    let low = u16::from_be_bytes([bytes[14], bytes[15]]);
    let placed = (low & !(SLOTS - 1)) | (slot % SLOTS);
    bytes[14..16].copy_from_slice(&placed.to_be_bytes());
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    #[test]
    fn key_slots_follow_redis_rules_as_redis_rs_computes_them() {
        // Redis's documented examples, then agreement with redis-rs on many shapes.
        assert_eq!(key_slot("123456789"), 12_739);
        assert_eq!(key_slot("foo"), 12_182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        for key in [
            "",
            "{}",
            "a{}b",
            "{a}{b}",
            "x{y",
            "}{z}",
            "colloquy:{chat-42}:h",
            "p:{0191f3a2-6f5e-7c3b-9a1d-2f4e5d6c7b8a}:u",
        ] {
            assert_eq!(
                Slot::new(key_slot(key)),
                Some(Slot::for_key(key)),
                "{key:?}"
            );
        }
        for n in 0..2_000_u32 {
            let key = format!("k{{{}}}:{n}", n * 7919);
            assert_eq!(Slot::new(key_slot(&key)), Some(Slot::for_key(&key)));
        }
    }

    #[test]
    fn every_slot_has_a_short_tag_of_that_slot() {
        let mut seen = std::collections::HashSet::new();
        for slot in 0..SLOTS {
            let tag = slot_tag(slot);
            assert!((1..=4).contains(&tag.len()), "{slot}: {tag:?}");
            assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric()), "{tag:?}");
            assert_eq!(key_slot(&format!("p:{{{tag}}}:x:p")), slot, "{tag:?}");
            assert!(seen.insert(tag), "{tag:?} twice");
        }
        // The enumeration order is part of the key schema: pin its first tags.
        assert_eq!(slot_tag(key_slot("0")), "0");
        assert_eq!(slot_tag(key_slot("z")), "z");
    }

    #[test]
    fn generated_ids_are_v7_in_the_asked_slot_and_ordered() {
        let mut last = Uuid::nil();
        for slot in [0, 1, 5_000, SLOTS - 1, SLOTS, 40_000] {
            let id = id_in_slot(slot);
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(message_slot(id), slot % SLOTS);
            assert!(id > last, "ids stay time-ordered: {id} after {last}");
            last = id;
        }
        let any = Uuid::from_u128(0xffff_0000_0000_0000_0000_0000_0000_abcd);
        assert_eq!(message_slot(any), 0xabcd & 0x3fff);
    }
}
