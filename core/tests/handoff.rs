//! Human handoff over the in-memory store: asking for a person, taking over and
//! handing back, chat while a person has the session, the handoff timeout (lazy
//! and by timer), cancelling an answer in flight, `metadata.operator`, and the
//! announcement of every stored change on the session's events.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::ports::{ChatModel, ModelStream};
use colloquy_core::{
    validate, ChatEvent, ChatService, Clock, Completion, ErrorCode, EventKind, EventTopic,
    FinishInfo, FinishReason, HandoffConfig, ManualClock, MessageQuery, ModelError, ModelEvent,
    ModelRequest, NewMessage, Responder, Role, Session, SessionPatch, SessionRef, Subscription,
    SystemClock, HANDOFF_TIMEOUT_NOTICE,
};
use colloquy_memory::MemoryStore;
use futures::StreamExt;
use serde_json::json;

/// Every wait in these tests ends by this deadline.
const DEADLINE: Duration = Duration::from_secs(10);

/// A model that counts its calls. `stall` makes a streamed answer send one chunk
/// and then nothing until it is dropped.
#[derive(Default)]
struct CountingModel {
    calls: AtomicUsize,
    stall: bool,
}

#[async_trait]
impl ChatModel for CountingModel {
    async fn complete(&self, _request: &ModelRequest) -> Result<Completion, ModelError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Completion {
            text: "model answer".into(),
            info: FinishInfo::default(),
        })
    }

    async fn stream(&self, _request: &ModelRequest) -> Result<ModelStream, ModelError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let first = futures::stream::iter([Ok(ModelEvent::Delta("partial ".into()))]);
        if self.stall {
            Ok(first.chain(futures::stream::pending()).boxed())
        } else {
            let rest = futures::stream::iter([
                Ok(ModelEvent::Delta("answer".into())),
                Ok(ModelEvent::Finished(FinishInfo::default())),
            ]);
            Ok(first.chain(rest).boxed())
        }
    }
}

struct Harness {
    service: ChatService,
    model: Arc<CountingModel>,
}

fn harness_on(clock: Arc<dyn Clock>, model: CountingModel, handoff: HandoffConfig) -> Harness {
    let store = Arc::new(MemoryStore::new(clock.clone()));
    let model = Arc::new(model);
    let service = ChatService::builder(store, clock)
        .model(model.clone())
        .handoff(handoff)
        .build();
    Harness { service, model }
}

fn harness(clock: Arc<ManualClock>) -> Harness {
    harness_on(clock, CountingModel::default(), HandoffConfig::default())
}

fn chat(session: &Session, text: &str) -> NewMessage {
    validate::chat_request(
        &json!({"session_id": session.session_id, "message": text}),
        &validate::Limits::default(),
    )
    .expect("valid chat request")
}

fn operator_reply(session: &Session, text: &str) -> NewMessage {
    validate::new_message(
        &json!({"session_id": session.session_id, "message": text, "role": "assistant",
                "metadata": {"operator": "Ada"}}),
        &validate::Limits::default(),
    )
    .expect("valid operator message")
}

async fn new_session(service: &ChatService) -> Session {
    service
        .create_session(validate::new_session(&json!({}), service.limits()).expect("valid"))
        .await
        .expect("create session")
}

fn by_uuid(session: &Session) -> SessionRef {
    SessionRef::from_uuid(session.id)
}

async fn stored(
    service: &ChatService,
    session: &Session,
) -> Vec<(Role, String, serde_json::Value)> {
    service
        .list_messages(&by_uuid(session), &MessageQuery::default())
        .await
        .expect("list")
        .messages
        .into_iter()
        .map(|m| (m.role, m.message, serde_json::Value::Object(m.metadata)))
        .collect()
}

async fn subscribe(service: &ChatService, session: &Session) -> Subscription {
    service
        .events()
        .subscribe(&EventTopic::from(session))
        .await
        .expect("subscribe")
}

/// The next event on `sub`, within the deadline.
async fn next_event(sub: &mut Subscription) -> EventKind {
    tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("an event within the deadline")
        .expect("the subscription is open")
        .expect("no lag")
        .kind
}

/// Asserts that no event is waiting on `sub` (every announcement is made before
/// the use case returns, so none can still be on its way).
fn assert_quiet(sub: &mut Subscription) {
    assert!(
        sub.next().now_or_never().is_none(),
        "no further event was announced"
    );
}

