//! `/api/chats/messages/`: create, get, list, soft delete, and their errors.

use colloquy_core::ServiceConfig;
use http::StatusCode;
use serde_json::{json, Value};

use crate::support::Setup;

fn texts(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|m| m["message"].as_str().expect("text"))
        .collect()
}

#[tokio::test]
async fn create_get_list_in_write_order() {
    let server = Setup::default().start().await;
    let c = &server.client;
    let s = c.create_session(&json!({"session_id": "m"})).await;
    let first = c
        .post(
            "/api/chats/messages/",
            &json!({"session_id": "m", "message": "one"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let first = first.json();
    assert_eq!(first["role"], "user");
    assert_eq!(first["metadata"], json!({}));
    let mut nested = s.clone();
    nested
        .as_object_mut()
        .expect("object")
        .remove("active_response_id");
    assert_eq!(first["session"], nested, "the session is nested");
    assert!(first["timestamp"].as_str().expect("time").ends_with('Z'));
    let by_uuid = s["id"].as_str().expect("id");
    c.post(
        "/api/chats/messages/",
        &json!({"session_id": by_uuid, "message": "Two", "role": "system", "metadata": {"k": true}}),
    )
    .await;
    c.post(
        "/api/chats/messages/",
        &json!({"session_id": "m", "message": "three", "role": "assistant"}),
    )
    .await;

    let got = c
        .get(&format!(
            "/api/chats/messages/{}",
            first["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json(), first);

    let all = c.get("/api/chats/messages/?session_id=m").await.json();
    assert_eq!(texts(&all), ["one", "Two", "three"]);
    let by_uuid = c
        .get(&format!("/api/chats/messages?session_id={by_uuid}"))
        .await
        .json();
    assert_eq!(by_uuid, all);
    let system = c
        .get("/api/chats/messages/?session_id=m&role=system")
        .await
        .json();
    assert_eq!(texts(&system), ["Two"]);
    assert_eq!(system[0]["metadata"], json!({"k": true}));
    let search = c
        .get("/api/chats/messages/?session_id=m&search=TW")
        .await
        .json();
    assert_eq!(texts(&search), ["Two"]);
    let page = c
        .get("/api/chats/messages/?session_id=m&limit=1&offset=2")
        .await
        .json();
    assert_eq!(texts(&page), ["three"]);
}

/// The target of a `Link: <target>; rel="next"` header.
fn next_link(reply: &crate::support::Reply) -> Option<String> {
    let link = reply.header("link")?;
    let target = link.strip_prefix('<')?.split_once(">; rel=\"next\"")?.0;
    Some(target.to_owned())
}

#[tokio::test]
async fn cursor_pages_follow_the_next_link_without_gap_or_repeat() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "cur"})).await;
    let written: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
    for text in &written {
        let r = c
            .post(
                "/api/chats/messages/",
                &json!({"session_id": "cur", "message": text}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    for (order, expected) in [
        ("asc", written.clone()),
        ("desc", written.iter().rev().cloned().collect()),
    ] {
        let mut seen = Vec::new();
        let mut next = Some(format!(
            "/api/chats/messages/?session_id=cur&order={order}&limit=3"
        ));
        let mut pages = 0;
        while let Some(target) = next {
            pages += 1;
            assert!(
                pages <= 3,
                "{order}: more pages than 7 messages need at 3 a page"
            );
            let reply = c.get(&target).await;
            assert_eq!(reply.status, StatusCode::OK, "{target}");
            seen.extend(texts(&reply.json()).into_iter().map(str::to_owned));
            next = next_link(&reply);
        }
        assert_eq!(seen, expected, "{order}: every message once, in order");
    }
    // A page that is not cut by its limit has no next link.
    let whole = c.get("/api/chats/messages/?session_id=cur&limit=7").await;
    assert_eq!(texts(&whole.json()).len(), 7);
    assert_eq!(next_link(&whole), None, "nothing more to fetch");
}

#[tokio::test]
async fn cursor_errors() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "a"})).await;
    c.create_session(&json!({"session_id": "b"})).await;
    let other = c
        .post(
            "/api/chats/messages/",
            &json!({"session_id": "b", "message": "x"}),
        )
        .await
        .json();
    let other_id = other["id"].as_str().expect("id");
    let foreign = c
        .get(&format!(
            "/api/chats/messages/?session_id=a&before={other_id}"
        ))
        .await;
    assert_eq!(
        foreign.status,
        StatusCode::NOT_FOUND,
        "a cursor from another session"
    );
    assert_eq!(foreign.error_code(), "message_not_found");
    for bad in ["order=newest", "before=xyz", "after=1"] {
        let r = c
            .get(&format!("/api/chats/messages/?session_id=a&{bad}"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.error_code(), "invalid_field", "{bad}");
    }
}

#[tokio::test]
async fn list_errors() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "m"})).await;
    let missing = c.get("/api/chats/messages/").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.error_code(), "missing_field");
    assert_eq!(missing.json()["field"], "session_id");
    let unknown = c.get("/api/chats/messages/?session_id=zzz").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "session_not_found");
    for bad in ["role=bot", "limit=0", "offset=x"] {
        let r = c
            .get(&format!("/api/chats/messages/?session_id=m&{bad}"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.error_code(), "invalid_field", "{bad}");
    }
}

