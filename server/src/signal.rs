//! The shutdown signal: Ctrl-C (SIGINT) or SIGTERM, whichever comes first.

use std::future::Future;

/// Installs the signal handlers now (so a signal arriving at any later moment is
/// seen, never the default "terminate at once") and returns a future that completes
/// on the first of them.
///
/// # Errors
/// When a handler cannot be installed.
#[cfg(unix)]
pub(crate) fn shutdown() -> std::io::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("Ctrl-C (SIGINT) received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    })
}

/// Installs the Ctrl-C handler and returns a future that completes on Ctrl-C.
///
/// # Errors
/// Never here; the handler is installed on first poll.
#[cfg(not(unix))]
pub(crate) fn shutdown() -> std::io::Result<impl Future<Output = ()> + Send> {
    Ok(async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("Ctrl-C received; shutting down");
    })
}
