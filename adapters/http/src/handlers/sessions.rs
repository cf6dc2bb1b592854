//! `/api/chats/sessions/` and `/api/chats/sessions/{id}/`.

use bytes::Bytes;
use colloquy_core::{validate, SessionRef};
use http::request::Parts;
use http::StatusCode;

use crate::app::App;
use crate::error::ApiError;
use crate::{body, json, query, Response};

/// `POST /sessions/` → 201 session.
pub(super) async fn create<B>(app: &App, parts: &Parts, body: B) -> Result<Response, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let value = body::read_json(&parts.headers, body, app.config.max_body_bytes).await?;
    let new = validate::new_session(&value, app.service.limits())?;
    let session = app.service.create_session(new).await?;
    Ok(json::response(StatusCode::CREATED, &session))
}

/// `GET /sessions/{id}/` → 200 session; `{id}` is the UUID or the session_id.
pub(super) async fn get(app: &App, id: &str) -> Result<Response, ApiError> {
    let session = app.service.get_session(&SessionRef::parse(id)).await?;
    Ok(json::response(StatusCode::OK, &session))
}

/// `PATCH /sessions/{id}/` → 200 session.
pub(super) async fn update<B>(
    app: &App,
    id: &str,
    parts: &Parts,
    body: B,
) -> Result<Response, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let value = body::read_json(&parts.headers, body, app.config.max_body_bytes).await?;
    let patch = validate::session_patch(&value, app.service.limits())?;
    let session = app
        .service
        .update_session(&SessionRef::parse(id), patch)
        .await?;
    Ok(json::response(StatusCode::OK, &session))
}

/// `DELETE /sessions/{id}/` → 204.
pub(super) async fn delete(app: &App, id: &str) -> Result<Response, ApiError> {
    app.service.delete_session(&SessionRef::parse(id)).await?;
    Ok(json::empty(StatusCode::NO_CONTENT))
}

/// `GET /sessions/` → 200 array, newest first.
pub(super) async fn list(app: &App, parts: &Parts) -> Result<Response, ApiError> {
    let (filter, page) = validate::session_query(&query::pairs(&parts.uri)?)?;
    let sessions = app.service.list_sessions(&filter, page).await?;
    Ok(json::response(StatusCode::OK, &sessions))
}
