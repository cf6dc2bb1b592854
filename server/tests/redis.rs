//! The `colloquy` binary on Redis: several instances sharing one Redis, a Redis outage
//! answered with 503 and recovered from, Redis Cluster, and passwords kept out of the
//! output.
//!
//! Standalone tests use the Redis on 127.0.0.1:6379 with a unique key prefix (deleted
//! afterwards); the fault test starts its own `redis-server` on a free port; the
//! cluster test runs when `COLLOQUY_REDIS_CLUSTER_NODES` lists the nodes of one
//! (`adapters/redis/scripts/cluster.sh start` prints it). A missing Redis skips a
//! test locally and fails it with `COLLOQUY_REQUIRE_SERVICES=1`.

#![allow(missing_docs)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};

use common::{
    all_messages, call, client, count_prefix, delete_prefix, free_port, must, redis_answers,
    skip_missing, unique, HttpClient, Server, Started, TempDir,
};

const SHARED_REDIS: &str = "redis://127.0.0.1:6379/0";

/// Deletes the test's keys when the test ends, however it ends.
struct Prefix {
    url: String,
    prefix: String,
}

impl Prefix {
    fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: format!("{}:", unique("colloquy-server-test")),
        }
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        delete_prefix(&self.url, &self.prefix);
    }
}

/// The shared Redis, or `None` (after skipping or panicking) when it is not there.
fn shared_redis() -> Option<Prefix> {
    if let Err(e) = redis_answers(SHARED_REDIS) {
        skip_missing("Redis at 127.0.0.1:6379", &e);
        return None;
    }
    Some(Prefix::new(SHARED_REDIS))
}

