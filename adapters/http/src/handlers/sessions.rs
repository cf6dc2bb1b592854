//! `/api/chats/sessions/` and `/api/chats/sessions/{id}/`.

use bytes::Bytes;
use colloquy_core::access::Operation;
use colloquy_core::ratelimit::Action;
use colloquy_core::{validate, SessionRef, SessionView};
use http::request::Parts;
use http::StatusCode;

use crate::app::App;
use crate::caller::Visitor;
use crate::error::ApiError;
use crate::idempotency::{self, Guard};
use crate::{body, json, link, query, Response};

/// `POST /sessions/` → 201 session.
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
    let new = validate::new_session(&value, app.service.limits())?;
    app.allow(
        v,
        Operation::CreateSession(&new),
        Some(Action::CreateSession),
    )
    .await?;
    let ticket = match idempotency::begin(app, v, parts, &value).await? {
        Guard::Replay(response) => return Ok(response),
        Guard::Proceed(ticket) => ticket,
    };
    let session = SessionView {
        session: app.service.create_session(new).await?,
        active_response_id: None,
    };
    Ok(idempotency::respond(ticket, StatusCode::CREATED, &session).await)
}

/// `GET /sessions/{id}/` → 200 session; `{id}` is the UUID or the session_id.
pub(super) async fn get(app: &App, v: &Visitor, id: &str) -> Result<Response, ApiError> {
    let reference = SessionRef::parse(id);
    app.allow(v, Operation::ReadSession(&reference), None)
        .await?;
    let session = app.service.session_view(&reference).await?;
    Ok(json::response(StatusCode::OK, &session))
}

/// `PATCH /sessions/{id}/` → 200 session.
pub(super) async fn update<B>(
    app: &App,
    v: &Visitor,
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
    let reference = SessionRef::parse(id);
    app.allow(v, Operation::UpdateSession(&reference, &patch), None)
        .await?;
    let session = app.service.update_session(&reference, patch).await?;
    let session = app.service.view(session).await?;
    Ok(json::response(StatusCode::OK, &session))
}

/// `DELETE /sessions/{id}/` → 204.
pub(super) async fn delete(app: &App, v: &Visitor, id: &str) -> Result<Response, ApiError> {
    let reference = SessionRef::parse(id);
    app.allow(v, Operation::DeleteSession(&reference), None)
        .await?;
    app.service.delete_session(&reference).await?;
    Ok(json::empty(StatusCode::NO_CONTENT))
}

/// `GET /sessions/` → 200 array, newest first.
pub(super) async fn list(app: &App, v: &Visitor, parts: &Parts) -> Result<Response, ApiError> {
    app.allow(v, Operation::ListSessions, None).await?;
    let pairs = query::pairs(&parts.uri)?;
    let (filter, page) = validate::session_query(&pairs)?;
    let page = app.service.list_sessions(&filter, page).await?;
    let mut response = json::response(StatusCode::OK, &page.sessions);
    if let Some(next) = page.next {
        link::next_sessions(&mut response, &parts.uri, &pairs, next);
    }
    Ok(response)
}

/// `GET /sessions/{id}/export/` → 200 `{"session": ..., "messages": [...]}`: the
/// session with every live message in write order, for the operator.
pub(super) async fn export(app: &App, v: &Visitor, id: &str) -> Result<Response, ApiError> {
    let reference = SessionRef::parse(id);
    app.allow(v, Operation::ExportSession(&reference), None)
        .await?;
    let export = app.service.export_session(&reference).await?;
    Ok(json::response(StatusCode::OK, &export))
}
