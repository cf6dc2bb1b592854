//! Per-client shares of a global cap: [`Shares`] counts what each key (a client
//! address, a response) holds at once and refuses one more over its share; a
//! [`Share`] gives its place back when dropped. A key is kept only while it holds
//! something, so the map never outgrows what is open.
//!
//! [`client_key`] is how a client address is counted: IPv4 per address, IPv6 per
//! /64 (one subscriber's whole prefix is one client).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

/// The prefix an IPv6 client is counted by: a subscriber usually gets a whole /64.
pub(crate) const IPV6_CLIENT_PREFIX: u8 = 64;

/// The address `ip` is counted under: itself for IPv4 (and IPv4-mapped IPv6), its
/// /64 network for IPv6.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX << (128 - u32::from(IPV6_CLIENT_PREFIX));
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

/// Counts per key, each at most `limit` at once.
#[derive(Debug)]
pub(crate) struct Shares<K: Hash + Eq> {
    limit: usize,
    held: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq + Clone> Shares<K> {
    /// Shares of at most `limit` per key (0 counts as 1).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// One more place for `key`, or `None` when it already holds its share.
    pub(crate) fn try_take(&self, key: K) -> Option<Share<K>> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(key.clone()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Share {
            key: Some(key),
            held: Arc::clone(&self.held),
        })
    }

    /// How many keys hold a place (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A place taken from [`Shares`]; given back on drop.
#[derive(Debug)]
pub(crate) struct Share<K: Hash + Eq> {
    key: Option<K>,
    held: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq> Drop for Share<K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_its_share_and_is_forgotten_when_empty() {
        let shares = Shares::new(2);
        let a1 = shares.try_take("a").expect("first");
        let a2 = shares.try_take("a").expect("second");
        assert!(shares.try_take("a").is_none(), "over the share");
        let b = shares.try_take("b").expect("another key has its own share");
        drop(a1);
        let a3 = shares.try_take("a").expect("a place came back");
        drop((a2, a3, b));
        assert_eq!(shares.keys(), 0, "no key kept once nothing is held");
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let v4: IpAddr = "10.0.0.7".parse().expect("ip");
        assert_eq!(client_key(v4), v4);
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().expect("ip");
        assert_eq!(client_key(mapped), v4);
    }
}
