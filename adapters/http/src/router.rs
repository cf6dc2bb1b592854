//! The routes of API.md: path and method in, [`Endpoint`] (or a 404/405 error) out.
//!
//! Every path works with and without its trailing slash. `HEAD` is accepted wherever
//! `GET` only reads; `OPTIONS` on any route is a CORS preflight.

use http::Method;

use crate::error::ApiError;
use crate::static_files::Asset;

/// A resource of the API, with the ids in its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Healthz,
    Readyz,
    /// `/openapi.json`: the OpenAPI document of the API.
    OpenApi,
    Sessions,
    /// `/sessions/export/`: one visitor's sessions (`export` is a reserved session_id).
    UserExport,
    Session(String),
    SessionExport(String),
    /// `/sessions/{id}/handoff/`: the visitor asks for a person.
    SessionHandoff(String),
    /// `/sessions/{id}/events/`: the session's live events (SSE).
    SessionEvents(String),
    Messages,
    Message(String),
    MessageFeedback(String),
    /// `/stats/`: the dashboard's counters.
    Stats,
    /// `/inbox/`: the console's inbox.
    Inbox,
    /// `/messages/search/`: the console's message search.
    MessageSearch,
    Chat,
    ChatStream,
    ChatStreamResume(String),
    ChatStreamCancel(String),
    /// An embedded file: the chat widget's (`/widget.js`, `/widget/demo`, `/`) or
    /// the console's (`/console/`, `/console/{file}`).
    Asset(Asset),
}

/// What a request asks for: a route and a method it supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Healthz,
    Readyz,
    OpenApi,
    ListSessions,
    CreateSession,
    /// `DELETE /sessions/?external_user_id=`.
    EraseUser,
    /// `GET /sessions/export/?external_user_id=`.
    ExportUser,
    GetSession(String),
    UpdateSession(String),
    DeleteSession(String),
    ExportSession(String),
    /// `POST /sessions/{id}/handoff/`.
    RequestHandoff(String),
    /// `GET /sessions/{id}/events/`.
    SessionEvents(String),
    ListMessages,
    CreateMessage,
    GetMessage(String),
    DeleteMessage(String),
    Feedback(String),
    Stats,
    /// `GET /inbox/`.
    Inbox,
    /// `GET /messages/search/?q=`.
    SearchMessages,
    Chat,
    ChatStreamPost,
    ChatStreamGet,
    ResumeStream(String),
    CancelStream(String),
    /// `OPTIONS` on a route; the value is its `Allow` list.
    Preflight(&'static str),
    /// `GET`/`HEAD` of an embedded file (the widget's or the console's).
    Asset(Asset),
}

impl Route {
    /// The route for `path`, if any (a path whose segments do not all decode to
    /// UTF-8 is none).
    pub(crate) fn parse(path: &str) -> Option<Self> {
        Self::parse_decoded(path).ok().flatten()
    }

