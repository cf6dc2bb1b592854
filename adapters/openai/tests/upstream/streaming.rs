//! Streamed answers: what is sent, what is read, deadlines, retries, cancellation.

use std::time::{Duration, Instant};

use colloquy_core::ports::{ChatModel, ModelStream};
use colloquy_core::{FinishInfo, FinishReason, ModelError, ModelEvent, TimeoutKind, Usage};
use futures::StreamExt;
use serde_json::json;

use crate::{cause, config, config_for, model, request};
use colloquy_openai::fake::{FakeServer, Reply, Step, SERVER_MODEL};

/// Everything a stream yielded: the text, the finish info, and the error that ended it.
#[derive(Debug, Default)]
struct Outcome {
    text: String,
    deltas: usize,
    finished: Option<FinishInfo>,
    error: Option<ModelError>,
}

async fn drain(mut stream: ModelStream) -> Outcome {
    let mut out = Outcome::default();
    while let Some(item) = stream.next().await {
        assert!(
            out.finished.is_none() && out.error.is_none(),
            "nothing may follow Finished or an error"
        );
        match item {
            Ok(ModelEvent::Delta(text)) => {
                out.text.push_str(&text);
                out.deltas += 1;
            }
            Ok(ModelEvent::Finished(info)) => out.finished = Some(info),
            Err(e) => out.error = Some(e),
        }
    }
    out
}

#[tokio::test]
async fn streams_deltas_and_reports_model_finish_and_usage() {
    // Events split across writes: mid-event, mid-line, inside a UTF-8 character.
    let Step::Bytes(split_event) = Step::event(&json!({
        "model": SERVER_MODEL,
        "choices": [{"index": 0, "delta": {"content": " wörld 🌍"}, "finish_reason": null}]
    })) else {
        unreachable!("an event is bytes")
    };
    let emoji_at = split_event
        .iter()
        .position(|&b| b == 0xF0)
        .expect("emoji in event");
    let server = FakeServer::start(vec![Reply::Stream(vec![
        Step::role(),
        Step::delta("Hello"),
        Step::pause(20),
        Step::Bytes(split_event[..10].to_vec()),
        Step::pause(20),
        Step::Bytes(split_event[10..emoji_at + 2].to_vec()),
        Step::pause(20),
        Step::Bytes(split_event[emoji_at + 2..].to_vec()),
        Step::finish("stop"),
        Step::usage(11, 7),
        Step::done(),
    ])])
    .await;
    let out = drain(
        model(config(&server))
            .stream(&request())
            .await
            .expect("stream opens"),
    )
    .await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.text, "Hello wörld 🌍");
    assert_eq!(out.deltas, 2);
    assert_eq!(
        out.finished,
        Some(FinishInfo {
            finish_reason: FinishReason::Stop,
            model: Some(SERVER_MODEL.into()),
            usage: Some(Usage {
                prompt_tokens: 11,
                completion_tokens: 7,
                total_tokens: 18,
                estimated: false
            }),
        })
    );
}

#[tokio::test]
async fn sends_the_documented_request() {
    let server = FakeServer::start(vec![Reply::stream(["ok"])]).await;
    let mut settings = config(&server);
    settings.system_prompt = Some("You are terse.".into());
    settings.temperature = Some(0.25);
    settings.max_tokens = Some(128);
    settings.extra_headers = vec![("X-Tenant".into(), "acme".into())];
    let out = drain(model(settings).stream(&request()).await.expect("opens")).await;
    assert_eq!(out.text, "ok");

    let sent = server.only_request();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-key"));
    assert_eq!(sent.header("x-tenant"), Some("acme"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
    let roles_and_texts: Vec<(&str, &str)> = vec![
        ("system", "You are terse."),
        ("system", "session rules"),
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "second question"),
    ];
    let messages = sent.messages();
    let got: Vec<(&str, &str)> = messages
        .iter()
        .map(|(r, c)| (r.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        got, roles_and_texts,
        "system prompt first, then the context in order"
    );
    assert_eq!(sent.body["model"], "test-model");
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));
    assert_eq!(sent.body["temperature"], 0.25);
    assert_eq!(sent.body["max_tokens"], 128);
}

