//! `/api/chats/messages/` and `/api/chats/messages/{id}/`.

use colloquy_core::access::{AccessMode, Caller};
use colloquy_core::{MessageQuery, MessageView, NewMessage, SessionRef};
use http::{StatusCode, Uri};
use uuid::Uuid;

use crate::app::App;
use crate::caller::Visitor;
use crate::error::ApiError;
use crate::idempotency::{self, Ticket};
use crate::pipeline::Pairs;
use crate::{json, link, Response};

/// `GET /messages/?session_id=...` → 200 array (write order, or newest first with
/// `order=desc`), with a `Link` to the next page when the limit cut it.
pub(super) async fn list(
    app: &App,
    uri: &Uri,
    pairs: &Pairs,
    session: &SessionRef,
    query: &MessageQuery,
) -> Result<Response, ApiError> {
    let page = app.service.list_messages(session, query).await?;
    let mut response = json::response(StatusCode::OK, &page.messages);
    if let Some(next) = page.next {
        link::next_messages(&mut response, uri, pairs, next);
    }
    Ok(response)
}

/// `POST /messages/` → 201 message.
pub(super) async fn create(
    app: &App,
    new: NewMessage,
    ticket: Option<Ticket>,
) -> Result<Response, ApiError> {
    let message = app.service.create_message(new).await?;
    Ok(idempotency::respond(ticket, StatusCode::CREATED, &message).await)
}

/// `GET /messages/{id}/` → 200 message.
pub(super) async fn get(app: &App, v: &Visitor, id: Uuid) -> Result<Response, ApiError> {
    let message = app.service.get_message(id).await?;
    message_response(app, v, &message)
}

/// 200 with `message` as the caller may see it. A message id is a capability for
/// the message alone: to a visitor in `public` mode its `session` is `null`, as the
/// session's ids are capabilities of their own (a message id is time-ordered and
/// less random).
pub(super) fn message_response(
    app: &App,
    v: &Visitor,
    message: &MessageView,
) -> Result<Response, ApiError> {
    if app.config.access == AccessMode::Public && v.caller == Caller::Visitor {
        let mut value = serde_json::to_value(message).map_err(|_| ApiError::internal())?;
        if let Some(object) = value.as_object_mut() {
            object.insert("session".to_owned(), serde_json::Value::Null);
        }
        return Ok(json::response(StatusCode::OK, &value));
    }
    Ok(json::response(StatusCode::OK, message))
}

/// `DELETE /messages/{id}/` → 204 (soft delete).
pub(super) async fn delete(app: &App, id: Uuid) -> Result<Response, ApiError> {
    app.service.delete_message(id).await?;
    Ok(json::empty(StatusCode::NO_CONTENT))
}
