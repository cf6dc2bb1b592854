//! Pins how many store calls each `ChatService` operation makes: one per API
//! operation, two for chat (one before the model runs, one after). On a networked
//! store a call is a round trip, so a regression here is a latency regression.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use colloquy_core::ports::{ChatStore, Turn};
use colloquy_core::{
    validate, ChatMessage, ChatService, ManualClock, MessageDraft, MessageQuery, NewMessage, Page,
    Session, SessionFilter, SessionPatch, SessionRef, StoreError,
};
use colloquy_memory::MemoryStore;
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

/// Delegates to a memory store and counts every call; notes every message id it
/// hands out with the reference it was asked for.
struct CountingStore {
    inner: MemoryStore,
    calls: AtomicUsize,
    ids: Mutex<Vec<(String, Uuid)>>,
}

impl CountingStore {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl ChatStore for CountingStore {
    async fn create_session(&self, s: &Session) -> Result<(), StoreError> {
        self.count();
        self.inner.create_session(s).await
    }
    async fn session(&self, r: &SessionRef) -> Result<Option<Session>, StoreError> {
        self.count();
        self.inner.session(r).await
    }
    async fn update_session(
        &self,
        r: &SessionRef,
        p: &SessionPatch,
    ) -> Result<Session, StoreError> {
        self.count();
        self.inner.update_session(r, p).await
    }
    async fn delete_session(&self, r: &SessionRef) -> Result<(), StoreError> {
        self.count();
        self.inner.delete_session(r).await
    }
    async fn list_sessions(&self, f: &SessionFilter, p: Page) -> Result<Vec<Session>, StoreError> {
        self.count();
        self.inner.list_sessions(f, p).await
    }
    async fn append(
        &self,
        to: &SessionRef,
        d: MessageDraft,
    ) -> Result<(Session, ChatMessage), StoreError> {
        self.count();
        self.inner.append(to, d).await
    }
    async fn message(&self, id: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError> {
        self.count();
        self.inner.message(id).await
    }
    async fn list_messages(
        &self,
        of: &SessionRef,
        q: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), StoreError> {
        self.count();
        self.inner.list_messages(of, q).await
    }
    async fn delete_message(&self, id: Uuid) -> Result<(), StoreError> {
        self.count();
        self.inner.delete_message(id).await
    }
    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.count();
        self.inner.purge_expired(cutoff).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.count();
        self.inner.ping().await
    }
    async fn begin_turn(
        &self,
        to: &SessionRef,
        d: MessageDraft,
        window: usize,
    ) -> Result<Turn, StoreError> {
        self.count();
        self.inner.begin_turn(to, d, window).await
    }
    fn new_message_id(&self, session: &SessionRef) -> Uuid {
        let id = Uuid::now_v7();
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((session.as_str().to_owned(), id));
        id
    }
}

struct Counted {
    service: ChatService,
    store: Arc<CountingStore>,
}

impl Counted {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new());
        let store = Arc::new(CountingStore {
            inner: MemoryStore::new(clock.clone()),
            calls: AtomicUsize::new(0),
            ids: Mutex::default(),
        });
        let service = ChatService::builder(store.clone(), clock).build();
        Self { service, store }
    }

    /// Store calls made by `op`.
    async fn calls<T>(&self, op: impl std::future::Future<Output = T>) -> (usize, T) {
        let before = self.store.calls.load(Ordering::SeqCst);
        let out = op.await;
        (self.store.calls.load(Ordering::SeqCst) - before, out)
    }
}

fn message(session: &str, text: &str) -> NewMessage {
    validate::new_message(
        &json!({"session_id": session, "message": text}),
        &validate::Limits::default(),
    )
    .expect("valid")
}

#[tokio::test]
async fn every_api_operation_is_one_store_call_and_chat_two() {
    let c = Counted::new();
    let s = &c.service;
    let sid = SessionRef::parse("counted");
    let new = validate::new_session(&json!({"session_id": "counted"}), s.limits()).expect("valid");

    let (n, created) = c.calls(s.create_session(new)).await;
    assert_eq!(n, 1, "create session");
    created.expect("created");
    let (n, got) = c.calls(s.get_session(&sid)).await;
    assert_eq!(n, 1, "get session");
    got.expect("found");
    let (n, _) = c
        .calls(s.list_sessions(&SessionFilter::default(), Page::default()))
        .await;
    assert_eq!(n, 1, "list sessions");
    let (n, patched) = c
        .calls(s.update_session(&sid, SessionPatch::default()))
        .await;
    assert_eq!(n, 1, "update session");
    patched.expect("patched");

    let (n, m) = c.calls(s.create_message(message("counted", "hi"))).await;
    assert_eq!(n, 1, "create message");
    let m = m.expect("created");
    let (n, got) = c.calls(s.get_message(m.id)).await;
    assert_eq!(n, 1, "get message");
    got.expect("found");
    let (n, page) = c
        .calls(s.list_messages(&sid, &MessageQuery::default()))
        .await;
    assert_eq!(n, 1, "list messages");
    assert_eq!(page.expect("listed").messages.len(), 1);

    let (n, reply) = c.calls(s.chat(message("counted", "hello"))).await;
    assert_eq!(n, 2, "chat: begin the turn, store the answer");
    reply.expect("answered");
    let (n, ()) = c
        .calls(async {
            let stream = s
                .chat_stream(message("counted", "again"))
                .await
                .expect("stream");
            let events: Vec<_> = stream.events.collect().await;
            assert!(events
                .last()
                .is_some_and(colloquy_core::ChatEvent::is_terminal));
        })
        .await;
    assert_eq!(n, 2, "chat stream: begin the turn, store the answer");

    let (n, deleted) = c.calls(s.delete_message(m.id)).await;
    assert_eq!(n, 1, "delete message");
    deleted.expect("deleted");
    let (n, deleted) = c.calls(s.delete_session(&sid)).await;
    assert_eq!(n, 1, "delete session");
    deleted.expect("deleted");
    let (n, ready) = c.calls(s.ready()).await;
    assert_eq!(n, 1, "readiness");
    ready.expect("ready");
}

#[tokio::test]
async fn message_ids_come_from_the_store_the_answer_s_by_session_id() {
    let c = Counted::new();
    let s = &c.service;
    let new = validate::new_session(&json!({"session_id": "placed"}), s.limits()).expect("valid");
    let session = s.create_session(new).await.expect("created");
    let handed_out = || {
        c.store
            .ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    };

    let written = s
        .create_message(message("placed", "hi"))
        .await
        .expect("created");
    assert_eq!(handed_out(), [("placed".to_owned(), written.id)]);
    // A chat naming the session by UUID: the user's message is asked for by that
    // reference, the answer by the session's session_id.
    let by_uuid = session.id.to_string();
    let reply = s.chat(message(&by_uuid, "hello")).await.expect("answered");
    assert_eq!(
        handed_out()[1..],
        [
            (by_uuid, reply.message_id),
            ("placed".to_owned(), reply.response_id)
        ]
    );
    let (answer, _) = c
        .store
        .message(reply.response_id)
        .await
        .expect("read")
        .expect("the answer is stored under the id the store handed out");
    assert_eq!(answer.role, colloquy_core::Role::Assistant);
}
