//! The shutdown signal: Ctrl-C (SIGINT) or SIGTERM, whichever comes first.

use std::future::Future;

/// Installs the signal handlers now (so a signal arriving at any later moment is
/// seen) and returns a future that completes on the first of them.
///
/// # Errors
/// When a handler cannot be installed.
pub(crate) fn shutdown() -> std::io::Result<impl Future<Output = ()> + Send> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        #[cfg(unix)]
        let terminated = terminate.recv();
        #[cfg(not(unix))]
        let terminated = std::future::pending::<Option<()>>();
        tokio::select! {
            result = tokio::signal::ctrl_c() => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "cannot listen for Ctrl-C; waiting for SIGTERM only");
                    std::future::pending::<()>().await;
                }
                tracing::info!("Ctrl-C received; shutting down");
            }
            _ = terminated => tracing::info!("SIGTERM received; shutting down"),
        }
    })
}
