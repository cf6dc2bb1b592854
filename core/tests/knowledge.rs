//! `ChatService` with a knowledge base: retrieval before the model, sources after it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::ports::{ChatModel, ModelStream};
use colloquy_core::{
    validate, ChatEvent, ChatService, Completion, ContextBudget, EchoModel, KnowledgeBase,
    KnowledgeConfig, KnowledgeError, ManualClock, ModelError, ModelRequest, NewMessage, Passage,
    Role, ServiceConfig,
};
use colloquy_memory::MemoryStore;
use futures::StreamExt;
use serde_json::json;

/// Echoes, and records every request it is given.
#[derive(Default)]
struct RecordingModel {
    requests: Mutex<Vec<ModelRequest>>,
}

impl RecordingModel {
    fn requests(&self) -> Vec<ModelRequest> {
        self.requests.lock().expect("lock").clone()
    }
}

#[async_trait]
impl ChatModel for RecordingModel {
    async fn complete(&self, request: &ModelRequest) -> Result<Completion, ModelError> {
        self.requests.lock().expect("lock").push(request.clone());
        EchoModel::new().complete(request).await
    }

    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ModelError> {
        self.requests.lock().expect("lock").push(request.clone());
        EchoModel::new().stream(request).await
    }
}

/// What the fake knowledge base does when searched.
enum Behaviour {
    /// Passages sharing a lowercase word with the query, best (most shared words) first.
    Match(Vec<Passage>),
    Fail,
    Hang,
}

struct FakeKnowledge {
    behaviour: Behaviour,
    queries: Mutex<Vec<(String, usize)>>,
}

impl FakeKnowledge {
    fn new(behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            behaviour,
            queries: Mutex::new(Vec::new()),
        })
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect()
}

#[async_trait]
impl KnowledgeBase for FakeKnowledge {
    async fn search(&self, query: &str, k: usize) -> Result<Vec<Passage>, KnowledgeError> {
        self.queries
            .lock()
            .expect("lock")
            .push((query.to_owned(), k));
        match &self.behaviour {
            Behaviour::Fail => Err(KnowledgeError::unavailable("disk on fire")),
            Behaviour::Hang => std::future::pending().await,
            Behaviour::Match(all) => {
                let q = words(query);
                let mut hits: Vec<Passage> = all
                    .iter()
                    .filter_map(|p| {
                        let shared = words(&p.text).iter().filter(|w| q.contains(w)).count();
                        (shared > 0).then(|| Passage {
                            score: shared as f64,
                            ..p.clone()
                        })
                    })
                    .collect();
                hits.sort_by(|a, b| b.score.total_cmp(&a.score));
                hits.truncate(k);
                Ok(hits)
            }
        }
    }
}

fn passage(doc: &str, n: usize, text: &str) -> Passage {
    Passage {
        id: format!("{doc}#{n}"),
        document: doc.into(),
        title: format!("{doc} title"),
        uri: format!("https://docs.example/{doc}"),
        text: text.into(),
        score: 0.0,
    }
}

fn docs() -> Vec<Passage> {
    vec![
        passage(
            "pricing.md",
            0,
            "The Team plan costs 40 euros per month and includes single sign-on.",
        ),
        passage(
            "faq.md",
            0,
            "Refunds are granted within 30 days of purchase.",
        ),
    ]
}

struct Harness {
    service: ChatService,
    model: Arc<RecordingModel>,
}

