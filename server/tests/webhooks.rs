//! Webhooks end to end: the `colloquy` binary POSTs signed events to a receiver
//! running in the test (a hyper server on 127.0.0.1), retries a receiver that
//! fails, delivers after a `kill -9` and a restart, and on two instances sharing
//! PostgreSQL or Redis delivers every event exactly once. Events are triggered
//! with `session.created` and `message.created`, selected by `--webhook-events`.
//!
//! Every wait has a deadline.

#![allow(missing_docs)]

mod common;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use colloquy_test_support::postgres::{self, Database};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use common::{client, must, skip_missing, temp_dir, unique, Server, Started, DEADLINE};

const SECRET: &str = "whsec_test_0123456789abcdef";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    headers: HeaderMap,
    body: Bytes,
    /// What the receiver answered.
    status: StatusCode,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Checks the signature as a receiver must: within 5 minutes, constant-time.
    fn assert_signed(&self) {
        let now = chrono::Utc::now().timestamp();
        let header = self.header("colloquy-signature");
        assert_eq!(
            colloquy_webhook::verify(
                SECRET.as_bytes(),
                header,
                &self.body,
                now,
                colloquy_webhook::DEFAULT_TOLERANCE
            ),
            Ok(()),
            "signature {header:?} of {:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert!(
            colloquy_webhook::verify(
                b"another secret",
                header,
                &self.body,
                now,
                colloquy_webhook::DEFAULT_TOLERANCE
            )
            .is_err(),
            "another secret does not verify"
        );
    }
}

/// A webhook receiver: answers 500 to its first `failures` requests, 200 after.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    arrived: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(failures: usize) -> Self {
        Self::on(
            TcpListener::bind("127.0.0.1:0").await.expect("bind"),
            failures,
        )
    }

    fn on(listener: TcpListener, failures: usize) -> Self {
        let addr = listener.local_addr().expect("address");
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let task = {
            let (hits, arrived) = (Arc::clone(&hits), Arc::clone(&arrived));
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (hits, arrived) = (Arc::clone(&hits), Arc::clone(&arrived));
                    tokio::spawn(async move {
                        let service =
                            hyper::service::service_fn(move |request: Request<Incoming>| {
                                let (hits, arrived) = (Arc::clone(&hits), Arc::clone(&arrived));
                                async move {
                                    let (parts, body) = request.into_parts();
                                    let body = body
                                        .collect()
                                        .await
                                        .map(|b| b.to_bytes())
                                        .unwrap_or_default();
                                    let status = {
                                        let mut hits =
                                            hits.lock().unwrap_or_else(PoisonError::into_inner);
                                        let status = if hits.len() < failures {
                                            StatusCode::INTERNAL_SERVER_ERROR
                                        } else {
                                            StatusCode::OK
                                        };
                                        hits.push(Hit {
                                            headers: parts.headers,
                                            body,
                                            status,
                                        });
                                        status
                                    };
                                    arrived.notify_waiters();
                                    Ok::<_, Infallible>(
                                        Response::builder()
                                            .status(status)
                                            .body(Full::new(Bytes::from_static(b"{}")))
                                            .expect("response"),
                                    )
                                }
                            });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Self {
            addr,
            hits,
            arrived,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/colloquy", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (at most `within`) until at least `n` requests arrived.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the receiver got {} requests within {within:?}, expected {n}: {hits:?}",
                hits.len()
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), arrived).await;
        }
    }
}

/// Waits (at most `within`) until `check` holds, looking every 50 ms.
async fn until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn webhook_args<'a>(url: &'a str, events: &'a str) -> Vec<&'a str> {
    vec![
        "--webhook",
        url,
        "--webhook-secret",
        SECRET,
        "--webhook-events",
        events,
        "--webhook-retry-base",
        "100ms",
        "--webhook-timeout",
        "2s",
    ]
}

