//! Append throughput through the Redis store, and create-message throughput through
//! `ChatService` on top of it, with many concurrent writers on many sessions.
//!
//! ```text
//! cargo run --release -p colloquy-redis --example redis_throughput -- [redis://127.0.0.1:6379/0] [writers] [messages]
//! COLLOQUY_REDIS_CLUSTER_NODES=127.0.0.1:7001,... cargo run --release -p colloquy-redis --example redis_throughput -- cluster
//! ```
//!
//! Keys go under a fresh random prefix and are deleted at the end.

use std::sync::Arc;
use std::time::Instant;

use colloquy_core::ports::ChatStore;
use colloquy_core::{
    ChatService, Clock, MessageDraft, Metadata, NewMessage, Role, Session, SessionRef, SystemClock,
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

async fn sessions(store: &RedisStore, n: usize) -> Result<Vec<Session>, Failure> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let now = SystemClock.now();
        let s = Session {
            id: Uuid::now_v7(),
            session_id: format!("bench-{i}-{}", Uuid::new_v4().simple()),
            external_user_id: None,
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
            is_active: true,
            responder: colloquy_core::Responder::Ai,
            handoff_requested_at: None,
            metadata: Metadata::new(),
        };
        store.create_session(&s).await?;
        out.push(s);
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target = args
        .first()
        .cloned()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
    let writers: usize = args.get(1).map_or(Ok(50), |a| a.parse())?;
    let total: usize = args.get(2).map_or(Ok(100_000), |a| a.parse())?;
    let per_writer = total / writers;
    let prefix = format!("colloquy-bench:{}:", Uuid::new_v4().simple());
    let store = Arc::new(connect(&target, &prefix).await?);
    println!(
        "target {target}, {writers} writers x {per_writer} messages (cluster: {})",
        store.is_cluster()
    );

    // 1. ChatStore::append straight on the store, by session_id.
    let chats = sessions(&store, writers).await?;
    let started = Instant::now();
    let requests_before = store.requests_sent();
    let mut tasks = Vec::new();
    for chat in chats.clone() {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let to = SessionRef::parse(&chat.session_id);
            for i in 0..per_writer {
                let draft = MessageDraft {
                    id: Uuid::now_v7(),
                    role: Role::User,
                    message: format!("message {i}"),
                    metadata: Metadata::new(),
                    timestamp: SystemClock.now(),
                };
                store.append(&to, draft).await?;
            }
            Ok::<(), colloquy_core::StoreError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = (per_writer * writers) as f64;
    println!(
        "store.append: {:.0} appends/s ({n} in {secs:.2} s, {:.2} requests each)",
        n / secs,
        (store.requests_sent() - requests_before) as f64 / n
    );

    // 2. ChatService::create_message (what POST /messages does): one append.
    let service = Arc::new(ChatService::builder(store.clone(), Arc::new(SystemClock)).build());
    let chats = sessions(&store, writers).await?;
    let started = Instant::now();
    let requests_before = store.requests_sent();
    let mut tasks = Vec::new();
    for chat in chats {
        let service = Arc::clone(&service);
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let new = NewMessage {
                    session: SessionRef::parse(&chat.session_id),
                    message: format!("message {i}"),
                    role: Role::User,
                    metadata: Metadata::new(),
                };
                service.create_message(new).await?;
            }
            Ok::<(), colloquy_core::ServiceError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ChatService::create_message (by session_id): {:.0} messages/s ({n} in {secs:.2} s, {:.2} requests each)",
        n / secs,
        (store.requests_sent() - requests_before) as f64 / n
    );

    // Clean up: every key under the prefix.
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
