//! Connection limits over real TCP: silent, slow-header, slow-body and idle
//! connections are closed within their timeouts while `/healthz` keeps answering;
//! the connection cap refuses new connections without harming established ones;
//! idle HTTP/2 connections are closed; an open SSE stream is not idle. Timings are
//! printed (run with `--nocapture` to see them), never asserted on speed: each wait
//! only has a generous deadline, so a missing timeout fails instead of hanging.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_http::HttpConfig;
use http::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use crate::support::client::{full, ClientBody};
use crate::support::doubles::GatedModel;
use crate::support::sse::SseReader;
use crate::support::{eventually, Setup, TestServer};

/// The short timeouts the tests configure.
const SHORT: Duration = Duration::from_millis(300);
/// Connections of each hostile kind.
const N: usize = 100;
/// The longest any single wait of these tests may take.
const DEADLINE: Duration = Duration::from_secs(15);

fn short_timeouts() -> HttpConfig {
    HttpConfig {
        first_byte_timeout: SHORT,
        header_read_timeout: SHORT,
        body_read_timeout: SHORT,
        idle_timeout: SHORT,
        shutdown_grace: Duration::from_secs(5),
        ..HttpConfig::default()
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
        .await
        .expect("connects in time")
        .expect("connects")
}

/// Reads until the server closes the connection (EOF or reset); returns what was
/// read. Panics if it stays open past [`DEADLINE`].
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0_u8; 4096];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open for {DEADLINE:?}; read so far: {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0) | Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Figures of a group of connections: how long each took to be closed.
fn report(what: &str, mut closed_after: Vec<Duration>) {
    closed_after.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: {} connections closed after min {:.0} ms, median {:.0} ms, max {:.0} ms",
        closed_after.len(),
        ms(closed_after[0]),
        ms(closed_after[closed_after.len() / 2]),
        ms(closed_after[closed_after.len() - 1]),
    );
}

/// Calls `/healthz` every 20 ms, each time on a new connection, until `stop`;
/// checks each answer and returns the latencies.
async fn probe_healthz(server_addr: SocketAddr, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let mut latencies = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let client = crate::support::Client::new(server_addr);
        let started = Instant::now();
        let reply = tokio::time::timeout(DEADLINE, client.get("/healthz"))
            .await
            .expect("/healthz answers in time");
        assert_eq!(reply.status, StatusCode::OK);
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies
}

/// A connection being read, and what keeps its sending side open (dropping the write
/// half would send a FIN, which the server rightly takes as a goodbye).
type Opened = (OwnedReadHalf, Box<dyn std::any::Any + Send>);

/// Splits `stream`, keeping its write half open.
fn keep_open(stream: TcpStream) -> Opened {
    let (reader, writer) = stream.into_split();
    (reader, Box::new(writer))
}

