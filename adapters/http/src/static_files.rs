//! The chat widget's files, embedded in the binary at compile time from `widget/`:
//! `GET /widget.js` and its demo page at `GET /widget/demo` (also `GET /`).
//!
//! Each file has a strong `ETag` (a hash of its bytes, computed once when the app is
//! built); a request whose `If-None-Match` matches gets `304 Not Modified`. `HEAD`
//! gets the headers of `GET` without the body. [`HttpConfig::widget`](crate::HttpConfig)
//! turns these routes off (404).

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::{json, Response};

/// The widget script, `assets/widget.js` (packaged with this crate).
const WIDGET_JS: &[u8] = include_bytes!("../assets/widget.js");
/// The demo page, `assets/demo.html` (packaged with this crate).
const DEMO_HTML: &[u8] = include_bytes!("../assets/demo.html");

/// One of the embedded files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asset {
    /// `/widget.js`.
    WidgetJs,
    /// `/widget/demo` and `/`.
    Demo,
}

/// An embedded file and the headers it is served with.
#[derive(Debug)]
struct File {
    body: &'static [u8],
    content_type: &'static str,
    cache_control: &'static str,
    etag: HeaderValue,
}

impl File {
    fn new(body: &'static [u8], content_type: &'static str, cache_control: &'static str) -> Self {
        let etag = HeaderValue::from_str(&format!("\"{:016x}-{:x}\"", fnv1a(body), body.len()))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Self {
            body,
            content_type,
            cache_control,
            etag,
        }
    }
}

/// The widget's files, with their ETags.
#[derive(Debug)]
pub(crate) struct Assets {
    widget_js: File,
    demo: File,
}

impl Assets {
    /// The embedded files; hashes them.
    pub(crate) fn new() -> Self {
        Self {
            widget_js: File::new(
                WIDGET_JS,
                "text/javascript; charset=utf-8",
                "public, max-age=300",
            ),
            demo: File::new(DEMO_HTML, "text/html; charset=utf-8", "no-cache"),
        }
    }

    /// The response to a `GET` or `HEAD` of `asset` (hyper leaves the body out for
    /// `HEAD`, keeping its `Content-Length`).
    pub(crate) fn serve(&self, asset: Asset, request: &Parts) -> Response {
        let file = match asset {
            Asset::WidgetJs => &self.widget_js,
            Asset::Demo => &self.demo,
        };
        let mut response = if matches_etag(&request.headers, &file.etag) {
            json::empty(StatusCode::NOT_MODIFIED)
        } else {
            let mut response =
                http::Response::new(Full::new(Bytes::from_static(file.body)).boxed_unsync());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(file.content_type));
            response
        };
        let headers = response.headers_mut();
        headers.insert(ETAG, file.etag.clone());
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(file.cache_control));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        response
    }
}

/// Whether `If-None-Match` lists `etag` (or is `*`). The comparison is the weak one
/// RFC 9110 prescribes for this header: a `W/` prefix is ignored.
fn matches_etag(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").as_bytes() == ours)
}

/// The 64-bit FNV-1a hash of `bytes`: stable across builds and platforms, so every
/// instance serving the same file sends the same `ETag`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Parts {
        http::Request::get("/widget.js")
            .body(())
            .expect("request")
            .into_parts()
            .0
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn files_differ_in_etag_and_headers() {
        let assets = Assets::new();
        let js = assets.serve(Asset::WidgetJs, &request());
        let demo = assets.serve(Asset::Demo, &request());
        assert_eq!(js.status(), StatusCode::OK);
        assert_ne!(js.headers().get(ETAG), demo.headers().get(ETAG));
        assert_eq!(
            js.headers().get(CONTENT_TYPE),
            Some(&HeaderValue::from_static("text/javascript; charset=utf-8"))
        );
        assert_eq!(
            demo.headers().get(CACHE_CONTROL),
            Some(&HeaderValue::from_static("no-cache"))
        );
    }

    #[test]
    fn if_none_match_is_compared_weakly_in_lists() {
        let assets = Assets::new();
        let etag = assets.widget_js.etag.to_str().expect("ascii").to_owned();
        let weak = format!("W/{etag}");
        let list = format!("\"nope\", {etag}");
        for (header, expected) in [
            (etag.as_str(), StatusCode::NOT_MODIFIED),
            (weak.as_str(), StatusCode::NOT_MODIFIED),
            (list.as_str(), StatusCode::NOT_MODIFIED),
            ("*", StatusCode::NOT_MODIFIED),
            ("\"other\"", StatusCode::OK),
            ("", StatusCode::OK),
        ] {
            let value = HeaderValue::from_str(header).expect("header");
            let mut parts = request();
            parts.headers.insert(IF_NONE_MATCH, value);
            assert_eq!(
                assets.serve(Asset::WidgetJs, &parts).status(),
                expected,
                "{header:?}"
            );
        }
    }
}
