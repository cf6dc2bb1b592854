//! Start-up: migrations applied once under the advisory lock even when instances
//! start together, `no_migrate` refusing a schema that is not at this build's
//! version, a schema from a newer build refused, and configuration errors that
//! explain themselves without the password.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_core::ports::ChatStore;
use colloquy_core::SystemClock;
use colloquy_postgres::{ConnectError, PostgresConfig, PostgresStore, SCHEMA_VERSION};

async fn connect(config: PostgresConfig) -> Result<PostgresStore, ConnectError> {
    PostgresStore::connect(config, Arc::new(SystemClock)).await
}

/// Whether PostgreSQL answers; skips (or fails when required) when it does not.
async fn reachable() -> bool {
    match tokio_postgres::connect(&common::url(), tokio_postgres::NoTls).await {
        Ok(_) => true,
        Err(e) => {
            common::skip_or_fail(&e);
            false
        }
    }
}

async fn versions(schema: &str) -> Vec<i32> {
    common::raw_client()
        .await
        .query(
            &format!("SELECT version FROM {schema}.colloquy_schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .expect("migrations table")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_migrate_once() {
    if !reachable().await {
        return;
    }
    let schema = common::unique_schema();
    let starts: Vec<_> = (0..4)
        .map(|_| tokio::spawn(connect(common::config(&schema))))
        .collect();
    let mut stores = Vec::new();
    for s in starts {
        let store = tokio::time::timeout(Duration::from_secs(60), s)
            .await
            .expect("start-up has a deadline")
            .expect("task")
            .expect("every instance starts");
        stores.push(store);
    }
    let expected: Vec<i32> = (1..=i32::try_from(SCHEMA_VERSION).expect("small")).collect();
    assert_eq!(versions(&schema).await, expected);
    // A later start finds nothing to do.
    let again = connect(common::config(&schema)).await.expect("restart");
    again.ping().await.expect("ping");
    assert_eq!(versions(&schema).await, expected);
    for store in stores.iter().chain([&again]) {
        store.close();
    }
    common::Schema(schema).drop().await;
}

#[tokio::test]
async fn no_migrate_needs_the_schema_at_this_version() {
    if !reachable().await {
        return;
    }
    let schema = common::unique_schema();
    let no_migrate = || PostgresConfig {
        no_migrate: true,
        ..common::config(&schema)
    };
    let refused = connect(no_migrate()).await;
    assert!(
        matches!(
            refused,
            Err(ConnectError::NotMigrated {
                found: 0,
                expected: SCHEMA_VERSION
            })
        ),
        "{refused:?}"
    );
    connect(common::config(&schema))
        .await
        .expect("migrating start")
        .close();
    let store = connect(no_migrate())
        .await
        .expect("no_migrate on a migrated schema");
    store.ping().await.expect("ping");
    store.close();
    common::Schema(schema).drop().await;
}

#[tokio::test]
async fn a_schema_from_a_newer_build_is_refused() {
    if !reachable().await {
        return;
    }
    let schema = common::unique_schema();
    connect(common::config(&schema))
        .await
        .expect("migrate")
        .close();
    let newer = i32::try_from(SCHEMA_VERSION + 1).expect("small");
    common::raw_client()
        .await
        .execute(
            &format!("INSERT INTO {schema}.colloquy_schema_migrations (version) VALUES ($1)"),
            &[&newer],
        )
        .await
        .expect("pretend a newer build migrated");
    for no_migrate in [false, true] {
        let outcome = connect(PostgresConfig {
            no_migrate,
            ..common::config(&schema)
        })
        .await;
        assert!(
            matches!(outcome, Err(ConnectError::SchemaTooNew { .. })),
            "no_migrate={no_migrate}: {outcome:?}"
        );
    }
    common::Schema(schema).drop().await;
}

#[tokio::test]
async fn bad_configurations_fail_clearly_and_never_show_the_password() {
    let secret = "hunter2-secret";
    let bad = [
        format!("postgres://app:{secret}@127.0.0.1:5432/db?bogus_option=1"),
        format!("host=127.0.0.1 password={secret} sslmode=verify-everything"),
    ];
    for url in bad {
        let e = connect(PostgresConfig::new(url.clone()))
            .await
            .expect_err("invalid configuration");
        assert!(matches!(e, ConnectError::Config(_)), "{url}: {e:?}");
        let shown = format!("{} | {e:?}", common::error_chain(&e));
        assert!(!shown.contains(secret), "{shown}");
    }
    let zero_pool = PostgresConfig {
        pool_size: 0,
        ..PostgresConfig::new("postgres://localhost/db")
    };
    assert!(matches!(
        connect(zero_pool).await,
        Err(ConnectError::Config(_))
    ));

    // Nothing listens on the port: Unavailable within the connect timeout.
    let port = colloquy_test_support::net::free_port();
    let config = PostgresConfig {
        connect_timeout: Duration::from_millis(500),
        ..PostgresConfig::new(format!("postgres://app:{secret}@127.0.0.1:{port}/db"))
    };
    let started = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(10), connect(config))
        .await
        .expect("connect has a deadline")
        .expect_err("nothing listens there");
    assert!(e.is_unavailable(), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let shown = format!("{} | {e:?}", common::error_chain(&e));
    assert!(!shown.contains(secret), "{shown}");
}
