//! `GET /api/chats/sessions/{id}/events/`: a session's live events, as server-sent
//! events.
//!
//! ```text
//! retry: 1000
//!
//! event: session
//! data: <session JSON as GET /sessions/{id}/ returns it>
//!
//! id: <message uuid>
//! event: message
//! data: <message JSON as GET /messages/{id}/ returns it to this caller>
//!
//! event: message_deleted
//! data: {"id":"<message uuid>"}
//!
//! event: session_deleted        (or `event: expired`; then the stream ends)
//! data: {"id":"<session uuid>"}
//!
//! : keep-alive
//! ```
//!
//! **The store is the log; the live channel is only a doorbell** (see
//! [`colloquy_core::events`]). The stream keeps a cursor, the id of the last
//! message it sent (or, without `Last-Event-ID`, the session's newest message when
//! it opened). A doorbell for a stored message, a reconnect's `Last-Event-ID`, and a
//! lagging or broken live channel all lead to the same step: read the session's
//! messages written after the cursor from the store, in write order, a small page
//! at a time. So messages arrive in write order, exactly once, from any instance,
//! across drops and restarts.
//!
//! Costs: one stream holds a subscription (a cursor into the session's shared,
//! bounded ring), the session record and at most one page of messages not yet
//! written ([`PAGE`]). Streams count against per-client and per-session shares
//! ([`EventShares`], 429 `too_many_streams` over them; the operator's token is
//! exempt); the connection's write timeout closes a stream whose client reads
//! nothing.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use colloquy_core::access::{AccessMode, Caller};
use colloquy_core::events::{EventKind, EventTopic, Subscription};
use colloquy_core::{
    ChatService, Cursor, MessageQuery, MessageView, Order, Page, ServiceError, Session, SessionRef,
    SessionView,
};
use futures::StreamExt;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use uuid::Uuid;

use crate::app::App;
use crate::caller::Visitor;
use crate::error::ApiError;
use crate::shares::{client_key, Share, Shares};
use crate::sse::{KEEP_ALIVE, RETRY};
use crate::Response;

/// How many messages are read from the store at a time (and held at most, until
/// written).
pub(crate) const PAGE: usize = 10;

/// The caps on event streams open at once: per client address and per session.
#[derive(Debug)]
pub(crate) struct EventShares {
    per_ip: Shares<IpAddr>,
    per_session: Shares<Uuid>,
}

/// The places an event stream holds until it ends.
#[derive(Debug)]
pub(crate) struct EventHold {
    _session: Option<Share<Uuid>>,
    _ip: Option<Share<IpAddr>>,
}

impl EventShares {
    /// At most `per_ip` streams of one client address and `per_session` of one
    /// session at once.
    pub(crate) fn new(per_ip: usize, per_session: usize) -> Self {
        Self {
            per_ip: Shares::new(per_ip),
            per_session: Shares::new(per_session),
        }
    }

    /// A place for a visitor's stream of `session` from `ip`, or 429
    /// `too_many_streams`. The operator holds none.
    fn take(&self, session: Uuid, v: &Visitor) -> Result<EventHold, ApiError> {
        if v.caller == Caller::Admin {
            return Ok(EventHold {
                _session: None,
                _ip: None,
            });
        }
        let ip = match v.ip {
            Some(ip) => Some(self.per_ip.try_take(client_key(ip)).ok_or_else(|| {
                ApiError::too_many_streams("this client already has its most event streams open")
            })?),
            None => None,
        };
        let session = self.per_session.try_take(session).ok_or_else(|| {
            ApiError::too_many_streams("this session already has its most event streams open")
        })?;
        Ok(EventHold {
            _session: Some(session),
            _ip: ip,
        })
    }
}

