//! The request pipeline: how every API request is admitted, in one order, here.
//!
//! 1. **Route.** The path is parsed once ([`router::resolve`]): 400 `invalid_field`
//!    for a path that is not UTF-8 once percent-decoded, 404 `not_found`, 405
//!    `method_not_allowed`. Health, readiness, the OpenAPI document, the widget's
//!    files and CORS preflights are answered here, without the steps below.
//! 2. **Caller.** The client's address (the socket's peer, or from a trusted proxy
//!    the one header `--client-ip-header` names; IPv6 per `/64`), and the admin
//!    token: a wrong `Authorization` is 401 `unauthorized` and spends one unit of the
//!    failed-authentication quota (429 over it) ([`crate::caller`],
//!    [`crate::failed_auth`]).
//! 3. **Body.** Read, bounded by `max_body_bytes` (413, 408, 415, 400).
//! 4. **Validation.** Body, query and path ids into the operation's typed input
//!    ([`Input::read`], with [`colloquy_core::validate`]): 400 / 422; an id that is
//!    not a UUID where one is needed is 404.
//! 5. **Access.** The access table ([`colloquy_core::access::authorize`]): 401 / 403;
//!    in `public` mode a chat stream `GET` from another site is 403 ([`cross_site`]).
//! 6. **Rate limits.** Visitors only (the admin token is never limited): every quota
//!    of the request in ONE limiter call — the per-request quota plus the
//!    operation's own (session creation, chat, message). Per-session quotas are
//!    keyed by the session's UUID, and spent only once the session is known to
//!    exist: a reference that names no session spends only the per-request quota.
//!    429 `rate_limited`.
//! 7. **Idempotency.** `Idempotency-Key` on a `POST`: claim the key or replay its
//!    first result ([`crate::idempotency`]).
//! 8. **Operation.** The handler ([`crate::handlers`]): one service call and its
//!    response.
//!
//! A visitor's request that ends before step 6 — any error of steps 1 to 5, 404,
//! 405, 401 and 400 included — still spends the per-request quota, once, so no
//! answer can be asked for without limit.

use std::net::IpAddr;

use bytes::Bytes;
use colloquy_core::access::{authorize, AccessMode, Caller, Operation};
use colloquy_core::ratelimit::Action;
use colloquy_core::stats::StatsQuery;
use colloquy_core::{
    validate, MessageQuery, NewFeedback, NewMessage, NewSession, Page, ResumePoint, ServiceError,
    SessionFilter, SessionPatch, SessionRef, ValidationError,
};
use http::request::Parts;
use http::{header, HeaderValue, Method};
use serde_json::Value;
use uuid::Uuid;

use crate::app::App;
use crate::caller::{PeerAddr, Visitor};
use crate::error::ApiError;
use crate::idempotency::{self, Guard};
use crate::router::Endpoint;
use crate::{body, handlers, query, Response};

/// Decoded query pairs, in order.
pub(crate) type Pairs = Vec<(String, String)>;

