//! PostgreSQL for a run: a private database created on `--postgres-url` with `psql`
//! and dropped when the run ends, and where the round-trip proxy connects.

use std::path::PathBuf;

use colloquy_bench::rtt::Upstream;
use colloquy_bench::BenchError;
use percent_encoding::percent_decode_str;

use crate::urls::{self, parse_url, redacted};

/// PostgreSQL's port when the URL names none.
const DEFAULT_PORT: u16 = 5432;

/// A database of this run, dropped (with its connections) on drop.
#[derive(Debug)]
pub(crate) struct PrivateDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PrivateDatabase {
    /// Creates database `colloquy_<tag>` on the server of `admin_url` (a URL whose
    /// database exists, e.g. `postgres`). `tag` is letters and digits.
    pub(crate) fn create(admin_url: &str, tag: &str) -> Result<Self, BenchError> {
        let name = format!("colloquy_{tag}");
        let mut url = parse_url(admin_url)?;
        url.set_path(&format!("/{name}"));
        psql(admin_url, &format!("CREATE DATABASE {name}"))?;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        })
    }

    /// The database's URL, for `colloquy --store`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PrivateDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.admin_url, &sql) {
            eprintln!(
                "colloquy-bench: could not drop database {} (drop it by hand): {e}",
                self.name
            );
        }
    }
}

/// Runs one SQL command with `psql` on `url`.
fn psql(url: &str, sql: &str) -> Result<(), BenchError> {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(BenchError::io("running psql"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BenchError::Command {
            what: format!("psql -d {} -c {sql:?}", redacted(url)),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Where a client of `url` connects: a TCP address, or the Unix socket of a host
/// that is a directory (`%2Fvar%2Frun%2Fpostgresql`, or `?host=/var/run/postgresql`).
pub(crate) fn upstream(url: &str) -> Result<Upstream, BenchError> {
    let parsed = parse_url(url)?;
    let host = parsed
        .query_pairs()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.into_owned())
        .or_else(|| {
            parsed
                .host_str()
                .map(|h| percent_decode_str(h).decode_utf8_lossy().into_owned())
        })
        .unwrap_or_default();
    let port = parsed.port().unwrap_or(DEFAULT_PORT);
    if host.starts_with('/') {
        return Ok(Upstream::Unix(
            PathBuf::from(host).join(format!(".s.PGSQL.{port}")),
        ));
    }
    urls::addr(url, DEFAULT_PORT).map(Upstream::Tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_directories_and_tcp_hosts_are_told_apart() {
        assert_eq!(
            upstream("postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres").expect("valid"),
            Upstream::Unix(PathBuf::from("/var/run/postgresql/.s.PGSQL.5432"))
        );
        assert_eq!(
            upstream("postgres://u@localhost/db?host=/tmp/pg").expect("valid"),
            Upstream::Unix(PathBuf::from("/tmp/pg/.s.PGSQL.5432"))
        );
        assert_eq!(
            upstream("postgresql://u:p@127.0.0.1:6543/db").expect("valid"),
            Upstream::Tcp("127.0.0.1:6543".parse().expect("literal address"))
        );
        assert!(upstream("not a url").is_err());
    }

    #[test]
    fn the_proxied_url_keeps_user_and_database() {
        let proxy = "127.0.0.1:4000".parse().expect("literal address");
        assert_eq!(
            crate::urls::url_via(
                "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/colloquy_x",
                proxy
            )
            .expect("valid"),
            "postgres://postgres@127.0.0.1:4000/colloquy_x"
        );
    }
}
