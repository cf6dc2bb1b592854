//! The SSE chat stream: format as a browser parses it, incremental delivery,
//! keep-alive, error events, and client disconnects.

use std::time::Duration;

use colloquy_http::HttpConfig;
use http::{Method, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::support::client::full;
use crate::support::doubles::{FailingModel, Failure, GatedModel};
use crate::support::sse::{Item, SseReader};
use crate::support::{eventually, Client, Setup};

async fn open(c: &Client, body: &Value) -> http::Response<Incoming> {
    c.send(
        Method::POST,
        "/api/chats/messages/chat/stream/",
        &[("content-type", "application/json")],
        full(body.to_string()),
    )
    .await
}

fn header<'a>(r: &'a http::Response<Incoming>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn post_stream_events_are_exactly_as_documented() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let response = open(c, &json!({"session_id": "s", "message": "one two  three"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&response, "cache-control"), Some("no-cache"));
    assert_eq!(header(&response, "x-accel-buffering"), Some("no"));
    let events = SseReader::new(response.into_body()).rest().await;
    assert!(events.len() >= 4, "one event per chunk: {events:?}");

    let first = events[0].json();
    let (message_id, response_id) = (first["message_id"].clone(), first["response_id"].clone());
    let mut text = String::new();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.event_type, "message");
        let data = event.json();
        let chunk_len = data["chunk"].as_str().map_or(0, str::len);
        assert_eq!(
            event.last_event_id,
            format!(
                "{}:{i}:{}",
                response_id.as_str().expect("id"),
                text.len() + chunk_len
            ),
            "id: is <response_id>:<seq>:<bytes of the answer so far>"
        );
        let data = event.json();
        assert_eq!(data["message_id"], message_id);
        assert_eq!(data["response_id"], response_id);
        let last = i + 1 == events.len();
        assert_eq!(data["done"], last);
        if last {
            assert_eq!(data["chunk"], "");
            assert_eq!(data["finish_reason"], "stop");
            assert!(data.get("error").is_none());
        } else {
            assert!(data.get("finish_reason").is_none());
            text.push_str(data["chunk"].as_str().expect("chunk"));
        }
    }
    assert_eq!(text, "Echo: one two  three");
    let stored = c
        .get(&format!(
            "/api/chats/messages/{}/",
            response_id.as_str().expect("id")
        ))
        .await
        .json();
    assert_eq!(
        stored["message"], text,
        "the chunks concatenate to the stored answer"
    );
    assert_eq!(stored["role"], "assistant");
    let user = c
        .get(&format!(
            "/api/chats/messages/{}/",
            message_id.as_str().expect("id")
        ))
        .await
        .json();
    assert_eq!(user["message"], "one two  three");
}

#[tokio::test]
async fn get_stream_for_event_source() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let response = c
        .send(
            Method::GET,
            "/api/chats/messages/chat/stream?session_id=s&message=caf%C3%A9+%26+more",
            &[("accept", "text/event-stream")],
            full(""),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = SseReader::new(response.into_body()).rest().await;
    let text: String = events
        .iter()
        .map(|e| e.json()["chunk"].as_str().expect("chunk").to_owned())
        .collect();
    assert_eq!(text, "Echo: café & more");

    let missing = c.get("/api/chats/messages/chat/stream/?session_id=s").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.error_code(), "missing_field");
    assert_eq!(missing.json()["field"], "message");
}