    /// The route for `path`, each segment percent-decoded once ([`crate::percent`]):
    /// `Ok(None)` for an unknown path, 400 `invalid_field` for a segment that is not
    /// UTF-8 once decoded.
    fn parse_decoded(path: &str) -> Result<Option<Self>, ApiError> {
        let path = path.strip_suffix('/').unwrap_or(path);
        let segments = path
            .split('/')
            .map(crate::percent::decode)
            .collect::<Option<Vec<String>>>()
            .ok_or_else(crate::percent::not_utf8_path)?;
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let route = match segments.as_slice() {
            ["", "healthz"] => Self::Healthz,
            ["", "readyz"] => Self::Readyz,
            ["", "openapi.json"] => Self::OpenApi,
            [""] | ["", "widget", "demo"] => Self::Asset(Asset::Demo),
            ["", "widget.js"] => Self::Asset(Asset::WidgetJs),
            ["", "console"] => Self::Asset(Asset::ConsolePage),
            ["", "console", file] => match Asset::console_file(file) {
                Some(asset) => Self::Asset(asset),
                None => return Ok(None),
            },
            ["", "api", "chats", rest @ ..] => match rest {
                ["sessions"] => Self::Sessions,
                ["sessions", "export"] => Self::UserExport,
                ["sessions", s] if !s.is_empty() => Self::Session((*s).to_owned()),
                ["sessions", s, "export"] if !s.is_empty() => Self::SessionExport((*s).to_owned()),
                ["sessions", s, "handoff"] if !s.is_empty() => {
                    Self::SessionHandoff((*s).to_owned())
                }
                ["sessions", s, "events"] if !s.is_empty() => Self::SessionEvents((*s).to_owned()),
                ["messages"] => Self::Messages,
                ["messages", "chat"] => Self::Chat,
                ["messages", "search"] => Self::MessageSearch,
                ["messages", "chat", "stream"] => Self::ChatStream,
                ["messages", "chat", "stream", r] if !r.is_empty() => {
                    Self::ChatStreamResume((*r).to_owned())
                }
                ["messages", "chat", "stream", r, "cancel"] if !r.is_empty() => {
                    Self::ChatStreamCancel((*r).to_owned())
                }
                ["messages", m] if !m.is_empty() => Self::Message((*m).to_owned()),
                ["messages", m, "feedback"] if !m.is_empty() => {
                    Self::MessageFeedback((*m).to_owned())
                }
                ["stats"] => Self::Stats,
                ["inbox"] => Self::Inbox,
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        Ok(Some(route))
    }

    /// The methods the route answers, as an `Allow` header value.
    pub(crate) fn allow(&self) -> &'static str {
        match self {
            Self::Healthz
            | Self::Readyz
            | Self::OpenApi
            | Self::SessionExport(_)
            | Self::UserExport
            | Self::Stats
            | Self::Inbox
            | Self::MessageSearch
            | Self::Asset(_) => "GET, HEAD, OPTIONS",
            Self::Sessions => "GET, HEAD, POST, DELETE, OPTIONS",
            Self::Messages => "GET, HEAD, POST, OPTIONS",
            Self::Session(_) => "GET, HEAD, PATCH, DELETE, OPTIONS",
            Self::Message(_) => "GET, HEAD, DELETE, OPTIONS",
            Self::Chat
            | Self::ChatStreamCancel(_)
            | Self::MessageFeedback(_)
            | Self::SessionHandoff(_) => "POST, OPTIONS",
            Self::ChatStreamResume(_) | Self::SessionEvents(_) => "GET, OPTIONS",
            Self::ChatStream => "GET, POST, OPTIONS",
        }
    }

    /// The endpoint for `method` on this route.
    fn endpoint(self, method: &Method) -> Option<Endpoint> {
        if method == Method::OPTIONS {
            return Some(Endpoint::Preflight(self.allow()));
        }
        let read = method == Method::GET || method == Method::HEAD;
        let endpoint = match self {
            Self::Healthz if read => Endpoint::Healthz,
            Self::Readyz if read => Endpoint::Readyz,
            Self::OpenApi if read => Endpoint::OpenApi,
            Self::Sessions if read => Endpoint::ListSessions,
            Self::Sessions if method == Method::POST => Endpoint::CreateSession,
            Self::Sessions if method == Method::DELETE => Endpoint::EraseUser,
            Self::UserExport if read => Endpoint::ExportUser,
            Self::Session(id) if read => Endpoint::GetSession(id),
            Self::Session(id) if method == Method::PATCH => Endpoint::UpdateSession(id),
            Self::Session(id) if method == Method::DELETE => Endpoint::DeleteSession(id),
            Self::SessionExport(id) if read => Endpoint::ExportSession(id),
            Self::SessionHandoff(id) if method == Method::POST => Endpoint::RequestHandoff(id),
            // GET only, as every stream.
            Self::SessionEvents(id) if method == Method::GET => Endpoint::SessionEvents(id),
            Self::Messages if read => Endpoint::ListMessages,
            Self::Messages if method == Method::POST => Endpoint::CreateMessage,
            Self::Message(id) if read => Endpoint::GetMessage(id),
            Self::Message(id) if method == Method::DELETE => Endpoint::DeleteMessage(id),
            Self::MessageFeedback(id) if method == Method::POST => Endpoint::Feedback(id),
            Self::Stats if read => Endpoint::Stats,
            Self::Inbox if read => Endpoint::Inbox,
            Self::MessageSearch if read => Endpoint::SearchMessages,
            Self::Chat if method == Method::POST => Endpoint::Chat,
            // GET only: a HEAD must not start a generation.
            Self::ChatStream if method == Method::GET => Endpoint::ChatStreamGet,
            Self::ChatStream if method == Method::POST => Endpoint::ChatStreamPost,
            Self::ChatStreamResume(id) if method == Method::GET => Endpoint::ResumeStream(id),
            Self::ChatStreamCancel(id) if method == Method::POST => Endpoint::CancelStream(id),
            Self::Asset(asset) if read => Endpoint::Asset(asset),
            _ => return None,
        };
        Some(endpoint)
    }
}

/// Every route, as the path template the OpenAPI document uses (`{id}` for an id),
/// one of each (the widget's demo page has two paths).
#[cfg(test)]
pub(crate) const TEMPLATES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/",
    "/widget/demo",
    "/widget.js",
    "/console/",
    "/console/{file}",
    "/api/chats/sessions/",
    "/api/chats/sessions/export/",
    "/api/chats/sessions/{id}/",
    "/api/chats/sessions/{id}/export/",
    "/api/chats/sessions/{id}/handoff/",
    "/api/chats/sessions/{id}/events/",
    "/api/chats/messages/",
    "/api/chats/messages/{id}/",
    "/api/chats/messages/{id}/feedback/",
    "/api/chats/stats/",
    "/api/chats/inbox/",
    "/api/chats/messages/search/",
    "/api/chats/messages/chat/",
    "/api/chats/messages/chat/stream/",
    "/api/chats/messages/chat/stream/{response_id}/",
    "/api/chats/messages/chat/stream/{response_id}/cancel/",
];