/// An operation's validated input (step 4).
#[derive(Debug)]
pub(crate) enum Input {
    /// `GET /sessions/`.
    ListSessions(Pairs, SessionFilter, Page),
    /// `POST /sessions/`.
    CreateSession(NewSession),
    /// `GET /sessions/{id}/`.
    GetSession(SessionRef),
    /// `PATCH /sessions/{id}/`.
    UpdateSession(SessionRef, SessionPatch),
    /// `DELETE /sessions/{id}/`.
    DeleteSession(SessionRef),
    /// `GET /sessions/{id}/export/`.
    ExportSession(SessionRef),
    /// `POST /sessions/{id}/handoff/`.
    RequestHandoff(SessionRef),
    /// `GET /sessions/{id}/events/`, with the message id to replay after.
    SessionEvents(SessionRef, Option<Uuid>),
    /// `GET /messages/?session_id=`.
    ListMessages(Pairs, SessionRef, MessageQuery),
    /// `POST /messages/`.
    CreateMessage(NewMessage),
    /// `GET /messages/{id}/`.
    GetMessage(Uuid),
    /// `DELETE /messages/{id}/`.
    DeleteMessage(Uuid),
    /// `POST /messages/chat/`.
    Chat(NewMessage),
    /// `POST /messages/chat/stream/`.
    ChatStream(NewMessage),
    /// `GET /messages/chat/stream/`: a new turn, or with a resume point an
    /// `EventSource` reconnecting.
    ChatStreamGet(NewMessage, Option<ResumePoint>),
    /// `GET /messages/chat/stream/{response_id}/`.
    Resume(Uuid, Option<ResumePoint>),
    /// `POST /messages/chat/stream/{response_id}/cancel/`.
    Cancel(Uuid),
    /// `POST /messages/{id}/feedback/`.
    Feedback(Uuid, NewFeedback),
    /// `GET /stats/`.
    Stats(StatsQuery),
    /// `GET /inbox/`.
    Inbox(colloquy_core::inbox::InboxQuery),
    /// `GET /messages/search/?q=`.
    SearchMessages(String, Page),
    /// `GET /sessions/export/?external_user_id=`.
    ExportUser(String),
    /// `DELETE /sessions/?external_user_id=`.
    EraseUser(String),
}

/// A message or response id from the path; one that is not a UUID names none (404).
fn path_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(id).map_err(|_| ApiError::from(ServiceError::MessageNotFound))
}

/// The session events' resume point: a message id, from the `Last-Event-ID`
/// header or `?last_event_id=`.
fn last_message_id(parts: &Parts, pairs: &Pairs) -> Result<Option<Uuid>, ApiError> {
    let header = parts
        .headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("-"));
    match header
        .or_else(|| validate::last(pairs, "last_event_id"))
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        None => Ok(None),
        Some(id) => Uuid::try_parse(id).map(Some).map_err(|_| {
            ValidationError::invalid(
                "last_event_id",
                "must be the id of a message event this server sent",
            )
            .into()
        }),
    }
}

/// The client's resume point: the `Last-Event-ID` header, or `?last_event_id=`.
fn last_event_id(parts: &Parts, pairs: &Pairs) -> Result<Option<ResumePoint>, ApiError> {
    let header = parts
        .headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or_default());
    match header
        .or_else(|| validate::last(pairs, "last_event_id"))
        .filter(|v| !v.trim().is_empty())
    {
        None => Ok(None),
        Some(id) => ResumePoint::parse(id).map(Some).ok_or_else(|| {
            ValidationError::invalid(
                "last_event_id",
                "must be an event id this server sent (<response_id>:<seq>:<end>) or a sequence number",
            )
            .into()
        }),
    }
}

