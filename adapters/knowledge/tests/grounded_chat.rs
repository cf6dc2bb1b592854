//! End to end through `ChatService`: the Kestrel docs ingested into a SQLite FTS5
//! knowledge file, the OpenAI-compatible model adapter talking to the fake OpenAI
//! server; the passage that answers reaches the prompt and the answer's sources.

use std::sync::Arc;

use colloquy_core::{validate, ChatEvent, ChatService, KnowledgeConfig, SystemClock};
use colloquy_knowledge::testing::testdata;
use colloquy_knowledge::{ingest, IngestOptions, SqliteKnowledge};
use colloquy_memory::MemoryStore;
use colloquy_openai::fake::{FakeServer, Reply};
use colloquy_openai::{OpenAiConfig, OpenAiModel};
use futures::StreamExt;
use serde_json::json;

const ANSWER: &str = "Every paid plan starts with a 21-day free trial, without a credit card.";

#[tokio::test]
async fn the_answering_passage_reaches_the_prompt_and_the_sources() {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("kb.db");
    let kb = Arc::new(SqliteKnowledge::open(&path, None).await.expect("opens"));
    let summary = ingest(
        kb.as_ref(),
        &[testdata().join("kestrel")],
        &IngestOptions {
            base_url: Some("https://kestrel.example/docs".into()),
            ..IngestOptions::default()
        },
        |_| {},
    )
    .await
    .expect("ingest");
    assert_eq!(summary.added, 11);

    let fake = FakeServer::start(vec![
        Reply::completion("21 days, no card needed [1].", "stop"),
        Reply::stream(["Yes [1]."]),
    ])
    .await;
    let model = OpenAiModel::new(OpenAiConfig {
        base_url: fake.base_url(),
        system_prompt: Some("You are Kestrel's assistant.".into()),
        ..OpenAiConfig::default()
    })
    .expect("model");
    let clock = Arc::new(SystemClock);
    let store = Arc::new(MemoryStore::new(clock.clone()));
    let service = ChatService::builder(store, clock)
        .model(Arc::new(model))
        .knowledge(kb, KnowledgeConfig::default())
        .build();
    let session = service
        .create_session(validate::new_session(&json!({}), service.limits()).expect("valid"))
        .await
        .expect("session");
    let ask = |message: &str| {
        validate::chat_request(
            &json!({"session_id": session.session_id, "message": message}),
            service.limits(),
        )
        .expect("valid")
    };

    let reply = service
        .chat(ask("How long can I try it for free?"))
        .await
        .expect("chat");
    let sources = reply.sources.expect("sources");
    assert_eq!(
        sources[0].document.rsplit('/').next(),
        Some("faq.md"),
        "{sources:?}"
    );
    assert_eq!(sources[0].uri, "https://kestrel.example/docs/faq.md");
    assert!(sources[0].snippet.contains(ANSWER));
    assert_eq!(
        sources
            .iter()
            .filter(|s| s.snippet.contains("21-day"))
            .count(),
        1,
        "exactly one passage holds the answer"
    );

    // The prompt: the adapter's system prompt, the documents, then the question.
    let sent = fake.requests();
    let messages = sent[0].messages();
    assert_eq!(
        messages[0],
        ("system".into(), "You are Kestrel's assistant.".into())
    );
    assert_eq!(messages[1].0, "system");
    assert!(messages[1].1.contains(ANSWER), "{}", messages[1].1);
    assert!(messages[1]
        .1
        .contains("source=\"https://kestrel.example/docs/faq.md\""));
    assert_eq!(
        messages[2],
        ("user".into(), "How long can I try it for free?".into())
    );

    let stored = service
        .get_message(reply.response_id.expect("an answer"))
        .await
        .expect("stored");
    assert_eq!(
        stored.metadata["sources"][0]["document"],
        json!(sources[0].document)
    );

    // Streamed, the done event carries the sources.
    let stream = service
        .chat_stream(ask("Do I need a credit card for the trial?"))
        .await
        .expect("stream");
    let events: Vec<ChatEvent> =
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.events.collect())
            .await
            .expect("in time");
    let Some(ChatEvent::Done {
        sources: Some(streamed),
        ..
    }) = events.last()
    else {
        panic!("done with sources: {events:?}");
    };
    assert!(
        streamed.iter().any(|s| s.snippet.contains(ANSWER)),
        "{streamed:?}"
    );
    drop(service);
}
