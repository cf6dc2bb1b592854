//! `POST /messages/chat/` and the streamed variants `POST|GET /messages/chat/stream/`.
//!
//! Validation errors and failures known before the model is asked (missing or
//! inactive session, store down) are JSON errors; once the stream has started, a
//! failure is its last event.

use bytes::Bytes;
use colloquy_core::validate;
use http::request::Parts;
use http::StatusCode;

use crate::app::App;
use crate::error::ApiError;
use crate::{body, json, query, sse, Response};

/// `POST /messages/chat/` → 200 `{response, session_id, message_id, response_id}`.
pub(super) async fn chat<B>(app: &App, parts: &Parts, body: B) -> Result<Response, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let value = body::read_json(&parts.headers, body, app.config.max_body_bytes).await?;
    let new = validate::chat_request(&value, app.service.limits())?;
    let reply = app.service.chat(new).await?;
    Ok(json::response(StatusCode::OK, &reply))
}

/// `POST /messages/chat/stream/` → 200 `text/event-stream`.
pub(super) async fn stream_post<B>(app: &App, parts: &Parts, body: B) -> Result<Response, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let value = body::read_json(&parts.headers, body, app.config.max_body_bytes).await?;
    let new = validate::chat_request(&value, app.service.limits())?;
    let stream = app.service.chat_stream(new).await?;
    Ok(sse::response(stream, app.config.sse_keep_alive))
}

/// `GET /messages/chat/stream/?session_id=...&message=...` (for `EventSource`).
pub(super) async fn stream_get(app: &App, parts: &Parts) -> Result<Response, ApiError> {
    let new = validate::chat_query(&query::pairs(&parts.uri)?, app.service.limits())?;
    let stream = app.service.chat_stream(new).await?;
    Ok(sse::response(stream, app.config.sse_keep_alive))
}
