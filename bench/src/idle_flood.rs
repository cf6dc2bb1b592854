//! Idle flood: hold many connections that send nothing (or only the start of a
//! request head) against a server, and
//! measure what that does to it: how long it keeps them, its RSS, and the latency of
//! `GET /healthz` (each on a new connection) meanwhile. Loopback only, bounded in
//! time: every connection is dropped when the hold ends.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;

use crate::client::Conn;
use crate::process::rss_kib;
use crate::stats::Latency;
use crate::{BenchError, RequestSpec};

/// Connections being opened at once.
const CONNECTING_AT_ONCE: usize = 256;
/// Deadline of one connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Deadline of one `/healthz` (connect included); a slower one counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two `/healthz` probes.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// How often RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// What to run.
#[derive(Debug, Clone)]
pub struct IdleFloodSpec {
    /// The server.
    pub target: SocketAddr,
    /// Its process id, for its RSS.
    pub pid: u32,
    /// Idle connections to open.
    pub connections: usize,
    /// How long to hold them (from the start of the flood).
    pub hold: Duration,
    /// Loopback source addresses to spread the connections over.
    pub sources: Vec<IpAddr>,
    /// What each connection sends once connected (empty: nothing), e.g. the start of
    /// a request head that never ends.
    pub send: Vec<u8>,
}

/// What the idle flood measured.
#[derive(Debug, Clone)]
pub struct IdleFloodResult {
    /// Connections asked for.
    pub connections: usize,
    /// Connections established.
    pub opened: usize,
    /// Connects that failed or timed out.
    pub connect_failures: usize,
    /// Connections the server closed during the hold.
    pub closed_by_server: usize,
    /// Time from connect to the server's close, for those.
    pub time_to_close: Latency,
    /// How long it took to open them all.
    pub ramp: Duration,
    /// Most connections open (established, not yet closed) at once.
    pub peak_open: usize,
    /// RSS before the flood, KiB.
    pub rss_before_kib: u64,
    /// Highest RSS during the hold, KiB.
    pub rss_peak_kib: u64,
    /// RSS at the end of the hold (connections still held, or closed), KiB.
    pub rss_end_kib: u64,
    /// `/healthz` probes that answered 200 in time, and their latency.
    pub healthz: Latency,
    /// `/healthz` probes that failed or took over 2 s.
    pub healthz_failures: usize,
    /// The longest run of consecutive failed probes, as time.
    pub longest_outage: Duration,
    /// How long the hold lasted.
    pub hold: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    opened: AtomicUsize,
    failed: AtomicUsize,
    closed: AtomicUsize,
}

/// Runs the idle flood.
///
/// # Errors
/// [`BenchError`] when a histogram cannot be made.
pub async fn run(spec: &IdleFloodSpec) -> Result<IdleFloodResult, BenchError> {
    let rss_before_kib = rss_kib(spec.pid).unwrap_or(0);
    let started = Instant::now();
    let until = started + spec.hold;
    let counters = Arc::new(Counters::default());
    let closes = Arc::new(Mutex::new(Latency::new()?));
    let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let probe = tokio::spawn(probe_healthz(spec.target, until));
    let mut tasks = Vec::with_capacity(spec.connections);
    let send: Arc<[u8]> = spec.send.clone().into();
    for i in 0..spec.connections {
        let source = (!spec.sources.is_empty()).then(|| spec.sources[i % spec.sources.len()]);
        let (counters, closes, connecting, target, send) = (
            counters.clone(),
            closes.clone(),
            connecting.clone(),
            spec.target,
            send.clone(),
        );
        tasks.push(tokio::spawn(async move {
            hold_one(
                target,
                source,
                &send,
                until,
                &counters,
                &closes,
                &connecting,
            )
            .await;
        }));
    }
    let (mut ramp, mut peak_open, mut rss_peak_kib) = (None, 0, rss_before_kib);
    while Instant::now() < until {
        let opened = counters.opened.load(Ordering::Relaxed);
        let done = opened + counters.failed.load(Ordering::Relaxed);
        if ramp.is_none() && done >= spec.connections {
            ramp = Some(started.elapsed());
        }
        peak_open = peak_open.max(opened.saturating_sub(counters.closed.load(Ordering::Relaxed)));
        rss_peak_kib = rss_peak_kib.max(rss_kib(spec.pid).unwrap_or(0));
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    let rss_end_kib = rss_kib(spec.pid).unwrap_or(0);
    for task in tasks {
        task.abort();
    }
    let (healthz, healthz_failures, longest_outage) = probe
        .await
        .map_err(|e| BenchError::io("the /healthz probe task")(std::io::Error::other(e)))??;
    let time_to_close = closes.lock().map(|c| c.clone()).unwrap_or(Latency::new()?);
    Ok(IdleFloodResult {
        connections: spec.connections,
        opened: counters.opened.load(Ordering::Relaxed),
        connect_failures: counters.failed.load(Ordering::Relaxed),
        closed_by_server: counters.closed.load(Ordering::Relaxed),
        time_to_close,
        ramp: ramp.unwrap_or(spec.hold),
        peak_open,
        rss_before_kib,
        rss_peak_kib,
        rss_end_kib,
        healthz,
        healthz_failures,
        longest_outage,
        hold: spec.hold,
    })
}

/// One idle connection: connect, send `send`, then nothing; note when the server
/// closes it.
async fn hold_one(
    target: SocketAddr,
    source: Option<IpAddr>,
    send: &[u8],
    until: Instant,
    counters: &Counters,
    closes: &Mutex<Latency>,
    connecting: &Semaphore,
) {
    let permit = connecting.acquire().await.ok();
    let connect = async {
        let socket = if target.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }?;
        if let Some(source) = source {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        socket.connect(target).await
    };
    let Ok(Ok(mut stream)) = tokio::time::timeout(CONNECT_TIMEOUT, connect).await else {
        counters.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    drop(permit);
    if !send.is_empty() && stream.write_all(send).await.is_err() {
        counters.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    counters.opened.fetch_add(1, Ordering::Relaxed);
    let connected = Instant::now();
    let mut buf = [0_u8; 64];
    let deadline = tokio::time::Instant::from_std(until);
    // Any read result (EOF, reset, even bytes) means the server acted; stop there.
    if tokio::time::timeout_at(deadline, stream.read(&mut buf))
        .await
        .is_ok()
    {
        counters.closed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut closes) = closes.lock() {
            closes.record(connected.elapsed());
        }
    }
}

/// `GET /healthz` on a new connection every 50 ms until `until`: the latencies of
/// the answers, the failures, and the longest run of failures.
async fn probe_healthz(
    target: SocketAddr,
    until: Instant,
) -> Result<(Latency, usize, Duration), BenchError> {
    let mut latency = Latency::new()?;
    let (mut failures, mut outage_since, mut longest) = (0, None::<Instant>, Duration::ZERO);
    while Instant::now() < until {
        let started = Instant::now();
        let call = async {
            let mut conn = Conn::connect(target, None).await?;
            conn.call_expect(&RequestSpec::get("/healthz"), StatusCode::OK)
                .await
        };
        if matches!(tokio::time::timeout(PROBE_TIMEOUT, call).await, Ok(Ok(_))) {
            latency.record(started.elapsed());
            if let Some(since) = outage_since.take() {
                longest = longest.max(since.elapsed());
            }
        } else {
            failures += 1;
            outage_since.get_or_insert(started);
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    if let Some(since) = outage_since {
        longest = longest.max(since.elapsed());
    }
    Ok((latency, failures, longest))
}
