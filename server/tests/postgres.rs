//! The `colloquy` binary on PostgreSQL (`--store postgres://...`): the same HTTP
//! checks as on the other stores, two instances on one database, `kill -9` under write
//! load, a PostgreSQL outage answered with 503 and recovered from, and passwords kept
//! out of the output.
//!
//! PostgreSQL is found at `COLLOQUY_POSTGRES_URL` (default: the local server's unix
//! socket as `postgres`); each test creates a database of its own and drops it when it
//! ends, however it ends. The outage test runs a private throwaway cluster (`initdb`,
//! `pg_ctl`). A missing PostgreSQL skips a test locally and fails it with
//! `COLLOQUY_REQUIRE_SERVICES=1`.

#![allow(missing_docs)]

mod common;

use std::time::{Duration, Instant};

use colloquy_test_support::postgres::{self, Cluster, Database};

use common::workflow::{
    deleted_on_b_gone_on_a, http_workflow, kill_9_under_load, outage_under_load,
    two_instances_share, unreachable_store_fails_fast, WORKFLOW_ARGS,
};
use common::{client, skip_missing, temp_dir, Server};

/// A database of the test's own on the shared PostgreSQL, or `None` (after skipping,
/// or panicking when services are required) when there is none.
async fn database() -> Option<Database> {
    let url = postgres::url();
    match Database::create(&url).await {
        Ok(db) => Some(db),
        Err(e) => {
            skip_missing("PostgreSQL (COLLOQUY_POSTGRES_URL)", &e);
            None
        }
    }
}

/// Rows of `table` in the test's database.
async fn rows(db: &Database, table: &str) -> i64 {
    let client = postgres::connect(db.url())
        .await
        .expect("a direct connection");
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_workflow_on_postgres() {
    let Some(db) = database().await else { return };
    let dir = temp_dir("pg-workflow");
    let mut args = vec!["--store", db.url()];
    args.extend(WORKFLOW_ARGS);
    let server = Server::start(dir.path(), &args);
    http_workflow(&client(), &server.base).await;
    let logs = server.stop();
    assert!(logs.iter().all(|l| !l.contains("panicked")), "{logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_database() {
    let Some(db) = database().await else { return };
    let dir = temp_dir("pg-two-instances");
    let args = ["--store", db.url()];
    let a = Server::start(dir.path(), &args);
    let b = Server::start(dir.path(), &args);
    let client = client();
    let written = two_instances_share(&client, &a.base, &b.base).await;
    assert_eq!(
        rows(&db, "colloquy_messages").await,
        8,
        "the data is in PostgreSQL"
    );
    deleted_on_b_gone_on_a(&client, &a.base, &b.base, &written).await;
    assert_eq!(
        rows(&db, "colloquy_sessions").await,
        0,
        "the delete reached the database"
    );
    assert_eq!(rows(&db, "colloquy_messages").await, 0, "and cascaded");
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_write() {
    let Some(db) = database().await else { return };
    let dir = temp_dir("pg-crash");
    let args = ["--store", db.url()];
    let server = Server::start(dir.path(), &args);
    let client = client();
    let (crash, server) =
        kill_9_under_load(&client, server, || Server::start(dir.path(), &args)).await;
    eprintln!("postgres: kill -9 with {crash:?} acknowledged; all of it stored");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_is_a_503_and_service_resumes_when_it_returns() {
    let cluster = match Cluster::start(&[]).await {
        Ok(cluster) => cluster,
        Err(why) => {
            skip_missing("a throwaway PostgreSQL cluster (initdb, pg_ctl)", &why);
            return;
        }
    };
    let dir = temp_dir("pg-outage");
    let server = Server::start(dir.path(), &["--store", &cluster.url()]);
    let client = client();
    let mut stopped = Duration::ZERO;
    let (outage, ()) = outage_under_load(
        &client,
        &server.base,
        async {
            let started = Instant::now();
            // Immediate: a crash (no checkpoint); committed writes survive in the WAL.
            cluster.stop("immediate").await.expect("pg_ctl stop");
            stopped = started.elapsed();
        },
        async { cluster.start_again().await.expect("pg_ctl start") },
    )
    .await;
    eprintln!(
        "postgres outage: stopped in {stopped:?}; {} acknowledged, {} refused (503), lost {}, \
         stored but refused {}; service resumed {:?} after PostgreSQL accepted connections again",
        outage.acknowledged,
        outage.refused,
        outage.lost,
        outage.stored_but_refused,
        outage.recovered_after
    );
    let logs = server.stop();
    assert!(logs.iter().all(|l| !l.contains("panicked")), "{logs:?}");
}

#[test]
fn an_unreachable_postgres_fails_fast_without_showing_the_password() {
    unreachable_store_fails_fast(
        "PostgreSQL",
        "postgres://app:hunter2-secret@127.0.0.1:{port}/chat",
        "postgres://app:***@127.0.0.1:{port}/chat",
    );
}
