//! The console's endpoints: feedback on answers, the stats, and one visitor's
//! export and erasure, over a real socket on the memory store.

use colloquy_core::access::AccessMode;
use colloquy_core::parse_time;
use colloquy_http::{AdminToken, HttpConfig};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::client::full;
use crate::support::doubles::{Fault, FaultyStore};
use crate::support::{Reply, Setup, TestServer};

const TOKEN: &str = "test-admin-token-0123456789-abcdef";

/// One chat turn in `session`: (the visitor's message id, the answer's id).
async fn chat(s: &TestServer, session: &str, text: &str) -> (String, String) {
    let reply = s
        .client
        .post(
            "/api/chats/messages/chat/",
            &json!({"session_id": session, "message": text}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let body = reply.json();
    let id = |k: &str| body[k].as_str().expect("id").to_owned();
    (id("message_id"), id("response_id"))
}

async fn feedback(s: &TestServer, id: &str, body: Value) -> Reply {
    s.client
        .post(&format!("/api/chats/messages/{id}/feedback/"), &body)
        .await
}

#[track_caller]
fn expect_error(reply: &Reply, status: StatusCode, code: &str, field: Option<&str>) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.error_code(), code);
    assert_eq!(reply.json()["field"].as_str(), field);
}

#[tokio::test]
async fn feedback_is_stored_with_the_answer_and_the_last_one_wins() {
    let s = Setup::default().start().await;
    s.client
        .create_session(&json!({"session_id": "fb-1"}))
        .await;
    let (question, answer) = chat(&s, "fb-1", "What does it cost?").await;

    let up = feedback(&s, &answer, json!({"rating": "up"})).await;
    assert_eq!(up.status, StatusCode::OK, "{:?}", up.body);
    let up = up.json();
    assert_eq!(up["id"], answer.as_str());
    assert_eq!(up["role"], "assistant");
    assert_eq!(up["session"]["session_id"], "fb-1");
    assert_eq!(up["metadata"]["feedback"]["rating"], "up");
    assert_eq!(up["metadata"]["feedback"]["comment"], Value::Null);
    assert!(parse_time(up["metadata"]["feedback"]["at"].as_str().expect("at")).is_ok());

    let down = feedback(
        &s,
        &answer,
        json!({"rating": "down", "comment": "The price is wrong.", "session_id": "fb-1"}),
    )
    .await;
    assert_eq!(down.status, StatusCode::OK, "{:?}", down.body);
    let want = json!({"rating": "down", "comment": "The price is wrong."});
    let read = s
        .client
        .get(&format!("/api/chats/messages/{answer}/"))
        .await
        .json();
    assert_eq!(read["metadata"]["feedback"]["rating"], want["rating"]);
    assert_eq!(read["metadata"]["feedback"]["comment"], want["comment"]);
    let listed = s
        .client
        .get("/api/chats/messages/?session_id=fb-1")
        .await
        .json();
    let listed_answer = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|m| m["id"] == answer.as_str())
        .expect("the answer is listed")
        .clone();
    assert_eq!(listed_answer["metadata"]["feedback"]["rating"], "down");

    // Another session than the message's: 404, and nothing written.
    s.client
        .create_session(&json!({"session_id": "fb-2"}))
        .await;
    for other in ["fb-2", "no-such-session"] {
        let wrong = feedback(&s, &answer, json!({"rating": "up", "session_id": other})).await;
        expect_error(&wrong, StatusCode::NOT_FOUND, "message_not_found", None);
    }
    let read = s
        .client
        .get(&format!("/api/chats/messages/{answer}/"))
        .await
        .json();
    assert_eq!(read["metadata"]["feedback"]["rating"], "down");

    // Only answers take feedback; bad bodies and unknown ids are refused.
    let on_question = feedback(&s, &question, json!({"rating": "up"})).await;
    expect_error(
        &on_question,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        Some("id"),
    );
    let question_read = s
        .client
        .get(&format!("/api/chats/messages/{question}/"))
        .await
        .json();
    assert!(question_read["metadata"].get("feedback").is_none());
    let long = "x".repeat(colloquy_core::Feedback::MAX_COMMENT_CHARS + 1);
    let too_long = feedback(&s, &answer, json!({"rating": "up", "comment": long})).await;
    expect_error(
        &too_long,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        Some("comment"),
    );
    let no_rating = feedback(&s, &answer, json!({"comment": "hm"})).await;
    expect_error(
        &no_rating,
        StatusCode::BAD_REQUEST,
        "missing_field",
        Some("rating"),
    );
    let bad_rating = feedback(&s, &answer, json!({"rating": "meh"})).await;
    expect_error(
        &bad_rating,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        Some("rating"),
    );
    let unknown = feedback(
        &s,
        "0190c8e2-4b1a-7c3d-8e4f-0000000000ff",
        json!({"rating": "up"}),
    )
    .await;
    expect_error(&unknown, StatusCode::NOT_FOUND, "message_not_found", None);
    let not_uuid = feedback(&s, "nope", json!({"rating": "up"})).await;
    expect_error(&not_uuid, StatusCode::NOT_FOUND, "message_not_found", None);
    let get = s
        .client
        .get(&format!("/api/chats/messages/{answer}/feedback/"))
        .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn public_server() -> TestServer {
    Setup {
        config: HttpConfig {
            access: AccessMode::Public,
            admin_token: Some(AdminToken::new(TOKEN).expect("strong token")),
            ..HttpConfig::default()
        },
        ..Setup::default()
    }
    .start()
    .await
}

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

