//! Answers from your docs, end to end through the binary: `colloquy ingest` fills a
//! SQLite knowledge file from the Kestrel test docs, `colloquy --knowledge` serves
//! with `--model openai` against the fake OpenAI-compatible server, and the passage
//! that answers reaches the model's prompt and the answer's sources.

#![allow(missing_docs)]

mod common;

use std::process::{Command, Output};

use colloquy_knowledge::testing::testdata;
use colloquy_openai::fake::{FakeServer, Reply};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use common::{client, must, temp_dir, Server, TempDir, BIN, DEADLINE};

/// Runs `colloquy ingest` in `dir` (bounded by the test harness' deadline).
fn ingest(dir: &TempDir, args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .arg("ingest")
        .args(args)
        .env_remove("COLLOQUY_KNOWLEDGE")
        .env_remove("COLLOQUY_EMBEDDINGS_BASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        assert!(
            started.elapsed() < DEADLINE,
            "colloquy ingest did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn call(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let url = format!("{}{path}", server.base);
    let answer = tokio::time::timeout(DEADLINE, must(&client(), method, &url, body))
        .await
        .expect("an answer in time");
    (answer.status, answer.text)
}

const QUESTION: &str = "How many API requests can I make per minute?";
const ANSWER: &str = "Each API key may make 600 requests per minute.";

#[tokio::test]
async fn ingested_docs_ground_the_answer_and_name_their_source() {
    let dir = temp_dir("knowledge");
    let docs = testdata().join("kestrel");
    let docs = docs.to_str().expect("utf-8 path");

    let first = ingest(&dir, &["--knowledge", "sqlite:kb.db", docs]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let summary = text(&first.stdout);
    assert!(
        summary.contains("11 files: 11 added, 0 updated, 0 unchanged"),
        "{summary}"
    );
    let progress = text(&first.stderr);
    assert_eq!(
        progress.lines().filter(|l| l.starts_with('[')).count(),
        11,
        "{progress}"
    );
    assert!(progress.contains("[ 1/11] added"), "{progress}");
    let again = ingest(&dir, &["--knowledge", "sqlite:kb.db", docs]);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("0 added, 0 updated, 11 unchanged"),
        "{}",
        text(&again.stdout)
    );

    let fake = FakeServer::start(vec![
        Reply::completion("600 per minute [1].", "stop"),
        Reply::stream(["Yes", ", with Slack [1]."]),
    ])
    .await;
    let base_url = fake.base_url();
    let server = Server::start(
        dir.path(),
        &[
            "--store",
            "memory",
            "--knowledge",
            "sqlite:kb.db",
            "--model",
            "openai",
            "--openai-base-url",
            &base_url,
        ],
    );
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/chats/sessions/",
        Some(json!({"session_id": "kb"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) = call(
        &server,
        Method::POST,
        "/api/chats/messages/chat/",
        Some(json!({"session_id": "kb", "message": QUESTION})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reply: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(reply["response"], "600 per minute [1].");
    let sources = reply["sources"].as_array().expect("sources");
    assert!(!sources.is_empty() && sources.len() <= 5, "{reply}");
    assert!(
        sources[0]["document"]
            .as_str()
            .expect("document")
            .ends_with("kestrel/api.md"),
        "{reply}"
    );
    assert!(sources[0]["snippet"]
        .as_str()
        .expect("snippet")
        .contains(ANSWER));
    assert_eq!(sources[0]["title"], "REST API › Rate limits");
    let holding: Vec<&Value> = sources
        .iter()
        .filter(|s| {
            s["snippet"]
                .as_str()
                .is_some_and(|t| t.contains("600 requests"))
        })
        .collect();
    assert_eq!(holding.len(), 1, "the answer is in exactly one passage");

    // The passage reached the model, in a system message ahead of the question.
    let sent = fake.requests();
    let messages = sent[0].messages();
    let (role, context) = &messages[0];
    assert_eq!(role, "system");
    assert!(
        context.contains("<documents>") && context.contains(ANSWER),
        "{context}"
    );
    assert_eq!(messages.last().map(|(_, c)| c.as_str()), Some(QUESTION));

    // The stored answer names its sources.
    let (status, body) = call(
        &server,
        Method::GET,
        "/api/chats/messages/?session_id=kb&role=assistant",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let stored: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(stored[0]["metadata"]["sources"], reply["sources"]);

    // Streamed: the done event carries the sources; a follow-up resolves "it".
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/chats/messages/chat/stream/",
        Some(json!({"session_id": "kb", "message": "Can it post alerts to Slack?"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let events = colloquy_test_support::sse::parse_json(&body);
    let done = events.last().expect("events");
    assert_eq!(done["done"], true);
    assert_eq!(done["finish_reason"], "stop");
    let documents: Vec<&str> = done["sources"]
        .as_array()
        .expect("sources on done")
        .iter()
        .filter_map(|s| s["document"].as_str())
        .collect();
    assert!(
        documents.iter().any(|d| d.ends_with("integrations.md")),
        "{done}"
    );
    server.stop();
}

#[tokio::test]
async fn without_a_subcommand_it_serves_as_before_with_no_sources() {
    let dir = temp_dir("no-knowledge");
    let server = Server::start(dir.path(), &["--store", "memory"]);
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/chats/sessions/",
        Some(json!({"session_id": "plain"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/chats/messages/chat/",
        Some(json!({"session_id": "plain", "message": "hi"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let reply: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(reply["response"], "Echo: hi");
    assert!(reply.get("sources").is_none(), "{reply}");
    server.stop();
}

#[tokio::test]
async fn ingest_reports_bad_input_with_a_failing_exit_code() {
    let dir = temp_dir("ingest-bad");
    let missing = ingest(&dir, &["--knowledge", "sqlite:kb.db", "no-such-folder"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("no-such-folder"),
        "{}",
        text(&missing.stderr)
    );
    std::fs::write(dir.path().join("bad.md"), [0xff, 0xfe]).expect("write");
    std::fs::write(dir.path().join("good.md"), "# Good\n\nFine text.").expect("write");
    let partial = ingest(&dir, &["--knowledge", "sqlite:kb.db", "bad.md", "good.md"]);
    assert!(!partial.status.success(), "a failed file fails the run");
    assert!(
        text(&partial.stdout).contains("1 added"),
        "{}",
        text(&partial.stdout)
    );
    assert!(
        text(&partial.stderr).contains("FAILED"),
        "{}",
        text(&partial.stderr)
    );
    let no_spec = Command::new(BIN)
        .current_dir(dir.path())
        .args(["ingest", "good.md"])
        .env_remove("COLLOQUY_KNOWLEDGE")
        .output()
        .expect("runs");
    assert!(!no_spec.status.success(), "--knowledge is required");
}
