//! The OpenAPI 3.1 document of the API (`adapters/http/openapi.json`, embedded in the
//! binary), served at `GET /openapi.json`.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::json;
use crate::Response;

/// The document, as kept in the repository.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// `GET /openapi.json` → 200, the document.
pub(crate) fn response() -> Response {
    let mut response =
        http::Response::new(Full::new(Bytes::from_static(OPENAPI_JSON.as_bytes())).boxed_unsync());
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
