//! End to end through the `colloquy` binary with `--model openai`, against the fake
//! OpenAI-compatible server of `colloquy-openai` (feature `fake-server`).

#![allow(missing_docs)]

mod common;

use std::process::Command;

use colloquy_openai::fake::{FakeServer, Reply, Step, SERVER_MODEL};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use common::{client, must, temp_dir, HttpClient, Server, TempDir, BIN, DEADLINE};

/// Starts the binary with `--model openai` against `fake`; the API key comes from
/// `OPENAI_API_KEY`, as it would in production.
fn start(dir: &TempDir, fake: &FakeServer, args: &[&str]) -> Server {
    let base_url = fake.base_url();
    let mut all = vec![
        "--store",
        "memory",
        "--model",
        "openai",
        "--openai-base-url",
        &base_url,
        "--openai-model",
        "e2e-model",
    ];
    all.extend_from_slice(args);
    let mut command = Server::command(dir.path(), &all);
    command
        .env_remove("COLLOQUY_OPENAI_API_KEY")
        .env("OPENAI_API_KEY", "sk-e2e-key");
    Server::spawn(command)
}

struct Api {
    client: HttpClient,
    base: String,
}

impl Api {
    fn new(server: &Server) -> Self {
        Self {
            client: client(),
            base: server.base.clone(),
        }
    }

