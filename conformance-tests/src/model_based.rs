//! Model-based check: random sequences of store operations are applied to the store
//! under test and to a trivial reference model written straight from the
//! [`ChatStore`](colloquy_core::ports::ChatStore) contract; every result must agree.
//!
//! Every store call runs under the contract deadline ([`contract_timeout`]) and the
//! whole check under five times that, so a hanging store fails the check.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use colloquy_core::ports::Turn;
use colloquy_core::{
    ChatMessage, Clock, Cursor, Entity, MessageDraft, MessageFilter, MessageQuery, Metadata, Order,
    Page, Role, Session, SessionFilter, SessionPatch, SessionRef, StoreError,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;

use crate::harness::{runtime, within, BACKSTOP_GRACE};
use crate::{contract_timeout, TestStore, TIMEOUT_ENV};

/// Environment variable overriding the number of cases (default 256).
pub const CASES_ENV: &str = "COLLOQUY_MODEL_CASES";

/// How an operation names its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The session's UUID.
    Uuid,
    /// The session's `session_id`.
    SessionId,
}

/// One operation of a generated sequence. Indices pick among the sessions and
/// message ids the sequence has tried so far (modulo their count).
#[derive(Debug, Clone)]
pub enum Op {
    /// Create a session living `ttl` seconds.
    CreateSession {
        /// `n0`..`n3` (collisions are the point); 4: the UUID text of session `pick`.
        name: u8,
        /// Which session's UUID text to take as session_id when `name` is 4.
        pick: usize,
        /// Lifetime in seconds.
        ttl: u16,
        /// Optional external user id `User{n}`.
        external: Option<u8>,
        /// Take the UUID of an earlier session (conflicts unless it was removed).
        reuse_uuid: Option<usize>,
    },
    /// Look a session up.
    GetSession {
        /// Which session.
        idx: usize,
        /// By UUID or session_id.
        by: By,
    },
    /// Patch is_active and/or move the expiry to now + `expire_in` seconds.
    Patch {
        /// Which session.
        idx: usize,
        /// By UUID or session_id.
        by: By,
        /// New is_active.
        active: Option<bool>,
        /// New expiry, seconds from now.
        expire_in: Option<u16>,
        /// New external_user_id: `Some(None)` clears it, `Some(Some(n))` sets `User{n}`.
        external: Option<Option<u8>>,
        /// New metadata `{"v": n}`, replacing the old whole.
        metadata: Option<u8>,
    },
    /// Delete a session.
    DeleteSession {
        /// Which session.
        idx: usize,
        /// By UUID or session_id.
        by: By,
    },
    /// Append a message.
    Append {
        /// Which session.
        idx: usize,
        /// By UUID or session_id.
        by: By,
        /// Role.
        role: Role,
        /// Text variant.
        text: u8,
        /// Take the id of an earlier message (conflicts unless it was removed).
        reuse_id: Option<usize>,
        /// Stamp it 30 s in the past (the store raises it).
        backdated: bool,
    },
    /// Chat's first step.
    BeginTurn {
        /// Which session.
        idx: usize,
        /// By UUID or session_id.
        by: By,
        /// Role.
        role: Role,
        /// Text variant.
        text: u8,
        /// Context window.
        window: usize,
    },
    /// Get a message with its session.
    GetMessage {
        /// Which message.
        msg: usize,
    },
    /// Soft-delete a message.
    DeleteMessage {
        /// Which message.
        msg: usize,
    },
    /// List sessions.
    ListSessions {
        /// is_active filter.
        active: Option<bool>,
        /// external_user_id filter `User{n}`.
        external: Option<u8>,
        /// search filter variant.
        search: Option<u8>,
        /// limit.
        limit: usize,
        /// offset.
        offset: usize,
    },
    /// List messages.
    ListMessages {
        /// Which session.
        idx: usize,
        /// By UUID or session_id.
        by: By,
        /// role filter.
        role: Option<Role>,
        /// search filter variant.
        search: Option<u8>,
        /// Newest first when true.
        desc: bool,
        /// A cursor: before (true) or after, relative to message `Some(msg)` (any
        /// session's) or to an unknown id (`None`).
        cursor: Option<(bool, Option<usize>)>,
        /// limit.
        limit: usize,
        /// offset.
        offset: usize,
    },
    /// Purge sessions expired at or before now minus `retention` seconds.
    Purge {
        /// Seconds before now.
        retention: u16,
    },
    /// Move the clock forward.
    Advance {
        /// Seconds.
        secs: u16,
    },
}

