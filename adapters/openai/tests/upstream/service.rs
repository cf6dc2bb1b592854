//! Through `ChatService` with the in-memory store: what is stored, what is sent.

use std::sync::Arc;
use std::time::Duration;

use colloquy_core::{
    validate, ChatEvent, ChatService, ContextBudget, ErrorCode, FinishReason, MessageView,
    NewMessage, Role, ServiceConfig, SessionRef, SystemClock,
};
use colloquy_memory::MemoryStore;
use colloquy_openai::OpenAiModel;
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::{config, model};
use colloquy_openai::fake::{FakeServer, Reply, Step, SERVER_MODEL};

fn service(model: OpenAiModel, context: ContextBudget) -> ChatService {
    let clock = Arc::new(SystemClock);
    let store = Arc::new(MemoryStore::new(clock.clone()));
    ChatService::builder(store, clock)
        .model(Arc::new(model))
        .config(ServiceConfig {
            context,
            ..ServiceConfig::default()
        })
        .build()
}

async fn new_session(service: &ChatService) -> String {
    let new = validate::new_session(&json!({}), service.limits()).expect("valid body");
    service
        .create_session(new)
        .await
        .expect("session created")
        .session_id
}

fn user(session: &str, text: &str) -> NewMessage {
    message(session, Role::User, text)
}

fn message(session: &str, role: Role, text: &str) -> NewMessage {
    NewMessage {
        session: SessionRef::parse(session),
        message: text.into(),
        role,
        metadata: Default::default(),
    }
}

/// Runs a streamed chat to its terminal event; returns the text, the terminal event
/// and the stored assistant message (if any).
async fn chat_stream(
    service: &ChatService,
    session: &str,
    text: &str,
) -> (String, ChatEvent, Option<MessageView>) {
    let stream = service
        .chat_stream(user(session, text))
        .await
        .expect("chat starts");
    let response_id: Uuid = stream.response_id;
    let mut events = stream.events;
    let mut answer = String::new();
    let terminal = loop {
        match tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("an event within 30 s")
            .expect("a terminal event before the end")
        {
            ChatEvent::Chunk { text, .. } => answer.push_str(&text),
            terminal => break terminal,
        }
    };
    (
        answer,
        terminal,
        service.get_message(response_id).await.ok(),
    )
}

#[tokio::test]
async fn streamed_chat_stores_the_answer_with_model_metadata() {
    let server = FakeServer::start(vec![Reply::Stream(vec![
        Step::role(),
        Step::delta("Bonjour"),
        Step::pause(30),
        Step::delta(" !"),
        Step::finish("stop"),
        Step::usage(12, 3),
        Step::done(),
    ])])
    .await;
    let chat = service(model(config(&server)), ContextBudget::default());
    let session = new_session(&chat).await;
    let (text, terminal, stored) = chat_stream(&chat, &session, "Salut").await;
    assert_eq!(text, "Bonjour !");
    assert!(
        matches!(
            terminal,
            ChatEvent::Done {
                finish_reason: FinishReason::Stop,
                ..
            }
        ),
        "{terminal:?}"
    );
    let stored = stored.expect("assistant message stored");
    assert_eq!(stored.role, Role::Assistant);
    assert_eq!(stored.message, "Bonjour !");
    let meta = &stored.metadata;
    assert_eq!(meta["model"], SERVER_MODEL);
    assert_eq!(meta["finish_reason"], "stop");
    assert_eq!(
        meta["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
               "model": SERVER_MODEL, "estimated": false})
    );
    assert!(meta["latency_ms"].is_u64(), "{meta:?}");
    assert!(meta["time_to_first_chunk_ms"].is_u64(), "{meta:?}");
    assert!(
        meta["time_to_first_chunk_ms"].as_u64() <= meta["latency_ms"].as_u64(),
        "{meta:?}"
    );
}