impl Input {
    /// Steps 3 and 4: reads the body (for the endpoints that take one) and
    /// validates it, the query and the path's ids. Returns the input and the JSON
    /// body, which idempotency fingerprints.
    async fn read<B>(
        app: &App,
        endpoint: Endpoint,
        parts: &Parts,
        body: B,
    ) -> Result<(Self, Option<Value>), ApiError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let limits = app.service.limits();
        let json = match endpoint {
            Endpoint::CreateSession
            | Endpoint::UpdateSession(_)
            | Endpoint::CreateMessage
            | Endpoint::Chat
            | Endpoint::ChatStreamPost
            | Endpoint::RequestHandoff(_)
            | Endpoint::Feedback(_) => {
                Some(body::read_json(&parts.headers, body, app.config.max_body_bytes).await?)
            }
            _ => None,
        };
        let null = Value::Null;
        let value = json.as_ref().unwrap_or(&null);
        let input = match endpoint {
            Endpoint::ListSessions => {
                let pairs = query::pairs(&parts.uri)?;
                let (filter, page) = validate::session_query(&pairs)?;
                Self::ListSessions(pairs, filter, page)
            }
            Endpoint::CreateSession => Self::CreateSession(validate::new_session(value, limits)?),
            Endpoint::GetSession(id) => Self::GetSession(SessionRef::parse(&id)),
            Endpoint::UpdateSession(id) => Self::UpdateSession(
                SessionRef::parse(&id),
                validate::session_patch(value, limits)?,
            ),
            Endpoint::DeleteSession(id) => Self::DeleteSession(SessionRef::parse(&id)),
            Endpoint::ExportSession(id) => Self::ExportSession(SessionRef::parse(&id)),
            Endpoint::RequestHandoff(id) => {
                if !value.is_object() {
                    return Err(ValidationError::invalid_json(
                        "the body must be empty or a JSON object",
                    )
                    .into());
                }
                Self::RequestHandoff(SessionRef::parse(&id))
            }
            Endpoint::SessionEvents(id) => {
                let pairs = query::pairs(&parts.uri)?;
                Self::SessionEvents(SessionRef::parse(&id), last_message_id(parts, &pairs)?)
            }
            Endpoint::ListMessages => {
                let pairs = query::pairs(&parts.uri)?;
                let (session, q) = validate::message_query(&pairs)?;
                Self::ListMessages(pairs, session, q)
            }
            Endpoint::CreateMessage => Self::CreateMessage(validate::new_message(value, limits)?),
            Endpoint::GetMessage(id) => Self::GetMessage(path_id(&id)?),
            Endpoint::DeleteMessage(id) => Self::DeleteMessage(path_id(&id)?),
            Endpoint::Chat => Self::Chat(validate::chat_request(value, limits)?),
            Endpoint::ChatStreamPost => Self::ChatStream(validate::chat_request(value, limits)?),
            Endpoint::ChatStreamGet => {
                let pairs = query::pairs(&parts.uri)?;
                let new = validate::chat_query(&pairs, limits)?;
                Self::ChatStreamGet(new, last_event_id(parts, &pairs)?)
            }
            Endpoint::ResumeStream(id) => {
                let response = path_id(&id)?;
                let after = last_event_id(parts, &query::pairs(&parts.uri)?)?;
                if after
                    .and_then(|p| p.response)
                    .is_some_and(|r| r != response)
                {
                    return Err(ValidationError::invalid(
                        "last_event_id",
                        "names another response than the path",
                    )
                    .into());
                }
                Self::Resume(response, after)
            }
            Endpoint::CancelStream(id) => Self::Cancel(path_id(&id)?),
            Endpoint::Feedback(id) => Self::Feedback(path_id(&id)?, validate::new_feedback(value)?),
            Endpoint::Stats => Self::Stats(validate::stats_query(&query::pairs(&parts.uri)?)?),
            Endpoint::Inbox => {
                Self::Inbox(validate::inbox_query(&query::pairs(&parts.uri)?, limits)?)
            }
            Endpoint::SearchMessages => {
                let (q, page) = validate::search_query(&query::pairs(&parts.uri)?)?;
                Self::SearchMessages(q, page)
            }
            Endpoint::ExportUser => Self::ExportUser(validate::external_user_query(
                &query::pairs(&parts.uri)?,
                limits,
            )?),
            Endpoint::EraseUser => Self::EraseUser(validate::external_user_query(
                &query::pairs(&parts.uri)?,
                limits,
            )?),
            Endpoint::Healthz
            | Endpoint::Readyz
            | Endpoint::OpenApi
            | Endpoint::Preflight(_)
            | Endpoint::Asset(_) => return Err(ApiError::internal()),
        };
        Ok((input, json))
    }

    /// What the access table is asked (step 5).
    fn operation(&self) -> Operation<'_> {
        match self {
            Self::ListSessions(..) => Operation::ListSessions,
            Self::CreateSession(new) => Operation::CreateSession(new),
            Self::GetSession(r) => Operation::ReadSession(r),
            Self::UpdateSession(r, patch) => Operation::UpdateSession(r, patch),
            Self::DeleteSession(r) => Operation::DeleteSession(r),
            Self::ExportSession(r) => Operation::ExportSession(r),
            // Asking for a person is open to whoever may chat in the session;
            // watching it, to whoever may list its messages.
            Self::RequestHandoff(r) => Operation::Chat(r),
            Self::SessionEvents(r, _) => Operation::ListMessages(r),
            Self::ListMessages(_, r, _) => Operation::ListMessages(r),
            Self::CreateMessage(new) => Operation::CreateMessage(new),
            Self::Chat(new) | Self::ChatStream(new) | Self::ChatStreamGet(new, _) => {
                Operation::Chat(&new.session)
            }
            Self::GetMessage(_)
            | Self::DeleteMessage(_)
            | Self::Feedback(..)
            | Self::Resume(..)
            | Self::Cancel(_) => Operation::ByMessageId,
            Self::Stats(_) => Operation::Stats,
            Self::Inbox(_) => Operation::Inbox,
            Self::SearchMessages(..) => Operation::SearchMessages,
            Self::ExportUser(_) => Operation::ExportUser,
            Self::EraseUser(_) => Operation::EraseUser,
        }
    }

    /// The session whose quotas the operation spends, if any (step 6).
    fn limited_session(&mut self) -> Option<&mut SessionRef> {
        match self {
            Self::CreateMessage(new)
            | Self::Chat(new)
            | Self::ChatStream(new)
            | Self::ChatStreamGet(new, None) => Some(&mut new.session),
            _ => None,
        }
    }

    /// The operation's own rate-limit action, beside the per-request one (step 6).
    fn action(&self) -> Option<Action<'_>> {
        match self {
            Self::CreateSession(_) => Some(Action::CreateSession),
            Self::CreateMessage(new) => Some(Action::CreateMessage(&new.session)),
            Self::Chat(new) | Self::ChatStream(new) | Self::ChatStreamGet(new, None) => {
                Some(Action::Chat(&new.session))
            }
            _ => None,
        }
    }

    /// Whether an `Idempotency-Key` applies, and its scope (step 7): a write into a
    /// session is scoped by the session (its UUID once resolved); creating a session
    /// by the client's address, and only for the operator or in `open` mode — a
    /// public visitor's key there is ignored, as an address is shared behind a NAT
    /// and two visitors reusing a key must not share a session.
    fn idempotency_scope(&self, app: &App, v: &Visitor) -> Option<String> {
        match self {
            Self::CreateMessage(new) | Self::Chat(new) | Self::ChatStream(new) => {
                Some(format!("session:{}", new.session.as_str()))
            }
            Self::CreateSession(_)
                if app.config.access == AccessMode::Open || v.caller == Caller::Admin =>
            {
                Some(format!(
                    "client:{}",
                    v.ip.map(|ip| ip.to_string()).unwrap_or_default()
                ))
            }
            _ => None,
        }
    }
}

