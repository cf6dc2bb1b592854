//! Rate limits through HTTP: 429 with `Retry-After` and the IETF `RateLimit-Policy`
//! / `RateLimit` fields; the operator is never limited; forwarding headers count
//! only from trusted proxies.

use std::time::Duration;

use colloquy_core::ratelimit::{Quota, RatePolicy};
use colloquy_http::{AdminToken, HttpConfig};
use http::{Method, StatusCode};
use serde_json::json;

use crate::support::client::full;
use crate::support::{Setup, TestServer};

const TOKEN: &str = "test-admin-token-0123456789-abcdef";

fn per_minute(count: u32) -> Option<Quota> {
    Some(Quota {
        count,
        period: Duration::from_secs(60),
    })
}

async fn server(policy: RatePolicy, trusted_proxies: &[&str]) -> TestServer {
    Setup {
        config: HttpConfig {
            admin_token: Some(AdminToken::new(TOKEN).expect("strong token")),
            trusted_proxies: trusted_proxies
                .iter()
                .map(|n| n.parse().expect("cidr"))
                .collect(),
            ..HttpConfig::default()
        },
        rate_limits: Some(policy),
        ..Setup::default()
    }
    .start()
    .await
}

async fn chat(s: &TestServer, headers: &[(&str, &str)], session: &str) -> crate::support::Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let body = json!({"session_id": session, "message": "hi"}).to_string();
    s.client
        .call(Method::POST, "/api/chats/messages/chat/", &all, full(body))
        .await
}

#[tokio::test]
async fn chats_beyond_the_per_ip_quota_get_429_with_the_policy() {
    let s = server(
        RatePolicy {
            chats_per_ip: per_minute(3),
            ..RatePolicy::default()
        },
        &[],
    )
    .await;
    s.client.create_session(&json!({"session_id": "rl"})).await;
    for i in 0..3 {
        assert_eq!(chat(&s, &[], "rl").await.status, StatusCode::OK, "chat {i}");
    }
    let limited = chat(&s, &[], "rl").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.error_code(), "rate_limited");
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(
        (1..=20).contains(&retry),
        "one chat is earned back every 20 s: {retry}"
    );
    assert_eq!(
        limited.header("ratelimit-policy"),
        Some("\"chats-per-ip\";q=3;w=60")
    );
    assert!(limited
        .header("ratelimit")
        .is_some_and(|v| v.starts_with("\"chats-per-ip\";r=0;t=")));
    // Nothing was stored for the refused chat: 3 questions, 3 answers.
    let stored = s
        .client
        .get("/api/chats/messages/?session_id=rl")
        .await
        .json();
    assert_eq!(stored.as_array().map(Vec::len), Some(6));
    // The operator is not limited.
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        chat(&s, &[("authorization", &bearer)], "rl").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_key() {
    let s = server(
        RatePolicy {
            chats_per_ip: per_minute(2),
            ..RatePolicy::default()
        },
        &[],
    )
    .await;
    s.client
        .create_session(&json!({"session_id": "spoof"}))
        .await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let forged = format!("198.51.100.{i}");
        statuses.push(
            chat(
                &s,
                &[
                    ("x-forwarded-for", &forged),
                    ("forwarded", &format!("for={forged}")),
                ],
                "spoof",
            )
            .await
            .status,
        );
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "every request counts against the socket's address"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_quota() {
    let s = server(
        RatePolicy {
            chats_per_ip: per_minute(1),
            ..RatePolicy::default()
        },
        &["127.0.0.0/8"],
    )
    .await;
    s.client
        .create_session(&json!({"session_id": "proxied"}))
        .await;
    let alice = [("x-forwarded-for", "203.0.113.1")];
    let bob = [("x-forwarded-for", "203.0.113.2")];
    assert_eq!(chat(&s, &alice, "proxied").await.status, StatusCode::OK);
    assert_eq!(
        chat(&s, &bob, "proxied").await.status,
        StatusCode::OK,
        "another client"
    );
    assert_eq!(
        chat(&s, &alice, "proxied").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn per_session_turns_and_message_caps() {
    let s = server(
        RatePolicy {
            chats_per_session: per_minute(2),
            messages_per_session: Some(Quota {
                count: 5,
                period: Duration::from_secs(30 * 86_400),
            }),
            ..RatePolicy::default()
        },
        &[],
    )
    .await;
    s.client.create_session(&json!({"session_id": "a"})).await;
    s.client.create_session(&json!({"session_id": "b"})).await;
    assert_eq!(chat(&s, &[], "a").await.status, StatusCode::OK);
    assert_eq!(chat(&s, &[], "a").await.status, StatusCode::OK);
    let third = chat(&s, &[], "a").await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        third.header("ratelimit-policy"),
        Some("\"chats-per-session\";q=2;w=60")
    );
    assert_eq!(
        chat(&s, &[], "b").await.status,
        StatusCode::OK,
        "sessions are counted apart"
    );
    // Session b: one chat stored 2 messages; 3 more messages fit under the cap of 5.
    for i in 0..3 {
        let r = s
            .client
            .post(
                "/api/chats/messages/",
                &json!({"session_id": "b", "message": format!("m{i}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "message {i}");
    }
    let capped = s
        .client
        .post(
            "/api/chats/messages/",
            &json!({"session_id": "b", "message": "one too many"}),
        )
        .await;
    assert_eq!(capped.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        capped.header("ratelimit-policy"),
        Some("\"messages-per-session\";q=5;w=2592000")
    );
}

/// The per-request limit is spent once per request: with the chat's own limits
/// when the handler reaches them, and after the handler when it stopped earlier
/// (bad input still counts, and over the limit it is a 429).
#[tokio::test]
async fn every_request_spends_the_per_request_limit_once() {
    let s = server(
        RatePolicy {
            requests_per_ip: per_minute(4),
            chats_per_ip: per_minute(100),
            ..RatePolicy::default()
        },
        &[],
    )
    .await;
    // The operator creates the session: not counted.
    let bearer = format!("Bearer {TOKEN}");
    let created = s
        .client
        .call(
            Method::POST,
            "/api/chats/sessions/",
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            full(json!({"session_id": "once"}).to_string()),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    for i in 0..2 {
        assert_eq!(
            chat(&s, &[], "once").await.status,
            StatusCode::OK,
            "chat {i}"
        );
    }
    for i in 0..2 {
        assert_eq!(
            bad_chat(&s).await.status,
            StatusCode::BAD_REQUEST,
            "bad chat {i}"
        );
    }
    let limited = bad_chat(&s).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the fifth request"
    );
    assert_eq!(
        limited.header("ratelimit-policy"),
        Some("\"requests-per-ip\";q=4;w=60")
    );
    assert_eq!(
        chat(&s, &[], "once").await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a good chat over the per-request limit"
    );
}

/// A chat without its `message`: 400.
async fn bad_chat(s: &TestServer) -> crate::support::Reply {
    s.client
        .call(
            Method::POST,
            "/api/chats/messages/chat/",
            &[("content-type", "application/json")],
            full(json!({"session_id": "once"}).to_string()),
        )
        .await
}
