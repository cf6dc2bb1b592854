//! The operator's console at `/console/`: served only with an admin token (and
//! `console` on), with its strict Content-Security-Policy and framing/referrer
//! headers on every file; its files reference only each other; 404 otherwise.

use colloquy_http::{AdminToken, HttpConfig};
use http::{Method, StatusCode};

use crate::support::client::full;
use crate::support::{Reply, Setup, TestServer};

const TOKEN: &str = "console-page-admin-token-0123456789-abcdef";

async fn server(token: bool, console: bool) -> TestServer {
    Setup {
        config: HttpConfig {
            admin_token: token.then(|| AdminToken::new(TOKEN).expect("strong token")),
            console,
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

const FILES: [(&str, &str); 6] = [
    ("/console/", "text/html; charset=utf-8"),
    ("/console", "text/html; charset=utf-8"),
    ("/console/console.js", "text/javascript; charset=utf-8"),
    ("/console/console.css", "text/css; charset=utf-8"),
    (
        "/console/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
    ),
    ("/console/uPlot.min.css", "text/css; charset=utf-8"),
];

#[tokio::test]
async fn with_an_admin_token_the_console_is_served_with_its_security_headers() {
    let server = server(true, true).await;
    for (path, content_type) in FILES {
        let r = get(&server, Method::GET, path, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        let csp = r.header("content-security-policy").expect("csp");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        assert!(!r.body.is_empty(), "{path}");
        let head = get(&server, Method::HEAD, path, &[]).await;
        assert_eq!(head.status, StatusCode::OK, "{path}");
        assert!(head.body.is_empty(), "{path}");
        let etag = r.header("etag").expect("etag").to_owned();
        let cached = get(&server, Method::GET, path, &[("if-none-match", &etag)]).await;
        assert_eq!(cached.status, StatusCode::NOT_MODIFIED, "{path}");
    }
    // The page loads exactly the files served next to it, by absolute paths.
    let html = get(&server, Method::GET, "/console/", &[]).await;
    let html = std::str::from_utf8(&html.body).expect("utf-8");
    for (path, _) in &FILES[2..] {
        assert!(html.contains(&format!("\"{path}\"")), "{path}");
    }
    let post = get(&server, Method::POST, "/console/", &[]).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    let unknown = get(&server, Method::GET, "/console/index.html", &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // The API's own responses are not given the console's policy.
    let api = get(&server, Method::GET, "/healthz", &[]).await;
    assert!(api.header("content-security-policy").is_none());
}

#[tokio::test]
async fn without_a_token_or_with_the_console_off_it_is_404() {
    for (token, console) in [(false, true), (true, false), (false, false)] {
        let server = server(token, console).await;
        for (path, _) in FILES {
            for method in [Method::GET, Method::HEAD] {
                let r = get(&server, method.clone(), path, &[]).await;
                assert_eq!(
                    r.status,
                    StatusCode::NOT_FOUND,
                    "{method} {path} token={token} console={console}"
                );
            }
        }
        // The widget is unaffected.
        let widget = get(&server, Method::GET, "/widget.js", &[]).await;
        assert_eq!(widget.status, StatusCode::OK);
    }
}