use futures::FutureExt;

#[tokio::test]
async fn asking_for_a_person_hands_the_session_over_once() {
    let h = harness(Arc::new(ManualClock::new()));
    let session = new_session(&h.service).await;
    let mut sub = subscribe(&h.service, &session).await;

    let asked = h
        .service
        .request_handoff(&SessionRef::parse(&session.session_id))
        .await
        .expect("handoff");
    assert_eq!(asked.responder, Responder::Human);
    assert!(asked.handoff_requested_at.is_some());
    assert_eq!(next_event(&mut sub).await, EventKind::SessionChanged);

    let again = h
        .service
        .request_handoff(&by_uuid(&session))
        .await
        .expect("second handoff");
    assert_eq!(again, asked, "a second request changes nothing");
    assert_quiet(&mut sub);

    let stored = h
        .service
        .get_session(&by_uuid(&session))
        .await
        .expect("get");
    assert_eq!(stored.responder, Responder::Human);
    assert_eq!(stored.handoff_requested_at, asked.handoff_requested_at);

    let stats = h
        .service
        .stats(colloquy_core::stats::StatsQuery {
            from: None,
            to: None,
            bucket: colloquy_core::stats::Bucket::Day,
        })
        .await
        .expect("stats");
    assert_eq!(stats.totals.handoffs, 1, "one request, counted once");
}

#[tokio::test]
async fn an_inactive_or_missing_session_cannot_ask_for_a_person() {
    let h = harness(Arc::new(ManualClock::new()));
    let session = new_session(&h.service).await;
    h.service
        .update_session(
            &by_uuid(&session),
            SessionPatch {
                is_active: Some(false),
                ..SessionPatch::default()
            },
        )
        .await
        .expect("close");
    let e = h
        .service
        .request_handoff(&by_uuid(&session))
        .await
        .expect_err("inactive");
    assert_eq!(e.code(), ErrorCode::SessionInactive);
    let e = h
        .service
        .request_handoff(&SessionRef::parse("nobody"))
        .await
        .expect_err("missing");
    assert_eq!(e.code(), ErrorCode::SessionNotFound);
}

#[tokio::test]
async fn while_a_person_answers_chat_stores_the_message_and_generates_nothing() {
    let h = harness(Arc::new(ManualClock::new()));
    let session = new_session(&h.service).await;
    h.service
        .request_handoff(&by_uuid(&session))
        .await
        .expect("handoff");

    let reply = h
        .service
        .chat(chat(&session, "hello?"))
        .await
        .expect("chat");
    assert_eq!(reply.responder, Responder::Human);
    assert_eq!(reply.response, "");
    assert_eq!(reply.response_id, None);
    let value = serde_json::to_value(&reply).expect("json");
    assert_eq!(value["response_id"], serde_json::Value::Null);
    assert_eq!(value["responder"], "human");

    let stream = h
        .service
        .chat_stream(chat(&session, "anyone?"))
        .await
        .expect("stream");
    assert_eq!(stream.responder, Responder::Human);
    assert!(stream.response_id.is_nil());
    let events: Vec<ChatEvent> = stream.events.collect().await;
    assert!(events.is_empty(), "nothing is generated: {events:?}");

    assert_eq!(
        h.model.calls.load(Ordering::SeqCst),
        0,
        "the model was not asked"
    );
    let texts: Vec<_> = stored(&h.service, &session)
        .await
        .into_iter()
        .map(|(role, text, _)| (role, text))
        .collect();
    assert_eq!(
        texts,
        [
            (Role::User, "hello?".to_owned()),
            (Role::User, "anyone?".to_owned())
        ]
    );
}

#[tokio::test]
async fn handing_back_clears_the_request_and_the_model_answers_again() {
    let h = harness(Arc::new(ManualClock::new()));
    let session = new_session(&h.service).await;
    h.service
        .request_handoff(&by_uuid(&session))
        .await
        .expect("handoff");
    let mut sub = subscribe(&h.service, &session).await;
    let back = h
        .service
        .update_session(
            &by_uuid(&session),
            validate::session_patch(&json!({"responder": "ai"}), h.service.limits())
                .expect("valid"),
        )
        .await
        .expect("hand back");
    assert_eq!(back.responder, Responder::Ai);
    assert_eq!(back.handoff_requested_at, None);
    assert_eq!(next_event(&mut sub).await, EventKind::SessionChanged);

    let reply = h.service.chat(chat(&session, "hi")).await.expect("chat");
    assert_eq!(reply.responder, Responder::Ai);
    assert_eq!(reply.response, "model answer");
    assert!(reply.response_id.is_some());
    assert_eq!(
        serde_json::to_value(&reply).expect("json")["responder"],
        "ai"
    );
}

