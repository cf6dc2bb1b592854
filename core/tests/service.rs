//! `ChatService` use cases over the in-memory store and scripted models.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Duration as TimeDelta;
use colloquy_core::ports::{ChatModel, ChatStore, ModelStream};
use colloquy_core::{
    validate, ChatEvent, ChatService, Completion, ContextBudget, Cursor, EchoModel, ErrorCode,
    FinishInfo, FinishReason, ManualClock, MessageQuery, ModelError, ModelEvent, ModelRequest,
    NewMessage, Role, ServiceConfig, SessionRef, TimeoutKind,
};
use colloquy_memory::MemoryStore;
use futures::StreamExt;
use serde_json::json;

struct Harness {
    service: ChatService,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
}

fn harness_with(model: Arc<dyn ChatModel>, config: ServiceConfig) -> Harness {
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(MemoryStore::new(clock.clone()));
    let service = ChatService::builder(store.clone(), clock.clone())
        .model(model)
        .config(config)
        .build();
    Harness {
        service,
        store,
        clock,
    }
}

fn harness(model: Arc<dyn ChatModel>) -> Harness {
    harness_with(model, ServiceConfig::default())
}

fn chat_input(session_id: &str, text: &str) -> NewMessage {
    validate::chat_request(
        &json!({"session_id": session_id, "message": text}),
        &validate::Limits::default(),
    )
    .expect("valid chat request")
}

async fn new_session(h: &Harness) -> String {
    h.service
        .create_session(validate::new_session(&json!({}), h.service.limits()).expect("valid"))
        .await
        .expect("create session")
        .session_id
}

async fn stored_texts(h: &Harness, session_id: &str) -> Vec<(Role, String)> {
    h.service
        .list_messages(&SessionRef::parse(session_id), &MessageQuery::default())
        .await
        .expect("list")
        .messages
        .into_iter()
        .map(|m| (m.role, m.message))
        .collect()
}

/// A model that plays back a script of stream items and records every request.
#[derive(Default)]
struct ScriptedModel {
    script: Vec<Result<ModelEvent, ModelErrorKind>>,
    requests: Mutex<Vec<ModelRequest>>,
}

#[derive(Clone, Copy)]
enum ModelErrorKind {
    Unavailable,
    Timeout,
}

impl ModelErrorKind {
    fn error(self) -> ModelError {
        match self {
            Self::Unavailable => ModelError::Unavailable {
                retryable: false,
                source: "upstream reset".into(),
            },
            Self::Timeout => ModelError::Timeout(TimeoutKind::FirstChunk),
        }
    }
}

impl ScriptedModel {
    fn new(script: Vec<Result<ModelEvent, ModelErrorKind>>) -> Arc<Self> {
        Arc::new(Self {
            script,
            requests: Mutex::default(),
        })
    }

    fn requests(&self) -> Vec<ModelRequest> {
        self.requests.lock().expect("lock").clone()
    }
}

#[async_trait]
impl ChatModel for ScriptedModel {
    async fn complete(&self, request: &ModelRequest) -> Result<Completion, ModelError> {
        self.requests.lock().expect("lock").push(request.clone());
        let mut text = String::new();
        for item in &self.script {
            match item {
                Ok(ModelEvent::Delta(d)) => text.push_str(d),
                Ok(ModelEvent::Finished(info)) => {
                    return Ok(Completion {
                        text,
                        info: info.clone(),
                    })
                }
                Err(kind) => return Err(kind.error()),
            }
        }
        Ok(Completion {
            text,
            info: FinishInfo::default(),
        })
    }

    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ModelError> {
        self.requests.lock().expect("lock").push(request.clone());
        let items: Vec<Result<ModelEvent, ModelError>> = self
            .script
            .iter()
            .map(|i| i.clone().map_err(ModelErrorKind::error))
            .collect();
        Ok(futures::stream::iter(items).boxed())
    }
}

