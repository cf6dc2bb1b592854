//! Connection settings of the `colloquy` binary: each is a flag with its variable,
//! and the soft open-files limit is raised to the hard limit at start-up, logged,
//! and `--max-connections` fitted under it.

#![allow(missing_docs)]

mod common;

use std::process::Command;

use common::{temp_dir, Server, BIN};

/// `(soft, hard)` "Max open files" of a `/proc/<pid>/limits` file.
fn open_files(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_limit() {
    let (_, hard) = open_files("self");
    let low = (hard / 2).min(512);
    assert!(
        low >= 16,
        "the hard limit ({hard}) leaves no room for the test"
    );
    let dir = temp_dir("fd-limit");
    // A shell lowers the soft limit, then becomes colloquy (same pid).
    let mut command = Command::new("sh");
    command
        .current_dir(dir.path())
        .arg("-c")
        .arg(format!("ulimit -S -n {low} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--store",
            "memory",
            "--log-level",
            "info",
            "--max-connections",
            "1000000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = Server::spawn(command);
    let (soft_now, hard_now) = open_files(&server.child.id().to_string());
    println!("open files: soft {low} at exec, {soft_now} once started; hard {hard_now}");
    assert_eq!(hard_now, hard);
    assert_eq!(soft_now, hard, "the soft limit is raised to the hard one");
    let logs = server.stop();
    let line = logs
        .iter()
        .find(|l| l.contains("open-files limit"))
        .unwrap_or_else(|| panic!("the limits are logged: {logs:?}"));
    assert!(line.contains(&format!("soft_before={low}")), "{line}");
    assert!(line.contains(&format!("hard={hard}")), "{line}");
    assert!(
        logs.iter()
            .any(|l| l.contains("--max-connections lowered to fit the open-files limit")),
        "a million connections do not fit under {hard} files: {logs:?}"
    );
}

#[test]
fn help_documents_the_connection_settings() {
    let output = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, env) in [
        ("--max-connections", "COLLOQUY_MAX_CONNECTIONS"),
        ("--first-byte-timeout", "COLLOQUY_FIRST_BYTE_TIMEOUT"),
        ("--header-read-timeout", "COLLOQUY_HEADER_READ_TIMEOUT"),
        ("--body-read-timeout", "COLLOQUY_BODY_READ_TIMEOUT"),
        ("--idle-timeout", "COLLOQUY_IDLE_TIMEOUT"),
        (
            "--http2-keep-alive-interval",
            "COLLOQUY_HTTP2_KEEP_ALIVE_INTERVAL",
        ),
        (
            "--http2-keep-alive-timeout",
            "COLLOQUY_HTTP2_KEEP_ALIVE_TIMEOUT",
        ),
    ] {
        assert!(help.contains(flag), "{flag} in --help");
        assert!(help.contains(env), "{env} in --help");
    }
}