/// Step 5's cross-site rule for the chat stream `GET` (which a page can send with
/// no CORS preflight, from an `<img>` or an `EventSource`): in `public` mode a
/// visitor's `GET` that would start a generation is refused (403 `forbidden`) when
/// its `Origin` is not one of `--cors-origins`, or, without `Origin`, when
/// `Sec-Fetch-Site` says another site sent it. Same-origin pages, allowed origins
/// and clients that send neither header (curl, servers) are served.
fn cross_site(app: &App, parts: &Parts) -> Result<(), ApiError> {
    let headers = &parts.headers;
    let refused = match headers.get(header::ORIGIN) {
        Some(origin) => !app.cors.allows(origin) && !same_origin(parts, origin),
        None => headers
            .get("sec-fetch-site")
            .is_some_and(|site| site != "same-origin" && site != "none"),
    };
    if refused {
        return Err(ApiError::new(
            colloquy_core::ErrorCode::Forbidden,
            "the chat stream GET is not served to pages of another site: use POST, or list the page's origin in --cors-origins",
        ));
    }
    Ok(())
}

/// Whether `origin` is the request's own (`Host` with any scheme).
fn same_origin(parts: &Parts, origin: &HeaderValue) -> bool {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(http::uri::Authority::as_str));
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

/// Spends a visitor's per-request quota for a request that ended before step 6.
async fn spend_request(app: &App, ip: Option<IpAddr>) -> Result<(), ApiError> {
    Ok(app.service.admit(ip, Action::Request).await?)
}

