//! Shared test helpers: unique prefixes, key cleanup, private redis-server processes.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_conformance::{service_missing, TestStore};
use colloquy_core::{ManualClock, Retention};
use colloquy_redis::{RedisConfig, RedisStore};
use colloquy_test_support::net::wait_serving;

/// The shared Redis every helper may use (never flushed: tests use unique prefixes).
pub const SHARED_URL: &str = "redis://127.0.0.1:6379/0";

/// The env var naming the cluster nodes, e.g. `127.0.0.1:7001,127.0.0.1:7002,...`.
pub const CLUSTER_ENV: &str = "COLLOQUY_REDIS_CLUSTER_NODES";

/// A prefix no other test run uses.
pub fn unique_prefix() -> String {
    format!("colloquy-test:{}:", uuid::Uuid::new_v4().simple())
}

/// The configured cluster nodes, if any.
pub fn cluster_nodes() -> Option<Vec<String>> {
    let nodes = std::env::var(CLUSTER_ENV).ok()?;
    let nodes: Vec<String> = nodes
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    (!nodes.is_empty()).then_some(nodes)
}

fn node_url(node: &str) -> String {
    if node.contains("://") {
        node.to_owned()
    } else {
        format!("redis://{node}")
    }
}

/// Deletes every key under `prefix` on each of the `urls` (every cluster master, or
/// the one standalone server), with SCAN + UNLINK.
pub async fn purge(urls: &[String], prefix: &str) {
    for url in urls {
        let Ok(client) = redis::Client::open(url.as_str()) else {
            continue;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        let mut cursor: u64 = 0;
        loop {
            let scanned: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await;
            let Ok((next, keys)) = scanned else { break };
            for key in keys {
                // One key per call: on a cluster node, keys of one call must share a slot.
                let _: redis::RedisResult<i64> =
                    redis::cmd("UNLINK").arg(&key).query_async(&mut conn).await;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

/// Counts the keys under `prefix` on each of `urls`.
pub async fn count_keys(urls: &[String], prefix: &str) -> usize {
    let mut total = 0;
    for url in urls {
        let client = redis::Client::open(url.as_str()).expect("valid url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to count keys");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        total += keys.len();
    }
    total
}

/// The retention conformance stores are built with: the production default (keys
/// expire at `expires_at` by Redis's wall clock; the suite's manual clock only moves
/// forward from the wall time, so it sees sessions expire before Redis drops them).
const TEST_RETENTION: Retention = Retention::For(chrono::Duration::zero());

/// Which Redis a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// The shared standalone server, [`SHARED_URL`].
    Standalone,
    /// The cluster named by [`CLUSTER_ENV`].
    Cluster,
}

impl Deployment {
    /// A store under `prefix` on this deployment, and the URLs of its nodes (for
    /// [`purge`]); `service_missing` when it is not reachable.
    pub async fn connect(
        self,
        prefix: &str,
        clock: Arc<ManualClock>,
    ) -> Option<(RedisStore, Vec<String>)> {
        let config = RedisConfig::with_prefix(prefix).with_retention(TEST_RETENTION);
        match self {
            Self::Standalone => match RedisStore::connect(SHARED_URL, &config, clock).await {
                Ok(store) => Some((store, vec![SHARED_URL.to_owned()])),
                Err(e) => service_missing("redis (127.0.0.1:6379)", &e),
            },
            Self::Cluster => {
                let Some(nodes) = cluster_nodes() else {
                    return service_missing("redis cluster", &format!("{CLUSTER_ENV} is not set"));
                };
                match RedisStore::connect_cluster(&nodes, &config, clock).await {
                    Ok(store) => Some((store, nodes.iter().map(|n| node_url(n)).collect())),
                    Err(e) => service_missing("redis cluster", &e),
                }
            }
        }
    }

    /// A conformance store on this deployment under a fresh prefix, or
    /// `service_missing`.
    pub async fn test_store(self) -> Option<TestStore> {
        let clock = Arc::new(ManualClock::new());
        let prefix = unique_prefix();
        let (store, urls) = self.connect(&prefix, clock.clone()).await?;
        Some(
            TestStore::new(Arc::new(store), clock)
                .expires_physically()
                .with_teardown(move || Box::pin(async move { purge(&urls, &prefix).await })),
        )
    }
}

/// A conformance store on the shared standalone Redis, or `service_missing`.
pub async fn standalone_test_store() -> Option<TestStore> {
    Deployment::Standalone.test_store().await
}

/// A conformance store on the cluster named by [`CLUSTER_ENV`], or `service_missing`.
pub async fn cluster_test_store() -> Option<TestStore> {
    Deployment::Cluster.test_store().await
}

pub use colloquy_test_support::net::free_port;

/// A loopback port for a cluster node: it and its cluster bus port (+10000) are free.
pub fn free_cluster_port() -> u16 {
    for _ in 0..1000 {
        let port = free_port() % 20_000 + 20_000;
        let bus = port + 10_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", bus)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port pair for a cluster node");
}

pub use tempfile::TempDir;

/// A fresh temporary directory named after `tag`, removed when dropped.
pub fn temp_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("colloquy-redis-{tag}-"))
        .tempdir()
        .expect("create a temp dir")
}

/// A private `redis-server` child process on its own loopback port; killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one without persistence; see [`RedisServer::start_with`].
    pub fn start(port: u16, dir: &Path) -> Option<Self> {
        Self::start_with(port, dir, &["--save", "", "--appendonly", "no"])
    }

    /// Starts one with extra arguments (e.g. AOF settings). When `redis-server` is not
    /// installed: `None` (the caller skips) locally, a failure when services are required.
    pub fn start_with(port: u16, dir: &Path, extra: &[&str]) -> Option<Self> {
        let mut server = Self {
            child: None,
            port,
            dir: dir.to_owned(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        if server.spawn() {
            return Some(server);
        }
        assert!(
            !colloquy_conformance::services_required(),
            "redis-server is required but not installed"
        );
        eprintln!("skipping: redis-server not installed");
        None
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        self.wait_ready();
        true
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Waits (bounded) until this child itself answers PING on its port: a test never
    /// talks to another process that holds the port.
    fn wait_ready(&mut self) {
        let port = self.port;
        let url = self.url();
        let child = self.child.as_mut().expect("just spawned");
        let answers = || {
            redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn))
                .is_ok()
        };
        if let Err(e) = wait_serving(child, port, Duration::from_secs(10), answers) {
            panic!("redis-server on port {port}: {e}");
        }
    }

    /// Sends a signal (`STOP`, `CONT`, ...) to the server process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("server running").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "restart redis-server");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private 3-master Redis Cluster of `redis-server` children (AOF on, so a killed
/// node comes back with its data; full slot coverage not required, so the other
/// nodes keep serving while one is down). Killed on drop.
pub struct PrivateCluster {
    pub nodes: Vec<RedisServer>,
    _dirs: Vec<TempDir>,
}

impl PrivateCluster {
    /// Starts it, or `None` (skip) when `redis-server` is not installed.
    pub fn start() -> Option<Self> {
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for _ in 0..3 {
            let dir = temp_dir("cluster-node");
            let port = free_cluster_port();
            let conf = format!("nodes-{port}.conf");
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                conf.as_str(),
                "--cluster-node-timeout",
                "2000",
                "--cluster-require-full-coverage",
                "no",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ];
            nodes.push(RedisServer::start_with(port, dir.path(), &args)?);
            dirs.push(dir);
        }
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes, _dirs: dirs };
        cluster.wait_ok();
        Some(cluster)
    }

    /// `host:port` of every node.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    /// Polls until every node reports `cluster_state:ok` (bounded).
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            let client = redis::Client::open(node.url()).expect("valid url");
            loop {
                let info: Option<String> = client
                    .get_connection_with_timeout(Duration::from_millis(200))
                    .ok()
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query(&mut c).ok());
                if info.is_some_and(|i| i.contains("cluster_state:ok")) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} never reached cluster_state:ok",
                    node.port
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The index in `nodes` of the node serving the slot of `key` (or of a bare hash tag).
    pub fn node_of(&self, key: &str) -> usize {
        let client = redis::Client::open(self.nodes[0].url()).expect("valid url");
        let mut conn = client.get_connection().expect("connect");
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
            .expect("CLUSTER KEYSLOT");
        let ranges: Vec<(i64, i64, (String, i64))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query::<Vec<redis::Value>>(&mut conn)
            .expect("CLUSTER SLOTS")
            .into_iter()
            .map(|range| {
                let redis::Value::Array(items) = range else {
                    panic!("CLUSTER SLOTS entry {range:?}")
                };
                let start: i64 = redis::from_redis_value_ref(&items[0]).expect("start");
                let end: i64 = redis::from_redis_value_ref(&items[1]).expect("end");
                let redis::Value::Array(master) = &items[2] else {
                    panic!("CLUSTER SLOTS master {items:?}")
                };
                let host: String = redis::from_redis_value_ref(&master[0]).expect("host");
                let port: i64 = redis::from_redis_value_ref(&master[1]).expect("port");
                (start, end, (host, port))
            })
            .collect();
        let (_, _, (_, port)) = ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .expect("every slot is served");
        self.nodes
            .iter()
            .position(|n| i64::from(n.port) == *port)
            .expect("a node of this cluster")
    }
}