/// One SSE event: `event: <name>` and `data: <json>`, with `id:` for messages.
fn render(name: &str, id: Option<Uuid>, data: &impl serde::Serialize) -> Bytes {
    // Serializing our API types cannot fail; JSON escapes newlines, so data is one line.
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    let mut out = String::with_capacity(json.len() + 64);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    out.push_str("event: ");
    out.push_str(name);
    out.push_str("\ndata: ");
    out.push_str(&json);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// `{"id": id}`, the data of `message_deleted`, `session_deleted` and `expired`.
#[derive(serde::Serialize)]
struct IdData {
    id: Uuid,
}

/// A watched session's stream, between two writes.
struct Watch {
    service: ChatService,
    session: Session,
    subscription: Subscription,
    /// The id of the last message sent (or the newest when the stream opened
    /// without `Last-Event-ID`); `None`: the session had none.
    cursor: Option<Uuid>,
    /// Whether messages after `cursor` may be waiting in the store (a page was full,
    /// or a doorbell rang).
    behind: bool,
    /// Events ready to write, at most a page's worth.
    pending: VecDeque<Bytes>,
    /// A public visitor: messages go out with `session: null`, as `GET
    /// /messages/{id}/` returns them to one.
    hide_session: bool,
    keep_alive: Duration,
    /// Fires at the session's `expires_at`.
    expiry: Pin<Box<tokio::time::Sleep>>,
    /// The last event is queued; the stream ends once `pending` is written.
    ended: bool,
    _hold: EventHold,
}

/// How long from now until `session` expires (zero once it has).
fn until_expiry(session: &Session) -> Duration {
    (session.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default()
}

impl Watch {
    fn reference(&self) -> SessionRef {
        SessionRef::from_uuid(self.session.id)
    }

    /// The next bytes to write, or `None` once the stream is over.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Some(bytes);
            }
            if self.ended {
                return None;
            }
            if self.behind {
                self.read_messages().await;
                continue;
            }
            let next = tokio::select! {
                biased;
                () = &mut self.expiry => {
                    self.end("expired");
                    continue;
                }
                next = tokio::time::timeout(self.keep_alive, self.subscription.next()) => next,
            };
            match next {
                Err(_silence) => return Some(Bytes::from_static(KEEP_ALIVE)),
                Ok(Some(Ok(event))) => self.on(event.kind).await,
                // Lagged, interrupted or ended: subscribe again, then read what was
                // missed from the store.
                Ok(Some(Err(_)) | None) => self.resubscribe().await,
            }
        }
    }

    async fn on(&mut self, kind: EventKind) {
        match kind {
            EventKind::MessageStored { .. } => self.behind = true,
            EventKind::MessageDeleted { id } => {
                self.pending
                    .push_back(render("message_deleted", None, &IdData { id }));
            }
            EventKind::SessionChanged => self.read_session().await,
            EventKind::SessionDeleted => self.end("session_deleted"),
        }
    }

    async fn resubscribe(&mut self) {
        let topic = EventTopic::from(&self.session);
        match self.service.events().subscribe(&topic).await {
            Ok(subscription) => {
                self.subscription = subscription;
                // Whatever changed meanwhile: the session, and the messages.
                self.read_session().await;
                self.behind = true;
            }
            Err(e) => {
                // The client reconnects with the last id it has and replays from the store.
                tracing::warn!(error = %e, session = %self.session.id, "events: could not subscribe again; ending the stream");
                self.ended = true;
            }
        }
    }

    /// The session ended: `session_deleted` or `expired`, and the stream ends.
    fn end(&mut self, name: &str) {
        self.pending.push_back(render(
            name,
            None,
            &IdData {
                id: self.session.id,
            },
        ));
        self.ended = true;
    }

    /// The session is gone: expired, or deleted.
    fn gone(&mut self) {
        if self.session.expires_at <= chrono::Utc::now() {
            self.end("expired");
        } else {
            self.end("session_deleted");
        }
    }

    /// Reads the session again and queues it.
    async fn read_session(&mut self) {
        match self.service.session_view(&self.reference()).await {
            Ok(view) => {
                if view.session.expires_at != self.session.expires_at {
                    let at = tokio::time::Instant::now() + until_expiry(&view.session);
                    self.expiry.as_mut().reset(at);
                }
                self.session = view.session.clone();
                self.pending.push_back(render("session", None, &view));
            }
            Err(ServiceError::SessionNotFound) => self.gone(),
            Err(e) => {
                tracing::warn!(error = %e, session = %self.session.id, "events: could not read the session; ending the stream");
                self.ended = true;
            }
        }
    }

    /// Queues the next page of messages written after the cursor.
    async fn read_messages(&mut self) {
        match next_page(&self.service, &self.reference(), self.cursor).await {
            Ok((messages, full)) => {
                self.behind = full;
                for message in messages {
                    self.cursor = Some(message.id);
                    self.pending
                        .push_back(render_message(&message, self.hide_session));
                }
            }
            Err(ServiceError::SessionNotFound) => self.gone(),
            Err(e) => {
                tracing::warn!(error = %e, session = %self.session.id, "events: could not read the messages; ending the stream");
                self.ended = true;
            }
        }
    }
}

