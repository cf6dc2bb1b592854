//! Secrets given to the `colloquy` binary (the OpenAI base URL's password, the API
//! key, a Redis password) never appear in anything it prints: every line of stdout
//! and stderr of each run is searched for each secret, at `--log-level debug`.

#![allow(missing_docs)]

mod common;

use colloquy_openai::fake::{FakeServer, Reply};
use http::{Method, StatusCode};
use serde_json::json;

use common::{client, free_port, must, temp_dir, Server, Started, TempDir, BIN, DEADLINE};

const BASE_URL_PASSWORD: &str = "base-url-pw-7f3a9c";
const API_KEY: &str = "sk-api-key-5d81e2";
const REDIS_PASSWORD: &str = "redis-pw-c4b02f";
const SECRETS: [&str; 3] = [BASE_URL_PASSWORD, API_KEY, REDIS_PASSWORD];

/// Panics if any line holds a secret.
fn assert_no_secret(run: &str, lines: &[String]) {
    assert!(!lines.is_empty(), "{run}: the run printed nothing");
    for line in lines {
        for secret in SECRETS {
            assert!(
                !line.contains(secret),
                "{run}: a secret was printed: {line}"
            );
        }
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// Runs the binary with `args` (plus the API key in the environment and on the
/// command line's `--openai-api-key`) expecting it to fail at start-up; returns
/// what it printed.
fn failed_start(dir: &TempDir, args: &[&str]) -> Vec<String> {
    let mut command = Server::command(dir.path(), args);
    command.env("COLLOQUY_OPENAI_API_KEY", API_KEY);
    match Server::try_spawn(command) {
        Started::Serving(server) => {
            let logs = server.stop();
            panic!("colloquy {args:?} started: {logs:?}");
        }
        Started::Failed(stderr) => lines(&stderr),
    }
}

#[tokio::test]
async fn secrets_are_never_printed() {
    let dir = temp_dir("secrets");
    let fake = FakeServer::start(vec![
        Reply::completion("Hello there", "stop"),
        Reply::status(500, "upstream broke"),
    ])
    .await;
    let base_url = fake
        .base_url()
        .replace("http://", &format!("http://colloquy:{BASE_URL_PASSWORD}@"));

    // 1. Serving with an OpenAI model whose base URL has a password: start-up,
    // a streamed chat, a failed chat, shutdown.
    let mut command = Server::command(
        dir.path(),
        &[
            "--store",
            "memory",
            "--model",
            "openai",
            "--openai-base-url",
            &base_url,
            "--openai-max-attempts",
            "1",
            "--log-level",
            "debug",
            "--log-format",
            "json",
        ],
    );
    command.env("COLLOQUY_OPENAI_API_KEY", API_KEY);
    let server = Server::spawn(command);
    assert_no_secret("serving (stdout)", std::slice::from_ref(&server.base));
    let http = client();
    let base = server.base.clone();
    must(
        &http,
        Method::POST,
        &format!("{base}/api/chats/sessions/"),
        Some(json!({"session_id": "s"})),
    )
    .await;
    let chat = |message: &'static str| {
        let (http, url) = (http.clone(), format!("{base}/api/chats/messages/chat/"));
        async move {
            tokio::time::timeout(
                DEADLINE,
                must(
                    &http,
                    Method::POST,
                    &url,
                    Some(json!({"session_id": "s", "message": message})),
                ),
            )
            .await
            .expect("answered in time")
        }
    };
    assert_eq!(chat("hi").await.status, StatusCode::OK);
    assert_eq!(chat("again").await.status, StatusCode::BAD_GATEWAY);
    assert_eq!(fake.requests().len(), 2, "both chats reached the model");
    let logs = server.stop();
    assert!(
        logs.iter().any(|l| l.contains("colloquy:***@")),
        "the base URL is logged, redacted: {logs:?}"
    );
    assert_no_secret("serving", &logs);

    // 2. A Redis store with a password that cannot be reached.
    let unreachable = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}/0", free_port());
    let printed = failed_start(
        &dir,
        &[
            "--store",
            &unreachable,
            "--model",
            "openai",
            "--openai-base-url",
            &base_url,
            "--log-level",
            "debug",
        ],
    );
    assert!(
        printed.iter().any(|l| l.contains(":***@127.0.0.1")),
        "{printed:?}"
    );
    assert_no_secret("unreachable redis", &printed);

    // 3. An invalid base URL with a password.
    let printed = failed_start(
        &dir,
        &[
            "--store",
            "memory",
            "--model",
            "openai",
            "--openai-base-url",
            &format!("ftp://colloquy:{BASE_URL_PASSWORD}@127.0.0.1/v1"),
            "--openai-api-key",
            API_KEY,
        ],
    );
    assert!(
        printed.iter().any(|l| l.contains("ftp://colloquy:***@")),
        "{printed:?}"
    );
    assert_no_secret("invalid base URL", &printed);

    // 4. An invalid store spec with a password (refused by the argument parser).
    let output = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .args(["--store", &format!("redis://:{REDIS_PASSWORD}@host:port/0")])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let mut printed = lines(&String::from_utf8_lossy(&output.stderr));
    printed.extend(lines(&String::from_utf8_lossy(&output.stdout)));
    assert_no_secret("invalid store spec", &printed);
}
