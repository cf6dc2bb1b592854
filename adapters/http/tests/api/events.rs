//! `GET /api/chats/sessions/{id}/events/`: an event for every stored change from
//! every source, in write order, no leak between sessions, `Last-Event-ID` replay
//! from the store, access in public mode, the per-session share, keep-alive and the
//! end of a deleted or expired session.

use std::time::Duration;

use colloquy_core::access::AccessMode;
use colloquy_http::{AdminToken, HttpConfig};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::handoff::{call, server, TOKEN};
use crate::support::client::full;
use crate::support::sse::{Event, Item, SseReader};
use crate::support::{Setup, TestServer};

fn events_path(session: &str) -> String {
    format!("/api/chats/sessions/{session}/events/")
}

/// Opens a session's events as a visitor or the operator, with an optional
/// `Last-Event-ID`.
async fn open(
    s: &TestServer,
    admin: bool,
    session: &str,
    last_event_id: Option<&str>,
) -> http::Response<hyper::body::Incoming> {
    let bearer = format!("Bearer {TOKEN}");
    let mut headers = Vec::new();
    if admin {
        headers.push(("authorization", bearer.as_str()));
    }
    if let Some(id) = last_event_id {
        headers.push(("last-event-id", id));
    }
    s.client
        .send(Method::GET, &events_path(session), &headers, full(""))
        .await
}

/// Opens the events and reads the first one, which is the session.
async fn watch(
    s: &TestServer,
    admin: bool,
    session: &str,
    last_event_id: Option<&str>,
) -> SseReader {
    let response = open(s, admin, session, last_event_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "text/event-stream"
    );
    let mut reader = SseReader::new(response.into_body());
    let first = reader.next_event().await.expect("the session first");
    assert_eq!(first.event_type, "session");
    reader
}

/// The next event that is not a `session` event.
async fn next_non_session(reader: &mut SseReader) -> Event {
    loop {
        let event = reader.next_event().await.expect("an event");
        if event.event_type != "session" {
            return event;
        }
    }
}

/// An `open` server that also knows the admin token.
async fn open_server() -> TestServer {
    Setup {
        config: HttpConfig {
            admin_token: Some(AdminToken::new(TOKEN).expect("strong token")),
            ..HttpConfig::default()
        },
        ..Setup::default()
    }
    .start()
    .await
}

/// Posts a message (as `role`; an `assistant` one is an operator's reply, with the
/// admin token) and returns its id.
async fn post(s: &TestServer, session: &str, text: &str, role: &str) -> String {
    post_as(s, role != "user", session, text, role).await
}