/// The router's table: every route template with the methods it answers (its `Allow`
/// list without `HEAD` and `OPTIONS`, which every `GET` route and every route have).
#[cfg(test)]
pub(crate) fn table() -> Vec<(&'static str, Vec<&'static str>)> {
    TEMPLATES
        .iter()
        .map(|template| {
            // Any id fits a template's placeholder; a UUID-shaped one fits them all.
            let path = template
                .replace("{id}", "0190c8e2-4b1a-7c3d-8e4f-000000000001")
                .replace("{response_id}", "0190c8e2-4b1a-7c3d-8e4f-000000000001")
                .replace("{file}", "console.js");
            let methods = Route::parse(&path)
                .map(|route| route.allow())
                .unwrap_or_default()
                .split(", ")
                .filter(|m| !m.is_empty() && *m != "HEAD" && *m != "OPTIONS")
                .collect();
            (*template, methods)
        })
        .collect()
}

impl Endpoint {
    /// The endpoint's name, as metrics label requests (never the raw path, whose ids
    /// would make a series per session).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Healthz => "healthz",
            Self::Readyz => "readyz",
            Self::OpenApi => "openapi",
            Self::ListSessions => "list_sessions",
            Self::CreateSession => "create_session",
            Self::EraseUser => "erase_user",
            Self::ExportUser => "export_user",
            Self::GetSession(_) => "get_session",
            Self::UpdateSession(_) => "update_session",
            Self::DeleteSession(_) => "delete_session",
            Self::ExportSession(_) => "export_session",
            Self::RequestHandoff(_) => "request_handoff",
            Self::SessionEvents(_) => "session_events",
            Self::ListMessages => "list_messages",
            Self::CreateMessage => "create_message",
            Self::GetMessage(_) => "get_message",
            Self::DeleteMessage(_) => "delete_message",
            Self::Feedback(_) => "feedback",
            Self::Stats => "stats",
            Self::Inbox => "inbox",
            Self::SearchMessages => "search_messages",
            Self::Chat => "chat",
            Self::ChatStreamPost => "chat_stream_post",
            Self::ChatStreamGet => "chat_stream_get",
            Self::ResumeStream(_) => "resume_stream",
            Self::CancelStream(_) => "cancel_stream",
            Self::Preflight(_) => "preflight",
            Self::Asset(Asset::Demo) => "widget_demo",
            Self::Asset(Asset::WidgetJs) => "widget_js",
            Self::Asset(Asset::ConsolePage) => "console",
            Self::Asset(
                Asset::ConsoleJs | Asset::ConsoleCss | Asset::UplotJs | Asset::UplotCss,
            ) => "console_file",
        }
    }
}

/// Which embedded files are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Files {
    /// The widget's (`/widget.js`, `/widget/demo`, `/`).
    pub(crate) widget: bool,
    /// The console's (`/console/...`).
    pub(crate) console: bool,
}

/// `true`: every file; `false`: none.
impl From<bool> for Files {
    fn from(all: bool) -> Self {
        Self {
            widget: all,
            console: all,
        }
    }
}

impl Files {
    fn serves(self, asset: Asset) -> bool {
        if asset.is_console() {
            self.console
        } else {
            self.widget
        }
    }
}

