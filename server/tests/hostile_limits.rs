//! Issue 26 item 5 against the built binary: a flood of requests with long paths
//! cannot make the log large (paths cut to 256 bytes, lines per second bounded, the
//! dropped ones counted), and a weak admin token is refused at start.

#![allow(missing_docs)]

mod common;

use std::time::Instant;

use common::{client, must, temp_dir, Server, Started};
use http::{Method, StatusCode};

/// The bound the test starts the server with.
const LINES_PER_SEC: u64 = 50;
/// Requests in the flood.
const REQUESTS: u64 = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_path_flood_writes_a_bounded_log() {
    let dir = temp_dir("hostile-log");
    let bound = LINES_PER_SEC.to_string();
    let server = Server::start(
        dir.path(),
        &["--log-level", "info", "--log-max-lines-per-sec", &bound],
    );
    let http = client();
    let path = format!("/{}", "x".repeat(7_800));
    let url = format!("{}{path}", server.base);
    let started = Instant::now();
    for _ in 0..REQUESTS {
        let answer = must(&http, Method::GET, &url, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let logs = server.stop();
    let bytes: usize = logs.iter().map(|l| l.len() + 1).sum();
    let longest = logs.iter().map(String::len).max().unwrap_or(0);
    let dropped_notes = logs
        .iter()
        .filter(|l| l.contains("log lines dropped over --log-max-lines-per-sec"))
        .count();
    println!(
        "{REQUESTS} requests with a 7.8 KB path in {elapsed:.2} s: {} log lines, {bytes} bytes \
         ({:.0} bytes/s; unbounded it would be over {} bytes), longest line {longest} bytes, \
         {dropped_notes} dropped-count lines",
        logs.len(),
        bytes as f64 / elapsed.max(0.001),
        REQUESTS * 7_800,
    );
    assert!(
        longest < 1_024,
        "no line carries the whole path: {longest} bytes"
    );
    // Every second of the run (and the one of the shutdown) writes at most the bound
    // plus one dropped-count line.
    let seconds = elapsed.ceil() as u64 + 2;
    assert!(
        logs.len() as u64 <= seconds * (LINES_PER_SEC + 1) + 10,
        "{} lines in {seconds} s",
        logs.len()
    );
    assert!(
        (logs.len() as u64) < REQUESTS,
        "lines were dropped: {}",
        logs.len()
    );
}

#[test]
fn a_weak_admin_token_is_refused_at_start() {
    let dir = temp_dir("weak-token");
    for weak in [
        "s3cret-s3cret-s3c",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        match Server::try_start(dir.path(), &["--admin-token", weak]) {
            Started::Serving(_) => panic!("{weak:?} was accepted"),
            Started::Failed(stderr) => {
                assert!(stderr.contains("at least 32"), "{stderr}");
                assert!(!stderr.contains(weak), "the token is not printed: {stderr}");
            }
        }
    }
}
