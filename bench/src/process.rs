//! Child servers: [`ServerProcess`] starts one on a free loopback port, waits for it to
//! answer, reads its memory use, and kills it when dropped (also on error paths).

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
pub use tempfile::TempDir;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::Conn;
use crate::{BenchError, RequestSpec};

/// How long a server gets to answer its health check.
pub const START_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two health probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// Attempts with a new port when a server exits during start-up (port taken).
const START_ATTEMPTS: usize = 3;

/// How to check that a started server is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `GET /healthz` answers 200.
    Healthz,
    /// A Redis `PING` answers `+PONG`.
    RedisPing,
}

/// A command line for a server; the orchestrator adds the port.
#[derive(Debug, Clone)]
pub struct ServerCommand {
    /// Name for messages and the log file.
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Arguments; `{port}` in any of them is replaced by the chosen port.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// How readiness is checked.
    pub probe: Probe,
}

/// A running child server, killed on drop.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

/// A free loopback port (bound, then released for the child to take).
///
/// # Errors
/// [`BenchError::Io`] when no port can be bound.
pub fn free_port() -> Result<u16, BenchError> {
    let listener =
        StdListener::bind("127.0.0.1:0").map_err(BenchError::io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(BenchError::io("reading a bound port"))?
        .port())
}

impl ServerProcess {
    /// Starts `command` on a free port, its output going to a log in `log_dir`, and
    /// waits until it is ready. A server that exits during start-up is tried again on
    /// another port; the last failure is returned with the end of its log.
    ///
    /// # Errors
    /// [`BenchError::ExitedEarly`], [`BenchError::NotHealthy`], [`BenchError::Io`].
    pub async fn start(command: &ServerCommand, log_dir: &Path) -> Result<Self, BenchError> {
        let mut last = None;
        for attempt in 0..START_ATTEMPTS {
            let port = free_port()?;
            let log = log_dir.join(format!("{}-{attempt}.log", command.name.replace(' ', "-")));
            let out = File::create(&log)
                .map_err(BenchError::io(format!("creating {}", log.display())))?;
            let err = out
                .try_clone()
                .map_err(BenchError::io("duplicating a log handle"))?;
            let args: Vec<OsString> = command
                .args
                .iter()
                .map(|a| OsString::from(a.replace("{port}", &port.to_string())))
                .collect();
            let child = Command::new(&command.program)
                .args(&args)
                .envs(command.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(BenchError::io(format!(
                    "starting {}",
                    command.program.display()
                )))?;
            let mut process = Self {
                name: command.name.clone(),
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                log,
            };
            match process.wait_ready(command.probe).await {
                Ok(()) => return Ok(process),
                Err(e @ BenchError::ExitedEarly { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(BenchError::NotHealthy {
            name: command.name.clone(),
            waited: START_DEADLINE,
            log_tail: String::new(),
        }))
    }

    /// Polls the probe until it passes, the child exits, or [`START_DEADLINE`].
    async fn wait_ready(&mut self, probe: Probe) -> Result<(), BenchError> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(BenchError::io("checking a child"))?
            {
                return Err(BenchError::ExitedEarly {
                    name: self.name.clone(),
                    status,
                    log_tail: self.log_tail(),
                });
            }
            let ready = match probe {
                Probe::Healthz => healthz(self.addr).await,
                Probe::RedisPing => redis_ping(self.addr).await,
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BenchError::NotHealthy {
                    name: self.name.clone(),
                    waited: START_DEADLINE,
                    log_tail: self.log_tail(),
                });
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory (VmRSS) in KiB, from `/proc`; `None` off Linux.
    #[must_use]
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// CPU time its threads have used so far.
    #[must_use]
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(self.pid())
    }

    /// The last lines of its log.
    #[must_use]
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 20)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time used so far by every thread of process `pid` (from
/// `/proc/PID/task/*/schedstat`, nanoseconds); `None` off Linux.
#[must_use]
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut nanos: u64 = 0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(run) = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            nanos = nanos.saturating_add(run);
        }
    }
    Some(Duration::from_nanos(nanos))
}

/// VmRSS of process `pid` in KiB.
#[must_use]
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The last `lines` lines of the file at `path` (at most 64 KiB read).
fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(65_536)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether `GET /healthz` answers 200.
async fn healthz(addr: SocketAddr) -> bool {
    let probe = async {
        let mut conn = Conn::connect(addr, None).await?;
        conn.call_expect(&RequestSpec::get("/healthz"), StatusCode::OK)
            .await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(_))
    )
}

/// Whether a Redis server answers `PING`.
async fn redis_ping(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await?;
        Ok::<_, std::io::Error>(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(true))
    )
}

/// A private temporary directory (`<system temp>/colloquy-bench-*`), removed with its
/// content on drop unless kept ([`TempDir::keep`]).
///
/// # Errors
/// [`BenchError::Io`].
pub fn temp_dir() -> Result<TempDir, BenchError> {
    tempfile::Builder::new()
        .prefix("colloquy-bench-")
        .tempdir()
        .map_err(BenchError::io("creating a temporary directory"))
}

/// Writes `text` to `path`.
///
/// # Errors
/// [`BenchError::Io`].
pub fn write_file(path: &Path, text: &str) -> Result<(), BenchError> {
    let mut file =
        File::create(path).map_err(BenchError::io(format!("creating {}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(BenchError::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_rss() {
        let rss = rss_kib(std::process::id());
        if cfg!(target_os = "linux") {
            assert!(rss.is_some_and(|kib| kib > 0), "VmRSS of self: {rss:?}");
        }
    }

    #[test]
    fn own_cpu_time_grows_with_work() {
        let before = cpu_time(std::process::id()).expect("schedstat is readable on Linux");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let after = cpu_time(std::process::id()).expect("schedstat is readable on Linux");
        assert!(after > before, "{before:?} -> {after:?} ({x})");
    }

    #[tokio::test]
    async fn child_that_exits_is_reported_with_its_log() {
        let dir = temp_dir().expect("temp dir");
        let command = ServerCommand {
            name: "failing".to_owned(),
            program: PathBuf::from("sh"),
            args: vec![
                "-c".to_owned(),
                "echo bad flag --bind {port} >&2; exit 2".to_owned(),
            ],
            env: Vec::new(),
            probe: Probe::Healthz,
        };
        let err = ServerProcess::start(&command, dir.path())
            .await
            .expect_err("a server that exits cannot start");
        match err {
            BenchError::ExitedEarly { log_tail, .. } => {
                assert!(log_tail.contains("bad flag --bind"))
            }
            other => panic!("unexpected error: {other}"),
        }
    }

    #[test]
    fn temp_dir_is_removed_on_drop() {
        let dir = temp_dir().expect("temp dir");
        let path = dir.path().to_owned();
        write_file(&path.join("x"), "y").expect("write in temp dir");
        drop(dir);
        assert!(!path.exists());
    }
}
