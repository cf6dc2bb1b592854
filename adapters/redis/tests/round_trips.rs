//! Round trips per store operation, pinned to the numbers in the crate docs: counted
//! by the store ([`RedisStore::requests_sent`]) on standalone Redis and on a cluster,
//! and on standalone Redis also by Redis itself through `MONITOR` on a private
//! `redis-server` (commands sent by clients, not those run inside scripts).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Duration as Span;
use colloquy_core::ports::ChatStore;
use colloquy_core::ratelimit::{Decision, LimitCheck, Quota, RateLimiter};
use colloquy_core::streams::{StreamLog, StreamMeta};
use colloquy_core::{
    ChatEvent, Clock, Cursor, FinishReason, ManualClock, MessageDraft, MessageFilter, MessageQuery,
    Metadata, Order, Page, Role, Session, SessionFilter, SessionPatch, SessionRef,
};
use colloquy_redis::{RedisConfig, RedisStore};
use common::{free_port, temp_dir, RedisServer};
use uuid::Uuid;

/// A `MONITOR` connection to the private server, collecting its lines.
struct Monitor {
    socket: TcpStream,
    lines: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl Monitor {
    fn start(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect for MONITOR");
        let mut writer = stream.try_clone().expect("clone the socket");
        writer.write_all(b"MONITOR\r\n").expect("send MONITOR");
        let mut reader = BufReader::new(stream);
        let mut ok = String::new();
        reader.read_line(&mut ok).expect("MONITOR reply");
        assert!(ok.starts_with("+OK"), "MONITOR answered {ok}");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("monitor lines").push(line);
            }
        });
        let monitor = Self {
            socket: writer,
            lines,
            port,
        };
        monitor.mark("start");
        monitor
    }

    /// Sends `ECHO <tag>` from another client and waits until MONITOR shows it, so
    /// every command sent before it has been seen. Returns the line count then.
    fn mark(&self, tag: &str) -> usize {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).expect("valid url");
        let mut conn = client.get_connection().expect("connect");
        let marker = format!("marker-{tag}-{}", Uuid::new_v4().simple());
        let _: String = redis::cmd("ECHO")
            .arg(&marker)
            .query(&mut conn)
            .expect("echo");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            {
                let lines = self.lines.lock().expect("monitor lines");
                if let Some(pos) = lines.iter().position(|l| l.contains(&marker)) {
                    return pos;
                }
            }
            assert!(Instant::now() < deadline, "MONITOR never showed {marker}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Client commands (not script-internal ones, which MONITOR tags `lua`) between two marks.
    fn client_commands(&self, from: usize, to: usize) -> usize {
        let lines = self.lines.lock().expect("monitor lines");
        lines[from + 1..to]
            .iter()
            .filter(|l| !l.contains(" lua] "))
            .count()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

fn session(clock: &ManualClock, sid: &str) -> Session {
    let now = clock.now();
    Session {
        id: Uuid::now_v7(),
        session_id: sid.to_owned(),
        external_user_id: Some("user-1".to_owned()),
        created_at: now,
        expires_at: now + Span::hours(1),
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    }
}

fn draft(id: Uuid, clock: &ManualClock, role: Role, text: &str) -> MessageDraft {
    MessageDraft {
        id,
        role,
        message: text.to_owned(),
        metadata: Metadata::new(),
        timestamp: clock.now(),
    }
}

/// Runs every operation once; `observe` gets each operation's name and the requests
/// the store sent for it. `unseen` are three other stores on the same keys that have
/// seen no session (so a lookup by UUID starts from nothing).
async fn run_operations(
    store: &RedisStore,
    unseen: [&RedisStore; 3],
    clock: &ManualClock,
    tag: &str,
    mut observe: impl FnMut(&str, u64),
) {
    macro_rules! op {
        ($name:expr, $store:expr, $body:expr) => {{
            let before = $store.requests_sent();
            let out = $body;
            observe($name, $store.requests_sent() - before);
            out
        }};
    }
    let s = session(clock, &format!("rt-{tag}"));
    let by_sid = SessionRef::parse(&s.session_id);
    let by_uuid = SessionRef::from_uuid(s.id);
    // Ids as the service gets them for a session named by session_id (on a cluster:
    // their pointers live in the session's slot), and ids a client chose, never in
    // that slot (one of the 14 bits that name the slot flipped).
    let for_session = || store.new_message_id(&by_sid);
    let elsewhere = || Uuid::from_u128(store.new_message_id(&by_sid).as_u128() ^ 1);
    op!(
        "create_session",
        store,
        store.create_session(&s).await.expect("create")
    );
    op!(
        "session by session_id",
        store,
        store.session(&by_sid).await.expect("get")
    );
    op!(
        "session by UUID",
        store,
        store.session(&by_uuid).await.expect("get")
    );
    op!(
        "session by UUID, unseen",
        unseen[0],
        unseen[0].session(&by_uuid).await.expect("get")
    );
    let (_, system) = op!(
        "append by session_id",
        store,
        store
            .append(
                &by_sid,
                draft(for_session(), clock, Role::System, "be brief")
            )
            .await
            .expect("append")
    );
    op!(
        "append by session_id, client's id",
        store,
        store
            .append(
                &by_sid,
                draft(elsewhere(), clock, Role::User, "an id of mine")
            )
            .await
            .expect("append")
    );
    let (_, m) = op!(
        "append by UUID",
        store,
        store
            .append(&by_uuid, draft(elsewhere(), clock, Role::User, "hello"))
            .await
            .expect("append")
    );
    op!(
        "append by UUID, id for its session_id",
        store,
        store
            .append(
                &by_uuid,
                draft(for_session(), clock, Role::Assistant, "an answer")
            )
            .await
            .expect("append")
    );
    op!(
        "append by UUID, unseen",
        unseen[1],
        unseen[1]
            .append(&by_uuid, draft(elsewhere(), clock, Role::Assistant, "hi"))
            .await
            .expect("append")
    );
    op!(
        "append by UUID, unseen, id for its session_id",
        unseen[2],
        unseen[2]
            .append(
                &by_uuid,
                draft(for_session(), clock, Role::Assistant, "hi again")
            )
            .await
            .expect("append")
    );
    op!(
        "begin_turn by session_id",
        store,
        store
            .begin_turn(
                &by_sid,
                draft(for_session(), clock, Role::User, "question"),
                50
            )
            .await
            .expect("turn")
    );
    // The stream log of an answer whose id the store chose for the session (on a
    // cluster: in the session's slot), and of one whose id lives elsewhere.
    let log = store.stream_log(Duration::from_secs(60), Duration::from_secs(6));
    for (kind, response_id) in [("", for_session()), (", id elsewhere", elsewhere())] {
        let meta = StreamMeta {
            response_id,
            message_id: m.id,
            session: s.id,
            session_id: s.session_id.clone(),
        };
        op!(
            &format!("stream log: start{kind}"),
            store,
            log.start(&meta).await.expect("start")
        );
        let chunk = ChatEvent::Chunk {
            seq: 0,
            text: "Hel".into(),
        };
        op!(
            &format!("stream log: chunk{kind}"),
            store,
            log.append(response_id, &chunk).await.expect("chunk")
        );
        op!(
            &format!("stream log: renew{kind}"),
            store,
            log.renew(&meta).await.expect("renew")
        );
        let done = ChatEvent::Done {
            seq: 1,
            finish_reason: FinishReason::Stop,
            sources: None,
        };
        op!(
            &format!("stream log: done{kind}"),
            store,
            log.append(response_id, &done).await.expect("done")
        );
        let active = op!(
            &format!("stream log: active{kind}"),
            store,
            log.active(&s).await.expect("active")
        );
        assert_eq!(active, None, "done clears the session's pointer{kind}");
    }
    // The rate limits of one chat request, in one call: the third is refused (its
    // quota of 1 was spent by the second), so the fourth never runs.
    let limiter = store.rate_limiter();
    let quota = |count| Quota {
        count,
        period: Duration::from_secs(60),
    };
    let checks = [
        ("requests-per-ip", 100, 1),
        ("chats-per-ip", 1, 1),
        ("chats-per-ip", 1, 1),
        ("messages-per-session", 100, 2),
    ]
    .map(|(name, count, cost)| LimitCheck {
        key: format!("{name}:{tag}"),
        quota: quota(count),
        cost,
    });
    let decisions = op!(
        "rate limits (4 checks, the 3rd refused)",
        store,
        limiter.check_in_order(&checks).await.expect("limits")
    );
    assert_eq!(decisions.len(), 3, "stops at the refusal: {decisions:?}");
    assert!(matches!(decisions[1], Decision::Allowed { .. }));
    assert!(matches!(decisions[2], Decision::Limited { .. }));
    op!("message", store, store.message(m.id).await.expect("get"));
    op!(
        "message (none)",
        store,
        store.message(elsewhere()).await.expect("get")
    );
    op!(
        "list_messages (newest page)",
        store,
        store
            .list_messages(&by_sid, &MessageQuery::newest(10))
            .await
            .expect("list")
    );
    op!(
        "list_messages (cursor, asc)",
        store,
        store
            .list_messages(
                &by_sid,
                &MessageQuery {
                    cursor: Some(Cursor::After(system.id)),
                    order: Order::Asc,
                    ..MessageQuery::default()
                }
            )
            .await
            .expect("list")
    );
    op!(
        "list_messages (role system)",
        store,
        store
            .list_messages(&by_sid, &MessageQuery::oldest_of_role(Role::System, 10))
            .await
            .expect("list")
    );
    op!(
        "list_messages (search, < 500 messages)",
        store,
        store
            .list_messages(
                &by_sid,
                &MessageQuery {
                    filter: MessageFilter {
                        role: None,
                        search: Some("HELLO".into())
                    },
                    ..MessageQuery::default()
                }
            )
            .await
            .expect("list")
    );
    op!(
        "update_session (is_active, metadata)",
        store,
        store
            .update_session(
                &by_sid,
                &SessionPatch {
                    is_active: Some(true),
                    metadata: Some(Metadata::new()),
                    ..SessionPatch::default()
                }
            )
            .await
            .expect("update")
    );
    op!(
        "update_session (expires_at +1 h)",
        store,
        store
            .update_session(
                &by_sid,
                &SessionPatch {
                    expires_at: Some(s.expires_at + Span::hours(1)),
                    ..SessionPatch::default()
                }
            )
            .await
            .expect("update")
    );
    op!(
        "update_session (expires_at +30 days, 7 messages)",
        store,
        store
            .update_session(
                &by_sid,
                &SessionPatch {
                    expires_at: Some(s.expires_at + Span::days(30)),
                    ..SessionPatch::default()
                }
            )
            .await
            .expect("update")
    );
    op!(
        "list_sessions (1 session)",
        store,
        store
            .list_sessions(&SessionFilter::default(), Page::default())
            .await
            .expect("list")
    );
    op!(
        "delete_message",
        store,
        store.delete_message(m.id).await.expect("delete")
    );
    op!("ping", store, store.ping().await.expect("ping"));
    op!(
        "delete_session",
        store,
        store.delete_session(&by_sid).await.expect("delete")
    );
}

/// The documented standalone counts (crate docs, "Round trips per operation").
const STANDALONE: &[(&str, u64)] = &[
    ("create_session", 1),
    ("session by session_id", 1),
    ("session by UUID", 1),
    ("session by UUID, unseen", 1),
    ("append by session_id", 1),
    ("append by session_id, client's id", 1),
    ("append by UUID", 1),
    ("append by UUID, id for its session_id", 1),
    ("append by UUID, unseen", 1),
    ("append by UUID, unseen, id for its session_id", 1),
    ("begin_turn by session_id", 1),
    ("stream log: start", 1),
    ("stream log: chunk", 1),
    ("stream log: renew", 1),
    ("stream log: done", 1),
    ("stream log: active", 1),
    ("stream log: start, id elsewhere", 1),
    ("stream log: chunk, id elsewhere", 1),
    ("stream log: renew, id elsewhere", 1),
    ("stream log: done, id elsewhere", 1),
    ("stream log: active, id elsewhere", 1),
    ("rate limits (4 checks, the 3rd refused)", 1),
    ("message", 1),
    ("message (none)", 1),
    ("list_messages (newest page)", 1),
    ("list_messages (cursor, asc)", 1),
    ("list_messages (role system)", 1),
    ("list_messages (search, < 500 messages)", 1),
    ("update_session (is_active, metadata)", 1),
    ("update_session (expires_at +1 h)", 1),
    ("update_session (expires_at +30 days, 7 messages)", 1),
    ("list_sessions (1 session)", 1),
    ("delete_message", 1),
    ("ping", 1),
    ("delete_session", 1),
];

/// The documented cluster counts: requests sent (see the crate docs for which run
/// concurrently).
const CLUSTER: &[(&str, u64)] = &[
    // Every write that changes what the console's inbox shows ends with one more
    // request: the session's inbox record, applied in the `{idx}` slot (see
    // `inbox.rs`).
    // UUID pointer and list entry (concurrently), then the session.
    ("create_session", 4),
    ("session by session_id", 1),
    // This store has seen the session: straight to its slot.
    ("session by UUID", 1),
    // The UUID's pointer, then the session's slot.
    ("session by UUID, unseen", 2),
    // An id the store generated: the pointer is in the session's slot, written by the
    // append script.
    ("append by session_id", 2),
    // Another slot: the message pointer first, then the append.
    ("append by session_id, client's id", 3),
    ("append by UUID", 3),
    // The chat's answer: this store has seen the session, the id is for its slot.
    ("append by UUID, id for its session_id", 2),
    // The UUID's slot, the message pointer, the append.
    ("append by UUID, unseen", 4),
    // The UUID's slot, then the append with its pointer.
    ("append by UUID, unseen, id for its session_id", 3),
    ("begin_turn by session_id", 2),
    // The answer's keys share the session's slot: one script each.
    ("stream log: start", 1),
    ("stream log: chunk", 1),
    ("stream log: renew", 1),
    ("stream log: done", 1),
    ("stream log: active", 1),
    // The answer's keys in another slot: its log, then the session's pointer.
    ("stream log: start, id elsewhere", 2),
    ("stream log: chunk, id elsewhere", 1),
    ("stream log: renew, id elsewhere", 2),
    ("stream log: done, id elsewhere", 2),
    ("stream log: active, id elsewhere", 1),
    // Each limit is its own slot: one script per check run.
    ("rate limits (4 checks, the 3rd refused)", 3),
    // The message pointer, then the session's slot.
    ("message", 2),
    // The pointer, then its name of before slot-tagged pointers.
    ("message (none)", 2),
    ("list_messages (newest page)", 1),
    ("list_messages (cursor, asc)", 1),
    ("list_messages (role system)", 1),
    ("list_messages (search, < 500 messages)", 1),
    ("update_session (is_active, metadata)", 2),
    // Within the time the session's pointers already live (`pointer_ttl`).
    ("update_session (expires_at +1 h)", 2),
    // Beyond it: the script names the pointers, they are extended (the UUID pointer,
    // the list entry, 7 message pointers: 9 concurrent requests), then the commit.
    ("update_session (expires_at +30 days, 7 messages)", 12),
    // The list index, then each session on the page (concurrently).
    ("list_sessions (1 session)", 2),
    ("delete_message", 3),
    // CLUSTER SLOTS from one node, then CLUSTER INFO on each of the 3 masters.
    ("ping", 4),
    ("delete_session", 2),
];

fn assert_counts(counted: &[(String, u64)], documented: &[(&str, u64)]) {
    assert_eq!(counted.len(), documented.len(), "every operation measured");
    for ((name, requests), (doc_name, expected)) in counted.iter().zip(documented) {
        assert_eq!(name, doc_name);
        assert_eq!(requests, expected, "{name}: requests");
    }
}

#[tokio::test]
async fn standalone_round_trips_per_operation() {
    let dir = temp_dir("rt");
    let port = free_port();
    let Some(_server) = RedisServer::start(port, dir.path()) else {
        return;
    };
    let clock = Arc::new(ManualClock::new());
    let url = format!("redis://127.0.0.1:{port}/0");
    let connect = |prefix: &str| {
        let config = RedisConfig::with_prefix(prefix);
        let clock = clock.clone();
        let url = url.clone();
        async move {
            RedisStore::connect(&url, &config, clock)
                .await
                .expect("connect to the private server")
        }
    };
    // A first pass loads the scripts (EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA); the
    // measured pass runs under another prefix, on stores that have seen nothing.
    let warm = [
        connect("warm:").await,
        connect("warm:").await,
        connect("warm:").await,
        connect("warm:").await,
    ];
    run_operations(
        &warm[0],
        [&warm[1], &warm[2], &warm[3]],
        &clock,
        "warm-up",
        |_, _| {},
    )
    .await;
    let stores = [
        connect("rt:").await,
        connect("rt:").await,
        connect("rt:").await,
        connect("rt:").await,
    ];

    let monitor = Monitor::start(port);
    let mut counted = Vec::new();
    let mut seen = Vec::new();
    let mut last_mark = monitor.mark("begin");
    run_operations(
        &stores[0],
        [&stores[1], &stores[2], &stores[3]],
        &clock,
        "measured",
        |name, requests| {
            let mark = monitor.mark(name);
            counted.push((name.to_owned(), requests));
            seen.push(monitor.client_commands(last_mark, mark));
            last_mark = mark;
        },
    )
    .await;

    eprintln!("operation | requests (round trips) | client commands seen by MONITOR");
    for ((name, requests), commands) in counted.iter().zip(&seen) {
        eprintln!("{name} | {requests} | {commands}");
    }
    assert_counts(&counted, STANDALONE);
    // No pipelines: Redis saw exactly one command (an EVALSHA) per round trip.
    for ((name, requests), commands) in counted.iter().zip(&seen) {
        assert_eq!(
            *commands as u64, *requests,
            "{name}: commands seen by MONITOR"
        );
    }
}

#[tokio::test]
async fn cluster_round_trips_per_operation() {
    let Some(nodes) = common::cluster_nodes() else {
        assert!(
            !colloquy_conformance::services_required(),
            "{} must name the cluster nodes",
            common::CLUSTER_ENV
        );
        eprintln!("skipping: {} not set", common::CLUSTER_ENV);
        return;
    };
    let clock = Arc::new(ManualClock::new());
    let (warm, prefix) = (common::unique_prefix(), common::unique_prefix());
    let connect = |prefix: &str| {
        let config = RedisConfig::with_prefix(prefix);
        let clock = clock.clone();
        let nodes = nodes.clone();
        async move {
            RedisStore::connect_cluster(&nodes, &config, clock)
                .await
                .expect("connect to the cluster")
        }
    };
    // A first pass loads the scripts on every master; the measured pass runs under
    // another prefix (an empty list index), on stores that have seen nothing.
    let warm_stores = [
        connect(&warm).await,
        connect(&warm).await,
        connect(&warm).await,
        connect(&warm).await,
    ];
    let [a, b, c, d] = &warm_stores;
    run_operations(a, [b, c, d], &clock, "warm-up", |_, _| {}).await;
    let stores = [
        connect(&prefix).await,
        connect(&prefix).await,
        connect(&prefix).await,
        connect(&prefix).await,
    ];
    let mut counted = Vec::new();
    run_operations(
        &stores[0],
        [&stores[1], &stores[2], &stores[3]],
        &clock,
        "measured",
        |name, requests| {
            counted.push((name.to_owned(), requests));
        },
    )
    .await;
    let urls: Vec<String> = nodes.iter().map(|n| format!("redis://{n}")).collect();
    common::purge(&urls, &prefix).await;
    common::purge(&urls, &warm).await;
    eprintln!("operation | requests (cluster)");
    for (name, requests) in &counted {
        eprintln!("{name} | {requests}");
    }
    assert_counts(&counted, CLUSTER);
}
