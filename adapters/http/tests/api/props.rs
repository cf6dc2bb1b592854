//! Property tests: no body and no query string makes the server answer 500 or die.

use std::sync::OnceLock;

use http::{Method, StatusCode};
use proptest::prelude::*;
use serde_json::json;

use crate::support::client::full;
use crate::support::{Setup, TestServer};

struct Shared {
    runtime: tokio::runtime::Runtime,
    server: TestServer,
}

/// One server for every case, on its own runtime.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = runtime.block_on(async {
            let server = Setup::default().start().await;
            server
                .client
                .create_session(&json!({"session_id": "p"}))
                .await;
            server
        });
        Shared { runtime, server }
    })
}

const BODY_PATHS: &[(&str, &str)] = &[
    ("POST", "/api/chats/sessions/"),
    ("PATCH", "/api/chats/sessions/p/"),
    ("POST", "/api/chats/messages/"),
    ("POST", "/api/chats/messages/chat/"),
    ("POST", "/api/chats/messages/chat/stream/"),
];

const QUERY_PATHS: &[&str] = &[
    "/api/chats/sessions/",
    "/api/chats/messages/",
    "/api/chats/messages/chat/stream/",
];

/// JSON-ish bodies: arbitrary JSON values, objects with the API's field names and
/// random values, and raw bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("p")),
        Just(serde_json::Value::from("2999-01-01T00:00:00Z")),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    let field = prop::sample::select(vec![
        "session_id",
        "message",
        "role",
        "metadata",
        "expires_at",
        "external_user_id",
        "is_active",
    ]);
    let object = prop::collection::btree_map(field, value.clone(), 0..6).prop_map(|m| {
        serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    });
    prop_oneof![
        object.prop_map(|v| v.to_string().into_bytes()),
        value.prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Query strings of the API's parameter names with random (often encoded) values.
fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "session_id",
            "message",
            "role",
            "search",
            "limit",
            "offset",
            "is_active",
            "external_user_id",
        ])
        .prop_map(str::to_owned),
        "[a-z%+=&]{0,6}",
    ];
    let value = prop_oneof![
        "[ -~]{0,20}",
        "(%[0-9A-Fa-f]{2}){0,6}",
        "-?[0-9]{1,25}",
        Just("p".to_owned()),
    ];
    prop::collection::vec((key, value), 0..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", v.replace([' ', '#'], "+")))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn assert_no_500(status: StatusCode, what: &str) {
    assert!(!status.is_server_error(), "{what} answered {status}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_bodies_never_500(
        target in prop::sample::select(BODY_PATHS),
        bytes in body(),
        json_type in any::<bool>(),
    ) {
        let shared = shared();
        let (method, path) = target;
        let content_type = if json_type { "application/json" } else { "text/plain" };
        let status = shared.runtime.block_on(async {
            let c = &shared.server.client;
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let response = c.send(method, path, &[("content-type", content_type)], full(bytes.clone())).await;
            let status = response.status();
            // Read (or drain) the whole answer, SSE included.
            http_body_util::BodyExt::collect(response.into_body()).await.expect("body");
            assert_eq!(c.get("/healthz").await.status, StatusCode::OK);
            status
        });
        assert_no_500(status, &format!("{method} {path} {:?}", String::from_utf8_lossy(&bytes)));
    }

    #[test]
    fn random_query_strings_never_500(
        path in prop::sample::select(QUERY_PATHS),
        q in query(),
    ) {
        let shared = shared();
        let uri = format!("{path}?{q}");
        prop_assume!(uri.parse::<http::Uri>().is_ok());
        let status = shared.runtime.block_on(async {
            let c = &shared.server.client;
            let response = c.send(Method::GET, &uri, &[], full("")).await;
            let status = response.status();
            http_body_util::BodyExt::collect(response.into_body()).await.expect("body");
            status
        });
        assert_no_500(status, &uri);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_paths_and_methods_never_500(
        method in prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]),
        path in "/(api/chats/)?(sessions|messages|chat|stream|healthz|readyz|[a-z0-9%.:_-]{0,12})(/[a-z0-9%.:_-]{0,40}){0,4}/?",
    ) {
        let shared = shared();
        prop_assume!(path.parse::<http::Uri>().is_ok());
        let status = shared.runtime.block_on(async {
            let c = &shared.server.client;
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let response = c.send(method, &path, &[], full("")).await;
            let status = response.status();
            http_body_util::BodyExt::collect(response.into_body()).await.expect("body");
            status
        });
        assert_no_500(status, &format!("{method} {path}"));
    }
}
