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

use common::workflow::{resume_and_cancel, start_stream};
use common::{
    client, delete_prefix, must, open_stream, redis_answers, skip_missing, temp_dir, unique,
    HttpClient, Server, TempDir,
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
    (
        Server::start(dir.path(), &args),
        Server::start(dir.path(), &args),
    )
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

/// Resume on B mid-answer, cancel from B while A generates, and a reload on B.
async fn resume_and_cancel_across(shared: &Shared) {
    let dir = temp_dir("streams");
    let (a, b) = pair(shared, &dir, "150ms", &[]);
    let client = client();
    let session_id = new_session(&client, &a.base).await;
    resume_and_cancel(&client, &a.base, &b.base, &session_id).await;
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
    let dir = temp_dir("shared-limits");
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
    let dir = temp_dir("streams-kill");
    let (a, b) = pair(&shared, &dir, "1s", &[]);
    let client = client();
    let session_id = new_session(&client, &a.base).await;
    let (_on_a, first, _) = start_stream(&client, &a.base, &session_id).await;
    let response_id = first.json()["response_id"].as_str().expect("id").to_owned();
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
    assert_eq!(last.json()["done"], true);
    assert_eq!(last.json()["error"], "generation_lost", "{last:?}");
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
    let dir = temp_dir("local-log");
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
        let server = Server::start(dir.path(), &args);
        let session_id = new_session(&client, &server.base).await;
        let (mut stream, first, second) = start_stream(&client, &server.base, &session_id).await;
        let response_id = first.json()["response_id"]
            .as_str()
            .expect("response_id")
            .to_owned();
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
            &[("last-event-id", second.last_event_id.as_str())],
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