#[tokio::test]
async fn a_public_visitor_rates_only_answers_of_a_session_they_hold() {
    let s = public_server().await;
    let mine = call(
        &s,
        false,
        Method::POST,
        "/api/chats/sessions/",
        Some(json!({})),
    )
    .await;
    assert_eq!(mine.status, StatusCode::CREATED);
    let mine = mine.json();
    let sid = mine["session_id"].as_str().expect("sid").to_owned();
    let theirs = call(
        &s,
        false,
        Method::POST,
        "/api/chats/sessions/",
        Some(json!({})),
    )
    .await;
    let theirs = theirs.json()["session_id"]
        .as_str()
        .expect("sid")
        .to_owned();
    let (_, answer) = chat(&s, &sid, "Hello").await;
    let path = format!("/api/chats/messages/{answer}/feedback/");

    let without = call(
        &s,
        false,
        Method::POST,
        &path,
        Some(json!({"rating": "up"})),
    )
    .await;
    expect_error(
        &without,
        StatusCode::BAD_REQUEST,
        "missing_field",
        Some("session_id"),
    );
    let wrong = call(
        &s,
        false,
        Method::POST,
        &path,
        Some(json!({"rating": "up", "session_id": theirs})),
    )
    .await;
    expect_error(&wrong, StatusCode::NOT_FOUND, "message_not_found", None);
    let by_uuid = call(
        &s,
        false,
        Method::POST,
        &path,
        Some(json!({"rating": "up", "session_id": mine["id"]})),
    )
    .await;
    assert_eq!(by_uuid.status, StatusCode::OK, "{:?}", by_uuid.body);
    let right = call(
        &s,
        false,
        Method::POST,
        &path,
        Some(json!({"rating": "down", "session_id": sid})),
    )
    .await;
    assert_eq!(right.status, StatusCode::OK, "{:?}", right.body);
    let right = right.json();
    assert_eq!(right["metadata"]["feedback"]["rating"], "down");
    assert_eq!(
        right["session"],
        Value::Null,
        "a visitor is not shown the session"
    );

    // The operator needs no session_id and sees the session.
    let admin = call(&s, true, Method::POST, &path, Some(json!({"rating": "up"}))).await;
    assert_eq!(admin.status, StatusCode::OK, "{:?}", admin.body);
    assert_eq!(admin.json()["session"]["session_id"], sid.as_str());

    // The console's reads and the erasure are the operator's alone.
    for (method, path) in [
        (Method::GET, "/api/chats/stats/"),
        (
            Method::GET,
            "/api/chats/sessions/export/?external_user_id=u",
        ),
        (Method::DELETE, "/api/chats/sessions/?external_user_id=u"),
        (Method::GET, "/api/chats/inbox/"),
        (Method::GET, "/api/chats/messages/search/?q=hello"),
    ] {
        let visitor = call(&s, false, method.clone(), path, None).await;
        expect_error(&visitor, StatusCode::UNAUTHORIZED, "unauthorized", None);
        let operator = call(&s, true, method, path, None).await;
        assert_eq!(
            operator.status,
            StatusCode::OK,
            "{path}: {:?}",
            operator.body
        );
    }
}

