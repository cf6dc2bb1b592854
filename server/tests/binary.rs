//! End-to-end test of the built `colloquy` binary: start it on a free port, run the
//! seed's workflow over HTTP, stop it with SIGTERM and check it exits 0.

#![allow(missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_colloquy");
const DEADLINE: Duration = Duration::from_secs(30);

/// A running `colloquy`, killed if the test fails before it stops it.
struct Server {
    child: Child,
    base: String,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let stderr = child.stderr.take().expect("stderr piped");
    let (line_tx, line_rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let (log_tx, log_rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = log_tx.send(line);
        }
    });
    let line = line_rx
        .recv_timeout(DEADLINE)
        .expect("the binary prints its address");
    let base = line
        .strip_prefix("colloquy listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server {
        child,
        base,
        stderr: log_rx,
    }
}

async fn call(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (StatusCode, Bytes) {
    let mut request = Request::builder().method(method).uri(url);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("the server answers");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, bytes)
}

fn json(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).expect("JSON body")
}

#[tokio::test]
async fn serves_the_workflow_and_exits_0_on_sigterm() {
    let mut server = start(&["--store", "memory"]);
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let base = server.base.clone();

    let started = Instant::now();
    loop {
        let request = Request::get(format!("{base}/healthz"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        if let Ok(r) = client.request(request).await {
            if r.status() == StatusCode::OK {
                break;
            }
        }
        assert!(started.elapsed() < DEADLINE, "healthz never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (status, body) = call(
        &client,
        Method::POST,
        &format!("{base}/api/chats/sessions/"),
        Some(json!({"session_id": "bin"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(json(&body)["session_id"], "bin");

    let (status, body) = call(
        &client,
        Method::POST,
        &format!("{base}/api/chats/messages/chat/"),
        Some(json!({"session_id": "bin", "message": "hi there"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["response"], "Echo: hi there");

    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/api/chats/messages/chat/stream/?session_id=bin&message=streamed"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.starts_with("id: 0\ndata: {\"chunk\":\"Echo: \""),
        "{text}"
    );
    assert!(text.contains("\"done\":true"), "{text}");

    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/api/chats/messages/?session_id=bin"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body).as_array().map(Vec::len), Some(4));

    let pid = server.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < DEADLINE, "the server did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");

    let logs: Vec<String> = server.stderr.try_iter().collect();
    let request_lines = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["span"]["request_id"].is_string())
        .count();
    assert!(
        request_lines >= 4,
        "JSON logs carry the request id: {logs:?}"
    );
    assert!(logs.iter().any(|l| l.contains("SIGTERM")), "{logs:?}");
}

#[test]
fn help_documents_every_setting() {
    let output = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, env) in [
        ("--bind", "COLLOQUY_BIND"),
        ("--store", "COLLOQUY_STORE"),
        ("--redis-prefix", "COLLOQUY_REDIS_PREFIX"),
        ("--sqlite-purge-interval", "COLLOQUY_SQLITE_PURGE_INTERVAL"),
        ("--model", "COLLOQUY_MODEL"),
        ("--echo-chunk-delay", "COLLOQUY_ECHO_CHUNK_DELAY"),
        ("--cors-origins", "COLLOQUY_CORS_ORIGINS"),
        ("--max-body-bytes", "COLLOQUY_MAX_BODY_BYTES"),
        ("--max-message-bytes", "COLLOQUY_MAX_MESSAGE_BYTES"),
        ("--session-ttl", "COLLOQUY_SESSION_TTL"),
        ("--sse-keep-alive", "COLLOQUY_SSE_KEEP_ALIVE"),
        ("--shutdown-grace", "COLLOQUY_SHUTDOWN_GRACE"),
        ("--log-format", "COLLOQUY_LOG_FORMAT"),
        ("--log-level", "COLLOQUY_LOG_LEVEL"),
    ] {
        assert!(help.contains(flag), "{flag} in --help");
        assert!(help.contains(env), "{env} in --help");
    }
    assert!(
        help.contains("[default: sqlite:colloquy.db]"),
        "the default store is a SQLite file: {help}"
    );
}

#[test]
fn bad_settings_fail_fast_with_a_message() {
    let output = Command::new(BIN)
        .args(["--store", "floppy"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    for form in ["sqlite:", "memory", "redis://", "redis-cluster://"] {
        assert!(err.contains("unknown store") && err.contains(form), "{err}");
    }

    let output = Command::new(BIN)
        .env("COLLOQUY_SESSION_TTL", "0")
        .args(["--bind", "127.0.0.1:0"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--session-ttl"));
}

#[test]
fn ctrl_c_also_shuts_down_cleanly() {
    let mut server = start(&["--store", "memory"]);
    let killed = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < DEADLINE, "the server did not exit");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}
