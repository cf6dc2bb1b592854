//! The chat widget's files: `GET /widget.js`, the demo page at `/widget/demo` and `/`,
//! with their content types, cache headers, strong ETags and 304s; HEAD; CORS as on
//! every response; all of it 404 when the widget is turned off.

use colloquy_http::HttpConfig;
use http::{Method, StatusCode};

use crate::support::client::full;
use crate::support::{Reply, Setup, TestServer};

async fn server(widget: bool) -> TestServer {
    Setup {
        config: HttpConfig {
            widget,
            cors_origins: vec!["https://landing.example".to_owned()],
            ..Setup::default().config
        },
        ..Setup::default()
    }
    .start()
    .await
}

async fn get(server: &TestServer, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    server.client.call(method, path, headers, full("")).await
}

#[tokio::test]
async fn the_script_and_the_demo_page_are_served_with_their_types() {
    let server = server(true).await;
    let js = get(&server, Method::GET, "/widget.js", &[]).await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(js.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(js.header("x-content-type-options"), Some("nosniff"));
    let text = std::str::from_utf8(&js.body).expect("utf-8 script");
    assert!(text.contains("attachShadow"), "the widget script");
    assert_eq!(
        js.header("content-length"),
        Some(js.body.len().to_string().as_str())
    );

    for path in ["/widget/demo", "/widget/demo/", "/"] {
        let demo = get(&server, Method::GET, path, &[]).await;
        assert_eq!(demo.status, StatusCode::OK, "{path}");
        assert_eq!(
            demo.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(demo.header("cache-control"), Some("no-cache"));
        let html = std::str::from_utf8(&demo.body).expect("utf-8 page");
        assert!(
            html.contains(r#"<script src="/widget.js""#),
            "{path} uses the widget"
        );
    }
}

#[tokio::test]
async fn a_strong_etag_answers_if_none_match_with_304() {
    let server = server(true).await;
    let first = get(&server, Method::GET, "/widget.js", &[]).await;
    let etag = first.header("etag").expect("etag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "strong: {etag}"
    );
    let again = get(&server, Method::GET, "/widget.js", &[]).await;
    assert_eq!(again.header("etag"), Some(etag.as_str()), "stable");
    let demo = get(&server, Method::GET, "/widget/demo", &[]).await;
    assert_ne!(demo.header("etag"), Some(etag.as_str()), "one per file");

    for header in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".to_owned(),
    ] {
        let r = get(
            &server,
            Method::GET,
            "/widget.js",
            &[("if-none-match", &header)],
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{header}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    }
    let stale = get(
        &server,
        Method::GET,
        "/widget.js",
        &[("if-none-match", "\"old\"")],
    )
    .await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body, first.body);
}

#[tokio::test]
async fn head_has_the_headers_without_the_body() {
    let server = server(true).await;
    let get_reply = get(&server, Method::GET, "/widget.js", &[]).await;
    let head = get(&server, Method::HEAD, "/widget.js", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    for name in ["content-type", "content-length", "etag", "cache-control"] {
        assert_eq!(head.header(name), get_reply.header(name), "{name}");
    }
    let etag = head.header("etag").expect("etag").to_owned();
    let head = get(
        &server,
        Method::HEAD,
        "/widget.js",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(head.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn other_methods_are_405_and_cors_is_as_everywhere() {
    let server = server(true).await;
    let r = get(&server, Method::POST, "/widget.js", &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.error_code(), "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));

    let r = get(
        &server,
        Method::GET,
        "/widget.js",
        &[("origin", "https://landing.example")],
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://landing.example")
    );
    assert_eq!(r.header("vary"), Some("origin"));
    let preflight = get(
        &server,
        Method::OPTIONS,
        "/widget.js",
        &[
            ("origin", "https://landing.example"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET, HEAD, OPTIONS")
    );
}

#[tokio::test]
async fn turned_off_the_widget_paths_are_404() {
    let server = server(false).await;
    for (method, path) in [
        (Method::GET, "/widget.js"),
        (Method::HEAD, "/widget.js"),
        (Method::GET, "/widget/demo"),
        (Method::GET, "/"),
        (Method::POST, "/widget.js"),
        (Method::OPTIONS, "/widget.js"),
    ] {
        let r = get(&server, method.clone(), path, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}");
        if method != Method::HEAD {
            assert_eq!(r.error_code(), "not_found", "{method} {path}");
        }
    }
    assert_eq!(
        get(&server, Method::GET, "/healthz", &[]).await.status,
        StatusCode::OK
    );
}