fn harness(knowledge: Option<Arc<FakeKnowledge>>, config: ServiceConfig) -> Harness {
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(MemoryStore::new(clock.clone()));
    let model = Arc::new(RecordingModel::default());
    let mut builder = ChatService::builder(store, clock)
        .model(model.clone())
        .config(config);
    if let Some(kb) = knowledge {
        builder = builder.knowledge(kb, KnowledgeConfig::default());
    }
    let service = builder.build();
    Harness { service, model }
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

async fn system_message(h: &Harness, sid: &str, text: &str) {
    let new = validate::new_message(
        &json!({"session_id": sid, "message": text, "role": "system"}),
        h.service.limits(),
    )
    .expect("valid");
    h.service.create_message(new).await.expect("stored");
}

#[tokio::test]
async fn without_a_knowledge_base_nothing_changes() {
    let h = harness(None, ServiceConfig::default());
    let sid = new_session(&h).await;
    let reply = h
        .service
        .chat(chat_input(&sid, "What does the Team plan cost?"))
        .await
        .expect("chat");
    assert_eq!(reply.sources, None);
    let body = serde_json::to_value(&reply).expect("json");
    assert!(body.get("sources").is_none(), "{body}");
    let stored = h
        .service
        .get_message(reply.response_id.expect("an answer"))
        .await
        .expect("stored");
    assert!(!stored.metadata.contains_key("sources"));
    assert!(!stored.metadata.contains_key("sources_error"));
    let requests = h.model.requests();
    assert_eq!(requests[0].messages.len(), 1, "only the question");
}

#[tokio::test]
async fn the_passage_reaches_the_model_and_the_answer_names_its_source() {
    let kb = FakeKnowledge::new(Behaviour::Match(docs()));
    let h = harness(Some(kb.clone()), ServiceConfig::default());
    let sid = new_session(&h).await;
    system_message(&h, &sid, "Be brief.").await;
    let reply = h
        .service
        .chat(chat_input(&sid, "How much does the Team plan cost?"))
        .await
        .expect("chat");

    let request = &h.model.requests()[0];
    let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::System, Role::User]);
    assert_eq!(request.messages[0].content, "Be brief.");
    let block = &request.messages[1].content;
    assert!(block.contains("<documents>") && block.contains("</documents>"));
    assert!(
        block.contains("The Team plan costs 40 euros per month"),
        "{block}"
    );
    assert!(block.contains("source=\"https://docs.example/pricing.md\""));
    assert!(
        !block.contains("Refunds"),
        "only matching passages: {block}"
    );

    let sources = reply.sources.expect("sources");
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].document, "pricing.md");
    assert_eq!(sources[0].id, "pricing.md#0");
    let stored = h
        .service
        .get_message(reply.response_id.expect("an answer"))
        .await
        .expect("stored");
    let body = &stored.metadata["sources"];
    assert_eq!(body[0]["uri"], "https://docs.example/pricing.md");
    assert_eq!(body[0]["title"], "pricing.md title");
    assert!(body[0]["snippet"]
        .as_str()
        .expect("snippet")
        .contains("40 euros"));
    assert_eq!(body[0]["score"], 3.0, "the, team, plan");
    assert_eq!(
        kb.queries.lock().expect("lock")[0],
        ("How much does the Team plan cost?".to_owned(), 5)
    );
}

#[tokio::test]
async fn the_streamed_done_event_carries_the_sources() {
    let kb = FakeKnowledge::new(Behaviour::Match(docs()));
    let h = harness(Some(kb), ServiceConfig::default());
    let sid = new_session(&h).await;
    let stream = h
        .service
        .chat_stream(chat_input(&sid, "Are refunds possible?"))
        .await
        .expect("stream");
    let events: Vec<ChatEvent> =
        tokio::time::timeout(Duration::from_secs(10), stream.events.collect())
            .await
            .expect("events in time");
    let Some(ChatEvent::Done {
        sources: Some(sources),
        ..
    }) = events.last()
    else {
        panic!("done with sources: {events:?}");
    };
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].document, "faq.md");
    let stored = h
        .service
        .get_message(stream.response_id)
        .await
        .expect("stored");
    assert_eq!(stored.metadata["sources"][0]["document"], "faq.md");
}

