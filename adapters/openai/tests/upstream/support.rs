//! A fake OpenAI-compatible server on 127.0.0.1:0: it answers `POST .../chat/completions`
//! from a script of replies, records every request, and notices when a client goes
//! away in the middle of a streamed answer.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
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

/// The model name the fake server reports.
pub(crate) const SERVER_MODEL: &str = "fake-model-2024";

/// How long a test waits for the server to notice something.
const WAIT: Duration = Duration::from_secs(10);

/// One scripted answer.
pub(crate) enum Reply {
    /// A non-2xx (or any) status with headers and a raw body.
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// `200 application/json` with this body.
    Json(Value),
    /// `200 text/event-stream`, written step by step.
    Stream(Vec<Step>),
}

/// One step of a streamed answer.
pub(crate) enum Step {
    /// Write these bytes as one body frame.
    Bytes(Vec<u8>),
    /// Wait before the next step.
    Delay(Duration),
    /// Send nothing but `: ping` comments (every 20 ms) until the client goes away.
    Hang,
}

/// A request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `(role, content)` of every message sent.
    pub(crate) fn messages(&self) -> Vec<(String, String)> {
        self.body["messages"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|m| {
                        (
                            m["role"].as_str().unwrap_or("?").to_owned(),
                            m["content"].as_str().unwrap_or("?").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

struct State {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    /// Streams whose client went away before the stream ended.
    gone: watch::Sender<usize>,
    /// TCP connections accepted.
    connections: std::sync::atomic::AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running fake server; stops when dropped.
pub(crate) struct FakeServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Starts a server that answers with `replies`, in order (then 500s).
    pub(crate) async fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            replies: Mutex::new(replies.into()),
            requests: Mutex::new(Vec::new()),
            gone: watch::channel(0).0,
            connections: std::sync::atomic::AtomicUsize::new(0),
        });
        let accept_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                accept_state
                    .connections
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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

    /// The base URL to configure the model with (`http://127.0.0.1:port/v1`).
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// The only request received; fails the test if there were more or none.
    pub(crate) fn only_request(&self) -> Recorded {
        let all = self.requests();
        assert_eq!(
            all.len(),
            1,
            "expected exactly one request, got {}",
            all.len()
        );
        all.into_iter().next().expect("one request")
    }

    /// Waits (up to 10 s) until `n` streams have seen their client go away.
    pub(crate) async fn wait_gone(&self, n: usize) -> bool {
        let mut rx = self.state.gone.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|gone| *gone >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// How many TCP connections were accepted.
    pub(crate) fn connections(&self) -> usize {
        self.state
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many streams have seen their client go away.
    pub(crate) fn gone(&self) -> usize {
        *self.state.gone.borrow()
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_str(content_type).expect("ascii"),
    );
    response
}

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    lock(&state.requests).push(Recorded {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    });
    let reply = lock(&state.replies).pop_front();
    match reply {
        None => full(
            500,
            "application/json",
            r#"{"error":{"message":"unscripted"}}"#,
        ),
        Some(Reply::Status {
            status,
            headers,
            body,
        }) => {
            let mut response = full(status, "application/json", body);
            for (name, value) in headers {
                response
                    .headers_mut()
                    .insert(name, HeaderValue::from_str(&value).expect("ascii"));
            }
            response
        }
        Some(Reply::Json(value)) => full(200, "application/json", value.to_string()),
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
                "content-type",
                HeaderValue::from_static("text/event-stream"),
            );
            response
        }
    }
}

/// Writes the steps of a stream; notes when the client goes away.
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

// ---- scripted content ---------------------------------------------------------

/// One SSE event carrying `json`.
pub(crate) fn event(json: &Value) -> Vec<u8> {
    format!("data: {json}\n\n").into_bytes()
}

/// A chunk carrying `text`.
pub(crate) fn delta(text: &str) -> Step {
    Step::Bytes(event(&json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": SERVER_MODEL,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]
    })))
}

/// The first chunk most servers send: the role, no text.
pub(crate) fn role_chunk() -> Step {
    Step::Bytes(event(&json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": SERVER_MODEL,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]
    })))
}

/// The chunk with the finish reason.
pub(crate) fn finish(reason: &str) -> Step {
    Step::Bytes(event(&json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": SERVER_MODEL,
        "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]
    })))
}

/// The usage chunk (`stream_options.include_usage`): empty choices.
pub(crate) fn usage(prompt: u64, completion: u64) -> Step {
    Step::Bytes(event(&json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": SERVER_MODEL,
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    })))
}

/// `data: [DONE]`.
pub(crate) fn done() -> Step {
    Step::Bytes(b"data: [DONE]\n\n".to_vec())
}

/// Raw bytes.
pub(crate) fn raw(text: &str) -> Step {
    Step::Bytes(text.as_bytes().to_vec())
}

/// A pause.
pub(crate) fn pause(ms: u64) -> Step {
    Step::Delay(Duration::from_millis(ms))
}

/// A complete, well-formed streamed answer of `pieces`.
pub(crate) fn answer_stream(pieces: &[&str]) -> Reply {
    let mut steps = vec![role_chunk()];
    steps.extend(pieces.iter().map(|p| delta(p)));
    steps.extend([finish("stop"), usage(11, 7), done()]);
    Reply::Stream(steps)
}

/// A status reply with an OpenAI-style error body.
pub(crate) fn status(code: u16, message: &str) -> Reply {
    Reply::Status {
        status: code,
        headers: Vec::new(),
        body: json!({"error": {"message": message, "type": "test"}}).to_string(),
    }
}

/// A non-streamed answer.
pub(crate) fn completion(text: &str, reason: &str) -> Reply {
    Reply::Json(json!({
        "id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": SERVER_MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
    }))
}
