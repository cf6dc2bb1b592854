//! `POST /messages/chat/`, the streamed variants `POST|GET /messages/chat/stream/`,
//! and resuming and cancelling a streamed answer.
//!
//! Validation errors and failures known before the model is asked (missing or
//! inactive session, store down) are JSON errors; once the stream has started, a
//! failure is its last event.

use colloquy_core::access::{AccessMode, Caller};
use colloquy_core::{NewMessage, Responder, Resume, ResumePoint, ServiceError, SessionRef};
use http::StatusCode;
use uuid::Uuid;

use crate::app::App;
use crate::caller::Visitor;
use crate::error::ApiError;
use crate::idempotency::{self, Ticket};
use crate::shares::client_key;
use crate::{json, sse, Response};

/// `POST /messages/chat/` → 200 `{response, session_id, message_id, response_id,
/// responder}` (`response` empty and `response_id` null while a person has the
/// session).
pub(super) async fn chat(
    app: &App,
    v: &Visitor,
    new: NewMessage,
    ticket: Option<Ticket>,
) -> Result<Response, ApiError> {
    let reply = app.service.chat_from(v.ip.map(client_key), new).await?;
    Ok(idempotency::respond(ticket, StatusCode::OK, &reply).await)
}

/// `POST /messages/chat/stream/` → 200 `text/event-stream`.
pub(super) async fn stream_post(
    app: &App,
    v: &Visitor,
    new: NewMessage,
    ticket: Option<Ticket>,
) -> Result<Response, ApiError> {
    let stream = app
        .service
        .chat_stream_from(v.ip.map(client_key), new)
        .await?;
    if let Some(ticket) = ticket {
        if stream.responder == Responder::Human {
            ticket.handoff(sse::handoff_event(stream.message_id)).await;
        } else {
            ticket.stream(stream.response_id).await;
        }
    }
    Ok(sse::response(stream, app.config.sse_keep_alive))
}

/// `GET /messages/chat/stream/?session_id=...&message=...` (for `EventSource`).
pub(super) async fn stream_get(
    app: &App,
    v: &Visitor,
    new: NewMessage,
) -> Result<Response, ApiError> {
    let stream = app
        .service
        .chat_stream_from(v.ip.map(client_key), new)
        .await?;
    Ok(sse::response(stream, app.config.sse_keep_alive))
}

/// The chat stream `GET` with `Last-Event-ID`: an `EventSource` reconnecting. It
/// resumes the answer the id names (or the session's running one) and never stores
/// the message again.
pub(super) async fn reconnect(
    app: &App,
    v: &Visitor,
    session: &SessionRef,
    after: ResumePoint,
) -> Result<Response, ApiError> {
    let mut hold = None;
    let resumed = match after.response {
        Some(response) => {
            let session = app.service.get_session(session).await?;
            hold = Some(app.resumes.take(response, v.ip)?);
            let resumed = app.service.resume(response, Some(after)).await?;
            if let Resume::Stream(stream) = &resumed {
                if stream.session_id != session.session_id {
                    return Err(ServiceError::MessageNotFound.into());
                }
            }
            resumed
        }
        None => app.service.attach(session, Some(after)).await?,
    };
    resumed_response(app, v, resumed, hold)
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

/// `GET /messages/chat/stream/{response_id}/` → the answer's events after
/// `Last-Event-ID` (all of them without one), then the live ones to the end.
pub(super) async fn resume(
    app: &App,
    v: &Visitor,
    response: Uuid,
    after: Option<ResumePoint>,
) -> Result<Response, ApiError> {
    let hold = app.resumes.take(response, v.ip)?;
    let resumed = app.service.resume(response, after).await?;
    resumed_response(app, v, resumed, Some(hold))
}

/// `POST /messages/chat/stream/{response_id}/cancel/` → 202: the generation stops
/// wherever it runs; 409 `response_complete` when it already ended — except to a
/// visitor in `public` mode, who gets 404 for an ended answer as for an unknown id, so
/// cancel does not confirm that an id exists.
pub(super) async fn cancel(app: &App, v: &Visitor, response: Uuid) -> Result<Response, ApiError> {
    let public_visitor = app.config.access == AccessMode::Public && v.caller == Caller::Visitor;
    match app.service.cancel(response).await {
        Ok(()) => Ok(json::response(
            StatusCode::ACCEPTED,
            &serde_json::json!({"response_id": response, "status": "cancelling"}),
        )),
        Err(ServiceError::ResponseComplete) if public_visitor => {
            Err(ServiceError::MessageNotFound.into())
        }
        Err(e) => Err(e.into()),
    }
}