#[tokio::test]
async fn without_api_key_or_options_nothing_extra_is_sent() {
    let server = FakeServer::start(vec![Reply::stream(["ok"])]).await;
    let mut settings = config(&server);
    settings.api_key = None;
    settings.include_usage = false;
    drain(model(settings).stream(&request()).await.expect("opens")).await;
    let sent = server.only_request();
    assert_eq!(sent.header("authorization"), None);
    let body = sent.body.as_object().expect("object");
    for absent in ["stream_options", "temperature", "max_tokens"] {
        assert!(!body.contains_key(absent), "{absent} was sent: {body:?}");
    }
    assert_eq!(
        sent.messages()[0].0,
        "system",
        "no prompt added: the context's own system message leads"
    );
}

#[tokio::test]
async fn error_event_mid_stream_ends_with_unavailable_after_the_text() {
    let server = FakeServer::start(vec![Reply::Stream(vec![
        Step::delta("partial "),
        Step::delta("answer"),
        Step::error("backend crashed"),
        Step::done(),
    ])])
    .await;
    let out = drain(
        model(config(&server))
            .stream(&request())
            .await
            .expect("opens"),
    )
    .await;
    assert_eq!(out.text, "partial answer");
    assert!(out.finished.is_none());
    let error = out.error.expect("ends with an error");
    assert!(matches!(error, ModelError::Unavailable { .. }), "{error:?}");
    assert_eq!(error.code().as_str(), "llm_unavailable");
    assert!(
        cause(&error).contains("backend crashed"),
        "{}",
        cause(&error)
    );
    assert_eq!(server.requests().len(), 1, "never retried after a chunk");
}

#[tokio::test]
async fn stream_cut_without_done_is_a_truncated_answer() {
    let server = FakeServer::start(vec![Reply::Stream(vec![
        Step::delta("cut "),
        Step::delta("off"),
        Step::raw("data: {\"choices\":[{\"index\":0,\"del"),
    ])])
    .await;
    let out = drain(
        model(config(&server))
            .stream(&request())
            .await
            .expect("opens"),
    )
    .await;
    assert_eq!(out.text, "cut off");
    let error = out.error.expect("truncated");
    assert!(matches!(error, ModelError::Protocol(_)), "{error:?}");
    assert!(cause(&error).contains("ended before"), "{}", cause(&error));
}

#[tokio::test]
async fn stream_ending_after_finish_reason_without_done_finishes() {
    let server = FakeServer::start(vec![Reply::Stream(vec![
        Step::delta("complete"),
        Step::finish("length"),
    ])])
    .await;
    let out = drain(
        model(config(&server))
            .stream(&request())
            .await
            .expect("opens"),
    )
    .await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.text, "complete");
    let info = out.finished.expect("finished");
    assert_eq!(info.finish_reason, FinishReason::Length);
    assert_eq!(info.usage, None, "no usage was reported");
}

#[tokio::test]
async fn ignorable_lines_are_skipped_and_invalid_json_is_a_protocol_error() {
    let server = FakeServer::start(vec![
        Reply::Stream(vec![
            Step::raw(
                ": comment\r\nevent: message\r\nid: 42\r\nretry: 10\r\nno colon here\r\n\r\n",
            ),
            Step::delta("fine"),
            Step::raw("\n\n\n"),
            Step::done(),
        ]),
        Reply::Stream(vec![
            Step::delta("before "),
            Step::raw("data: {not json}\n\n"),
            Step::done(),
        ]),
    ])
    .await;
    let chat = model(config(&server));
    let clean = drain(chat.stream(&request()).await.expect("opens")).await;
    assert!(clean.error.is_none(), "{:?}", clean.error);
    assert_eq!(clean.text, "fine");
    assert_eq!(
        clean.finished.map(|f| f.finish_reason),
        Some(FinishReason::Stop),
        "[DONE] without a finish_reason is a stop"
    );

    let broken = drain(chat.stream(&request()).await.expect("opens")).await;
    assert_eq!(broken.text, "before ");
    assert!(
        matches!(broken.error, Some(ModelError::Protocol(_))),
        "{:?}",
        broken.error
    );
}