const TEXTS: [&str; 4] = ["hello", "Pricing?", "ok", "PRICING: 10"];
const MESSAGE_SEARCHES: [&str; 3] = ["pric", "OK", "%"];
const SESSION_SEARCHES: [&str; 3] = ["user1", "n2", "N"];

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::User), Just(Role::Assistant), Just(Role::System)]
}

fn by() -> impl Strategy<Value = By> {
    prop_oneof![Just(By::Uuid), Just(By::SessionId)]
}

fn rare<T: std::fmt::Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
    proptest::option::weighted(0.1, s)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..5, any::<usize>(), 1u16..120, proptest::option::of(0u8..3), rare(any::<usize>()))
            .prop_map(|(name, pick, ttl, external, reuse_uuid)| Op::CreateSession {
                name, pick, ttl, external, reuse_uuid
            }),
        2 => (any::<usize>(), by()).prop_map(|(idx, by)| Op::GetSession { idx, by }),
        1 => (
            (any::<usize>(), by(), proptest::option::of(any::<bool>()), proptest::option::of(1u16..200)),
            (proptest::option::of(proptest::option::of(0u8..3)), proptest::option::of(0u8..3)),
        )
            .prop_map(|((idx, by, active, expire_in), (external, metadata))| Op::Patch {
                idx, by, active, expire_in, external, metadata
            }),
        1 => (any::<usize>(), by()).prop_map(|(idx, by)| Op::DeleteSession { idx, by }),
        5 => (any::<usize>(), by(), role(), 0u8..4, rare(any::<usize>()), proptest::bool::weighted(0.2))
            .prop_map(|(idx, by, role, text, reuse_id, backdated)| Op::Append {
                idx, by, role, text, reuse_id, backdated
            }),
        2 => (any::<usize>(), by(), role(), 0u8..4, 1usize..5)
            .prop_map(|(idx, by, role, text, window)| Op::BeginTurn { idx, by, role, text, window }),
        2 => any::<usize>().prop_map(|msg| Op::GetMessage { msg }),
        1 => any::<usize>().prop_map(|msg| Op::DeleteMessage { msg }),
        1 => (proptest::option::of(any::<bool>()), proptest::option::of(0u8..3), proptest::option::of(0u8..3), 1usize..5, 0usize..3)
            .prop_map(|(active, external, search, limit, offset)| Op::ListSessions {
                active, external, search, limit, offset
            }),
        3 => (
            (any::<usize>(), by(), proptest::option::of(role()), rare(0u8..3)),
            (any::<bool>(), proptest::option::of((any::<bool>(), proptest::option::weighted(0.9, any::<usize>()))), 1usize..6, 0usize..3),
        )
            .prop_map(|((idx, by, role, search), (desc, cursor, limit, offset))| Op::ListMessages {
                idx, by, role, search, desc, cursor, limit, offset
            }),
        1 => (0u16..60).prop_map(|retention| Op::Purge { retention }),
        1 => (0u16..90).prop_map(|secs| Op::Advance { secs }),
    ]
}

/// Strategy for whole sequences.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..40)
}

/// An outcome the contract names, without the backend's details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `NotFound(Session)`.
    NoSession,
    /// `NotFound(Message)`.
    NoMessage,
    /// `Conflict(Session)`.
    SessionTaken,
    /// `Conflict(Message)`.
    MessageTaken,
    /// `SessionInactive`.
    Inactive,
}

