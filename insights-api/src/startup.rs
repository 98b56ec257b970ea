use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use insights_core::blob::BlobStore;
use insights_core::crypto::KeyProvider;
use insights_core::store::MetadataStore;

use crate::auth::Authenticator;
use crate::routes::gdpr::GdprContext;
use crate::routes::health::Readiness;
use crate::{error, metrics_setup, routes};

/// What every handler may use: the tenant-scoped stores, the key
/// provider and the authenticator (behind the [`crate::Principal`]
/// extractor).
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn MetadataStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub keys: Arc<dyn KeyProvider>,
    pub auth: Arc<Authenticator>,
    /// The installation's minimum retention in days (`[retention]
    /// minimum_days`; 0: none): no tenant policy may keep recordings for
    /// less.
    pub retention_minimum_days: u32,
}

/// Headers every response carries unless its handler set them: the API
/// serves JSON and media, never pages to frame or scripts to run, and
/// its responses hold personal data that no cache may keep. Over HTTPS,
/// HSTS too (browsers then refuse plain HTTP to this host).
fn security_headers(https: bool) -> actix_web::middleware::DefaultHeaders {
    let headers = actix_web::middleware::DefaultHeaders::new();
    let headers = match https {
        true => headers.add(("Strict-Transport-Security", crate::tls::HSTS)),
        false => headers,
    };
    headers
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add((
            "Content-Security-Policy",
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .add(("Cross-Origin-Resource-Policy", "same-origin"))
        .add(("Cache-Control", "no-store"))
}

/// A bound, not yet running HTTP server. Build binds the port (port 0 in
/// tests), so the caller learns the address before serving.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    /// The `[metrics] listen` server, when configured.
    metrics: Option<(SocketAddr, Server)>,
    /// Takes over the export jobs of API nodes that died (none without
    /// the API).
    takeovers: Option<gdpr_tools::bundles::Takeovers>,
}

impl Application {
    /// Binds `listen` and prepares the server.
    pub fn build(state: AppState, gdpr: GdprContext, listen: SocketAddr) -> anyhow::Result<Self> {
        Self::build_with(state, gdpr, listen, |_| {})
    }

    /// Binds `listen` and prepares the server, plus whatever `extra`
    /// mounts (the Teams webhook of `bot-gateway`, which this crate must
    /// not depend on).
    ///
    /// The data-subject routes' state ([`GdprContext`]: the installation's
    /// certificate signer, the spool) is a required
    /// argument: there is no fallback, so a binary that forgot it does not
    /// compile, rather than improvising a signer at the first request.
    pub fn build_with<F>(
        state: AppState,
        gdpr: GdprContext,
        listen: SocketAddr,
        extra: F,
    ) -> anyhow::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        Self::build_serving(state, gdpr, listen, None, extra)
    }

    /// [`Self::build_with`], over HTTPS when `tls` is given (only HTTPS
    /// then, with HSTS; the certificate is re-read through the
    /// [`ReloadingCert`](crate::tls::ReloadingCert) without a restart).
    pub fn build_serving<F>(
        state: AppState,
        gdpr: GdprContext,
        listen: SocketAddr,
        tls: Option<Arc<crate::tls::ReloadingCert>>,
        extra: F,
    ) -> anyhow::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let ready = Readiness::new(state.store.clone(), state.blobs.clone(), state.keys.clone());
        Self::build_serving_ready(state, gdpr, listen, tls, ready, extra)
    }

    /// [`Self::build_serving`] with the node's own [`Readiness`] (the
    /// checks of its other roles, e.g. the gateway's spool, for
    /// `/readyz` and `/healthz`).
    pub fn build_serving_ready<F>(
        state: AppState,
        gdpr: GdprContext,
        listen: SocketAddr,
        tls: Option<Arc<crate::tls::ReloadingCert>>,
        ready: Readiness,
        extra: F,
    ) -> anyhow::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let https = tls.is_some();
        let ready = web::Data::new(ready);
        let listener = TcpListener::bind(listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr()?;
        metrics_setup::handle();
        let data = web::Data::new(state);
        let gdpr = web::Data::new(gdpr);
        let exports = web::Data::new(
            routes::exports::ExportJobs::new()
                .map_err(|e| anyhow::anyhow!("export jobs need a Tokio runtime: {e}"))?,
        );
        // Exports and access bundles whose node died are run again here
        // (any API node may: the store lets one take each).
        let takeovers = gdpr_tools::bundles::Takeovers::start(gdpr_tools::bundles::TakeoverEnv {
            store: data.store.clone(),
            blobs: data.blobs.clone(),
            keys: data.keys.clone(),
            runners: vec![
                (
                    insights_core::domain::FileJobKind::Export,
                    routes::exports::rerun(data.store.clone()),
                ),
                (
                    insights_core::domain::FileJobKind::AccessBundle,
                    routes::gdpr::rerun(data.clone().into_inner(), gdpr.clone().into_inner()),
                ),
            ],
        });
        let server = HttpServer::new(move || {
            let extra = extra.clone();
            App::new()
                .app_data(data.clone())
                .app_data(ready.clone())
                .app_data(exports.clone())
                .app_data(gdpr.clone())
                .app_data(error::json_config())
                .wrap(from_fn(metrics_setup::track))
                .wrap(security_headers(https))
                .configure(routes::configure)
                .configure(extra)
                .default_service(web::to(error::not_found))
        });
        let server = match tls {
            Some(cert) => server.listen_rustls_0_23(listener, cert.server_config()?)?,
            None => server.listen(listener)?,
        }
        .disable_signals()
        .run();
        let metrics = match metrics_setup::config().listen {
            Some(at) => Some(metrics_server(at)?),
            None => None,
        };
        Ok(Self {
            addr,
            server,
            metrics,
            takeovers: Some(takeovers),
        })
    }

    /// Binds `listen` for a node without the API role (gateway, worker,
    /// scheduler): `/livez`, `/readyz`, `/healthz` and `/metrics`, plus
    /// whatever `extra` mounts (the gateway's webhook and media
    /// WebSocket); no `/api` route and no web UI. HTTPS when `tls` is
    /// given, as [`Self::build_serving`].
    pub fn build_node<F>(
        ready: Readiness,
        listen: SocketAddr,
        tls: Option<Arc<crate::tls::ReloadingCert>>,
        extra: F,
    ) -> anyhow::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let https = tls.is_some();
        let listener = TcpListener::bind(listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr()?;
        metrics_setup::handle();
        let ready = web::Data::new(ready);
        let server = HttpServer::new(move || {
            let extra = extra.clone();
            App::new()
                .app_data(ready.clone())
                .app_data(error::json_config())
                .wrap(from_fn(metrics_setup::track))
                .wrap(security_headers(https))
                .configure(routes::health::configure)
                .route("/metrics", web::get().to(routes::metrics::metrics))
                .configure(extra)
                .default_service(web::to(error::not_found))
        });
        let server = match tls {
            Some(cert) => server.listen_rustls_0_23(listener, cert.server_config()?)?,
            None => server.listen(listener)?,
        }
        .disable_signals()
        .run();
        let metrics = match metrics_setup::config().listen {
            Some(at) => Some(metrics_server(at)?),
            None => None,
        };
        Ok(Self {
            addr,
            server,
            metrics,
            takeovers: None,
        })
    }

    /// The address of the dedicated `/metrics` listener, if configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(a, _)| *a)
    }

    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped through [`Self::handle`] (the dedicated
    /// metrics listener stops with the main server).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let served = self.server.await;
        if let Some(t) = self.takeovers {
            t.stop().await;
        }
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "the metrics listener failed");
            }
        }
        served
    }
}

/// The server of `[metrics] listen`: `/metrics` and nothing else.
fn metrics_server(at: SocketAddr) -> anyhow::Result<(SocketAddr, Server)> {
    let listener = TcpListener::bind(at)
        .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {at}: {e}"))?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(|| {
        App::new()
            .app_data(routes::metrics::DedicatedListener)
            .wrap(security_headers(false))
            .route("/metrics", web::get().to(routes::metrics::metrics))
            .default_service(web::to(error::not_found))
    })
    .workers(1)
    .listen(listener)?
    .disable_signals()
    .run();
    tracing::info!(%addr, "metrics served on a separate listener");
    Ok((addr, server))
}
