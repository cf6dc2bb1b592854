//! Every statement is served by an index, on the plan PostgreSQL may cache for it
//! (the *generic* plan, forced here), over tables big enough that a scan or a sort
//! would be chosen if it were cheaper: no sequential scan, no sort of a list, and
//! each list walks its index in the requested direction. The statements inside
//! `colloquy_begin_turn` are checked with `auto_explain`.

use std::sync::Arc;

use futures::StreamExt;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::{sql, PostgresConfig, PostgresStore};

fn url() -> String {
    std::env::var("COLLOQUY_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres".to_owned())
}

fn required() -> bool {
    std::env::var("COLLOQUY_REQUIRE_SERVICES")
        .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// A client on `schema` whose notices (auto_explain's plans) arrive on the receiver.
async fn client(schema: &str) -> (Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let mut config: tokio_postgres::Config = url().parse().expect("test URL");
    config.options(format!("{} -c search_path={schema}", sql::PLANNER_SETTINGS));
    // (jit=off is part of the settings; the plans below must not need JIT either.)
    let (client, mut connection) = config.connect(NoTls).await.expect("direct connection");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notice(notice) = message {
                let _ = tx.send(notice.message().to_owned());
            }
        }
    });
    (client, rx)
}

const POPULATE: &str = "
INSERT INTO colloquy_sessions
    (id, session_id, external_user_id, created_at, expires_at, is_active, metadata)
SELECT gen_random_uuid(), 's' || i, 'user' || (i % 50), now() - i * interval '1 second',
    now() + (i % 7) * interval '1 hour', i % 3 <> 0, '{}'
FROM generate_series(1, 10000) i;
INSERT INTO colloquy_messages (session, seq, id, role, message, metadata, written_at, is_deleted)
SELECT s.id, i, gen_random_uuid(), CASE WHEN i % 500 = 0 THEN 'system' ELSE 'user' END,
    'message ' || i, '{}', now(), i % 10 = 0
FROM colloquy_sessions s, generate_series(1, 30000) i WHERE s.session_id = 's1';
INSERT INTO colloquy_messages (session, seq, id, role, message, metadata, written_at)
SELECT s.id, i, gen_random_uuid(), 'user', 'hi', '{}', now()
FROM colloquy_sessions s, generate_series(1, 3) i WHERE s.session_id <> 's1';
UPDATE colloquy_sessions SET last_seq = CASE WHEN session_id = 's1' THEN 30000 ELSE 3 END;
INSERT INTO colloquy_idempotency (key, claim, fingerprint, status, body, expires_at)
SELECT 'key' || i, gen_random_uuid(), 'fp', 201, '{}', now() + (i % 24) * interval '1 hour'
FROM generate_series(1, 10000) i;
-- A year of dashboard counters, with a full list of questions in each hour.
INSERT INTO colloquy_stats_hours (hour, sessions)
SELECT date_trunc('hour', now()) - i * interval '1 hour', i FROM generate_series(1, 9000) i;
INSERT INTO colloquy_stats_questions (hour, question, count)
SELECT date_trunc('hour', now()) - (i % 9000) * interval '1 hour', 'question ' || i, 1
FROM generate_series(1, 90000) i;
-- Many small sessions and one long one: a cached plan assumes the average session,
-- the case where a sort of the whole session looks as cheap as walking the index.
ALTER TABLE colloquy_messages ALTER session SET (n_distinct = 10000);
INSERT INTO colloquy_webhook_outbox (id, event_id, event_type, target, body, created_at, due_at)
SELECT gen_random_uuid(), gen_random_uuid(), 'message.created', 'http://x.test/', '{}', g, g
FROM generate_series(1, 20000) g;
ANALYZE;
";

/// The generic plan of `statement`, as text lines.
async fn generic_plan(client: &Client, statement: &str) -> String {
    let params = client
        .prepare(statement)
        .await
        .expect("statement prepares against the schema")
        .params()
        .len();
    let nulls = vec!["NULL"; params].join(", ");
    let args = if params == 0 {
        String::new()
    } else {
        format!("({nulls})")
    };
    client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; PREPARE p AS {statement}"
        ))
        .await
        .expect("prepare");
    let rows = client
        .query(&format!("EXPLAIN EXECUTE p{args}"), &[])
        .await
        .expect("explain");
    client
        .batch_execute("DEALLOCATE p")
        .await
        .expect("deallocate");
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails on a sequential scan of our tables or a sort of a list.
fn assert_indexed(what: &str, plan: &str) {
    assert!(
        !plan.contains("Seq Scan on colloquy_"),
        "{what}: sequential scan\n{plan}"
    );
    assert!(!plan.contains("JIT"), "{what}: compiled by JIT\n{plan}");
    for line in plan.lines().filter(|l| l.contains("Sort Key:")) {
        let sorts_a_list = ["seq", "created_at", "expires_at"]
            .iter()
            .any(|column| line.contains(column));
        assert!(!sorts_a_list, "{what}: sorts rows\n{plan}");
    }
}