/// What the model allows: this value, or one of these errors (two rules can apply
/// at once, e.g. a duplicate message id appended to a missing session, and the
/// contract does not say which comes first).
type Expect<T> = Result<T, Vec<Outcome>>;

fn no(outcome: Outcome) -> Vec<Outcome> {
    vec![outcome]
}

/// Why a sequence failed.
#[derive(Debug)]
pub enum SequenceError {
    /// Store and model disagree, or the store failed.
    Disagree(String),
    /// A store call did not return within the deadline.
    Hung(String),
}

/// The reference model: plain vectors, written straight from the contract.
#[derive(Default)]
struct Model {
    /// Every stored session, expired ones included.
    sessions: Vec<Session>,
    /// Every stored message, in write order, soft-deleted ones included.
    messages: Vec<ChatMessage>,
}

impl Model {
    fn live(&self, id: Uuid, now: DateTime<Utc>) -> Option<&Session> {
        self.sessions
            .iter()
            .find(|s| s.id == id && !s.is_expired_at(now))
    }

    fn find(&self, r: &SessionRef, now: DateTime<Utc>) -> Option<&Session> {
        r.uuid().and_then(|id| self.live(id, now)).or_else(|| {
            self.sessions
                .iter()
                .find(|s| s.session_id == r.as_str() && !s.is_expired_at(now))
        })
    }

    fn create(&mut self, s: Session, now: DateTime<Utc>) -> Expect<()> {
        let sid_taken = self
            .sessions
            .iter()
            .any(|x| !x.is_expired_at(now) && x.session_id == s.session_id);
        if sid_taken || self.sessions.iter().any(|x| x.id == s.id) {
            return Err(no(Outcome::SessionTaken));
        }
        self.sessions.push(s);
        Ok(())
    }

    fn update(&mut self, r: &SessionRef, p: &SessionPatch, now: DateTime<Utc>) -> Expect<Session> {
        let id = self.find(r, now).ok_or(no(Outcome::NoSession))?.id;
        let s = self
            .sessions
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or(no(Outcome::NoSession))?;
        p.apply_to(s);
        Ok(s.clone())
    }

    fn delete(&mut self, r: &SessionRef, now: DateTime<Utc>) -> Expect<()> {
        let id = self.find(r, now).ok_or(no(Outcome::NoSession))?.id;
        self.remove(&[id]);
        Ok(())
    }

    fn remove(&mut self, ids: &[Uuid]) {
        self.sessions.retain(|s| !ids.contains(&s.id));
        self.messages.retain(|m| !ids.contains(&m.session));
    }

    fn list_sessions(&self, f: &SessionFilter, page: Page, now: DateTime<Utc>) -> Vec<Session> {
        let mut v: Vec<Session> = self
            .sessions
            .iter()
            .filter(|s| !s.is_expired_at(now) && f.matches(s))
            .cloned()
            .collect();
        v.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
        v.into_iter().skip(page.offset).take(page.limit).collect()
    }

    fn append(
        &mut self,
        r: &SessionRef,
        d: MessageDraft,
        now: DateTime<Utc>,
    ) -> Expect<(Session, ChatMessage)> {
        let duplicate = self.messages.iter().any(|x| x.id == d.id);
        let session = match self.find(r, now) {
            None if duplicate => return Err(vec![Outcome::NoSession, Outcome::MessageTaken]),
            None => return Err(no(Outcome::NoSession)),
            Some(s) if !s.is_active && duplicate => {
                return Err(vec![Outcome::Inactive, Outcome::MessageTaken])
            }
            Some(s) if !s.is_active => return Err(no(Outcome::Inactive)),
            Some(_) if duplicate => return Err(no(Outcome::MessageTaken)),
            Some(s) => s.clone(),
        };
        let mut m = d.into_message(session.id);
        if let Some(last) = self.messages.iter().rev().find(|x| x.session == session.id) {
            m.timestamp = m.timestamp.max(last.timestamp);
        }
        self.messages.push(m.clone());
        Ok((session, m))
    }

