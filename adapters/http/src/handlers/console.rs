//! The console's endpoints: `POST /messages/{id}/feedback/`, and for the operator
//! `GET /stats/`, `GET /inbox/`, `GET /messages/search/?q=`,
//! `GET /sessions/export/?external_user_id=` and `DELETE /sessions/?external_user_id=`.

use colloquy_core::access::{AccessMode, Caller};
use colloquy_core::stats::StatsQuery;
use colloquy_core::{NewFeedback, ValidationError};
use http::StatusCode;
use uuid::Uuid;

use super::messages::message_response;
use crate::app::App;
use crate::caller::Visitor;
use crate::error::ApiError;
use crate::{json, Response};

/// `POST /messages/{id}/feedback/` → 200 the message, with `metadata.feedback`. A
/// visitor in `public` mode proves they hold the message's session: `session_id`
/// is required (400 `missing_field`), and one that is not the message's session is
/// 404 `message_not_found`, as for an unknown id.
pub(super) async fn feedback(
    app: &App,
    v: &Visitor,
    id: Uuid,
    new: NewFeedback,
) -> Result<Response, ApiError> {
    let public_visitor = app.config.access == AccessMode::Public && v.caller == Caller::Visitor;
    if public_visitor && new.session.is_none() {
        return Err(ValidationError::missing("session_id").into());
    }
    let message = app.service.give_feedback(id, new).await?;
    message_response(app, v, &message)
}

/// `GET /stats/` → 200 `{"buckets", "totals", "ungrounded_questions"}`.
pub(super) async fn stats(app: &App, query: StatsQuery) -> Result<Response, ApiError> {
    let stats = app.service.stats(query).await?;
    Ok(json::response(StatusCode::OK, &stats))
}

/// `GET /inbox/` → 200 `{"results": [{"session", "first_question", "last_message",
/// "message_count", "last_activity_at", "state", "rated_down"}], "next"}`.
pub(super) async fn inbox(
    app: &App,
    query: colloquy_core::inbox::InboxQuery,
) -> Result<Response, ApiError> {
    let page = app.service.inbox(query).await?;
    Ok(json::response(StatusCode::OK, &page))
}

/// `GET /messages/search/?q=` → 200 `{"results": [{"message", "session"}], "next"}`;
/// 501 `not_supported` on a store that cannot search.
pub(super) async fn search(
    app: &App,
    q: &str,
    page: colloquy_core::Page,
) -> Result<Response, ApiError> {
    let found = app.service.search_messages(q, page).await?;
    Ok(json::response(StatusCode::OK, &found))
}

/// `GET /sessions/export/?external_user_id=` → 200 `{"external_user_id", "sessions":
/// [{"session", "messages"}], "truncated"}`.
pub(super) async fn export_user(app: &App, external_user_id: &str) -> Result<Response, ApiError> {
    let export = app.service.export_user(external_user_id).await?;
    Ok(json::response(StatusCode::OK, &export))
}

/// `DELETE /sessions/?external_user_id=` → 200 `{"sessions", "messages"}` erased.
pub(super) async fn erase_user(app: &App, external_user_id: &str) -> Result<Response, ApiError> {
    let erased = app.service.erase_user(external_user_id).await?;
    Ok(json::response(StatusCode::OK, &erased))
}
