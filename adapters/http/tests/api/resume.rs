//! Streams that survive the network: resume by response id with `Last-Event-ID`
//! (live and after completion), the `EventSource` reconnect rule (resume, never
//! re-send), and cancel from another connection.

use std::future::Future;
use std::time::Duration;

use http::{Method, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::support::client::full;
use crate::support::doubles::GatedModel;
use crate::support::sse::{Event, SseReader};
use crate::support::{Client, Setup};

/// Every wait of these tests is bounded.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

async fn start(c: &Client, message: &str) -> SseReader {
    let body = json!({"session_id": "s", "message": message}).to_string();
    let response = c
        .send(
            Method::POST,
            "/api/chats/messages/chat/stream/",
            &[("content-type", "application/json")],
            full(body),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    SseReader::new(response.into_body())
}

async fn get(c: &Client, path: &str, last_event_id: Option<&str>) -> http::Response<Incoming> {
    let headers: Vec<(&str, &str)> = last_event_id
        .map(|id| ("last-event-id", id))
        .into_iter()
        .collect();
    c.send(Method::GET, path, &headers, full("")).await
}

async fn next(reader: &mut SseReader) -> Event {
    within("the next event", reader.next_event())
        .await
        .expect("an event")
}

async fn rest(reader: &mut SseReader) -> Vec<Event> {
    within("the rest of the stream", reader.rest()).await
}

fn resume_path(response_id: &str) -> String {
    format!("/api/chats/messages/chat/stream/{response_id}/")
}

async fn user_messages(c: &Client) -> usize {
    let list: Value = c
        .get("/api/chats/messages/?session_id=s&role=user")
        .await
        .json();
    list.as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_dropped_stream_resumes_with_exactly_the_missing_events_live_and_after_completion() {
    let (model, gate) = GatedModel::new();
    let server = Setup::default().model(model).start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let mut original = start(c, "one two three four").await;
    let first = next(&mut original).await;
    gate.release(1);
    let second = next(&mut original).await;
    drop(original); // the train enters a tunnel after two events
    let response_id = first.json()["response_id"].as_str().expect("id").to_owned();

    // Resume while the answer is still being generated.
    let resumed = get(c, &resume_path(&response_id), Some(&second.last_event_id)).await;
    assert_eq!(resumed.status(), StatusCode::OK);
    let mut resumed = SseReader::new(resumed.into_body());
    // A reader from the first event, for reference.
    let mut whole = SseReader::new(get(c, &resume_path(&response_id), None).await.into_body());
    gate.open();
    let tail = rest(&mut resumed).await;
    let all = rest(&mut whole).await;
    assert_eq!(
        all[0], first,
        "a reader without Last-Event-ID gets every event"
    );
    assert_eq!(all[1], second);
    assert_eq!(
        tail,
        all[2..],
        "exactly the events after the last one received"
    );
    let text: String = all
        .iter()
        .map(|e| e.json()["chunk"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(text, "Echo: one two three four");

    // After completion: the same resume again, and `?last_event_id=` works too.
    let again = get(c, &resume_path(&response_id), Some(&second.last_event_id)).await;
    assert_eq!(rest(&mut SseReader::new(again.into_body())).await, tail);
    let by_query = format!(
        "{}?last_event_id={}",
        resume_path(&response_id),
        second.last_event_id
    );
    assert_eq!(
        rest(&mut SseReader::new(
            get(c, &by_query, None).await.into_body()
        ))
        .await,
        tail
    );
    // Nothing after the last event: 204, which also stops an EventSource.
    let last = &all[all.len() - 1].last_event_id;
    assert_eq!(
        get(c, &resume_path(&response_id), Some(last))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn an_event_source_reconnect_resumes_and_never_stores_the_message_twice() {
    let (model, gate) = GatedModel::new();
    let server = Setup::default().model(model).start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let url = "/api/chats/messages/chat/stream/?session_id=s&message=hello%20there";
    let mut first_try = SseReader::new(get(c, url, None).await.into_body());
    let first = next(&mut first_try).await;
    drop(first_try);
    // The browser reconnects to the same URL, sending the last id it saw.
    let reconnect = get(c, url, Some(&first.last_event_id)).await;
    assert_eq!(reconnect.status(), StatusCode::OK);
    gate.open();
    let events = rest(&mut SseReader::new(reconnect.into_body())).await;
    assert_eq!(
        events[0].json()["response_id"],
        first.json()["response_id"],
        "the same answer"
    );
    assert!(events
        .last()
        .is_some_and(|e| e.json()["finish_reason"] == "stop"));
    assert_eq!(user_messages(c).await, 1, "the message was stored once");
    // After `done` the browser would reconnect again: 204 makes it stop.
    let last = &events[events.len() - 1].last_event_id;
    assert_eq!(
        get(c, url, Some(last)).await.status(),
        StatusCode::NO_CONTENT
    );
    // A bare sequence number attaches to the running answer, if any: none now.
    assert_eq!(
        get(c, url, Some("3")).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        user_messages(c).await,
        1,
        "reconnects never store the message"
    );
    let garbage = get(c, url, Some("not an id")).await;
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cancel_from_another_connection_ends_every_attached_stream() {
    let (model, _gate) = GatedModel::new(); // never opened: only cancel ends it
    let server = Setup::default().model(model).start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let mut original = start(c, "a long answer").await;
    let first = next(&mut original).await;
    let response_id = first.json()["response_id"].as_str().expect("id").to_owned();
    let mut follower = SseReader::new(get(c, &resume_path(&response_id), None).await.into_body());
    assert_eq!(next(&mut follower).await, first);

    let session = c.get("/api/chats/sessions/s/").await.json();
    assert_eq!(
        session["active_response_id"],
        json!(response_id),
        "the session names its running answer"
    );

    let cancel_path = format!("{}cancel/", resume_path(&response_id));
    let cancelled = c.post(&cancel_path, &json!({})).await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED);
    for reader in [&mut original, &mut follower] {
        let last = rest(reader).await.pop().expect("a terminal event").json();
        assert_eq!(
            (last["done"].clone(), last["finish_reason"].clone()),
            (json!(true), json!("cancelled"))
        );
    }
    let stored = c
        .get(&format!("/api/chats/messages/{response_id}/"))
        .await
        .json();
    assert_eq!(stored["message"], "Echo: ", "the partial text is kept");
    assert_eq!(stored["metadata"]["finish_reason"], "cancelled");
    let session = c.get("/api/chats/sessions/s/").await.json();
    assert_eq!(session["active_response_id"], json!(null));

    let twice = c.post(&cancel_path, &json!({})).await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert_eq!(twice.error_code(), "response_complete");
    for unknown in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_owned()] {
        let r = c
            .post(&format!("{}cancel/", resume_path(&unknown)), &json!({}))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{unknown}");
        let r = get(c, &resume_path(&unknown), None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{unknown}");
    }
}

#[tokio::test]
async fn answers_of_deleted_sessions_cannot_be_resumed() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let events = rest(&mut start(c, "hi").await).await;
    let response_id = events[0].json()["response_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        get(c, &resume_path(&response_id), None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        c.delete("/api/chats/sessions/s/").await.status,
        StatusCode::NO_CONTENT
    );
    let gone = c.get(&resume_path(&response_id)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), "message_not_found");
}
