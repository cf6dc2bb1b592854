//! Model-based check: random sequences of store operations are applied to the store
//! under test and to a trivial reference model written straight from the port
//! contracts; every result must agree.

use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use colloquy_core::{
    ChatMessage, Clock, MessageFilter, Metadata, Page, Role, Session, SessionFilter, SessionPatch,
    SessionRef, StoreError,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;

use crate::TestStore;

/// Environment variable overriding the number of cases (default 256).
pub const CASES_ENV: &str = "COLLOQUY_MODEL_CASES";

/// One operation of a generated sequence. Indices pick among the sessions and
/// messages the sequence has tried to create so far (modulo their count).
#[derive(Debug, Clone)]
pub enum Op {
    /// Create a session named `n{name}` living `ttl` seconds.
    CreateSession {
        /// Which of a few session_ids (collisions are the point).
        name: u8,
        /// Lifetime in seconds.
        ttl: u16,
        /// Optional external user id `User{n}`.
        external: Option<u8>,
    },
    /// Get a session by UUID or by session_id.
    GetSession {
        /// Which session.
        idx: usize,
        /// By UUID when true.
        by_uuid: bool,
    },
    /// Patch is_active and/or move the expiry to now + `expire_in` seconds.
    Patch {
        /// Which session.
        idx: usize,
        /// New is_active.
        active: Option<bool>,
        /// New expiry, seconds from now.
        expire_in: Option<u16>,
    },
    /// Delete a session.
    DeleteSession {
        /// Which session.
        idx: usize,
    },
    /// Append a message.
    Append {
        /// Which session.
        idx: usize,
        /// Role.
        role: Role,
        /// Text variant.
        text: u8,
    },
    /// Get a message.
    GetMessage {
        /// Which message.
        msg: usize,
    },
    /// Soft-delete a message.
    SoftDelete {
        /// Which message.
        msg: usize,
    },
    /// List sessions.
    ListSessions {
        /// is_active filter.
        active: Option<bool>,
        /// search filter, `user{n}` or `N{n}` style.
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
        /// role filter.
        role: Option<Role>,
        /// limit.
        limit: usize,
        /// offset.
        offset: usize,
    },
    /// Newest messages.
    Recent {
        /// Which session.
        idx: usize,
        /// limit.
        limit: usize,
    },
    /// Move the clock forward.
    Advance {
        /// Seconds.
        secs: u16,
    },
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::User), Just(Role::Assistant), Just(Role::System)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4, 1u16..120, proptest::option::of(0u8..3))
            .prop_map(|(name, ttl, external)| Op::CreateSession { name, ttl, external }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(idx, by_uuid)| Op::GetSession { idx, by_uuid }),
        1 => (any::<usize>(), proptest::option::of(any::<bool>()), proptest::option::of(1u16..200))
            .prop_map(|(idx, active, expire_in)| Op::Patch { idx, active, expire_in }),
        1 => any::<usize>().prop_map(|idx| Op::DeleteSession { idx }),
        5 => (any::<usize>(), role(), 0u8..4).prop_map(|(idx, role, text)| Op::Append { idx, role, text }),
        2 => any::<usize>().prop_map(|msg| Op::GetMessage { msg }),
        1 => any::<usize>().prop_map(|msg| Op::SoftDelete { msg }),
        1 => (proptest::option::of(any::<bool>()), proptest::option::of(0u8..3), 1usize..5, 0usize..3)
            .prop_map(|(active, search, limit, offset)| Op::ListSessions { active, search, limit, offset }),
        2 => (any::<usize>(), proptest::option::of(role()), 1usize..6, 0usize..3)
            .prop_map(|(idx, role, limit, offset)| Op::ListMessages { idx, role, limit, offset }),
        1 => (any::<usize>(), 1usize..5).prop_map(|(idx, limit)| Op::Recent { idx, limit }),
        1 => (0u16..90).prop_map(|secs| Op::Advance { secs }),
    ]
}

/// Strategy for whole sequences.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..40)
}

/// A store result reduced to what the contracts promise.
type Outcome<T> = Result<T, &'static str>;

fn reduce<T>(r: Result<T, StoreError>) -> Result<Outcome<T>, TestCaseError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(StoreError::NotFound) => Ok(Err("not_found")),
        Err(StoreError::Conflict) => Ok(Err("conflict")),
        Err(StoreError::SessionInactive) => Ok(Err("inactive")),
        Err(e) => Err(TestCaseError::fail(format!("store failed: {e:?}"))),
    }
}

/// The reference model: plain vectors, written straight from the contracts.
#[derive(Default)]
struct Model {
    sessions: Vec<Session>,
    messages: Vec<ChatMessage>,
}

