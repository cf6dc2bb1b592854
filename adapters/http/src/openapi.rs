//! The OpenAPI 3.1 document of the API (`adapters/http/openapi.json`, embedded in the
//! binary), served at `GET /openapi.json` (a service endpoint) and at
//! `GET <base>/openapi.json` (always), rendered for the mount: its paths are the ones
//! the API answers at.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::json;
use crate::mount::CANONICAL_BASE;
use crate::Response;

/// The document, as kept in the repository: the default mount's (the API under
/// `/api/chats`, the service endpoints at the root).
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// The document of the API mounted under `base` (no trailing slash; `""` for the
/// root), with or without the service endpoints: each `/api/chats/...` path becomes
/// `<base>/...` and, without the service endpoints, the root paths are left out.
/// `servers` stays `/`, as every path is written whole. The default mount's is
/// [`OPENAPI_JSON`] itself.
pub(crate) fn document(base: &str, service_endpoints: bool) -> Bytes {
    let canonical = Bytes::from_static(OPENAPI_JSON.as_bytes());
    if base == CANONICAL_BASE && service_endpoints {
        return canonical;
    }
    let Ok(mut doc) = serde_json::from_str::<Value>(OPENAPI_JSON) else {
        return canonical;
    };
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in std::mem::take(paths) {
            match path.strip_prefix(CANONICAL_BASE) {
                Some(rest) => {
                    // At the root, `<base>/openapi.json` is the service endpoint's
                    // path: one entry (the same document) is enough.
                    paths.entry(format!("{base}{rest}")).or_insert(item);
                }
                None if service_endpoints => {
                    paths.insert(path, item);
                }
                None => {}
            }
        }
    }
    serde_json::to_vec(&doc).map_or(canonical, Bytes::from)
}

/// `GET /openapi.json` → 200, the mount's `document`.
pub(crate) fn response(document: &Bytes) -> Response {
    let mut response = http::Response::new(Full::new(document.clone()).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(json::CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;
    use crate::router;

    fn document() -> Value {
        serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
    }

    #[test]
    fn is_openapi_3_1() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
    }

    /// The document's paths and methods are exactly the router's table (`HEAD` and
    /// `OPTIONS` are described once, in the document's description).
    #[test]
    fn paths_and_methods_match_the_router() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .keys()
                    .filter(|k| ["get", "post", "patch", "delete", "put"].contains(&k.as_str()))
                    .map(move |m| (path.clone(), m.to_uppercase()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> = router::table()
            .into_iter()
            .flat_map(|(path, methods)| {
                methods
                    .into_iter()
                    .map(move |m| (path.to_owned(), m.to_owned()))
            })
            .collect();
        assert_eq!(documented, routed);
    }

    /// Under another base path every API path moves, and each operation is kept
    /// once; at the root, the two documents' paths share one entry.
    #[test]
    fn a_mounted_document_moves_its_paths() {
        let count = |doc: &Value| {
            doc["paths"]
                .as_object()
                .expect("paths")
                .values()
                .map(|item| item.as_object().expect("item").len())
                .sum::<usize>()
        };
        let canonical = document();
        let moved: Value =
            serde_json::from_slice(&super::document("/support", true)).expect("json");
        assert_eq!(count(&moved), count(&canonical));
        assert_eq!(moved["servers"], canonical["servers"]);
        assert_eq!(
            moved["paths"]["/support/sessions/{id}/"],
            canonical["paths"]["/api/chats/sessions/{id}/"]
        );
        let root: Value = serde_json::from_slice(&super::document("", true)).expect("json");
        assert!(root["paths"]["/sessions/"].is_object());
        assert_eq!(
            root["paths"]["/openapi.json"],
            canonical["paths"]["/openapi.json"]
        );
        let off: Value = serde_json::from_slice(&super::document("", false)).expect("json");
        assert_eq!(
            off["paths"]["/openapi.json"],
            canonical["paths"]["/api/chats/openapi.json"]
        );
        assert!(off["paths"].get("/healthz").is_none());
    }

    /// Every `$ref` points at something that exists.
    #[test]
    fn every_reference_resolves() {
        fn walk(doc: &Value, node: &Value, seen: &mut usize) {
            match node {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        let pointer = r.strip_prefix('#').expect("local reference");
                        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
                        *seen += 1;
                    }
                    map.values().for_each(|v| walk(doc, v, seen));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(doc, v, seen)),
                _ => {}
            }
        }
        let doc = document();
        let mut seen = 0;
        walk(&doc, &doc, &mut seen);
        assert!(seen > 50, "only {seen} references");
    }
}
