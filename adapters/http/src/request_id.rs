//! Request ids: a sane incoming `X-Request-Id` is kept, anything else replaced by a
//! fresh UUID; the id is logged on the request's span and echoed in the response.

use http::{HeaderMap, HeaderName};
use uuid::Uuid;

/// The request id header.
pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id kept.
const MAX_LEN: usize = 128;

/// Whether an incoming id is safe to log and echo: 1..=128 characters of
/// `A-Z a-z 0-9 - _ . : / + = @`.
fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=' | b'@')
        })
}

/// The request's id: the incoming header when sane, otherwise a new UUID.
pub(crate) fn from_headers(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_sane(id))
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn keeps_sane_ids_and_replaces_the_rest() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("req-42.a:b"));
        assert_eq!(from_headers(&h), "req-42.a:b");
        for bad in ["", "has space", "<script>", &"x".repeat(129)] {
            h.insert(HEADER, HeaderValue::from_str(bad).expect("header"));
            let id = from_headers(&h);
            assert!(Uuid::parse_str(&id).is_ok(), "{bad:?} replaced by {id}");
        }
        assert!(Uuid::parse_str(&from_headers(&HeaderMap::new())).is_ok());
    }
}
