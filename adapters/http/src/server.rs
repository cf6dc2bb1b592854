//! [`serve`]: the accept loop on hyper-util's auto (HTTP/1.1 + HTTP/2) connection
//! builder, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use colloquy_core::ChatService;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::{Api, HttpConfig, PeerAddr};

/// After the grace period, how long cancelled streams get to write their last event.
const FLUSH_AFTER_CANCEL: Duration = Duration::from_secs(2);
/// Pause after a failed `accept` (e.g. too many open files) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the API on `listener` until `shutdown` completes, then shuts down
/// gracefully and returns.
///
/// Graceful shutdown: the listener is closed at once (new connections are refused);
/// idle connections are closed; requests and SSE streams in flight run to their end
/// for up to `config.shutdown_grace`, while [`ChatService::shutdown`] waits for the
/// generations. Generations still running after the grace period are cancelled:
/// their partial answers are stored with `finish_reason = "cancelled"` and their
/// streams end with that `done` event. When this returns, every answer is stored.
pub async fn serve<F>(listener: TcpListener, service: ChatService, config: HttpConfig, shutdown: F)
where
    F: Future<Output = ()> + Send,
{
    let grace = config.shutdown_grace;
    let api = Api::new(service.clone(), config);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "listening");
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                // Each SSE event is a small write that must leave at once.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
                let api = api.clone();
                let service = service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                    let api = api.clone();
                    request.extensions_mut().insert(PeerAddr(peer));
                    async move { Ok::<_, Infallible>(api.handle(request).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        "shutting down: draining requests and streams"
    );
    let drain = tokio::time::timeout(grace + FLUSH_AFTER_CANCEL, graceful.shutdown());
    let (drained, ()) = tokio::join!(drain, service.shutdown(grace));
    match drained {
        Ok(()) => tracing::info!("shutdown complete"),
        Err(_) => tracing::warn!("connections still open after the grace period; leaving them"),
    }
}
