//! A fake OpenAI-compatible embeddings server for tests: deterministic hashed
//! bag-of-words vectors, so similar wording gives similar vectors without a model.
//!
//! ```
//! use colloquy_knowledge::testing::fake::FakeEmbeddings;
//! # async fn demo() {
//! let server = FakeEmbeddings::start(256).await;
//! let base_url = server.base_url(); // http://127.0.0.1:PORT/v1
//! # let _ = base_url;
//! # }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The model name the fake server reports.
pub const FAKE_MODEL: &str = "fake-hashed-bow";

/// Lower-case, accents folded (Latin letters), so `Café` and `cafe` are one word.
fn fold(c: char) -> char {
    let lower = c.to_lowercase().next().unwrap_or(c);
    match lower {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'ď' => 'd',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' => 'i',
        'ñ' | 'ń' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => 'u',
        'ý' | 'ÿ' => 'y',
        'ś' | 'š' => 's',
        'ź' | 'ż' | 'ž' => 'z',
        'ł' => 'l',
        'ř' => 'r',
        'ť' => 't',
        other => other,
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The fake vector of `text`: each word (accents folded, lower case) adds ±1 to a
/// hashed dimension; the result has unit length (zero for a text without words).
#[must_use]
pub fn hashed_bag_of_words(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0f32; dims.max(1)];
    let folded: String = text.chars().map(fold).collect();
    for word in folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = fnv1a(word.as_bytes());
        let slot = usize::try_from(h % dims.max(1) as u64).unwrap_or(0);
        v[slot] += if h >> 63 == 0 { 1.0 } else { -1.0 };
    }
    crate::normalized(v)
}

struct State {
    dims: usize,
    requests: AtomicUsize,
    texts: AtomicUsize,
    failing: AtomicBool,
}

/// The running fake server; it stops when dropped.
pub struct FakeEmbeddings {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeEmbeddings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeEmbeddings")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeEmbeddings {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeEmbeddings {
    /// Starts a server on `127.0.0.1:0` whose vectors have `dims` dimensions.
    ///
    /// # Panics
    /// When no loopback port can be bound (a test environment failure).
    pub async fn start(dims: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fake embeddings server binds a loopback port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let state = Arc::new(State {
            dims,
            requests: AtomicUsize::new(0),
            texts: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        });
        let accept_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&accept_state);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// The base URL to configure an embedder with: `http://127.0.0.1:PORT/v1`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests answered so far (failed ones included).
    #[must_use]
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Texts embedded so far.
    #[must_use]
    pub fn texts(&self) -> usize {
        self.state.texts.load(Ordering::SeqCst)
    }

    /// While `failing`, every request is answered `503`.
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }
}

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let error = |status, message: &str| respond(status, &json!({"error": {"message": message}}));
    if state.failing.load(Ordering::SeqCst) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "failing on purpose");
    }
    if !req.uri().path().ends_with("/embeddings") {
        return error(StatusCode::NOT_FOUND, "no such endpoint");
    }
    let bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
        return error(StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "input must be a string or an array",
            )
        }
    };
    state.texts.fetch_add(inputs.len(), Ordering::SeqCst);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({"object": "embedding", "index": index,
                   "embedding": hashed_bag_of_words(text, state.dims)})
        })
        .collect();
    respond(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "model": FAKE_MODEL,
                "usage": {"prompt_tokens": 0, "total_tokens": 0}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_words_make_similar_vectors() {
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let a = hashed_bag_of_words("The Team plan costs 40 euros", 256);
        let b = hashed_bag_of_words("team plan price", 256);
        let c = hashed_bag_of_words("refunds within thirty days", 256);
        assert!(dot(&a, &b) > dot(&a, &c));
        assert_eq!(
            hashed_bag_of_words("Café", 64),
            hashed_bag_of_words("cafe", 64)
        );
        assert!(hashed_bag_of_words("", 8).iter().all(|x| *x == 0.0));
    }
}
