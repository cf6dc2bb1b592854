//! Issue 26's hostile visitor, items 3, 4, 5, 7 and 8, over a real socket: each test
//! prints its figure (`cargo test -- --nocapture`) and fails if the limit can be
//! dodged again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::access::AccessMode;
use colloquy_core::local::LocalRateLimiter as MemoryRateLimiter;
use colloquy_core::ratelimit::{Decision, LimitCheck, Quota, RateLimiter, RatePolicy};
use colloquy_core::StoreError;
use colloquy_http::{AdminToken, HttpConfig};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::client::full;
use crate::support::{Reply, Setup, TestServer};

const TOKEN: &str = "hostile-admin-token-0123456789-abcdef";

fn per_minute(count: u32) -> Option<Quota> {
    Some(Quota {
        count,
        period: Duration::from_secs(60),
    })
}

/// A limiter that records every key it is asked about.
#[derive(Default)]
struct Recording {
    inner: MemoryRateLimiter,
    keys: Mutex<Vec<String>>,
}

impl Recording {
    fn keys(&self) -> Vec<String> {
        self.keys.lock().expect("lock").clone()
    }
}

#[async_trait]
impl RateLimiter for Recording {
    async fn check(&self, key: &str, quota: Quota, cost: u32) -> Result<Decision, StoreError> {
        self.keys.lock().expect("lock").push(key.to_owned());
        self.inner.check(key, quota, cost).await
    }
}

async fn server(
    access: AccessMode,
    policy: RatePolicy,
    limiter: Arc<Recording>,
    configure: impl FnOnce(&mut HttpConfig),
) -> TestServer {
    let mut config = HttpConfig {
        access,
        admin_token: Some(AdminToken::new(TOKEN).expect("strong token")),
        trusted_proxies: vec!["127.0.0.1/32".parse().expect("cidr")],
        ..HttpConfig::default()
    };
    configure(&mut config);
    Setup {
        config,
        rate_limits: Some(policy),
        limiter: Some(limiter),
        ..Setup::default()
    }
    .start()
    .await
}

async fn post(s: &TestServer, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    s.client
        .call(Method::POST, path, &all, full(body.to_string()))
        .await
}

