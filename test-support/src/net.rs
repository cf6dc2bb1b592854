//! Ports for test servers, and making sure the server on a port is the child the test
//! started (not someone else's that happened to take the port).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

/// A loopback port nothing listens on right now: bound (port 0), read and released.
/// Another process may take it before the test's child does, so a child started on it
/// must be checked with [`wait_serving`] before the test talks to the port.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// Why a child did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum NotServing {
    /// The child exited (e.g. its port was taken).
    #[error("the child exited ({0}) before it served on port {1}")]
    Exited(std::process::ExitStatus, u16),
    /// Another process listens on the port.
    #[error("port {0} is served by another process, not by the child")]
    Stolen(u16),
    /// The deadline passed.
    #[error("the child did not serve on port {port} within {within:?}")]
    Timeout {
        /// The port.
        port: u16,
        /// The deadline.
        within: Duration,
    },
    /// Waiting for the child failed.
    #[error("waiting for the child: {0}")]
    Wait(#[from] std::io::Error),
}

/// Waits (at most `within`) until `child` is alive, listens on `port` of 127.0.0.1
/// itself (checked in `/proc` where there is one; elsewhere its being alive while the
/// port accepts has to do) and `answers()` (the test's protocol check, e.g. a PING).
pub fn wait_serving(
    child: &mut Child,
    port: u16,
    within: Duration,
    mut answers: impl FnMut() -> bool,
) -> Result<(), NotServing> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(NotServing::Exited(status, port));
        }
        let accepts = TcpStream::connect_timeout(
            &(Ipv4Addr::LOCALHOST, port).into(),
            Duration::from_millis(200),
        )
        .is_ok();
        if accepts {
            match listens(child.id(), port) {
                Some(false) if started.elapsed() > Duration::from_secs(1) => {
                    // Still not ours a second after the port accepted: someone else's.
                    if child.try_wait()?.is_none() && listens(child.id(), port) == Some(false) {
                        return Err(NotServing::Stolen(port));
                    }
                }
                Some(false) => {}
                Some(true) | None => {
                    if answers() && child.try_wait()?.is_none() {
                        return Ok(());
                    }
                }
            }
        }
        if started.elapsed() > within {
            return Err(NotServing::Timeout { port, within });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether process `pid` holds a listening TCP socket on `port` (Linux `/proc`);
/// `None` where that cannot be read.
pub fn listens(pid: u32, port: u16) -> Option<bool> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        readable = true;
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if *state == "0A" && local_port == Some(port) && inodes.iter().any(|i| i == inode) {
                return Some(true);
            }
        }
    }
    readable.then_some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_of_this_process_is_seen_as_ours() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        if std::path::Path::new("/proc/net/tcp").exists() {
            assert_eq!(listens(std::process::id(), port), Some(true));
            drop(listener);
            assert_eq!(listens(std::process::id(), port), Some(false));
        }
    }

    #[test]
    fn a_child_that_exits_is_reported_not_waited_for() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("true runs");
        let outcome = wait_serving(&mut child, free_port(), Duration::from_secs(10), || true);
        assert!(
            matches!(outcome, Err(NotServing::Exited(..))),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_port_served_by_someone_else_is_refused() {
        // This test process holds the port; the child (a sleep) never listens.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep runs");
        let outcome = wait_serving(&mut child, port, Duration::from_secs(10), || true);
        let _ = child.kill();
        let _ = child.wait();
        if std::path::Path::new("/proc/net/tcp").exists() {
            assert!(
                matches!(outcome, Err(NotServing::Stolen(p)) if p == port),
                "{outcome:?}"
            );
        }
    }
}
