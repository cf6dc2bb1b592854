//! `/api/chats/sessions/`: create, get, patch, delete, list, and their errors.

use chrono::{Duration, Utc};
use colloquy_core::{format_time, Clock};
use http::{Method, StatusCode};
use serde_json::json;

use crate::support::client::full;
use crate::support::Setup;

#[tokio::test]
async fn create_with_no_body_empty_object_or_fields() {
    let server = Setup::default().start().await;
    let c = &server.client;

    let no_body = c
        .call(Method::POST, "/api/chats/sessions/", &[], full(""))
        .await;
    assert_eq!(no_body.status, StatusCode::CREATED);
    let s = no_body.json();
    assert_eq!(
        s["session_id"].as_str().map(str::len),
        Some(colloquy_core::GENERATED_SESSION_ID_CHARS)
    );
    assert_eq!(s["is_active"], true);
    assert_eq!(s["metadata"], json!({}));
    assert_eq!(s["external_user_id"], json!(null));
    assert!(s["created_at"].as_str().expect("time").ends_with('Z'));

    let empty = c.create_session(&json!({})).await;
    assert_ne!(empty["session_id"], s["session_id"]);

    let expires = format_time(&(server.clock.now() + Duration::hours(2)));
    let custom = c
        .create_session(&json!({
            "session_id": "landing:42",
            "external_user_id": "user-7",
            "metadata": {"page": "/pricing"},
            "expires_at": expires,
        }))
        .await;
    assert_eq!(custom["session_id"], "landing:42");
    assert_eq!(custom["external_user_id"], "user-7");
    assert_eq!(custom["metadata"], json!({"page": "/pricing"}));
    assert_eq!(custom["expires_at"], expires);
}

#[tokio::test]
async fn create_rejects_bad_fields_and_taken_ids() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "taken"})).await;
    let dup = c
        .post("/api/chats/sessions/", &json!({"session_id": "taken"}))
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.error_code(), "session_exists");

    let past = format_time(&(Utc::now() - Duration::hours(1)));
    for (body, field) in [
        (json!({"session_id": "has space"}), "session_id"),
        (json!({"session_id": "x".repeat(129)}), "session_id"),
        (json!({"metadata": [1, 2]}), "metadata"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
        (json!({"expires_at": past}), "expires_at"),
        (json!({"external_user_id": 5}), "external_user_id"),
    ] {
        let r = c.post("/api/chats/sessions/", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.error_code(), "invalid_field", "{body}");
        assert_eq!(r.json()["field"], field, "{body}");
    }
    let not_object = c.post("/api/chats/sessions/", &json!([1])).await;
    assert_eq!(not_object.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_object.error_code(), "invalid_json");
}

#[tokio::test]
async fn get_by_uuid_or_session_id_with_or_without_slash() {
    let server = Setup::default().start().await;
    let c = &server.client;
    let s = c.create_session(&json!({"session_id": "a.b_c:d-e"})).await;
    let id = s["id"].as_str().expect("id");
    for path in [
        format!("/api/chats/sessions/{id}/"),
        format!("/api/chats/sessions/{id}"),
        "/api/chats/sessions/a.b_c:d-e/".to_owned(),
        "/api/chats/sessions/a.b_c%3Ad-e".to_owned(),
    ] {
        let r = c.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.json(), s, "{path}");
    }
    let missing = c.get("/api/chats/sessions/nope/").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "session_not_found");
}

