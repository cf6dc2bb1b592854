//! Announcing to webhooks through `ChatService`: the selected events are in the
//! outbox when the request returns, one entry per target, with the documented
//! body; an outbox that cannot take them fails the request with
//! `store_unavailable` after the change was stored.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::webhooks::{
    ClaimedEntry, LocalWebhookOutbox, OutboxEntry, WebhookEventType, WebhookEventTypes,
    WebhookOutbox, Webhooks,
};
use colloquy_core::{
    validate, ChatService, ErrorCode, ManualClock, NewMessage, Role, SessionRef, StoreError,
};
use colloquy_memory::MemoryStore;
use serde_json::json;

fn service(
    outbox: Arc<dyn WebhookOutbox>,
    events: WebhookEventTypes,
) -> (ChatService, Arc<MemoryStore>) {
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(MemoryStore::new(clock.clone()));
    let webhooks = Webhooks::new(
        outbox,
        vec!["https://a.test/".into(), "https://b.test/".into()],
        events,
    );
    let service = ChatService::builder(store.clone(), clock)
        .webhooks(webhooks)
        .build();
    (service, store)
}

#[tokio::test]
async fn selected_events_are_enqueued_per_target_before_the_request_returns() {
    let clock = Arc::new(ManualClock::new());
    let outbox = Arc::new(LocalWebhookOutbox::new(clock));
    let events = [
        WebhookEventType::SessionCreated,
        WebhookEventType::MessageCreated,
    ]
    .into_iter()
    .collect();
    let (service, _) = service(outbox.clone(), events);
    let session = service
        .create_session(validate::new_session(&json!({}), service.limits()).expect("valid"))
        .await
        .expect("created");
    let message = service
        .create_message(NewMessage {
            session: SessionRef::from_uuid(session.id),
            role: Role::User,
            message: "hello".into(),
            metadata: colloquy_core::Metadata::new(),
        })
        .await
        .expect("stored");
    let claimed = outbox
        .claim(10, Duration::from_secs(30))
        .await
        .expect("claim");
    let kinds: Vec<(&str, &str)> = claimed
        .iter()
        .map(|c| (c.entry.event_type.as_str(), c.entry.target.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("session.created", "https://a.test/"),
            ("session.created", "https://b.test/"),
            ("message.created", "https://a.test/"),
            ("message.created", "https://b.test/"),
        ]
    );
    assert_eq!(
        claimed[0].entry.event_id, claimed[1].entry.event_id,
        "one event, two targets"
    );
    assert_ne!(claimed[0].entry.id, claimed[1].entry.id, "two entries");
    let body: serde_json::Value = serde_json::from_str(&claimed[2].entry.body).expect("JSON");
    assert_eq!(body["type"], "message.created");
    assert_eq!(body["id"], claimed[2].entry.event_id.to_string());
    assert_eq!(body["session"]["id"], session.id.to_string());
    assert_eq!(body["message"]["id"], message.id.to_string());
    assert_eq!(body["message"]["message"], "hello");

    // A change of an unselected type enqueues nothing.
    let (service, _) = service_with_default(outbox.clone());
    service
        .create_session(validate::new_session(&json!({}), service.limits()).expect("valid"))
        .await
        .expect("created");
    assert_eq!(
        outbox.pending().await.expect("pending"),
        4,
        "handoff.requested only"
    );
}

fn service_with_default(outbox: Arc<dyn WebhookOutbox>) -> (ChatService, Arc<MemoryStore>) {
    service(outbox, WebhookEventTypes::default())
}

/// An outbox that is down until `up` is set.
struct Down {
    tries: AtomicU32,
    up: std::sync::atomic::AtomicBool,
    inner: LocalWebhookOutbox,
}

#[async_trait]
impl WebhookOutbox for Down {
    async fn enqueue(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        self.tries.fetch_add(1, Ordering::SeqCst);
        if self.up.load(Ordering::SeqCst) {
            return self.inner.enqueue(entries).await;
        }
        Err(StoreError::unavailable("down"))
    }
    async fn claim(&self, _: usize, _: Duration) -> Result<Vec<ClaimedEntry>, StoreError> {
        Err(StoreError::unavailable("down"))
    }
    async fn finish(&self, _: &ClaimedEntry) -> Result<(), StoreError> {
        Err(StoreError::unavailable("down"))
    }
    async fn retry(&self, _: &ClaimedEntry, _: Duration) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("down"))
    }
    async fn pending(&self) -> Result<u64, StoreError> {
        Err(StoreError::unavailable("down"))
    }
}

#[tokio::test]
async fn an_outbox_that_cannot_take_the_event_fails_the_request_with_503() {
    let down = Arc::new(Down {
        tries: AtomicU32::new(0),
        up: false.into(),
        inner: LocalWebhookOutbox::new(Arc::new(ManualClock::new())),
    });
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(MemoryStore::new(clock.clone()));
    let webhooks = Webhooks::new(
        down.clone(),
        vec!["https://a.test/".into()],
        WebhookEventTypes::all(),
    );
    let service = ChatService::builder(store.clone(), clock)
        .webhooks(webhooks.clone())
        .build();
    let result = service
        .create_session(
            validate::new_session(&json!({"session_id": "kept"}), service.limits()).expect("valid"),
        )
        .await;
    let error = result.expect_err("not acknowledged: the webhook would be lost");
    assert_eq!(error.code(), ErrorCode::StoreUnavailable);
    assert_eq!(
        down.tries.load(Ordering::SeqCst),
        3,
        "tried three times first"
    );
    use colloquy_core::ports::ChatStore;
    assert!(
        store
            .session(&SessionRef::parse("kept"))
            .await
            .expect("read")
            .is_some(),
        "the change itself is stored (a 503 means not acknowledged, not undone)"
    );
    assert_eq!(
        webhooks.spilled(),
        1,
        "the refused webhook is kept in the process"
    );
    assert!(webhooks.flush_spilled().await.is_err(), "still down");
    down.up.store(true, Ordering::SeqCst);
    assert_eq!(webhooks.flush_spilled().await.ok(), Some(1));
    assert_eq!(webhooks.spilled(), 0);
    let claimed = down
        .inner
        .claim(10, Duration::from_secs(1))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].entry.event_type, "session.created");
}
