//! One connection, from accept to close: serve it with hyper-util's auto builder
//! (HTTP/1.1 or HTTP/2, with the limits below), close it gracefully once idle for too
//! long or when the server shuts down.
//!
//! The limits, all hyper settings or timers around hyper, never protocol code:
//! - first byte: a connection silent for `first_byte_timeout` after accept is closed
//!   ([`TimedSocket`]); until then hyper holds only its small protocol sniffer;
//! - first request: a connection that has not started a request `header_read_timeout`
//!   after accept (an HTTP/2 peer that sent only its preface) is closed;
//! - HTTP/1.1 request head: hyper's `header_read_timeout`, which also bounds the wait
//!   for the next request on a keep-alive connection; request heads over
//!   [`MAX_HEAD_BYTES`] (8 KiB) are refused by hyper (431);
//! - request body: [`DeadlineBody`], in full within `body_read_timeout` and at
//!   `min_body_rate` after a grace period (408 `request_timeout`);
//! - writes: a write that cannot proceed for `write_timeout` (the client reads
//!   nothing) closes the connection ([`TimedSocket`]), SSE streams included;
//! - idle: no request in flight for `idle_timeout` → graceful close (HTTP/2 `GOAWAY`);
//! - HTTP/2: keep-alive `PING`s, and flow-control windows and send buffers sized for
//!   small JSON bodies and SSE, so that an idle or hostile peer pins little memory.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;

use crate::{PeerAddr, ResponseBody};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::deadline::{DeadlineBody, MinRate};
use crate::first_byte::TimedSocket;
use crate::shares::Share;
use crate::{Api, HttpConfig};

/// HTTP/1.1: hyper's read buffer may not grow past this, so a request head (request
/// line and headers) larger than this is refused with 431. Also the most response
/// bytes hyper buffers before writing. It is hyper's smallest allowed value: with a
/// larger one, the read hyper makes while a response streams (to notice a client
/// that leaves) grows each connection's read buffer from 8 to 16 KiB, and an open
/// SSE stream costs that much more (see BENCHMARKS.md, SSE scale).
pub(crate) const MAX_HEAD_BYTES: usize = 8 * 1024;
/// HTTP/2: the most request body bytes a peer may send on one stream before the
/// server reads them (about the protocol's default window).
const H2_STREAM_WINDOW: u32 = 64 * 1024;
/// HTTP/2: the same for all streams of a connection together.
const H2_CONNECTION_WINDOW: u32 = 256 * 1024;
/// HTTP/2: the most response bytes buffered per stream before the peer reads them.
const H2_SEND_BUFFER: usize = 64 * 1024;
/// HTTP/2: the most streams (requests, SSE streams) open at once on one connection.
const H2_MAX_STREAMS: u32 = 100;
/// HTTP/2: the largest request header block.
const H2_MAX_HEADER_LIST: u32 = 16 * 1024;

/// What every connection shares: the hyper builder, the API and the timeouts.
#[derive(Debug)]
pub(crate) struct Shared {
    builder: auto::Builder<TokioExecutor>,
    api: Api,
    first_byte_timeout: Duration,
    first_request_timeout: Duration,
    body_read_timeout: Duration,
    min_body_rate: MinRate,
    write_timeout: Duration,
    idle_timeout: Duration,
}

impl Shared {
    /// The settings of `config` for serving `api`.
    pub(crate) fn new(api: Api, config: &HttpConfig) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            // `writev` stays on (hyper's default on TCP): with it off, hyper copies
            // every response into its write buffer, which keeps the size of the largest
            // response (a list can be megabytes) for the connection's life; the queue
            // it uses instead costs an SSE stream a few hundred bytes.
            .max_buf_size(MAX_HEAD_BYTES);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(config.http2_keep_alive_interval)
            .keep_alive_timeout(config.http2_keep_alive_timeout)
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_send_buf_size(H2_SEND_BUFFER)
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_header_list_size(H2_MAX_HEADER_LIST);
        Self {
            builder,
            api,
            first_byte_timeout: config.first_byte_timeout,
            first_request_timeout: config.header_read_timeout,
            body_read_timeout: config.body_read_timeout,
            min_body_rate: MinRate {
                bytes_per_second: config.min_body_rate,
                grace: config.body_rate_grace,
            },
            write_timeout: config.write_timeout,
            idle_timeout: config.idle_timeout,
        }
    }
}

