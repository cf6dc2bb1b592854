//! Create-message throughput at store level, SQLite (file, WAL, `synchronous=FULL`)
//! versus memory, measured in one run:
//!
//! ```text
//! cargo run --release -p colloquy-sqlite --example sqlite_throughput [-- <messages> <clients>]
//! ```
//!
//! Each client appends to its own session, one message at a time, as the server's
//! request handlers would (`ChatService::create_message`: one `append` store call,
//! one writer job). With one client every SQLite write is its own fsynced commit;
//! with many, the writer thread's group commit shares each fsync among the queued
//! writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_core::ports::ChatStore;
use colloquy_core::{ChatService, Metadata, NewMessage, NewSession, Role, SessionRef, SystemClock};
use colloquy_memory::MemoryStore;
use colloquy_sqlite::{database_files, SqliteStore};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Appends `total` messages from `clients` concurrent clients; returns the elapsed time.
async fn run(store: Arc<dyn ChatStore>, total: usize, clients: usize) -> Result<Duration, Error> {
    let service = Arc::new(ChatService::builder(store, Arc::new(SystemClock)).build());
    let mut sessions = Vec::new();
    for _ in 0..clients {
        sessions.push(service.create_session(NewSession::default()).await?);
    }
    let per_client = total / clients;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for session in sessions {
        let service = service.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                let new = NewMessage {
                    session: SessionRef::parse(&session.session_id),
                    message: format!(
                        "message number {i}: the quick brown fox jumps over the lazy dog"
                    ),
                    role: Role::User,
                    metadata: Metadata::new(),
                };
                service.create_message(new).await?;
            }
            Ok::<(), colloquy_core::ServiceError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map_or(Ok(4000), |a| a.parse())?;
    let many: usize = args.next().map_or(Ok(32), |a| a.parse())?;
    let dir = std::env::temp_dir().join(format!("colloquy-throughput-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.db");
    println!("create-message throughput, {total} messages per run (ChatService::create_message)");
    println!("{:<28} {:>8} {:>14}", "store", "clients", "messages/s");
    for clients in [1, many] {
        let n = total / clients * clients;
        let memory = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
        let took = run(memory, n, clients).await?;
        println!("{:<28} {:>8} {:>14.0}", "memory", clients, rate(n, took));

        let sqlite = SqliteStore::open(&path, Arc::new(SystemClock)).await?;
        let sqlite = Arc::new(sqlite);
        let took = run(sqlite.clone(), n, clients).await?;
        println!(
            "{:<28} {:>8} {:>14.0}",
            "sqlite (WAL, sync=FULL)",
            clients,
            rate(n, took)
        );
        if let Ok(store) = Arc::try_unwrap(sqlite) {
            store.close().await;
        }
        for f in database_files(&path) {
            let _ = std::fs::remove_file(f);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