#[tokio::test]
async fn visitor_feedback_spends_the_per_request_quota() {
    let s = Setup {
        rate_limits: Some(colloquy_core::ratelimit::RatePolicy {
            requests_per_ip: Some(colloquy_core::ratelimit::Quota {
                count: 4,
                period: std::time::Duration::from_secs(3600),
            }),
            ..colloquy_core::ratelimit::RatePolicy::default()
        }),
        ..Setup::default()
    }
    .start()
    .await;
    s.client.create_session(&json!({"session_id": "rl"})).await;
    let (_, answer) = chat(&s, "rl", "Hello").await;
    // Two requests spent; two feedbacks fit, the third is refused.
    for _ in 0..2 {
        let ok = feedback(&s, &answer, json!({"rating": "up"})).await;
        assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    }
    let limited = feedback(&s, &answer, json!({"rating": "up"})).await;
    expect_error(
        &limited,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        None,
    );
}

/// The bucket of `stats` that starts at `start`.
fn bucket<'a>(stats: &'a Value, start: &str) -> &'a Value {
    stats["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .find(|b| b["start"] == start)
        .unwrap_or_else(|| panic!("no bucket at {start}: {stats}"))
}

#[tokio::test]
async fn stats_count_what_happened_in_its_bucket() {
    let s = Setup::default().start().await;
    s.clock
        .set(parse_time("2026-03-10T10:15:00Z").expect("time"));
    s.client
        .create_session(&json!({"session_id": "st-1"}))
        .await;
    s.client
        .create_session(&json!({"session_id": "st-2"}))
        .await;
    let (_, first) = chat(&s, "st-1", "Do you ship to Canada?").await;
    let (_, second) = chat(&s, "st-1", "And to Mexico?").await;
    for (id, rating) in [(&first, "up"), (&second, "down"), (&first, "down")] {
        let r = feedback(&s, id, json!({"rating": rating})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }

    let hourly = s
        .client
        .get("/api/chats/stats/?from=2026-03-10T09:00:00Z&to=2026-03-10T12:00:00Z&bucket=hour")
        .await;
    assert_eq!(hourly.status, StatusCode::OK, "{:?}", hourly.body);
    let hourly = hourly.json();
    assert_eq!(hourly["buckets"].as_array().expect("buckets").len(), 3);
    let counted = bucket(&hourly, "2026-03-10T10:00:00.000000Z");
    for (name, want) in [
        ("sessions", 2),
        ("visitor_messages", 2),
        ("answers", 2),
        ("feedback_up", 0),
        ("feedback_down", 2),
    ] {
        assert_eq!(counted[name], want, "{name}: {hourly}");
        assert_eq!(hourly["totals"][name], want, "total {name}");
    }
    assert_eq!(
        bucket(&hourly, "2026-03-10T09:00:00.000000Z")["sessions"],
        0
    );
    assert!(hourly["ungrounded_questions"].is_array());

    // By default: the last 7 days by day, today last.
    let daily = s.client.get("/api/chats/stats/").await.json();
    let days = daily["buckets"].as_array().expect("buckets");
    assert_eq!(days.len(), 7, "{daily}");
    assert_eq!(days[6]["start"], "2026-03-10T00:00:00.000000Z");
    assert_eq!(days[6]["answers"], 2);
    assert_eq!(daily["totals"]["sessions"], 2);
    // A date as `to` includes that day.
    let dated = s
        .client
        .get("/api/chats/stats/?from=2026-03-10&to=2026-03-10")
        .await
        .json();
    assert_eq!(dated["buckets"].as_array().expect("buckets").len(), 1);
    assert_eq!(dated["totals"]["visitor_messages"], 2);
    let before = s
        .client
        .get("/api/chats/stats/?from=2026-03-01&to=2026-03-09")
        .await
        .json();
    assert_eq!(before["totals"]["sessions"], 0);

    for (query, field) in [
        ("bucket=week", "bucket"),
        ("from=yesterday", "from"),
        ("from=2026-03-10&to=2026-03-09", "to"),
        ("from=2020-01-01&to=2026-01-01", "to"),
        ("from=2026-01-01&to=2026-03-01&bucket=hour", "to"),
    ] {
        let bad = s.client.get(&format!("/api/chats/stats/?{query}")).await;
        expect_error(&bad, StatusCode::BAD_REQUEST, "invalid_field", Some(field));
    }
}

#[tokio::test]
async fn a_visitor_is_exported_then_erased_and_others_stay() {
    let s = Setup::default().start().await;
    let a1 = s
        .client
        .create_session(&json!({"session_id": "alice-1", "external_user_id": "alice"}))
        .await;
    let a2 = s
        .client
        .create_session(&json!({"session_id": "alice-2", "external_user_id": "alice"}))
        .await;
    s.client
        .create_session(&json!({"session_id": "bob-1", "external_user_id": "bob"}))
        .await;
    s.client
        .create_session(&json!({"session_id": "anon"}))
        .await;
    let (question, answer) = chat(&s, "alice-1", "My address is 1 Main St").await;
    chat(&s, "bob-1", "Hi").await;
    let deleted = s
        .client
        .delete(&format!("/api/chats/messages/{answer}/"))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    let export = s
        .client
        .get("/api/chats/sessions/export/?external_user_id=alice")
        .await;
    assert_eq!(export.status, StatusCode::OK, "{:?}", export.body);
    let export = export.json();
    assert_eq!(export["external_user_id"], "alice");
    assert_eq!(export["truncated"], false);
    let sessions = export["sessions"].as_array().expect("sessions");
    let mut ids: Vec<&str> = sessions
        .iter()
        .map(|e| e["session"]["session_id"].as_str().expect("sid"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["alice-1", "alice-2"]);
    let alice1 = sessions
        .iter()
        .find(|e| e["session"]["session_id"] == "alice-1")
        .expect("alice-1");
    let texts: Vec<&Value> = alice1["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(texts, [&json!(question)], "live messages only");

    let erased = s
        .client
        .delete("/api/chats/sessions/?external_user_id=alice")
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{:?}", erased.body);
    assert_eq!(erased.json(), json!({"sessions": 2, "messages": 2}));
    for r in ["alice-1", "alice-2"].into_iter().chain([
        a1["id"].as_str().expect("id"),
        a2["id"].as_str().expect("id"),
    ]) {
        let gone = s.client.get(&format!("/api/chats/sessions/{r}/")).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{r}");
    }
    let gone = s
        .client
        .get(&format!("/api/chats/messages/{question}/"))
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    for stays in ["bob-1", "anon"] {
        let r = s.client.get(&format!("/api/chats/sessions/{stays}/")).await;
        assert_eq!(r.status, StatusCode::OK, "{stays}");
    }
    let bob = s
        .client
        .get("/api/chats/messages/?session_id=bob-1")
        .await
        .json();
    assert_eq!(bob.as_array().expect("messages").len(), 2);
    let empty = s
        .client
        .get("/api/chats/sessions/export/?external_user_id=alice")
        .await
        .json();
    assert_eq!(empty["sessions"], json!([]));
    let again = s
        .client
        .delete("/api/chats/sessions/?external_user_id=alice")
        .await;
    assert_eq!(again.json(), json!({"sessions": 0, "messages": 0}));

    for path in [
        "/api/chats/sessions/export/",
        "/api/chats/sessions/export/?external_user_id=",
    ] {
        let r = s.client.get(path).await;
        expect_error(
            &r,
            StatusCode::BAD_REQUEST,
            "missing_field",
            Some("external_user_id"),
        );
    }
    let r = s.client.delete("/api/chats/sessions/").await;
    expect_error(
        &r,
        StatusCode::BAD_REQUEST,
        "missing_field",
        Some("external_user_id"),
    );
    let reserved = s
        .client
        .post("/api/chats/sessions/", &json!({"session_id": "export"}))
        .await;
    expect_error(
        &reserved,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        Some("session_id"),
    );
}

#[tokio::test]
async fn a_store_without_the_console_answers_501() {
    let s = Setup::default()
        .store(FaultyStore(Fault::Unavailable))
        .start()
        .await;
    let stats = s.client.get("/api/chats/stats/").await;
    expect_error(&stats, StatusCode::NOT_IMPLEMENTED, "not_supported", None);
    let erase = s
        .client
        .delete("/api/chats/sessions/?external_user_id=u")
        .await;
    expect_error(&erase, StatusCode::NOT_IMPLEMENTED, "not_supported", None);
    for path in ["/api/chats/inbox/", "/api/chats/messages/search/?q=hello"] {
        let reply = s.client.get(path).await;
        expect_error(&reply, StatusCode::NOT_IMPLEMENTED, "not_supported", None);
    }
}

/// The ids of an inbox page's sessions, by `session_id`.
fn inbox_sids(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["session"]["session_id"].as_str().expect("sid").to_owned())
        .collect()
}

#[tokio::test]
async fn the_inbox_lists_sessions_by_latest_activity_with_filters_and_pages() {
    let s = Setup::default().start().await;
    let tick = || s.clock.advance(chrono::Duration::seconds(1));
    for (sid, user) in [("in-c", "alice"), ("in-b", "bob"), ("in-a", "alice")] {
        s.client
            .create_session(&json!({"session_id": sid, "external_user_id": user}))
            .await;
        tick();
    }
    chat(&s, "in-a", "First question from a").await;
    tick();
    let (_, b_answer) = chat(&s, "in-b", "Is this thing on?").await;
    tick();
    chat(&s, "in-a", "Second question from a").await;

    let page = s.client.get("/api/chats/inbox/").await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    let page = page.json();
    assert_eq!(
        inbox_sids(&page),
        ["in-a", "in-b", "in-c"],
        "latest activity first"
    );
    assert_eq!(page["next"], Value::Null);
    let a = &page["results"][0];
    assert_eq!(a["first_question"], "First question from a");
    assert_eq!(a["message_count"], 4);
    assert_eq!(a["state"], "active");
    assert_eq!(a["rated_down"], false);
    assert_eq!(a["last_message"]["role"], "assistant");
    assert!(parse_time(a["last_activity_at"].as_str().expect("time")).is_ok());
    assert_eq!(
        a["last_activity_at"], a["last_message"]["created_at"],
        "the newest message is the last activity"
    );
    let c = &page["results"][2];
    assert_eq!(
        (
            &c["first_question"],
            &c["last_message"],
            &c["message_count"]
        ),
        (&Value::Null, &Value::Null, &json!(0))
    );

    // Pages of one, continued with `next`, give the same order.
    let mut sids = Vec::new();
    let mut path = "/api/chats/inbox/?limit=1".to_owned();
    for _ in 0..5 {
        let page = s.client.get(&path).await.json();
        sids.extend(inbox_sids(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/chats/inbox/?limit=1&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(sids, ["in-a", "in-b", "in-c"]);

    // Filters.
    let by = |q: &str| format!("/api/chats/inbox/?{q}");
    let alice = s.client.get(&by("external_user_id=alice")).await.json();
    assert_eq!(inbox_sids(&alice), ["in-a", "in-c"]);
    let down = feedback(&s, &b_answer, json!({"rating": "down"})).await;
    assert_eq!(down.status, StatusCode::OK, "{:?}", down.body);
    let rated = s.client.get(&by("rating=down")).await.json();
    assert_eq!(inbox_sids(&rated), ["in-b"]);
    assert_eq!(rated["results"][0]["rated_down"], true);
    let closed = s
        .client
        .patch("/api/chats/sessions/in-c/", &json!({"is_active": false}))
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{:?}", closed.body);
    assert_eq!(
        inbox_sids(&s.client.get(&by("state=closed")).await.json()),
        ["in-c"]
    );
    assert_eq!(
        inbox_sids(&s.client.get(&by("state=active")).await.json()),
        ["in-a", "in-b"]
    );
    assert!(inbox_sids(&s.client.get(&by("state=waiting")).await.json()).is_empty());
    let all_day = s
        .client
        .get(&by("from=2000-01-01&to=2999-12-31"))
        .await
        .json();
    assert_eq!(inbox_sids(&all_day).len(), 3);
    assert!(inbox_sids(&s.client.get(&by("to=2000-01-01")).await.json()).is_empty());

    // Bad input names its parameter.
    let long_user = format!("external_user_id={}", "x".repeat(300));
    for (query, field) in [
        ("state=open", "state"),
        ("rating=up", "rating"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=garbage", "cursor"),
        ("from=yesterday", "from"),
        (long_user.as_str(), "external_user_id"),
    ] {
        let bad = s.client.get(&by(query)).await;
        expect_error(&bad, StatusCode::BAD_REQUEST, "invalid_field", Some(field));
    }
}

#[tokio::test]
async fn message_search_finds_words_across_sessions_and_pages() {
    let s = Setup::default().start().await;
    for sid in ["se-1", "se-2"] {
        s.client.create_session(&json!({"session_id": sid})).await;
    }
    chat(&s, "se-1", "Do you ship parcels to Canada?").await;
    s.clock.advance(chrono::Duration::seconds(1));
    chat(&s, "se-2", "What about parcel tracking?").await;
    chat(&s, "se-2", "Unrelated words").await;

    let found = s.client.get("/api/chats/messages/search/?q=PARCEL").await;
    assert_eq!(found.status, StatusCode::OK, "{:?}", found.body);
    let found = found.json();
    let results = found["results"].as_array().expect("results");
    // The visitor's messages, and the echo model's answers repeating them.
    assert!(results.len() >= 2, "{found}");
    for hit in results {
        let text = hit["message"]["message"].as_str().expect("text");
        assert!(text.to_lowercase().contains("parcel"), "{text}");
        assert_eq!(hit["session"]["id"], hit["message"]["session"]["id"]);
    }
    let stamps: Vec<&str> = results
        .iter()
        .map(|h| h["message"]["timestamp"].as_str().expect("time"))
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(stamps, sorted, "newest first");

    // Pages of one continue with `next` and end with null.
    let mut seen = Vec::new();
    let mut path = "/api/chats/messages/search/?q=parcel&limit=1".to_owned();
    for _ in 0..10 {
        let page = s.client.get(&path).await.json();
        for hit in page["results"].as_array().expect("results") {
            seen.push(hit["message"]["id"].clone());
        }
        match page["next"].as_str() {
            Some(next) => {
                path = format!("/api/chats/messages/search/?q=parcel&limit=1&cursor={next}")
            }
            None => break,
        }
    }
    let all: Vec<Value> = results.iter().map(|h| h["message"]["id"].clone()).collect();
    assert_eq!(seen, all);

    let none = s
        .client
        .get("/api/chats/messages/search/?q=%21%3F")
        .await
        .json();
    assert_eq!(
        none["results"],
        json!([]),
        "a query without words finds nothing"
    );
    let missing = s.client.get("/api/chats/messages/search/").await;
    expect_error(
        &missing,
        StatusCode::BAD_REQUEST,
        "missing_field",
        Some("q"),
    );
    let long = s
        .client
        .get(&format!(
            "/api/chats/messages/search/?q={}",
            "a".repeat(501)
        ))
        .await;
    expect_error(&long, StatusCode::BAD_REQUEST, "invalid_field", Some("q"));
    let deep = s
        .client
        .get("/api/chats/messages/search/?q=a&cursor=10001")
        .await;
    expect_error(
        &deep,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        Some("cursor"),
    );
}