impl Model {
    fn live(&self, id: Uuid, now: DateTime<Utc>) -> Option<&Session> {
        self.sessions
            .iter()
            .find(|s| s.id == id && !s.is_expired_at(now))
    }

    fn get(&self, r: &SessionRef, now: DateTime<Utc>) -> Option<Session> {
        let by_uuid = r.uuid().and_then(|id| self.live(id, now));
        by_uuid
            .or_else(|| {
                self.sessions
                    .iter()
                    .find(|s| s.session_id == r.as_str() && !s.is_expired_at(now))
            })
            .cloned()
    }

    fn create(&mut self, s: Session, now: DateTime<Utc>) -> Outcome<()> {
        if self
            .sessions
            .iter()
            .any(|x| !x.is_expired_at(now) && (x.session_id == s.session_id || x.id == s.id))
        {
            return Err("conflict");
        }
        self.sessions.push(s);
        Ok(())
    }

    fn update(&mut self, id: Uuid, p: &SessionPatch, now: DateTime<Utc>) -> Outcome<Session> {
        let s = self
            .sessions
            .iter_mut()
            .find(|s| s.id == id && !s.is_expired_at(now))
            .ok_or("not_found")?;
        p.apply_to(s);
        Ok(s.clone())
    }

    fn delete(&mut self, id: Uuid, now: DateTime<Utc>) -> Outcome<()> {
        self.live(id, now).ok_or("not_found")?;
        self.sessions.retain(|s| s.id != id);
        self.messages.retain(|m| m.session != id);
        Ok(())
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

    fn append(&mut self, mut m: ChatMessage, now: DateTime<Utc>) -> Outcome<ChatMessage> {
        let s = self.live(m.session, now).ok_or("not_found")?;
        if !s.is_active {
            return Err("inactive");
        }
        if self.messages.iter().any(|x| x.id == m.id) {
            return Err("conflict");
        }
        if let Some(last) = self.messages.iter().rev().find(|x| x.session == m.session) {
            m.timestamp = m.timestamp.max(last.timestamp);
        }
        self.messages.push(m.clone());
        Ok(m)
    }

    fn get_message(&self, id: Uuid, now: DateTime<Utc>) -> Option<ChatMessage> {
        self.messages
            .iter()
            .find(|m| m.id == id && !m.is_deleted && self.live(m.session, now).is_some())
            .cloned()
    }

    fn soft_delete(&mut self, id: Uuid, now: DateTime<Utc>) -> Outcome<()> {
        self.get_message(id, now).ok_or("not_found")?;
        for m in self.messages.iter_mut().filter(|m| m.id == id) {
            m.is_deleted = true;
        }
        Ok(())
    }

    fn visible(&self, session: Uuid) -> impl Iterator<Item = &ChatMessage> {
        self.messages
            .iter()
            .filter(move |m| m.session == session && !m.is_deleted)
    }

    fn list_messages(
        &self,
        session: Uuid,
        f: &MessageFilter,
        page: Page,
        now: DateTime<Utc>,
    ) -> Outcome<Vec<ChatMessage>> {
        self.live(session, now).ok_or("not_found")?;
        Ok(self
            .visible(session)
            .filter(|m| f.matches(m))
            .skip(page.offset)
            .take(page.limit)
            .cloned()
            .collect())
    }

    fn recent(&self, session: Uuid, limit: usize, now: DateTime<Utc>) -> Outcome<Vec<ChatMessage>> {
        self.live(session, now).ok_or("not_found")?;
        let all: Vec<ChatMessage> = self.visible(session).cloned().collect();
        Ok(all[all.len().saturating_sub(limit)..].to_vec())
    }
}

fn pick<T: Clone>(items: &[T], idx: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[idx % items.len()].clone())
}

fn same<T: PartialEq + std::fmt::Debug>(op: &Op, store: T, model: T) -> Result<(), TestCaseError> {
    if store == model {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!(
            "after {op:?}:\n store: {store:?}\n model: {model:?}"
        )))
    }
}

