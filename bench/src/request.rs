//! [`RequestSpec`]: one request of a scenario, independent of any connection.

use bytes::Bytes;
use http::Method;

/// A request to send: method, origin-form path (with query) and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    /// HTTP method.
    pub method: Method,
    /// Path and query, e.g. `/api/chats/messages/?session_id=x&limit=50`.
    pub path: String,
    /// Body (empty for GET).
    pub body: Bytes,
}

impl RequestSpec {
    /// A GET of `path`.
    #[must_use]
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            body: Bytes::new(),
        }
    }

    /// A POST of the JSON document `body` to `path`.
    #[must_use]
    pub fn post_json(path: impl Into<String>, body: &serde_json::Value) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            body: Bytes::from(body.to_string()),
        }
    }
}