async fn create_session(base: &str) -> Value {
    let answer = must(
        &client(),
        Method::POST,
        &format!("{base}/api/chats/sessions/"),
        Some(json!({})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    answer.body
}

/// Rows in the outbox of the SQLite file at `path` (read from another process,
/// as the WAL allows), and the most attempts of any.
fn sqlite_outbox(path: &std::path::Path) -> (i64, i64) {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database read-only");
    conn.query_row(
        "SELECT count(*), coalesce(max(attempts), 0) FROM webhook_outbox",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .expect("read the outbox")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_reach_the_receiver_with_their_headers() {
    let receiver = Receiver::start(0).await;
    let dir = temp_dir("webhooks-signed");
    let url = receiver.url();
    let mut args = vec!["--store", "memory"];
    args.extend(webhook_args(&url, "session.created,message.created"));
    let server = Server::start(dir.path(), &args);
    let session = create_session(&server.base).await;
    let sid = session["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned();
    let message = must(
        &client(),
        Method::POST,
        &format!("{}/api/chats/messages/", server.base),
        Some(json!({"session_id": sid, "message": "I need a refund", "role": "user"})),
    )
    .await;
    assert_eq!(message.status, StatusCode::CREATED, "{}", message.text);

    let hits = receiver.wait_for(2, DEADLINE).await;
    let by_type: HashMap<String, &Hit> = hits
        .iter()
        .map(|h| (h.json()["type"].as_str().unwrap_or("").to_owned(), h))
        .collect();
    for (kind, hit) in &by_type {
        hit.assert_signed();
        let body = hit.json();
        assert_eq!(hit.header("colloquy-event-type"), kind);
        assert_eq!(
            hit.header("colloquy-event-id"),
            body["id"].as_str().unwrap_or("-")
        );
        assert!(hit.header("content-type").starts_with("application/json"));
        assert_eq!(body["session"]["session_id"], sid);
        assert_eq!(body["session"]["responder"], "ai");
        assert!(body["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
    }
    let created = by_type.get("session.created").expect("session.created");
    assert!(
        created.json().get("message").is_none(),
        "no message in session.created"
    );
    let stored = by_type.get("message.created").expect("message.created");
    let body = stored.json();
    assert_eq!(body["message"]["id"], message.body["id"]);
    assert_eq!(body["message"]["message"], "I need a refund");
    assert_eq!(body["message"]["role"], "user");
    assert_eq!(hits.len(), 2, "one request per event: {hits:?}");
    let logs = server.stop();
    assert!(
        logs.iter().all(|l| !l.contains(SECRET)),
        "the secret is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_500_three_times_gets_the_event_on_the_fourth_try() {
    let receiver = Receiver::start(3).await;
    let dir = temp_dir("webhooks-retry");
    let db = dir.path().join("retry.db");
    let store = format!("sqlite:{}", db.display());
    let url = receiver.url();
    let mut args = vec!["--store", store.as_str()];
    args.extend(webhook_args(&url, "session.created"));
    let server = Server::start(dir.path(), &args);
    let session = create_session(&server.base).await;

    let hits = receiver.wait_for(4, DEADLINE).await;
    let statuses: Vec<u16> = hits.iter().map(|h| h.status.as_u16()).collect();
    assert_eq!(
        statuses,
        [500, 500, 500, 200],
        "three failures, then delivered"
    );
    let ids: HashSet<&str> = hits.iter().map(|h| h.header("colloquy-event-id")).collect();
    assert_eq!(ids.len(), 1, "every try carries the same event id: {ids:?}");
    for hit in &hits {
        hit.assert_signed();
        assert_eq!(hit.json()["session"]["id"], session["id"]);
    }
    let path = db.clone();
    until("the delivered entry leaves the outbox", DEADLINE, || {
        let path = path.clone();
        async move { sqlite_outbox(&path).0 == 0 }
    })
    .await;
    assert_eq!(receiver.hits().len(), 4, "nothing is sent after the 2xx");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_undelivered_at_kill_9_is_delivered_after_the_restart() {
    // The receiver's address is reserved, and nothing listens on it yet: it is down.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = reserved.local_addr().expect("address");
    drop(reserved);
    let url = format!("http://{addr}/hooks/colloquy");
    let dir = temp_dir("webhooks-kill9");
    let db = dir.path().join("kill9.db");
    let store = format!("sqlite:{}", db.display());
    let mut args = vec!["--store", store.as_str()];
    args.extend(webhook_args(&url, "session.created"));

    let first = Server::start(dir.path(), &args);
    let session = create_session(&first.base).await;
    let path = db.clone();
    until(
        "a delivery attempt fails while the receiver is down",
        DEADLINE,
        || {
            let path = path.clone();
            async move { sqlite_outbox(&path).1 >= 1 }
        },
    )
    .await;
    first.kill_9();
    assert_eq!(
        sqlite_outbox(&db).0,
        1,
        "the undelivered webhook survives SIGKILL"
    );

    let receiver = Receiver::on(TcpListener::bind(addr).await.expect("rebind"), 0);
    let second = Server::start(dir.path(), &args);
    // A claim cut short by the kill is due again after its lease (30 s).
    let hits = receiver.wait_for(1, Duration::from_secs(60)).await;
    hits[0].assert_signed();
    assert_eq!(hits[0].json()["session"]["id"], session["id"]);
    assert_eq!(hits[0].json()["type"], "session.created");
    let path = db.clone();
    until("the delivered entry leaves the outbox", DEADLINE, || {
        let path = path.clone();
        async move { sqlite_outbox(&path).0 == 0 }
    })
    .await;
    assert_eq!(receiver.hits().len(), 1, "delivered once");
    second.stop();
}

#[test]
fn the_signed_format_refuses_to_start_without_a_secret() {
    let dir = temp_dir("webhooks-nosecret");
    let started = Server::try_start(
        dir.path(),
        &["--store", "memory", "--webhook", "http://127.0.0.1:9/hook"],
    );
    let Started::Failed(stderr) = started else {
        panic!("colloquy started with an unsigned colloquy-format webhook");
    };
    assert!(stderr.contains("--webhook-secret"), "{stderr}");
    let started = Server::try_start(
        dir.path(),
        &[
            "--store",
            "memory",
            "--webhook",
            "ftp://127.0.0.1/hook",
            "--webhook-secret",
            SECRET,
        ],
    );
    let Started::Failed(stderr) = started else {
        panic!("colloquy started with an ftp webhook");
    };
    assert!(stderr.contains("http(s)"), "{stderr}");
    let started = Server::try_start(
        dir.path(),
        &[
            "--store",
            "memory",
            "--webhook-events",
            "handoff.requested,nope",
        ],
    );
    let Started::Failed(stderr) = started else {
        panic!("colloquy started with an unknown event");
    };
    assert!(stderr.contains("nope"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slack_format_posts_a_text() {
    let receiver = Receiver::start(0).await;
    let dir = temp_dir("webhooks-slack");
    let url = receiver.url();
    let server = Server::start(
        dir.path(),
        &[
            "--store",
            "memory",
            "--webhook",
            &url,
            "--webhook-format",
            "slack",
            "--webhook-events",
            "session.created",
        ],
    );
    let session = create_session(&server.base).await;
    let hits = receiver.wait_for(1, DEADLINE).await;
    let body = hits[0].json();
    let text = body["text"].as_str().expect("a text");
    assert!(
        text.contains(session["session_id"].as_str().expect("sid")),
        "{text}"
    );
    assert_eq!(
        body.as_object().map(serde_json::Map::len),
        Some(1),
        "only text"
    );
    assert_eq!(
        hits[0].header("colloquy-signature"),
        "",
        "unsigned without a secret"
    );
    server.stop();
}

/// Two instances on one store: sessions created on both, alternately; every
/// `session.created` reaches the receiver exactly once, then the outbox is empty.
async fn two_instances_deliver_each_event_once(
    store_args: &[&str],
    outbox_len: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = i64> + Send>>,
) {
    let receiver = Receiver::start(0).await;
    let dir = temp_dir("webhooks-two");
    let url = receiver.url();
    let mut args: Vec<&str> = store_args.to_vec();
    args.extend(webhook_args(&url, "session.created"));
    let a = Server::start(dir.path(), &args);
    let b = Server::start(dir.path(), &args);
    const EVENTS: usize = 30;
    let mut sessions = HashSet::new();
    for i in 0..EVENTS {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let session = create_session(base).await;
        sessions.insert(session["id"].as_str().expect("id").to_owned());
    }
    receiver.wait_for(EVENTS, DEADLINE).await;
    let deadline = Instant::now() + DEADLINE;
    while outbox_len().await != 0 {
        assert!(Instant::now() < deadline, "the outbox did not empty");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hits = receiver.hits();
    let ids: Vec<&str> = hits.iter().map(|h| h.header("colloquy-event-id")).collect();
    let unique_ids: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(
        ids.len(),
        unique_ids.len(),
        "an event was delivered twice by two instances"
    );
    let delivered: HashSet<String> = hits
        .iter()
        .map(|h| h.json()["session"]["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(delivered, sessions, "every session's event, once");
    for hit in &hits {
        hit.assert_signed();
    }
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_deliver_each_event_exactly_once() {
    let db = match Database::create(&postgres::url()).await {
        Ok(db) => db,
        Err(e) => {
            skip_missing("PostgreSQL (COLLOQUY_POSTGRES_URL)", &e);
            return;
        }
    };
    let url = db.url().to_owned();
    let count_url = url.clone();
    two_instances_deliver_each_event_once(&["--store", &url], move || {
        let url = count_url.clone();
        Box::pin(async move {
            let client = postgres::connect(&url).await.expect("a direct connection");
            client
                .query_one("SELECT count(*) FROM colloquy_webhook_outbox", &[])
                .await
                .expect("count")
                .get(0)
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis_deliver_each_event_exactly_once() {
    const REDIS: &str = "redis://127.0.0.1:6379/0";
    if let Err(e) = common::redis_answers(REDIS) {
        skip_missing("Redis (127.0.0.1:6379)", &e);
        return;
    }
    let prefix = format!("{}:", unique("colloquy-webhooks"));
    let queue = format!("{prefix}{{webhooks}}:q");
    two_instances_deliver_each_event_once(
        &["--store", REDIS, "--redis-prefix", &prefix],
        move || {
            let queue = queue.clone();
            Box::pin(async move {
                let client = redis::Client::open(REDIS).expect("url");
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("connect");
                redis::cmd("ZCARD")
                    .arg(&queue)
                    .query_async::<i64>(&mut conn)
                    .await
                    .expect("ZCARD")
            })
        },
    )
    .await;
    common::delete_prefix(REDIS, &prefix);
}

const TOKEN: &str = "webhooks-test-admin-token-0123456789abcdef";

/// A request with the operator's token.
async fn as_operator(method: Method, url: &str, body: Option<Value>) -> common::Answer {
    common::call_with(
        &client(),
        method.clone(),
        url,
        &[("authorization", &format!("Bearer {TOKEN}"))],
        body,
    )
    .await
    .unwrap_or_else(|e| panic!("{method} {url}: no answer: {e}"))
}

/// A visitor asks for a person on instance A of two: the receiver gets one
/// signed `handoff.requested` carrying the session as the API answered it.
async fn handoff_requested_across(store_args: &[&str]) {
    let receiver = Receiver::start(0).await;
    let dir = temp_dir("webhooks-handoff");
    let url = receiver.url();
    let mut args: Vec<&str> = store_args.to_vec();
    args.extend(["--access", "public", "--admin-token", TOKEN]);
    args.extend(webhook_args(&url, "handoff.requested,session.created"));
    let a = Server::start(dir.path(), &args);
    let b = Server::start(dir.path(), &args);
    let session = create_session(&b.base).await;
    let sid = session["session_id"].as_str().expect("sid").to_owned();
    let asked = must(
        &client(),
        Method::POST,
        &format!("{}/api/chats/sessions/{sid}/handoff/", a.base),
        Some(json!({})),
    )
    .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.text);
    let hits = receiver.wait_for(2, DEADLINE).await;
    let handoff = hits
        .iter()
        .find(|h| h.json()["type"] == "handoff.requested")
        .expect("handoff.requested");
    handoff.assert_signed();
    assert_eq!(handoff.header("colloquy-event-type"), "handoff.requested");
    let body = handoff.json();
    assert_eq!(body["session"]["session_id"], sid);
    for field in ["id", "responder", "handoff_requested_at", "is_active"] {
        assert_eq!(
            body["session"][field], asked.body[field],
            "the webhook's session is the one the API answered ({field})"
        );
    }
    let ids: HashSet<&str> = hits.iter().map(|h| h.header("colloquy-event-id")).collect();
    assert_eq!(ids.len(), 2, "each event once: {hits:?}");
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_requested_then_handed_back_sends_two_webhooks_and_a_repeat_none() {
    let receiver = Receiver::start(0).await;
    let dir = temp_dir("webhooks-responder");
    let url = receiver.url();
    let mut args = vec![
        "--store",
        "memory",
        "--access",
        "public",
        "--admin-token",
        TOKEN,
    ];
    args.extend(webhook_args(
        &url,
        "handoff.requested,responder.changed,session.created",
    ));
    let server = Server::start(dir.path(), &args);
    let session = create_session(&server.base).await;
    let sid = session["session_id"].as_str().expect("sid").to_owned();
    let handoff = format!("{}/api/chats/sessions/{sid}/handoff/", server.base);
    // Asked twice: the second finds the session already human.
    for _ in 0..2 {
        let asked = must(&client(), Method::POST, &handoff, Some(json!({}))).await;
        assert_eq!(asked.status, StatusCode::OK, "{}", asked.text);
        assert_eq!(asked.body["responder"], "human");
    }
    let back = as_operator(
        Method::PATCH,
        &format!("{}/api/chats/sessions/{sid}/", server.base),
        Some(json!({"responder": "ai"})),
    )
    .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
    // A sentinel enqueued last: once it arrived, every earlier entry was claimed
    // (claims go in enqueue order), and stopping the server finishes their POSTs.
    let sentinel = create_session(&server.base).await;
    let sentinel_id = sentinel["id"].as_str().expect("id").to_owned();
    // One snapshot decides both "arrived?" and how many to wait for: a sentinel
    // arriving between two reads must not make the wait ask for one hit too many.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let seen = receiver.hits();
        if seen
            .iter()
            .any(|h| h.json()["session"]["id"] == sentinel_id.as_str())
        {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the sentinel did not arrive: {seen:?}");
        receiver.wait_for(seen.len() + 1, left).await;
    }
    server.stop();
    let hits = receiver.hits();
    for hit in &hits {
        hit.assert_signed();
    }
    let of = |kind: &str| -> Vec<Value> {
        hits.iter()
            .map(Hit::json)
            .filter(|b| b["type"] == kind)
            .collect()
    };
    let requested = of("handoff.requested");
    assert_eq!(
        requested.len(),
        1,
        "a request on a session already human sends no webhook: {requested:?}"
    );
    assert_eq!(requested[0]["session"]["responder"], "human");
    assert!(requested[0]["session"]["handoff_requested_at"].is_string());
    let changed = of("responder.changed");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["session"]["responder"], "ai");
    assert_eq!(changed[0]["session"]["handoff_requested_at"], Value::Null);
    assert_eq!(of("session.created").len(), 2);
    assert_eq!(hits.len(), 4, "nothing else was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_webhooks_from_two_instances_on_redis() {
    const REDIS: &str = "redis://127.0.0.1:6379/0";
    if let Err(e) = common::redis_answers(REDIS) {
        skip_missing("Redis (127.0.0.1:6379)", &e);
        return;
    }
    let prefix = format!("{}:", unique("colloquy-webhooks-handoff"));
    handoff_requested_across(&["--store", REDIS, "--redis-prefix", &prefix]).await;
    common::delete_prefix(REDIS, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_webhooks_from_two_instances_on_postgres() {
    let db = match Database::create(&postgres::url()).await {
        Ok(db) => db,
        Err(e) => {
            skip_missing("PostgreSQL (COLLOQUY_POSTGRES_URL)", &e);
            return;
        }
    };
    handoff_requested_across(&["--store", db.url()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_nobody_picks_up_sends_handoff_timeout() {
    let receiver = Receiver::start(0).await;
    let dir = temp_dir("webhooks-timeout");
    let url = receiver.url();
    let mut args = vec!["--store", "memory", "--handoff-timeout", "1s"];
    args.extend(webhook_args(&url, "handoff.requested,handoff.timeout"));
    let server = Server::start(dir.path(), &args);
    let session = create_session(&server.base).await;
    let sid = session["session_id"].as_str().expect("sid").to_owned();
    let asked = must(
        &client(),
        Method::POST,
        &format!("{}/api/chats/sessions/{sid}/handoff/", server.base),
        Some(json!({})),
    )
    .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.text);
    // The instance's timer times the request out after 1 s.
    let hits = receiver.wait_for(2, DEADLINE).await;
    let body = hits[1].json();
    hits[1].assert_signed();
    assert_eq!(hits[0].json()["type"], "handoff.requested");
    assert_eq!(body["type"], "handoff.timeout");
    assert_eq!(body["session"]["session_id"], sid);
    assert_eq!(
        body["session"]["responder"], "ai",
        "the model answers again"
    );
    server.stop();
}
