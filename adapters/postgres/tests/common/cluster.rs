//! A throwaway PostgreSQL cluster for fault tests: `initdb` into a temporary
//! directory, `pg_ctl` on a free port of 127.0.0.1, everything run as the `postgres`
//! OS user when the tests run as root (initdb refuses root). Dropping it stops the
//! server and removes the directory.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

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

/// A running throwaway cluster.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
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
        let dir =
            std::env::temp_dir().join(format!("colloquy-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir)).await?;
        }
        let port = free_port()?;
        let mut extra = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=40 \
             -c shared_buffers=16MB -c fsync=on -c synchronous_commit=on",
            dir.display()
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
        &self.dir
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
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
        let log = self.dir.join("server.log").display().to_string();
        let mut all = vec!["-D", &data, "-l", &log, "-w", "-t", "60", "-o", &self.extra];
        all.extend_from_slice(args);
        let outcome = self.tool("pg_ctl", &all).await;
        outcome.map_err(|e| {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
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
        command.args(args).current_dir(&self.dir);
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
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
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

/// A port on 127.0.0.1 nothing listens on right now.
pub fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