#[tokio::test]
async fn every_statement_uses_an_index_on_its_generic_plan() {
    let schema = format!("colloquy_plans_{}", uuid::Uuid::new_v4().simple());
    let config = PostgresConfig {
        schema: Some(schema.clone()),
        pool_size: 1,
        ..PostgresConfig::new(url())
    };
    let clock = Arc::new(colloquy_core::SystemClock);
    let store = match PostgresStore::connect(config, clock).await {
        Ok(store) => store,
        Err(e) if e.is_unavailable() && !required() => {
            eprintln!("skipping: PostgreSQL not reachable ({e})");
            return;
        }
        Err(e) => panic!("connecting: {e:?}"),
    };
    store.close();
    let (client, mut notices) = client(&schema).await;
    client.batch_execute(POPULATE).await.expect("populate");

    for statement in sql::all().filter(|s| *s != sql::PING) {
        let plan = generic_plan(&client, statement).await;
        assert_indexed(statement, &plan);
    }
    let expect_index = |statement: &str, index: &str| {
        let statement = statement.to_owned();
        let index = index.to_owned();
        let client = &client;
        async move {
            let plan = generic_plan(client, &statement).await;
            assert!(
                plan.contains(&index),
                "{statement}: not via {index}\n{plan}"
            );
            plan
        }
    };
    expect_index(&sql::LIST_SESSIONS[0], "colloquy_sessions_created").await;
    expect_index(&sql::LIST_SESSIONS[1], "colloquy_sessions_external_user").await;
    for list in sql::LIST_MESSAGES.iter() {
        let plan = expect_index(list, "colloquy_messages_live").await;
        let backward = plan.contains("Index Scan Backward using colloquy_messages_live");
        assert_eq!(
            backward,
            list.contains("m.seq DESC"),
            "direction of\n{plan}"
        );
    }
    expect_index(sql::PURGE_BATCH, "colloquy_sessions_expiry").await;
    expect_index(sql::GET_MESSAGE, "colloquy_messages_id").await;
    expect_index(sql::DELETE_MESSAGE, "colloquy_messages_id").await;
    expect_index(sql::GET_SESSION, "colloquy_sessions_session_id").await;
    expect_index(sql::APPEND, "colloquy_sessions_pkey").await;
    expect_index(sql::RELEASE_IDEMPOTENCY, "colloquy_idempotency_pkey").await;
    expect_index(sql::PURGE_IDEMPOTENCY, "colloquy_idempotency_expiry").await;

    // The turn function's statements, on the session with 30,000 messages.
    client
        .batch_execute(
            "LOAD 'auto_explain';
             SET auto_explain.log_min_duration = 0;
             SET auto_explain.log_nested_statements = on;
             SET auto_explain.log_level = notice;
             SET plan_cache_mode = force_generic_plan;
             BEGIN;
             SELECT * FROM colloquy_begin_turn(NULL, 's1', now(), gen_random_uuid(), 'user',
                 'hello', '{}', now(), 20);
             ROLLBACK;
             RESET auto_explain.log_min_duration;",
        )
        .await
        .expect("turn");
    let mut plans = Vec::new();
    while let Ok(notice) = notices.try_recv() {
        plans.push(notice);
    }
    let nested: Vec<&String> = plans
        .iter()
        .filter(|p| p.contains("colloquy_messages m"))
        .collect();
    assert_eq!(nested.len(), 2, "system and recent reads: {plans:#?}");
    for plan in &nested {
        assert_indexed("begin_turn", plan);
    }
    assert!(
        nested[0].contains("colloquy_messages_system"),
        "{}",
        nested[0]
    );
    assert!(
        nested[1].contains("Index Scan Backward using colloquy_messages_live"),
        "{}",
        nested[1]
    );
    drop(client);
    let (client, _) = self::client(&schema).await;
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop schema");
}
