//! Runs the `axum-mount` and `hyper-mount` examples and drives them over HTTP: the
//! host app's own route, the chat API under `/support` (with `Link` headers naming
//! the mounted path), the host's `POST /ask` streaming in the API's SSE format and
//! answering failures with the API's JSON errors, and a clean exit on Ctrl-C.

#![cfg(unix)]
#![allow(missing_docs, unreachable_pub)]

mod common;

use common::Example;
use http::{Method, StatusCode};
use serde_json::json;

const API: &str = "/support/api/chats";

async fn mounted_example_works(bin: &str) {
    let app = Example::start(bin).await;

    // The host app's own route.
    let hello = app.get("/hello").await;
    assert_eq!(hello.status, StatusCode::OK);
    assert_eq!(hello.text, "hello from the host app\n");

    // The chat API, mounted under /support.
    for id in ["visitor-1", "visitor-2"] {
        let created = app
            .post_json(&format!("{API}/sessions/"), &json!({"session_id": id}))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        assert_eq!(created.json()["session_id"], id);
    }
    let chat = app
        .post_json(
            &format!("{API}/messages/chat/"),
            &json!({"session_id": "visitor-1", "message": "hi"}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.text);
    assert_eq!(chat.json()["response"], "Echo: hi");
    let page = app.get(&format!("{API}/sessions/?limit=1")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("link"),
        Some("</support/api/chats/sessions/?limit=1&offset=1>; rel=\"next\""),
        "the next page's link names the mounted path"
    );
    let stream = app
        .post_json(
            &format!("{API}/messages/chat/stream/"),
            &json!({"session_id": "visitor-2", "message": "streamed"}),
        )
        .await;
    assert_eq!(stream.status, StatusCode::OK, "{}", stream.text);
    assert_eq!(stream.streamed_text(), "Echo: streamed");
    let missing = app.get(&format!("{API}/sessions/nobody/")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["code"], "session_not_found");

    // Only under the mount, and no service endpoints: the host app has its own.
    for path in ["/api/chats/sessions/", "/healthz", "/widget.js"] {
        assert_eq!(app.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }

    // The host's own handler, streaming with the public SSE helper.
    let first = app
        .send(
            Method::POST,
            "/ask",
            &[],
            Some(("text/plain", "What is Colloquy?".into())),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.header("content-type"), Some("text/event-stream"));
    assert!(first.text.starts_with("retry: 1000\n\n"), "{}", first.text);
    assert_eq!(first.streamed_text(), "Echo: What is Colloquy?");
    let done = first.events().pop().expect("events");
    assert_eq!(done["done"], true);
    assert_eq!(done["finish_reason"], "stop");
    assert_eq!(
        stream
            .events()
            .pop()
            .expect("events")
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        done.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        "the same event fields as the API's own stream"
    );
    let session = first
        .header("x-session-id")
        .expect("X-Session-Id")
        .to_owned();
    let second = app
        .send(
            Method::POST,
            "/ask",
            &[("x-session-id", &session)],
            Some(("text/plain", "And then?".into())),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_eq!(second.header("x-session-id"), Some(session.as_str()));
    assert_eq!(second.streamed_text(), "Echo: And then?");

    // Both turns are in the session, readable through the mounted API.
    let messages = app
        .get(&format!("{API}/messages/?session_id={session}"))
        .await;
    assert_eq!(messages.status, StatusCode::OK, "{}", messages.text);
    let texts: Vec<(String, String)> = messages
        .json()
        .as_array()
        .expect("an array")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default().to_owned(),
                m["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("user", "What is Colloquy?"),
        ("assistant", "Echo: What is Colloquy?"),
        ("user", "And then?"),
        ("assistant", "Echo: And then?"),
    ];
    assert_eq!(
        texts,
        expected.map(|(r, m)| (r.to_owned(), m.to_owned())),
        "{}",
        messages.text
    );

    // Failures are the API's JSON errors.
    let empty = app
        .send(Method::POST, "/ask", &[], Some(("text/plain", "  ".into())))
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{}", empty.text);
    assert_eq!(empty.json()["code"], "invalid_field");
    assert_eq!(empty.json()["field"], "message");
    let unknown = app
        .send(
            Method::POST,
            "/ask",
            &[("x-session-id", "no-such-session")],
            Some(("text/plain", "hello?".into())),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    assert_eq!(unknown.json()["code"], "session_not_found");

    app.stop().await;
}

#[tokio::test]
async fn axum_mount_serves_its_routes_and_the_chat_api() {
    mounted_example_works(env!("CARGO_BIN_EXE_axum-mount")).await;
}

#[tokio::test]
async fn hyper_mount_serves_its_routes_and_the_chat_api() {
    mounted_example_works(env!("CARGO_BIN_EXE_hyper-mount")).await;
}
