//! Streams across instances: two `colloquy` processes on one Redis (and on the Redis
//! Cluster `scripts/test.sh` starts) resume each other's answers, cancel them, share
//! one rate limit and one `Idempotency-Key` table, and a reloaded page finds the
//! answer in flight; when the instance generating it dies, its followers get a
//! terminal event within the lease.

#![allow(missing_docs)]

mod common;

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};

use common::{
    client, delete_prefix, must, open_stream, redis_answers, skip_missing, unique, HttpClient,
    Server, SseEvent, TempDir,
};

/// A store URL and a private key prefix, deleted when the test ends.
struct Shared {
    store: String,
    nodes: Vec<String>,
    prefix: String,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for node in &self.nodes {
            delete_prefix(node, &self.prefix);
        }
    }
}

fn standalone() -> Option<Shared> {
    let url = "redis://127.0.0.1:6379/0";
    if let Err(e) = redis_answers(url) {
        skip_missing("Redis at 127.0.0.1:6379", &e);
        return None;
    }
    Some(Shared {
        store: url.to_owned(),
        nodes: vec![url.to_owned()],
        prefix: format!("{}:", unique("colloquy-streams")),
    })
}

fn cluster() -> Option<Shared> {
    let Ok(nodes) = std::env::var("COLLOQUY_REDIS_CLUSTER_NODES") else {
        eprintln!("SKIPPED: set COLLOQUY_REDIS_CLUSTER_NODES (scripts/test.sh starts a cluster)");
        return None;
    };
    let urls: Vec<String> = nodes
        .split(',')
        .map(|n| format!("redis://{}", n.trim()))
        .collect();
    if let Err(e) = redis_answers(&urls[0]) {
        skip_missing("Redis Cluster", &e);
        return None;
    }
    Some(Shared {
        store: format!("redis-cluster://{nodes}"),
        nodes: urls,
        prefix: format!("{}:", unique("colloquy-streams-cluster")),
    })
}

/// Two instances on `shared`, answering one word every `delay`.
fn pair(shared: &Shared, dir: &TempDir, delay: &str, extra: &[&str]) -> (Server, Server) {
    let mut args = vec![
        "--store",
        &shared.store,
        "--redis-prefix",
        &shared.prefix,
        "--echo-chunk-delay",
        delay,
    ];
    args.extend_from_slice(extra);
    (Server::start(&dir.0, &args), Server::start(&dir.0, &args))
}

