//! One handler per endpoint, grouped by resource; each turns a request into a
//! service call and the result into a response.

mod chat;
mod health;
mod messages;
mod sessions;

use bytes::Bytes;
use http::request::Parts;

use colloquy_core::access::Caller;
use colloquy_core::ratelimit::Action;

use crate::app::App;
use crate::caller::{PeerAddr, Visitor};
use crate::error::ApiError;
use crate::router::Endpoint;
use crate::Response;

/// Runs the handler of `endpoint` (preflights are answered before this).
pub(crate) async fn dispatch<B>(
    app: &App,
    endpoint: Endpoint,
    parts: Parts,
    body: B,
) -> Result<Response, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let v = match endpoint {
        Endpoint::Healthz => return Ok(health::healthz()),
        Endpoint::Readyz => return Ok(health::readyz(app).await),
        Endpoint::OpenApi => return Ok(crate::openapi::response()),
        Endpoint::Preflight(allow) => return Ok(app.cors.preflight(&parts.headers, allow)),
        Endpoint::Asset(asset) => return Ok(app.assets.serve(asset, &parts)),
        _ => {
            let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
            let v = Visitor::identify(&app.config, peer, &parts.headers)?;
            if v.caller == Caller::Visitor {
                if endpoint.has_own_limits() {
                    v.defer_request_limit();
                } else {
                    app.service.admit(v.ip, Action::Request).await?;
                }
            }
            v
        }
    };
    let v = &v;
    let answer = run_handler(app, endpoint, v, parts, body).await;
    // A handler that ended before spending its limits (bad input, a resume): the
    // request still counts, and over the limit it is a 429 as any other.
    if v.take_request_limit() {
        app.service.admit(v.ip, Action::Request).await?;
    }
    answer
}

/// Runs the handler of `endpoint`.
async fn run_handler<B>(
    app: &App,
    endpoint: Endpoint,
    v: &Visitor,
    parts: Parts,
    body: B,
) -> Result<Response, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match endpoint {
        Endpoint::ListSessions => sessions::list(app, v, &parts).await,
        Endpoint::CreateSession => sessions::create(app, v, &parts, body).await,
        Endpoint::GetSession(id) => sessions::get(app, v, &id).await,
        Endpoint::UpdateSession(id) => sessions::update(app, v, &id, &parts, body).await,
        Endpoint::DeleteSession(id) => sessions::delete(app, v, &id).await,
        Endpoint::ExportSession(id) => sessions::export(app, v, &id).await,
        Endpoint::ListMessages => messages::list(app, v, &parts).await,
        Endpoint::CreateMessage => messages::create(app, v, &parts, body).await,
        Endpoint::GetMessage(id) => messages::get(app, v, &id).await,
        Endpoint::DeleteMessage(id) => messages::delete(app, v, &id).await,
        Endpoint::Chat => chat::chat(app, v, &parts, body).await,
        Endpoint::ChatStreamPost => chat::stream_post(app, v, &parts, body).await,
        Endpoint::ChatStreamGet => chat::stream_get(app, v, &parts).await,
        Endpoint::ResumeStream(id) => chat::resume(app, v, &id, &parts).await,
        Endpoint::CancelStream(id) => chat::cancel(app, v, &id).await,
        Endpoint::Healthz
        | Endpoint::Readyz
        | Endpoint::OpenApi
        | Endpoint::Preflight(_)
        | Endpoint::Asset(_) => Err(ApiError::internal()),
    }
}