/// Runs the pipeline for a request `resolved` (step 1) to an endpoint or an error.
pub(crate) async fn run<B>(
    app: &App,
    resolved: Result<Endpoint, ApiError>,
    parts: Parts,
    body: B,
) -> Result<Response, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
    let ip = Visitor::client(&app.config, peer, &parts.headers);
    let endpoint = match resolved {
        Ok(endpoint) => endpoint,
        Err(e) => {
            // Unmatched 404, 405, a path not UTF-8: counted, unless the operator's.
            if !matches!(
                Visitor::identify(&app.config, ip, &parts.headers),
                Ok(Visitor {
                    caller: Caller::Admin,
                    ..
                })
            ) {
                spend_request(app, ip).await?;
            }
            return Err(e);
        }
    };
    match endpoint {
        Endpoint::Healthz => return Ok(handlers::health::healthz()),
        Endpoint::Readyz => return Ok(handlers::health::readyz(app).await),
        Endpoint::OpenApi => return Ok(crate::openapi::response()),
        Endpoint::Preflight(allow) => return Ok(app.cors.preflight(&parts.headers, allow)),
        Endpoint::Asset(asset) => return Ok(app.assets.serve(asset, &parts)),
        _ => {}
    }
    let v = match Visitor::identify(&app.config, ip, &parts.headers) {
        Ok(v) => v,
        Err(e) => {
            app.failed_auth
                .spend(ip)
                .map_err(|limited| ApiError::from(ServiceError::RateLimited(limited)))?;
            spend_request(app, ip).await?;
            return Err(e);
        }
    };
    let mut spent = false;
    let answer = admit_and_run(app, &v, endpoint, &parts, body, &mut spent).await;
    if !spent && v.caller == Caller::Visitor {
        spend_request(app, v.ip).await?;
    }
    answer
}

/// Steps 3 to 8 for an identified caller; `spent` is set once step 6 ran.
async fn admit_and_run<B>(
    app: &App,
    v: &Visitor,
    endpoint: Endpoint,
    parts: &Parts,
    body: B,
    spent: &mut bool,
) -> Result<Response, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (mut input, json) = Input::read(app, endpoint, parts, body).await?;
    let public_visitor = app.config.access == AccessMode::Public && v.caller == Caller::Visitor;
    authorize(app.config.access, v.caller, input.operation()).map_err(ServiceError::from)?;
    if public_visitor && matches!(input, Input::ChatStreamGet(_, None)) {
        cross_site(app, parts)?;
    }
    if v.caller == Caller::Visitor {
        if app.service.limits_sessions() {
            if let Some(session) = input.limited_session() {
                // The session's identity, not the reference's text: every spelling of
                // it shares one counter, and a reference to nothing spends none.
                *spent = true;
                let found = match app.service.get_session(session).await {
                    Ok(found) => found,
                    Err(e) => {
                        spend_request(app, v.ip).await?;
                        return Err(e.into());
                    }
                };
                *session = SessionRef::from_uuid(found.id);
            }
        }
        *spent = true;
        let actions: Vec<Action<'_>> = std::iter::once(Action::Request)
            .chain(input.action())
            .collect();
        app.service.admit_all(v.ip, &actions).await?;
    }
    let ticket = match (json.as_ref(), input.idempotency_scope(app, v)) {
        (Some(json), Some(scope)) if parts.method == Method::POST => {
            match idempotency::begin(app, parts, json, &scope).await? {
                Guard::Replay(response) => return Ok(response),
                Guard::Proceed(ticket) => ticket,
            }
        }
        _ => None,
    };
    handlers::run(app, v, input, ticket, parts).await
}
