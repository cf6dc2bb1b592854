//! `POST /messages/chat/` and the streamed variants `POST|GET /messages/chat/stream/`.
//!
//! Validation errors and failures known before the model is asked (missing or
//! inactive session, store down) are JSON errors; once the stream has started, a
//! failure is its last event.

use bytes::Bytes;
use colloquy_core::access::Operation;
use colloquy_core::ratelimit::Action;
use colloquy_core::{validate, NewMessage, Resume, ResumePoint, ServiceError, ValidationError};
use http::request::Parts;
use http::StatusCode;
use uuid::Uuid;

use crate::app::App;
use crate::caller::Visitor;
use crate::error::ApiError;
use crate::idempotency::{self, Guard};
use crate::shares::client_key;
use crate::{body, json, query, sse, Response};

/// The access check and rate limits of a chat turn.
async fn allow_chat(app: &App, v: &Visitor, new: &NewMessage) -> Result<(), ApiError> {
    app.allow(
        v,
        Operation::Chat(&new.session),
        Some(Action::Chat(&new.session)),
    )
    .await
}

/// `POST /messages/chat/` → 200 `{response, session_id, message_id, response_id}`.
pub(super) async fn chat<B>(
    app: &App,
    v: &Visitor,
    parts: &Parts,
    body: B,
) -> Result<Response, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let value = body::read_json(&parts.headers, body, app.config.max_body_bytes).await?;
    let new = validate::chat_request(&value, app.service.limits())?;
    allow_chat(app, v, &new).await?;
    let ticket = match idempotency::begin(app, v, parts, &value).await? {
        Guard::Replay(response) => return Ok(response),
        Guard::Proceed(ticket) => ticket,
    };
    let reply = app.service.chat_from(v.ip.map(client_key), new).await?;
    Ok(idempotency::respond(ticket, StatusCode::OK, &reply).await)
}

/// `POST /messages/chat/stream/` → 200 `text/event-stream`.
pub(super) async fn stream_post<B>(
    app: &App,
    v: &Visitor,
    parts: &Parts,
    body: B,
) -> Result<Response, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let value = body::read_json(&parts.headers, body, app.config.max_body_bytes).await?;
    let new = validate::chat_request(&value, app.service.limits())?;
    allow_chat(app, v, &new).await?;
    let ticket = match idempotency::begin(app, v, parts, &value).await? {
        Guard::Replay(response) => return Ok(response),
        Guard::Proceed(ticket) => ticket,
    };
    let stream = app
        .service
        .chat_stream_from(v.ip.map(client_key), new)
        .await?;
    if let Some(ticket) = ticket {
        ticket.stream(stream.response_id).await;
    }
    Ok(sse::response(stream, app.config.sse_keep_alive))
}

/// `GET /messages/chat/stream/?session_id=...&message=...` (for `EventSource`).
///
/// With `Last-Event-ID` it is an `EventSource` reconnecting: it resumes the answer
/// the id names (or the session's running one) and never stores the message again.
pub(super) async fn stream_get(
    app: &App,
    v: &Visitor,
    parts: &Parts,
) -> Result<Response, ApiError> {
    let new = validate::chat_query(&query::pairs(&parts.uri)?, app.service.limits())?;
    if let Some(after) = last_event_id(parts)? {
        app.allow(v, Operation::Chat(&new.session), None).await?;
        let mut hold = None;
        let resumed = match after.response {
            Some(response) => {
                let session = app.service.get_session(&new.session).await?;
                hold = Some(app.resumes.take(response, v.ip)?);
                let resumed = app.service.resume(response, Some(after)).await?;
                if let Resume::Stream(stream) = &resumed {
                    if stream.session_id != session.session_id {
                        return Err(ServiceError::MessageNotFound.into());
                    }
                }
                resumed
            }
            None => app.service.attach(&new.session, Some(after)).await?,
        };
        return resumed_response(app, v, resumed, hold);
    }
    allow_chat(app, v, &new).await?;
    let stream = app
        .service
        .chat_stream_from(v.ip.map(client_key), new)
        .await?;
    Ok(sse::response(stream, app.config.sse_keep_alive))
}

/// The client's resume point: the `Last-Event-ID` header, or `?last_event_id=`.
fn last_event_id(parts: &Parts) -> Result<Option<ResumePoint>, ApiError> {
    let header = parts
        .headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let query = query::pairs(&parts.uri)?
        .into_iter()
        .rev()
        .find(|(k, _)| k == "last_event_id")
        .map(|(_, v)| v);
    match header.or(query).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(id) => ResumePoint::parse(&id).map(Some).ok_or_else(|| {
            ValidationError::invalid(
                "last_event_id",
                "must be an event id this server sent (<response_id>:<seq>:<end>) or a sequence number",
            )
            .into()
        }),
    }
}

/// The events of a resume, or 204 when the client has the whole answer (which also
/// tells an `EventSource` to stop reconnecting).
/// A resume holds a place under the caps on resumes per response and per client
/// (429 `too_many_streams` when one is full) until its stream ends: `hold`, taken
/// before the resume when the response was known, or taken here.
fn resumed_response(
    app: &App,
    v: &Visitor,
    resumed: Resume,
    hold: Option<sse::ResumeHold>,
) -> Result<Response, ApiError> {
    match resumed {
        Resume::Stream(stream) => {
            let hold = match hold {
                Some(hold) => hold,
                None => app.resumes.take(stream.response_id, v.ip)?,
            };
            Ok(sse::resumed(stream, app.config.sse_keep_alive, hold))
        }
        Resume::Finished => Ok(json::empty(StatusCode::NO_CONTENT)),
    }
}

/// A response id from the path; one that is not a UUID names no answer (404).
fn response_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(id).map_err(|_| ApiError::from(ServiceError::MessageNotFound))
}

/// `GET /messages/chat/stream/{response_id}/` → the answer's events after
/// `Last-Event-ID` (all of them without one), then the live ones to the end.
pub(super) async fn resume(
    app: &App,
    v: &Visitor,
    id: &str,
    parts: &Parts,
) -> Result<Response, ApiError> {
    app.allow(v, Operation::ByMessageId, None).await?;
    let response = response_id(id)?;
    let after = last_event_id(parts)?;
    if after
        .and_then(|p| p.response)
        .is_some_and(|r| r != response)
    {
        return Err(ValidationError::invalid(
            "last_event_id",
            "names another response than the path",
        )
        .into());
    }
    let hold = app.resumes.take(response, v.ip)?;
    let resumed = app.service.resume(response, after).await?;
    resumed_response(app, v, resumed, Some(hold))
}

/// `POST /messages/chat/stream/{response_id}/cancel/` → 202: the generation stops
/// wherever it runs; 409 `response_complete` when it already ended.
pub(super) async fn cancel(app: &App, v: &Visitor, id: &str) -> Result<Response, ApiError> {
    app.allow(v, Operation::ByMessageId, None).await?;
    let response = response_id(id)?;
    app.service.cancel(response).await?;
    Ok(json::response(
        StatusCode::ACCEPTED,
        &serde_json::json!({"response_id": response, "status": "cancelling"}),
    ))
}
