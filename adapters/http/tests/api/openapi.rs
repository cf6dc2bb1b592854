//! The OpenAPI document against the live server: it is served at `/openapi.json`,
//! every example in it fits its schema, and every runnable example, sent to a real
//! server, gets the status it is documented under and a body that fits that
//! response's schema (each event's `data` for `text/event-stream`).
//!
//! Runnable examples: a request example (a parameter's or a body's, under a name) is
//! sent with the other request examples of the same name, and expects the response
//! that holds an example of that name. An operation without named request examples
//! is sent once with its parameters' `example`s and expects its first 2xx. Each runs
//! on a fresh server holding a fixture: the session `support-42` with one chat turn;
//! the example UUIDs of the message and of the answer stand for the fixture's. The
//! server has an admin token (so the console is served), which examples do not send:
//! in `open` mode every endpoint answers them as before.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::client::full;
use crate::support::{Setup, TestServer};

/// The example UUIDs that stand for the fixture's user message and answer.
const EXAMPLE_MESSAGE_ID: &str = "0190c8e2-4b1a-7c3d-8e4f-000000000001";
const EXAMPLE_RESPONSE_ID: &str = "0190c8e2-4b1a-7c3d-8e4f-000000000002";

fn document() -> Value {
    serde_json::from_str(colloquy_http::OPENAPI_JSON).expect("the document is JSON")
}

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(
            doc,
            doc.pointer(r.strip_prefix('#').expect("local ref"))
                .unwrap_or_else(|| panic!("dangling {r}")),
        ),
        None => node,
    }
}

/// A validator for `schema`, its `$ref`s resolved against the document.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({"components": doc["components"], "allOf": [schema]});
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema {schema}: {e}"))
}

fn assert_fits(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let errors: Vec<String> = validator(doc, schema)
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: {instance} does not fit: {errors:?}"
    );
}

/// Every operation: (path, method, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if method == "parameters" {
                continue;
            }
            let mut op = op.clone();
            // Path-level parameters apply to every operation of the path.
            let mut params: Vec<Value> = item["parameters"].as_array().cloned().unwrap_or_default();
            params.extend(op["parameters"].as_array().cloned().unwrap_or_default());
            op["parameters"] =
                Value::Array(params.iter().map(|p| resolve(doc, p).clone()).collect());
            ops.push((path.clone(), method.to_uppercase(), op));
        }
    }
    ops
}