    fn begin_turn(
        &mut self,
        r: &SessionRef,
        d: MessageDraft,
        window: usize,
        now: DateTime<Utc>,
    ) -> Expect<Turn> {
        let (session, message) = self.append(r, d, now)?;
        let live: Vec<&ChatMessage> = self
            .messages
            .iter()
            .filter(|m| m.session == session.id && !m.is_deleted)
            .collect();
        let system = live
            .iter()
            .filter(|m| m.role == Role::System)
            .take(window)
            .map(|m| (*m).clone())
            .collect();
        let recent = live[live.len().saturating_sub(window)..]
            .iter()
            .map(|m| (*m).clone())
            .collect();
        Ok(Turn {
            session,
            message,
            system,
            recent,
        })
    }

    fn message(&self, id: Uuid, now: DateTime<Utc>) -> Option<(ChatMessage, Session)> {
        let m = self.messages.iter().find(|m| m.id == id && !m.is_deleted)?;
        let s = self.live(m.session, now)?;
        Some((m.clone(), s.clone()))
    }

    fn delete_message(&mut self, id: Uuid, now: DateTime<Utc>) -> Expect<()> {
        self.message(id, now).ok_or(no(Outcome::NoMessage))?;
        for m in self.messages.iter_mut().filter(|m| m.id == id) {
            m.is_deleted = true;
        }
        Ok(())
    }

    fn list_messages(
        &self,
        r: &SessionRef,
        q: &MessageQuery,
        now: DateTime<Utc>,
    ) -> Expect<(Session, Vec<ChatMessage>)> {
        let session = self.find(r, now).ok_or(no(Outcome::NoSession))?;
        let all: Vec<&ChatMessage> = self
            .messages
            .iter()
            .filter(|m| m.session == session.id)
            .collect();
        let place = |id: Uuid| {
            all.iter()
                .position(|m| m.id == id)
                .ok_or(no(Outcome::NoMessage))
        };
        let (from, to) = match q.cursor {
            Some(Cursor::Before(id)) => (0, place(id)?),
            Some(Cursor::After(id)) => (place(id)? + 1, all.len()),
            None => (0, all.len()),
        };
        let mut kept: Vec<ChatMessage> = all[from..to]
            .iter()
            .filter(|m| !m.is_deleted && q.filter.matches(m))
            .map(|m| (*m).clone())
            .collect();
        if q.order == Order::Desc {
            kept.reverse();
        }
        let page = kept
            .into_iter()
            .skip(q.page.offset)
            .take(q.page.limit)
            .collect();
        Ok((session.clone(), page))
    }

    fn expired_by(&self, cutoff: DateTime<Utc>) -> Vec<Uuid> {
        self.sessions
            .iter()
            .filter(|s| s.expires_at <= cutoff)
            .map(|s| s.id)
            .collect()
    }
}

fn pick<T: Clone>(items: &[T], idx: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[idx % items.len()].clone())
}

fn reference(session: &Session, by: By) -> SessionRef {
    match by {
        By::Uuid => SessionRef::from_uuid(session.id),
        By::SessionId => SessionRef::parse(&session.session_id),
    }
}

/// Checks a store result against what the model allows; returns the value when
/// both succeeded (the model's effect has been applied already).
fn agree<T: PartialEq + std::fmt::Debug>(
    op: &Op,
    store: Result<T, StoreError>,
    model: Expect<T>,
) -> Result<(), SequenceError> {
    let store = match store {
        Ok(v) => Ok(v),
        Err(StoreError::NotFound(Entity::Session)) => Err(Outcome::NoSession),
        Err(StoreError::NotFound(Entity::Message)) => Err(Outcome::NoMessage),
        Err(StoreError::Conflict(Entity::Session)) => Err(Outcome::SessionTaken),
        Err(StoreError::Conflict(Entity::Message)) => Err(Outcome::MessageTaken),
        Err(StoreError::SessionInactive) => Err(Outcome::Inactive),
        Err(e) => {
            return Err(SequenceError::Disagree(format!(
                "after {op:?}: the store failed: {e:?}"
            )))
        }
    };
    let same = match (&store, &model) {
        (Ok(got), Ok(want)) => got == want,
        (Err(got), Err(allowed)) => allowed.contains(got),
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(SequenceError::Disagree(format!(
            "after {op:?}:\n  store: {store:?}\n  model: {model:?}"
        )))
    }
}

