//! What a chat turn costs the store: `ChatStore::begin_turn` (append the user's message,
//! read the system messages and the recent window, one script) on a session holding
//! 10,000 messages, on one holding a little more than a window, and on a fresh one.
//! The first two should match: the turn reads the session's system-message index and
//! the newest `window` messages, never the whole session (a fresh session is a little
//! cheaper only because it has fewer than `window` messages to return).
//!
//! ```text
//! cargo run --release -p colloquy-redis --example turn_cost -- [redis://127.0.0.1:6379/0] [messages] [turns]
//! COLLOQUY_REDIS_CLUSTER_NODES=127.0.0.1:7001,... cargo run --release -p colloquy-redis --example turn_cost -- cluster
//! ```
//!
//! Keys go under a fresh random prefix and are deleted at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_core::ports::ChatStore;
use colloquy_core::{
    Clock, ContextBudget, MessageDraft, Metadata, Role, Session, SessionRef, SystemClock,
};
use colloquy_redis::{RedisConfig, RedisStore};
use uuid::Uuid;

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn connect(target: &str, prefix: &str) -> Result<RedisStore, Failure> {
    let config = RedisConfig::with_prefix(prefix);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if target == "cluster" {
        let nodes = std::env::var("COLLOQUY_REDIS_CLUSTER_NODES")?;
        let nodes: Vec<&str> = nodes.split(',').collect();
        Ok(RedisStore::connect_cluster(&nodes, &config, clock).await?)
    } else {
        Ok(RedisStore::connect(target, &config, clock).await?)
    }
}

fn session() -> Session {
    let now = SystemClock.now();
    Session {
        id: Uuid::now_v7(),
        session_id: colloquy_core::generate_session_id().unwrap_or_else(|_| "turn-cost".into()),
        external_user_id: None,
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    }
}

fn draft(role: Role, text: String) -> MessageDraft {
    MessageDraft {
        id: Uuid::now_v7(),
        role,
        message: text,
        metadata: Metadata::new(),
        timestamp: SystemClock.now(),
    }
}

/// A session with two system messages and `messages` in all.
async fn filled(store: &Arc<RedisStore>, messages: usize) -> Result<Session, Failure> {
    let s = session();
    store.create_session(&s).await?;
    let to = SessionRef::parse(&s.session_id);
    for text in ["You are a helpful assistant.", "Answer in English."] {
        store.append(&to, draft(Role::System, text.into())).await?;
    }
    let writers = 16;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = Arc::clone(store);
        let to = to.clone();
        let count = messages.saturating_sub(2) / writers;
        tasks.push(tokio::spawn(async move {
            for i in 0..count {
                let role = if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                };
                store
                    .append(&to, draft(role, format!("message {w}-{i}: some text")))
                    .await?;
            }
            Ok::<(), colloquy_core::StoreError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(s)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{name}: p50 {:.3} ms, p99 {:.3} ms ({} turns)",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.len()
    );
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target = args
        .first()
        .cloned()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
    let messages: usize = args.get(1).map_or(Ok(10_000), |a| a.parse())?;
    let turns: usize = args.get(2).map_or(Ok(500), |a| a.parse())?;
    let window = ContextBudget::default().max_messages;
    let prefix = format!("colloquy-bench:{}:", Uuid::new_v4().simple());
    let store = Arc::new(connect(&target, &prefix).await?);
    println!(
        "target {target} (cluster: {}), window {window}, {turns} turns each",
        store.is_cluster()
    );

    let long = filled(&store, messages).await?;
    let short = filled(&store, window + 2).await?;
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    // Interleaved, so all see the same machine load; a new fresh session each turn.
    for i in 0..turns {
        let fresh = filled(&store, 2).await?;
        for (n, s) in [&long, &short, &fresh].into_iter().enumerate() {
            let question = draft(Role::User, format!("question {i}"));
            let started = Instant::now();
            let turn = store
                .begin_turn(&SessionRef::parse(&s.session_id), question, window)
                .await?;
            times[n].push(started.elapsed());
            assert_eq!(turn.system.len(), 2);
        }
    }
    let [long_times, short_times, fresh_times] = times;
    report(
        &format!("begin_turn on a {messages}-message session"),
        long_times,
    );
    report(
        &format!("begin_turn on a {}-message session", window + 2),
        short_times,
    );
    report(
        "begin_turn on a fresh session (2 system messages)",
        fresh_times,
    );

    purge(&target, &prefix).await;
    Ok(())
}

async fn purge(target: &str, prefix: &str) {
    let urls: Vec<String> = if target == "cluster" {
        std::env::var("COLLOQUY_REDIS_CLUSTER_NODES")
            .unwrap_or_default()
            .split(',')
            .map(|n| format!("redis://{n}"))
            .collect()
    } else {
        vec![target.to_owned()]
    };
    for url in urls {
        let Ok(client) = redis::Client::open(url.as_str()) else {
            continue;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
            else {
                break;
            };
            for key in keys {
                let _: redis::RedisResult<i64> =
                    redis::cmd("UNLINK").arg(&key).query_async(&mut conn).await;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}
