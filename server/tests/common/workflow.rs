//! The HTTP checks every durable store passes through the `colloquy` binary (SQLite,
//! Redis, PostgreSQL): the seed's workflow and the rest of the API on one instance,
//! two instances on one store, `kill -9` under write load, and a store outage.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::{
    all_messages, call, must, open_stream, Answer, HttpClient, Server, SseEvent, SseStream,
};

/// Server arguments the workflow needs: an echo slow enough (a word every 100 ms) to
/// resume and cancel an answer while it is generated.
pub const WORKFLOW_ARGS: [&str; 2] = ["--echo-chunk-delay", "100ms"];

/// The question of the streamed answers that are resumed and cancelled.
pub const QUESTION: &str = "one two three four five six";

fn ids(list: &[Value]) -> Vec<Value> {
    list.iter().map(|m| m["id"].clone()).collect()
}

fn text(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter_map(|e| e.json()["chunk"].as_str().map(str::to_owned))
        .collect()
}

/// The target of a `Link: <...>; rel="next"` header, as an absolute URL.
fn next_link(base: &str, answer: &Answer) -> Option<String> {
    let link = answer.headers.get("link")?.to_str().ok()?;
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    let target = link.strip_prefix('<')?.split_once('>')?.0;
    Some(if target.starts_with("http") {
        target.to_owned()
    } else {
        format!("{base}{target}")
    })
}

/// Follows `Link` from `url` to the last page; every page's ids, in order.
async fn pages(client: &HttpClient, base: &str, url: String) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    let mut next = Some(url);
    while let Some(url) = next {
        assert!(out.len() < 100, "Link never ends");
        let answer = must(client, Method::GET, &url, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{url}: {}", answer.text);
        out.push(ids(answer.body.as_array().expect("an array")));
        next = next_link(base, &answer);
    }
    out
}

fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.body["code"], code, "{}", answer.text);
}

