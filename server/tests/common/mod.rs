//! Helpers shared by the tests that drive the built `colloquy` binary against a
//! durable store: start/stop it, call its API, temporary directories, Redis. What
//! every crate's tests share (service checks, ports, the SSE parser, PostgreSQL) is in
//! `colloquy-test-support`.

#![allow(dead_code, unreachable_pub)] // each test file uses part of this module

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub use colloquy_test_support::DEADLINE;

pub const BIN: &str = env!("CARGO_BIN_EXE_colloquy");

pub mod workflow;

#[allow(unused_imports)]
pub use colloquy_test_support::net::free_port;
#[allow(unused_imports)]
pub use colloquy_test_support::sse::{Event as SseEvent, SseReader};
#[allow(unused_imports)]
pub use colloquy_test_support::{services_required, skip_missing, unique};
pub use tempfile::TempDir;

/// A temporary working directory, removed on drop.
pub fn temp_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("colloquy-{tag}-"))
        .tempdir()
        .expect("a temporary directory")
}

/// A running `colloquy`, killed if the test fails before it stops it.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub stderr: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What became of a start attempt.
pub enum Started {
    Serving(Server),
    /// The process exited before it listened; its stderr.
    Failed(String),
}

impl Server {
    /// Starts the binary in `cwd` and waits for its address; panics if it fails.
    pub fn start(cwd: &Path, args: &[&str]) -> Self {
        match Self::try_start(cwd, args) {
            Started::Serving(server) => server,
            Started::Failed(stderr) => panic!("colloquy {args:?} did not start: {stderr}"),
        }
    }

    /// Starts the binary in `cwd`; reports its stderr if it exits instead of serving.
    pub fn try_start(cwd: &Path, args: &[&str]) -> Started {
        Self::try_spawn(Self::command(cwd, args))
    }

    /// The command `try_start` runs: `--bind 127.0.0.1:0`, `--log-level warn` unless
    /// `args` set a level (clap rejects a repeated `--log-level`), then `args`; stdout
    /// and stderr piped. Tests that need more (environment) adjust it and pass it to
    /// [`Server::spawn`].
    pub fn command(cwd: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command.current_dir(cwd).args(["--bind", "127.0.0.1:0"]);
        if !args.contains(&"--log-level") {
            command.args(["--log-level", "warn"]);
        }
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs `command` (from [`Server::command`]) and waits for its address; panics if
    /// it fails.
    pub fn spawn(command: Command) -> Self {
        match Self::try_spawn(command) {
            Started::Serving(server) => server,
            Started::Failed(stderr) => panic!("colloquy did not start: {stderr}"),
        }
    }

    /// Runs `command` (from [`Server::command`]); reports its stderr if it exits
    /// instead of serving.
    pub fn try_spawn(mut command: Command) -> Started {
        let mut child = command.spawn().expect("the binary starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        let (line_tx, line_rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        let (log_tx, log_rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = log_tx.send(line);
            }
        });
        match line_rx.recv_timeout(DEADLINE) {
            Ok(line) => {
                let base = line
                    .strip_prefix("colloquy listening on ")
                    .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
                    .to_owned();
                Started::Serving(Self {
                    child,
                    base,
                    stderr: log_rx,
                })
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // The reader thread ends at EOF, so this collects all of stderr.
                let mut text = String::new();
                while let Ok(line) = log_rx.recv_timeout(Duration::from_secs(5)) {
                    text.push_str(&line);
                    text.push('\n');
                }
                Started::Failed(text)
            }
        }
    }

    /// SIGTERM, then waits (bounded) for exit status 0; returns the log lines.
    pub fn stop(self) -> Vec<String> {
        self.stop_with("TERM")
    }

    /// Sends `signal` (a `kill` name: `TERM`, `INT`, ...), then waits (bounded) for exit
    /// status 0; returns the log lines.
    pub fn stop_with(mut self, signal: &str) -> Vec<String> {
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(started.elapsed() < DEADLINE, "the server did not exit");
            thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "exit status {status}");
        // The reader thread ends at EOF, so this collects all of stderr.
        let mut logs = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(DEADLINE) {
            logs.push(line);
        }
        logs
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
}

/// One answer: status, headers and the body (JSON, or a string for non-JSON bodies,
/// `null` when the body was cut off).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

/// One request; `Err` when no answer came (the server is gone).
pub async fn call(
    client: &HttpClient,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Result<Answer, hyper_util::client::legacy::Error> {
    call_with(client, method, url, &[], body).await
}

/// [`call`] with extra request headers.
pub async fn call_with(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Result<Answer, hyper_util::client::legacy::Error> {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).expect("request"))
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = match response.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(), // the server died mid-body
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    })
}

/// A request that must be answered.
pub async fn must(client: &HttpClient, method: Method, url: &str, body: Option<Value>) -> Answer {
    call(client, method.clone(), url, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: no answer: {e}"))
}

/// Every message of the session, in the listed order (pages of 1000).
pub async fn all_messages(client: &HttpClient, base: &str, session_id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let url = format!(
            "{base}/api/chats/messages/?session_id={session_id}&limit=1000&offset={}",
            out.len()
        );
        let answer = must(client, Method::GET, &url, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let page = answer.body.as_array().expect("array").clone();
        let done = page.len() < 1000;
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// Whether Redis at `url` answers PING now.
pub fn redis_answers(url: &str) -> Result<(), redis::RedisError> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
    redis::cmd("PING").query::<String>(&mut conn).map(drop)
}

/// Deletes every key under `prefix` on the Redis at `url` (SCAN + DEL; never FLUSH),
/// one key per DEL so it works on a cluster node too (for the keys it holds).
pub fn delete_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return;
    };
    let Ok(keys) = scan(&mut conn, prefix) else {
        return;
    };
    for key in keys {
        let _ = redis::cmd("DEL").arg(key).query::<i64>(&mut conn);
    }
}

/// How many keys under `prefix` the Redis at `url` holds.
pub fn count_prefix(url: &str, prefix: &str) -> usize {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("redis answers");
    scan(&mut conn, prefix).expect("scan").len()
}

/// Every key under `prefix`.
fn scan(conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<Vec<String>> {
    let pattern = format!("{prefix}*");
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query(conn)?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// A response body read as server-sent events.
pub type SseStream = SseReader<hyper::body::Incoming>;

/// Sends a request and returns its status and its body as an [`SseStream`].
pub async fn open_stream(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, SseStream) {
    let mut request = Request::builder().method(method).uri(url);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let response = tokio::time::timeout(
        DEADLINE,
        client.request(request.body(Full::new(Bytes::from(body))).expect("request")),
    )
    .await
    .expect("an answer within the deadline")
    .expect("the server answers");
    let status = response.status();
    (status, SseReader::new(response.into_body()))
}