/// Resolves a request to its endpoint, parsing the path once: 400 `invalid_field` for
/// a path that is not UTF-8 once percent-decoded, 404 `not_found` for an unknown path
/// (the widget's or the console's paths too when `files` leaves them out), 405
/// `method_not_allowed` (with `Allow`) for a known path and another method.
pub(crate) fn resolve(
    method: &Method,
    path: &str,
    files: impl Into<Files>,
) -> Result<Endpoint, ApiError> {
    let files = files.into();
    let route = Route::parse_decoded(path)?
        .filter(|route| match route {
            Route::Asset(asset) => files.serves(*asset),
            _ => true,
        })
        .ok_or_else(ApiError::no_route)?;
    let allow = route.allow();
    route
        .endpoint(method)
        .ok_or_else(|| ApiError::method_not_allowed(allow))
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloquy_core::ErrorCode;

    #[test]
    fn trailing_slash_is_optional() {
        for path in ["/api/chats/sessions/", "/api/chats/sessions"] {
            assert_eq!(
                resolve(&Method::GET, path, true).expect("route"),
                Endpoint::ListSessions
            );
        }
        assert_eq!(
            resolve(&Method::DELETE, "/api/chats/sessions/abc", true).expect("route"),
            Endpoint::DeleteSession("abc".into())
        );
        assert_eq!(
            resolve(&Method::GET, "/healthz/", true).expect("route"),
            Endpoint::Healthz
        );
    }

    #[test]
    fn chat_paths_win_over_message_ids() {
        assert_eq!(
            resolve(&Method::POST, "/api/chats/messages/chat/", true).expect("route"),
            Endpoint::Chat
        );
        assert_eq!(
            resolve(&Method::GET, "/api/chats/messages/chat/stream", true).expect("route"),
            Endpoint::ChatStreamGet
        );
        assert_eq!(
            resolve(&Method::GET, "/api/chats/messages/not-a-uuid/", true).expect("route"),
            Endpoint::GetMessage("not-a-uuid".into())
        );
    }

    #[test]
    fn path_ids_are_percent_decoded() {
        assert_eq!(
            resolve(&Method::GET, "/api/chats/sessions/a%3Ab", true).expect("route"),
            Endpoint::GetSession("a:b".into())
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        for path in [
            "/index.html",
            "/widget",
            "/widget/demo/x",
            "/api/chats",
            "/api/chats/sessions//",
            "/api/chats/sessions/a/b",
            "/api/chats/messages/chat/stream/123/cancel/extra",
            "/healthzz",
        ] {
            let e = resolve(&Method::GET, path, true).expect_err(path);
            assert_eq!(e.code(), ErrorCode::NotFound, "{path}");
        }
        let e = resolve(&Method::PUT, "/api/chats/sessions/", true).expect_err("put");
        assert_eq!(e.code(), ErrorCode::MethodNotAllowed);
        let e = resolve(&Method::HEAD, "/api/chats/messages/chat/stream/", true).expect_err("head");
        assert_eq!(e.code(), ErrorCode::MethodNotAllowed);
    }

    #[test]
    fn console_routes() {
        assert_eq!(
            resolve(&Method::GET, "/api/chats/sessions/export/", true).expect("route"),
            Endpoint::ExportUser
        );
        assert_eq!(
            resolve(&Method::DELETE, "/api/chats/sessions", true).expect("route"),
            Endpoint::EraseUser
        );
        assert_eq!(
            resolve(&Method::GET, "/api/chats/stats/", true).expect("route"),
            Endpoint::Stats
        );
        assert_eq!(
            resolve(&Method::POST, "/api/chats/messages/abc/feedback/", true).expect("route"),
            Endpoint::Feedback("abc".into())
        );
        let e = resolve(&Method::DELETE, "/api/chats/sessions/export/", true).expect_err("del");
        assert_eq!(e.code(), ErrorCode::MethodNotAllowed);
    }

    #[test]
    fn handoff_and_events_routes() {
        assert_eq!(
            resolve(&Method::POST, "/api/chats/sessions/abc/handoff/", true).expect("route"),
            Endpoint::RequestHandoff("abc".into())
        );
        assert_eq!(
            resolve(&Method::GET, "/api/chats/sessions/abc/events", true).expect("route"),
            Endpoint::SessionEvents("abc".into())
        );
        let e = resolve(&Method::GET, "/api/chats/sessions/abc/handoff/", true).expect_err("get");
        assert_eq!(e.code(), ErrorCode::MethodNotAllowed);
        let e = resolve(&Method::HEAD, "/api/chats/sessions/abc/events/", true).expect_err("head");
        assert_eq!(e.code(), ErrorCode::MethodNotAllowed);
    }

    #[test]
    fn resume_and_cancel_routes() {
        assert_eq!(
            resolve(&Method::GET, "/api/chats/messages/chat/stream/abc/", true).expect("route"),
            Endpoint::ResumeStream("abc".into())
        );
        assert_eq!(
            resolve(
                &Method::POST,
                "/api/chats/messages/chat/stream/abc/cancel",
                true
            )
            .expect("route"),
            Endpoint::CancelStream("abc".into())
        );
        let e =
            resolve(&Method::POST, "/api/chats/messages/chat/stream/abc/", true).expect_err("post");
        assert_eq!(e.code(), ErrorCode::MethodNotAllowed);
    }

    #[test]
    fn widget_paths_exist_only_when_the_widget_is_on() {
        for (path, asset) in [
            ("/", Asset::Demo),
            ("/widget/demo", Asset::Demo),
            ("/widget/demo/", Asset::Demo),
            ("/widget.js", Asset::WidgetJs),
        ] {
            for method in [Method::GET, Method::HEAD] {
                assert_eq!(
                    resolve(&method, path, true).expect("route"),
                    Endpoint::Asset(asset),
                    "{path}"
                );
            }
            let e = resolve(&Method::POST, path, true).expect_err("post");
            assert_eq!(e.code(), ErrorCode::MethodNotAllowed, "{path}");
            for method in [Method::GET, Method::POST, Method::OPTIONS] {
                let e = resolve(&method, path, false).expect_err("off");
                assert_eq!(e.code(), ErrorCode::NotFound, "{path}");
            }
        }
        assert_eq!(
            resolve(&Method::GET, "/healthz", false).expect("route"),
            Endpoint::Healthz
        );
    }

    #[test]
    fn console_paths_exist_only_when_the_console_is_served() {
        for (path, asset) in [
            ("/console", Asset::ConsolePage),
            ("/console/", Asset::ConsolePage),
            ("/console/console.js", Asset::ConsoleJs),
            ("/console/console.css", Asset::ConsoleCss),
            ("/console/uPlot.iife.min.js", Asset::UplotJs),
            ("/console/uPlot.min.css", Asset::UplotCss),
        ] {
            for method in [Method::GET, Method::HEAD] {
                assert_eq!(
                    resolve(&method, path, true).expect("route"),
                    Endpoint::Asset(asset),
                    "{path}"
                );
            }
            let e = resolve(&Method::POST, path, true).expect_err("post");
            assert_eq!(e.code(), ErrorCode::MethodNotAllowed, "{path}");
            let widget_only = Files {
                widget: true,
                console: false,
            };
            for method in [Method::GET, Method::POST, Method::OPTIONS] {
                let e = resolve(&method, path, widget_only).expect_err("off");
                assert_eq!(e.code(), ErrorCode::NotFound, "{path}");
            }
        }
        let console_only = Files {
            widget: false,
            console: true,
        };
        assert!(resolve(&Method::GET, "/widget.js", console_only).is_err());
        assert!(resolve(&Method::GET, "/console/", console_only).is_ok());
        for path in [
            "/console/index.html",
            "/console/x/console.js",
            "/console/..%2Fwidget.js",
        ] {
            let e = resolve(&Method::GET, path, true).expect_err(path);
            assert_eq!(e.code(), ErrorCode::NotFound, "{path}");
        }
    }

    #[test]
    fn every_template_is_a_route_with_methods() {
        for (template, methods) in table() {
            assert!(!methods.is_empty(), "{template} is no route");
            let path = template
                .replace("{file}", "console.js")
                .replace(['{', '}'], "");
            for method in &methods {
                let method = Method::from_bytes(method.as_bytes()).expect("method");
                assert!(resolve(&method, &path, true).is_ok(), "{method} {template}");
            }
        }
    }

    #[test]
    fn options_is_a_preflight_on_known_routes() {
        assert_eq!(
            resolve(&Method::OPTIONS, "/api/chats/messages/chat/stream/", true).expect("route"),
            Endpoint::Preflight("GET, POST, OPTIONS")
        );
        assert!(resolve(&Method::OPTIONS, "/nope", true).is_err());
    }
}