/// The seed's workflow and the rest of the API, on a server started with
/// [`WORKFLOW_ARGS`]: sessions, messages, cursors and `Link`, chat, the SSE stream
/// (POST and GET), resume, cancel, patch, soft and hard delete, and the errors.
pub async fn http_workflow(client: &HttpClient, base: &str) {
    let api = format!("{base}/api/chats");
    // Sessions.
    let created = must(
        client,
        Method::POST,
        &format!("{api}/sessions/"),
        Some(json!({"session_id": "flow", "external_user_id": "visitor-1", "metadata": {"page": "/"}})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["session_id"], "flow");
    assert_eq!(created.body["external_user_id"], "visitor-1");
    assert_eq!(created.body["metadata"], json!({"page": "/"}));
    assert_eq!(created.body["is_active"], true);
    let uuid = created.body["id"].as_str().expect("a uuid").to_owned();
    for reference in ["flow", uuid.as_str()] {
        let got = must(
            client,
            Method::GET,
            &format!("{api}/sessions/{reference}/"),
            None,
        )
        .await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text);
        assert_eq!(got.body, created.body, "by {reference}");
    }
    let taken = must(
        client,
        Method::POST,
        &format!("{api}/sessions/"),
        Some(json!({"session_id": "flow"})),
    )
    .await;
    assert_error(&taken, StatusCode::CONFLICT, "session_exists");
    let other = must(client, Method::POST, &format!("{api}/sessions/"), None).await;
    assert_eq!(
        other.status,
        StatusCode::CREATED,
        "an empty body: {}",
        other.text
    );
    assert!(other.body["session_id"]
        .as_str()
        .is_some_and(|s| s.len() >= 26));

    // Messages: a system prompt, then five.
    let post = |message: String, role: &'static str| {
        let url = format!("{api}/messages/");
        async move {
            must(
                client,
                Method::POST,
                &url,
                Some(json!({"session_id": "flow", "message": message, "role": role, "metadata": {"n": 1}})),
            )
            .await
        }
    };
    let system = post("You are helpful.".into(), "system").await;
    assert_eq!(system.status, StatusCode::CREATED, "{}", system.text);
    let mut nested = created.body.clone();
    nested
        .as_object_mut()
        .map(|s| s.remove("active_response_id"));
    assert_eq!(
        system.body["session"], nested,
        "a message carries its session (without active_response_id)"
    );
    let mut written = vec![system.body["id"].clone()];
    for i in 0..5 {
        let m = post(format!("message {i}"), "user").await;
        assert_eq!(m.status, StatusCode::CREATED, "{}", m.text);
        assert_eq!(m.body["message"], format!("message {i}"));
        written.push(m.body["id"].clone());
    }
    let one = must(
        client,
        Method::GET,
        &format!(
            "{api}/messages/{}/",
            written[1].as_str().unwrap_or_default()
        ),
        None,
    )
    .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.body["message"], "message 0");
    assert_eq!(one.body["metadata"], json!({"n": 1}));
    let listed = all_messages(client, base, "flow").await;
    assert_eq!(ids(&listed), written, "listed in write order");
    let timestamps: Vec<&str> = listed
        .iter()
        .filter_map(|m| m["timestamp"].as_str())
        .collect();
    assert!(
        timestamps.windows(2).all(|w| w[0] <= w[1]),
        "{timestamps:?}"
    );
    let systems = must(
        client,
        Method::GET,
        &format!("{api}/messages/?session_id={uuid}&role=system"),
        None,
    )
    .await;
    assert_eq!(
        ids(systems.body.as_array().expect("array")),
        written[..1],
        "by UUID and role"
    );
    let found = must(
        client,
        Method::GET,
        &format!("{api}/messages/?session_id=flow&search=MESSAGE%203"),
        None,
    )
    .await;
    assert_eq!(
        ids(found.body.as_array().expect("array")),
        written[4..5],
        "case-insensitive search"
    );

    // Cursors and Link: forwards, backwards, offset, and the last page has none.
    let forward = pages(
        client,
        base,
        format!("{api}/messages/?session_id=flow&limit=4"),
    )
    .await;
    assert_eq!(forward, [written[..4].to_vec(), written[4..].to_vec()]);
    let backward = pages(
        client,
        base,
        format!("{api}/messages/?session_id=flow&order=desc&limit=4"),
    )
    .await;
    let mut newest_first = written.clone();
    newest_first.reverse();
    assert_eq!(
        backward,
        [newest_first[..4].to_vec(), newest_first[4..].to_vec()]
    );
    let after = must(
        client,
        Method::GET,
        &format!(
            "{api}/messages/?session_id=flow&after={}&limit=2",
            written[1].as_str().unwrap_or_default()
        ),
        None,
    )
    .await;
    assert_eq!(ids(after.body.as_array().expect("array")), written[2..4]);
    assert!(
        after.headers.contains_key("link"),
        "cut by its limit: a Link"
    );
    let before = must(
        client,
        Method::GET,
        &format!(
            "{api}/messages/?session_id=flow&before={}&order=desc",
            written[2].as_str().unwrap_or_default()
        ),
        None,
    )
    .await;
    assert_eq!(
        ids(before.body.as_array().expect("array")),
        [written[1].clone(), written[0].clone()]
    );
    assert!(
        !before.headers.contains_key("link"),
        "the last page has no Link"
    );
    let offset = must(
        client,
        Method::GET,
        &format!("{api}/messages/?session_id=flow&offset=4&limit=100"),
        None,
    )
    .await;
    assert_eq!(
        ids(offset.body.as_array().expect("array")),
        written[4..],
        "the seed's offset"
    );
    let sessions = pages(client, base, format!("{api}/sessions/?limit=1")).await;
    assert_eq!(
        sessions.len(),
        2,
        "two sessions, one per page: {sessions:?}"
    );
    assert_eq!(sessions[0], [other.body["id"].clone()], "newest first");

    // Chat, whole and streamed (POST and GET).
    let chat = must(
        client,
        Method::POST,
        &format!("{api}/messages/chat/"),
        Some(json!({"session_id": "flow", "message": "What is Colloquy?"})),
    )
    .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.text);
    assert_eq!(chat.body["response"], "Echo: What is Colloquy?");
    assert_eq!(chat.body["session_id"], "flow");
    let (status, mut stream) = open_stream(
        client,
        Method::POST,
        &format!("{api}/messages/chat/stream/"),
        &[],
        Some(json!({"session_id": "flow", "message": "Tell me more"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let events = stream.rest().await;
    assert_eq!(text(&events), "Echo: Tell me more");
    let last = events.last().expect("events").json();
    assert_eq!(
        (last["done"].clone(), last["finish_reason"].clone()),
        (json!(true), json!("stop"))
    );
    let response_id = last["response_id"]
        .as_str()
        .expect("response_id")
        .to_owned();
    assert!(
        events[0]
            .last_event_id
            .starts_with(&format!("{response_id}:0:")),
        "{events:?}"
    );
    let (status, mut stream) = open_stream(
        client,
        Method::GET,
        &format!("{api}/messages/chat/stream/?session_id=flow&message=Hi%20again"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&stream.rest().await), "Echo: Hi again");
    let listed = all_messages(client, base, "flow").await;
    let roles: Vec<&str> = listed.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "user",
            "user",
            "user",
            "user",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant"
        ]
    );
    assert_eq!(listed[7]["id"], chat.body["response_id"]);
    assert_eq!(listed[9]["id"], json!(response_id));
    assert_eq!(
        listed[9]["message"], "Echo: Tell me more",
        "stored as streamed"
    );

    resume_and_cancel(client, base, base, "flow").await;

    // Soft delete of a message.
    let victim = format!(
        "{api}/messages/{}/",
        written[1].as_str().unwrap_or_default()
    );
    let deleted = must(client, Method::DELETE, &victim, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_error(
        &must(client, Method::GET, &victim, None).await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    );
    assert_error(
        &must(client, Method::DELETE, &victim, None).await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    );
    let listed = all_messages(client, base, "flow").await;
    assert!(!ids(&listed).contains(&written[1]), "gone from the list");

    // Patch: metadata replaced, closed to writes.
    let patched = must(
        client,
        Method::PATCH,
        &format!("{api}/sessions/flow/"),
        Some(json!({"is_active": false, "metadata": {"closed": true}, "external_user_id": "visitor-2"})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["metadata"], json!({"closed": true}));
    assert_eq!(patched.body["is_active"], false);
    let by_user = must(
        client,
        Method::GET,
        &format!("{api}/sessions/?external_user_id=visitor-2"),
        None,
    )
    .await;
    assert_eq!(ids(by_user.body.as_array().expect("array")), [json!(uuid)]);
    let inactive = must(
        client,
        Method::GET,
        &format!("{api}/sessions/?is_active=false"),
        None,
    )
    .await;
    assert_eq!(ids(inactive.body.as_array().expect("array")), [json!(uuid)]);
    for url in [format!("{api}/messages/"), format!("{api}/messages/chat/")] {
        let refused = must(
            client,
            Method::POST,
            &url,
            Some(json!({"session_id": "flow", "message": "late"})),
        )
        .await;
        assert_error(&refused, StatusCode::CONFLICT, "session_inactive");
    }

    // Errors.
    let errors = [
        (
            Method::GET,
            "sessions/nobody/",
            None,
            404,
            "session_not_found",
        ),
        (
            Method::POST,
            "messages/",
            Some(json!({"session_id": "nobody", "message": "x"})),
            404,
            "session_not_found",
        ),
        (
            Method::GET,
            "messages/not-a-uuid/",
            None,
            404,
            "message_not_found",
        ),
        (
            Method::POST,
            "messages/",
            Some(json!({"session_id": "flow", "message": "  "})),
            400,
            "invalid_field",
        ),
        (Method::GET, "messages/", None, 400, "missing_field"),
        (
            Method::POST,
            "messages/",
            Some(json!({"session_id": "flow", "message": "x", "role": "robot"})),
            400,
            "invalid_field",
        ),
    ];
    for (method, path, body, status, code) in errors {
        let answer = must(client, method, &format!("{api}/{path}"), body).await;
        let status = StatusCode::from_u16(status).expect("a status");
        assert_error(&answer, status, code);
    }

    // Delete: the session and its messages are gone; a second delete is 404.
    let session_url = format!("{api}/sessions/flow/");
    let deleted = must(client, Method::DELETE, &session_url, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_error(
        &must(client, Method::DELETE, &session_url, None).await,
        StatusCode::NOT_FOUND,
        "session_not_found",
    );
    assert_error(
        &must(client, Method::GET, &session_url, None).await,
        StatusCode::NOT_FOUND,
        "session_not_found",
    );
    let list = must(
        client,
        Method::GET,
        &format!("{api}/messages/?session_id=flow"),
        None,
    )
    .await;
    assert_error(&list, StatusCode::NOT_FOUND, "session_not_found");
    let message = must(
        client,
        Method::GET,
        &format!(
            "{api}/messages/{}/",
            written[2].as_str().unwrap_or_default()
        ),
        None,
    )
    .await;
    assert_error(&message, StatusCode::NOT_FOUND, "message_not_found");
}

/// Starts a streamed answer to [`QUESTION`] on `base`; the reader and its first two
/// events.
pub async fn start_stream(
    client: &HttpClient,
    base: &str,
    session_id: &str,
) -> (SseStream, SseEvent, SseEvent) {
    let (status, mut stream) = open_stream(
        client,
        Method::POST,
        &format!("{base}/api/chats/messages/chat/stream/"),
        &[],
        Some(json!({"session_id": session_id, "message": QUESTION})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let first = stream.next_event().await.expect("a first event");
    let second = stream.next_event().await.expect("a second event");
    (stream, first, second)
}

fn response_id(event: &SseEvent) -> String {
    event.json()["response_id"]
        .as_str()
        .expect("response_id")
        .to_owned()
}

/// An answer generated on `a` (started with a slow echo, e.g. [`WORKFLOW_ARGS`]),
/// followed through `b` (the same server, or another on the same store): `b` sees it
/// running, resumes it after the second event with exactly the rest, a reload without
/// `Last-Event-ID` gets every event, the same resume after completion gets the same
/// events, and one from the last event 204; then an answer on `a` cancelled through `b`
/// is stored partial, as cancelled.
pub async fn resume_and_cancel(client: &HttpClient, a: &str, b: &str, session_id: &str) {
    let session_url = format!("{b}/api/chats/sessions/{session_id}/");
    let (mut on_a, first, second) = start_stream(client, a, session_id).await;
    let running = response_id(&first);
    let session = must(client, Method::GET, &session_url, None).await;
    assert_eq!(
        session.body["active_response_id"],
        json!(running),
        "the answer in flight"
    );
    let resume_url = format!("{b}/api/chats/messages/chat/stream/{running}/");
    let second_id = second.last_event_id.clone();
    let after_second = [("last-event-id", second_id.as_str())];
    let asked = Instant::now();
    let (status, mut resumed) =
        open_stream(client, Method::GET, &resume_url, &after_second, None).await;
    assert_eq!(status, StatusCode::OK);
    let mut tail = vec![resumed
        .next_event()
        .await
        .expect("a replayed or live event")];
    eprintln!("resume: first event after {:?}", asked.elapsed());
    let (_, mut reload) = open_stream(client, Method::GET, &resume_url, &[], None).await;
    tail.extend(resumed.rest().await);
    let mut whole = vec![first, second];
    whole.extend(on_a.rest().await);
    assert_eq!(
        tail,
        whole[2..],
        "exactly the events after the second, in order"
    );
    assert_eq!(reload.rest().await, whole, "a reload gets every event once");
    assert_eq!(text(&whole), format!("Echo: {QUESTION}"));
    let (status, mut again) =
        open_stream(client, Method::GET, &resume_url, &after_second, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again.rest().await, tail, "the same after completion");
    let end = [(
        "last-event-id",
        whole[whole.len() - 1].last_event_id.as_str(),
    )];
    let (status, _) = open_stream(client, Method::GET, &resume_url, &end, None).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "nothing after the last event"
    );
    let session = must(client, Method::GET, &session_url, None).await;
    assert_eq!(
        session.body["active_response_id"],
        Value::Null,
        "cleared when the answer ends"
    );

    // Cancel while it generates: the partial answer is stored as cancelled.
    let (mut on_a, first, _) = start_stream(client, a, session_id).await;
    let running = response_id(&first);
    let cancel = must(
        client,
        Method::POST,
        &format!("{b}/api/chats/messages/chat/stream/{running}/cancel/"),
        Some(json!({})),
    )
    .await;
    assert_eq!(cancel.status, StatusCode::ACCEPTED, "{}", cancel.text);
    let last = on_a.rest().await.pop().expect("a terminal event").json();
    assert_eq!(last["finish_reason"], "cancelled", "{last}");
    let stored = must(
        client,
        Method::GET,
        &format!("{b}/api/chats/messages/{running}/"),
        None,
    )
    .await;
    assert_eq!(
        stored.body["metadata"]["finish_reason"], "cancelled",
        "{}",
        stored.text
    );
    assert!(
        stored.body["message"]
            .as_str()
            .is_some_and(|t| t.len() < format!("Echo: {QUESTION}").len()),
        "only what was generated before the cancel: {}",
        stored.text
    );
}

/// A chat (plain and streamed) through `base`; the ids of the four messages it wrote.
pub async fn chat_through(client: &HttpClient, base: &str, session_id: &str) -> Vec<Value> {
    let chat = must(
        client,
        Method::POST,
        &format!("{base}/api/chats/messages/chat/"),
        Some(json!({"session_id": session_id, "message": "hello"})),
    )
    .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.text);
    assert_eq!(chat.body["response"], "Echo: hello");
    let stream = must(
        client,
        Method::GET,
        &format!("{base}/api/chats/messages/chat/stream/?session_id={session_id}&message=streamed"),
        None,
    )
    .await;
    assert_eq!(stream.status, StatusCode::OK);
    let events = colloquy_test_support::sse::parse_json(&stream.text);
    let last = events.last().expect("a last event");
    assert_eq!(last["done"], true, "{}", stream.text);
    vec![
        chat.body["message_id"].clone(),
        chat.body["response_id"].clone(),
        last["message_id"].clone(),
        last["response_id"].clone(),
    ]
}

/// Two instances on one store: a session created on A is seen, listed and chatted in
/// on B (and what B wrote is read on A), patched on B and seen so on A. Returns the
/// ids of the messages written; [`deleted_on_b_gone_on_a`] ends it.
pub async fn two_instances_share(client: &HttpClient, a: &str, b: &str) -> Vec<Value> {
    let created = must(
        client,
        Method::POST,
        &format!("{a}/api/chats/sessions/"),
        Some(json!({"session_id": "shared", "external_user_id": "u-1"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let seen = must(
        client,
        Method::GET,
        &format!("{b}/api/chats/sessions/shared/"),
        None,
    )
    .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
    assert_eq!(seen.body, created.body);

    // Chat through A, then through B in the session A created; both list it all.
    let mut written = chat_through(client, a, "shared").await;
    written.extend(chat_through(client, b, "shared").await);
    let on_a = all_messages(client, a, "shared").await;
    let on_b = all_messages(client, b, "shared").await;
    assert_eq!(on_b, on_a, "both instances list the same conversation");
    assert_eq!(ids(&on_b), written, "in the order written");
    let texts: Vec<&str> = on_b.iter().filter_map(|m| m["message"].as_str()).collect();
    assert_eq!(
        texts,
        ["hello", "Echo: hello", "streamed", "Echo: streamed"].repeat(2)
    );
    let one = must(
        client,
        Method::GET,
        &format!(
            "{a}/api/chats/messages/{}/",
            written[5].as_str().unwrap_or_default()
        ),
        None,
    )
    .await;
    assert_eq!(one.body["message"], "Echo: hello", "A reads what B wrote");
    let listed = must(
        client,
        Method::GET,
        &format!("{b}/api/chats/sessions/?external_user_id=u-1"),
        None,
    )
    .await;
    assert_eq!(
        ids(listed.body.as_array().expect("array")),
        [created.body["id"].clone()]
    );

    // Patched through B, seen through A.
    let patched = must(
        client,
        Method::PATCH,
        &format!("{b}/api/chats/sessions/shared/"),
        Some(json!({"is_active": false, "metadata": {"by": "b"}})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let seen = must(
        client,
        Method::GET,
        &format!("{a}/api/chats/sessions/shared/"),
        None,
    )
    .await;
    assert_eq!(seen.body["is_active"], false);
    assert_eq!(seen.body["metadata"], json!({"by": "b"}));
    let refused = must(
        client,
        Method::POST,
        &format!("{a}/api/chats/messages/"),
        Some(json!({"session_id": "shared", "message": "too late"})),
    )
    .await;
    assert_error(&refused, StatusCode::CONFLICT, "session_inactive");
    written
}

/// Deletes on B a message, then the session of [`two_instances_share`]; both are gone
/// on A.
pub async fn deleted_on_b_gone_on_a(client: &HttpClient, a: &str, b: &str, written: &[Value]) {
    let message = |base: &str, i: usize| {
        format!(
            "{base}/api/chats/messages/{}/",
            written[i].as_str().unwrap_or_default()
        )
    };
    let deleted = must(client, Method::DELETE, &message(b, 0), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_error(
        &must(client, Method::GET, &message(a, 0), None).await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    );
    let deleted = must(
        client,
        Method::DELETE,
        &format!("{b}/api/chats/sessions/shared/"),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_error(
        &must(
            client,
            Method::GET,
            &format!("{a}/api/chats/sessions/shared/"),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "session_not_found",
    );
    assert_error(
        &must(client, Method::GET, &message(a, 1), None).await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    );
}

/// What the writers of [`kill_9_under_load`] got acknowledged: session_id → session
/// uuid and the ids of its messages answered 201, in the order written.
pub type Acked = BTreeMap<String, (String, Vec<String>)>;

/// Figures of a `kill -9` under load.
#[derive(Debug)]
pub struct Crash {
    /// Sessions acknowledged before the kill.
    pub sessions: usize,
    /// Messages acknowledged before the kill.
    pub messages: usize,
}

/// `kill -9` of `server` while 8 clients create sessions and write messages to them;
/// then `restart()` and check that every acknowledged session and message is stored,
/// in order (a write may have committed without its answer arriving: one more at the
/// end of a session is allowed). The restarted server is returned, taking writes.
pub async fn kill_9_under_load(
    client: &HttpClient,
    server: Server,
    restart: impl FnOnce() -> Server,
) -> (Crash, Server) {
    const CLIENTS: usize = 8;
    const KILL_AFTER: usize = 400;
    const MESSAGES_PER_SESSION: usize = 15;
    let acked = Arc::new(AtomicUsize::new(0));
    let (enough_tx, enough_rx) = tokio::sync::oneshot::channel::<()>();
    let enough_tx = Arc::new(Mutex::new(Some(enough_tx)));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, base, acked, enough_tx) = (
            client.clone(),
            server.base.clone(),
            acked.clone(),
            enough_tx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine = Acked::new();
            let ack = || {
                if acked.fetch_add(1, Ordering::SeqCst) + 1 >= KILL_AFTER {
                    if let Some(tx) = enough_tx.lock().map(|mut g| g.take()).ok().flatten() {
                        let _ = tx.send(());
                    }
                }
            };
            'sessions: for s in 0.. {
                let session_id = format!("client-{c}-{s}");
                let answer = call(
                    &client,
                    Method::POST,
                    &format!("{base}/api/chats/sessions/"),
                    Some(json!({"session_id": session_id})),
                )
                .await;
                let uuid = match answer {
                    Ok(a) if a.status == StatusCode::CREATED && a.body["id"].is_string() => {
                        a.body["id"].as_str().unwrap_or_default().to_owned()
                    }
                    _ => break, // the server is gone: not acknowledged
                };
                ack();
                mine.insert(session_id.clone(), (uuid, Vec::new()));
                for i in 0..MESSAGES_PER_SESSION {
                    let body = json!({"session_id": session_id, "message": format!("m{i}")});
                    match call(
                        &client,
                        Method::POST,
                        &format!("{base}/api/chats/messages/"),
                        Some(body),
                    )
                    .await
                    {
                        Ok(a) if a.status == StatusCode::CREATED && a.body["id"].is_string() => {
                            let id = a.body["id"].as_str().unwrap_or_default().to_owned();
                            if let Some((_, ids)) = mine.get_mut(&session_id) {
                                ids.push(id);
                            }
                            ack();
                        }
                        _ => break 'sessions,
                    }
                }
            }
            mine
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), enough_rx)
        .await
        .expect("the load reached the kill point within 60 s")
        .expect("signal");
    server.kill_9(); // the clients are still writing
    let mut acknowledged = Acked::new();
    for t in tasks {
        let mine = tokio::time::timeout(super::DEADLINE, t)
            .await
            .expect("a client stops once the server is gone")
            .expect("client task");
        acknowledged.extend(mine);
    }
    let messages: usize = acknowledged.values().map(|(_, ids)| ids.len()).sum();
    let crash = Crash {
        sessions: acknowledged.len(),
        messages,
    };
    eprintln!("killed with {crash:?} acknowledged");
    assert!(messages + acknowledged.len() >= KILL_AFTER, "{crash:?}");

    let server = restart();
    let ready = must(
        client,
        Method::GET,
        &format!("{}/readyz", server.base),
        None,
    )
    .await;
    assert_eq!(ready.status, StatusCode::OK, "the store opens clean");
    for (session_id, (uuid, ids)) in &acknowledged {
        let session = must(
            client,
            Method::GET,
            &format!("{}/api/chats/sessions/{session_id}/", server.base),
            None,
        )
        .await;
        assert_eq!(
            session.status,
            StatusCode::OK,
            "{session_id} was acknowledged"
        );
        assert_eq!(session.body["id"], Value::from(uuid.as_str()));
        let stored: Vec<String> = all_messages(client, &server.base, session_id)
            .await
            .iter()
            .map(|m| m["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(
            stored.len() >= ids.len() && stored.len() <= ids.len() + 1,
            "{session_id}: {} acked, {} stored",
            ids.len(),
            stored.len()
        );
        assert_eq!(
            &stored[..ids.len()],
            &ids[..],
            "{session_id}: every acknowledged write is stored, in order"
        );
    }
    let after = must(
        client,
        Method::POST,
        &format!("{}/api/chats/sessions/", server.base),
        Some(json!({"session_id": "after-the-crash"})),
    )
    .await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.text);
    (crash, server)
}

/// Figures of a store outage under load.
#[derive(Debug)]
pub struct Outage {
    /// From the store answering again to the server serving writes and `/readyz` 200.
    pub recovered_after: Duration,
    /// Writes answered 201 (before, during and after the outage).
    pub acknowledged: usize,
    /// Writes answered 503 `store_unavailable`.
    pub refused: usize,
    /// Acknowledged writes missing afterwards (must be 0).
    pub lost: usize,
    /// Writes answered 503 but stored anyway (the commit raced the failure; allowed).
    pub stored_but_refused: usize,
}

/// Polls the writes (every 10 ms, at most [`super::DEADLINE`]) until `done` holds.
async fn wait_for(what: &str, writes: &Mutex<Vec<Write>>, done: impl Fn(&[Write]) -> bool) {
    let started = Instant::now();
    while !done(&writes.lock().unwrap_or_else(PoisonError::into_inner)) {
        assert!(
            started.elapsed() < super::DEADLINE,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One write of [`outage_under_load`].
#[derive(Debug, Clone)]
struct Write {
    text: String,
    status: Option<StatusCode>,
    code: String,
    retry_after: bool,
    started: Instant,
}

/// A store outage through the server at `base` while 4 writers append messages: after
/// `down()` every API call is 503 `store_unavailable` with `Retry-After` and `/readyz`
/// 503 (the process still serves `/healthz`); after `up()` the server writes again and
/// is ready within 2 s, and no acknowledged write is lost. `up`'s output (e.g. the
/// restarted store) is returned with the figures.
pub async fn outage_under_load<T>(
    client: &HttpClient,
    base: &str,
    down: impl Future<Output = ()>,
    up: impl Future<Output = T>,
) -> (Outage, T) {
    const WRITERS: usize = 4;
    let api = format!("{base}/api/chats");
    let session = must(
        client,
        Method::POST,
        &format!("{api}/sessions/"),
        Some(json!({"session_id": "outage"})),
    )
    .await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    let stop = Arc::new(AtomicBool::new(false));
    let writes: Arc<Mutex<Vec<Write>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, url, stop, writes) = (
            client.clone(),
            format!("{api}/messages/"),
            stop.clone(),
            writes.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut pace = tokio::time::interval(Duration::from_millis(10));
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                pace.tick().await;
                let text = format!("writer {w} write {n}");
                let started = Instant::now();
                let answer = tokio::time::timeout(
                    Duration::from_secs(10),
                    call(
                        &client,
                        Method::POST,
                        &url,
                        Some(json!({"session_id": "outage", "message": text})),
                    ),
                )
                .await;
                let (status, code, retry_after) = match answer {
                    Ok(Ok(a)) => (
                        Some(a.status),
                        a.body["code"].as_str().unwrap_or_default().to_owned(),
                        a.headers.contains_key("retry-after"),
                    ),
                    _ => (None, String::new(), false),
                };
                writes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Write {
                        text,
                        status,
                        code,
                        retry_after,
                        started,
                    });
            }
        }));
    }
    let snapshot = || {
        writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    };
    let ok = |w: &Write| w.status == Some(StatusCode::CREATED);
    wait_for("the writers to get going", &writes, |w: &[Write]| {
        w.iter().filter(|w| ok(w)).count() >= 4 * WRITERS
    })
    .await;

    down.await;
    let down_at = Instant::now();
    wait_for(
        "a write refused during the outage",
        &writes,
        |w: &[Write]| w.iter().any(|w| w.started > down_at && !ok(w)),
    )
    .await;
    let create = must(
        client,
        Method::POST,
        &format!("{api}/sessions/"),
        Some(json!({})),
    )
    .await;
    assert_error(
        &create,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
    );
    assert!(
        create.headers.contains_key("retry-after"),
        "{:?}",
        create.headers
    );
    let list = must(client, Method::GET, &format!("{api}/sessions/"), None).await;
    assert_error(&list, StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
    let ready = must(client, Method::GET, &format!("{base}/readyz"), None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let health = must(client, Method::GET, &format!("{base}/healthz"), None).await;
    assert_eq!(health.status, StatusCode::OK, "the process still serves");

    let restored = up.await;
    let up_at = Instant::now();
    let recovered_after = loop {
        let created = call(
            client,
            Method::POST,
            &format!("{api}/sessions/"),
            Some(json!({})),
        )
        .await;
        let ready = call(client, Method::GET, &format!("{base}/readyz"), None).await;
        if matches!((created, ready), (Ok(c), Ok(r)) if c.status == StatusCode::CREATED && r.status == StatusCode::OK)
        {
            break up_at.elapsed();
        }
        assert!(
            up_at.elapsed() < Duration::from_secs(10),
            "no recovery within 10 s of the store's return"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let per_writer = |w: &[Write]| {
        (0..WRITERS).all(|i| {
            w.iter()
                .any(|x| ok(x) && x.started > up_at && x.text.starts_with(&format!("writer {i} ")))
        })
    };
    wait_for("every writer writing again", &writes, per_writer).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        tokio::time::timeout(super::DEADLINE, writer)
            .await
            .expect("a writer stops")
            .expect("writer ran");
    }

    let writes = snapshot();
    for w in &writes {
        match w.status {
            Some(StatusCode::CREATED) => {}
            Some(StatusCode::SERVICE_UNAVAILABLE) => {
                assert_eq!(w.code, "store_unavailable", "{w:?}");
                assert!(w.retry_after, "503 without Retry-After: {w:?}");
            }
            other => panic!("unexpected answer {other:?} to {w:?}"),
        }
    }
    let mut stored: HashMap<String, usize> = HashMap::new();
    for m in all_messages(client, base, "outage").await {
        *stored
            .entry(m["message"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    let outage = Outage {
        recovered_after,
        acknowledged: writes.iter().filter(|w| ok(w)).count(),
        refused: writes.iter().filter(|w| !ok(w)).count(),
        lost: writes
            .iter()
            .filter(|w| ok(w) && !stored.contains_key(&w.text))
            .count(),
        stored_but_refused: writes
            .iter()
            .filter(|w| !ok(w) && stored.contains_key(&w.text))
            .count(),
    };
    eprintln!("outage under load: {outage:?}");
    assert_eq!(outage.lost, 0, "acknowledged writes lost");
    assert!(stored.values().all(|n| *n == 1), "a message stored twice");
    assert!(
        recovered_after <= Duration::from_secs(2),
        "service resumed {recovered_after:?} after the store came back (at most 2 s)"
    );
    (outage, restored)
}

/// The server on `store` (`{port}` in it is replaced by a port nothing listens on)
/// fails fast, names the store (as `shown`, `{port}` replaced too) and its `kind` in
/// its error, and never shows the password `hunter2-secret`.
pub fn unreachable_store_fails_fast(kind: &str, store: &str, shown: &str) {
    let port = super::free_port().to_string(); // nothing listens there
    let (store, shown) = (
        store.replace("{port}", &port),
        shown.replace("{port}", &port),
    );
    assert!(store.contains("hunter2-secret"), "{store}");
    let dir = super::temp_dir("unreachable");
    let started = Instant::now();
    let super::Started::Failed(stderr) = Server::try_start(dir.path(), &["--store", &store]) else {
        panic!("colloquy started without its {kind}");
    };
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "fails fast: {:?}",
        started.elapsed()
    );
    assert!(stderr.contains(kind), "{stderr}");
    assert!(
        stderr.contains(&shown),
        "names the store, password hidden: {stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}
