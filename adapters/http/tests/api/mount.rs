//! Embedding: the `Api` called in process as a `tower::Service`, a
//! `hyper::service::Service` and through `Api::handle`, under another base path,
//! with and without the service endpoints; `Link` headers naming the mounted path;
//! the public `sse_response` and `error_response` speaking the API's wire format.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use colloquy_core::{
    ChatService, Clock, EchoModel, ManualClock, NewMessage, NewSession, Role, ServiceError,
    SessionRef, ValidationError,
};
use colloquy_http::{error_response, sse_response, Api, HttpConfig, Response};
use colloquy_memory::MemoryStore;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

/// Every wait of these tests is bounded by this.
const DEADLINE: Duration = Duration::from_secs(10);

fn service() -> ChatService {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
    ChatService::builder(Arc::new(MemoryStore::new(clock.clone())), clock)
        .model(Arc::new(EchoModel::new()))
        .build()
}

fn request(method: Method, path: &str, body: Option<Value>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(path);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    builder
        .body(Full::new(Bytes::from(bytes)))
        .expect("request")
}

/// Status, headers and the whole body of a response, read under the deadline.
async fn read(response: Response) -> (StatusCode, http::HeaderMap, String) {
    let (parts, body) = response.into_parts();
    let bytes = tokio::time::timeout(DEADLINE, body.collect())
        .await
        .expect("the body ends in time")
        .expect("infallible")
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
    (parts.status, parts.headers, text)
}

async fn call(api: &Api, method: Method, path: &str, body: Option<Value>) -> (StatusCode, String) {
    let response = tokio::time::timeout(DEADLINE, api.handle(request(method, path, body)))
        .await
        .expect("answered in time");
    let (status, _, text) = read(response).await;
    (status, text)
}

fn code(text: &str) -> String {
    let v: Value = serde_json::from_str(text).expect("json");
    v["code"].as_str().expect("code").to_owned()
}