#[tokio::test]
async fn patch_changes_fields_and_validates() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "p", "external_user_id": "u", "metadata": {"a": 1}}))
        .await;
    let r = c
        .patch(
            "/api/chats/sessions/p/",
            &json!({"is_active": false, "metadata": {"b": 2}, "external_user_id": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let s = r.json();
    assert_eq!(s["is_active"], false);
    assert_eq!(s["metadata"], json!({"b": 2}));
    assert_eq!(s["external_user_id"], json!(null));
    assert_eq!(c.get("/api/chats/sessions/p").await.json(), s);

    let later = format_time(&(server.clock.now() + Duration::days(3)));
    let r = c
        .patch("/api/chats/sessions/p", &json!({"expires_at": later}))
        .await;
    assert_eq!(r.json()["expires_at"], later);

    let bad = c
        .patch("/api/chats/sessions/p", &json!({"is_active": "no"}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "invalid_field");
    let past = format_time(&(server.clock.now() - Duration::seconds(1)));
    let bad = c
        .patch("/api/chats/sessions/p", &json!({"expires_at": past}))
        .await;
    assert_eq!(bad.error_code(), "invalid_field");
    let missing = c
        .patch("/api/chats/sessions/zz", &json!({"is_active": true}))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "session_not_found");
}

#[tokio::test]
async fn delete_removes_the_session_and_its_messages() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "d"})).await;
    let m = c
        .post(
            "/api/chats/messages/",
            &json!({"session_id": "d", "message": "hi"}),
        )
        .await
        .json();
    let r = c.delete("/api/chats/sessions/d/").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    let again = c.delete("/api/chats/sessions/d/").await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.error_code(), "session_not_found");
    let msg = c
        .get(&format!(
            "/api/chats/messages/{}/",
            m["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(msg.error_code(), "message_not_found");
}

#[tokio::test]
async fn list_filters_pages_newest_first() {
    let server = Setup::default().start().await;
    let c = &server.client;
    for (sid, user) in [("Alpha-1", "ann"), ("beta-2", "bob"), ("gamma-3", "ann")] {
        c.create_session(&json!({"session_id": sid, "external_user_id": user}))
            .await;
        server.clock.advance(Duration::seconds(1));
    }
    c.patch("/api/chats/sessions/beta-2", &json!({"is_active": false}))
        .await;
    let ids = |r: crate::support::Reply| -> Vec<String> {
        assert_eq!(r.status, StatusCode::OK);
        r.json()
            .as_array()
            .expect("array")
            .iter()
            .map(|s| s["session_id"].as_str().expect("sid").to_owned())
            .collect()
    };
    assert_eq!(
        ids(c.get("/api/chats/sessions/").await),
        ["gamma-3", "beta-2", "Alpha-1"]
    );
    assert_eq!(
        ids(c.get("/api/chats/sessions?is_active=false").await),
        ["beta-2"]
    );
    assert_eq!(
        ids(c.get("/api/chats/sessions/?external_user_id=ann").await),
        ["gamma-3", "Alpha-1"]
    );
    assert_eq!(
        ids(c.get("/api/chats/sessions/?search=ALPHA").await),
        ["Alpha-1"]
    );
    assert_eq!(
        ids(c.get("/api/chats/sessions/?search=a-%31").await),
        ["Alpha-1"]
    );
    let cut = c
        .get("/api/chats/sessions/?limit=1&offset=1&search=a")
        .await;
    assert_eq!(
        cut.header("link"),
        Some("</api/chats/sessions/?limit=1&search=a&offset=2>; rel=\"next\""),
        "a page cut by its limit links to the next"
    );
    assert_eq!(ids(cut), ["beta-2"]);
    let last = c.get("/api/chats/sessions/?limit=1&offset=2").await;
    assert_eq!(last.header("link"), None, "the last page has no next link");
    assert_eq!(ids(last), ["Alpha-1"]);
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "offset=-1",
        "is_active=maybe",
    ] {
        let r = c.get(&format!("/api/chats/sessions/?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.error_code(), "invalid_field", "{bad}");
    }
}

#[tokio::test]
async fn expired_sessions_are_not_found_anywhere() {
    let server = Setup::default().start().await;
    let c = &server.client;
    let s = c.create_session(&json!({"session_id": "old"})).await;
    let m = c
        .post(
            "/api/chats/messages/",
            &json!({"session_id": "old", "message": "hi"}),
        )
        .await
        .json();
    server.clock.advance(Duration::hours(24));
    assert_eq!(
        c.get("/api/chats/sessions/old/").await.error_code(),
        "session_not_found"
    );
    let by_uuid = c
        .get(&format!(
            "/api/chats/sessions/{}/",
            s["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(by_uuid.status, StatusCode::NOT_FOUND);
    assert_eq!(c.get("/api/chats/sessions/").await.json(), json!([]));
    let msg = c
        .get(&format!(
            "/api/chats/messages/{}/",
            m["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(msg.error_code(), "message_not_found");
    let list = c.get("/api/chats/messages/?session_id=old").await;
    assert_eq!(list.error_code(), "session_not_found");
    let chat = c
        .post(
            "/api/chats/messages/chat/",
            &json!({"session_id": "old", "message": "hi"}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::NOT_FOUND);
}
