//! The signal that stops the long-running commands (`serve` and its role
//! shorthands `api`, `gateway`, `worker`, `scheduler`).

/// Waits for ctrl-c or (on Unix) SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Re-reads the HTTPS certificate and key on every SIGHUP until the
/// process ends. A failed reload keeps the previous certificate and is
/// logged (the listener never goes without one).
pub(crate) fn reload_tls_on_sighup(
    cert: std::sync::Arc<insights_api::tls::ReloadingCert>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let c = cert.clone();
            match tokio::task::spawn_blocking(move || c.reload()).await {
                Ok(Ok(())) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "SIGHUP: TLS certificate not reloaded; keeping the previous one")
                }
                Err(e) => tracing::error!(error = %e, "SIGHUP: TLS reload task failed"),
            }
        }
    }))
}
