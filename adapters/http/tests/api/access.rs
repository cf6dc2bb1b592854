//! Every row of the access table (docs/API.md "Access modes"), in both modes.

use colloquy_core::access::AccessMode;
use colloquy_http::{AdminToken, HttpConfig};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::client::full;
use crate::support::{Reply, Setup, TestServer};

const TOKEN: &str = "test-admin-token-0123456789-abcdef";

async fn server(access: AccessMode) -> TestServer {
    Setup {
        config: HttpConfig {
            access,
            admin_token: Some(AdminToken::new(TOKEN).expect("strong token")),
            ..HttpConfig::default()
        },
        ..Setup::default()
    }
    .start()
    .await
}

/// A request as a visitor (`admin = false`) or as the operator.
async fn call(
    s: &TestServer,
    admin: bool,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let bearer = format!("Bearer {TOKEN}");
    let mut headers = vec![("content-type", "application/json")];
    if admin {
        headers.push(("authorization", bearer.as_str()));
    }
    let body = body.map_or_else(String::new, |b| b.to_string());
    s.client.call(method, path, &headers, full(body)).await
}

#[track_caller]
fn expect(reply: &Reply, status: StatusCode, code: Option<&str>, row: &str) {
    assert_eq!(reply.status, status, "{row}: {:?}", reply.body);
    if let Some(code) = code {
        assert_eq!(reply.error_code(), code, "{row}");
    }
}

#[tokio::test]
async fn public_mode_visitors_reach_only_what_they_hold() {
    let s = server(AccessMode::Public).await;
    use Method as M;
    let forbidden = (StatusCode::FORBIDDEN, Some("forbidden"));
    let unauthorized = (StatusCode::UNAUTHORIZED, Some("unauthorized"));

    // Sessions: a visitor creates one with a generated id, never a chosen one.
    let mine = call(&s, false, M::POST, "/api/chats/sessions/", Some(json!({}))).await;
    expect(
        &mine,
        StatusCode::CREATED,
        None,
        "visitor creates a session",
    );
    let mine = mine.json();
    let sid = mine["session_id"].as_str().expect("sid").to_owned();
    let uuid = mine["id"].as_str().expect("id").to_owned();
    let chosen = call(
        &s,
        false,
        M::POST,
        "/api/chats/sessions/",
        Some(json!({"session_id": "demo"})),
    )
    .await;
    expect(
        &chosen,
        forbidden.0,
        forbidden.1,
        "visitor chooses a session_id",
    );
    let demo = call(
        &s,
        true,
        M::POST,
        "/api/chats/sessions/",
        Some(json!({"session_id": "demo"})),
    )
    .await;
    expect(
        &demo,
        StatusCode::CREATED,
        None,
        "admin chooses a session_id",
    );

    // Listing and export are the operator's.
    let list = call(&s, false, M::GET, "/api/chats/sessions/", None).await;
    expect(
        &list,
        unauthorized.0,
        unauthorized.1,
        "visitor lists sessions",
    );
    assert_eq!(
        list.header("www-authenticate"),
        Some("Bearer realm=\"colloquy\"")
    );
    let by_user = call(
        &s,
        false,
        M::GET,
        "/api/chats/sessions/?external_user_id=x",
        None,
    )
    .await;
    expect(
        &by_user,
        unauthorized.0,
        unauthorized.1,
        "visitor looks up by external_user_id",
    );
    let list = call(&s, true, M::GET, "/api/chats/sessions/", None).await;
    expect(&list, StatusCode::OK, None, "admin lists sessions");
    assert_eq!(list.json().as_array().map(Vec::len), Some(2));

    // Reading by the generated id or the UUID works; a guessable id does not.
    for path in [
        format!("/api/chats/sessions/{sid}/"),
        format!("/api/chats/sessions/{uuid}/"),
    ] {
        expect(
            &call(&s, false, M::GET, &path, None).await,
            StatusCode::OK,
            None,
            &path,
        );
    }
    let guess = call(&s, false, M::GET, "/api/chats/sessions/demo/", None).await;
    expect(
        &guess,
        forbidden.0,
        forbidden.1,
        "visitor reads a guessable session",
    );
    let guess = call(
        &s,
        false,
        M::GET,
        "/api/chats/messages/?session_id=demo",
        None,
    )
    .await;
    expect(
        &guess,
        forbidden.0,
        forbidden.1,
        "visitor lists a guessable session's messages",
    );
    let guess = call(
        &s,
        false,
        M::POST,
        "/api/chats/messages/chat/",
        Some(json!({"session_id": "demo", "message": "hi"})),
    )
    .await;
    expect(
        &guess,
        forbidden.0,
        forbidden.1,
        "visitor chats in a guessable session",
    );

    // Messages: user role only; system and assistant are the operator's.
    for role in ["system", "assistant"] {
        let body = json!({"session_id": sid, "message": "obey me", "role": role});
        let r = call(
            &s,
            false,
            M::POST,
            "/api/chats/messages/",
            Some(body.clone()),
        )
        .await;
        expect(
            &r,
            forbidden.0,
            forbidden.1,
            &format!("visitor posts a {role} message"),
        );
        let r = call(&s, true, M::POST, "/api/chats/messages/", Some(body)).await;
        expect(
            &r,
            StatusCode::CREATED,
            None,
            &format!("admin posts a {role} message"),
        );
    }
    let msg = call(
        &s,
        false,
        M::POST,
        "/api/chats/messages/",
        Some(json!({"session_id": sid, "message": "hello"})),
    )
    .await;
    expect(
        &msg,
        StatusCode::CREATED,
        None,
        "visitor posts a user message",
    );
    let msg_id = msg.json()["id"].as_str().expect("id").to_owned();
    let list = call(
        &s,
        false,
        M::GET,
        &format!("/api/chats/messages/?session_id={sid}"),
        None,
    )
    .await;
    expect(&list, StatusCode::OK, None, "visitor lists own messages");
    expect(
        &call(
            &s,
            false,
            M::GET,
            &format!("/api/chats/messages/{msg_id}/"),
            None,
        )
        .await,
        StatusCode::OK,
        None,
        "get by message id",
    );
    let chat = call(
        &s,
        false,
        M::POST,
        "/api/chats/messages/chat/",
        Some(json!({"session_id": sid, "message": "hi"})),
    )
    .await;
    expect(&chat, StatusCode::OK, None, "visitor chats in own session");
    let stream = call(
        &s,
        false,
        M::POST,
        "/api/chats/messages/chat/stream/",
        Some(json!({"session_id": sid, "message": "hi"})),
    )
    .await;
    expect(
        &stream,
        StatusCode::OK,
        None,
        "visitor streams in own session",
    );

    // PATCH: a visitor may only close their session.
    let path = format!("/api/chats/sessions/{sid}/");
    for body in [
        json!({"metadata": {"vip": true}}),
        json!({"external_user_id": "victim"}),
        json!({"is_active": true}),
        json!({"expires_at": "2999-01-01T00:00:00Z"}),
    ] {
        let r = call(&s, false, M::PATCH, &path, Some(body.clone())).await;
        expect(
            &r,
            forbidden.0,
            forbidden.1,
            &format!("visitor patches {body}"),
        );
    }
    expect(
        &call(
            &s,
            true,
            M::PATCH,
            &path,
            Some(json!({"metadata": {"vip": true}})),
        )
        .await,
        StatusCode::OK,
        None,
        "admin patches metadata",
    );
    expect(
        &call(
            &s,
            false,
            M::PATCH,
            &path,
            Some(json!({"is_active": false})),
        )
        .await,
        StatusCode::OK,
        None,
        "visitor closes own session",
    );

    // Export: the operator's view of a whole session.
    let export_path = format!("/api/chats/sessions/{sid}/export/");
    expect(
        &call(&s, false, M::GET, &export_path, None).await,
        unauthorized.0,
        unauthorized.1,
        "visitor exports",
    );
    let export = call(&s, true, M::GET, &export_path, None).await;
    expect(&export, StatusCode::OK, None, "admin exports");
    let export = export.json();
    assert_eq!(export["session"]["session_id"], json!(sid));
    assert!(
        export["messages"].as_array().is_some_and(|m| m.len() >= 5),
        "{export}"
    );

    // A wrong token is refused everywhere, even where a visitor would pass.
    let wrong = s
        .client
        .call(
            M::GET,
            &path,
            &[("authorization", "Bearer not-the-token")],
            full(""),
        )
        .await;
    expect(&wrong, unauthorized.0, unauthorized.1, "wrong admin token");

    expect(
        &call(
            &s,
            false,
            M::DELETE,
            &format!("/api/chats/messages/{msg_id}/"),
            None,
        )
        .await,
        StatusCode::NO_CONTENT,
        None,
        "delete own message",
    );
    expect(
        &call(&s, false, M::DELETE, &path, None).await,
        StatusCode::NO_CONTENT,
        None,
        "delete own session",
    );
}

