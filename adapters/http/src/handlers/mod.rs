//! One handler per endpoint, grouped by resource; each turns a request into a
//! service call and the result into a response.

mod chat;
mod health;
mod messages;
mod sessions;

use bytes::Bytes;
use http::request::Parts;

use crate::app::App;
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
    match endpoint {
        Endpoint::Healthz => Ok(health::healthz()),
        Endpoint::Readyz => Ok(health::readyz(app).await),
        Endpoint::ListSessions => sessions::list(app, &parts).await,
        Endpoint::CreateSession => sessions::create(app, &parts, body).await,
        Endpoint::GetSession(id) => sessions::get(app, &id).await,
        Endpoint::UpdateSession(id) => sessions::update(app, &id, &parts, body).await,
        Endpoint::DeleteSession(id) => sessions::delete(app, &id).await,
        Endpoint::ListMessages => messages::list(app, &parts).await,
        Endpoint::CreateMessage => messages::create(app, &parts, body).await,
        Endpoint::GetMessage(id) => messages::get(app, &id).await,
        Endpoint::DeleteMessage(id) => messages::delete(app, &id).await,
        Endpoint::Chat => chat::chat(app, &parts, body).await,
        Endpoint::ChatStreamPost => chat::stream_post(app, &parts, body).await,
        Endpoint::ChatStreamGet => chat::stream_get(app, &parts).await,
        Endpoint::Preflight(allow) => Ok(app.cors.preflight(&parts.headers, allow)),
        Endpoint::Asset(asset) => Ok(app.assets.serve(asset, &parts)),
    }
}
