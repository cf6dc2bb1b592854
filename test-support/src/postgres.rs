//! PostgreSQL for tests: where it is ([`url`]), a database of the test's own that is
//! dropped however the test ends ([`Database`]), and a private throwaway cluster for
//! fault tests ([`Cluster`]).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

/// Where the tests find PostgreSQL: `COLLOQUY_POSTGRES_URL`, else the local server's
/// unix socket as the `postgres` role.
pub fn url() -> String {
    std::env::var("COLLOQUY_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres".to_owned())
}

/// `base` with its database (the URL's path) replaced by `database`; query kept.
pub fn with_database(base: &str, database: &str) -> Result<String, url::ParseError> {
    let mut url = url::Url::parse(base)?;
    url.set_path(&format!("/{database}"));
    Ok(url.into())
}

/// Opens a direct connection (no TLS) and drives it on the current runtime.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A database created for one test on the server at a base URL, dropped (with every
/// connection to it) when this is dropped, however the test ends.
#[derive(Debug)]
pub struct Database {
    base: String,
    name: String,
    url: String,
}

impl Database {
    /// Creates `colloquy_test_<random>` on the server at `base` (a URL naming any
    /// database it can connect to). `Err` when the server does not answer.
    pub async fn create(base: &str) -> Result<Self, String> {
        let name = format!("colloquy_test_{}", uuid::Uuid::new_v4().simple());
        let url = with_database(base, &name).map_err(|e| format!("{base}: {e}"))?;
        let admin = tokio::time::timeout(crate::DEADLINE, connect(base))
            .await
            .map_err(|_| format!("no answer within {:?}", crate::DEADLINE))?
            .map_err(|e| e.to_string())?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
        Ok(Self {
            base: base.to_owned(),
            name,
            url,
        })
    }

    /// The test database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Drop may run inside a runtime (or while it panics): do it on a thread of its
        // own, with a runtime of its own, bounded.
        let (base, name) = (self.base.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                tokio::time::timeout(crate::DEADLINE, async {
                    let admin = connect(&base).await.map_err(|e| e.to_string())?;
                    admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|_| "timed out".to_owned())?
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// How long any pg_ctl or initdb call may take.
const TOOL_DEADLINE: Duration = Duration::from_secs(120);

/// The PostgreSQL server binaries: `COLLOQUY_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout), else `initdb` on `PATH`.
pub fn bindir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("COLLOQUY_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join("initdb").exists())
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A running throwaway cluster: `initdb` into a temporary directory, `pg_ctl` on a
/// free port of 127.0.0.1, everything run as the `postgres` OS user when the tests run
/// as root (initdb refuses root). Dropping it stops the server (immediate mode) and
/// removes the directory.
///
/// `pg_ctl start -w` fails when the server cannot bind its port, so a started cluster
/// is always the one listening on [`Cluster::port`].
pub struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    as_postgres: bool,
    extra: String,
}

impl Cluster {
    /// Initializes and starts a cluster; `settings` are extra `-c name=value` server
    /// options. `Err` says why it could not (no binaries, initdb failed, ...).
    pub async fn start(settings: &[&str]) -> Result<Self, String> {
        let bin = bindir().ok_or("no PostgreSQL server binaries (initdb) found")?;
        let dir = tempfile::Builder::new()
            .prefix("colloquy-pg-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path()))
            .await?;
        }
        let port = crate::net::free_port();
        let mut extra = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=40 \
             -c shared_buffers=16MB -c fsync=on -c synchronous_commit=on",
            dir.path().display()
        );
        for s in settings {
            extra.push_str(" -c ");
            extra.push_str(s);
        }
        let cluster = Self {
            bin,
            dir,
            port,
            as_postgres,
            extra,
        };
        cluster
            .tool(
                "initdb",
                &[
                    "-D",
                    &cluster.data(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ],
            )
            .await?;
        cluster.pg_ctl(&["start"]).await?;
        Ok(cluster)
    }

    /// The directory holding the data directory, the socket and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> String {
        self.dir().join("data").display().to_string()
    }

    /// A URL for the `postgres` role over TCP (trust authentication).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Makes `path` readable by the server (owned by `postgres`, mode 0600).
    pub async fn give_to_server(&self, path: &Path) -> Result<(), String> {
        if self.as_postgres {
            run(Command::new("chown").arg("postgres:postgres").arg(path)).await?;
        }
        run(Command::new("chmod").arg("600").arg(path)).await
    }

    /// `pg_ctl restart -m <mode>`, returning once the server accepts connections.
    pub async fn restart(&self, mode: &str) -> Result<(), String> {
        self.pg_ctl(&["restart", "-m", mode]).await
    }

    /// `pg_ctl stop -m <mode>`.
    pub async fn stop(&self, mode: &str) -> Result<(), String> {
        self.pg_ctl(&["stop", "-m", mode]).await
    }

    /// `pg_ctl start`, returning once the server accepts connections.
    pub async fn start_again(&self) -> Result<(), String> {
        self.pg_ctl(&["start"]).await
    }

    /// Adds `-c` settings (kept for later restarts), then `pg_ctl start`.
    pub async fn start_again_with(&mut self, settings: &[&str]) -> Result<(), String> {
        for s in settings {
            self.extra.push_str(" -c ");
            self.extra.push_str(s);
        }
        self.start_again().await
    }

    async fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.data();
        let log = self.dir().join("server.log").display().to_string();
        let mut all = vec!["-D", &data, "-l", &log, "-w", "-t", "60", "-o", &self.extra];
        all.extend_from_slice(args);
        let outcome = self.tool("pg_ctl", &all).await;
        outcome.map_err(|e| {
            let log = std::fs::read_to_string(self.dir().join("server.log")).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })
    }

    async fn tool(&self, name: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.arg("-u").arg("postgres").arg("--").arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args).current_dir(self.dir());
        run(&mut command).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.arg("-u").arg("postgres").arg("--").arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let _ = command
            .args(["-D", &data, "-w", "-t", "30", "stop", "-m", "immediate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // The TempDir removes the directory.
    }
}

/// Runs a command to completion within [`TOOL_DEADLINE`].
async fn run(command: &mut Command) -> Result<(), String> {
    command.kill_on_drop(true);
    let described = format!("{:?}", command.as_std());
    let output: Output = tokio::time::timeout(TOOL_DEADLINE, command.output())
        .await
        .map_err(|_| format!("{described} did not finish within {TOOL_DEADLINE:?}"))?
        .map_err(|e| format!("{described}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{described} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_database() {
        assert_eq!(
            with_database(
                "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres",
                "t1"
            )
            .ok(),
            Some("postgres://postgres@%2Fvar%2Frun%2Fpostgresql/t1".to_owned())
        );
        assert_eq!(
            with_database("postgresql://u:p@h:5433/db?sslmode=require", "t2").ok(),
            Some("postgresql://u:p@h:5433/t2?sslmode=require".to_owned())
        );
    }
}
