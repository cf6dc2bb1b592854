//! [`serve`]: the accept loop (connection cap, back-off on failed accepts) and
//! graceful shutdown. Each connection is served by [`connection::serve`].

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_core::ChatService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::accept::{Backoff, Throttle};
use crate::connection::{self, Shared};
use crate::shares::{client_key, Shares};
use crate::{Api, HttpConfig};

/// After the grace period, how long cancelled streams get to write their last event.
const FLUSH_AFTER_CANCEL: Duration = Duration::from_secs(2);

/// Serves the API on `listener` until `shutdown` completes, then shuts down
/// gracefully and returns.
///
/// At most `config.max_connections` connections are open at once, and at most
/// `config.max_connections_per_ip` from one client address (IPv6: one /64; trusted
/// proxies exempt): one accepted over either cap is closed at once without a
/// response, and the others are not affected.
/// A failed `accept` (such as "too many open files") pauses the loop, 10 ms after
/// the first failure and twice as long after each further one, up to 1 s; failures
/// and refused connections are logged at most once a second, with their count.
/// Each connection is subject to the timeouts of [`HttpConfig`].
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
    // Every connection holds one permit; shutdown waits until all are back.
    let max_connections =
        u32::try_from(config.max_connections.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    let cap = Arc::new(Semaphore::new(max_connections as usize));
    let shared = Arc::new(Shared::new(
        Api::new(service.clone(), config.clone()),
        &config,
    ));
    let (stop, stopped) = watch::channel(false);
    let mut backoff = Backoff::default();
    let mut accept_failures = Throttle::default();
    let mut refusals = Throttle::default();
    let mut ip_refusals = Throttle::default();
    let per_ip = Shares::new(config.max_connections_per_ip);
    let mut shutdown = pin!(shutdown);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, max_connections, "listening");
    }
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.reset();
                accepted
            }
            Err(e) => {
                let pause = backoff.failed();
                if let Some(count) = accept_failures.record(Instant::now()) {
                    tracing::warn!(
                        error = %e,
                        count,
                        pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                        "accept failed"
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let ip = peer.ip();
        let per_ip = if config.trusted_proxies.iter().any(|net| net.contains(&ip)) {
            None
        } else {
            let Some(share) = per_ip.try_take(client_key(ip)) else {
                drop(stream);
                if let Some(count) = ip_refusals.record(Instant::now()) {
                    tracing::warn!(
                        count,
                        max_connections_per_ip = config.max_connections_per_ip,
                        "a client reached its connection share: its new connections closed"
                    );
                }
                continue;
            };
            Some(share)
        };
        let Ok(permit) = cap.clone().try_acquire_owned() else {
            drop(stream);
            if let Some(count) = refusals.record(Instant::now()) {
                tracing::warn!(
                    count,
                    max_connections,
                    "connection limit reached: new connections closed"
                );
            }
            continue;
        };
        // Each SSE event is a small write that must leave at once.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        tokio::spawn(connection::serve(
            stream,
            peer,
            shared.clone(),
            stopped.clone(),
            (permit, per_ip),
        ));
    }
    drop(listener);
    tracing::info!(
        grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        "shutting down: draining requests and streams"
    );
    let _ = stop.send(true);
    let drain = tokio::time::timeout(
        grace + FLUSH_AFTER_CANCEL,
        cap.acquire_many(max_connections),
    );
    let (drained, ()) = tokio::join!(drain, service.shutdown(grace));
    match drained {
        Ok(_) => tracing::info!("shutdown complete"),
        Err(_) => tracing::warn!("connections still open after the grace period; leaving them"),
    }
}
