//! One handler per operation, grouped by resource. The pipeline
//! ([`crate::pipeline`]) has read, validated, authorized, rate limited and claimed
//! the idempotency key of the request; a handler holds only its operation: one
//! service call, and its result as a response.

mod chat;
mod console;
pub(crate) mod events;
pub(crate) mod health;
mod messages;
mod sessions;

use http::request::Parts;

use crate::app::App;
use crate::caller::Visitor;
use crate::error::ApiError;
use crate::idempotency::Ticket;
use crate::pipeline::Input;
use crate::Response;

/// Runs the operation of an admitted request.
pub(crate) async fn run(
    app: &App,
    v: &Visitor,
    input: Input,
    ticket: Option<Ticket>,
    parts: &Parts,
) -> Result<Response, ApiError> {
    match input {
        Input::ListSessions(pairs, filter, page) => {
            sessions::list(app, &parts.uri, &pairs, &filter, page).await
        }
        Input::CreateSession(new) => sessions::create(app, new, ticket).await,
        Input::GetSession(r) => sessions::get(app, &r).await,
        Input::UpdateSession(r, patch) => sessions::update(app, &r, patch).await,
        Input::DeleteSession(r) => sessions::delete(app, &r).await,
        Input::ExportSession(r) => sessions::export(app, &r).await,
        Input::RequestHandoff(r) => sessions::handoff(app, &r).await,
        Input::SessionEvents(r, after) => events::stream(app, v, &r, after).await,
        Input::ListMessages(pairs, r, query) => {
            messages::list(app, &parts.uri, &pairs, &r, &query).await
        }
        Input::CreateMessage(new) => messages::create(app, new, ticket).await,
        Input::GetMessage(id) => messages::get(app, v, id).await,
        Input::DeleteMessage(id) => messages::delete(app, id).await,
        Input::Chat(new) => chat::chat(app, v, new, ticket).await,
        Input::ChatStream(new) => chat::stream_post(app, v, new, ticket).await,
        Input::ChatStreamGet(new, None) => chat::stream_get(app, v, new).await,
        Input::ChatStreamGet(new, Some(after)) => {
            chat::reconnect(app, v, &new.session, after).await
        }
        Input::Resume(response, after) => chat::resume(app, v, response, after).await,
        Input::Cancel(response) => chat::cancel(app, v, response).await,
        Input::Feedback(id, new) => console::feedback(app, v, id, new).await,
        Input::Stats(query) => console::stats(app, query).await,
        Input::Inbox(query) => console::inbox(app, query).await,
        Input::SearchMessages(q, page) => console::search(app, &q, page).await,
        Input::ExportUser(id) => console::export_user(app, &id).await,
        Input::EraseUser(id) => console::erase_user(app, &id).await,
    }
}