#[tokio::test]
async fn sessions_default_to_a_24h_lifetime_and_reject_past_expiry() {
    let h = harness(Arc::new(EchoModel::new()));
    let s = h
        .service
        .create_session(Default::default())
        .await
        .expect("create");
    assert_eq!(s.expires_at - s.created_at, TimeDelta::hours(24));
    assert_eq!(s.created_at, colloquy_core::Clock::now(h.clock.as_ref()));

    let past = validate::new_session(
        &json!({"expires_at": colloquy_core::format_time(&s.created_at)}),
        h.service.limits(),
    )
    .expect("shape is valid");
    let err = h.service.create_session(past).await.expect_err("past");
    assert_eq!(err.code(), ErrorCode::InvalidField);
    assert_eq!(err.field(), Some("expires_at"));

    let custom =
        validate::new_session(&json!({"session_id": "mine"}), h.service.limits()).expect("valid");
    h.service
        .create_session(custom.clone())
        .await
        .expect("first");
    let err = h.service.create_session(custom).await.expect_err("dup");
    assert_eq!(err.code(), ErrorCode::SessionExists);
}

/// A session's UUID is a capability in `public` mode: version 4, 122 random bits,
/// nothing shared between two made in the same instant (unlike a time-ordered v7).
#[tokio::test]
async fn session_uuids_are_random_v4() {
    let h = harness(Arc::new(EchoModel::new()));
    let mut ids = Vec::new();
    for _ in 0..4 {
        let s = h
            .service
            .create_session(Default::default())
            .await
            .expect("create");
        assert_eq!(s.id.get_version_num(), 4, "{}", s.id);
        ids.push(s.id);
    }
    for pair in ids.windows(2) {
        // v7 ids of one millisecond share their first 48 bits; these share no
        // 6-byte prefix (chance 2^-48).
        assert_ne!(pair[0].as_bytes()[..6], pair[1].as_bytes()[..6]);
    }
}

#[tokio::test]
async fn patch_delete_and_expiry_of_sessions() {
    let h = harness(Arc::new(EchoModel::new()));
    let sid = new_session(&h).await;
    let r = SessionRef::parse(&sid);
    let patch = validate::session_patch(
        &json!({"is_active": false, "metadata": {"k": "v"}}),
        h.service.limits(),
    )
    .expect("valid");
    let patched = h.service.update_session(&r, patch).await.expect("patch");
    assert!(!patched.is_active);
    let err = h
        .service
        .create_message(chat_input(&sid, "hi"))
        .await
        .expect_err("inactive");
    assert_eq!(err.code(), ErrorCode::SessionInactive);

    h.service.delete_session(&r).await.expect("delete");
    let err = h.service.delete_session(&r).await.expect_err("twice");
    assert_eq!(err.code(), ErrorCode::SessionNotFound);

    let sid = new_session(&h).await;
    h.clock.advance(TimeDelta::hours(25));
    let err = h
        .service
        .get_session(&SessionRef::parse(&sid))
        .await
        .expect_err("expired");
    assert_eq!(err.code(), ErrorCode::SessionNotFound);
}

