//! The routes of API.md: path and method in, [`Endpoint`] (or a 404/405 error) out.
//!
//! Every path works with and without its trailing slash. `HEAD` is accepted wherever
//! `GET` only reads; `OPTIONS` on any route is a CORS preflight.

use http::Method;
use percent_encoding::percent_decode_str;

use crate::error::ApiError;

/// A resource of the API, with the ids in its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Healthz,
    Readyz,
    Sessions,
    Session(String),
    Messages,
    Message(String),
    Chat,
    ChatStream,
}

/// What a request asks for: a route and a method it supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Healthz,
    Readyz,
    ListSessions,
    CreateSession,
    GetSession(String),
    UpdateSession(String),
    DeleteSession(String),
    ListMessages,
    CreateMessage,
    GetMessage(String),
    DeleteMessage(String),
    Chat,
    ChatStreamPost,
    ChatStreamGet,
    /// `OPTIONS` on a route; the value is its `Allow` list.
    Preflight(&'static str),
}

/// A path segment, percent-decoded (a segment that does not decode to UTF-8 is kept
/// as given: it matches no id).
fn decode(segment: &str) -> String {
    percent_decode_str(segment)
        .decode_utf8()
        .map_or_else(|_| segment.to_owned(), |s| s.into_owned())
}

impl Route {
    /// The route for `path`, if any.
    pub(crate) fn parse(path: &str) -> Option<Self> {
        let path = path.strip_suffix('/').unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        let route = match segments.as_slice() {
            ["", "healthz"] => Self::Healthz,
            ["", "readyz"] => Self::Readyz,
            ["", "api", "chats", rest @ ..] => match rest {
                ["sessions"] => Self::Sessions,
                ["sessions", id] if !id.is_empty() => Self::Session(decode(id)),
                ["messages"] => Self::Messages,
                ["messages", "chat"] => Self::Chat,
                ["messages", "chat", "stream"] => Self::ChatStream,
                ["messages", id] if !id.is_empty() => Self::Message(decode(id)),
                _ => return None,
            },
            _ => return None,
        };
        Some(route)
    }

    /// The methods the route answers, as an `Allow` header value.
    pub(crate) fn allow(&self) -> &'static str {
        match self {
            Self::Healthz | Self::Readyz => "GET, HEAD, OPTIONS",
            Self::Sessions | Self::Messages => "GET, HEAD, POST, OPTIONS",
            Self::Session(_) => "GET, HEAD, PATCH, DELETE, OPTIONS",
            Self::Message(_) => "GET, HEAD, DELETE, OPTIONS",
            Self::Chat => "POST, OPTIONS",
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
            Self::Sessions if read => Endpoint::ListSessions,
            Self::Sessions if method == Method::POST => Endpoint::CreateSession,
            Self::Session(id) if read => Endpoint::GetSession(id),
            Self::Session(id) if method == Method::PATCH => Endpoint::UpdateSession(id),
            Self::Session(id) if method == Method::DELETE => Endpoint::DeleteSession(id),
            Self::Messages if read => Endpoint::ListMessages,
            Self::Messages if method == Method::POST => Endpoint::CreateMessage,
            Self::Message(id) if read => Endpoint::GetMessage(id),
            Self::Message(id) if method == Method::DELETE => Endpoint::DeleteMessage(id),
            Self::Chat if method == Method::POST => Endpoint::Chat,
            // GET only: a HEAD must not start a generation.
            Self::ChatStream if method == Method::GET => Endpoint::ChatStreamGet,
            Self::ChatStream if method == Method::POST => Endpoint::ChatStreamPost,
            _ => return None,
        };
        Some(endpoint)
    }
}

/// Resolves a request to its endpoint: 404 `not_found` for an unknown path, 405
/// `method_not_allowed` (with `Allow`) for a known path and another method; 400
/// `invalid_field` first for a path that is not UTF-8 once percent-decoded.
pub(crate) fn resolve(method: &Method, path: &str) -> Result<Endpoint, ApiError> {
    crate::percent::check_path(path)?;
    let route = Route::parse(path).ok_or_else(ApiError::no_route)?;
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
                resolve(&Method::GET, path).expect("route"),
                Endpoint::ListSessions
            );
        }
        assert_eq!(
            resolve(&Method::DELETE, "/api/chats/sessions/abc").expect("route"),
            Endpoint::DeleteSession("abc".into())
        );
        assert_eq!(
            resolve(&Method::GET, "/healthz/").expect("route"),
            Endpoint::Healthz
        );
    }

    #[test]
    fn chat_paths_win_over_message_ids() {
        assert_eq!(
            resolve(&Method::POST, "/api/chats/messages/chat/").expect("route"),
            Endpoint::Chat
        );
        assert_eq!(
            resolve(&Method::GET, "/api/chats/messages/chat/stream").expect("route"),
            Endpoint::ChatStreamGet
        );
        assert_eq!(
            resolve(&Method::GET, "/api/chats/messages/not-a-uuid/").expect("route"),
            Endpoint::GetMessage("not-a-uuid".into())
        );
    }

    #[test]
    fn path_ids_are_percent_decoded() {
        assert_eq!(
            resolve(&Method::GET, "/api/chats/sessions/a%3Ab").expect("route"),
            Endpoint::GetSession("a:b".into())
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        for path in [
            "/",
            "/api/chats",
            "/api/chats/sessions//",
            "/api/chats/sessions/a/b",
            "/api/chats/messages/chat/stream/123/",
            "/api/chats/messages/chat/stream/123/cancel/",
            "/healthzz",
        ] {
            let e = resolve(&Method::GET, path).expect_err(path);
            assert_eq!(e.code(), ErrorCode::NotFound, "{path}");
        }
        let e = resolve(&Method::PUT, "/api/chats/sessions/").expect_err("put");
        assert_eq!(e.code(), ErrorCode::MethodNotAllowed);
        let e = resolve(&Method::HEAD, "/api/chats/messages/chat/stream/").expect_err("head");
        assert_eq!(e.code(), ErrorCode::MethodNotAllowed);
    }

    #[test]
    fn options_is_a_preflight_on_known_routes() {
        assert_eq!(
            resolve(&Method::OPTIONS, "/api/chats/messages/chat/stream/").expect("route"),
            Endpoint::Preflight("GET, POST, OPTIONS")
        );
        assert!(resolve(&Method::OPTIONS, "/nope").is_err());
    }
}
