//! Graceful shutdown: stop accepting, let streams finish, store every answer.

use std::time::Duration;

use colloquy_core::ports::ChatStore;
use colloquy_http::HttpConfig;
use http::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::support::client::full;
use crate::support::doubles::GatedModel;
use crate::support::sse::SseReader;
use crate::support::{eventually, Setup, TestServer};

async fn start_stream(server: &TestServer) -> (SseReader, Uuid) {
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let response = c
        .send(
            Method::POST,
            "/api/chats/messages/chat/stream/",
            &[("content-type", "application/json")],
            full(json!({"session_id": "s", "message": "slow answer here"}).to_string()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut reader = SseReader::new(response.into_body());
    let first = reader.next_event().await.expect("first event").json();
    let id = Uuid::parse_str(first["response_id"].as_str().expect("id")).expect("uuid");
    (reader, id)
}

#[tokio::test]
async fn streams_in_flight_finish_and_are_stored() {
    let (model, gate) = GatedModel::new();
    let mut server = Setup::default().model(model).start().await;
    let (mut reader, response_id) = start_stream(&server).await;

    server.begin_shutdown();
    let addr = server.addr;
    eventually("the listener is closed", || async move {
        tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;

    gate.open();
    let rest = reader.rest().await;
    let last = rest.last().expect("events").json();
    assert_eq!(last["done"], true);
    assert_eq!(last["finish_reason"], "stop");
    server.finished().await;

    let store = server.store.as_ref().expect("memory store");
    let stored = store
        .message(response_id)
        .await
        .expect("store answers")
        .expect("answer stored")
        .0;
    assert_eq!(stored.message, "Echo: slow answer here");
}

#[tokio::test]
async fn after_the_grace_period_generations_are_cancelled_and_stored() {
    let (model, _gate) = GatedModel::new(); // never opened
    let mut server = Setup {
        config: HttpConfig {
            shutdown_grace: Duration::from_millis(100),
            ..HttpConfig::default()
        },
        ..Setup::default().model(model)
    }
    .start()
    .await;
    let (mut reader, response_id) = start_stream(&server).await;
    server.begin_shutdown();
    let rest = reader.rest().await;
    let last = rest.last().expect("a last event").json();
    assert_eq!(last["done"], true);
    assert_eq!(last["finish_reason"], "cancelled");
    server.finished().await;

    let store = server.store.as_ref().expect("memory store");
    let stored = store
        .message(response_id)
        .await
        .expect("store answers")
        .expect("partial answer stored")
        .0;
    assert_eq!(stored.message, "Echo: ");
    assert_eq!(stored.metadata["finish_reason"], "cancelled");
}