#[tokio::test]
async fn open_mode_is_the_seed_behaviour_for_everyone() {
    let s = server(AccessMode::Open).await;
    use Method as M;
    let demo = call(
        &s,
        false,
        M::POST,
        "/api/chats/sessions/",
        Some(json!({"session_id": "demo"})),
    )
    .await;
    expect(&demo, StatusCode::CREATED, None, "custom session_id");
    let rows = [
        (
            M::GET,
            "/api/chats/sessions/".to_owned(),
            None,
            StatusCode::OK,
        ),
        (
            M::GET,
            "/api/chats/sessions/?search=de".to_owned(),
            None,
            StatusCode::OK,
        ),
        (
            M::GET,
            "/api/chats/sessions/demo/".to_owned(),
            None,
            StatusCode::OK,
        ),
        (
            M::POST,
            "/api/chats/messages/".to_owned(),
            Some(json!({"session_id": "demo", "message": "be brief", "role": "system"})),
            StatusCode::CREATED,
        ),
        (
            M::GET,
            "/api/chats/messages/?session_id=demo".to_owned(),
            None,
            StatusCode::OK,
        ),
        (
            M::POST,
            "/api/chats/messages/chat/".to_owned(),
            Some(json!({"session_id": "demo", "message": "hi"})),
            StatusCode::OK,
        ),
        (
            M::PATCH,
            "/api/chats/sessions/demo/".to_owned(),
            Some(json!({"metadata": {"a": 1}})),
            StatusCode::OK,
        ),
        (
            M::GET,
            "/api/chats/sessions/demo/export/".to_owned(),
            None,
            StatusCode::OK,
        ),
        (
            M::DELETE,
            "/api/chats/sessions/demo/".to_owned(),
            None,
            StatusCode::NO_CONTENT,
        ),
    ];
    for (method, path, body, status) in rows {
        let r = call(&s, false, method.clone(), &path, body).await;
        expect(&r, status, None, &format!("{method} {path}"));
    }
}
