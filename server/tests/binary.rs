//! End-to-end test of the built `colloquy` binary: start it on a free port, run the
//! seed's workflow over HTTP, stop it with SIGTERM and check it exits 0.

#![allow(missing_docs)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};

use common::{call, client, must, Server, TempDir, BIN, DEADLINE};

/// JSON logs at `info`, so that every request writes a line carrying its id.
const ARGS: &[&str] = &[
    "--store",
    "memory",
    "--log-format",
    "json",
    "--log-level",
    "info",
];

#[tokio::test]
async fn serves_the_workflow_and_exits_0_on_sigterm() {
    let dir = TempDir::new("binary");
    let server = Server::start(&dir.0, ARGS);
    let client = client();
    let base = server.base.clone();

    let started = Instant::now();
    loop {
        if let Ok(answer) = call(&client, Method::GET, &format!("{base}/healthz"), None).await {
            if answer.status == StatusCode::OK {
                break;
            }
        }
        assert!(started.elapsed() < DEADLINE, "healthz never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let answer = must(
        &client,
        Method::POST,
        &format!("{base}/api/chats/sessions/"),
        Some(json!({"session_id": "bin"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.body["session_id"], "bin", "{}", answer.text);

    let answer = must(
        &client,
        Method::POST,
        &format!("{base}/api/chats/messages/chat/"),
        Some(json!({"session_id": "bin", "message": "hi there"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["response"], "Echo: hi there", "{}", answer.text);

    let answer = must(
        &client,
        Method::GET,
        &format!("{base}/api/chats/messages/chat/stream/?session_id=bin&message=streamed"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = &answer.text;
    assert!(text.starts_with("retry: 1000\n\nid: "), "{text}");
    assert!(
        text.contains(":0:6\ndata: {\"chunk\":\"Echo: \""),
        "the first event's id is <response_id>:0:6: {text}"
    );
    assert!(text.contains("\"done\":true"), "{text}");

    let answer = must(
        &client,
        Method::GET,
        &format!("{base}/api/chats/messages/?session_id=bin"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body.as_array().map(Vec::len),
        Some(4),
        "{}",
        answer.text
    );

    let logs = server.stop();
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
        ("--retention", "COLLOQUY_RETENTION"),
        ("--purge-interval", "COLLOQUY_PURGE_INTERVAL"),
        ("--stream-log-ttl", "COLLOQUY_STREAM_LOG_TTL"),
        ("--stream-log", "COLLOQUY_STREAM_LOG"),
        ("--access", "COLLOQUY_ACCESS"),
        ("--admin-token", "COLLOQUY_ADMIN_TOKEN"),
        ("--trusted-proxies", "COLLOQUY_TRUSTED_PROXIES"),
        ("--rate-chats", "COLLOQUY_RATE_CHATS"),
        ("--max-generations", "COLLOQUY_MAX_GENERATIONS"),
        ("--max-session-ttl", "COLLOQUY_MAX_SESSION_TTL"),
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
        ("--widget", "COLLOQUY_WIDGET"),
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
    let dir = TempDir::new("binary-int");
    Server::start(&dir.0, ARGS).stop_with("INT");
}

#[tokio::test]
async fn the_widget_is_served_unless_turned_off() {
    let dir = TempDir::new("binary-widget");
    let client = client();
    for (env, args, served) in [
        (None, &[][..], true),
        (Some("false"), &[][..], false),
        (Some("false"), &["--widget"][..], true),
        (Some("true"), &["--no-widget"][..], false),
    ] {
        let mut command = Server::command(&dir.0, &[&["--store", "memory"][..], args].concat());
        if let Some(value) = env {
            command.env("COLLOQUY_WIDGET", value);
        }
        let server = Server::spawn(command);
        let expected = if served {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        for path in ["/widget.js", "/widget/demo", "/"] {
            let url = format!("{}{path}", server.base);
            let answer = must(&client, Method::GET, &url, None).await;
            assert_eq!(
                answer.status, expected,
                "COLLOQUY_WIDGET={env:?} {args:?} {path}"
            );
        }
        server.stop();
    }
}
