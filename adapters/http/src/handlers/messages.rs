//! `/api/chats/messages/` and `/api/chats/messages/{id}/`.

use bytes::Bytes;
use colloquy_core::{validate, ServiceError};
use http::request::Parts;
use http::StatusCode;
use uuid::Uuid;

use crate::app::App;
use crate::error::ApiError;
use crate::{body, json, query, Response};

/// A message id from the path; one that is not a UUID names no message (404).
fn message_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::from(ServiceError::MessageNotFound))
}

/// `GET /messages/?session_id=...` → 200 array in write order.
pub(super) async fn list(app: &App, parts: &Parts) -> Result<Response, ApiError> {
    let (session, filter, page) = validate::message_query(&query::pairs(&parts.uri)?)?;
    let messages = app.service.list_messages(&session, &filter, page).await?;
    Ok(json::response(StatusCode::OK, &messages))
}

/// `POST /messages/` → 201 message.
pub(super) async fn create<B>(app: &App, parts: &Parts, body: B) -> Result<Response, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let value = body::read_json(&parts.headers, body, app.config.max_body_bytes).await?;
    let new = validate::new_message(&value, app.service.limits())?;
    let message = app.service.create_message(new).await?;
    Ok(json::response(StatusCode::CREATED, &message))
}

/// `GET /messages/{id}/` → 200 message.
pub(super) async fn get(app: &App, id: &str) -> Result<Response, ApiError> {
    let message = app.service.get_message(message_id(id)?).await?;
    Ok(json::response(StatusCode::OK, &message))
}

/// `DELETE /messages/{id}/` → 204 (soft delete).
pub(super) async fn delete(app: &App, id: &str) -> Result<Response, ApiError> {
    app.service.delete_message(message_id(id)?).await?;
    Ok(json::empty(StatusCode::NO_CONTENT))
}
