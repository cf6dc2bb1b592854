//! `colloquy-console-scale`: the console's store reads at two scales. For each store
//! (SQLite, PostgreSQL, Redis) it fills a fresh store with a small history (1,000
//! sessions, 10,000 messages by default) and a large one (100,000 sessions,
//! 1,000,000 messages), then prints the p50 of: the inbox's first page (50 rows;
//! unfiltered, `state=waiting`, `rating=down`), the dashboard's 30 days of hourly
//! stats, and (SQLite, PostgreSQL) a message search. The inbox and stats should cost
//! the same at both scales (they are kept as things happen); the search grows with
//! the matches.
//!
//! SQLite and PostgreSQL are filled with bulk SQL that writes exactly what the
//! store's own writes keep (session counters, FTS/GIN index, hourly counters), so a
//! million messages load in seconds; Redis is filled through the store itself (the
//! appends keep the inbox), `--concurrency` at a time.
//!
//! ```sh
//! cargo run --release -p colloquy-bench --bin colloquy-console-scale
//! cargo run --release -p colloquy-bench --bin colloquy-console-scale -- --stores sqlite,postgres
//! ```

use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use colloquy_core::inbox::{InboxFilter, InboxQuery, InboxState};
use colloquy_core::ports::ChatStore;
use colloquy_core::{
    Clock, MessageDraft, Metadata, Page, Responder, Role, Session, SessionPatch, SessionRef,
    SystemClock,
};
use futures::StreamExt;
use uuid::Uuid;

/// Measures the console's store reads at two scales.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Stores to measure: sqlite, postgres, redis.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres,redis")]
    stores: Vec<String>,
    /// Sessions and messages of the small history.
    #[arg(long, default_value_t = 1_000)]
    small_sessions: usize,
    /// Sessions of the large history.
    #[arg(long, default_value_t = 100_000)]
    large_sessions: usize,
    /// Messages per session (both histories).
    #[arg(long, default_value_t = 10)]
    messages_per_session: usize,
    /// Timed repetitions of each read.
    #[arg(long, default_value_t = 30)]
    repeat: usize,
    /// Concurrent appends while filling Redis.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// PostgreSQL (a private schema is created and dropped).
    #[arg(
        long,
        env = "COLLOQUY_POSTGRES_URL",
        default_value = "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres"
    )]
    postgres: String,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The history spans the last 30 days.
const SPAN_SECS: i64 = 30 * 24 * 3600;

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

async fn time<T, F, Fut>(repeat: usize, mut f: F) -> Result<Duration, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, colloquy_core::StoreError>>,
{
    f().await?; // warm up
    let mut samples = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let started = Instant::now();
        f().await?;
        samples.push(started.elapsed());
    }
    Ok(p50(samples))
}

/// The reads, timed: (what, p50).
async fn measure(
    store: &dyn ChatStore,
    repeat: usize,
    search: bool,
) -> Result<Vec<(&'static str, Duration)>, Error> {
    let now = Utc::now();
    let page = |filter: InboxFilter| InboxQuery {
        filter,
        after: None,
        limit: 50,
    };
    let mut out = Vec::new();
    let all = page(InboxFilter::default());
    let first = store.inbox(&all).await?;
    assert_eq!(first.len(), 50, "the inbox's first page is full");
    out.push((
        "inbox first page",
        time(repeat, || store.inbox(&all)).await?,
    ));
    let waiting = page(InboxFilter {
        state: Some(InboxState::Waiting),
        ..InboxFilter::default()
    });
    out.push((
        "inbox state=waiting",
        time(repeat, || store.inbox(&waiting)).await?,
    ));
    let down = page(InboxFilter {
        rated_down: true,
        ..InboxFilter::default()
    });
    out.push((
        "inbox rating=down",
        time(repeat, || store.inbox(&down)).await?,
    ));
    let from = now - chrono::Duration::days(30);
    out.push((
        "stats 30 days (hourly)",
        time(repeat, || store.hourly_stats(from, now)).await?,
    ));
    if search {
        let p = Page {
            limit: 50,
            offset: 0,
        };
        out.push((
            "search one word (50 of many)",
            time(repeat, || store.search_messages("parcels", p)).await?,
        ));
        out.push((
            "search rare word",
            time(repeat, || store.search_messages("zebra7", p)).await?,
        ));
    }
    Ok(out)
}

