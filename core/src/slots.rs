//! Generation slots: how many answers are generated at once, in all and per share.
//!
//! A generation holds one [`GenerationSlot`] from before its question is stored until
//! its answer is (a generation whose clients all went away still holds its slot, so it
//! runs on only within its own client's and session's share). A slot is refused when
//! the service is full, when the client already holds `per_client` slots, or when the
//! session already has `per_session` answers being generated: so one client (or one
//! session) can never take every slot, and an honest client still finds one.
//!
//! The counters live only while a slot is held: the maps never hold more keys than
//! generations are running.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The caps of [`GenerationSlots`]; `None` is no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotLimits {
    /// Generations at once in this service.
    pub total: Option<usize>,
    /// Generations at once for one client (as the transport counts clients, e.g. an
    /// IPv4 address or an IPv6 /64).
    pub per_client: Option<usize>,
    /// Generations at once in one session.
    pub per_session: Option<usize>,
}

/// Which cap refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotsFull {
    /// Every slot of the service is taken.
    #[error("every generation slot is taken")]
    Service,
    /// The client holds its share.
    #[error("the client holds its share of generation slots")]
    Client,
    /// The session holds its share.
    #[error("the session holds its share of generation slots")]
    Session,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    clients: HashMap<IpAddr, usize>,
    sessions: HashMap<String, usize>,
}

/// The generation slots of a service; see the [module docs](self).
#[derive(Debug, Default)]
pub struct GenerationSlots {
    limits: SlotLimits,
    held: Mutex<Held>,
}

impl GenerationSlots {
    /// Slots under `limits`.
    #[must_use]
    pub fn new(limits: SlotLimits) -> Self {
        Self {
            limits,
            held: Mutex::new(Held::default()),
        }
    }

    /// The caps.
    #[must_use]
    pub fn limits(&self) -> SlotLimits {
        self.limits
    }

    /// A slot for a generation by `client` (unknown: no client share applies) in the
    /// session `session` (its identity, e.g. its UUID).
    ///
    /// # Errors
    /// [`SlotsFull`] names the cap that is reached.
    pub fn try_acquire(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        session: &str,
    ) -> Result<GenerationSlot, SlotsFull> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let over = |limit: Option<usize>, n: usize| limit.is_some_and(|limit| n >= limit);
        if over(self.limits.total, held.total) {
            return Err(SlotsFull::Service);
        }
        if let Some(ip) = client {
            if over(
                self.limits.per_client,
                held.clients.get(&ip).copied().unwrap_or(0),
            ) {
                return Err(SlotsFull::Client);
            }
        }
        if over(
            self.limits.per_session,
            held.sessions.get(session).copied().unwrap_or(0),
        ) {
            return Err(SlotsFull::Session);
        }
        held.total += 1;
        if let Some(ip) = client {
            *held.clients.entry(ip).or_insert(0) += 1;
        }
        *held.sessions.entry(session.to_owned()).or_insert(0) += 1;
        Ok(GenerationSlot {
            slots: Arc::clone(self),
            client,
            session: session.to_owned(),
        })
    }

    /// How many slots are held.
    #[must_use]
    pub fn held(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// One generation's slot; given back when dropped.
#[derive(Debug)]
pub struct GenerationSlot {
    slots: Arc<GenerationSlots>,
    client: Option<IpAddr>,
    session: String,
}

/// Takes one from `key`'s count, forgetting the key at zero.
fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Drop for GenerationSlot {
    fn drop(&mut self) {
        let mut held = self
            .slots
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.total = held.total.saturating_sub(1);
        if let Some(ip) = self.client {
            release(&mut held.clients, &ip);
        }
        release(&mut held.sessions, &self.session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn one_client_cannot_take_every_slot() {
        let slots = Arc::new(GenerationSlots::new(SlotLimits {
            total: Some(4),
            per_client: Some(2),
            per_session: None,
        }));
        let a: Vec<_> = (0..2)
            .map(|i| {
                slots
                    .try_acquire(ip(1), &format!("s{i}"))
                    .expect("a's share")
            })
            .collect();
        assert_eq!(
            slots.try_acquire(ip(1), "s9").expect_err("over a's share"),
            SlotsFull::Client
        );
        let b = slots
            .try_acquire(ip(2), "s0")
            .expect("an honest client gets in");
        let unknown = slots.try_acquire(None, "s5").expect("no client share");
        assert_eq!(
            slots.try_acquire(ip(3), "s6").expect_err("full"),
            SlotsFull::Service
        );
        drop(a);
        assert_eq!(slots.held(), 2);
        let again = slots
            .try_acquire(ip(1), "s1")
            .expect("a's places came back");
        drop((b, unknown, again));
        assert_eq!(slots.held(), 0);
        let held = slots.held.lock().expect("lock");
        assert!(
            held.clients.is_empty() && held.sessions.is_empty(),
            "no key kept"
        );
    }

    #[test]
    fn a_session_has_its_own_share() {
        let slots = Arc::new(GenerationSlots::new(SlotLimits {
            total: None,
            per_client: None,
            per_session: Some(1),
        }));
        let first = slots.try_acquire(ip(1), "s").expect("first");
        assert_eq!(
            slots
                .try_acquire(ip(2), "s")
                .expect_err("the session is busy"),
            SlotsFull::Session
        );
        let other = slots.try_acquire(ip(2), "t").expect("another session");
        drop(first);
        let _second = slots.try_acquire(ip(2), "s").expect("free again");
        drop(other);
    }
}