async fn post_as(s: &TestServer, admin: bool, session: &str, text: &str, role: &str) -> String {
    let mut body = json!({"session_id": session, "message": text, "role": role});
    if role == "assistant" {
        body["metadata"] = json!({"operator": "Ada"});
    }
    let reply = call(s, admin, Method::POST, "/api/chats/messages/", Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.json()["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn every_source_is_an_event_in_write_order() {
    let s = open_server().await;
    let session = s
        .client
        .create_session(&json!({"session_id": "watched"}))
        .await;
    let response = open(&s, false, "watched", None).await;
    let mut reader = SseReader::new(response.into_body());
    // `retry:` is no event; the session comes first.
    let first = reader.next_event().await.expect("session");
    assert_eq!(first.event_type, "session");
    let first = first.json();
    assert_eq!(first["id"], session["id"]);
    assert_eq!(first["responder"], "ai");
    assert_eq!(first["active_response_id"], Value::Null);

    // POST /messages/ (visitor), chat (the visitor's message and the answer), an
    // operator's reply.
    let note = post(&s, "watched", "note", "user").await;
    let chat = s
        .client
        .post(
            "/api/chats/messages/chat/",
            &json!({"session_id": "watched", "message": "hi"}),
        )
        .await
        .json();
    let operator = post(&s, "watched", "Ada here", "assistant").await;
    let expected = [
        (note.as_str(), "user", "note"),
        (chat["message_id"].as_str().expect("id"), "user", "hi"),
        (
            chat["response_id"].as_str().expect("id"),
            "assistant",
            "Echo: hi",
        ),
        (operator.as_str(), "assistant", "Ada here"),
    ];
    for (id, role, text) in expected {
        let event = next_non_session(&mut reader).await;
        assert_eq!(event.event_type, "message");
        assert_eq!(event.last_event_id, id, "the event id is the message id");
        let message = event.json();
        assert_eq!(message["id"], id);
        assert_eq!(message["role"], role);
        assert_eq!(message["message"], text);
        assert_eq!(
            message["session"]["id"], session["id"],
            "as GET /messages/{{id}}/ shows it"
        );
    }
    // The message event carries the operator's name.
    let got = s
        .client
        .get(&format!("/api/chats/messages/{operator}/"))
        .await
        .json();
    assert_eq!(got["metadata"]["operator"], "Ada");

    // Deleting a message, changing the session, deleting it.
    let deleted = s
        .client
        .delete(&format!("/api/chats/messages/{note}/"))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let event = next_non_session(&mut reader).await;
    assert_eq!(event.event_type, "message_deleted");
    assert_eq!(event.json(), json!({"id": note}));
    let patched = s
        .client
        .patch(
            "/api/chats/sessions/watched/",
            &json!({"metadata": {"tier": "gold"}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let changed = loop {
        let event = reader.next_event().await.expect("session change");
        assert_eq!(event.event_type, "session", "{event:?}");
        if event.json()["metadata"]["tier"] == "gold" {
            break event.json();
        }
    };
    assert_eq!(changed["id"], session["id"]);
    let gone = s.client.delete("/api/chats/sessions/watched/").await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let rest = reader.rest().await;
    let last = rest.last().expect("a last event");
    assert_eq!(last.event_type, "session_deleted");
    assert_eq!(last.json(), json!({"id": session["id"]}));
    assert!(
        rest.iter()
            .all(|e| e.event_type == "session" || e.event_type == "session_deleted"),
        "{rest:?}"
    );
    assert!(reader.broken().is_none(), "the server ended the stream");
}

#[tokio::test]
async fn a_streamed_answer_is_announced_as_it_starts_and_when_stored() {
    let s = open_server().await;
    s.client
        .create_session(&json!({"session_id": "streamed"}))
        .await;
    let mut reader = watch(&s, false, "streamed", None).await;
    let stream = s
        .client
        .post(
            "/api/chats/messages/chat/stream/",
            &json!({"session_id": "streamed", "message": "hello"}),
        )
        .await;
    assert_eq!(stream.status, StatusCode::OK);
    let mut messages = Vec::new();
    let mut sessions = 0;
    while messages.len() < 2 {
        let event = reader.next_event().await.expect("event");
        match event.event_type.as_str() {
            "message" => messages.push(event.json()),
            "session" => sessions += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["message"], "Echo: hello");
    // The answer's start is a session event (it may come after the messages, as
    // the stream reads the messages when their doorbell rings).
    if sessions == 0 {
        let event = reader.next_event().await.expect("the answer's start");
        assert_eq!(event.event_type, "session");
    }
}

#[tokio::test]
async fn no_event_leaks_to_another_session() {
    let s = open_server().await;
    s.client
        .create_session(&json!({"session_id": "mine"}))
        .await;
    s.client
        .create_session(&json!({"session_id": "theirs"}))
        .await;
    let mut mine = watch(&s, false, "mine", None).await;
    let mut theirs = watch(&s, false, "theirs", None).await;
    for i in 0..3 {
        post(&s, "theirs", &format!("theirs {i}"), "user").await;
    }
    let own = post(&s, "mine", "mine 0", "user").await;
    let event = next_non_session(&mut mine).await;
    assert_eq!(
        event.last_event_id, own,
        "the other session's messages never show"
    );
    for i in 0..3 {
        let event = next_non_session(&mut theirs).await;
        assert_eq!(event.json()["message"], format!("theirs {i}"));
    }
}

#[tokio::test]
async fn last_event_id_replays_exactly_the_missed_messages() {
    let s = open_server().await;
    s.client
        .create_session(&json!({"session_id": "dropped"}))
        .await;
    let mut reader = watch(&s, false, "dropped", None).await;
    let seen = post(&s, "dropped", "seen", "user").await;
    let event = next_non_session(&mut reader).await;
    assert_eq!(event.last_event_id, seen);
    drop(reader); // The connection drops.

    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(post(&s, "dropped", &format!("missed {i}"), "user").await);
    }
    for via_query in [false, true] {
        // The second reconnect also missed the first one's live message.
        let expected = missed.clone();
        let mut reader = if via_query {
            let response = s
                .client
                .send(
                    Method::GET,
                    &format!("{}?last_event_id={seen}", events_path("dropped")),
                    &[],
                    full(""),
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
            let mut reader = SseReader::new(response.into_body());
            assert_eq!(
                reader.next_event().await.expect("session").event_type,
                "session"
            );
            reader
        } else {
            watch(&s, false, "dropped", Some(&seen)).await
        };
        let mut replayed = Vec::new();
        for _ in 0..expected.len() {
            let event = next_non_session(&mut reader).await;
            assert_eq!(event.event_type, "message");
            replayed.push(event.last_event_id.clone());
        }
        assert_eq!(replayed, expected, "exactly the missed ones, in order");
        // Then live, once: the next event is the new message, no duplicate before it.
        let live = post(&s, "dropped", &format!("live {via_query}"), "user").await;
        let event = next_non_session(&mut reader).await;
        assert_eq!(event.last_event_id, live);
        missed.push(live);
    }
}

#[tokio::test]
async fn a_bad_last_event_id_is_refused() {
    let s = open_server().await;
    s.client.create_session(&json!({"session_id": "one"})).await;
    s.client.create_session(&json!({"session_id": "two"})).await;
    let elsewhere = post(&s, "two", "x", "user").await;
    for bad in ["not-a-uuid", elsewhere.as_str()] {
        let response = open(&s, false, "one", Some(bad)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let missing = s.client.get(&events_path("nobody")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "session_not_found");
    let head = s
        .client
        .call(Method::HEAD, &events_path("one"), &[], full(""))
        .await;
    assert_eq!(head.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn in_public_mode_a_visitor_watches_only_what_they_hold() {
    let s = server(AccessMode::Public).await;
    let mine = call(
        &s,
        false,
        Method::POST,
        "/api/chats/sessions/",
        Some(json!({})),
    )
    .await
    .json();
    let sid = mine["session_id"].as_str().expect("sid").to_owned();
    let custom = call(
        &s,
        true,
        Method::POST,
        "/api/chats/sessions/",
        Some(json!({"session_id": "staff-only"})),
    )
    .await;
    assert_eq!(custom.status, StatusCode::CREATED);

    let refused = open(&s, false, "staff-only", None).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let unknown = open(&s, false, "abcdefghijklmnopqrstuvwxyz", None).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let mut operator = watch(&s, true, "staff-only", None).await;
    let mut visitor = watch(&s, false, &sid, None).await;
    let mut operator_on_visitor = watch(&s, true, &sid, None).await;

    // The visitor asks for a person; the operator takes over and replies.
    let asked = call(
        &s,
        false,
        Method::POST,
        &format!("/api/chats/sessions/{sid}/handoff/"),
        None,
    )
    .await;
    assert_eq!(asked.status, StatusCode::OK);
    let event = visitor.next_event().await.expect("session");
    assert_eq!(event.event_type, "session");
    assert_eq!(event.json()["responder"], "human");
    let reply = post(&s, &sid, "Hi, Ada here.", "assistant").await;
    let event = next_non_session(&mut visitor).await;
    assert_eq!(event.last_event_id, reply);
    let message = event.json();
    assert_eq!(message["metadata"]["operator"], "Ada");
    assert_eq!(
        message["session"],
        Value::Null,
        "as a visitor's GET /messages/{{id}}/"
    );
    let event = next_non_session(&mut operator_on_visitor).await;
    assert_eq!(
        event.json()["session"]["session_id"],
        sid.as_str(),
        "the operator sees the session"
    );

    // The operator's other session stayed silent.
    let own = post_as(&s, true, "staff-only", "internal", "user").await;
    assert_eq!(next_non_session(&mut operator).await.last_event_id, own);
}

#[tokio::test]
async fn a_session_has_a_bounded_number_of_visitor_streams() {
    let s = Setup {
        config: HttpConfig {
            max_event_streams_per_session: 2,
            admin_token: Some(AdminToken::new(TOKEN).expect("strong token")),
            ..HttpConfig::default()
        },
        ..Setup::default()
    }
    .start()
    .await;
    s.client
        .create_session(&json!({"session_id": "busy"}))
        .await;
    let one = watch(&s, false, "busy", None).await;
    let _two = watch(&s, false, "busy", None).await;
    let third = s.client.get(&events_path("busy")).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.json()["code"], "too_many_streams");
    // The operator is not counted.
    let _operator = watch(&s, true, "busy", None).await;
    drop(one);
    crate::support::eventually("a place is given back", || async {
        let response = open(&s, false, "busy", None).await;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test]
async fn silence_sends_keep_alives_and_an_expired_session_ends_the_stream() {
    let s = Setup {
        config: HttpConfig {
            sse_keep_alive: Duration::from_millis(200),
            ..HttpConfig::default()
        },
        ..Setup::default()
    }
    .start()
    .await;
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    let session = s
        .client
        .create_session(&json!({"session_id": "short", "expires_at": expires.to_rfc3339()}))
        .await;
    let response = open(&s, false, "short", None).await;
    let mut reader = SseReader::new(response.into_body());
    let mut comments = 0;
    let last = loop {
        match reader.next_item().await.expect("an item before the end") {
            Item::Comment(text) => {
                assert_eq!(text, "keep-alive");
                comments += 1;
            }
            Item::Event(event) if event.event_type == "expired" => break event,
            Item::Event(event) => assert_eq!(event.event_type, "session"),
        }
    };
    assert!(comments >= 1, "keep-alives were sent while silent");
    assert_eq!(last.json(), json!({"id": session["id"]}));
    assert!(reader.next_item().await.is_none(), "the stream ends");
}

#[tokio::test]
async fn a_client_has_a_bounded_number_of_streams() {
    let s = Setup {
        config: HttpConfig {
            max_event_streams_per_ip: 2,
            admin_token: Some(AdminToken::new(TOKEN).expect("strong token")),
            ..HttpConfig::default()
        },
        ..Setup::default()
    }
    .start()
    .await;
    for name in ["a", "b", "c"] {
        s.client.create_session(&json!({"session_id": name})).await;
    }
    let _a = watch(&s, false, "a", None).await;
    let _b = watch(&s, false, "b", None).await;
    let third = s.client.get(&events_path("c")).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.json()["code"], "too_many_streams");
    // Other requests of the client are served, and the operator is not counted.
    assert_eq!(
        s.client.get("/api/chats/sessions/c/").await.status,
        StatusCode::OK
    );
    let _operator = watch(&s, true, "c", None).await;
}
