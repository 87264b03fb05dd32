//! The process's stop signal: a watch channel that turns true on SIGTERM or
//! Ctrl-C. Once it is installed the signals no longer end the process by
//! themselves, so every wait loop of a command that installs it must also
//! select on it (a worker's consume loop, `run --local`, `select`, `adapt`).

use tokio::sync::watch;
use tracing::info;

/// Installs the handlers (once per call; cheap) and returns the receiver.
/// Needs a running tokio runtime.
pub fn signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
            tokio::select! {
                _ = term.recv() => info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => info!("interrupt received"),
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
    });
    rx
}

/// Resolves once `rx` has turned true (never, if its sender is gone first).
pub async fn requested(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}