#[tokio::test]
async fn create_errors() {
    let server = Setup {
        service: ServiceConfig {
            limits: colloquy_core::validate::Limits {
                max_message_bytes: 16,
                ..Default::default()
            },
            ..ServiceConfig::default()
        },
        ..Setup::default()
    }
    .start()
    .await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "m"})).await;
    let cases = [
        (
            json!({"message": "hi"}),
            400,
            "missing_field",
            Some("session_id"),
        ),
        (
            json!({"session_id": "m"}),
            400,
            "missing_field",
            Some("message"),
        ),
        (
            json!({"session_id": "m", "message": " \n"}),
            400,
            "invalid_field",
            Some("message"),
        ),
        (
            json!({"session_id": "m", "message": "x".repeat(17)}),
            400,
            "invalid_field",
            Some("message"),
        ),
        (
            json!({"session_id": "m", "message": "hi", "role": "bot"}),
            400,
            "invalid_field",
            Some("role"),
        ),
        (
            json!({"session_id": "m", "message": "hi", "metadata": "x"}),
            400,
            "invalid_field",
            Some("metadata"),
        ),
        (
            json!({"session_id": "nope", "message": "hi"}),
            404,
            "session_not_found",
            None,
        ),
        (json!("just a string"), 400, "invalid_json", None),
    ];
    for (body, status, code, field) in cases {
        let r = c.post("/api/chats/messages/", &body).await;
        assert_eq!(r.status.as_u16(), status, "{body}");
        assert_eq!(r.error_code(), code, "{body}");
        assert_eq!(r.json()["field"].as_str(), field, "{body}");
    }
    let at_limit = c
        .post(
            "/api/chats/messages/",
            &json!({"session_id": "m", "message": "x".repeat(16)}),
        )
        .await;
    assert_eq!(at_limit.status, StatusCode::CREATED);
}

#[tokio::test]
async fn inactive_sessions_take_no_messages() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "m"})).await;
    c.patch("/api/chats/sessions/m", &json!({"is_active": false}))
        .await;
    let body = json!({"session_id": "m", "message": "hi"});
    for path in [
        "/api/chats/messages/",
        "/api/chats/messages/chat/",
        "/api/chats/messages/chat/stream/",
    ] {
        let r = c.post(path, &body).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}");
        assert_eq!(r.error_code(), "session_inactive", "{path}");
    }
    let get = c
        .get("/api/chats/messages/chat/stream/?session_id=m&message=hi")
        .await;
    assert_eq!(get.error_code(), "session_inactive");
}

#[tokio::test]
async fn soft_delete_hides_the_message() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "m"})).await;
    let keep = c
        .post(
            "/api/chats/messages/",
            &json!({"session_id": "m", "message": "keep"}),
        )
        .await
        .json();
    let gone = c
        .post(
            "/api/chats/messages/",
            &json!({"session_id": "m", "message": "gone"}),
        )
        .await
        .json();
    let path = format!("/api/chats/messages/{}/", gone["id"].as_str().expect("id"));
    let r = c.delete(&path).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(c.get(&path).await.error_code(), "message_not_found");
    let again = c.delete(&path).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.error_code(), "message_not_found");
    let list = c.get("/api/chats/messages/?session_id=m").await.json();
    assert_eq!(texts(&list), ["keep"]);
    assert_eq!(list[0]["id"], keep["id"]);
}

#[tokio::test]
async fn non_uuid_message_ids_are_not_found() {
    let server = Setup::default().start().await;
    let c = &server.client;
    for path in ["/api/chats/messages/123/", "/api/chats/messages/not-a-uuid"] {
        let get = c.get(path).await;
        assert_eq!(get.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(get.error_code(), "message_not_found");
        assert_eq!(c.delete(path).await.error_code(), "message_not_found");
    }
    let unknown = c
        .get("/api/chats/messages/00000000-0000-0000-0000-000000000000/")
        .await;
    assert_eq!(unknown.error_code(), "message_not_found");
}