/// A connection's requests: how many are in flight, and whether one ever started.
#[derive(Debug, Clone, Copy, Default)]
struct Requests {
    open: usize,
    started: bool,
}

/// Counts a request in flight from its start until its response body is dropped
/// (written in full, or the stream ended).
struct InFlight(Arc<watch::Sender<Requests>>);

impl InFlight {
    fn begin(count: &Arc<watch::Sender<Requests>>) -> Self {
        count.send_modify(|r| {
            r.open += 1;
            r.started = true;
        });
        Self(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|r| r.open = r.open.saturating_sub(1));
    }
}

/// A response body that keeps its request counted in flight until it is dropped.
/// Every call is forwarded, the size hint included (so `Content-Length` stays).
struct Tracked {
    body: ResponseBody,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Resolves once no request has been in flight for `timeout`, or for `first` before
/// the first request (a peer that connects and sends no request is let go soon);
/// with whether a request ever started.
async fn idle_for(
    in_flight: &mut watch::Receiver<Requests>,
    first: Duration,
    timeout: Duration,
) -> bool {
    loop {
        let requests = *in_flight.borrow_and_update();
        let idle = requests.open == 0;
        let timeout = if requests.started { timeout } else { first };
        let changed = if idle {
            match tokio::time::timeout(timeout, in_flight.changed()).await {
                Err(_) => return requests.started,
                Ok(changed) => changed,
            }
        } else {
            in_flight.changed().await
        };
        if changed.is_err() {
            // The connection is gone; its own future reports that.
            std::future::pending::<()>().await;
        }
    }
}

/// Why [`serve`] stopped waiting on its connection.
enum Ended<T> {
    /// The connection ended by itself.
    Done(T),
    /// No request in flight for the idle timeout.
    Idle,
    /// The server shuts down.
    Stop,
}

/// Serves one accepted connection until it ends; `permit` (a place under the
/// connection cap) is held until then. `stop` turns true when the server shuts
/// down: the connection is shut down gracefully (one without a request yet is
/// closed; requests and streams in flight finish).
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    permit: (OwnedSemaphorePermit, Option<Share<IpAddr>>),
) {
    let _permit = permit;
    let (count, mut in_flight) = watch::channel(Requests::default());
    let count = Arc::new(count);
    let api = shared.api.clone();
    let body_read_timeout = shared.body_read_timeout;
    let min_body_rate = shared.min_body_rate;
    let service = service_fn(move |request: http::Request<Incoming>| {
        let in_flight = InFlight::begin(&count);
        let api = api.clone();
        // Boxed: hyper keeps the space for a request's future for as long as the
        // connection lives; this way it is only a pointer, and the future's memory
        // is freed as soon as the response has started (an SSE stream outlives it).
        Box::pin(async move {
            let mut request =
                request.map(|body| DeadlineBody::new(body, body_read_timeout, min_body_rate));
            request.extensions_mut().insert(PeerAddr(peer));
            let response = api.handle(request).await;
            // The request is in flight until its body is dropped.
            Ok::<_, Infallible>(response.map(|body| {
                Tracked {
                    body,
                    _in_flight: in_flight,
                }
                .boxed_unsync()
            }))
        })
    });
    let mut connection = pin!(shared.builder.serve_connection(
        TokioIo::new(TimedSocket::new(
            stream,
            shared.first_byte_timeout,
            shared.write_timeout
        )),
        service,
    ));
    let ended = tokio::select! {
        result = connection.as_mut() => Ended::Done(result),
        started = idle_for(&mut in_flight, shared.first_request_timeout, shared.idle_timeout) => {
            tracing::debug!(%peer, started, "closing an idle connection");
            Ended::Idle
        }
        _ = stop.wait_for(|stop| *stop) => Ended::Stop,
    };
    let result = match ended {
        Ended::Done(result) => result,
        Ended::Idle => {
            // No request in flight: a peer that does not take part in the graceful
            // close (HTTP/2 GOAWAY, then a PING it must answer) is dropped after
            // `first_request_timeout`, not after the HTTP/2 keep-alive timeout.
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(shared.first_request_timeout, connection).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
        Ended::Stop => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
