//! `Idempotency-Key` on the POST endpoints: a retry with the same key and the same
//! body gets the first result (same ids, same status; for a stream, the same answer
//! from its first event) instead of a second write.
//!
//! A key is scoped by route and by a scope the pipeline gives (the session the body
//! names, by its UUID once resolved; creating a session, the client's address, for
//! the operator and in `open` mode only), so one visitor cannot read another's result
//! by guessing a key. The body's fingerprint is a SHA-256 of its canonical JSON: the
//! same key with another body is 422 `idempotency_mismatch`. Only successes are
//! kept; a failed request frees its key, so its retry runs again.

use std::sync::Arc;
use std::time::Duration;

use colloquy_core::idempotency::{Claim, IdempotencyStore, Recorded};
use colloquy_core::{Resume, ServiceError, ValidationError};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::App;
use crate::error::ApiError;
use crate::{json, sse, Response};

/// The request header.
const HEADER: &str = "idempotency-key";
/// The response header on a replayed result.
const REPLAYED: &str = "idempotent-replayed";
/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;
/// How long a retry waits for the first request with its key to finish.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(10);
/// How often it looks meanwhile.
const POLL: Duration = Duration::from_millis(50);

/// What to do with a request.
pub(crate) enum Guard {
    /// Do the work (recording its result when the request has a key).
    Proceed(Option<Ticket>),
    /// Answer with the first result.
    Replay(Response),
}

/// A claimed key: record the result with [`Ticket::json`] or [`Ticket::stream`];
/// dropped without, it frees the key.
pub(crate) struct Ticket {
    store: Arc<dyn IdempotencyStore>,
    key: String,
    fingerprint: String,
    done: bool,
}

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn mismatch() -> ApiError {
    ApiError::from(ServiceError::IdempotencyMismatch)
}

/// Claims the request's key, if it has one, within `scope` (chosen by the pipeline:
/// the session, or the client's address); a retry gets the first result.
pub(crate) async fn begin(
    app: &App,
    parts: &Parts,
    body: &Value,
    scope: &str,
) -> Result<Guard, ApiError> {
    let Some(key) = parts.headers.get(HEADER) else {
        return Ok(Guard::Proceed(None));
    };
    let key = key
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .ok_or_else(|| {
            ValidationError::invalid(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )
        })?;
    let route = parts.uri.path().trim_end_matches('/');
    let storage_key = hex_sha256(&[route.as_bytes(), scope.as_bytes(), key.as_bytes()]);
    // serde_json's map is ordered: equal JSON serializes equally.
    let fingerprint = hex_sha256(&[body.to_string().as_bytes()]);
    let store = Arc::clone(app.service.idempotency());
    let deadline = tokio::time::Instant::now() + WAIT_FOR_FIRST;
    loop {
        match store
            .claim(&storage_key, &fingerprint)
            .await
            .map_err(ServiceError::from)?
        {
            Claim::Claimed => {
                return Ok(Guard::Proceed(Some(Ticket {
                    store,
                    key: storage_key,
                    fingerprint,
                    done: false,
                })))
            }
            Claim::Done(record) if record.fingerprint != fingerprint => return Err(mismatch()),
            Claim::Done(record) => return replay(app, record).await.map(Guard::Replay),
            Claim::InProgress { fingerprint: other } if other != fingerprint => {
                return Err(mismatch())
            }
            Claim::InProgress { .. } if tokio::time::Instant::now() >= deadline => {
                return Err(ServiceError::RequestInProgress.into())
            }
            Claim::InProgress { .. } => tokio::time::sleep(POLL).await,
        }
    }
}

/// The first result again.
async fn replay(app: &App, record: Recorded) -> Result<Response, ApiError> {
    let mut response = match record.stream {
        // A chat stream in a session a person had: its one event again.
        Some(answer) if answer.is_nil() => sse::handoff_response(record.body),
        Some(answer) => match app.service.resume(answer, None).await? {
            Resume::Stream(stream) => sse::response(stream, app.config.sse_keep_alive),
            Resume::Finished => json::empty(StatusCode::NO_CONTENT),
        },
        None => {
            let status = StatusCode::from_u16(record.status).map_err(|_| ApiError::internal())?;
            json::raw(status, record.body)
        }
    };
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}

impl Ticket {
    /// Records a JSON result and returns it as the response.
    pub(crate) async fn json<T: Serialize>(mut self, status: StatusCode, body: &T) -> Response {
        let body = serde_json::to_string(body).unwrap_or_default();
        self.record(status, body.clone(), None).await;
        json::raw(status, body)
    }

    /// Records the one event of a chat stream in a session a person has (no answer
    /// was generated): retries get it again.
    pub(crate) async fn handoff(mut self, event: String) {
        self.record(StatusCode::OK, event, Some(Uuid::nil())).await;
    }

    /// Records a started stream: retries attach to `answer`.
    pub(crate) async fn stream(mut self, answer: Uuid) {
        self.record(StatusCode::OK, String::new(), Some(answer))
            .await;
    }

    async fn record(&mut self, status: StatusCode, body: String, stream: Option<Uuid>) {
        let record = Recorded {
            fingerprint: self.fingerprint.clone(),
            status: status.as_u16(),
            body,
            stream,
        };
        match self.store.complete(&self.key, &record).await {
            Ok(()) => self.done = true,
            // The work is done and answered; a retry would do it again. Logged.
            Err(e) => {
                tracing::warn!(error = %e, "could not record an Idempotency-Key result");
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let store = Arc::clone(&self.store);
        let key = std::mem::take(&mut self.key);
        // Async cleanup from a destructor: a task; the claim expires by itself if
        // the runtime is gone.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.release(&key).await {
                    tracing::debug!(error = %e, "could not free an Idempotency-Key");
                }
            });
        }
    }
}

/// Sends a JSON result through `ticket` when there is one.
pub(crate) async fn respond<T: Serialize>(
    ticket: Option<Ticket>,
    status: StatusCode,
    body: &T,
) -> Response {
    match ticket {
        Some(ticket) => ticket.json(status, body).await,
        None => json::response(status, body),
    }
}