#[tokio::test]
async fn a_base_path_moves_every_endpoint_and_the_links_follow() {
    let api = Api::new(service(), HttpConfig::default()).with_base_path("/support/api/chats/");
    assert_eq!(api.base_path(), "/support/api/chats");
    for id in ["one", "two", "three"] {
        let (status, text) = call(
            &api,
            Method::POST,
            "/support/api/chats/sessions/",
            Some(json!({"session_id": id})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
    }
    let (status, text) = call(&api, Method::GET, "/api/chats/sessions/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the default base is gone");
    assert_eq!(code(&text), "not_found");
    let (status, text) = call(&api, Method::PUT, "/support/api/chats/sessions/", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{text}");

    // Sessions made in one instant (a manual clock) are listed in id order: read it.
    let (_, text) = call(&api, Method::GET, "/support/api/chats/sessions/", None).await;
    let listed: Value = serde_json::from_str(&text).expect("json");
    // The `Link` of a page cut by its limit names the mounted path.
    let response = api
        .handle(request(
            Method::GET,
            "/support/api/chats/sessions/?limit=1",
            None,
        ))
        .await;
    let (status, headers, _) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    let link = headers["link"].to_str().expect("ascii");
    assert_eq!(
        link,
        "</support/api/chats/sessions/?limit=1&offset=1>; rel=\"next\""
    );
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .map(|(target, _)| target)
        .expect("a target");
    let (status, text) = call(&api, Method::GET, next, None).await;
    assert_eq!(status, StatusCode::OK, "the link is followable: {text}");
    let page: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(page[0]["session_id"], listed[1]["session_id"]);

    // Message pages too.
    for message in ["a", "b"] {
        let (status, text) = call(
            &api,
            Method::POST,
            "/support/api/chats/messages/",
            Some(json!({"session_id": "one", "message": message})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
    }
    let response = api
        .handle(request(
            Method::GET,
            "/support/api/chats/messages/?session_id=one&limit=1",
            None,
        ))
        .await;
    let (_, headers, _) = read(response).await;
    let link = headers["link"].to_str().expect("ascii");
    assert!(
        link.starts_with("</support/api/chats/messages/?session_id=one&limit=1&"),
        "{link}"
    );
}

#[tokio::test]
async fn the_api_can_sit_at_the_root() {
    let api = Api::new(service(), HttpConfig::default()).with_base_path("/");
    assert_eq!(api.base_path(), "");
    let (status, text) = call(&api, Method::POST, "/sessions/", None).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let (status, _) = call(&api, Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "service endpoints still win");
}

#[tokio::test]
async fn service_endpoints_are_optional() {
    let on = Api::new(service(), HttpConfig::default()).with_base_path("/support/api/chats");
    for path in ["/healthz", "/readyz", "/widget.js", "/", "/openapi.json"] {
        let (status, _) = call(&on, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path} is served by default");
    }
    let off = on.clone().with_service_endpoints(false);
    for path in ["/healthz", "/readyz", "/widget.js", "/widget/demo", "/"] {
        let (status, text) = call(&off, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(code(&text), "not_found", "{path}");
    }
    let (status, _) = call(&off, Method::POST, "/support/api/chats/sessions/", None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(&off, Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a service endpoint");
    // The clone taken before is unchanged.
    let (status, _) = call(&on, Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// The OpenAPI document at `<base>/openapi.json` (service endpoints on or off) and
/// at `/openapi.json` names the paths this mount answers, and each one it names
/// answers.
#[tokio::test]
async fn the_openapi_document_follows_the_mount() {
    let on = Api::new(service(), HttpConfig::default()).with_base_path("/support/api/chats");
    let off = on.clone().with_service_endpoints(false);
    for (api, path, service_paths) in [
        (&on, "/openapi.json", true),
        (&on, "/support/api/chats/openapi.json", true),
        (&off, "/support/api/chats/openapi.json/", false),
    ] {
        let (status, text) = call(api, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        let doc: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(doc["servers"], json!([{"url": "/"}]), "{path}");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(
            paths.keys().all(|p| !p.starts_with("/api/chats/")),
            "{path}: no path of the default mount"
        );
        assert_eq!(paths.contains_key("/healthz"), service_paths, "{path}");
        assert_eq!(paths.contains_key("/openapi.json"), service_paths, "{path}");
        assert!(
            paths.contains_key("/support/api/chats/openapi.json"),
            "{path}"
        );
        // Every documented GET without a parameter answers at its documented path
        // (the console's only with an admin token, as its entry says; none here).
        for (p, item) in paths {
            if p.contains('{') || item.get("get").is_none() || p.starts_with("/console/") {
                continue;
            }
            let (status, text) = call(api, Method::GET, p, None).await;
            assert_ne!(status, StatusCode::NOT_FOUND, "{path}: GET {p}: {text}");
        }
    }
    let (status, text) = call(&on, Method::GET, "/api/chats/openapi.json", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "not the default base: {text}"
    );
}

#[tokio::test]
async fn the_api_is_a_tower_service_and_a_hyper_service() {
    let mut api = Api::new(service(), HttpConfig::default());
    std::future::poll_fn(|cx| {
        tower_service::Service::<Request<Full<Bytes>>>::poll_ready(&mut api, cx)
    })
    .await
    .expect("always ready");
    let response = tower_service::Service::call(
        &mut api,
        request(
            Method::POST,
            "/api/chats/sessions/",
            Some(json!({"session_id": "t"})),
        ),
    )
    .await
    .expect("infallible");
    assert_eq!(response.status(), StatusCode::CREATED);
    let response =
        hyper::service::Service::call(&api, request(Method::GET, "/api/chats/sessions/t/", None))
            .await
            .expect("infallible");
    let (status, _, text) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("\"session_id\":\"t\""), "{text}");
}

#[tokio::test]
async fn sse_response_speaks_the_api_stream_format() {
    let service = service();
    let session = service
        .create_session(NewSession::default())
        .await
        .expect("session");
    let stream = service
        .chat_stream(NewMessage {
            session: SessionRef::from_uuid(session.id),
            message: "hello".into(),
            role: Role::User,
            metadata: Default::default(),
        })
        .await
        .expect("stream");
    let response_id = stream.response_id;
    let (status, headers, text) = read(sse_response(stream, Duration::from_secs(15))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert!(text.starts_with("retry: 1000\n\n"), "{text}");
    assert!(
        text.contains(&format!("id: {response_id}:0:")),
        "event ids are <response_id>:<seq>:<end>: {text}"
    );
    let events: Vec<Value> = colloquy_test_support::sse::parse_json(&text);
    let answer: String = events.iter().filter_map(|e| e["chunk"].as_str()).collect();
    assert_eq!(answer, "Echo: hello");
    let last = events.last().expect("events");
    assert_eq!(last["done"], true);
    assert_eq!(last["finish_reason"], "stop");
    assert_eq!(last["response_id"], response_id.to_string());
}

#[tokio::test]
async fn error_response_is_the_api_error() {
    let (status, _, text) = read(error_response(&ServiceError::SessionNotFound)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["code"], "session_not_found");
    assert!(body["error"].is_string());

    let invalid = ServiceError::from(ValidationError::invalid("message", "must not be empty"));
    let (status, headers, text) = read(error_response(&invalid)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["code"], "invalid_field");
    assert_eq!(body["field"], "message");

    let (status, headers, _) = read(error_response(&ServiceError::Busy)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
}
