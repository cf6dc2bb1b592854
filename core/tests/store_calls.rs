//! Pins how many store calls each `ChatService` operation makes: one per API
//! operation, two for chat (one before the model runs, one after) and for the
//! deletes (the deleted thing's session is read first, to announce it). On a networked
//! store a call is a round trip, so a regression here is a latency regression.

use std::sync::Arc;

use colloquy_core::decorators::{CallCounter, ObservedStore};
use colloquy_core::ports::ChatStore;
use colloquy_core::{
    validate, ChatService, ManualClock, MessageQuery, NewMessage, Page, SessionFilter,
    SessionPatch, SessionRef,
};
use colloquy_memory::MemoryStore;
use futures::StreamExt;
use serde_json::json;

/// A memory store that counts every call and notes every message id it hands out
/// with the reference it was asked for: core's store decorator with its counter.
type CountingStore = ObservedStore<MemoryStore, CallCounter>;

struct Counted {
    service: ChatService,
    store: Arc<CountingStore>,
}

impl Counted {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new());
        let memory = Arc::new(MemoryStore::new(clock.clone()));
        let store = Arc::new(ObservedStore::new(memory, CallCounter::default()));
        let service = ChatService::builder(store.clone(), clock).build();
        Self { service, store }
    }

    /// Store calls made by `op`.
    async fn calls<T>(&self, op: impl std::future::Future<Output = T>) -> (usize, T) {
        let before = self.store.observer().total();
        let out = op.await;
        (self.store.observer().total() - before, out)
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
    assert_eq!(
        n, 2,
        "delete message: read its session (to announce it), delete"
    );
    deleted.expect("deleted");
    let (n, deleted) = c.calls(s.delete_session(&sid)).await;
    assert_eq!(n, 2, "delete session: resolve it (to announce it), delete");
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
            .observer()
            .message_ids()
            .into_iter()
            .map(|(reference, id)| (reference.as_str().to_owned(), id))
            .collect::<Vec<_>>()
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
            ("placed".to_owned(), reply.response_id.expect("an answer"))
        ]
    );
    let (answer, _) = c
        .store
        .message(reply.response_id.expect("an answer"))
        .await
        .expect("read")
        .expect("the answer is stored under the id the store handed out");
    assert_eq!(answer.role, colloquy_core::Role::Assistant);
}
