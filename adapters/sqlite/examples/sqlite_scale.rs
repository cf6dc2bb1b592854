//! Does a session's length change what its operations cost? Prints figures (it
//! asserts nothing):
//!
//! ```text
//! cargo run --release -p colloquy-sqlite --example sqlite_scale [-- <long> <runs>]
//! ```
//!
//! - the newest page (`order=desc&limit=50`) of a `<long>`-message session (default
//!   10,000) versus a 60-message one (also a full page) and a 20-message one;
//! - `begin_turn` (append + system messages + recent, one writer job) on the long
//!   session versus a fresh one, window 20.
//!
//! Both on a file store (WAL, `synchronous=FULL`: each turn waits for its fsync) and
//! on the in-memory variant, where the fsync is gone and what is left is the SQL.
//! Every 50th message of the long session is a system message, so the turn's system
//! read has work to do; an O(session) implementation would show it here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use colloquy_core::ports::ChatStore;
use colloquy_core::{
    Clock, MessageDraft, MessageQuery, Metadata, Role, Session, SessionRef, SystemClock,
};
use colloquy_sqlite::{database_files, SqliteStore};
use uuid::Uuid;

type Error = Box<dyn std::error::Error + Send + Sync>;

const WINDOW: usize = 20;

fn session(sid: &str) -> Session {
    let now = Utc::now();
    Session {
        id: Uuid::new_v4(),
        session_id: sid.into(),
        external_user_id: None,
        created_at: now,
        expires_at: now + chrono::Duration::days(1),
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    }
}

fn draft(role: Role, i: usize) -> MessageDraft {
    MessageDraft {
        id: Uuid::new_v4(),
        role,
        message: format!("message number {i}: the quick brown fox jumps over the lazy dog"),
        metadata: Metadata::new(),
        timestamp: SystemClock.now(),
    }
}

/// Creates a session with `n` messages (every 50th a system message), appended from
/// many tasks at once so that group commit makes the setup quick.
async fn filled(store: &Arc<SqliteStore>, sid: &str, n: usize) -> Result<SessionRef, Error> {
    store.create_session(&session(sid)).await?;
    let to = SessionRef::parse(sid);
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let (store, to) = (store.clone(), to.clone());
            let role = if i % 50 == 0 {
                Role::System
            } else {
                Role::User
            };
            tasks.push(tokio::spawn(async move {
                store.append(&to, draft(role, i)).await
            }));
        }
        for t in tasks {
            t.await??;
        }
    }
    Ok(to)
}

/// Median and 99th percentile of `runs` timings of `op`.
async fn time<F, Fut>(runs: usize, mut op: F) -> Result<(Duration, Duration), Error>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let mut took = Vec::with_capacity(runs);
    for i in 0..runs {
        let started = Instant::now();
        op(i).await?;
        took.push(started.elapsed());
    }
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}

fn row(what: &str, (median, p99): (Duration, Duration)) {
    println!(
        "{what:<44} {:>10.1} µs {:>10.1} µs",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
}

async fn measure(store: Arc<SqliteStore>, long_n: usize, runs: usize) -> Result<(), Error> {
    let long = filled(&store, "long", long_n).await?;
    let short = filled(&store, "short", 20).await?;
    let page_and_some = filled(&store, "sixty", 60).await?;
    let newest = MessageQuery::newest(50);
    for (what, to) in [
        (format!("newest page (desc, 50), {long_n} msgs"), &long),
        ("newest page (desc, 50), 60 msgs".to_owned(), &page_and_some),
        ("newest page (desc, 50), 20 msgs".to_owned(), &short),
    ] {
        let figures = time(runs, |_| {
            let (store, to, q) = (store.clone(), to.clone(), newest.clone());
            async move {
                store.list_messages(&to, &q).await?;
                Ok(())
            }
        })
        .await?;
        row(&what, figures);
    }
    for (what, to) in [
        (format!("begin_turn (window {WINDOW}), {long_n} msgs"), long),
        (
            format!("begin_turn (window {WINDOW}), fresh session"),
            // One message, a system one: the turn reads both indexes.
            filled(&store, "fresh", 1).await?,
        ),
    ] {
        let figures = time(runs, |i| {
            let (store, to) = (store.clone(), to.clone());
            async move {
                store.begin_turn(&to, draft(Role::User, i), WINDOW).await?;
                Ok(())
            }
        })
        .await?;
        row(&what, figures);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let long_n: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let runs: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let dir = std::env::temp_dir().join(format!("colloquy-scale-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("scale.db");
    println!(
        "{:<44} {:>13} {:>13}",
        format!("{runs} runs each"),
        "median",
        "p99"
    );

    println!("-- file (WAL, synchronous=FULL)");
    let file = Arc::new(SqliteStore::open(&path, Arc::new(SystemClock)).await?);
    measure(file.clone(), long_n, runs).await?;
    if let Ok(store) = Arc::try_unwrap(file) {
        store.close().await;
    }
    for f in database_files(&path) {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!("-- in memory (no fsync: the SQL alone)");
    let memory = Arc::new(SqliteStore::open_in_memory(Arc::new(SystemClock))?);
    measure(memory, long_n, runs).await?;
    Ok(())
}
