//! `/api/chats/messages/` and `/api/chats/messages/{id}/`.

use bytes::Bytes;
use colloquy_core::access::Operation;
use colloquy_core::ratelimit::Action;
use colloquy_core::{validate, ServiceError};
use http::request::Parts;
use http::StatusCode;
use uuid::Uuid;

use crate::app::App;
use crate::caller::Visitor;
use crate::error::ApiError;
use crate::idempotency::{self, Guard};
use crate::{body, json, link, query, Response};

/// A message id from the path; one that is not a UUID names no message (404).
fn message_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::from(ServiceError::MessageNotFound))
}

/// `GET /messages/?session_id=...` → 200 array (write order, or newest first with
/// `order=desc`), with a `Link` to the next page when the limit cut it.
pub(super) async fn list(app: &App, v: &Visitor, parts: &Parts) -> Result<Response, ApiError> {
    let pairs = query::pairs(&parts.uri)?;
    let (session, query) = validate::message_query(&pairs)?;
    app.allow(v, Operation::ListMessages(&session), None)
        .await?;
    let page = app.service.list_messages(&session, &query).await?;
    let mut response = json::response(StatusCode::OK, &page.messages);
    if let Some(next) = page.next {
        link::next_messages(&mut response, &parts.uri, &pairs, next);
    }
    Ok(response)
}

/// `POST /messages/` → 201 message.
pub(super) async fn create<B>(
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
    let new = validate::new_message(&value, app.service.limits())?;
    let action = Action::CreateMessage(&new.session);
    app.allow(v, Operation::CreateMessage(&new), Some(action))
        .await?;
    let ticket = match idempotency::begin(app, v, parts, &value).await? {
        Guard::Replay(response) => return Ok(response),
        Guard::Proceed(ticket) => ticket,
    };
    let message = app.service.create_message(new).await?;
    Ok(idempotency::respond(ticket, StatusCode::CREATED, &message).await)
}

/// `GET /messages/{id}/` → 200 message.
pub(super) async fn get(app: &App, v: &Visitor, id: &str) -> Result<Response, ApiError> {
    app.allow(v, Operation::ByMessageId, None).await?;
    let message = app.service.get_message(message_id(id)?).await?;
    Ok(json::response(StatusCode::OK, &message))
}

/// `DELETE /messages/{id}/` → 204 (soft delete).
pub(super) async fn delete(app: &App, v: &Visitor, id: &str) -> Result<Response, ApiError> {
    app.allow(v, Operation::ByMessageId, None).await?;
    app.service.delete_message(message_id(id)?).await?;
    Ok(json::empty(StatusCode::NO_CONTENT))
}