/// Applies `ops` to the store and the model, failing on the first disagreement.
///
/// # Errors
/// A [`TestCaseError`] describing the first operation where they disagree.
pub async fn run_sequence(s: &TestStore, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut sessions: Vec<Session> = Vec::new();
    let mut messages: Vec<Uuid> = Vec::new();
    for op in ops {
        let now = s.clock.now();
        match op {
            Op::CreateSession {
                name,
                ttl,
                external,
            } => {
                let session = Session {
                    id: Uuid::new_v4(),
                    session_id: format!("N{name}"),
                    external_user_id: external.map(|e| format!("User{e}")),
                    created_at: now,
                    expires_at: now + Duration::seconds(i64::from(*ttl)),
                    is_active: true,
                    metadata: Metadata::new(),
                };
                let got = reduce(s.sessions.create(&session).await)?;
                same(op, got, model.create(session.clone(), now))?;
                sessions.push(session);
            }
            Op::GetSession { idx, by_uuid } => {
                let Some(target) = pick(&sessions, *idx) else {
                    continue;
                };
                let r = if *by_uuid {
                    SessionRef::from_uuid(target.id)
                } else {
                    SessionRef::parse(&target.session_id)
                };
                let got = reduce(s.sessions.get(&r).await)?;
                same(op, got, Ok(model.get(&r, now)))?;
            }
            Op::Patch {
                idx,
                active,
                expire_in,
            } => {
                let Some(target) = pick(&sessions, *idx) else {
                    continue;
                };
                let patch = SessionPatch {
                    is_active: *active,
                    expires_at: expire_in.map(|secs| now + Duration::seconds(i64::from(secs))),
                    ..SessionPatch::default()
                };
                let got = reduce(s.sessions.update(target.id, &patch).await)?;
                same(op, got, model.update(target.id, &patch, now))?;
            }
            Op::DeleteSession { idx } => {
                let Some(target) = pick(&sessions, *idx) else {
                    continue;
                };
                let got = reduce(s.sessions.delete(target.id).await)?;
                same(op, got, model.delete(target.id, now))?;
            }
            Op::Append { idx, role, text } => {
                let Some(target) = pick(&sessions, *idx) else {
                    continue;
                };
                let m = ChatMessage {
                    id: Uuid::new_v4(),
                    session: target.id,
                    message: ["hello", "Pricing?", "ok", "PRICING: 10"][usize::from(*text)]
                        .to_owned(),
                    role: *role,
                    metadata: Metadata::new(),
                    timestamp: now,
                    is_deleted: false,
                };
                messages.push(m.id);
                let got = reduce(s.messages.append(m.clone()).await)?;
                same(op, got, model.append(m, now))?;
            }
            Op::GetMessage { msg } => {
                let Some(id) = pick(&messages, *msg) else {
                    continue;
                };
                let got = reduce(s.messages.get(id).await)?;
                same(op, got, Ok(model.get_message(id, now)))?;
            }
            Op::SoftDelete { msg } => {
                let Some(id) = pick(&messages, *msg) else {
                    continue;
                };
                let got = reduce(s.messages.soft_delete(id).await)?;
                same(op, got, model.soft_delete(id, now))?;
            }
            Op::ListSessions {
                active,
                search,
                limit,
                offset,
            } => {
                let filter = SessionFilter {
                    is_active: *active,
                    external_user_id: None,
                    search: search.map(|n| ["user1", "n2", "N"][usize::from(n)].to_owned()),
                };
                let page = Page {
                    limit: *limit,
                    offset: *offset,
                };
                let got = reduce(s.sessions.list(&filter, page).await)?;
                same(op, got, Ok(model.list_sessions(&filter, page, now)))?;
            }
            Op::ListMessages {
                idx,
                role,
                limit,
                offset,
            } => {
                let Some(target) = pick(&sessions, *idx) else {
                    continue;
                };
                let filter = MessageFilter {
                    role: *role,
                    search: None,
                };
                let page = Page {
                    limit: *limit,
                    offset: *offset,
                };
                let got = reduce(s.messages.list(target.id, &filter, page).await)?;
                same(op, got, model.list_messages(target.id, &filter, page, now))?;
            }
            Op::Recent { idx, limit } => {
                let Some(target) = pick(&sessions, *idx) else {
                    continue;
                };
                let got = reduce(s.messages.recent(target.id, *limit).await)?;
                same(op, got, model.recent(target.id, *limit, now))?;
            }
            Op::Advance { secs } => s.clock.advance(Duration::seconds(i64::from(*secs))),
        }
    }
    Ok(())
}

/// Runs the model-based check: `COLLOQUY_MODEL_CASES` (default 256) random sequences,
/// each on a fresh store from `factory`. Skips when the factory returns `None`.
///
/// # Panics
/// On the first (shrunk) sequence where store and model disagree.
pub fn check<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<TestStore>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cases = std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let available = runtime.block_on(async {
        match factory().await {
            Some(store) => {
                store.teardown().await;
                true
            }
            None => false,
        }
    });
    if !available {
        return;
    }
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&ops(), |ops| {
        runtime.block_on(async {
            let store = factory()
                .await
                .ok_or_else(|| TestCaseError::fail("the store became unavailable"))?;
            let outcome = run_sequence(&store, &ops).await;
            store.teardown().await;
            outcome
        })
    });
    if let Err(e) = result {
        panic!("store and reference model disagree: {e}");
    }
}