async fn admin_session(s: &TestServer) -> Value {
    let bearer = format!("Bearer {TOKEN}");
    let created = post(
        s,
        "/api/chats/sessions/",
        &[("authorization", &bearer)],
        &json!({}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    created.json()
}

/// Item 3: behind a proxy that sets `X-Forwarded-For`, a client's own `Forwarded`
/// (and `X-Real-IP`) passed through must not choose its address.
#[tokio::test]
async fn a_forwarded_spoof_behind_an_x_forwarded_for_proxy_is_refused() {
    let limiter = Arc::new(Recording::default());
    let s = server(
        AccessMode::Public,
        RatePolicy {
            requests_per_ip: per_minute(5),
            ..RatePolicy::default()
        },
        limiter,
        |_| {},
    )
    .await;
    let mut admitted = 0;
    for i in 0..40 {
        let spoof = format!("for=10.1.0.{i}");
        let real_ip = format!("10.2.0.{i}");
        let reply = s
            .client
            .call(
                Method::GET,
                "/api/chats/sessions/aaaaaaaaaaaaaaaaaaaaaaaaaa/",
                &[
                    ("forwarded", &spoof),
                    ("x-real-ip", &real_ip),
                    // What the proxy appends: the one client it saw.
                    ("x-forwarded-for", "203.0.113.50"),
                ],
                full(""),
            )
            .await;
        if reply.status != StatusCode::TOO_MANY_REQUESTS {
            admitted += 1;
        }
    }
    println!("forwarded spoof: {admitted} of 40 requests admitted (quota 5/min)");
    assert_eq!(
        admitted, 5,
        "every request counted under the proxy's client"
    );
}

/// Item 4: every spelling of a session (UUID in any case, `session_id`) spends one
/// counter, and `--max-session-messages` holds per session.
#[tokio::test]
async fn case_variants_and_the_session_id_share_one_session_counter() {
    let limiter = Arc::new(Recording::default());
    let s = server(
        AccessMode::Public,
        RatePolicy {
            chats_per_session: per_minute(10),
            messages_per_session: Some(Quota {
                count: 30,
                period: Duration::from_secs(86_400),
            }),
            ..RatePolicy::default()
        },
        limiter,
        |_| {},
    )
    .await;
    let session = admin_session(&s).await;
    let uuid = session["id"].as_str().expect("id").to_owned();
    let sid = session["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned();
    let spellings = [uuid.to_lowercase(), uuid.to_uppercase(), sid.clone()];
    let mut admitted = 0;
    for i in 0..40 {
        let client_ip = format!("198.51.100.{i}");
        let reference = &spellings[i % spellings.len()];
        let reply = post(
            &s,
            "/api/chats/messages/chat/",
            &[("x-forwarded-for", &client_ip)],
            &json!({"session_id": reference, "message": "hi"}),
        )
        .await;
        match reply.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("chat {i}: {other} {:?}", reply.body),
        }
    }
    println!("case variants: {admitted} of 40 chats from 40 IPs admitted (10/min per session)");
    assert_eq!(admitted, 10);
    // The message cap: 10 chats stored 20 messages; 10 more fit, whatever the spelling.
    let mut stored = 0;
    for i in 0..30 {
        let reference = &spellings[i % spellings.len()];
        let client_ip = format!("198.51.101.{i}");
        let reply = post(
            &s,
            "/api/chats/messages/",
            &[("x-forwarded-for", &client_ip)],
            &json!({"session_id": reference, "message": format!("m{i}")}),
        )
        .await;
        if reply.status == StatusCode::CREATED {
            stored += 1;
        }
    }
    println!("max session messages 30: {stored} more of 30 stored after 10 chats");
    assert_eq!(stored, 10);
}

/// Item 4: a reference to no session spends no per-session counter.
#[tokio::test]
async fn references_to_no_session_create_no_counters() {
    let limiter = Arc::new(Recording::default());
    let s = server(
        AccessMode::Public,
        RatePolicy {
            requests_per_ip: per_minute(1000),
            chats_per_session: per_minute(10),
            messages_per_session: per_minute(1000),
            ..RatePolicy::default()
        },
        limiter.clone(),
        |_| {},
    )
    .await;
    for i in 0..50 {
        let reference = format!("0190c8e2-4b1a-7c3d-8e4f-{i:012}");
        let chat = post(
            &s,
            "/api/chats/messages/chat/",
            &[],
            &json!({"session_id": reference, "message": "hi"}),
        )
        .await;
        assert_eq!(chat.status, StatusCode::NOT_FOUND, "{:?}", chat.body);
    }
    let keys = limiter.keys();
    let per_session = keys.iter().filter(|k| k.contains("-per-session")).count();
    let per_request = keys
        .iter()
        .filter(|k| k.starts_with("requests-per-ip"))
        .count();
    println!("50 chats to no session: {per_session} per-session checks, {per_request} per-request");
    assert_eq!(per_session, 0);
    assert_eq!(per_request, 50, "each 404 still counts once per IP");
}

/// Item 5: 401, unmatched 404, 405 and a path that is not UTF-8 count against the
/// per-IP quota.
#[tokio::test]
async fn error_answers_count_against_the_request_quota() {
    let limiter = Arc::new(Recording::default());
    let s = server(
        AccessMode::Public,
        RatePolicy {
            requests_per_ip: per_minute(4),
            ..RatePolicy::default()
        },
        limiter,
        |c| c.failed_auth_quota = None,
    )
    .await;
    let statuses = [
        s.client.get("/nothing-here").await.status,
        s.client.delete("/api/chats/messages/chat/").await.status,
        s.client.get("/api/chats/sessions/%FF/").await.status,
        s.client
            .call(
                Method::GET,
                "/api/chats/sessions/aaaaaaaaaaaaaaaaaaaaaaaaaa/",
                &[("authorization", "Bearer wrong")],
                full(""),
            )
            .await
            .status,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::NOT_FOUND,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED
        ]
    );
    let fifth = s.client.get("/nothing-here").await;
    assert_eq!(fifth.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        fifth.header("ratelimit-policy"),
        Some("\"requests-per-ip\";q=4;w=60")
    );
    assert_eq!(
        s.client.get("/healthz").await.status,
        StatusCode::OK,
        "the health check is never limited"
    );
}

/// Item 5: guessing the admin token is throttled by the failed-auth quota, and the
/// right token still works from the same address.
#[tokio::test]
async fn a_401_flood_is_limited() {
    let limiter = Arc::new(Recording::default());
    let s = server(AccessMode::Public, RatePolicy::default(), limiter, |_| {}).await;
    let mut unauthorized = 0;
    let mut limited = 0;
    for i in 0..200 {
        let guess = format!("Bearer guess-{i:04}-0123456789-abcdefghijklmn");
        let reply = s
            .client
            .call(
                Method::GET,
                "/api/chats/sessions/",
                &[("authorization", &guess)],
                full(""),
            )
            .await;
        match reply.status {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(
                    reply.header("ratelimit-policy"),
                    Some("\"failed-auth-per-ip\";q=10;w=60")
                );
                limited += 1;
            }
            other => panic!("guess {i}: {other}"),
        }
    }
    println!("401 flood: {unauthorized} of 200 wrong tokens answered 401, {limited} refused 429");
    assert_eq!(unauthorized, 10, "the default 10/min");
    let bearer = format!("Bearer {TOKEN}");
    let admin = s
        .client
        .call(
            Method::GET,
            "/api/chats/sessions/",
            &[("authorization", &bearer)],
            full(""),
        )
        .await;
    assert_eq!(
        admin.status,
        StatusCode::OK,
        "the token itself is never refused"
    );
}