#[tokio::test]
async fn validation_errors_come_before_the_stream_as_json() {
    let server = Setup::default().start().await;
    let c = &server.client;
    let r = c
        .post(
            "/api/chats/messages/chat/stream/",
            &json!({"session_id": "none", "message": "hi"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "session_not_found");
    let r = c
        .post(
            "/api/chats/messages/chat/stream/",
            &json!({"session_id": "none", "message": ""}),
        )
        .await;
    assert_eq!(r.error_code(), "invalid_field");
}

#[tokio::test]
async fn the_first_event_arrives_while_the_model_is_still_producing() {
    let (model, gate) = GatedModel::new();
    let server = Setup::default().model(model).start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let response = open(c, &json!({"session_id": "s", "message": "a b c d"})).await;
    let mut reader = SseReader::new(response.into_body());
    // The gate holds every chunk after the first: the model cannot have finished.
    let first = reader.next_event().await.expect("first event").json();
    assert_eq!(first["chunk"], "Echo: ");
    assert_eq!(first["done"], false);
    let response_id = first["response_id"].as_str().expect("id").to_owned();
    let not_yet = c.get(&format!("/api/chats/messages/{response_id}/")).await;
    assert_eq!(
        not_yet.status,
        StatusCode::NOT_FOUND,
        "the answer is not stored yet"
    );

    gate.open();
    let rest = reader.rest().await;
    let text: String = std::iter::once(first)
        .chain(rest.iter().map(|e| e.json()))
        .map(|d| d["chunk"].as_str().expect("chunk").to_owned())
        .collect();
    assert_eq!(text, "Echo: a b c d");
    let stored = c.get(&format!("/api/chats/messages/{response_id}/")).await;
    assert_eq!(stored.json()["message"], "Echo: a b c d");
}

#[tokio::test]
async fn a_client_disconnect_does_not_stop_the_generation() {
    let (model, gate) = GatedModel::new();
    let server = Setup::default().model(model).start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let response = open(
        c,
        &json!({"session_id": "s", "message": "keep going please"}),
    )
    .await;
    let mut reader = SseReader::new(response.into_body());
    let first = reader.next_event().await.expect("first event").json();
    let response_id = first["response_id"].as_str().expect("id").to_owned();
    drop(reader); // the tab closes mid-answer

    gate.open();
    let path = format!("/api/chats/messages/{response_id}/");
    let stored = eventually("the complete answer is stored", || async {
        let r = c.get(&path).await;
        (r.status == StatusCode::OK).then(|| r.json())
    })
    .await;
    assert_eq!(stored["message"], "Echo: keep going please");
    assert_eq!(stored["metadata"]["finish_reason"], "stop");
}

#[tokio::test]
async fn silence_is_filled_with_keep_alive_comments() {
    let (model, gate) = GatedModel::new();
    let server = Setup {
        config: HttpConfig {
            sse_keep_alive: Duration::from_millis(20),
            ..HttpConfig::default()
        },
        ..Setup::default().model(model)
    }
    .start()
    .await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let response = open(c, &json!({"session_id": "s", "message": "x y"})).await;
    let mut reader = SseReader::new(response.into_body());
    // (A keep-alive may even come before it on a loaded machine.)
    reader.next_event().await.expect("first event");
    // The model is blocked at the gate: the next thing on the wire is a comment.
    assert_eq!(
        reader.next_item().await,
        Some(Item::Comment("keep-alive".to_owned()))
    );
    gate.open();
    let rest = reader.rest().await;
    assert_eq!(rest.last().expect("done").json()["done"], true);
}

#[tokio::test]
async fn a_model_failure_mid_stream_ends_with_an_error_event() {
    let server = Setup::default()
        .model(FailingModel(Failure::MidStream { after: 2 }))
        .start()
        .await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let response = open(c, &json!({"session_id": "s", "message": "a b c d e"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = SseReader::new(response.into_body()).rest().await;
    assert_eq!(events.len(), 3, "{events:?}");
    let last = events[2].json();
    assert_eq!(last["done"], true);
    assert_eq!(last["chunk"], "");
    assert_eq!(last["error"], "llm_unavailable");
    assert!(last.get("finish_reason").is_none(), "never a clean done");
    assert_eq!(
        events[2].last_event_id,
        format!("{}:2:8", last["response_id"].as_str().expect("id")),
        "two chunks, 8 bytes, then the error"
    );
    let stored = c
        .get(&format!(
            "/api/chats/messages/{}/",
            last["response_id"].as_str().expect("id")
        ))
        .await
        .json();
    assert_eq!(stored["message"], "Echo: a ");
    assert_eq!(stored["metadata"]["finish_reason"], "error");
}

#[tokio::test]
async fn a_model_that_fails_at_once_gives_a_single_error_event() {
    for (failure, code) in [
        (Failure::Unavailable, "llm_unavailable"),
        (Failure::Timeout, "llm_timeout"),
    ] {
        let server = Setup::default().model(FailingModel(failure)).start().await;
        let c = &server.client;
        c.create_session(&json!({"session_id": "s"})).await;
        let response = open(c, &json!({"session_id": "s", "message": "hi"})).await;
        assert_eq!(response.status(), StatusCode::OK);
        let events = SseReader::new(response.into_body()).rest().await;
        assert_eq!(events.len(), 1);
        let data = events[0].json();
        assert_eq!(
            events[0].last_event_id,
            format!("{}:0:0", data["response_id"].as_str().expect("id"))
        );
        assert_eq!(
            (data["done"].clone(), data["error"].clone()),
            (json!(true), json!(code))
        );
    }
}

#[tokio::test]
async fn many_concurrent_streams_each_get_their_own_complete_answer() {
    let server = Setup::default().start().await;
    let c = server.client.clone();
    c.create_session(&json!({"session_id": "s"})).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                let message = format!("stream number {i}");
                let response = open(&c, &json!({"session_id": "s", "message": message})).await;
                let events = SseReader::new(response.into_body()).rest().await;
                let text: String = events
                    .iter()
                    .map(|e| e.json()["chunk"].as_str().expect("chunk").to_owned())
                    .collect();
                (message, text, events.last().expect("done").json())
            })
        })
        .collect();
    for task in tasks {
        let (message, text, last) = task.await.expect("stream task");
        assert_eq!(text, format!("Echo: {message}"));
        assert_eq!(last["finish_reason"], "stop");
    }
    let list = c
        .get("/api/chats/messages/?session_id=s&role=assistant")
        .await
        .json();
    assert_eq!(list.as_array().map(Vec::len), Some(16));
}