#[tokio::test]
async fn messages_soft_delete_to_404() {
    let h = harness(Arc::new(EchoModel::new()));
    let sid = new_session(&h).await;
    let m = h
        .service
        .create_message(chat_input(&sid, "hello"))
        .await
        .expect("create");
    assert_eq!(m.session.session_id, sid);
    assert_eq!(h.service.get_message(m.id).await.expect("get").id, m.id);
    h.service.delete_message(m.id).await.expect("delete");
    for err in [
        h.service.get_message(m.id).await.expect_err("gone"),
        h.service.delete_message(m.id).await.expect_err("twice"),
    ] {
        assert_eq!(err.code(), ErrorCode::MessageNotFound);
    }
    // Still stored: a soft-deleted message still works as a cursor.
    let after_it = MessageQuery {
        cursor: Some(Cursor::After(m.id)),
        ..MessageQuery::default()
    };
    let (_, rest) = h
        .store
        .list_messages(&SessionRef::parse(&sid), &after_it)
        .await
        .expect("the deleted message is still stored");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn chat_stores_question_and_answer_in_order() {
    let h = harness(Arc::new(EchoModel::new()));
    let sid = new_session(&h).await;
    let reply = h
        .service
        .chat(chat_input(&sid, "What is Colloquy?"))
        .await
        .expect("chat");
    assert_eq!(reply.response, "Echo: What is Colloquy?");
    assert_eq!(reply.session_id, sid);
    assert_eq!(
        stored_texts(&h, &sid).await,
        [
            (Role::User, "What is Colloquy?".to_owned()),
            (Role::Assistant, "Echo: What is Colloquy?".to_owned())
        ]
    );
    let answer = h
        .service
        .get_message(reply.response_id.expect("an answer"))
        .await
        .expect("answer");
    assert_eq!(answer.metadata["finish_reason"], "stop");
    assert_eq!(answer.metadata["model"], "echo");
    assert!(answer.metadata.contains_key("latency_ms"));
    assert_eq!(
        h.service
            .get_message(reply.message_id)
            .await
            .expect("q")
            .role,
        Role::User
    );
}

#[tokio::test]
async fn chat_failure_keeps_the_question_and_maps_codes() {
    for (kind, code) in [
        (ModelErrorKind::Unavailable, ErrorCode::LlmUnavailable),
        (ModelErrorKind::Timeout, ErrorCode::LlmTimeout),
    ] {
        let h = harness(ScriptedModel::new(vec![Err(kind)]));
        let sid = new_session(&h).await;
        let err = h
            .service
            .chat(chat_input(&sid, "hello"))
            .await
            .expect_err("model fails");
        assert_eq!(err.code(), code);
        assert_eq!(
            stored_texts(&h, &sid).await,
            [(Role::User, "hello".to_owned())]
        );
    }
}

#[tokio::test]
async fn stream_events_concatenate_to_the_stored_answer() {
    let h = harness(Arc::new(EchoModel::new()));
    let sid = new_session(&h).await;
    let stream = h
        .service
        .chat_stream(chat_input(&sid, "stream me please"))
        .await
        .expect("stream");
    let events: Vec<ChatEvent> = stream.events.collect().await;
    let seqs: Vec<u64> = events.iter().map(ChatEvent::seq).collect();
    assert_eq!(seqs, (0..events.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Done {
            seq: events.len() as u64 - 1,
            finish_reason: FinishReason::Stop,
            sources: None,
        })
    );
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Chunk { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(events.len() > 3, "several chunks");
    let answer = h
        .service
        .get_message(stream.response_id)
        .await
        .expect("stored");
    assert_eq!(answer.message, text);
    assert_eq!(text, "Echo: stream me please");
    assert!(answer.metadata.contains_key("time_to_first_chunk_ms"));
}

#[tokio::test]
async fn a_dropped_stream_still_stores_the_whole_answer() {
    let h = harness(Arc::new(EchoModel::with_chunk_delay(
        Duration::from_millis(5),
    )));
    let sid = new_session(&h).await;
    let mut stream = h
        .service
        .chat_stream(chat_input(&sid, "one two three four five"))
        .await
        .expect("stream");
    let first = stream.events.next().await.expect("first event");
    assert!(matches!(first, ChatEvent::Chunk { .. }));
    let response_id = stream.response_id;
    drop(stream);
    // Shutdown waits for running generations: the answer is complete once it returns.
    h.service.shutdown(Duration::from_secs(30)).await;
    let answer = h.service.get_message(response_id).await.expect("stored");
    assert_eq!(answer.message, "Echo: one two three four five");
    assert_eq!(answer.metadata["finish_reason"], "stop");
}

#[tokio::test]
async fn mid_stream_failure_ends_with_error_and_stores_partial_text() {
    let model = ScriptedModel::new(vec![
        Ok(ModelEvent::Delta("Once upon".into())),
        Ok(ModelEvent::Delta(" a time".into())),
        Err(ModelErrorKind::Unavailable),
    ]);
    let h = harness(model);
    let sid = new_session(&h).await;
    let stream = h
        .service
        .chat_stream(chat_input(&sid, "tell a story"))
        .await
        .expect("stream");
    let events: Vec<ChatEvent> = stream.events.collect().await;
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Failed {
            seq: 2,
            code: ErrorCode::LlmUnavailable
        })
    );
    let partial = h
        .service
        .get_message(stream.response_id)
        .await
        .expect("partial stored");
    assert_eq!(partial.message, "Once upon a time");
    assert_eq!(partial.metadata["finish_reason"], "error");
}

