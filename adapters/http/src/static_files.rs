//! The files the server serves, embedded in the binary at compile time from
//! `assets/`: the chat widget (`GET /widget.js`, its demo page at `GET /widget/demo`,
//! also `GET /`) and the operator's console (`GET /console/` and its files).
//!
//! Each file has a strong `ETag` (a hash of its bytes, computed once when the app is
//! built); a request whose `If-None-Match` matches gets `304 Not Modified`. `HEAD`
//! gets the headers of `GET` without the body. [`HttpConfig::widget`](crate::HttpConfig)
//! turns the widget's routes off (404); the console's are served only with an admin
//! token and [`HttpConfig::console`](crate::HttpConfig) on. Every console file carries
//! a strict Content-Security-Policy, `X-Frame-Options: DENY` and `Referrer-Policy:
//! no-referrer`.

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::{json, Response};

/// The widget script, `assets/widget.js` (packaged with this crate).
const WIDGET_JS: &[u8] = include_bytes!("../assets/widget.js");
/// The demo page, `assets/demo.html` (packaged with this crate).
const DEMO_HTML: &[u8] = include_bytes!("../assets/demo.html");
/// The console's page, `assets/console/index.html`.
const CONSOLE_HTML: &[u8] = include_bytes!("../assets/console/index.html");
/// The console's script, `assets/console/console.js`.
const CONSOLE_JS: &[u8] = include_bytes!("../assets/console/console.js");
/// The console's style sheet, `assets/console/console.css`.
const CONSOLE_CSS: &[u8] = include_bytes!("../assets/console/console.css");
/// uPlot (MIT, `assets/console/uPlot.LICENSE`), the console's charts.
const UPLOT_JS: &[u8] = include_bytes!("../assets/console/uPlot.iife.min.js");
/// uPlot's style sheet.
const UPLOT_CSS: &[u8] = include_bytes!("../assets/console/uPlot.min.css");

/// The console's Content-Security-Policy: its own files and API only, nothing inline,
/// never framed.
pub(crate) const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One of the embedded files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asset {
    /// `/widget.js`.
    WidgetJs,
    /// `/widget/demo` and `/`.
    Demo,
    /// `/console/`: the operator's console.
    ConsolePage,
    /// `/console/console.js`.
    ConsoleJs,
    /// `/console/console.css`.
    ConsoleCss,
    /// `/console/uPlot.iife.min.js`.
    UplotJs,
    /// `/console/uPlot.min.css`.
    UplotCss,
}

impl Asset {
    /// Whether the file belongs to the console (served only with an admin token).
    pub(crate) fn is_console(self) -> bool {
        !matches!(self, Self::WidgetJs | Self::Demo)
    }

    /// The console's file named `name` (the last segment of `/console/{file}`).
    pub(crate) fn console_file(name: &str) -> Option<Self> {
        match name {
            "console.js" => Some(Self::ConsoleJs),
            "console.css" => Some(Self::ConsoleCss),
            "uPlot.iife.min.js" => Some(Self::UplotJs),
            "uPlot.min.css" => Some(Self::UplotCss),
            _ => None,
        }
    }
}

/// An embedded file and the headers it is served with.
#[derive(Debug)]
struct File {
    body: &'static [u8],
    content_type: &'static str,
    cache_control: &'static str,
    etag: HeaderValue,
    /// Whether the console's security headers go with it.
    console: bool,
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
            console: false,
        }
    }

    /// A file of the console: revalidated on every load (a new binary's console is
    /// never mixed with an old cached script), with the console's headers.
    fn console(body: &'static [u8], content_type: &'static str) -> Self {
        Self {
            console: true,
            ..Self::new(body, content_type, "no-cache")
        }
    }
}

/// The widget's files, with their ETags.
#[derive(Debug)]
pub(crate) struct Assets {
    widget_js: File,
    demo: File,
    console_page: File,
    console_js: File,
    console_css: File,
    uplot_js: File,
    uplot_css: File,
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
            console_page: File::console(CONSOLE_HTML, "text/html; charset=utf-8"),
            console_js: File::console(CONSOLE_JS, "text/javascript; charset=utf-8"),
            console_css: File::console(CONSOLE_CSS, "text/css; charset=utf-8"),
            uplot_js: File::console(UPLOT_JS, "text/javascript; charset=utf-8"),
            uplot_css: File::console(UPLOT_CSS, "text/css; charset=utf-8"),
        }
    }

    /// The response to a `GET` or `HEAD` of `asset` (hyper leaves the body out for
    /// `HEAD`, keeping its `Content-Length`).
    pub(crate) fn serve(&self, asset: Asset, request: &Parts) -> Response {
        let file = match asset {
            Asset::WidgetJs => &self.widget_js,
            Asset::Demo => &self.demo,
            Asset::ConsolePage => &self.console_page,
            Asset::ConsoleJs => &self.console_js,
            Asset::ConsoleCss => &self.console_css,
            Asset::UplotJs => &self.uplot_js,
            Asset::UplotCss => &self.uplot_css,
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
        if file.console {
            headers.insert(
                CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONSOLE_CSP),
            );
            headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            headers.insert(
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            );
        }
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
    fn console_files_carry_the_security_headers_and_widget_files_do_not() {
        let assets = Assets::new();
        for asset in [
            Asset::ConsolePage,
            Asset::ConsoleJs,
            Asset::ConsoleCss,
            Asset::UplotJs,
            Asset::UplotCss,
        ] {
            assert!(asset.is_console());
            let r = assets.serve(asset, &request());
            assert_eq!(r.status(), StatusCode::OK);
            let h = r.headers();
            let csp = h
                .get(CONTENT_SECURITY_POLICY)
                .and_then(|v| v.to_str().ok())
                .expect("csp");
            assert!(csp.contains("default-src 'self'"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert!(!csp.contains("unsafe-inline"), "{csp}");
            assert_eq!(h.get(X_FRAME_OPTIONS).expect("xfo"), "DENY");
            assert_eq!(h.get(REFERRER_POLICY).expect("referrer"), "no-referrer");
            assert_eq!(h.get(CACHE_CONTROL).expect("cache"), "no-cache");
        }
        for asset in [Asset::WidgetJs, Asset::Demo] {
            assert!(!asset.is_console());
            let r = assets.serve(asset, &request());
            assert!(r.headers().get(CONTENT_SECURITY_POLICY).is_none());
        }
        assert_eq!(Asset::console_file("console.js"), Some(Asset::ConsoleJs));
        assert_eq!(Asset::console_file("uPlot.min.css"), Some(Asset::UplotCss));
        assert_eq!(Asset::console_file("index.html"), None);
        assert_eq!(Asset::console_file("../widget.js"), None);
    }

    #[test]
    fn the_console_page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(CONSOLE_HTML).expect("utf-8");
        for forbidden in [
            "<script>",
            "<style",
            " style=",
            " onclick=",
            " onload=",
            "javascript:",
        ] {
            assert!(!html.contains(forbidden), "{forbidden}");
        }
        let js = std::str::from_utf8(CONSOLE_JS).expect("utf-8");
        assert!(!js.contains("innerHTML"), "the console never parses HTML");
        assert!(
            !js.contains("localStorage"),
            "the token is kept in sessionStorage"
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
