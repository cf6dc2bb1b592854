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

use std::path::Path;
use std::process::{Child, Command, Stdio};

use http::{Method, StatusCode};
use serde_json::{json, Value};

use colloquy_test_support::net::wait_serving;
use common::workflow::{
    chat_through, deleted_on_b_gone_on_a, http_workflow, outage_under_load, two_instances_share,
    unreachable_store_fails_fast, WORKFLOW_ARGS,
};
use common::{
    all_messages, client, count_prefix, delete_prefix, free_port, must, redis_answers,
    skip_missing, temp_dir, unique, Server, Started,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_redis() {
    let Some(keys) = shared_redis() else { return };
    let dir = temp_dir("two-instances");
    let args = [
        "--store",
        SHARED_REDIS,
        "--redis-prefix",
        keys.prefix.as_str(),
    ];
    let a = Server::start(dir.path(), &args);
    let b = Server::start(dir.path(), &args);
    let client = client();
    let written = two_instances_share(&client, &a.base, &b.base).await;
    assert!(
        count_prefix(&keys.url, &keys.prefix) > 0,
        "the data is in Redis"
    );
    deleted_on_b_gone_on_a(&client, &a.base, &b.base, &written).await;
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_workflow_on_redis() {
    let Some(keys) = shared_redis() else { return };
    let dir = temp_dir("redis-workflow");
    let mut args = vec![
        "--store",
        SHARED_REDIS,
        "--redis-prefix",
        keys.prefix.as_str(),
    ];
    args.extend(WORKFLOW_ARGS);
    let server = Server::start(dir.path(), &args);
    http_workflow(&client(), &server.base).await;
    let logs = server.stop();
    assert!(logs.iter().all(|l| !l.contains("panicked")), "{logs:?}");
}

/// A private `redis-server` on its own port, persisting every write (AOF, `fsync`
/// always) in `dir`, killed on drop.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    /// Starts one on `port` over the files in `dir` and waits (bounded) until it
    /// serves there itself and answers; `None` when `redis-server` is not installed.
    fn start(port: u16, dir: &Path) -> Option<Self> {
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let url = Self::url_of(port);
        if let Err(e) = wait_serving(&mut child, port, common::DEADLINE, || {
            redis_answers(&url).is_ok()
        }) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redis-server on {port}: {e}");
        }
        Some(Self { child, port })
    }

    fn url_of(port: u16) -> String {
        format!("redis://127.0.0.1:{port}/0")
    }

    fn url(&self) -> String {
        Self::url_of(self.port)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_a_503_and_service_resumes_when_it_returns() {
    let port = free_port();
    let files = temp_dir("redis-fault-data");
    let Some(redis) = PrivateRedis::start(port, files.path()) else {
        skip_missing("redis-server (the binary)", &"not installed");
        return;
    };
    let dir = temp_dir("redis-fault");
    let server = Server::start(dir.path(), &["--store", &redis.url()]);
    let client = client();
    let (outage, redis) =
        outage_under_load(&client, &server.base, async move { redis.kill() }, async {
            PrivateRedis::start(port, files.path()).expect("redis-server restarts")
        })
        .await;
    eprintln!(
        "redis outage (kill -9, AOF fsync always): {} acknowledged, {} refused (503), lost {}, \
         stored but refused {}; service resumed {:?} after Redis answered again",
        outage.acknowledged,
        outage.refused,
        outage.lost,
        outage.stored_but_refused,
        outage.recovered_after
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
    unreachable_store_fails_fast(
        "Redis",
        "redis://:hunter2-secret@127.0.0.1:{port}/0",
        "redis://:***@127.0.0.1:{port}/0",
    );
}

#[test]
fn rediss_urls_are_served_with_tls() {
    let port = free_port(); // nothing listens there
    let dir = temp_dir("rediss");
    let store = format!("rediss://127.0.0.1:{port}/0");
    let Started::Failed(stderr) = Server::try_start(dir.path(), &["--store", &store]) else {
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
    let dir = temp_dir("redis-password");
    let store = "redis://:hunter2-secret@127.0.0.1:6379/0";
    match Server::try_start(dir.path(), &["--store", store]) {
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
    let dir = temp_dir("redis-cluster");
    let store = format!("redis-cluster://{nodes}");
    let a = Server::start(dir.path(), &["--store", &store, "--redis-prefix", &prefix]);
    let b = Server::start(dir.path(), &["--store", &store, "--redis-prefix", &prefix]);
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