#[tokio::test]
async fn a_failure_before_any_text_stores_no_answer() {
    let h = harness(ScriptedModel::new(vec![Err(ModelErrorKind::Timeout)]));
    let sid = new_session(&h).await;
    let stream = h
        .service
        .chat_stream(chat_input(&sid, "hi"))
        .await
        .expect("stream");
    let events: Vec<ChatEvent> = stream.events.collect().await;
    assert_eq!(
        events,
        [ChatEvent::Failed {
            seq: 0,
            code: ErrorCode::LlmTimeout
        }]
    );
    assert_eq!(
        stored_texts(&h, &sid).await,
        [(Role::User, "hi".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_past_grace_cancels_and_stores_partial_answers() {
    let h = harness(Arc::new(EchoModel::with_chunk_delay(Duration::from_secs(
        10,
    ))));
    let sid = new_session(&h).await;
    let mut stream = h
        .service
        .chat_stream(chat_input(&sid, "a b c d e f g"))
        .await
        .expect("stream");
    assert!(matches!(
        stream.events.next().await,
        Some(ChatEvent::Chunk { .. })
    ));
    h.service.shutdown(Duration::from_secs(15)).await;
    let rest: Vec<ChatEvent> = stream.events.collect().await;
    assert!(
        matches!(
            rest.last(),
            Some(ChatEvent::Done {
                finish_reason: FinishReason::Cancelled,
                ..
            })
        ),
        "{rest:?}"
    );
    let partial = h
        .service
        .get_message(stream.response_id)
        .await
        .expect("stored");
    assert!(
        "Echo: a b c d e f g".starts_with(&partial.message) && partial.message.len() < 19,
        "partial: {:?}",
        partial.message
    );
    assert_eq!(partial.metadata["finish_reason"], "cancelled");
}

#[tokio::test]
async fn model_sees_history_with_system_messages_within_budget() {
    let model = ScriptedModel::new(vec![Ok(ModelEvent::Delta("ok".into()))]);
    let config = ServiceConfig {
        context: ContextBudget {
            max_messages: 4,
            max_chars: 10_000,
        },
        ..ServiceConfig::default()
    };
    let h = harness_with(model.clone(), config);
    let sid = new_session(&h).await;
    let limits = *h.service.limits();
    let system = validate::new_message(
        &json!({"session_id": sid, "message": "You are terse.", "role": "system"}),
        &limits,
    )
    .expect("valid");
    h.service.create_message(system).await.expect("system");
    for i in 0..3 {
        h.service
            .chat(chat_input(&sid, &format!("q{i}")))
            .await
            .expect("chat");
    }
    let deleted = h
        .service
        .create_message(chat_input(&sid, "secret"))
        .await
        .expect("msg");
    h.service.delete_message(deleted.id).await.expect("delete");
    h.service
        .chat(chat_input(&sid, "last"))
        .await
        .expect("chat");
    let last = model.requests().pop().expect("a request");
    let seen: Vec<(Role, &str)> = last
        .messages
        .iter()
        .map(|m| (m.role, m.content.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Role::System, "You are terse."),
            (Role::User, "q2"),
            (Role::Assistant, "ok"),
            (Role::User, "last"),
        ]
    );
}

#[tokio::test]
async fn expiry_is_capped_by_the_max_session_ttl() {
    let h = harness(Arc::new(EchoModel::new()));
    let max = h.service.config().max_session_ttl;
    let now = colloquy_core::Clock::now(h.clock.as_ref());
    let at = |d: TimeDelta| colloquy_core::format_time(&(now + d));
    let too_far = validate::new_session(
        &json!({"expires_at": at(max + TimeDelta::seconds(1))}),
        h.service.limits(),
    )
    .expect("valid shape");
    let err = h
        .service
        .create_session(too_far)
        .await
        .expect_err("beyond the cap");
    assert_eq!(err.code(), ErrorCode::InvalidField);
    assert_eq!(err.field(), Some("expires_at"));
    let within =
        validate::new_session(&json!({"expires_at": at(max)}), h.service.limits()).expect("valid");
    let s = h
        .service
        .create_session(within)
        .await
        .expect("at the cap is fine");
    let patch = validate::session_patch(
        &json!({"expires_at": at(max + TimeDelta::days(1))}),
        h.service.limits(),
    )
    .expect("valid shape");
    let err = h
        .service
        .update_session(&SessionRef::parse(&s.session_id), patch)
        .await
        .expect_err("extending beyond the cap");
    assert_eq!(err.code(), ErrorCode::InvalidField);
}

/// A model whose stream ends only when the test lets it.
struct HeldModel(Arc<tokio::sync::Notify>);

#[async_trait]
impl ChatModel for HeldModel {
    async fn complete(&self, _: &ModelRequest) -> Result<Completion, ModelError> {
        self.0.notified().await;
        Ok(Completion {
            text: "held".into(),
            info: FinishInfo::default(),
        })
    }
    async fn stream(&self, _: &ModelRequest) -> Result<ModelStream, ModelError> {
        let release = Arc::clone(&self.0);
        Ok(futures::stream::once(async move {
            release.notified().await;
            Ok(ModelEvent::Delta("held".into()))
        })
        .boxed())
    }
}

#[tokio::test]
async fn beyond_max_generations_chat_is_busy_and_stores_nothing() {
    let release = Arc::new(tokio::sync::Notify::new());
    let config = ServiceConfig {
        max_generations: Some(1),
        ..ServiceConfig::default()
    };
    let h = harness_with(Arc::new(HeldModel(Arc::clone(&release))), config);
    let sid = new_session(&h).await;
    let first = h
        .service
        .chat_stream(chat_input(&sid, "first"))
        .await
        .expect("a slot is free");
    let busy = h
        .service
        .chat(chat_input(&sid, "second"))
        .await
        .expect_err("no slot");
    assert_eq!(busy.code(), ErrorCode::Busy);
    let busy = h
        .service
        .chat_stream(chat_input(&sid, "third"))
        .await
        .expect_err("no slot");
    assert_eq!(busy.code(), ErrorCode::Busy);
    assert_eq!(
        stored_texts(&h, &sid).await,
        [(Role::User, "first".to_owned())],
        "a busy answer leaves no question behind"
    );
    release.notify_one();
    let events: Vec<ChatEvent> =
        tokio::time::timeout(Duration::from_secs(10), first.events.collect())
            .await
            .expect("the first answer ends");
    assert!(events.last().is_some_and(ChatEvent::is_terminal));
    // The slot is free again once the generation task has ended.
    tokio::time::timeout(Duration::from_secs(10), async {
        while h.service.generations_in_flight() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the generation task ends");
    let next = h.service.chat_stream(chat_input(&sid, "fourth")).await;
    assert!(next.is_ok(), "the slot was released");
    release.notify_one();
}

#[tokio::test]
async fn typed_callers_get_the_same_validation_as_the_http_api() {
    let h = harness(Arc::new(EchoModel::new()));
    let sid = new_session(&h).await;
    let limits = *h.service.limits();
    let typed = |text: String| NewMessage {
        session: SessionRef::parse(&sid),
        message: text,
        role: Role::User,
        metadata: colloquy_core::Metadata::new(),
    };
    for (text, what) in [
        (String::new(), "empty"),
        ("   ".to_owned(), "blank"),
        ("x".repeat(limits.max_message_bytes + 1), "oversized"),
    ] {
        let json = validate::chat_request(&json!({"session_id": sid, "message": text}), &limits)
            .expect_err(what);
        for err in [
            h.service.chat(typed(text.clone())).await.expect_err(what),
            h.service
                .create_message(typed(text.clone()))
                .await
                .expect_err(what),
        ] {
            assert_eq!(err.code(), json.code, "{what}");
            assert_eq!(err.field(), json.field.as_deref(), "{what}");
        }
        let streamed = h
            .service
            .chat_stream(typed(text.clone()))
            .await
            .expect_err(what);
        assert_eq!(streamed.code(), json.code, "{what}");
    }
    let bad_id = colloquy_core::NewSession {
        session_id: Some("bad id! /?".into()),
        ..colloquy_core::NewSession::default()
    };
    let json =
        validate::new_session(&json!({"session_id": "bad id! /?"}), &limits).expect_err("bad id");
    let err = h.service.create_session(bad_id).await.expect_err("bad id");
    assert_eq!(
        (err.code(), err.field()),
        (json.code, json.field.as_deref())
    );
    // A reference that names nothing is not found, over HTTP and typed alike.
    let nowhere = NewMessage {
        session: SessionRef::parse("bad id! /?"),
        ..typed("hi".into())
    };
    assert_eq!(
        h.service
            .chat(nowhere)
            .await
            .expect_err("no such session")
            .code(),
        ErrorCode::SessionNotFound
    );
    let mut big = colloquy_core::Metadata::new();
    big.insert("blob".into(), json!("x".repeat(limits.max_metadata_bytes)));
    let err = h
        .service
        .create_message(NewMessage {
            metadata: big,
            ..typed("hi".into())
        })
        .await
        .expect_err("metadata over the limit");
    assert_eq!(err.field(), Some("metadata"));
    assert_eq!(
        stored_texts(&h, &sid).await,
        [],
        "nothing invalid was stored"
    );
}
