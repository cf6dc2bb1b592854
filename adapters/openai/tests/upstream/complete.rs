//! Whole (non-streamed) answers.

use std::time::Duration;

use colloquy_core::ports::ChatModel;
use colloquy_core::{FinishReason, ModelError, TimeoutKind, Usage};
use serde_json::json;

use crate::{cause, config, model, request};
use colloquy_openai::fake::{FakeServer, Reply, Step, SERVER_MODEL};

#[tokio::test]
async fn whole_answer_with_model_finish_reason_and_usage() {
    let server = FakeServer::start(vec![Reply::completion("All done.", "length")]).await;
    let mut settings = config(&server);
    settings.system_prompt = Some("Be kind.".into());
    let answer = model(settings).complete(&request()).await.expect("answers");
    assert_eq!(answer.text, "All done.");
    assert_eq!(answer.info.finish_reason, FinishReason::Length);
    assert_eq!(answer.info.model.as_deref(), Some(SERVER_MODEL));
    assert_eq!(
        answer.info.usage,
        Some(Usage {
            prompt_tokens: 20,
            completion_tokens: 5,
            total_tokens: 25,
            estimated: false
        })
    );

    let sent = server.only_request();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-key"));
    assert_eq!(sent.body["stream"], false);
    assert!(sent.body.get("stream_options").is_none());
    assert_eq!(
        sent.messages()[0],
        ("system".to_owned(), "Be kind.".to_owned())
    );
    assert_eq!(sent.messages().len(), 5);
}

#[tokio::test]
async fn server_error_then_success_is_retried() {
    let server = FakeServer::start(vec![
        Reply::status(500, "hiccup"),
        Reply::completion("fine", "stop"),
    ])
    .await;
    let answer = model(config(&server))
        .complete(&request())
        .await
        .expect("retried");
    assert_eq!(answer.text, "fine");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn unauthorized_is_not_retried() {
    let server = FakeServer::start(vec![
        Reply::status(401, "Incorrect API key provided"),
        Reply::completion("never", "stop"),
    ])
    .await;
    let error = model(config(&server))
        .complete(&request())
        .await
        .expect_err("fails");
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
    assert!(cause(&error).contains("401"), "{}", cause(&error));
    assert!(!cause(&error).contains("sk-test-key"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn invalid_bodies_are_protocol_errors() {
    let server = FakeServer::start(vec![
        Reply::Status {
            status: 200,
            headers: Vec::new(),
            body: "<html>proxy error</html>".into(),
        },
        Reply::Json(json!({"model": "m", "choices": []})),
    ])
    .await;
    let chat = model(config(&server));
    for _ in 0..2 {
        let error = chat.complete(&request()).await.expect_err("invalid");
        assert!(matches!(error, ModelError::Protocol(_)), "{error:?}");
    }
    assert_eq!(
        server.requests().len(),
        2,
        "invalid answers are not retried"
    );
}

#[tokio::test]
async fn slow_whole_answer_times_out() {
    let server = FakeServer::start(vec![Reply::Stream(vec![Step::Hang])]).await;
    let mut settings = config(&server);
    settings.timeouts.first_chunk = Duration::from_millis(300);
    let error = model(settings)
        .complete(&request())
        .await
        .expect_err("times out");
    assert!(
        matches!(error, ModelError::Timeout(TimeoutKind::FirstChunk)),
        "{error:?}"
    );
    assert!(
        server.wait_gone(1).await,
        "the upstream request was dropped"
    );
}