#[tokio::test]
async fn a_follow_up_question_is_searched_with_the_previous_one() {
    let kb = FakeKnowledge::new(Behaviour::Match(docs()));
    let h = harness(Some(kb.clone()), ServiceConfig::default());
    let sid = new_session(&h).await;
    h.service
        .chat(chat_input(&sid, "Tell me about the Team plan"))
        .await
        .expect("chat");
    let reply = h
        .service
        .chat(chat_input(&sid, "How much is it?"))
        .await
        .expect("chat");
    // The follow-up is searched alone and with the previous question (then fused).
    let queries: Vec<String> = kb.queries.lock().expect("lock")[1..]
        .iter()
        .map(|q| q.0.clone())
        .collect();
    assert_eq!(
        queries,
        [
            "How much is it?",
            "Tell me about the Team plan\nHow much is it?"
        ]
    );
    assert_eq!(reply.sources.expect("sources")[0].document, "pricing.md");
}

#[tokio::test]
async fn no_match_gives_empty_sources_and_no_context_block() {
    let kb = FakeKnowledge::new(Behaviour::Match(docs()));
    let h = harness(Some(kb), ServiceConfig::default());
    let sid = new_session(&h).await;
    let reply = h
        .service
        .chat(chat_input(&sid, "xyzzy"))
        .await
        .expect("chat");
    assert_eq!(reply.sources, Some(Vec::new()));
    assert_eq!(h.model.requests()[0].messages.len(), 1);
}

#[tokio::test]
async fn a_failing_knowledge_base_degrades_to_an_answer_without_sources() {
    let h = harness(
        Some(FakeKnowledge::new(Behaviour::Fail)),
        ServiceConfig::default(),
    );
    let sid = new_session(&h).await;
    let reply = h
        .service
        .chat(chat_input(&sid, "How much does the Team plan cost?"))
        .await
        .expect("the chat does not fail");
    assert_eq!(reply.response, "Echo: How much does the Team plan cost?");
    assert_eq!(reply.sources, Some(Vec::new()));
    let stored = h
        .service
        .get_message(reply.response_id.expect("an answer"))
        .await
        .expect("stored");
    assert_eq!(stored.metadata["sources"], json!([]));
    assert_eq!(stored.metadata["sources_error"], "knowledge_unavailable");
    assert_eq!(h.model.requests()[0].messages.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_knowledge_base_times_out_and_the_answer_goes_ahead() {
    let h = harness(
        Some(FakeKnowledge::new(Behaviour::Hang)),
        ServiceConfig::default(),
    );
    let sid = new_session(&h).await;
    let reply = tokio::time::timeout(
        Duration::from_secs(60),
        h.service.chat(chat_input(&sid, "hello there")),
    )
    .await
    .expect("not stuck on the knowledge base")
    .expect("chat");
    let stored = h
        .service
        .get_message(reply.response_id.expect("an answer"))
        .await
        .expect("stored");
    assert_eq!(stored.metadata["sources_error"], "knowledge_unavailable");
}

#[tokio::test]
async fn passages_are_trimmed_first_to_fit_the_context_budget() {
    let long = format!("Team plan details: {}", "lorem ipsum ".repeat(100));
    let kb = FakeKnowledge::new(Behaviour::Match(vec![
        passage("a.md", 0, &long),
        passage("b.md", 0, &long),
    ]));
    let config = ServiceConfig {
        context: ContextBudget {
            max_messages: 50,
            max_chars: 700,
        },
        ..ServiceConfig::default()
    };
    let h = harness(Some(kb), config);
    let sid = new_session(&h).await;
    let question = format!("Team plan? {}", "context ".repeat(50));
    let reply = h
        .service
        .chat(chat_input(&sid, &question))
        .await
        .expect("chat");
    // The question (410 characters) is kept whole; the passages get the 290 left:
    // the first is cut to fit, the second dropped.
    let sources = reply.sources.expect("sources");
    assert_eq!(sources.len(), 1, "{sources:?}");
    assert_eq!(
        sources[0].snippet.chars().count(),
        700 - question.chars().count()
    );
    let request = &h.model.requests()[0];
    assert_eq!(request.messages.last().expect("question").content, question);
    assert!(request.messages[0].content.contains(&sources[0].snippet));
}
