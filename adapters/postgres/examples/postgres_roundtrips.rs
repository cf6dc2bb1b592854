//! Measures the PostgreSQL store: latency and throughput of the chat hot path
//! (create message, list the newest page, begin_turn) on a 10,000-message session,
//! and the network round trips each operation costs, counted by a TCP proxy between
//! the store and the server.
//!
//! ```text
//! cargo run --release -p colloquy-postgres --example postgres_roundtrips
//! ```
//!
//! `COLLOQUY_POSTGRES_URL` names the server for the timings (default: the local
//! unix socket as `postgres`); `COLLOQUY_POSTGRES_TCP` (default `127.0.0.1:5432`) is
//! where the proxy forwards, for the round-trip counts. `ITERATIONS` (default 2000)
//! sets the samples per timing. Everything lives in a fresh schema, dropped at the end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_core::ports::ChatStore;
use colloquy_core::{
    Clock, MessageDraft, MessageQuery, Metadata, Page, Role, Session, SessionFilter, SessionRef,
    SystemClock,
};
use colloquy_postgres::{PostgresConfig, PostgresStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

type Error = Box<dyn std::error::Error + Send + Sync>;

const HISTORY: usize = 10_000;
const PAGE: usize = 50;
const WINDOW: usize = 20;

fn draft(clock: &dyn Clock, i: usize) -> MessageDraft {
    MessageDraft {
        id: Uuid::new_v4(),
        role: if i.is_multiple_of(1000) {
            Role::System
        } else {
            Role::User
        },
        message: format!("message number {i}: some ordinary chat text of moderate length"),
        metadata: Metadata::new(),
        timestamp: clock.now(),
    }
}

fn session(clock: &dyn Clock) -> Session {
    let now = clock.now();
    Session {
        id: Uuid::new_v4(),
        session_id: format!("bench-{}", Uuid::new_v4().simple()),
        external_user_id: Some("bench-user".into()),
        created_at: now,
        expires_at: now + chrono::Duration::days(1),
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    }
}

/// Counts request flights: a client-to-server write after the server last spoke
/// (or first) starts a new round trip.
#[derive(Default)]
struct Flights {
    count: AtomicU64,
    server_spoke: AtomicBool,
}

async fn proxy(upstream: String, flights: Arc<Flights>) -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let up = flights.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    if up.server_spoke.swap(false, Ordering::SeqCst) {
                        up.count.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
            let down = flights.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    down.server_spoke.store(true, Ordering::SeqCst);
                }
            });
        }
    });
    Ok(port)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn time<F, Fut>(name: &str, iterations: usize, mut op: F) -> Result<(), Error>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let mut samples = Vec::with_capacity(iterations);
    let started = Instant::now();
    for i in 0..iterations {
        let t = Instant::now();
        op(i).await?;
        samples.push(t.elapsed());
    }
    let total = started.elapsed();
    samples.sort();
    println!(
        "{name:<34} {:>8.0} ops/s   p50 {:>6.0} µs   p99 {:>6.0} µs",
        iterations as f64 / total.as_secs_f64(),
        percentile(&samples, 50.0).as_secs_f64() * 1e6,
        percentile(&samples, 99.0).as_secs_f64() * 1e6,
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("COLLOQUY_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres".into());
    let tcp = std::env::var("COLLOQUY_POSTGRES_TCP").unwrap_or_else(|_| "127.0.0.1:5432".into());
    let iterations: usize = std::env::var("ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let schema = format!("colloquy_bench_{}", Uuid::new_v4().simple());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = PostgresConfig {
        schema: Some(schema.clone()),
        ..PostgresConfig::new(url.clone())
    };
    let store = Arc::new(PostgresStore::connect(config, clock.clone()).await?);

    // A session with a long history.
    let long = session(clock.as_ref());
    store.create_session(&long).await?;
    let long_ref = SessionRef::from_uuid(long.id);
    let fill = Instant::now();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (store, clock, r) = (store.clone(), clock.clone(), long_ref.clone());
            tokio::spawn(async move {
                for i in (w..HISTORY).step_by(8) {
                    store.append(&r, draft(clock.as_ref(), i)).await?;
                }
                Ok::<_, colloquy_core::StoreError>(())
            })
        })
        .collect();
    for w in writers {
        w.await??;
    }
    println!(
        "filled a session with {HISTORY} messages in {:.1} s ({:.0} appends/s from 8 tasks)\n",
        fill.elapsed().as_secs_f64(),
        HISTORY as f64 / fill.elapsed().as_secs_f64()
    );

    println!("one client, sequential, {iterations} samples each:");
    let newest = MessageQuery::newest(PAGE);
    time("create message (append)", iterations, |i| {
        let (store, clock, r) = (store.clone(), clock.clone(), long_ref.clone());
        async move {
            store.append(&r, draft(clock.as_ref(), i)).await?;
            Ok(())
        }
    })
    .await?;
    time("list newest page (50, 10k session)", iterations, |_| {
        let (store, r, q) = (store.clone(), long_ref.clone(), newest.clone());
        async move {
            store.list_messages(&r, &q).await?;
            Ok(())
        }
    })
    .await?;
    time("begin_turn (window 20, 10k session)", iterations, |i| {
        let (store, clock, r) = (store.clone(), clock.clone(), long_ref.clone());
        async move {
            store
                .begin_turn(&r, draft(clock.as_ref(), i), WINDOW)
                .await?;
            Ok(())
        }
    })
    .await?;
    let fresh = session(clock.as_ref());
    store.create_session(&fresh).await?;
    let fresh_ref = SessionRef::from_uuid(fresh.id);
    time(
        "begin_turn (window 20, new session)",
        iterations.min(500),
        |i| {
            let (store, clock, r) = (store.clone(), clock.clone(), fresh_ref.clone());
            async move {
                store
                    .begin_turn(&r, draft(clock.as_ref(), i), WINDOW)
                    .await?;
                Ok(())
            }
        },
    )
    .await?;

    println!("\n16 concurrent clients, {iterations} operations each kind:");
    for (name, kind) in [("create message", 0), ("begin_turn (10k session)", 1)] {
        let started = Instant::now();
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let (store, clock) = (store.clone(), clock.clone());
                tokio::spawn(async move {
                    // One session per client, like separate visitors.
                    let own = session(clock.as_ref());
                    store.create_session(&own).await?;
                    let r = SessionRef::from_uuid(own.id);
                    for i in (t..iterations).step_by(16) {
                        if kind == 0 {
                            store.append(&r, draft(clock.as_ref(), i)).await?;
                        } else {
                            store
                                .begin_turn(&r, draft(clock.as_ref(), i), WINDOW)
                                .await?;
                        }
                    }
                    Ok::<_, colloquy_core::StoreError>(())
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        println!(
            "{name:<34} {:>8.0} ops/s",
            iterations as f64 / started.elapsed().as_secs_f64()
        );
    }

    // Round trips, through the counting proxy, on one warm pooled connection.
    let flights = Arc::new(Flights::default());
    let port = proxy(tcp, flights.clone()).await?;
    let counted = PostgresStore::connect(
        PostgresConfig {
            schema: Some(schema.clone()),
            pool_size: 1,
            ..PostgresConfig::new(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        },
        clock.clone(),
    )
    .await?;
    let trips = |flights: &Flights| flights.count.load(Ordering::SeqCst);
    println!("\nround trips per operation (warm pooled connection, statements prepared):");
    macro_rules! count {
        ($name:expr, $op:expr) => {{
            let before = trips(&flights);
            $op;
            println!("{:<34} {}", $name, trips(&flights) - before);
        }};
    }
    let s = session(clock.as_ref());
    count!("create session", counted.create_session(&s).await?);
    let r = SessionRef::parse(&s.session_id);
    count!("get session", counted.session(&r).await?);
    count!(
        "list sessions",
        counted
            .list_sessions(&SessionFilter::default(), Page::default())
            .await?
    );
    let (_, m) = counted.append(&r, draft(clock.as_ref(), 1)).await?;
    count!(
        "create message",
        counted.append(&r, draft(clock.as_ref(), 2)).await?
    );
    count!("get message", counted.message(m.id).await?);
    count!(
        "list newest page",
        counted.list_messages(&long_ref, &newest).await?
    );
    count!(
        "begin_turn",
        counted
            .begin_turn(&long_ref, draft(clock.as_ref(), 3), WINDOW)
            .await?
    );
    count!("delete message", counted.delete_message(m.id).await?);
    count!(
        "update session",
        counted
            .update_session(&r, &colloquy_core::SessionPatch::default())
            .await?
    );
    count!("delete session", counted.delete_session(&r).await?);
    counted.close();
    store.close();

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await?;
    Ok(())
}