#[tokio::test]
async fn an_operator_takes_over_without_a_request_and_a_visitor_patch_cannot() {
    let h = harness(Arc::new(ManualClock::new()));
    let session = new_session(&h.service).await;
    let patch =
        validate::session_patch(&json!({"responder": "human"}), h.service.limits()).expect("valid");
    // The access table refuses the patch to a public visitor.
    assert!(colloquy_core::access::authorize(
        colloquy_core::access::AccessMode::Public,
        colloquy_core::access::Caller::Visitor,
        colloquy_core::access::Operation::UpdateSession(&by_uuid(&session), &patch),
    )
    .is_err());
    let taken = h
        .service
        .update_session(&by_uuid(&session), patch)
        .await
        .expect("take over");
    assert_eq!(taken.responder, Responder::Human);
    assert_eq!(taken.handoff_requested_at, None, "nobody asked");
    let reply = h.service.chat(chat(&session, "hi")).await.expect("chat");
    assert_eq!(reply.responder, Responder::Human);
}

#[tokio::test]
async fn a_request_past_its_timeout_is_timed_out_by_the_next_chat() {
    let clock = Arc::new(ManualClock::new());
    let h = harness_on(
        clock.clone(),
        CountingModel::default(),
        HandoffConfig {
            timeout: Some(Duration::from_secs(60)),
            timeout_message: "Nobody is free.".into(),
        },
    );
    let session = new_session(&h.service).await;
    h.service
        .request_handoff(&by_uuid(&session))
        .await
        .expect("handoff");
    clock.advance(chrono::Duration::seconds(59));
    let reply = h
        .service
        .chat(chat(&session, "still there?"))
        .await
        .expect("chat");
    assert_eq!(reply.responder, Responder::Human, "not yet timed out");

    clock.advance(chrono::Duration::seconds(2));
    let reply = h
        .service
        .chat(chat(&session, "hello?"))
        .await
        .expect("chat");
    assert_eq!(
        reply.responder,
        Responder::Ai,
        "timed out: the model answers"
    );
    assert_eq!(reply.response, "model answer");
    let now = h
        .service
        .get_session(&by_uuid(&session))
        .await
        .expect("get");
    assert_eq!(now.responder, Responder::Ai);
    assert_eq!(now.handoff_requested_at, None);

    let messages = stored(&h.service, &session).await;
    let roles: Vec<_> = messages.iter().map(|(r, t, _)| (*r, t.as_str())).collect();
    assert_eq!(
        roles,
        [
            (Role::User, "still there?"),
            (Role::User, "hello?"),
            (Role::Assistant, "Nobody is free."),
            (Role::Assistant, "model answer"),
        ]
    );
    assert_eq!(messages[2].2["notice"], HANDOFF_TIMEOUT_NOTICE);
}