/// The text of message `j` of session `i`.
fn text(i: usize, j: usize) -> String {
    if j.is_multiple_of(2) {
        if i.is_multiple_of(997) && j == 0 {
            format!("zebra7 question {i}: where are my parcels?")
        } else {
            format!("visitor question {i}.{j}: do you ship parcels abroad?")
        }
    } else {
        format!("answer {i}.{j}: yes, parcels ship within three days")
    }
}

// ------------------------------------------------------------------ SQLite

fn fill_sqlite(path: &std::path::Path, sessions: usize, per: usize) -> Result<(), Error> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let now = Utc::now().timestamp_micros();
    let span = SPAN_SECS * 1_000_000;
    let tx = conn.transaction()?;
    {
        let mut s = tx.prepare(
            "INSERT INTO sessions (id, session_id, external_user_id, created_at, expires_at,
                is_active, metadata, responder, handoff_requested_at, last_message_at,
                live_messages, down_ratings) VALUES (?1, ?2, ?3, ?4, ?5, ?6, '{}', ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut m = tx.prepare(
            "INSERT INTO messages (id, session, position, message, role, metadata, timestamp,
                is_deleted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
        )?;
        let step = span / i64::try_from(sessions.max(1))?;
        for i in 0..sessions {
            let id = Uuid::new_v4();
            let created = now - span + step * i64::try_from(i)?;
            let last = created + i64::try_from(per)? * 1_000_000;
            let human = i % 50 == 0;
            let down = i % 20 == 0;
            s.execute(rusqlite::params![
                id.as_bytes(),
                format!("s{i}"),
                format!("u{}", i % 1000),
                created,
                now + 86_400_000_000,
                i % 10 != 5,
                if human { "human" } else { "ai" },
                if human { Some(last) } else { None },
                if per > 0 { Some(last) } else { None },
                i64::try_from(per)?,
                i64::from(down && per > 1),
            ])?;
            for j in 0..per {
                let meta = if down && j == 1 {
                    r#"{"feedback":{"rating":"down","comment":null,"at":"2026-01-01T00:00:00.000000Z"}}"#
                } else {
                    "{}"
                };
                m.execute(rusqlite::params![
                    Uuid::new_v4().as_bytes(),
                    id.as_bytes(),
                    i64::try_from(j)?,
                    text(i, j),
                    if j % 2 == 0 { "user" } else { "assistant" },
                    meta,
                    created + i64::try_from(j + 1)? * 1_000_000,
                ])?;
            }
        }
        let mut h = tx.prepare(
            "INSERT INTO stats_hours (hour, sessions, visitor_messages, answers)
             VALUES (?1, ?2, ?3, ?3)",
        )?;
        let hours = SPAN_SECS / 3600;
        let first = (now - span) / 3_600_000_000 * 3_600_000_000;
        let per_hour = i64::try_from(sessions)? / hours + 1;
        for k in 0..=hours {
            h.execute(rusqlite::params![
                first + k * 3_600_000_000,
                per_hour,
                per_hour * i64::try_from(per / 2)?
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

async fn run_sqlite(args: &Args, sessions: usize) -> Result<Vec<(&'static str, Duration)>, Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("console.db");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    colloquy_sqlite::SqliteStore::open(&path, clock.clone())
        .await?
        .close()
        .await;
    let started = Instant::now();
    let (p, per) = (path.clone(), args.messages_per_session);
    tokio::task::spawn_blocking(move || fill_sqlite(&p, sessions, per)).await??;
    eprintln!(
        "sqlite: filled {sessions} sessions in {:?}",
        started.elapsed()
    );
    let store = colloquy_sqlite::SqliteStore::open(&path, clock).await?;
    let out = measure(&store, args.repeat, true).await;
    store.close().await;
    out
}

// ------------------------------------------------------------------ PostgreSQL

async fn run_postgres(
    args: &Args,
    sessions: usize,
) -> Result<Vec<(&'static str, Duration)>, Error> {
    let schema = format!("bench_console_{}_{sessions}", std::process::id());
    let mut config = colloquy_postgres::PostgresConfig::new(args.postgres.clone());
    config.schema = Some(schema.clone());
    config.statement_timeout = Duration::from_secs(600);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = colloquy_postgres::PostgresStore::connect(config, clock).await?;
    let mut pg: tokio_postgres::Config = args.postgres.parse()?;
    pg.options(format!("-c search_path={schema}"));
    let (client, connection) = pg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let started = Instant::now();
    let per = i64::try_from(args.messages_per_session)?;
    let n = i64::try_from(sessions)?;
    client
        .batch_execute(&format!(
            "INSERT INTO colloquy_sessions (id, session_id, external_user_id, created_at,
                expires_at, is_active, metadata, responder, handoff_requested_at, last_seq,
                last_written_at, live_messages, down_ratings)
             SELECT gen_random_uuid(), 's' || i, 'u' || (i % 1000),
                now() - interval '30 days' + i * (interval '30 days' / {n}),
                now() + interval '1 day', i % 10 <> 5, '{{}}',
                CASE WHEN i % 50 = 0 THEN 'human' ELSE 'ai' END,
                CASE WHEN i % 50 = 0 THEN now() - interval '30 days'
                    + i * (interval '30 days' / {n}) + {per} * interval '1 second' END,
                {per}, now() - interval '30 days' + i * (interval '30 days' / {n})
                    + {per} * interval '1 second',
                {per}, CASE WHEN i % 20 = 0 AND {per} > 1 THEN 1 ELSE 0 END
             FROM generate_series(0, {n} - 1) i;
             INSERT INTO colloquy_messages (session, seq, id, role, message, metadata, written_at)
             SELECT s.id, j, gen_random_uuid(),
                CASE WHEN j % 2 = 1 THEN 'user' ELSE 'assistant' END,
                CASE WHEN j % 2 = 0 THEN 'answer ' || s.session_id || ': yes, parcels ship within three days'
                     WHEN substr(s.session_id, 2)::int % 997 = 0 AND j = 1
                        THEN 'zebra7 question ' || s.session_id || ': where are my parcels?'
                     ELSE 'visitor question ' || s.session_id || ': do you ship parcels abroad?' END,
                CASE WHEN j = 2 AND substr(s.session_id, 2)::int % 20 = 0
                    THEN '{{\"feedback\":{{\"rating\":\"down\",\"comment\":null,\"at\":\"2026-01-01T00:00:00.000000Z\"}}}}' ELSE '{{}}' END::json,
                s.created_at + j * interval '1 second'
             FROM colloquy_sessions s, generate_series(1, {per}) j;
             INSERT INTO colloquy_stats_hours (hour, sessions, visitor_messages, answers)
             SELECT date_trunc('hour', now() - interval '30 days') + k * interval '1 hour',
                {n} / 720 + 1, ({n} / 720 + 1) * {per} / 2, ({n} / 720 + 1) * {per} / 2
             FROM generate_series(0, 720) k;
             ANALYZE;"
        ))
        .await?;
    eprintln!(
        "postgres: filled {sessions} sessions in {:?}",
        started.elapsed()
    );
    let out = measure(&store, args.repeat, true).await;
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await?;
    out
}

// ------------------------------------------------------------------ Redis

struct RedisServer(Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run_redis(args: &Args, sessions: usize) -> Result<Vec<(&'static str, Duration)>, Error> {
    let port = colloquy_test_support::net::free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()?;
    let _server = RedisServer(child);
    let url = format!("redis://127.0.0.1:{port}");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let deadline = Instant::now() + Duration::from_secs(10);
    let config = colloquy_redis::RedisConfig {
        response_timeout: Duration::from_secs(30),
        ..colloquy_redis::RedisConfig::default()
    };
    let store = loop {
        match colloquy_redis::RedisStore::connect(&url, &config, clock.clone()).await {
            Ok(store) => break store,
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let started = Instant::now();
    let now = Utc::now();
    let per = args.messages_per_session;
    let store_ref = &store;
    let span = chrono::Duration::seconds(SPAN_SECS);
    let step = span / i32::try_from(sessions.max(1))?;
    futures::stream::iter(0..sessions)
        .map(|i| async move {
            let created: DateTime<Utc> = now - span + step * i32::try_from(i).unwrap_or(0);
            let session = Session {
                id: Uuid::new_v4(),
                session_id: format!("s{i}"),
                external_user_id: Some(format!("u{}", i % 1000)),
                created_at: created,
                expires_at: now + chrono::Duration::days(1),
                is_active: true,
                metadata: Metadata::new(),
                responder: Responder::Ai,
                handoff_requested_at: None,
            };
            store_ref.create_session(&session).await?;
            let r = SessionRef::from_uuid(session.id);
            for j in 0..per {
                let mut metadata = Metadata::new();
                if i % 20 == 0 && j == 1 {
                    let feedback = colloquy_core::Feedback {
                        rating: colloquy_core::Rating::Down,
                        comment: None,
                        at: now,
                    };
                    metadata.insert("feedback".into(), feedback.to_value());
                }
                let draft = MessageDraft {
                    id: store_ref.new_message_id(&r),
                    role: if j % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    },
                    message: text(i, j),
                    metadata,
                    timestamp: created
                        + chrono::Duration::seconds(i64::try_from(j + 1).unwrap_or(0)),
                };
                store_ref.append(&r, draft).await?;
            }
            let patch = if i % 50 == 0 {
                Some(SessionPatch {
                    responder: Some(Responder::Human),
                    handoff_requested_at: Some(Some(
                        created + chrono::Duration::seconds(i64::try_from(per + 1).unwrap_or(0)),
                    )),
                    ..SessionPatch::default()
                })
            } else if i % 10 == 0 {
                Some(SessionPatch {
                    is_active: Some(false),
                    ..SessionPatch::default()
                })
            } else {
                None
            };
            if let Some(patch) = patch {
                store_ref.update_session(&r, &patch).await?;
            }
            Ok::<(), colloquy_core::StoreError>(())
        })
        .buffer_unordered(args.concurrency)
        .fold(Ok(()), |acc, r| async move { acc.and(r) })
        .await?;
    let elapsed = started.elapsed();
    eprintln!(
        "redis: filled {sessions} sessions, {} messages through the store in {elapsed:?} ({:.0} writes/s)",
        sessions * per,
        (sessions * (per + 1)) as f64 / elapsed.as_secs_f64()
    );
    measure(&store, args.repeat, false).await
}

// ------------------------------------------------------------------ main

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    println!(
        "| store | read | p50 at {} sessions | p50 at {} sessions | ratio |",
        args.small_sessions, args.large_sessions
    );
    println!("|---|---|---|---|---|");
    let mut failed = false;
    for store in &args.stores {
        let mut results = Vec::new();
        for sessions in [args.small_sessions, args.large_sessions] {
            let run = match store.as_str() {
                "sqlite" => run_sqlite(&args, sessions).await,
                "postgres" => run_postgres(&args, sessions).await,
                "redis" => run_redis(&args, sessions).await,
                other => Err(format!("unknown store {other}").into()),
            };
            match run {
                Ok(r) => results.push(r),
                Err(e) => {
                    eprintln!("{store} at {sessions} sessions: {e}");
                    failed = true;
                }
            }
        }
        if let [small, large] = results.as_slice() {
            for ((what, a), (_, b)) in small.iter().zip(large) {
                println!(
                    "| {store} | {what} | {:.2} ms | {:.2} ms | {:.2} |",
                    a.as_secs_f64() * 1e3,
                    b.as_secs_f64() * 1e3,
                    b.as_secs_f64() / a.as_secs_f64().max(1e-9)
                );
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
