//! Runs an example binary on a free loopback port and talks HTTP to it; every wait
//! is bounded by [`DEADLINE`].

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

/// The longest any step may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running example and a client for it.
pub struct Example {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `data:` objects of an SSE body, in order.
    pub fn events(&self) -> Vec<Value> {
        colloquy_test_support::sse::parse_json(&self.text)
    }

    /// The text of an SSE answer: its chunks joined.
    pub fn streamed_text(&self) -> String {
        self.events()
            .iter()
            .filter_map(|e| e["chunk"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Example {
    /// Starts the binary `bin` with `--bind 127.0.0.1:0` (the system picks a free
    /// port) and reads the address from its first line, `<name> listening on <url>`.
    pub async fn start(bin: &str) -> Self {
        let mut child = Command::new(bin)
            .args(["--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{bin} starts: {e}"));
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(DEADLINE, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{bin} printed no address in time"))
            .expect("stdout readable")
            .unwrap_or_else(|| panic!("{bin} exited before listening"));
        let base = line
            .split_once(" listening on ")
            .map(|(_, url)| url.to_owned())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Self {
            child,
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// `method path` with `body` (sent as is, with `content_type` when given) and
    /// `headers`; the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let bytes = match body {
            Some((content_type, body)) => {
                request = request.header("content-type", content_type);
                Bytes::from(body)
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(bytes)).expect("request");
        let answer = async {
            let response = self
                .client
                .request(request)
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"));
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.expect("the body arrives").to_bytes();
            Answer {
                status: parts.status,
                headers: parts.headers,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            }
        };
        timeout(DEADLINE, answer)
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no whole answer in time"))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Answer {
        let body = Some(("application/json", body.to_string()));
        self.send(Method::POST, path, &[], body).await
    }

    /// Ctrl-C (SIGINT), then the exit status, which must be success.
    pub async fn stop(mut self) {
        let pid = self.child.id().expect("still running").to_string();
        let killed = timeout(DEADLINE, Command::new("kill").args(["-INT", &pid]).status())
            .await
            .expect("kill ran in time")
            .expect("kill runs");
        assert!(killed.success());
        let status = timeout(DEADLINE, self.child.wait())
            .await
            .expect("the example exits in time after Ctrl-C")
            .expect("wait");
        assert!(status.success(), "exit status {status}");
    }
}