async fn new_session(client: &HttpClient, base: &str) -> String {
    let created = must(
        client,
        Method::POST,
        &format!("{base}/api/chats/sessions/"),
        Some(json!({})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.body["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned()
}

fn text(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter_map(|e| e.data["chunk"].as_str())
        .collect()
}

const QUESTION: &str = "one two three four five six";

/// Starts a stream on `base`; returns the reader and its first two events.
async fn start_stream(
    client: &HttpClient,
    base: &str,
    session_id: &str,
) -> (common::SseStream, SseEvent, SseEvent) {
    let (status, mut stream) = open_stream(
        client,
        Method::POST,
        &format!("{base}/api/chats/messages/chat/stream/"),
        &[],
        Some(json!({"session_id": session_id, "message": QUESTION})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let first = stream.next_event().await.expect("first event");
    let second = stream.next_event().await.expect("second event");
    (stream, first, second)
}

/// Resume on B mid-answer, cancel from B while A generates, and a reload on B.
async fn resume_and_cancel_across(shared: &Shared) {
    let dir = TempDir::new("streams");
    let (a, b) = pair(shared, &dir, "150ms", &[]);
    let client = client();
    let session_id = new_session(&client, &a.base).await;

    // Resume on B, mid-answer, after the second event.
    let (mut on_a, first, second) = start_stream(&client, &a.base, &session_id).await;
    let response_id = first.data["response_id"].as_str().expect("id").to_owned();
    let session = must(
        &client,
        Method::GET,
        &format!("{}/api/chats/sessions/{session_id}/", b.base),
        None,
    )
    .await;
    assert_eq!(
        session.body["active_response_id"],
        json!(response_id),
        "B sees A's answer running"
    );
    let resume_url = format!("{}/api/chats/messages/chat/stream/{response_id}/", b.base);
    let asked = Instant::now();
    let (status, mut on_b) = open_stream(
        &client,
        Method::GET,
        &resume_url,
        &[("last-event-id", &second.id)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let resumed_first = on_b.next_event().await.expect("a replayed or live event");
    println!(
        "resume on another instance: first event after {:?}",
        asked.elapsed()
    );
    // A reloaded page on B attaches from the first event.
    let (_, mut reload) = open_stream(&client, Method::GET, &resume_url, &[], None).await;
    let mut tail = vec![resumed_first];
    tail.extend(on_b.rest().await);
    let mut original = vec![first, second];
    original.extend(on_a.rest().await);
    assert_eq!(
        tail,
        original[2..],
        "B resumes with exactly the events after the second, in order"
    );
    assert_eq!(
        reload.rest().await,
        original,
        "a reload gets every event once"
    );
    assert_eq!(text(&original), format!("Echo: {QUESTION}"));
    let session = must(
        &client,
        Method::GET,
        &format!("{}/api/chats/sessions/{session_id}/", a.base),
        None,
    )
    .await;
    assert_eq!(
        session.body["active_response_id"],
        Value::Null,
        "cleared when the answer ends"
    );

    // Cancel from B while A generates.
    let (mut on_a, first, _) = start_stream(&client, &a.base, &session_id).await;
    let response_id = first.data["response_id"].as_str().expect("id").to_owned();
    let cancel = must(
        &client,
        Method::POST,
        &format!(
            "{}/api/chats/messages/chat/stream/{response_id}/cancel/",
            b.base
        ),
        Some(json!({})),
    )
    .await;
    assert_eq!(cancel.status, StatusCode::ACCEPTED, "{}", cancel.text);
    let last = on_a.rest().await.pop().expect("a terminal event");
    assert_eq!(last.data["finish_reason"], "cancelled", "{last:?}");
    let stored = must(
        &client,
        Method::GET,
        &format!("{}/api/chats/messages/{response_id}/", b.base),
        None,
    )
    .await;
    assert_eq!(stored.body["metadata"]["finish_reason"], "cancelled");
    assert!(
        stored.body["message"]
            .as_str()
            .is_some_and(|t| t.len() < format!("Echo: {QUESTION}").len()),
        "only the part generated before the cancel: {}",
        stored.text
    );
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis_resume_and_cancel_each_others_streams() {
    let Some(shared) = standalone() else { return };
    resume_and_cancel_across(&shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis_cluster_resume_and_cancel_each_others_streams() {
    let Some(shared) = cluster() else { return };
    resume_and_cancel_across(&shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_enforce_one_shared_rate_limit_and_idempotency() {
    let Some(shared) = standalone() else { return };
    let dir = TempDir::new("shared-limits");
    let (a, b) = pair(&shared, &dir, "0s", &["--rate-chats", "4/min"]);
    let client = client();
    let session_id = new_session(&client, &a.base).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let chat = must(
            &client,
            Method::POST,
            &format!("{base}/api/chats/messages/chat/"),
            Some(json!({"session_id": session_id, "message": format!("m{i}")})),
        )
        .await;
        statuses.push(chat.status);
    }
    let ok = StatusCode::OK;
    let limited = StatusCode::TOO_MANY_REQUESTS;
    assert_eq!(
        statuses,
        [ok, ok, ok, ok, limited, limited],
        "one limit of 4 across both instances"
    );

    // A retry through the other instance gets the first result.
    let post = |base: String| {
        let client = client.clone();
        let session_id = session_id.clone();
        async move {
            let request = http::Request::builder()
                .method(Method::POST)
                .uri(format!("{base}/api/chats/messages/"))
                .header("content-type", "application/json")
                .header("idempotency-key", "retry-1")
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    json!({"session_id": session_id, "message": "once"}).to_string(),
                )))
                .expect("request");
            let response = client.request(request).await.expect("answer");
            let status = response.status();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .expect("body")
                .to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&body).expect("json"),
            )
        }
    };
    let (s1, first) = post(a.base.clone()).await;
    let (s2, retry) = post(b.base.clone()).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first["id"], retry["id"], "the same message, written once");
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_generating_instance_dies_followers_end_and_the_pointer_clears() {
    let Some(shared) = standalone() else { return };
    let dir = TempDir::new("streams-kill");
    let (a, b) = pair(&shared, &dir, "1s", &[]);
    let client = client();
    let session_id = new_session(&client, &a.base).await;
    let (_on_a, first, _) = start_stream(&client, &a.base, &session_id).await;
    let response_id = first.data["response_id"].as_str().expect("id").to_owned();
    let (_, mut follower) = open_stream(
        &client,
        Method::GET,
        &format!("{}/api/chats/messages/chat/stream/{response_id}/", b.base),
        &[],
        None,
    )
    .await;
    assert_eq!(
        follower.next_event().await,
        Some(first),
        "the follower replays from the start"
    );
    a.kill_9();
    let killed = Instant::now();
    let rest = follower.rest().await;
    let last = rest.last().expect("a terminal event, never a hang");
    assert_eq!(last.data["done"], true);
    assert_eq!(last.data["error"], "generation_lost", "{last:?}");
    println!("follower ended {:?} after the kill", killed.elapsed());
    // The pointer is gone within the lease (6 s; the test allows 15).
    let session_url = format!("{}/api/chats/sessions/{session_id}/", b.base);
    loop {
        let session = must(&client, Method::GET, &session_url, None).await;
        if session.body["active_response_id"].is_null() {
            println!("pointer cleared {:?} after the kill", killed.elapsed());
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "the pointer outlived the lease"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.stop();
}

/// `--stream-log local` keeps the log in the process: a stream still resumes on its
/// own instance, and Redis holds no log keys; the default keeps them in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_stream_log_keeps_streams_out_of_redis() {
    let Some(shared) = standalone() else { return };
    let dir = TempDir::new("local-log");
    let client = client();
    let log_keys = format!("{}sl:", shared.prefix);
    for (place, in_redis) in [("local", false), ("store", true)] {
        let args = [
            "--store",
            &shared.store,
            "--redis-prefix",
            &shared.prefix,
            "--echo-chunk-delay",
            "100ms",
            "--stream-log",
            place,
        ];
        let server = Server::start(&dir.0, &args);
        let session_id = new_session(&client, &server.base).await;
        let (mut stream, first, second) = start_stream(&client, &server.base, &session_id).await;
        let response_id = first.data["response_id"].as_str().expect("id").to_owned();
        assert_eq!(
            common::count_prefix(&shared.store, &log_keys) > 0,
            in_redis,
            "--stream-log {place}: log keys in Redis while the answer runs"
        );
        let resume_url = format!(
            "{}/api/chats/messages/chat/stream/{response_id}/",
            server.base
        );
        let (status, mut resumed) = open_stream(
            &client,
            Method::GET,
            &resume_url,
            &[("last-event-id", &second.id)],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let tail = resumed.rest().await;
        let rest = stream.rest().await;
        assert_eq!(
            tail, rest,
            "--stream-log {place}: the resume gets the same events"
        );
        server.stop();
    }
}
