//! Human handoff across two `colloquy` processes sharing one store: on one Redis
//! (a key prefix of the test's own) and on one PostgreSQL (a database of the
//! test's own). A visitor on A asks for a person, an operator on B takes over and
//! replies, the visitor's events stream on A shows the reply (the latency is
//! printed; the test's deadline is 5 s), the visitor's next chat generates
//! nothing, the operator hands back, and the model answers again.
//!
//! And on SQLite: the visitor's instance is killed and restarted; reconnecting
//! with `Last-Event-ID` replays exactly the messages missed, in order, once.
//!
//! A missing Redis or PostgreSQL skips its test locally and fails it with
//! `COLLOQUY_REQUIRE_SERVICES=1`.

#![allow(missing_docs)]

mod common;

use std::time::{Duration, Instant};

use colloquy_test_support::postgres::{self, Database};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use common::{
    call_with, client, delete_prefix, open_stream, redis_answers, skip_missing, temp_dir, unique,
    HttpClient, Server, SseEvent, SseStream,
};

const SHARED_REDIS: &str = "redis://127.0.0.1:6379/0";
const TOKEN: &str = "handoff-test-admin-token-0123456789abcdef";
/// How long the operator's reply may take to reach the visitor on the other instance.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(5);

/// A request as the visitor (`admin = false`) or the operator; must be answered.
async fn send(
    c: &HttpClient,
    admin: bool,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let bearer = format!("Bearer {TOKEN}");
    let headers: Vec<(&str, &str)> = if admin {
        vec![("authorization", bearer.as_str())]
    } else {
        Vec::new()
    };
    let answer = call_with(c, method.clone(), url, &headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: no answer: {e}"));
    (answer.status, answer.body)
}

/// The next event that is not `session`, within `deadline`.
async fn next_message(stream: &mut SseStream, deadline: Duration) -> SseEvent {
    tokio::time::timeout(deadline, async {
        loop {
            let event = stream.next_event().await.expect("the stream is open");
            if event.event_type != "session" {
                return event;
            }
        }
    })
    .await
    .expect("a message event within the deadline")
}

/// The next `session` event whose responder is `responder`.
async fn next_responder(stream: &mut SseStream, responder: &str) -> Value {
    tokio::time::timeout(common::DEADLINE, async {
        loop {
            let event = stream.next_event().await.expect("the stream is open");
            if event.event_type == "session" && event.json()["responder"] == responder {
                return event.json();
            }
        }
    })
    .await
    .expect("the session event within the deadline")
}

/// The whole flow on two instances `a` and `b` of one store.
async fn handoff_across(a: &Server, b: &Server, store: &str) {
    let c = client();
    let (status, session) = send(
        &c,
        false,
        Method::POST,
        &format!("{}/api/chats/sessions/", a.base),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let sid = session["session_id"].as_str().expect("sid").to_owned();
    let api_a = format!("{}/api/chats", a.base);
    let api_b = format!("{}/api/chats", b.base);

    // The visitor watches on A.
    let (status, mut events) = open_stream(
        &c,
        Method::GET,
        &format!("{api_a}/sessions/{sid}/events/"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let first = events.next_event().await.expect("the session first");
    assert_eq!(first.event_type, "session");
    assert_eq!(first.json()["responder"], "ai");

    // A: the visitor asks for a person.
    let (status, asked) = send(
        &c,
        false,
        Method::POST,
        &format!("{api_a}/sessions/{sid}/handoff/"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    assert_eq!(asked["responder"], "human");
    next_responder(&mut events, "human").await;

    // B: the operator sees the request, takes over and replies.
    let (status, seen) = send(
        &c,
        true,
        Method::GET,
        &format!("{api_b}/sessions/{sid}/"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(seen["handoff_requested_at"].is_string(), "{seen}");
    let (status, taken) = send(
        &c,
        true,
        Method::PATCH,
        &format!("{api_b}/sessions/{sid}/"),
        Some(json!({"responder": "human"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    let sent = Instant::now();
    let (status, reply) = send(
        &c,
        true,
        Method::POST,
        &format!("{api_b}/messages/"),
        Some(
            json!({"session_id": sid, "role": "assistant", "message": "Hi, Ada here.",
                    "metadata": {"operator": "Ada"}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let event = next_message(&mut events, DELIVERY_DEADLINE).await;
    let latency = sent.elapsed();
    eprintln!("handoff on {store}: operator reply on B reached the visitor on A in {latency:?} (from the POST, its round trip included)");
    assert_eq!(event.event_type, "message");
    assert_eq!(event.last_event_id, reply["id"].as_str().expect("id"));
    let message = event.json();
    assert_eq!(message["metadata"]["operator"], "Ada");
    assert_eq!(message["message"], "Hi, Ada here.");
    assert_eq!(message["session"], Value::Null, "a public visitor's view");

    // A: the next chat is stored for the person, and nothing is generated.
    let (status, chat) = send(
        &c,
        false,
        Method::POST,
        &format!("{api_a}/messages/chat/"),
        Some(json!({"session_id": sid, "message": "thanks, Ada"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{chat}");
    assert_eq!(chat["responder"], "human");
    assert_eq!(chat["response"], "");
    assert_eq!(chat["response_id"], Value::Null);
    let event = next_message(&mut events, common::DEADLINE).await;
    assert_eq!(event.json()["message"], "thanks, Ada");

    // B: hand back; A: the model answers again.
    let (status, back) = send(
        &c,
        true,
        Method::PATCH,
        &format!("{api_b}/sessions/{sid}/"),
        Some(json!({"responder": "ai"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(back["handoff_requested_at"], Value::Null);
    next_responder(&mut events, "ai").await;
    let (status, chat) = send(
        &c,
        false,
        Method::POST,
        &format!("{api_a}/messages/chat/"),
        Some(json!({"session_id": sid, "message": "one more"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{chat}");
    assert_eq!(chat["responder"], "ai");
    assert_eq!(chat["response"], "Echo: one more");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(next_message(&mut events, common::DEADLINE).await.json()["message"].clone());
    }
    assert_eq!(seen, [json!("one more"), json!("Echo: one more")]);
}

fn public_args<'a>(store: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--store",
        store,
        "--access",
        "public",
        "--admin-token",
        TOKEN,
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_across_two_instances_on_one_redis() {
    if let Err(e) = redis_answers(SHARED_REDIS) {
        skip_missing("Redis at 127.0.0.1:6379", &e);
        return;
    }
    let prefix = format!("{}:", unique("colloquy-handoff-test"));
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            delete_prefix(SHARED_REDIS, &self.0);
        }
    }
    let _cleanup = Cleanup(prefix.clone());
    let dir = temp_dir("handoff-redis");
    let args = public_args(SHARED_REDIS, &["--redis-prefix", prefix.as_str()]);
    let a = Server::start(dir.path(), &args);
    let b = Server::start(dir.path(), &args);
    handoff_across(&a, &b, "Redis").await;
    for server in [a, b] {
        let logs = server.stop();
        assert!(logs.iter().all(|l| !l.contains("panicked")), "{logs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_across_two_instances_on_one_postgres() {
    let db = match Database::create(&postgres::url()).await {
        Ok(db) => db,
        Err(e) => {
            skip_missing("PostgreSQL (COLLOQUY_POSTGRES_URL)", &e);
            return;
        }
    };
    let dir = temp_dir("handoff-pg");
    let args = public_args(db.url(), &[]);
    let a = Server::start(dir.path(), &args);
    let b = Server::start(dir.path(), &args);
    handoff_across(&a, &b, "PostgreSQL").await;
    for server in [a, b] {
        let logs = server.stop();
        assert!(logs.iter().all(|l| !l.contains("panicked")), "{logs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_after_a_restart_on_sqlite_replays_exactly_the_missed_messages() {
    let dir = temp_dir("handoff-sqlite");
    let args = ["--store", "sqlite:chat.db"];
    let c = client();
    let a = Server::start(dir.path(), &args);
    let (status, session) = send(
        &c,
        false,
        Method::POST,
        &format!("{}/api/chats/sessions/", a.base),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let sid = session["session_id"].as_str().expect("sid").to_owned();
    let post = |base: String, text: String| {
        let c = c.clone();
        let sid = sid.clone();
        async move {
            let (status, message) = send(
                &c,
                false,
                Method::POST,
                &format!("{base}/api/chats/messages/"),
                Some(json!({"session_id": sid, "message": text})),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{message}");
            message["id"].as_str().expect("id").to_owned()
        }
    };

    let (status, mut events) = open_stream(
        &c,
        Method::GET,
        &format!("{}/api/chats/sessions/{sid}/events/", a.base),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let seen = post(a.base.clone(), "seen".into()).await;
    assert_eq!(
        next_message(&mut events, common::DEADLINE)
            .await
            .last_event_id,
        seen
    );
    drop(events); // the visitor's connection drops

    let mut missed = Vec::new();
    for i in 0..3 {
        missed.push(post(a.base.clone(), format!("before the restart {i}")).await);
    }
    a.kill_9();
    let a = Server::start(dir.path(), &args);
    for i in 0..2 {
        missed.push(post(a.base.clone(), format!("after the restart {i}")).await);
    }

    let (status, mut events) = open_stream(
        &c,
        Method::GET,
        &format!("{}/api/chats/sessions/{sid}/events/", a.base),
        &[("last-event-id", seen.as_str())],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut replayed = Vec::new();
    for _ in 0..missed.len() {
        replayed.push(
            next_message(&mut events, common::DEADLINE)
                .await
                .last_event_id,
        );
    }
    assert_eq!(
        replayed, missed,
        "exactly the missed messages, in write order"
    );
    let live = post(a.base.clone(), "live".into()).await;
    assert_eq!(
        next_message(&mut events, common::DEADLINE)
            .await
            .last_event_id,
        live,
        "then live, with no duplicate before it"
    );
    drop(events);
    let logs = a.stop();
    assert!(logs.iter().all(|l| !l.contains("panicked")), "{logs:?}");
}