/// Opens `N` connections of one kind (`start` sends what that kind sends), then
/// waits for the server to close each; returns (time to close, what was read).
async fn hostile<F, Fut>(addr: SocketAddr, start: F) -> Vec<(Duration, Vec<u8>)>
where
    F: Fn(TcpStream) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Opened> + Send,
{
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let start = start.clone();
            tokio::spawn(async move {
                let opened = Instant::now();
                let stream = connect(addr).await;
                let (mut reader, _writer) = start(stream).await;
                let read = read_until_closed(&mut reader).await;
                (opened.elapsed(), read)
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("connection task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_and_idle_connections_are_closed_while_healthz_answers() {
    let server = Setup {
        config: short_timeouts(),
        ..Setup::default()
    }
    .start()
    .await;
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn(probe_healthz(addr, stop.clone()));

    // Silent: connect and send nothing.
    let silent = hostile(addr, |stream| async move { keep_open(stream) }).await;
    // Slow header: a request line and half a header, then one byte every 50 ms.
    let slow_header = hostile(addr, |mut stream| async move {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
        let (reader, mut writer) = stream.into_split();
        let trickle = tokio::spawn(async move {
            for _ in 0..400 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if writer.write_all(b"a").await.is_err() {
                    return;
                }
            }
        });
        (reader, Box::new(trickle) as Box<dyn std::any::Any + Send>)
    })
    .await;
    // Slow body: a whole head announcing 100 bytes, then 10 of them.
    let slow_body = hostile(addr, |mut stream| async move {
        stream
            .write_all(
                b"POST /api/chats/sessions/ HTTP/1.1\r\nHost: x\r\n\
                  Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"metadat",
            )
            .await
            .expect("write");
        keep_open(stream)
    })
    .await;
    // Idle keep-alive: one request answered, then nothing.
    let idle = hostile(addr, |mut stream| async move {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        keep_open(stream)
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    let latencies = tokio::time::timeout(DEADLINE, probe)
        .await
        .expect("the probe stops")
        .expect("every /healthz answered 200");

    for (_, read) in &silent {
        assert!(read.is_empty(), "no answer to a silent connection");
    }
    for (_, read) in &slow_header {
        assert!(
            !String::from_utf8_lossy(read).contains("200 OK"),
            "a request whose head never ends is not answered"
        );
    }
    for (_, read) in &slow_body {
        let text = String::from_utf8_lossy(read);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    }
    for (_, read) in &idle {
        let text = String::from_utf8_lossy(read);
        assert!(
            text.starts_with("HTTP/1.1 200"),
            "answered, then closed: {text}"
        );
    }
    report("silent", silent.iter().map(|(d, _)| *d).collect());
    report("slow header", slow_header.iter().map(|(d, _)| *d).collect());
    report(
        "slow body (408)",
        slow_body.iter().map(|(d, _)| *d).collect(),
    );
    report("idle keep-alive", idle.iter().map(|(d, _)| *d).collect());
    let mut sorted = latencies.clone();
    sorted.sort();
    println!(
        "/healthz meanwhile: {} calls, all 200, median {:.1} ms, max {:.1} ms",
        sorted.len(),
        sorted[sorted.len() / 2].as_secs_f64() * 1000.0,
        sorted[sorted.len() - 1].as_secs_f64() * 1000.0
    );
    assert!(!latencies.is_empty());
}

#[tokio::test]
async fn the_connection_cap_refuses_new_connections_and_spares_established_ones() {
    const CAP: usize = 8;
    let server = Setup {
        config: HttpConfig {
            max_connections: CAP,
            shutdown_grace: Duration::from_secs(5),
            ..HttpConfig::default()
        },
        ..Setup::default()
    }
    .start()
    .await;
    let addr = server.addr;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    // Fill the cap with established keep-alive clients.
    let mut established = Vec::new();
    for _ in 0..CAP {
        let mut stream = connect(addr).await;
        stream.write_all(request).await.expect("write");
        read_response(&mut stream).await;
        established.push(stream);
    }

    // Over the cap: accepted and closed at once, without an answer.
    for _ in 0..3 {
        let started = Instant::now();
        let mut refused = connect(addr).await;
        let _ = refused.write_all(request).await;
        let read = read_until_closed(&mut refused).await;
        assert!(
            read.is_empty(),
            "no answer over the cap: {:?}",
            String::from_utf8_lossy(&read)
        );
        println!(
            "over the cap: closed after {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }

    // The established clients still complete requests.
    for stream in &mut established {
        stream.write_all(request).await.expect("write");
        read_response(stream).await;
    }

    // Once one leaves, a new connection gets its place.
    drop(established.pop());
    eventually("a place under the cap is free again", || async move {
        let mut stream = connect(addr).await;
        stream.write_all(request).await.ok()?;
        let read = read_some(&mut stream).await;
        read.starts_with(b"HTTP/1.1 200").then_some(())
    })
    .await;
}

/// Reads one `/healthz` response (it ends with its JSON body).
async fn read_response(stream: &mut TcpStream) {
    let read = read_some(stream).await;
    let text = String::from_utf8_lossy(&read);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

/// Whether `read` holds a whole `/healthz` answer.
fn complete(read: &[u8]) -> bool {
    let text = String::from_utf8_lossy(read);
    text.contains("{\"status\":\"ok\"}")
        && (!text.contains("transfer-encoding: chunked") || text.ends_with("\r\n0\r\n\r\n"))
}

/// Reads until a whole `/healthz` answer has arrived or the connection closes.
async fn read_some(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0_u8; 4096];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !complete(&out) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!("no complete answer within {DEADLINE:?}"),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

#[tokio::test]
async fn idle_http2_connections_are_closed() {
    let server = Setup {
        config: short_timeouts(),
        ..Setup::default()
    }
    .start()
    .await;
    let stream = connect(server.addr).await;
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("HTTP/2 handshake");
    let opened = Instant::now();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/healthz", server.addr))
        .body(full(""))
        .expect("request");
    let response = tokio::time::timeout(DEADLINE, sender.send_request(request))
        .await
        .expect("answered in time")
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    drop(response);
    tokio::time::timeout(DEADLINE, connection)
        .await
        .expect("the server closes an idle HTTP/2 connection")
        .expect("connection task")
        .expect("closed cleanly with GOAWAY");
    println!(
        "idle HTTP/2: closed {:.0} ms after the handshake",
        opened.elapsed().as_secs_f64() * 1000.0
    );

    // A peer that opens HTTP/2 and never sends a request is closed too.
    let stream = connect(server.addr).await;
    let (_sender, connection) = hyper::client::conn::http2::handshake::<_, _, ClientBody>(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("HTTP/2 handshake");
    tokio::time::timeout(DEADLINE, connection)
        .await
        .expect("the server closes an HTTP/2 connection without requests")
        .expect("closed cleanly");
}

#[tokio::test]
async fn an_open_sse_stream_is_not_idle() {
    let (model, gate) = GatedModel::new();
    let server: TestServer = Setup {
        config: short_timeouts(),
        ..Setup::default()
    }
    .model(model)
    .start()
    .await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    let response = c
        .send(
            Method::POST,
            "/api/chats/messages/chat/stream/",
            &[("content-type", "application/json")],
            full(json!({"session_id": "s", "message": "a slow answer"}).to_string()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut reader = SseReader::new(response.into_body());
    reader.next_event().await.expect("first event");
    // Several idle timeouts pass with the stream open and silent.
    tokio::time::sleep(SHORT * 4).await;
    gate.open();
    let rest = reader.rest().await;
    let last = rest.last().expect("events").json();
    assert_eq!(last["done"], true);
    assert_eq!(last["finish_reason"], "stop");
}

#[tokio::test]
async fn request_heads_over_8_kib_are_refused_by_hyper() {
    let server = Setup::default().start().await;
    let mut stream = connect(server.addr).await;
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let read = read_until_closed(&mut stream).await;
    let text = String::from_utf8_lossy(&read);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    // A head just under the limit is fine.
    let mut stream = connect(server.addr).await;
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(7 * 1024)
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    read_response(&mut stream).await;
}

#[tokio::test]
async fn paths_and_queries_that_are_not_utf8_are_400() {
    let server = Setup::default().start().await;
    let c = &server.client;
    c.create_session(&json!({"session_id": "s"})).await;
    for path in [
        "/api/chats/sessions/?search=%FF",
        "/api/chats/sessions/%FF/",
        "/api/chats/messages/?session_id=s&search=a%C3",
        "/api/chats/messages/chat/stream/?session_id=s&message=%FF%FE",
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(r.error_code(), "invalid_field", "{path}");
    }
    let r = c.get("/api/chats/sessions/?search=%FF").await;
    assert_eq!(r.json()["field"], "search");
    let listed = c.get("/api/chats/messages/?session_id=s").await;
    assert_eq!(listed.json(), json!([]), "nothing was stored");
    // A real U+FFFD, percent-encoded, is still fine.
    let r = c.get("/api/chats/sessions/?search=%EF%BF%BD").await;
    assert_eq!(r.status, StatusCode::OK);
}