/// A chat (plain and streamed) through `a`; returns the message ids it produced.
async fn chat_through(client: &HttpClient, a: &str, session_id: &str) -> Vec<Value> {
    let chat = must(
        client,
        Method::POST,
        &format!("{a}/api/chats/messages/chat/"),
        Some(json!({"session_id": session_id, "message": "hello over redis"})),
    )
    .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.text);
    assert_eq!(chat.body["response"], "Echo: hello over redis");
    let stream = must(
        client,
        Method::GET,
        &format!("{a}/api/chats/messages/chat/stream/?session_id={session_id}&message=streamed"),
        None,
    )
    .await;
    assert_eq!(stream.status, StatusCode::OK);
    assert!(stream.text.contains("\"done\":true"), "{}", stream.text);
    let last = stream
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .next_back()
        .expect("a last event");
    vec![
        chat.body["message_id"].clone(),
        chat.body["response_id"].clone(),
        last["message_id"].clone(),
        last["response_id"].clone(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_redis() {
    let Some(keys) = shared_redis() else { return };
    let dir = TempDir::new("two-instances");
    let args = [
        "--store",
        SHARED_REDIS,
        "--redis-prefix",
        keys.prefix.as_str(),
    ];
    let a = Server::start(&dir.0, &args);
    let b = Server::start(&dir.0, &args);
    let client = client();

    // A session created on A is visible on B.
    let created = must(
        &client,
        Method::POST,
        &format!("{}/api/chats/sessions/", a.base),
        Some(json!({"session_id": "shared", "external_user_id": "u-1"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let seen = must(
        &client,
        Method::GET,
        &format!("{}/api/chats/sessions/shared/", b.base),
        None,
    )
    .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
    assert_eq!(seen.body, created.body);

    // Chat through A, read the conversation through B.
    let ids = chat_through(&client, &a.base, "shared").await;
    let on_a = all_messages(&client, &a.base, "shared").await;
    let on_b = all_messages(&client, &b.base, "shared").await;
    assert_eq!(on_b, on_a, "both instances list the same conversation");
    let listed: Vec<Value> = on_b.iter().map(|m| m["id"].clone()).collect();
    assert_eq!(listed, ids, "in the order written");
    let texts: Vec<&str> = on_b.iter().filter_map(|m| m["message"].as_str()).collect();
    assert_eq!(
        texts,
        [
            "hello over redis",
            "Echo: hello over redis",
            "streamed",
            "Echo: streamed"
        ]
    );
    let listed_sessions = must(
        &client,
        Method::GET,
        &format!("{}/api/chats/sessions/?external_user_id=u-1", b.base),
        None,
    )
    .await;
    assert_eq!(listed_sessions.body.as_array().map(Vec::len), Some(1));

    // Patched through B, seen through A.
    let patched = must(
        &client,
        Method::PATCH,
        &format!("{}/api/chats/sessions/shared/", b.base),
        Some(json!({"is_active": false, "metadata": {"by": "b"}})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let seen = must(
        &client,
        Method::GET,
        &format!("{}/api/chats/sessions/shared/", a.base),
        None,
    )
    .await;
    assert_eq!(seen.body["is_active"], false);
    assert_eq!(seen.body["metadata"], json!({"by": "b"}));
    let refused = must(
        &client,
        Method::POST,
        &format!("{}/api/chats/messages/", a.base),
        Some(json!({"session_id": "shared", "message": "too late"})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.body["code"], "session_inactive");

    // Deleted through B, gone on A, and so are its keys.
    assert!(
        count_prefix(&keys.url, &keys.prefix) > 0,
        "the data is in Redis"
    );
    let deleted = must(
        &client,
        Method::DELETE,
        &format!("{}/api/chats/sessions/shared/", b.base),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    for url in [
        format!("{}/api/chats/sessions/shared/", a.base),
        format!(
            "{}/api/chats/messages/{}/",
            a.base,
            ids[0].as_str().unwrap_or("x")
        ),
    ] {
        let gone = must(&client, Method::GET, &url, None).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{url}: {}", gone.text);
    }
    a.stop();
    b.stop();
}

/// A private `redis-server` on its own port, killed on drop.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    /// Starts one on `port` and waits (bounded) until it answers; `None` when
    /// `redis-server` is not installed.
    fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Self { child, port };
        let started = Instant::now();
        while redis_answers(&redis.url()).is_err() {
            assert!(
                started.elapsed() < common::DEADLINE,
                "redis-server on {port} never answered"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// SIGKILL, and wait until it is gone.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` until it returns true, at most `within`; returns the time it took.
async fn poll_until<F, Fut>(within: Duration, mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < within {
        if probe().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_a_503_and_service_resumes_when_it_returns() {
    let port = free_port();
    let Some(redis) = PrivateRedis::start(port) else {
        skip_missing("redis-server (the binary)", &"not installed");
        return;
    };
    let dir = TempDir::new("redis-fault");
    let store = redis.url();
    let server = Server::start(&dir.0, &["--store", &store]);
    let client = client();
    let base = server.base.clone();
    let create = |client: HttpClient, base: String| async move {
        call(
            &client,
            Method::POST,
            &format!("{base}/api/chats/sessions/"),
            Some(json!({})),
        )
        .await
    };
    let first = create(client.clone(), base.clone()).await.expect("answers");
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);

    redis.kill();
    // Every API call now answers 503 store_unavailable with Retry-After.
    let outage = create(client.clone(), base.clone()).await.expect("answers");
    assert_eq!(
        outage.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        outage.text
    );
    assert_eq!(outage.body["code"], "store_unavailable");
    assert!(
        outage.headers.contains_key("retry-after"),
        "{:?}",
        outage.headers
    );
    let list = must(
        &client,
        Method::GET,
        &format!("{base}/api/chats/sessions/"),
        None,
    )
    .await;
    assert_eq!(
        list.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        list.text
    );
    assert_eq!(list.body["code"], "store_unavailable");
    let ready = must(&client, Method::GET, &format!("{base}/readyz"), None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let health = must(&client, Method::GET, &format!("{base}/healthz"), None).await;
    assert_eq!(health.status, StatusCode::OK, "the process still serves");

    // Redis comes back on the same port: service resumes within 2 s.
    let redis = PrivateRedis::start(port).expect("redis-server restarts");
    let resumed = poll_until(Duration::from_secs(10), || {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let created = create(client.clone(), base.clone()).await;
            let ready = call(&client, Method::GET, &format!("{base}/readyz"), None).await;
            matches!((created, ready), (Ok(c), Ok(r))
                if c.status == StatusCode::CREATED && r.status == StatusCode::OK)
        }
    })
    .await
    .expect("service resumed within 10 s of Redis coming back");
    eprintln!("service resumed {resumed:?} after Redis answered again");
    assert!(
        resumed <= Duration::from_secs(2),
        "service resumed {resumed:?} after Redis came back (at most 2 s)"
    );
    let logs = server.stop();
    drop(redis);
    assert!(
        logs.iter().all(|l| !l.contains("panicked")),
        "no panic: {logs:?}"
    );
}

#[test]
fn an_unreachable_redis_fails_fast_without_showing_the_password() {
    let port = free_port(); // nothing listens there
    let dir = TempDir::new("redis-unreachable");
    let store = format!("redis://:hunter2-secret@127.0.0.1:{port}/0");
    let started = Instant::now();
    let Started::Failed(stderr) = Server::try_start(&dir.0, &["--store", &store]) else {
        panic!("colloquy started without its Redis");
    };
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "fails fast: {:?}",
        started.elapsed()
    );
    assert!(stderr.contains("Redis"), "{stderr}");
    assert!(
        stderr.contains(&format!("redis://:***@127.0.0.1:{port}/0")),
        "names the store, password hidden: {stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}

#[test]
fn rediss_urls_are_served_with_tls() {
    let port = free_port(); // nothing listens there
    let dir = TempDir::new("rediss");
    let store = format!("rediss://127.0.0.1:{port}/0");
    let Started::Failed(stderr) = Server::try_start(&dir.0, &["--store", &store]) else {
        panic!("colloquy started without its Redis");
    };
    assert!(stderr.contains(&store), "{stderr}");
    assert!(
        !stderr.contains("feature is not enabled"),
        "this build can speak TLS to Redis: {stderr}"
    );
}

#[test]
fn a_wrong_password_is_refused_without_showing_it() {
    if let Err(e) = redis_answers(SHARED_REDIS) {
        skip_missing("Redis at 127.0.0.1:6379", &e);
        return;
    }
    let dir = TempDir::new("redis-password");
    let store = "redis://:hunter2-secret@127.0.0.1:6379/0";
    match Server::try_start(&dir.0, &["--store", store]) {
        // A Redis without a password refuses AUTH, so the start fails...
        Started::Failed(stderr) => {
            assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
            assert!(stderr.contains("redis://:***@127.0.0.1:6379/0"), "{stderr}");
        }
        // ...unless this Redis happens to accept it; then the logs must not show it.
        Started::Serving(server) => {
            let logs = server.stop();
            assert!(logs.iter().all(|l| !l.contains("hunter2")), "{logs:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_round_trip_through_redis_cluster() {
    let Ok(nodes) = std::env::var("COLLOQUY_REDIS_CLUSTER_NODES") else {
        // Not required even with COLLOQUY_REQUIRE_SERVICES: scripts/test.sh starts a
        // cluster and sets the variable; without it there is no cluster to use.
        eprintln!(
            "SKIPPED: set COLLOQUY_REDIS_CLUSTER_NODES=host:port,... (adapters/redis/scripts/cluster.sh start)"
        );
        return;
    };
    let first = nodes
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if let Err(e) = redis_answers(&format!("redis://{first}")) {
        skip_missing("Redis Cluster", &e);
        return;
    }
    let prefix = format!("{}:", unique("colloquy-server-cluster"));
    let dir = TempDir::new("redis-cluster");
    let store = format!("redis-cluster://{nodes}");
    let a = Server::start(&dir.0, &["--store", &store, "--redis-prefix", &prefix]);
    let b = Server::start(&dir.0, &["--store", &store, "--redis-prefix", &prefix]);
    let client = client();
    let created = must(
        &client,
        Method::POST,
        &format!("{}/api/chats/sessions/", a.base),
        Some(json!({"session_id": "clustered"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let ids = chat_through(&client, &a.base, "clustered").await;
    let on_b = all_messages(&client, &b.base, "clustered").await;
    let listed: Vec<Value> = on_b.iter().map(|m| m["id"].clone()).collect();
    assert_eq!(listed, ids, "B lists what A wrote, in order");
    let ready = must(&client, Method::GET, &format!("{}/readyz", b.base), None).await;
    assert_eq!(ready.status, StatusCode::OK);
    // Clean up through the API: the delete cascade removes the session's keys (the
    // global index entries are pruned as they are met).
    let deleted = must(
        &client,
        Method::DELETE,
        &format!("{}/api/chats/sessions/clustered/", b.base),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    a.stop();
    b.stop();
    for node in nodes.split(',') {
        let url = format!("redis://{}", node.trim());
        delete_prefix(&url, &prefix);
        assert_eq!(count_prefix(&url, &prefix), 0, "{node} cleaned up");
    }
}