/// Item 7: a message id does not reveal its session; cancel does not tell an ended
/// answer from an unknown id.
#[tokio::test]
async fn a_message_id_is_not_a_session_capability() {
    let limiter = Arc::new(Recording::default());
    let s = server(AccessMode::Public, RatePolicy::default(), limiter, |_| {}).await;
    let session = post(&s, "/api/chats/sessions/", &[], &json!({}))
        .await
        .json();
    let sid = session["session_id"].as_str().expect("session_id");
    let reply = post(
        &s,
        "/api/chats/messages/chat/",
        &[],
        &json!({"session_id": sid, "message": "hi"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = reply.json();
    let message_id = reply["message_id"].as_str().expect("message_id");
    let response_id = reply["response_id"].as_str().expect("response_id");
    let message = s
        .client
        .get(&format!("/api/chats/messages/{message_id}/"))
        .await;
    assert_eq!(message.status, StatusCode::OK);
    let body = message.json();
    assert_eq!(body["message"], "hi");
    assert!(body["session"].is_null(), "{body}");
    assert!(!String::from_utf8_lossy(&message.body).contains(sid));
    let ended = post(
        &s,
        &format!("/api/chats/messages/chat/stream/{response_id}/cancel/"),
        &[],
        &json!({}),
    )
    .await;
    let unknown = post(
        &s,
        "/api/chats/messages/chat/stream/0190c8e2-4b1a-7c3d-8e4f-000000000001/cancel/",
        &[],
        &json!({}),
    )
    .await;
    assert_eq!(ended.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.status, ended.status);
    assert_eq!(ended.error_code(), unknown.error_code());
    // The operator still sees the session and the 409.
    let bearer = format!("Bearer {TOKEN}");
    let admin = s
        .client
        .call(
            Method::GET,
            &format!("/api/chats/messages/{message_id}/"),
            &[("authorization", &bearer)],
            full(""),
        )
        .await;
    assert_eq!(admin.json()["session"]["session_id"], sid);
}

/// Item 8: `nosniff` everywhere; a visitor's key on POST /sessions/ does not give
/// two visitors one session; a cross-site chat stream GET is refused.
#[tokio::test]
async fn nosniff_session_keys_and_cross_site_chat() {
    let limiter = Arc::new(Recording::default());
    let s = server(AccessMode::Public, RatePolicy::default(), limiter, |c| {
        c.cors_origins = vec!["https://landing.example".to_owned()]
    })
    .await;
    for reply in [
        s.client.get("/healthz").await,
        s.client.get("/nope").await,
        post(&s, "/api/chats/sessions/", &[], &json!({})).await,
    ] {
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
    let key = [("idempotency-key", "same-key-behind-one-nat")];
    let a = post(&s, "/api/chats/sessions/", &key, &json!({}))
        .await
        .json();
    let b = post(&s, "/api/chats/sessions/", &key, &json!({}))
        .await
        .json();
    assert_ne!(
        a["session_id"], b["session_id"],
        "two visitors, two sessions"
    );
    let sid = a["session_id"].as_str().expect("session_id");
    let path = format!("/api/chats/messages/chat/stream/?session_id={sid}&message=hi");
    let get = |headers: Vec<(&'static str, &'static str)>| {
        let path = path.clone();
        let client = s.client.clone();
        async move {
            let response = client.send(Method::GET, &path, &headers, full("")).await;
            response.status()
        }
    };
    assert_eq!(
        get(vec![("origin", "https://evil.example")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(vec![("sec-fetch-site", "cross-site")]).await,
        StatusCode::FORBIDDEN,
        "an <img> from another site"
    );
    assert_eq!(
        get(vec![("origin", "https://landing.example")]).await,
        StatusCode::OK
    );
    assert_eq!(
        get(vec![("sec-fetch-site", "same-origin")]).await,
        StatusCode::OK
    );
    assert_eq!(get(vec![]).await, StatusCode::OK, "curl");
}

/// Spent by the pipeline: one limiter call per request, with every quota in it.
#[tokio::test]
async fn one_limiter_call_per_request() {
    #[derive(Default)]
    struct Calls {
        inner: MemoryRateLimiter,
        calls: Mutex<Vec<usize>>,
    }
    #[async_trait]
    impl RateLimiter for Calls {
        async fn check(&self, key: &str, quota: Quota, cost: u32) -> Result<Decision, StoreError> {
            self.inner.check(key, quota, cost).await
        }
        async fn check_in_order(&self, checks: &[LimitCheck]) -> Result<Vec<Decision>, StoreError> {
            self.calls.lock().expect("lock").push(checks.len());
            self.inner.check_in_order(checks).await
        }
    }
    let calls = Arc::new(Calls::default());
    let s = Setup {
        config: HttpConfig {
            access: AccessMode::Public,
            ..HttpConfig::default()
        },
        rate_limits: Some(RatePolicy::public_defaults(Duration::from_secs(86_400))),
        limiter: Some(calls.clone()),
        ..Setup::default()
    }
    .start()
    .await;
    let session = post(&s, "/api/chats/sessions/", &[], &json!({}))
        .await
        .json();
    let sid = session["session_id"].as_str().expect("session_id");
    let chat = post(
        &s,
        "/api/chats/messages/chat/",
        &[],
        &json!({"session_id": sid, "message": "hi"}),
    )
    .await;
    assert_eq!(chat.status, StatusCode::OK);
    // Session: requests + sessions per IP. Chat: requests, chats per IP, chats and
    // messages per session.
    assert_eq!(*calls.calls.lock().expect("lock"), [2, 4]);
}
