//! `/api/chats/sessions/` and `/api/chats/sessions/{id}/`.

use colloquy_core::{NewSession, Page, SessionFilter, SessionPatch, SessionRef, SessionView};
use http::{StatusCode, Uri};

use crate::app::App;
use crate::error::ApiError;
use crate::idempotency::{self, Ticket};
use crate::pipeline::Pairs;
use crate::{json, link, Response};

/// `POST /sessions/` → 201 session.
pub(super) async fn create(
    app: &App,
    new: NewSession,
    ticket: Option<Ticket>,
) -> Result<Response, ApiError> {
    let session = SessionView {
        session: app.service.create_session(new).await?,
        active_response_id: None,
    };
    Ok(idempotency::respond(ticket, StatusCode::CREATED, &session).await)
}

/// `GET /sessions/{id}/` → 200 session; `{id}` is the UUID or the session_id.
pub(super) async fn get(app: &App, reference: &SessionRef) -> Result<Response, ApiError> {
    let session = app.service.session_view(reference).await?;
    Ok(json::response(StatusCode::OK, &session))
}

/// `PATCH /sessions/{id}/` → 200 session.
pub(super) async fn update(
    app: &App,
    reference: &SessionRef,
    patch: SessionPatch,
) -> Result<Response, ApiError> {
    let session = app.service.update_session(reference, patch).await?;
    let session = app.service.view(session).await?;
    Ok(json::response(StatusCode::OK, &session))
}

/// `POST /sessions/{id}/handoff/` → 200 session with `responder: "human"`: the
/// visitor asks for a person (unchanged when a person already has it).
pub(super) async fn handoff(app: &App, reference: &SessionRef) -> Result<Response, ApiError> {
    let session = app.service.request_handoff(reference).await?;
    let session = app.service.view(session).await?;
    Ok(json::response(StatusCode::OK, &session))
}

/// `DELETE /sessions/{id}/` → 204.
pub(super) async fn delete(app: &App, reference: &SessionRef) -> Result<Response, ApiError> {
    app.service.delete_session(reference).await?;
    Ok(json::empty(StatusCode::NO_CONTENT))
}

/// `GET /sessions/` → 200 array, newest first.
pub(super) async fn list(
    app: &App,
    uri: &Uri,
    pairs: &Pairs,
    filter: &SessionFilter,
    page: Page,
) -> Result<Response, ApiError> {
    let page = app.service.list_sessions(filter, page).await?;
    let mut response = json::response(StatusCode::OK, &page.sessions);
    if let Some(next) = page.next {
        link::next_sessions(&mut response, uri, pairs, next);
    }
    Ok(response)
}

/// `GET /sessions/{id}/export/` → 200 `{"session": ..., "messages": [...]}`: the
/// session with every live message in write order, for the operator.
pub(super) async fn export(app: &App, reference: &SessionRef) -> Result<Response, ApiError> {
    let export = app.service.export_session(reference).await?;
    Ok(json::response(StatusCode::OK, &export))
}