#[tokio::test]
async fn the_document_is_served() {
    let server = Setup::default().start().await;
    let reply = server.client.get("/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(reply.json(), document());
    let head = server
        .client
        .call(Method::HEAD, "/openapi.json", &[], full(Bytes::new()))
        .await;
    assert_eq!(head.status, StatusCode::OK);
}

#[test]
fn every_example_fits_its_schema() {
    let doc = document();
    let mut checked = 0;
    for (path, method, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().expect("responses") {
            let response = resolve(&doc, response);
            let Some(content) = response.get("content").and_then(Value::as_object) else {
                continue;
            };
            for (media, body) in content {
                if media != "application/json" {
                    continue;
                }
                for (name, example) in body["examples"].as_object().into_iter().flatten() {
                    let what = format!("{method} {path} {status} example {name}");
                    assert_fits(&doc, &body["schema"], &example["value"], &what);
                    checked += 1;
                }
            }
        }
        // Request bodies that are documented to succeed fit the request schema.
        let body = &op["requestBody"]["content"]["application/json"];
        for (name, example) in body["examples"].as_object().into_iter().flatten() {
            if expected_status(&doc, &op, name).is_success() {
                let what = format!("{method} {path} request example {name}");
                assert_fits(&doc, &body["schema"], &example["value"], &what);
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "only {checked} examples");
}

/// The status whose response holds an example named `name`.
fn expected_status(doc: &Value, op: &Value, name: &str) -> StatusCode {
    for (status, response) in op["responses"].as_object().expect("responses") {
        let response = resolve(doc, response);
        let named = response["content"]
            .as_object()
            .into_iter()
            .flatten()
            .any(|(_, media)| media["examples"].get(name).is_some());
        if named {
            return StatusCode::from_bytes(status.as_bytes()).expect("status");
        }
    }
    panic!(
        "no response holds an example named {name}: {}",
        op["operationId"]
    );
}

/// The names of an operation's request examples.
fn request_example_names(op: &Value) -> Vec<String> {
    let mut names: Vec<String> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["examples"].as_object().into_iter().flatten())
        .chain(
            op["requestBody"]["content"]["application/json"]["examples"]
                .as_object()
                .into_iter()
                .flatten(),
        )
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A fresh server with the fixture; returns it with the ids the example UUIDs stand for.
async fn fixture() -> (TestServer, String, String) {
    let server = Setup {
        config: colloquy_http::HttpConfig {
            admin_token: Some(
                colloquy_http::AdminToken::new("openapi-admin-token-0123456789-abcdef")
                    .expect("strong token"),
            ),
            ..Setup::default().config
        },
        ..Setup::default()
    }
    .start()
    .await;
    server
        .client
        .create_session(&json!({"session_id": "support-42", "external_user_id": "user-17"}))
        .await;
    let chat = server
        .client
        .post(
            "/api/chats/messages/chat/",
            &json!({"session_id": "support-42", "message": "Hello!"}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::OK, "{:?}", chat.body);
    let chat = chat.json();
    let message = chat["message_id"].as_str().expect("message_id").to_owned();
    let response = chat["response_id"]
        .as_str()
        .expect("response_id")
        .to_owned();
    (server, message, response)
}

/// A parameter's value for the example `name` (its `example` otherwise).
fn parameter_value(param: &Value, name: Option<&str>) -> Option<String> {
    let value = name
        .and_then(|n| param["examples"].get(n))
        .map(|e| &e["value"])
        .or_else(|| param.get("example"))?;
    Some(match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Sends one runnable example and checks the status and the body's shape.
async fn run_example(doc: &Value, path: &str, method: &str, op: &Value, name: Option<&str>) {
    let what = format!("{method} {path} example {}", name.unwrap_or("(default)"));
    let expected = match name {
        Some(name) => expected_status(doc, op, name),
        None => op["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .filter_map(|s| StatusCode::from_bytes(s.as_bytes()).ok())
            .filter(StatusCode::is_success)
            .min()
            .unwrap_or_else(|| panic!("{what}: no 2xx")),
    };
    let (server, message, response) = fixture().await;
    let ids = |s: &str| {
        s.replace(EXAMPLE_MESSAGE_ID, &message)
            .replace(EXAMPLE_RESPONSE_ID, &response)
    };
    let mut url = path.to_owned();
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut headers: Vec<(String, String)> = Vec::new();
    for param in op["parameters"].as_array().into_iter().flatten() {
        let Some(value) = parameter_value(param, name) else {
            assert_ne!(
                param["required"], true,
                "{what}: no value for a required parameter"
            );
            continue;
        };
        let value = ids(&value);
        let key = param["name"].as_str().expect("name");
        match param["in"].as_str() {
            Some("path") => url = url.replace(&format!("{{{key}}}"), &value),
            Some("query") => {
                query.append_pair(key, &value);
            }
            Some("header") => headers.push((key.to_owned(), value)),
            other => panic!("{what}: parameter in {other:?}"),
        }
    }
    let query = query.finish();
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let body = name
        .and_then(|n| op["requestBody"]["content"]["application/json"]["examples"].get(n))
        .map(|e| e["value"].to_string());
    if body.is_some() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        server
            .client
            .call(method, &url, &header_refs, full(body.unwrap_or_default())),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: no answer within 10 s"));
    assert_eq!(reply.status, expected, "{what}: {:?}", reply.body);

    let documented = resolve(doc, &op["responses"][expected.as_str()]);
    let Some(content) = documented.get("content").and_then(Value::as_object) else {
        assert!(
            reply.body.is_empty(),
            "{what}: a body where none is documented"
        );
        return;
    };
    let content_type = reply.header("content-type").unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let spec = content
        .get(media)
        .unwrap_or_else(|| panic!("{what}: undocumented content type {content_type}"));
    match media {
        "application/json" => assert_fits(doc, &spec["schema"], &reply.json(), &what),
        "text/event-stream" => {
            let text = String::from_utf8(reply.body.to_vec()).expect("UTF-8 stream");
            let events: Vec<Value> = colloquy_test_support::sse::parse_json(&text);
            assert!(!events.is_empty(), "{what}: no events in {text:?}");
            // Each event's `data` is the JSON its `contentSchema` describes.
            let event_schema = resolve(doc, &spec["schema"]);
            let data_schema = &event_schema["properties"]["data"]["contentSchema"];
            assert!(data_schema.is_object(), "{what}: no contentSchema for data");
            for event in &events {
                assert_fits(doc, data_schema, event, &what);
            }
            assert_eq!(
                events.last().map(|e| &e["done"]),
                Some(&json!(true)),
                "{what}"
            );
        }
        _ => assert!(!reply.body.is_empty(), "{what}: empty {media}"),
    }
}

#[tokio::test]
async fn every_runnable_example_gets_its_documented_response() {
    let doc = document();
    let mut ran = 0;
    for (path, method, op) in operations(&doc) {
        let names = request_example_names(&op);
        if names.is_empty() {
            run_example(&doc, &path, &method, &op, None).await;
            ran += 1;
        }
        for name in &names {
            run_example(&doc, &path, &method, &op, Some(name)).await;
            ran += 1;
        }
    }
    // Every operation ran at least once, most of them also with an error example.
    assert!(ran >= 30, "only {ran} examples ran");
}
