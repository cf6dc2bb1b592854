//! The `Link: <...>; rel="next"` header of list responses cut by their `limit`
//! (RFC 8288). The body stays the seed's bare array; the header tells a client that
//! more exist and where they start.

use colloquy_core::{Cursor, Page};
use http::{header, HeaderValue};

use crate::Response;

/// Query parameters that position a page; the next page replaces them.
const POSITION: [&str; 3] = ["offset", "before", "after"];

/// The request's path and query with the position parameters replaced by `next`.
fn next_target(uri: &http::Uri, pairs: &[(String, String)], next: &[(&str, String)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs
        .iter()
        .filter(|(k, _)| !POSITION.contains(&k.as_str()))
    {
        query.append_pair(k, v);
    }
    for (k, v) in next {
        query.append_pair(k, v);
    }
    format!("{}?{}", uri.path(), query.finish())
}

fn insert(response: &mut Response, target: &str) {
    // Percent-encoding leaves only visible ASCII, so this cannot fail; if it did, the
    // header is merely absent.
    if let Ok(value) = HeaderValue::from_str(&format!("<{target}>; rel=\"next\"")) {
        response.headers_mut().insert(header::LINK, value);
    }
}

/// Adds the `next` link of a message list that continues after `cursor`.
pub(crate) fn next_messages(
    response: &mut Response,
    uri: &http::Uri,
    pairs: &[(String, String)],
    cursor: Cursor,
) {
    let next = match cursor {
        Cursor::Before(id) => ("before", id.to_string()),
        Cursor::After(id) => ("after", id.to_string()),
    };
    insert(response, &next_target(uri, pairs, &[next]));
}

/// Adds the `next` link of a session list that continues with `page`.
pub(crate) fn next_sessions(
    response: &mut Response,
    uri: &http::Uri,
    pairs: &[(String, String)],
    page: Page,
) {
    let next = [("offset", page.offset.to_string())];
    insert(response, &next_target(uri, pairs, &next));
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn next_link_keeps_filters_and_replaces_the_position() {
        let uri: http::Uri = "/api/chats/messages/?session_id=a%3Ab&order=desc&offset=5&limit=2"
            .parse()
            .expect("uri");
        let pairs = crate::query::pairs(&uri).expect("utf-8");
        let id = Uuid::nil();
        let mut response = crate::json::empty(http::StatusCode::OK);
        next_messages(&mut response, &uri, &pairs, Cursor::Before(id));
        let link = response.headers()[header::LINK].to_str().expect("ascii");
        assert_eq!(
            link,
            format!("</api/chats/messages/?session_id=a%3Ab&order=desc&limit=2&before={id}>; rel=\"next\"")
        );
    }
}