/// A `message` event, with the message as `GET /messages/{id}/` returns it to this
/// caller.
fn render_message(message: &MessageView, hide_session: bool) -> Bytes {
    if hide_session {
        if let Ok(mut value) = serde_json::to_value(message) {
            if let Some(object) = value.as_object_mut() {
                object.insert("session".to_owned(), serde_json::Value::Null);
            }
            return render("message", Some(message.id), &value);
        }
    }
    render("message", Some(message.id), message)
}

/// The session's messages written after `cursor` (all, from the first, without
/// one): a page, and whether it was full (more may follow).
async fn next_page(
    service: &ChatService,
    session: &SessionRef,
    cursor: Option<Uuid>,
) -> Result<(Vec<MessageView>, bool), ServiceError> {
    let query = MessageQuery {
        cursor: cursor.map(Cursor::After),
        order: Order::Asc,
        page: Page {
            limit: PAGE,
            offset: 0,
        },
        ..MessageQuery::default()
    };
    let page = service.list_messages(session, &query).await?;
    let full = page.next.is_some();
    Ok((page.messages, full))
}

/// The id of the session's newest message, if it has any.
async fn newest(service: &ChatService, session: &SessionRef) -> Result<Option<Uuid>, ServiceError> {
    let query = MessageQuery {
        order: Order::Desc,
        page: Page {
            limit: 1,
            offset: 0,
        },
        ..MessageQuery::default()
    };
    let page = service.list_messages(session, &query).await?;
    Ok(page.messages.first().map(|m| m.id))
}

/// `GET /sessions/{id}/events/` → 200 `text/event-stream`: the session first, the
/// messages written after `after` (the client's `Last-Event-ID`), then the live
/// events. 404 `session_not_found`; 400 `invalid_field` when `after` names no
/// message of the session; 429 `too_many_streams`.
pub(super) async fn stream(
    app: &App,
    v: &Visitor,
    reference: &SessionRef,
    after: Option<Uuid>,
) -> Result<Response, ApiError> {
    let service = &app.service;
    let session = service.get_session(reference).await?;
    let hold = app.event_streams.take(session.id, v)?;
    // A request past its timeout (its instance restarted) is timed out now.
    let session = service.time_out_handoff(session).await;
    let reference = SessionRef::from_uuid(session.id);
    // Live first: whatever is stored from now on rings, and is read after the cursor.
    let subscription = service
        .events()
        .subscribe(&EventTopic::from(&session))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "events: could not subscribe");
            ApiError::store_unavailable()
        })?;
    let view: SessionView = service.session_view(&reference).await?;
    let mut pending = VecDeque::new();
    pending.push_back(Bytes::from_static(RETRY));
    pending.push_back(render("session", None, &view));
    let hide_session = app.config.access == AccessMode::Public && v.caller == Caller::Visitor;
    let (cursor, behind) = match after {
        Some(after) => match next_page(service, &reference, Some(after)).await {
            Ok((messages, full)) => {
                let mut cursor = Some(after);
                for message in messages {
                    cursor = Some(message.id);
                    pending.push_back(render_message(&message, hide_session));
                }
                (cursor, full)
            }
            Err(ServiceError::MessageNotFound) => {
                return Err(colloquy_core::ValidationError::invalid(
                    "last_event_id",
                    "names no message of this session",
                )
                .into())
            }
            Err(e) => return Err(e.into()),
        },
        None => (newest(service, &reference).await?, false),
    };
    let expiry = Box::pin(tokio::time::sleep(until_expiry(&view.session)));
    let watch = Watch {
        service: service.clone(),
        session: view.session,
        subscription,
        cursor,
        behind,
        pending,
        hide_session,
        keep_alive: app.config.sse_keep_alive,
        expiry,
        ended: false,
        _hold: hold,
    };
    let frames = futures::stream::unfold(watch, |mut watch| async move {
        let bytes = watch.next().await?;
        Some((Ok::<_, std::convert::Infallible>(Frame::data(bytes)), watch))
    });
    let mut response = http::Response::new(StreamBody::new(frames).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
