//! Round trips per store operation: counted by the store ([`RedisStore::requests_sent`])
//! and, independently, by Redis itself through `MONITOR` on a private `redis-server`
//! (commands sent by clients, not those run inside scripts).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Duration as Span;
use colloquy_core::ports::{MessageStore, SessionStore};
use colloquy_core::{
    ChatMessage, Clock, ManualClock, MessageFilter, Metadata, Page, Role, Session, SessionFilter,
    SessionPatch, SessionRef,
};
use colloquy_redis::{RedisConfig, RedisStore};
use common::{free_port, RedisServer, TempDir};
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
        id: Uuid::new_v4(),
        session_id: sid.to_owned(),
        external_user_id: Some("user-1".to_owned()),
        created_at: now,
        expires_at: now + Span::hours(1),
        is_active: true,
        metadata: Metadata::new(),
    }
}

fn message(clock: &ManualClock, session: &Session, text: &str) -> ChatMessage {
    ChatMessage {
        id: Uuid::now_v7(),
        session: session.id,
        message: text.to_owned(),
        role: Role::User,
        metadata: Metadata::new(),
        timestamp: clock.now(),
        is_deleted: false,
    }
}

/// Runs every operation once and returns (operation, requests counted by the store).
/// `observe` is called around each operation (to read MONITOR).
async fn run_operations(
    store: &RedisStore,
    clock: &ManualClock,
    tag: &str,
    mut observe: impl FnMut(&str, u64),
) {
    macro_rules! op {
        ($name:expr, $body:expr) => {{
            let before = store.requests_sent();
            let out = $body;
            observe($name, store.requests_sent() - before);
            out
        }};
    }
    let s = session(clock, &format!("rt-{tag}"));
    op!("create", store.create(&s).await.expect("create"));
    op!(
        "get session by uuid",
        SessionStore::get(store, &SessionRef::from_uuid(s.id))
            .await
            .expect("get")
    );
    op!(
        "get session by session_id",
        SessionStore::get(store, &SessionRef::parse(&s.session_id))
            .await
            .expect("get")
    );
    let m = op!(
        "append",
        store
            .append(message(clock, &s, "hello"))
            .await
            .expect("append")
    );
    op!(
        "get message",
        MessageStore::get(store, m.id).await.expect("get")
    );
    op!(
        "get_stored message",
        store.get_stored(m.id).await.expect("get_stored")
    );
    op!(
        "list messages (unfiltered)",
        MessageStore::list(store, s.id, &MessageFilter::default(), Page::default())
            .await
            .expect("list")
    );
    op!(
        "list messages (filtered)",
        MessageStore::list(
            store,
            s.id,
            &MessageFilter {
                role: Some(Role::User),
                search: None
            },
            Page::default()
        )
        .await
        .expect("list")
    );
    op!("recent", store.recent(s.id, 10).await.expect("recent"));
    op!(
        "update is_active + metadata",
        store
            .update(
                s.id,
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
        "update external_user_id",
        store
            .update(
                s.id,
                &SessionPatch {
                    external_user_id: Some(Some("user-2".into())),
                    ..SessionPatch::default()
                }
            )
            .await
            .expect("update")
    );
    op!(
        "update expires_at (1 message)",
        store
            .update(
                s.id,
                &SessionPatch {
                    expires_at: Some(s.expires_at + Span::hours(1)),
                    ..SessionPatch::default()
                }
            )
            .await
            .expect("update")
    );
    op!(
        "list sessions",
        SessionStore::list(store, &SessionFilter::default(), Page::default())
            .await
            .expect("list")
    );
    op!(
        "soft_delete",
        store.soft_delete(m.id).await.expect("soft delete")
    );
    op!("ping", store.ping().await.expect("ping"));
    op!(
        "delete session (1 message)",
        store.delete(s.id).await.expect("delete")
    );
}

/// The documented standalone counts (crate docs, "Round trips per operation").
const STANDALONE: &[(&str, u64)] = &[
    ("create", 1),
    ("get session by uuid", 1),
    ("get session by session_id", 1),
    ("append", 1),
    ("get message", 1),
    ("get_stored message", 1),
    ("list messages (unfiltered)", 1),
    ("list messages (filtered)", 1),
    ("recent", 1),
    ("update is_active + metadata", 1),
    ("update external_user_id", 1),
    ("update expires_at (1 message)", 1),
    ("list sessions", 1),
    ("soft_delete", 1),
    ("ping", 1),
    ("delete session (1 message)", 1),
];

#[tokio::test]
async fn standalone_round_trips_per_operation() {
    let dir = TempDir::new("rt");
    let port = free_port();
    let Some(_server) = RedisServer::start(port, dir.path()) else {
        return;
    };
    let clock = Arc::new(ManualClock::new());
    let store = RedisStore::connect(
        &format!("redis://127.0.0.1:{port}/0"),
        &RedisConfig::with_prefix("rt:"),
        clock.clone(),
    )
    .await
    .expect("connect to the private server");
    // First pass loads the scripts (EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA).
    run_operations(&store, &clock, "warm-up", |_, _| {}).await;

    let monitor = Monitor::start(port);
    let mut counted = Vec::new();
    let mut last_mark = monitor.mark("begin");
    run_operations(&store, &clock, "measured", |name, requests| {
        let mark = monitor.mark(name);
        counted.push((
            name.to_owned(),
            requests,
            monitor.client_commands(last_mark, mark),
        ));
        last_mark = mark;
    })
    .await;

    eprintln!("operation | requests (round trips) | client commands seen by MONITOR");
    for (name, requests, commands) in &counted {
        eprintln!("{name} | {requests} | {commands}");
    }
    for ((name, requests, commands), (doc_name, documented)) in counted.iter().zip(STANDALONE) {
        assert_eq!(name, doc_name);
        assert_eq!(requests, documented, "{name}: round trips");
        // A pipeline is one round trip but several commands; nothing else differs.
        assert!(
            *commands as u64 >= *requests,
            "{name}: MONITOR saw {commands} commands"
        );
    }
    let append = counted
        .iter()
        .find(|(n, ..)| n == "append")
        .expect("append measured");
    assert_eq!(append.2, 1, "append is one EVALSHA as Redis sees it");
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
    let prefix = common::unique_prefix();
    let store =
        RedisStore::connect_cluster(&nodes, &RedisConfig::with_prefix(&prefix), clock.clone())
            .await
            .expect("connect to the cluster");
    run_operations(&store, &clock, "warm-up", |_, _| {}).await;
    let mut counted = Vec::new();
    run_operations(&store, &clock, "measured", |name, requests| {
        counted.push((name.to_owned(), requests));
    })
    .await;
    let urls: Vec<String> = nodes.iter().map(|n| format!("redis://{n}")).collect();
    common::purge(&urls, &prefix).await;
    eprintln!("operation | requests (cluster)");
    for (name, requests) in &counted {
        eprintln!("{name} | {requests}");
    }
    let get = |name: &str| {
        counted
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| *r)
            .expect("measured")
    };
    assert_eq!(get("append"), 2, "script + pointer claim");
    assert_eq!(get("get session by uuid"), 1);
    assert_eq!(get("recent"), 1);
    assert_eq!(get("list messages (unfiltered)"), 1);
}
