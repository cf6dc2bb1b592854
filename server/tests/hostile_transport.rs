//! Hostile clients against the real `colloquy` binary (issue 26, items 1, 2 and 6):
//! slow request bodies, unread SSE resumes, and one address holding its whole share
//! of connections and generations while honest clients still get in.
//!
//! Each test prints its figures (RSS of the server before and at the worst moment).
//! The new settings are passed as `COLLOQUY_*` variables, so the same test runs
//! against an older binary for a "before" figure:
//! `COLLOQUY_HOSTILE_BIN=/path/to/old/colloquy cargo test -p colloquy-server --test
//! hostile_transport -- --nocapture` (the old binary then fails the assertions).
//!
//! Every wait has a deadline; nothing is synchronised by sleeping (the drips below
//! are the load itself).

#![allow(missing_docs)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, must, open_stream, temp_dir, Server, BIN, DEADLINE};
use http::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The most the server's memory may grow under each attack.
const MAX_ADDED_RSS_KB: u64 = 50 * 1024;

/// The binary under test: `COLLOQUY_HOSTILE_BIN` (an older build, for a "before"
/// figure) or this build's.
fn binary() -> String {
    std::env::var("COLLOQUY_HOSTILE_BIN").unwrap_or_else(|_| BIN.to_owned())
}

/// Starts the binary on the memory store with `env` set.
fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(binary());
    command
        .current_dir(dir)
        .args(["--bind", "127.0.0.1:0", "--log-level", "error"])
        .args(["--store", "memory"])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Server::spawn(command)
}

fn addr(server: &Server) -> SocketAddr {
    server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("a socket address")
}

/// The server's resident memory in KiB.
fn rss_kb(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .expect("the server's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// How many files (sockets) the server has open.
fn open_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.child.id()))
        .map(Iterator::count)
        .unwrap_or(0)
}

/// A connection to `to` from the loopback address `from` (127.0.0.x: another client).
async fn connect_from(from: [u8; 4], to: SocketAddr, recv_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback source");
    tokio::time::timeout(DEADLINE, socket.connect(to))
        .await
        .expect("connects in time")
        .expect("connects")
}

/// Reads until the end of the stream (or an error); the bytes read.
async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut out))
        .await
        .expect("the server ends the connection in time");
    out
}

/// A plain `GET path` from 127.0.0.x on a connection of its own: the status.
async fn probe(from: [u8; 4], to: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = connect_from(from, to, None).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let answer = read_to_end(&mut stream).await;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Polls `condition` every 50 ms (it may sample memory too) until it holds, for at
/// most `within`; whether it held. The caller prints its figures, then asserts.
async fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !condition() {
        if started.elapsed() >= within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// 280 connections each declare a 1,000,000-byte body and send one byte every 50 ms:
/// the server's memory grows by what they sent (a few hundred bytes each), not by a
/// buffer per byte, and comes back once they are answered 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_cost_what_they_sent() {
    const CONNECTIONS: usize = 280;
    const BYTES_EACH: usize = 100; // 5 s at one byte per 50 ms
    let dir = temp_dir("hostile-bodies");
    let server = start(
        dir.path(),
        &[
            // Only the body timeout ends them: memory is measured while they drip.
            ("COLLOQUY_MIN_BODY_RATE", "0"),
            ("COLLOQUY_BODY_READ_TIMEOUT", "8s"),
            ("COLLOQUY_MAX_CONNECTIONS_PER_IP", "1000"),
        ],
    );
    let to = addr(&server);
    let before = rss_kb(&server);
    let fds_before = open_fds(&server);
    let dripped = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let dripped = Arc::clone(&dripped);
        clients.push(tokio::spawn(async move {
            let mut stream = connect_from([127, 0, 0, 1], to, None).await;
            stream.set_nodelay(true).expect("nodelay");
            let head = "POST /api/chats/messages/ HTTP/1.1\r\nHost: t\r\n\
                        Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n";
            stream.write_all(head.as_bytes()).await.expect("head");
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            for _ in 0..BYTES_EACH {
                tick.tick().await;
                if stream.write_all(b" ").await.is_err() {
                    break;
                }
            }
            dripped.fetch_add(1, Ordering::SeqCst);
            String::from_utf8_lossy(&read_to_end(&mut stream).await).into_owned()
        }));
    }
    let mut peak = before;
    let all_dripped = wait_until(DEADLINE, || {
        peak = peak.max(rss_kb(&server));
        dripped.load(Ordering::SeqCst) == CONNECTIONS
    })
    .await;
    println!(
        "slow bodies: RSS {before} kB before, {peak} kB while dripping (+{} kB)",
        peak - before
    );
    assert!(all_dripped, "every client dripped its bytes in time");
    peak = peak.max(rss_kb(&server));
    let mut timed_out = 0;
    for c in clients {
        if c.await.expect("client").starts_with("HTTP/1.1 408") {
            timed_out += 1;
        }
    }
    assert!(
        wait_until(DEADLINE, || open_fds(&server) <= fds_before).await,
        "the server closed the connections"
    );
    let after = rss_kb(&server);
    println!(
        "slow bodies: {CONNECTIONS} connections x {BYTES_EACH} bytes sent; RSS {before} kB before, \
         {peak} kB at peak (+{} kB), {after} kB after the 408s; {timed_out} answered 408",
        peak - before
    );
    assert_eq!(timed_out, CONNECTIONS, "every slow body is answered 408");
    assert!(
        peak - before < MAX_ADDED_RSS_KB,
        "slow bodies added {} kB",
        peak - before
    );
    server.stop();
}

