//! Crash safety at store level: a child process appends from several concurrent
//! writers and reports every acknowledged write; it is killed with SIGKILL under
//! load; reopening the file must find every acknowledged write and a sound database.
//!
//! The child is this same test binary, re-run on the ignored `crash_child` test with
//! the database path in [`CHILD_ENV`].

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use colloquy_core::ports::ChatStore;
use colloquy_core::{Clock, Cursor, MessageQuery, Role, SessionRef, SystemClock};
use colloquy_sqlite::SqliteStore;
use uuid::Uuid;

const CHILD_ENV: &str = "COLLOQUY_SQLITE_CRASH_CHILD_DB";
const WRITERS: usize = 8;
/// Acknowledged writes the parent waits for before killing the child.
const KILL_AFTER: usize = 300;

#[test]
#[ignore = "child process of kill_9_under_load_loses_no_acknowledged_write"]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        eprintln!("crash_child only runs as the child of the crash test");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = Arc::new(SqliteStore::open(&path, clock.clone()).await.expect("open"));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            let clock = clock.clone();
            tasks.push(tokio::spawn(async move {
                let session = common::session(&*clock, &format!("writer-{w}"), Duration::days(1));
                store.create_session(&session).await.expect("create");
                println!("SESSION {}", session.session_id);
                let to = SessionRef::from_uuid(session.id);
                // Write until killed: plain appends and chat turns, both acknowledged
                // only after their commit.
                for i in 0.. {
                    let draft =
                        common::draft(&*clock, Role::User, &format!("writer {w} message {i}"));
                    let stored = if i % 2 == 0 {
                        store.append(&to, draft).await.expect("append").1
                    } else {
                        store
                            .begin_turn(&to, draft, 20)
                            .await
                            .expect("turn")
                            .message
                    };
                    println!("ACK {} {}", session.session_id, stored.id);
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_write() {
    let db = common::TempDb::new();
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, db.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("piped stdout");
    // Read acknowledgements on a thread; it signals once the load is well under way.
    let (loaded_tx, loaded_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut acked: Vec<(String, Uuid)> = Vec::new();
        let mut sessions = HashSet::new();
        let mut loaded = Some(loaded_tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may print its "test crash_child ... " prefix on the same line.
            if let Some(at) = line.find("SESSION ") {
                sessions.insert(line[at + "SESSION ".len()..].trim().to_owned());
            } else if let Some(at) = line.find("ACK ") {
                let mut words = line[at + "ACK ".len()..].split_whitespace();
                if let (Some(sid), Some(id)) = (words.next(), words.next()) {
                    acked.push((sid.to_owned(), Uuid::parse_str(id).expect("uuid")));
                }
            }
            if acked.len() >= KILL_AFTER && sessions.len() == WRITERS {
                if let Some(tx) = loaded.take() {
                    let _ = tx.send(());
                }
            }
        }
        (sessions, acked)
    });
    let loaded = loaded_rx.recv_timeout(StdDuration::from_secs(60));
    assert!(
        child.try_wait().expect("child status").is_none(),
        "the child exited before it was killed"
    );
    assert!(
        loaded.is_ok(),
        "the child did not reach {KILL_AFTER} acknowledged writes in 60 s"
    );
    child.kill().expect("SIGKILL the child"); // std sends SIGKILL on Unix
    child.wait().expect("reap the child");
    let (sessions, acked) = reader.join().expect("reader thread");
    assert_eq!(sessions.len(), WRITERS, "every writer started");
    assert!(
        acked.len() >= KILL_AFTER,
        "killed under load: {} acks",
        acked.len()
    );

    let [_, wal, _] = colloquy_sqlite::database_files(db.path());
    assert!(
        wal.exists(),
        "the kill left a WAL behind, so reopening runs recovery"
    );

    // The file opens clean and holds every acknowledged write, in order.
    let raw = rusqlite::Connection::open(db.path()).expect("raw open");
    let check: String = raw
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    drop(raw);
    let store = SqliteStore::open(db.path(), Arc::new(SystemClock))
        .await
        .expect("reopen after the crash");
    for sid in &sessions {
        // Page through the whole session with After-cursors (it may exceed one page).
        let mut listed: Vec<Uuid> = Vec::new();
        loop {
            let query = MessageQuery {
                cursor: listed.last().map(|id| Cursor::After(*id)),
                ..common::everything()
            };
            let (_, page) = store
                .list_messages(&SessionRef::parse(sid), &query)
                .await
                .expect("acknowledged session survives");
            if page.is_empty() {
                break;
            }
            listed.extend(page.into_iter().map(|m| m.id));
        }
        let acked_here: Vec<Uuid> = acked
            .iter()
            .filter(|(s, _)| s == sid)
            .map(|(_, id)| *id)
            .collect();
        assert!(
            listed.len() >= acked_here.len(),
            "{sid}: {} acknowledged, {} stored",
            acked_here.len(),
            listed.len()
        );
        assert_eq!(
            &listed[..acked_here.len().min(listed.len())],
            &acked_here[..],
            "{sid}: every acknowledged write is stored, in the acknowledged order"
        );
    }
    store.close().await;
}
