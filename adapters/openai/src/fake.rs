//! A fake OpenAI-compatible server for tests (feature `fake-server`).
//!
//! [`FakeServer::start`] listens on `127.0.0.1:0` and answers every
//! `POST .../chat/completions` with the next [`Reply`] of its script (then `500`s),
//! records every request ([`Recorded`]), and counts the streams whose client went
//! away before the stream ended ([`FakeServer::wait_gone`]) — which is how a test
//! sees that cancelling a generation dropped the upstream request.
//!
//! ```
//! use colloquy_openai::fake::{FakeServer, Reply, Step};
//! # async fn demo() {
//! let server = FakeServer::start(vec![
//!     Reply::stream(["Hello", " world"]),
//!     Reply::status(429, "slow down"),
//!     Reply::Stream(vec![Step::delta("partial"), Step::Hang]),
//! ])
//! .await;
//! let base_url = server.base_url(); // http://127.0.0.1:PORT/v1
//! # let _ = base_url;
//! # }
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// The model name the fake server reports in its answers.
pub const SERVER_MODEL: &str = "fake-model-2024";

/// How long [`FakeServer::wait_gone`] waits.
const WAIT: Duration = Duration::from_secs(10);

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Any status, with headers and a raw body (`content-type: application/json`).
    Status {
        /// The HTTP status code.
        status: u16,
        /// More headers, such as `retry-after`.
        headers: Vec<(&'static str, String)>,
        /// The body.
        body: String,
    },
    /// `200 application/json` with this body.
    Json(Value),
    /// `200 text/event-stream`, written step by step.
    Stream(Vec<Step>),
}

impl Reply {
    /// A complete, well-formed streamed answer of `pieces`: a role chunk, one chunk
    /// per piece, `finish_reason: stop`, usage (11 prompt + 7 completion tokens)
    /// and `[DONE]`.
    pub fn stream<'a>(pieces: impl IntoIterator<Item = &'a str>) -> Self {
        let mut steps = vec![Step::role()];
        steps.extend(pieces.into_iter().map(Step::delta));
        steps.extend([Step::finish("stop"), Step::usage(11, 7), Step::done()]);
        Self::Stream(steps)
    }

    /// A status answer with an OpenAI-style error body.
    pub fn status(code: u16, message: &str) -> Self {
        Self::Status {
            status: code,
            headers: Vec::new(),
            body: json!({"error": {"message": message, "type": "fake"}}).to_string(),
        }
    }

    /// A non-streamed answer (usage: 20 prompt + 5 completion tokens).
    pub fn completion(text: &str, finish_reason: &str) -> Self {
        Self::Json(json!({
            "id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": SERVER_MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
        }))
    }
}

/// One step of a streamed answer.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes as one body frame.
    Bytes(Vec<u8>),
    /// Wait before the next step.
    Delay(Duration),
    /// Send nothing but `: ping` comments (every 20 ms) until the client goes away.
    Hang,
}

impl Step {
    /// One SSE event whose data is `json`.
    pub fn event(json: &Value) -> Self {
        Self::Bytes(format!("data: {json}\n\n").into_bytes())
    }

    fn chunk(delta: &Value, finish_reason: Option<&str>) -> Self {
        Self::event(&json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": SERVER_MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        }))
    }

    /// A chunk carrying `text`.
    pub fn delta(text: &str) -> Self {
        Self::chunk(&json!({"content": text}), None)
    }

    /// The first chunk most servers send: the role, no text.
    pub fn role() -> Self {
        Self::chunk(&json!({"role": "assistant", "content": ""}), None)
    }

    /// The chunk carrying the finish reason.
    pub fn finish(reason: &str) -> Self {
        Self::chunk(&json!({}), Some(reason))
    }

    /// The usage chunk (`stream_options.include_usage`): empty `choices`.
    pub fn usage(prompt: u64, completion: u64) -> Self {
        Self::event(&json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": SERVER_MODEL,
            "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        }))
    }

    /// An `error` object inside the stream, as some servers send on failure.
    pub fn error(message: &str) -> Self {
        Self::event(&json!({"error": {"message": message, "type": "server_error"}}))
    }

    /// `data: [DONE]`.
    pub fn done() -> Self {
        Self::Bytes(b"data: [DONE]\n\n".to_vec())
    }

    /// Raw text, written as is.
    pub fn raw(text: &str) -> Self {
        Self::Bytes(text.as_bytes().to_vec())
    }

    /// A pause of `ms` milliseconds.
    pub fn pause(ms: u64) -> Self {
        Self::Delay(Duration::from_millis(ms))
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON (`null` when it was not JSON).
    pub body: Value,
}

impl Recorded {
    /// A header's value, when present and printable.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `(role, content)` of every message of the body, in order.
    #[must_use]
    pub fn messages(&self) -> Vec<(String, String)> {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        self.body["messages"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|m| (text(&m["role"]), text(&m["content"])))
                    .collect()
            })
            .unwrap_or_default()
    }
}

struct State {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    gone: watch::Sender<usize>,
    connections: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running fake server; it stops when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Starts a server on `127.0.0.1:0` that answers with `replies`, in order.
    ///
    /// # Panics
    /// When no loopback port can be bound (a test environment failure).
    pub async fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fake server binds a loopback port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let state = Arc::new(State {
            replies: Mutex::new(replies.into()),
            requests: Mutex::new(Vec::new()),
            gone: watch::channel(0).0,
            connections: AtomicUsize::new(0),
        });
        let accept_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&accept_state);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// The base URL to configure a model with: `http://127.0.0.1:PORT/v1`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in order.
    #[must_use]
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// The only request received.
    ///
    /// # Panics
    /// When there were none or several (the test's assertion).
    #[must_use]
    pub fn only_request(&self) -> Recorded {
        let mut all = self.requests();
        assert_eq!(
            all.len(),
            1,
            "expected exactly one request, got {}",
            all.len()
        );
        all.remove(0)
    }

    /// How many TCP connections were accepted.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// How many streams have seen their client go away before they ended.
    #[must_use]
    pub fn gone(&self) -> usize {
        *self.state.gone.borrow()
    }

    /// Waits (up to 10 s) until `n` streams have seen their client go away; false
    /// when that did not happen in time.
    pub async fn wait_gone(&self, n: usize) -> bool {
        let mut rx = self.state.gone.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|gone| *gone >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    lock(&state.requests).push(Recorded {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    });
    let reply = lock(&state.replies).pop_front();
    match reply {
        None => full(500, r#"{"error":{"message":"unscripted request"}}"#),
        Some(Reply::Status {
            status,
            headers,
            body,
        }) => {
            let mut response = full(status, body);
            for (name, value) in headers {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        Some(Reply::Json(value)) => full(200, value.to_string()),
        Some(Reply::Stream(steps)) => {
            let (tx, rx) = mpsc::channel::<Bytes>(1);
            tokio::spawn(play(steps, tx, state));
            let frames = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            response
        }
    }
}

/// Writes the steps of a stream; counts the client going away.
async fn play(steps: Vec<Step>, tx: mpsc::Sender<Bytes>, state: Arc<State>) {
    for step in steps {
        let sent = match step {
            Step::Bytes(b) => tx.send(Bytes::from(b)).await.is_ok(),
            Step::Delay(d) => {
                tokio::time::sleep(d).await;
                true
            }
            Step::Hang => loop {
                if tx.send(Bytes::from_static(b": ping\n\n")).await.is_err() {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            },
        };
        if !sent {
            state.gone.send_modify(|n| *n += 1);
            return;
        }
    }
}