#[tokio::test]
async fn an_operator_reply_answers_the_request_so_it_never_times_out() {
    let clock = Arc::new(ManualClock::new());
    let h = harness(clock.clone());
    let session = new_session(&h.service).await;
    h.service
        .request_handoff(&by_uuid(&session))
        .await
        .expect("handoff");
    let reply = h
        .service
        .create_message(operator_reply(&session, "Hi, I'm Ada."))
        .await
        .expect("operator reply");
    assert_eq!(reply.metadata["operator"], "Ada");
    let now = h
        .service
        .get_session(&by_uuid(&session))
        .await
        .expect("get");
    assert_eq!(
        now.responder,
        Responder::Human,
        "the person keeps the session"
    );
    assert_eq!(now.handoff_requested_at, None, "the request is answered");

    clock.advance(chrono::Duration::hours(1));
    let reply = h
        .service
        .chat(chat(&session, "thanks"))
        .await
        .expect("chat");
    assert_eq!(
        reply.responder,
        Responder::Human,
        "no timeout once answered"
    );
    assert_eq!(h.model.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_timer_times_a_request_out_without_any_chat() {
    let h = harness_on(
        Arc::new(SystemClock),
        CountingModel::default(),
        HandoffConfig {
            timeout: Some(Duration::from_millis(200)),
            ..HandoffConfig::default()
        },
    );
    let session = new_session(&h.service).await;
    let mut sub = subscribe(&h.service, &session).await;
    h.service
        .request_handoff(&by_uuid(&session))
        .await
        .expect("handoff");
    assert_eq!(next_event(&mut sub).await, EventKind::SessionChanged);
    // The timer: back to the model, then the notice.
    assert_eq!(next_event(&mut sub).await, EventKind::SessionChanged);
    let EventKind::MessageStored { id } = next_event(&mut sub).await else {
        panic!("the notice is announced");
    };
    let notice = h.service.get_message(id).await.expect("notice stored");
    assert_eq!(notice.role, Role::Assistant);
    assert_eq!(notice.metadata["notice"], HANDOFF_TIMEOUT_NOTICE);
    assert_eq!(
        notice.message,
        colloquy_core::DEFAULT_HANDOFF_TIMEOUT_MESSAGE
    );
    let now = h
        .service
        .get_session(&by_uuid(&session))
        .await
        .expect("get");
    assert_eq!(now.responder, Responder::Ai);
    assert_eq!(now.handoff_requested_at, None);
}

#[tokio::test]
async fn no_timeout_when_it_is_off() {
    let clock = Arc::new(ManualClock::new());
    let h = harness_on(
        clock.clone(),
        CountingModel::default(),
        HandoffConfig {
            timeout: None,
            ..HandoffConfig::default()
        },
    );
    let session = new_session(&h.service).await;
    h.service
        .request_handoff(&by_uuid(&session))
        .await
        .expect("handoff");
    clock.advance(chrono::Duration::hours(20)); // within the session's 24 h
    let reply = h
        .service
        .chat(chat(&session, "hello?"))
        .await
        .expect("chat");
    assert_eq!(reply.responder, Responder::Human);
}

#[tokio::test]
async fn a_takeover_cancels_the_answer_in_flight_and_keeps_its_partial_text() {
    let h = harness_on(
        Arc::new(SystemClock),
        CountingModel {
            stall: true,
            ..CountingModel::default()
        },
        HandoffConfig::default(),
    );
    let session = new_session(&h.service).await;
    let mut stream = h
        .service
        .chat_stream(chat(&session, "tell me a long story"))
        .await
        .expect("stream");
    let first = tokio::time::timeout(DEADLINE, stream.events.next())
        .await
        .expect("first chunk in time");
    assert!(matches!(first, Some(ChatEvent::Chunk { .. })), "{first:?}");
    let view = h
        .service
        .session_view(&by_uuid(&session))
        .await
        .expect("view");
    assert_eq!(view.active_response_id, Some(stream.response_id));

    h.service
        .request_handoff(&by_uuid(&session))
        .await
        .expect("handoff");
    let last = tokio::time::timeout(DEADLINE, stream.events.next())
        .await
        .expect("the answer ends in time");
    assert!(
        matches!(
            last,
            Some(ChatEvent::Done {
                finish_reason: FinishReason::Cancelled,
                ..
            })
        ),
        "{last:?}"
    );
    let answer = h
        .service
        .get_message(stream.response_id)
        .await
        .expect("the partial answer is stored");
    assert_eq!(answer.message, "partial ");
    assert_eq!(answer.metadata["finish_reason"], "cancelled");
}

#[tokio::test]
async fn metadata_operator_is_a_short_name_on_assistant_messages_only() {
    let h = harness(Arc::new(ManualClock::new()));
    let session = new_session(&h.service).await;
    let limits = validate::Limits::default();
    for (role, operator) in [
        ("user", json!("Ada")),
        ("assistant", json!("")),
        ("assistant", json!("   ")),
        ("assistant", json!("x".repeat(101))),
        ("assistant", json!(7)),
    ] {
        let new = validate::new_message(
            &json!({"session_id": session.session_id, "message": "hi", "role": role,
                    "metadata": {"operator": operator}}),
            &limits,
        )
        .expect("shape");
        let e = h
            .service
            .create_message(new)
            .await
            .expect_err("invalid operator");
        assert_eq!(e.code(), ErrorCode::InvalidField, "{role} {operator}");
    }
    let e = h
        .service
        .chat(
            validate::chat_request(
                &json!({"session_id": session.session_id, "message": "hi",
                        "metadata": {"operator": "Ada"}}),
                &limits,
            )
            .expect("shape"),
        )
        .await
        .expect_err("a visitor cannot pass for a person");
    assert_eq!(e.code(), ErrorCode::InvalidField);
    let ok = h
        .service
        .create_message(operator_reply(&session, "ok"))
        .await
        .expect("a 3-character name");
    assert_eq!(ok.metadata["operator"], "Ada");
    let hundred = validate::new_message(
        &json!({"session_id": session.session_id, "message": "hi", "role": "assistant",
                "metadata": {"operator": "é".repeat(100)}}),
        &limits,
    )
    .expect("shape");
    h.service
        .create_message(hundred)
        .await
        .expect("100 characters are allowed");
    assert!(stored(&h.service, &session).await.len() == 2);
}

#[tokio::test]
async fn every_stored_change_is_announced_on_the_session() {
    let h = harness(Arc::new(ManualClock::new()));
    let session = new_session(&h.service).await;
    let mut sub = subscribe(&h.service, &session).await;
    let other = new_session(&h.service).await;
    let mut other_sub = subscribe(&h.service, &other).await;

    // POST /messages/.
    let written = h
        .service
        .create_message(
            validate::new_message(
                &json!({"session_id": session.session_id, "message": "note"}),
                &validate::Limits::default(),
            )
            .expect("valid"),
        )
        .await
        .expect("create");
    assert_eq!(
        next_event(&mut sub).await,
        EventKind::MessageStored { id: written.id }
    );

    // Chat: the visitor's message, the answer starting, the answer.
    let reply = h.service.chat(chat(&session, "hi")).await.expect("chat");
    assert_eq!(
        next_event(&mut sub).await,
        EventKind::MessageStored {
            id: reply.message_id
        }
    );
    assert_eq!(next_event(&mut sub).await, EventKind::SessionChanged);
    assert_eq!(
        next_event(&mut sub).await,
        EventKind::MessageStored {
            id: reply.response_id.expect("answered")
        }
    );

    // A streamed answer, likewise.
    let stream = h
        .service
        .chat_stream(chat(&session, "more"))
        .await
        .expect("stream");
    let (message_id, response_id) = (stream.message_id, stream.response_id);
    let _: Vec<_> = stream.events.collect().await;
    assert_eq!(
        next_event(&mut sub).await,
        EventKind::MessageStored { id: message_id }
    );
    assert_eq!(next_event(&mut sub).await, EventKind::SessionChanged);
    assert_eq!(
        next_event(&mut sub).await,
        EventKind::MessageStored { id: response_id }
    );

    // Handoff, operator reply (which answers the request), hand back.
    h.service
        .request_handoff(&by_uuid(&session))
        .await
        .expect("handoff");
    assert_eq!(next_event(&mut sub).await, EventKind::SessionChanged);
    let operator = h
        .service
        .create_message(operator_reply(&session, "Ada here"))
        .await
        .expect("operator");
    assert_eq!(
        next_event(&mut sub).await,
        EventKind::MessageStored { id: operator.id }
    );
    assert_eq!(next_event(&mut sub).await, EventKind::SessionChanged);

    // Session changes, a deleted message, the deleted session.
    h.service
        .update_session(
            &by_uuid(&session),
            validate::session_patch(&json!({"metadata": {"a": 1}}), h.service.limits())
                .expect("valid"),
        )
        .await
        .expect("patch");
    assert_eq!(next_event(&mut sub).await, EventKind::SessionChanged);
    h.service.delete_message(written.id).await.expect("delete");
    assert_eq!(
        next_event(&mut sub).await,
        EventKind::MessageDeleted { id: written.id }
    );
    h.service
        .delete_session(&SessionRef::parse(&session.session_id))
        .await
        .expect("delete session");
    assert_eq!(next_event(&mut sub).await, EventKind::SessionDeleted);
    assert_quiet(&mut sub);
    assert_quiet(&mut other_sub);
}