    /// One request, answered (body included) within the deadline.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, String) {
        let url = format!("{}{path}", self.base);
        let answer = tokio::time::timeout(DEADLINE, must(&self.client, method, &url, body))
            .await
            .expect("an answer in time");
        (answer.status, answer.text)
    }

    async fn session(&self, id: &str) {
        let (status, _) = self
            .call(
                Method::POST,
                "/api/chats/sessions/",
                Some(json!({"session_id": id})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
}

fn json_body(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON body")
}

#[tokio::test]
async fn chat_and_streamed_chat_through_the_binary() {
    let fake = FakeServer::start(vec![
        Reply::completion("Bonjour !", "stop"),
        Reply::Stream(vec![
            Step::role(),
            Step::delta("Ça "),
            Step::pause(20),
            Step::delta("va ?"),
            Step::finish("stop"),
            Step::usage(30, 4),
            Step::done(),
        ]),
    ])
    .await;
    let dir = temp_dir("openai");
    let server = start(
        &dir,
        &fake,
        &["--openai-system-prompt", "Réponds en français."],
    );
    let api = Api::new(&server);
    api.session("e2e").await;

    let (status, body) = api
        .call(
            Method::POST,
            "/api/chats/messages/chat/",
            Some(json!({"session_id": "e2e", "message": "Salut"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json_body(&body)["response"], "Bonjour !");

    let (status, body) = api
        .call(
            Method::POST,
            "/api/chats/messages/chat/stream/",
            Some(json!({"session_id": "e2e", "message": "Ça va ?"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let events = colloquy_test_support::sse::parse_json(&body);
    let text: String = events.iter().filter_map(|e| e["chunk"].as_str()).collect();
    assert_eq!(text, "Ça va ?");
    let last = events.last().expect("events");
    assert_eq!(last["done"], true);
    assert!(last.get("error").is_none(), "{last}");

    // What the fake server was sent: key, model, prompt first, then the history.
    let sent = fake.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].header("authorization"), Some("Bearer sk-e2e-key"));
    assert_eq!(sent[0].body["model"], "e2e-model");
    assert_eq!(sent[0].body["stream"], false);
    assert_eq!(sent[1].body["stream"], true);
    let messages = sent[1].messages();
    let roles: Vec<(&str, &str)> = messages
        .iter()
        .map(|(r, c)| (r.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        roles,
        [
            ("system", "Réponds en français."),
            ("user", "Salut"),
            ("assistant", "Bonjour !"),
            ("user", "Ça va ?"),
        ]
    );

    // The stored answers carry what the server reported.
    let (status, body) = api
        .call(
            Method::GET,
            "/api/chats/messages/?session_id=e2e&role=assistant",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let answers = json_body(&body);
    let streamed = &answers[1]["metadata"];
    assert_eq!(answers[1]["message"], "Ça va ?");
    assert_eq!(streamed["model"], SERVER_MODEL);
    assert_eq!(streamed["finish_reason"], "stop");
    assert_eq!(streamed["usage"]["total_tokens"], 34);
    assert!(streamed["time_to_first_chunk_ms"].is_u64(), "{streamed}");
    assert!(answers[0]["metadata"]["latency_ms"].is_u64());
}

#[tokio::test]
async fn model_failures_map_to_502_504_and_the_sse_error_event() {
    let fake = FakeServer::start(vec![
        Reply::status(401, "Incorrect API key provided"),
        Reply::Stream(vec![Step::Hang]),
        Reply::Stream(vec![Step::delta("half "), Step::error("upstream crashed")]),
    ])
    .await;
    let dir = temp_dir("openai-fail");
    let server = start(
        &dir,
        &fake,
        &[
            "--openai-first-chunk-timeout",
            "300ms",
            "--openai-max-attempts",
            "1",
        ],
    );
    let api = Api::new(&server);
    api.session("fail").await;
    let chat = json!({"session_id": "fail", "message": "hello"});

    let (status, body) = api
        .call(
            Method::POST,
            "/api/chats/messages/chat/",
            Some(chat.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let error = json_body(&body);
    assert_eq!(error["code"], "llm_unavailable");
    assert!(
        !error["error"]
            .as_str()
            .unwrap_or_default()
            .contains("API key"),
        "upstream details are not leaked: {error}"
    );

    let (status, body) = api
        .call(
            Method::POST,
            "/api/chats/messages/chat/",
            Some(chat.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(json_body(&body)["code"], "llm_timeout");
    assert!(fake.wait_gone(1).await, "the timed-out request was dropped");

    let (status, body) = api
        .call(Method::POST, "/api/chats/messages/chat/stream/", Some(chat))
        .await;
    assert_eq!(status, StatusCode::OK);
    let events = colloquy_test_support::sse::parse_json(&body);
    assert_eq!(
        events.first().map(|e| e["chunk"].clone()),
        Some(json!("half "))
    );
    let last = events.last().expect("events");
    assert_eq!(last["done"], true);
    assert_eq!(last["error"], "llm_unavailable");
}

#[test]
fn help_documents_the_openai_settings() {
    let output = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, env) in [
        ("--openai-base-url", "COLLOQUY_OPENAI_BASE_URL"),
        ("--openai-api-key", "COLLOQUY_OPENAI_API_KEY"),
        ("--openai-model", "COLLOQUY_OPENAI_MODEL"),
        ("--openai-temperature", "COLLOQUY_OPENAI_TEMPERATURE"),
        ("--max-answer-tokens", "COLLOQUY_MAX_ANSWER_TOKENS"),
        ("--openai-max-tokens", "COLLOQUY_MAX_ANSWER_TOKENS"),
        ("--openai-system-prompt", "COLLOQUY_OPENAI_SYSTEM_PROMPT"),
        ("--openai-header", "COLLOQUY_OPENAI_HEADERS"),
        (
            "--openai-first-chunk-timeout",
            "COLLOQUY_OPENAI_FIRST_CHUNK_TIMEOUT",
        ),
        ("--openai-chunk-timeout", "COLLOQUY_OPENAI_CHUNK_TIMEOUT"),
        ("--openai-total-timeout", "COLLOQUY_OPENAI_TOTAL_TIMEOUT"),
        ("--openai-max-attempts", "COLLOQUY_OPENAI_MAX_ATTEMPTS"),
    ] {
        assert!(help.contains(flag), "{flag} in --help");
        assert!(help.contains(env), "{env} in --help");
    }
}

#[test]
fn an_unusable_base_url_fails_fast() {
    let output = Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--store",
            "memory",
            "--model",
            "openai",
        ])
        .args(["--openai-base-url", "localhost:11434"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("base URL"), "{err}");
}