#[tokio::test]
async fn whole_chat_stores_the_answer_with_model_metadata() {
    let server = FakeServer::start(vec![Reply::completion("Hello there", "stop")]).await;
    let chat = service(model(config(&server)), ContextBudget::default());
    let session = new_session(&chat).await;
    let reply = chat.chat(user(&session, "Hi")).await.expect("answers");
    assert_eq!(reply.response, "Hello there");
    let stored = chat
        .get_message(reply.response_id.expect("an answer"))
        .await
        .expect("stored");
    assert_eq!(stored.metadata["model"], SERVER_MODEL);
    assert_eq!(stored.metadata["finish_reason"], "stop");
    assert_eq!(stored.metadata["usage"]["total_tokens"], 25);
    assert!(stored.metadata["latency_ms"].is_u64());
}

#[tokio::test]
async fn error_mid_stream_fails_and_keeps_the_partial_answer() {
    let server = FakeServer::start(vec![Reply::Stream(vec![
        Step::delta("half an "),
        Step::delta("answer"),
        Step::error("GPU fell over"),
    ])])
    .await;
    let chat = service(model(config(&server)), ContextBudget::default());
    let session = new_session(&chat).await;
    let (text, terminal, stored) = chat_stream(&chat, &session, "Tell me").await;
    assert_eq!(text, "half an answer");
    assert!(
        matches!(
            terminal,
            ChatEvent::Failed {
                code: ErrorCode::LlmUnavailable,
                ..
            }
        ),
        "{terminal:?}"
    );
    let stored = stored.expect("partial answer stored");
    assert_eq!(stored.message, "half an answer");
    assert_eq!(stored.metadata["finish_reason"], "error");
}

#[tokio::test]
async fn unreachable_model_fails_the_whole_chat_with_its_code() {
    let server = FakeServer::start(vec![Reply::status(400, "context too long")]).await;
    let chat = service(model(config(&server)), ContextBudget::default());
    let session = new_session(&chat).await;
    let error = chat.chat(user(&session, "Hi")).await.expect_err("fails");
    assert_eq!(error.code(), ErrorCode::LlmUnavailable);
    assert!(!error.public_message().contains("context too long"));
}

#[tokio::test]
async fn the_session_history_trimmed_to_budget_is_what_is_sent() {
    let server = FakeServer::start(vec![Reply::stream(["ok"])]).await;
    let mut settings = config(&server);
    settings.system_prompt = Some("Global prompt.".into());
    let budget = ContextBudget {
        max_messages: 4,
        max_chars: 10_000,
    };
    let chat = service(model(settings), budget);
    let session = new_session(&chat).await;
    for (role, text) in [
        (Role::System, "Session rules."),
        (Role::User, "u1"),
        (Role::Assistant, "a1"),
        (Role::User, "u2"),
        (Role::Assistant, "a2"),
    ] {
        chat.create_message(message(&session, role, text))
            .await
            .expect("stored");
    }
    let (text, terminal, _) = chat_stream(&chat, &session, "u3").await;
    assert_eq!(text, "ok");
    assert!(matches!(terminal, ChatEvent::Done { .. }), "{terminal:?}");
    let sent = server.only_request().messages();
    let sent: Vec<(&str, &str)> = sent.iter().map(|(r, c)| (r.as_str(), c.as_str())).collect();
    // Budget 4: the session's system message plus the 3 newest of the rest.
    assert_eq!(
        sent,
        [
            ("system", "Global prompt."),
            ("system", "Session rules."),
            ("user", "u2"),
            ("assistant", "a2"),
            ("user", "u3"),
        ]
    );
}

#[tokio::test]
async fn shutdown_cancels_the_generation_and_drops_the_upstream_request() {
    let server = FakeServer::start(vec![Reply::Stream(vec![
        Step::delta("started"),
        Step::Hang,
    ])])
    .await;
    let chat = service(model(config(&server)), ContextBudget::default());
    let session = new_session(&chat).await;
    let stream = chat
        .chat_stream(user(&session, "long story please"))
        .await
        .expect("starts");
    let response_id = stream.response_id;
    let mut events = stream.events;
    let first = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("a chunk in time");
    assert!(matches!(first, Some(ChatEvent::Chunk { .. })), "{first:?}");
    chat.shutdown(Duration::ZERO).await;
    assert!(
        server.wait_gone(1).await,
        "the upstream request was dropped"
    );
    let stored = chat.get_message(response_id).await.expect("partial stored");
    assert_eq!(stored.message, "started");
    assert_eq!(stored.metadata["finish_reason"], "cancelled");
}
