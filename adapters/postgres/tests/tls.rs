//! `sslmode=require`: rustls verifies the server's certificate chain and host name.
//! A throwaway cluster serves TLS with a certificate for `localhost` from a test CA
//! made with the `openssl` command line.

mod common;

use std::path::Path;
use std::sync::Arc;

use colloquy_core::SystemClock;
use colloquy_postgres::{ConnectError, PostgresConfig, PostgresStore};
use colloquy_test_support::postgres::Cluster;
use tokio::process::Command;

async fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .await
        .map_err(|e| format!("openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A CA and a server certificate for `localhost` (not 127.0.0.1) in `dir`.
async fn certificates(dir: &Path) -> Result<(), String> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=colloquy test CA",
    ]);
    openssl(dir, &ca).await?;
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr).await?;
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n")
        .map_err(|e| e.to_string())?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    )
    .await
}

#[tokio::test]
async fn require_verifies_the_chain_and_the_host_name() {
    let temp = tempfile::tempdir().expect("temp dir");
    let certs = temp.path();
    if let Err(why) = certificates(certs).await {
        common::skip_or_fail(&why);
        return;
    }
    let cluster = match Cluster::start(&[]).await {
        Ok(c) => c,
        Err(why) => {
            common::skip_or_fail(&why);
            return;
        }
    };
    // The server reads its key and certificate from its own directory.
    for file in ["server.crt", "server.key"] {
        let to = cluster.dir().join(file);
        std::fs::copy(certs.join(file), &to).expect("copy");
        cluster.give_to_server(&to).await.expect("chown");
    }
    cluster.stop("fast").await.expect("stop");
    let mut tls_cluster = cluster;
    let cert = format!(
        "ssl_cert_file={}",
        tls_cluster.dir().join("server.crt").display()
    );
    let key = format!(
        "ssl_key_file={}",
        tls_cluster.dir().join("server.key").display()
    );
    tls_cluster
        .start_again_with(&["ssl=on", &cert, &key])
        .await
        .expect("start with TLS");
    let port = tls_cluster.port;
    let config = |host: &str, root: Option<&Path>| PostgresConfig {
        root_cert: root.map(Path::to_path_buf),
        connect_timeout: std::time::Duration::from_secs(5),
        ..PostgresConfig::new(format!(
            "postgres://postgres:not-a-real-secret@{host}:{port}/postgres?sslmode=require"
        ))
    };
    let ca = certs.join("ca.crt");

    // Trusted CA, matching name: connected, and the connection is encrypted.
    let store = PostgresStore::connect(config("localhost", Some(&ca)), Arc::new(SystemClock))
        .await
        .expect("TLS connection with the test CA");
    let observer = common::raw_client_to(&tls_cluster.url()).await;
    let encrypted: i64 = observer
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE ssl AND application_name = 'colloquy'",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(encrypted >= 1, "the store's connections use TLS");
    store.close();

    // Unknown CA: refused.
    let untrusted = PostgresStore::connect(config("localhost", None), Arc::new(SystemClock)).await;
    assert_refused(untrusted, "UnknownIssuer");
    // Trusted CA but a name the certificate does not carry: refused.
    let wrong_name =
        PostgresStore::connect(config("127.0.0.1", Some(&ca)), Arc::new(SystemClock)).await;
    assert_refused(wrong_name, "not valid for name");
    drop(tls_cluster);
}

fn assert_refused(outcome: Result<PostgresStore, ConnectError>, reason: &str) {
    let Err(e) = outcome else {
        panic!("connected although the certificate should be refused ({reason})")
    };
    let chain = common::error_chain(&e);
    assert!(chain.contains(reason), "{chain}");
    assert!(
        !chain.contains("not-a-real-secret"),
        "the password leaked: {chain}"
    );
}
