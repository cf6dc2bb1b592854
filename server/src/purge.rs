//! The periodic purge: every `--purge-interval`, deletes the sessions whose
//! retention has run out, whatever the store (Redis answers 0: its keys expire by
//! themselves).

use std::time::Duration;

use colloquy_core::ChatService;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running purge task; [`Purger::stop`] ends it.
pub(crate) struct Purger {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Starts purging every `interval` (the first purge runs one interval after start).
pub(crate) fn spawn(service: ChatService, interval: Duration) -> Purger {
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped.cancelled() => break,
                _ = ticks.tick() => match service.purge_expired().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged expired sessions"),
                    Err(e) => tracing::warn!(error = %e, "purging expired sessions failed; retrying at the next interval"),
                },
            }
        }
    });
    Purger { stop, task }
}

impl Purger {
    /// Stops the task and waits for it, so the service handle it held is dropped.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the purge task ended abnormally");
        }
    }
}