#[tokio::test]
async fn rate_limited_then_success_honours_retry_after() {
    let server = FakeServer::start(vec![
        Reply::Status {
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body: r#"{"error":{"message":"slow down"}}"#.into(),
        },
        Reply::stream(["after ", "waiting"]),
    ])
    .await;
    let started = Instant::now();
    let out = drain(
        model(config(&server))
            .stream(&request())
            .await
            .expect("retried"),
    )
    .await;
    assert_eq!(out.text, "after waiting");
    assert_eq!(server.requests().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was honoured, waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn server_errors_then_success_are_retried() {
    let server = FakeServer::start(vec![
        Reply::status(500, "boom"),
        Reply::status(503, "overloaded"),
        Reply::stream(["third time"]),
    ])
    .await;
    let out = drain(
        model(config(&server))
            .stream(&request())
            .await
            .expect("retried"),
    )
    .await;
    assert_eq!(out.text, "third time");
    let sent = server.requests();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].body, sent[2].body, "the same request is repeated");
}

#[tokio::test]
async fn retries_stop_after_max_attempts() {
    let server = FakeServer::start(vec![
        Reply::status(502, "a"),
        Reply::status(502, "b"),
        Reply::status(502, "c"),
        Reply::stream(["never"]),
    ])
    .await;
    let error = model(config(&server))
        .stream(&request())
        .await
        .err()
        .expect("gives up");
    assert!(
        matches!(
            error,
            ModelError::Unavailable {
                retryable: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(cause(&error).contains("502"), "{}", cause(&error));
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = FakeServer::start(vec![
        Reply::status(404, "model 'test-model' not found"),
        Reply::stream(["never"]),
    ])
    .await;
    let error = model(config(&server))
        .stream(&request())
        .await
        .err()
        .expect("fails");
    assert!(
        matches!(
            error,
            ModelError::Unavailable {
                retryable: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(cause(&error).contains("not found"), "{}", cause(&error));
    assert_eq!(error.code().as_str(), "llm_unavailable");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn retry_after_longer_than_allowed_is_not_waited_for() {
    let server = FakeServer::start(vec![
        Reply::Status {
            status: 429,
            headers: vec![("retry-after", "3600".into())],
            body: String::new(),
        },
        Reply::stream(["never"]),
    ])
    .await;
    let error = model(config(&server))
        .stream(&request())
        .await
        .err()
        .expect("fails");
    assert!(
        matches!(
            error,
            ModelError::Unavailable {
                retryable: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn refused_connection_is_retried_then_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let chat = model(config_for(format!("http://127.0.0.1:{port}/v1")));
    let error = chat.stream(&request()).await.err().expect("nobody listens");
    assert!(
        matches!(
            error,
            ModelError::Unavailable {
                retryable: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(cause(&error).contains("connect"), "{}", cause(&error));
}

#[tokio::test]
async fn slow_first_chunk_times_out_and_closes_the_request() {
    let server = FakeServer::start(vec![
        Reply::Stream(vec![Step::Hang]),
        Reply::stream(["never"]),
    ])
    .await;
    let mut settings = config(&server);
    settings.timeouts.first_chunk = Duration::from_millis(300);
    let error = model(settings)
        .stream(&request())
        .await
        .err()
        .expect("times out");
    assert!(
        matches!(error, ModelError::Timeout(TimeoutKind::FirstChunk)),
        "{error:?}"
    );
    assert_eq!(error.code().as_str(), "llm_timeout");
    assert!(
        server.wait_gone(1).await,
        "the upstream request was dropped"
    );
    assert_eq!(
        server.requests().len(),
        1,
        "a slow model is not asked again"
    );
}

#[tokio::test]
async fn silence_between_chunks_times_out_even_with_keep_alive_comments() {
    let server =
        FakeServer::start(vec![Reply::Stream(vec![Step::delta("first"), Step::Hang])]).await;
    let mut settings = config(&server);
    settings.timeouts.between_chunks = Duration::from_millis(300);
    let out = drain(model(settings).stream(&request()).await.expect("opens")).await;
    assert_eq!(out.text, "first");
    assert!(
        matches!(
            out.error,
            Some(ModelError::Timeout(TimeoutKind::BetweenChunks))
        ),
        "{:?}",
        out.error
    );
    assert!(
        server.wait_gone(1).await,
        "the upstream request was dropped"
    );
}

#[tokio::test]
async fn total_deadline_bounds_a_dribbling_stream() {
    let mut steps = Vec::new();
    for _ in 0..1000 {
        steps.push(Step::delta("x"));
        steps.push(Step::pause(20));
    }
    let server = FakeServer::start(vec![Reply::Stream(steps)]).await;
    let mut settings = config(&server);
    settings.timeouts.total = Duration::from_secs(2);
    let out = drain(model(settings).stream(&request()).await.expect("opens")).await;
    assert!(
        out.deltas >= 1 && out.deltas < 1000,
        "{} deltas",
        out.deltas
    );
    assert!(
        matches!(out.error, Some(ModelError::Timeout(TimeoutKind::Total))),
        "{:?}",
        out.error
    );
}

#[tokio::test]
async fn dropping_the_stream_closes_the_upstream_connection() {
    let server =
        FakeServer::start(vec![Reply::Stream(vec![Step::delta("hello"), Step::Hang])]).await;
    let mut stream = model(config(&server))
        .stream(&request())
        .await
        .expect("opens");
    let first = stream.next().await.expect("an item").expect("a delta");
    assert_eq!(first, ModelEvent::Delta("hello".into()));
    assert_eq!(server.gone(), 0, "still connected while the stream is held");
    drop(stream);
    assert!(
        server.wait_gone(1).await,
        "the fake server saw the connection close"
    );
}

#[tokio::test]
async fn finished_streams_leave_the_connection_for_the_next_call() {
    let server = FakeServer::start(vec![Reply::stream(["one"]), Reply::stream(["two"])]).await;
    let chat = model(config(&server));
    for expected in ["one", "two"] {
        let out = drain(chat.stream(&request()).await.expect("opens")).await;
        assert_eq!(out.text, expected);
    }
    assert_eq!(server.requests().len(), 2);
    assert_eq!(server.connections(), 1, "the connection was reused");
}

#[tokio::test]
async fn a_json_answer_to_a_stream_request_is_one_chunk() {
    let server = FakeServer::start(vec![
        Reply::completion("whole answer", "stop"),
        Reply::Json(json!({"error": {"message": "model is loading"}})),
    ])
    .await;
    let chat = model(config(&server));
    let out = drain(chat.stream(&request()).await.expect("opens")).await;
    assert_eq!(out.text, "whole answer");
    assert_eq!(out.deltas, 1);
    let info = out.finished.expect("finished");
    assert_eq!(info.model.as_deref(), Some(SERVER_MODEL));
    assert_eq!(info.usage.map(|u| u.total_tokens), Some(25));

    let error = chat
        .stream(&request())
        .await
        .err()
        .expect("an error object");
    assert!(
        matches!(
            error,
            ModelError::Unavailable {
                retryable: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        cause(&error).contains("model is loading"),
        "{}",
        cause(&error)
    );
}

#[tokio::test]
async fn connect_timeout_is_its_own_kind() {
    // A listener that never accepts, with its accept queue filled: the kernel drops
    // further SYNs, so the next connect hangs until the client gives up.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(1).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let attempt = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        );
        match attempt.await {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    let mut settings = config_for(format!("http://{addr}/v1"));
    settings.timeouts.connect = Duration::from_millis(200);
    settings.retry.max_attempts = 2;
    let error = model(settings)
        .stream(&request())
        .await
        .err()
        .expect("no connection");
    assert!(
        matches!(error, ModelError::Timeout(TimeoutKind::Connect)),
        "{error:?}: {}",
        cause(&error)
    );
    assert_eq!(error.code().as_str(), "llm_timeout");
    drop(fillers);
}