/// A body that falls behind the minimum rate is answered 408 after the grace period,
/// long before the body timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripping_body_is_answered_once_it_falls_behind_the_rate() {
    let dir = temp_dir("hostile-rate");
    let server = start(
        dir.path(),
        &[
            ("COLLOQUY_MIN_BODY_RATE", "1024"),
            ("COLLOQUY_BODY_RATE_GRACE", "1s"),
            ("COLLOQUY_BODY_READ_TIMEOUT", "60s"),
        ],
    );
    let mut stream = connect_from([127, 0, 0, 1], addr(&server), None).await;
    stream.set_nodelay(true).expect("nodelay");
    let started = Instant::now();
    let head = "POST /api/chats/messages/ HTTP/1.1\r\nHost: t\r\n\
                Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("head");
    let (mut reader, mut writer) = stream.into_split();
    let drip = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut answer = [0_u8; 12];
    let read = async {
        let mut got = 0;
        while got < answer.len() {
            match reader.read(&mut answer[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    };
    let got = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("answered long before the 60 s body timeout");
    let elapsed = started.elapsed();
    println!("a body dripping at 20 B/s: answered after {elapsed:?}");
    drip.abort();
    assert_eq!(&answer[..got], b"HTTP/1.1 408");
    server.stop();
}

/// One streamed answer of a 64 KiB message (about 6 MB of events), then 200 resumes
/// of it whose clients (4 KiB receive buffers) never read: the server holds a page
/// per resume, not the answer, and closes them after the write timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_resumes_are_bounded_and_closed_after_the_write_timeout() {
    const RESUMES: usize = 200;
    let dir = temp_dir("hostile-resumes");
    let server = start(
        dir.path(),
        &[
            ("COLLOQUY_WRITE_TIMEOUT", "3s"),
            ("COLLOQUY_MAX_RESUMES_PER_RESPONSE", "1000"),
            ("COLLOQUY_MAX_RESUMES_PER_IP", "1000"),
            ("COLLOQUY_MAX_CONNECTIONS_PER_IP", "1000"),
        ],
    );
    let to = addr(&server);
    let http = client();
    let base = server.base.clone();
    let created = must(
        &http,
        Method::POST,
        &format!("{base}/api/chats/sessions/"),
        Some(json!({})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let session_id = created.body["session_id"].as_str().expect("session_id");
    let (status, mut events) = open_stream(
        &http,
        Method::POST,
        &format!("{base}/api/chats/messages/chat/stream/"),
        &[],
        Some(json!({"session_id": session_id, "message": "a ".repeat(32_767)})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let all = events.rest().await;
    let last = all.last().expect("events").json();
    assert_eq!(last["done"], true, "{last}");
    let response_id = last["response_id"]
        .as_str()
        .expect("response_id")
        .to_owned();
    drop(http);
    let before = rss_kb(&server);
    let fds_before = open_fds(&server);
    let started = Instant::now();
    let mut streams = Vec::new();
    for _ in 0..RESUMES {
        let mut stream = connect_from([127, 0, 0, 1], to, Some(4096)).await;
        let request = format!(
            "GET /api/chats/messages/chat/stream/{response_id}/ HTTP/1.1\r\nHost: t\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("request");
        // The status line only: the stream has started; nothing more is read.
        let mut status = [0_u8; 12];
        tokio::time::timeout(DEADLINE, stream.read_exact(&mut status))
            .await
            .expect("a status in time")
            .expect("a status");
        assert_eq!(&status, b"HTTP/1.1 200");
        streams.push(stream);
    }
    let opened_after = started.elapsed();
    let mut peak = before;
    let closed = wait_until(DEADLINE, || {
        peak = peak.max(rss_kb(&server));
        open_fds(&server) <= fds_before
    })
    .await;
    println!(
        "unread resumes: RSS {before} kB before, {peak} kB with {RESUMES} open (+{} kB); \
         opened in {opened_after:?}",
        peak - before
    );
    assert!(closed, "the server closed the unread streams");
    let closed_after = started.elapsed();
    let after = rss_kb(&server);
    let mut complete = 0;
    let mut received = 0;
    for mut stream in streams {
        let bytes = read_to_end(&mut stream).await;
        received += bytes.len();
        if bytes.windows(12).any(|w| w == b"\"done\":true") {
            complete += 1;
        }
    }
    println!(
        "unread resumes: {RESUMES} of a {}-event answer; RSS {before} kB before, {peak} kB at \
         peak (+{} kB), {after} kB after; opened in {opened_after:?}, all closed \
         {closed_after:?} after the first opened; {received} bytes reached the clients, \
         {complete} complete",
        all.len(),
        peak - before
    );
    assert_eq!(complete, 0, "no unread stream ran to its end");
    assert!(
        peak - before < MAX_ADDED_RSS_KB,
        "unread resumes added {} kB",
        peak - before
    );
    server.stop();
}

/// The HTTP/2 connection preface and an empty SETTINGS frame: a peer that then
/// sends no request.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// One address holds its whole share of connections (idle HTTP/2 prefaces) and of
/// generations (hung-up chats): honest clients from other addresses still get in,
/// the idle connections are closed after the header-read timeout, the hung-up
/// generations keep counting against their own address only, and resumes of one
/// response are capped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_clients_get_in_while_one_address_holds_its_shares() {
    const SHARE: usize = 8;
    let dir = temp_dir("hostile-shares");
    let server = start(
        dir.path(),
        &[
            ("COLLOQUY_MAX_CONNECTIONS_PER_IP", "8"),
            ("COLLOQUY_HEADER_READ_TIMEOUT", "1s"),
            ("COLLOQUY_ECHO_CHUNK_DELAY", "300ms"),
            ("COLLOQUY_MAX_GENERATIONS", "4"),
            ("COLLOQUY_MAX_GENERATIONS_PER_IP", "2"),
            ("COLLOQUY_MAX_RESUMES_PER_RESPONSE", "2"),
        ],
    );
    let to = addr(&server);
    let hostile = [127, 0, 0, 1];
    let honest = [127, 0, 0, 2];

    // Connections: the share of idle h2c peers, then one more, which is closed.
    let mut idle = Vec::new();
    for _ in 0..SHARE {
        let mut stream = connect_from(hostile, to, None).await;
        stream.write_all(H2_PREFACE).await.expect("preface");
        idle.push(stream);
    }
    let started = Instant::now();
    let mut over = connect_from(hostile, to, None).await;
    assert!(
        read_to_end(&mut over).await.is_empty(),
        "over the share: closed without an answer"
    );
    for _ in 0..5 {
        assert_eq!(
            probe(honest, to, "/healthz").await,
            Some(200),
            "honest probe"
        );
    }
    for stream in &mut idle {
        read_to_end(stream).await; // the server's SETTINGS, then the end
    }
    let closed = started.elapsed();
    println!("{SHARE} idle h2c connections from one address closed after {closed:?}");
    assert_eq!(
        probe(hostile, to, "/healthz").await,
        Some(200),
        "room again"
    );

    // Generations: two long chats from the hostile address, hung up at once.
    let http = client();
    let base = server.base.clone();
    let session = |http: &common::HttpClient| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let created = must(
                &http,
                Method::POST,
                &format!("{base}/api/chats/sessions/"),
                Some(json!({})),
            )
            .await;
            created.body["session_id"].as_str().expect("id").to_owned()
        }
    };
    let long = "word ".repeat(200); // 60 s of chunks
    let chat_url = format!("{base}/api/chats/messages/chat/stream/");
    for _ in 0..2 {
        let session_id = session(&http).await;
        let (status, stream) = open_stream(
            &http,
            Method::POST,
            &chat_url,
            &[],
            Some(json!({"session_id": session_id, "message": long})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        drop(stream); // hung up; the generation runs on
    }
    let session_id = session(&http).await;
    let refused = must(
        &http,
        Method::POST,
        &chat_url,
        Some(json!({"session_id": session_id, "message": long})),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text
    );
    assert_eq!(refused.body["code"], "busy");

    // An honest client, from another address, gets a slot.
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(Some(std::net::IpAddr::from(honest)));
    let honest_http =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build::<_, http_body_util::Full<bytes::Bytes>>(connector);
    let honest_session = session(&honest_http).await;
    let (status, mut stream) = open_stream(
        &honest_http,
        Method::POST,
        &chat_url,
        &[],
        Some(json!({"session_id": honest_session, "message": long})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the honest chat gets a slot");
    let first = stream.next_event().await.expect("an event").json();
    let response_id = first["response_id"]
        .as_str()
        .expect("response_id")
        .to_owned();

    // Resumes of that answer: two at once, the third is refused.
    let resume_url = format!("{base}/api/chats/messages/chat/stream/{response_id}/");
    let mut open = Vec::new();
    for _ in 0..2 {
        let (status, reader) = open_stream(&honest_http, Method::GET, &resume_url, &[], None).await;
        assert_eq!(status, StatusCode::OK);
        open.push(reader);
    }
    let third = must(&honest_http, Method::GET, &resume_url, None).await;
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        third.text
    );
    assert_eq!(third.body["code"], "too_many_streams");
    drop(open);
    // Killed: the long generations need not run to their end.
    drop(server);
}