/// Awaits a store call under the deadline.
async fn call<T>(
    op: &Op,
    deadline: StdDuration,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<Result<T, StoreError>, SequenceError> {
    tokio::time::timeout(deadline, fut).await.map_err(|_| {
        SequenceError::Hung(format!(
            "{op:?} did not return within {deadline:?} ({TIMEOUT_ENV})"
        ))
    })
}

/// Applies `ops` to the store and the model, failing on the first disagreement.
/// The clock first moves a day ahead of the wall clock, so a store that expires
/// data by wall time never drops what the model still holds.
///
/// # Errors
/// A [`SequenceError`] describing the first operation where they disagree, or the
/// one that did not return within `deadline`.
#[allow(clippy::too_many_lines)]
pub async fn run_sequence(
    s: &TestStore,
    ops: &[Op],
    deadline: StdDuration,
) -> Result<(), SequenceError> {
    s.clock.advance(Duration::days(1));
    let mut model = Model::default();
    let mut sessions: Vec<Session> = Vec::new();
    let mut messages: Vec<Uuid> = Vec::new();
    for op in ops {
        let now = s.clock.now();
        match op {
            Op::CreateSession {
                name,
                pick: which,
                ttl,
                external,
                reuse_uuid,
            } => {
                let session_id = match (name, pick(&sessions, *which)) {
                    (4, Some(other)) => other.id.to_string(),
                    (n, _) => format!("n{}", n % 4),
                };
                let id = reuse_uuid
                    .and_then(|i| pick(&sessions, i))
                    .map_or_else(Uuid::new_v4, |x| x.id);
                let session = Session {
                    id,
                    session_id,
                    external_user_id: external.map(|e| format!("User{e}")),
                    created_at: now,
                    expires_at: now + Duration::seconds(i64::from(*ttl)),
                    is_active: true,
                    responder: colloquy_core::Responder::Ai,
                    handoff_requested_at: None,
                    metadata: Metadata::new(),
                };
                let got = call(op, deadline, s.store.create_session(&session)).await?;
                agree(op, got, model.create(session.clone(), now))?;
                sessions.push(session);
            }
            Op::GetSession { idx, by } => {
                let Some(target) = pick(&sessions, *idx) else {
                    continue;
                };
                let r = reference(&target, *by);
                let got = call(op, deadline, s.store.session(&r)).await?;
                agree(op, got, Ok(model.find(&r, now).cloned()))?;
            }
            Op::Patch {
                idx,
                by,
                active,
                expire_in,
                external,
                metadata,
            } => {
                let Some(target) = pick(&sessions, *idx) else {
                    continue;
                };
                let r = reference(&target, *by);
                let patch = SessionPatch {
                    is_active: *active,
                    expires_at: expire_in.map(|secs| now + Duration::seconds(i64::from(secs))),
                    external_user_id: external.map(|e| e.map(|n| format!("User{n}"))),
                    responder: None,
                    handoff_requested_at: None,
                    metadata: metadata.map(|n| {
                        let mut m = Metadata::new();
                        m.insert("v".into(), n.into());
                        m
                    }),
                };
                let got = call(op, deadline, s.store.update_session(&r, &patch)).await?;
                agree(op, got, model.update(&r, &patch, now))?;
            }
            Op::DeleteSession { idx, by } => {
                let Some(target) = pick(&sessions, *idx) else {
                    continue;
                };
                let r = reference(&target, *by);
                let got = call(op, deadline, s.store.delete_session(&r)).await?;
                agree(op, got, model.delete(&r, now))?;
            }
            Op::Append {
                idx,
                by,
                role,
                text,
                reuse_id,
                backdated,
            } => {
                let Some(target) = pick(&sessions, *idx) else {
                    continue;
                };
                let r = reference(&target, *by);
                // A new id as the service gets one (the store may place it).
                let id = reuse_id
                    .and_then(|i| pick(&messages, i))
                    .unwrap_or_else(|| s.store.new_message_id(&r));
                let d = MessageDraft {
                    id,
                    role: *role,
                    message: TEXTS[usize::from(*text) % TEXTS.len()].to_owned(),
                    metadata: Metadata::new(),
                    timestamp: if *backdated {
                        now - Duration::seconds(30)
                    } else {
                        now
                    },
                };
                messages.push(id);
                let got = call(op, deadline, s.store.append(&r, d.clone())).await?;
                agree(op, got, model.append(&r, d, now))?;
            }
            Op::BeginTurn {
                idx,
                by,
                role,
                text,
                window,
            } => {
                let Some(target) = pick(&sessions, *idx) else {
                    continue;
                };
                let r = reference(&target, *by);
                let d = MessageDraft {
                    id: s.store.new_message_id(&r),
                    role: *role,
                    message: TEXTS[usize::from(*text) % TEXTS.len()].to_owned(),
                    metadata: Metadata::new(),
                    timestamp: now,
                };
                messages.push(d.id);
                let got = call(op, deadline, s.store.begin_turn(&r, d.clone(), *window)).await?;
                agree(op, got, model.begin_turn(&r, d, *window, now))?;
            }
            Op::GetMessage { msg } => {
                let Some(id) = pick(&messages, *msg) else {
                    continue;
                };
                let got = call(op, deadline, s.store.message(id)).await?;
                agree(op, got, Ok(model.message(id, now)))?;
            }
            Op::DeleteMessage { msg } => {
                let Some(id) = pick(&messages, *msg) else {
                    continue;
                };
                let got = call(op, deadline, s.store.delete_message(id)).await?;
                agree(op, got, model.delete_message(id, now))?;
            }
            Op::ListSessions {
                active,
                external,
                search,
                limit,
                offset,
            } => {
                let filter = SessionFilter {
                    is_active: *active,
                    external_user_id: external.map(|n| format!("User{n}")),
                    search: search.map(|n| SESSION_SEARCHES[usize::from(n) % 3].to_owned()),
                };
                let page = Page {
                    limit: *limit,
                    offset: *offset,
                };
                let got = call(op, deadline, s.store.list_sessions(&filter, page)).await?;
                agree(op, got, Ok(model.list_sessions(&filter, page, now)))?;
            }
            Op::ListMessages {
                idx,
                by,
                role,
                search,
                desc,
                cursor,
                limit,
                offset,
            } => {
                let Some(target) = pick(&sessions, *idx) else {
                    continue;
                };
                let r = reference(&target, *by);
                let cursor = cursor.map(|(before, msg)| {
                    let id = msg
                        .and_then(|i| pick(&messages, i))
                        .unwrap_or_else(Uuid::new_v4);
                    if before {
                        Cursor::Before(id)
                    } else {
                        Cursor::After(id)
                    }
                });
                let query = MessageQuery {
                    filter: MessageFilter {
                        role: *role,
                        search: search.map(|n| MESSAGE_SEARCHES[usize::from(n) % 3].to_owned()),
                    },
                    order: if *desc { Order::Desc } else { Order::Asc },
                    cursor,
                    page: Page {
                        limit: *limit,
                        offset: *offset,
                    },
                };
                let got = call(op, deadline, s.store.list_messages(&r, &query)).await?;
                agree(op, got, model.list_messages(&r, &query, now))?;
            }
            Op::Purge { retention } => {
                let cutoff = now - Duration::seconds(i64::from(*retention));
                let gone = model.expired_by(cutoff);
                let got = call(op, deadline, s.store.purge_expired(cutoff)).await?;
                match got {
                    Ok(n) if n == gone.len() as u64 => model.remove(&gone),
                    // A store with physical expiry may leave the data to the backend.
                    Ok(0) if s.has_physical_expiry() => {}
                    other => {
                        return Err(SequenceError::Disagree(format!(
                            "after {op:?}:\n  store: {other:?}\n  model: Ok({}) (sessions \
                             with expires_at <= cutoff)",
                            gone.len()
                        )))
                    }
                }
            }
            Op::Advance { secs } => s.clock.advance(Duration::seconds(i64::from(*secs))),
        }
    }
    Ok(())
}

/// Runs the model-based check: `COLLOQUY_MODEL_CASES` (default 256) random sequences,
/// each on a fresh store from `factory`. Skips when the factory returns `None`.
///
/// Every store call has the contract deadline ([`contract_timeout`]); the whole
/// check has five times that.
///
/// # Panics
/// On the first (shrunk) sequence where store and model disagree, or when a store
/// call or the whole check misses its deadline.
pub fn check<F, Fut>(factory: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Option<TestStore>>,
{
    let deadline = contract_timeout();
    let total = deadline * 5;
    let outcome = within(
        "model_based",
        total + BACKSTOP_GRACE,
        move || {
            format!(
                "the model-based check did not finish within {total:?} (five times \
                 {TIMEOUT_ENV}) and its runtime no longer answers: the store blocks the async \
                 runtime's threads"
            )
        },
        move || {
            let runtime = runtime();
            let outcome = run_cases(&runtime, &factory, deadline, total);
            runtime.shutdown_timeout(StdDuration::from_secs(1));
            outcome
        },
    );
    if let Err(message) = outcome {
        panic!("{message}");
    }
}

fn run_cases<F, Fut>(
    runtime: &tokio::runtime::Runtime,
    factory: &F,
    deadline: StdDuration,
    total: StdDuration,
) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<TestStore>>,
{
    let cases = std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let started = std::time::Instant::now();
    let available = runtime.block_on(async {
        match tokio::time::timeout(deadline, factory()).await {
            Ok(Some(store)) => {
                store.teardown().await;
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(_) => Err(format!(
                "the store factory did not return within {deadline:?} ({TIMEOUT_ENV})"
            )),
        }
    })?;
    if !available {
        return Ok(());
    }
    // The first hang ends the check: later cases pass at once so that proptest does
    // not shrink through more hangs, and the hang is reported as it happened.
    let hung: Arc<Mutex<Option<String>>> = Arc::default();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_time: u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX),
        ..Config::default()
    });
    let result = runner.run(&ops(), |ops| {
        if hung
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return Ok(());
        }
        if started.elapsed() > total {
            let message = format!(
                "the model-based check ran out of its {total:?} (five times {TIMEOUT_ENV})"
            );
            *hung.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
            return Ok(());
        }
        runtime.block_on(async {
            let store = match tokio::time::timeout(deadline, factory()).await {
                Ok(Some(store)) => store,
                Ok(None) => return Err(TestCaseError::fail("the store became unavailable")),
                Err(_) => {
                    let message = format!(
                        "the store factory did not return within {deadline:?} ({TIMEOUT_ENV})"
                    );
                    *hung.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
                    return Ok(());
                }
            };
            let outcome = run_sequence(&store, &ops, deadline).await;
            let _ = tokio::time::timeout(deadline, store.teardown()).await;
            match outcome {
                Ok(()) => Ok(()),
                Err(SequenceError::Disagree(message)) => Err(TestCaseError::fail(message)),
                Err(SequenceError::Hung(message)) => {
                    *hung.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(format!("{message}\n  in the sequence {ops:?}"));
                    Ok(())
                }
            }
        })
    });
    if let Some(message) = hung.lock().unwrap_or_else(PoisonError::into_inner).take() {
        return Err(format!("model-based check: {message}"));
    }
    result.map_err(|e| format!("store and reference model disagree: {e}"))
}
