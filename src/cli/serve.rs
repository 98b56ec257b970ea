//! `insights serve` and `insights gateway`: the long-running services in
//! one process (HTTP API, web UI, Teams webhook and media ingest, spool
//! and uploader; with `serve` also the AI worker and the retention and
//! directory-sync schedules).

use std::sync::Arc;

use actix_web::web;
use anyhow::Context;
use bot_gateway::spool::{Spool, SpoolConfig};
use bot_gateway::uploader::{Uploader, UploaderConfig};
use bot_gateway::webhook::{GatewayState, mount};
use insights_core::config::Settings;
use tokio_util::sync::CancellationToken;

use super::worker;
use crate::platform::Platform;

/// Runs `insights serve` (`with_worker`: the AI worker, retention and
/// directory schedules too) or `insights gateway` (without them) until
/// SIGTERM or ctrl-c, then stops every part in order.
pub async fn serve(settings: Settings, with_worker: bool) -> anyhow::Result<()> {
    let platform = Platform::open(&settings).await?;
    platform.reconcile_tenants().await?;
    let first_run = crate::cli::admin::setup::FirstRun::prepare(&platform).await?;
    let setup_routes = first_run.clone();
    // The spool recovers every call a previous run left behind before
    // anything else starts; the uploader then moves finished ones out.
    let spool = Spool::open(
        SpoolConfig::from_settings(&settings)?,
        platform.keys.clone(),
    )
    .await
    .context("opening the spool")?;
    // This node's signing key, registered so that every node verifies
    // what it signs (refused if the registry says it was rotated out).
    let signing_key = super::signing::key_file(&settings);
    let signer =
        Arc::new(super::signing::open_and_register(&settings, platform.store.as_ref()).await?);
    // The data-subject tools: certificates signed with the installation
    // key (the custody manifests' key), erasure reaching this process's
    // spool through the spool itself. Exports and access bundles are
    // sealed in the blob store, their jobs in the metadata store: a sweep
    // deletes expired ones (any node may run it).
    let gdpr = insights_api::GdprContext::new(
        gdpr_tools::certificate::CertificateSigner::open_or_create(&signing_key)
            .context("opening the installation signing key for certificates")?,
        Some(Arc::new(spool.clone())),
        &settings.gdpr,
    )
    .context("preparing the data-subject tools")?;
    gdpr_tools::bundles::remove_legacy_folder(&settings.data_dir);
    let bundle_sweeper = gdpr_tools::bundles::Sweeper::start(
        platform.store.clone(),
        platform.blobs.clone(),
        std::time::Duration::from_secs(3600),
    );
    let uploader = Uploader::new(
        spool.clone(),
        platform.store.clone(),
        platform.blobs.clone(),
        signer,
        UploaderConfig::from_settings(&settings.spool),
    );
    let stop_uploader = CancellationToken::new();
    let uploader = tokio::spawn(uploader.run(stop_uploader.clone()));

    let auth = insights_api::Authenticator::new(
        &settings.auth,
        &settings.data_dir,
        platform.store.clone(),
        platform.keys.clone(),
    )
    .context("starting authentication")?;
    // Browser sessions of directory users are re-checked with Graph (at
    // most `auth.oidc.active_check_max_age_secs` stale): sign-in without
    // the directory app's credentials is refused at start-up, never
    // served on stale data.
    let auth = if auth.oidc_login_enabled() {
        let check = gdpr_tools::directory::ActiveCheck::from_settings(&settings.directory)
            .context(
                "auth.oidc sign-in re-checks directory users with Microsoft Graph: \
                 configure [directory] client_id and its secret",
            )?;
        auth.with_active_check(Arc::new(check))
    } else {
        auth
    };
    let state = insights_api::AppState {
        store: platform.store.clone(),
        blobs: platform.blobs.clone(),
        keys: platform.keys.clone(),
        auth: Arc::new(auth),
        retention_minimum_days: settings.retention.minimum_days,
    };
    let gateway = web::Data::new(
        GatewayState::builder(
            &settings.gateway,
            &settings.data_dir,
            platform.store.clone(),
        )
        // A full spool refuses new calls at the webhook already.
        .admission(Arc::new(bot_gateway::ingest::SpoolAdmission::new(
            spool.clone(),
        )))
        .build()
        .context("starting the Teams gateway")?,
    );
    let media_token = settings
        .gateway
        .media_token(&settings.data_dir)
        .context("the media adapter token")?;
    let ingest = web::Data::new(bot_gateway::ingest::IngestState::new(
        gateway.registry.clone(),
        spool.clone(),
        platform.store.clone(),
        &media_token,
        bot_gateway::ingest::IngestConfig::default(),
    ));
    let webhook = mount(gateway);
    let media = bot_gateway::ingest::mount(ingest);
    let directory = gdpr_tools::directory::Scheduler::start(
        &settings.directory,
        platform.store.clone(),
        with_worker,
    )
    .context("starting directory sync")?;
    let directory_handle = directory
        .as_ref()
        .map(|d| web::Data::new(insights_api::DirectorySyncHandle(d.sync().clone())));
    let routes = move |cfg: &mut web::ServiceConfig| {
        webhook(cfg);
        media(cfg);
        if let Some(h) = &directory_handle {
            cfg.app_data(h.clone());
        }
        // The web UI, same origin as the API.
        ::web::configure(cfg);
        setup_routes.configure(cfg);
    };
    // HTTPS when a certificate is configured (re-read on SIGHUP), plain
    // HTTP only when none is.
    let tls = match (&settings.http.tls_cert_file, &settings.http.tls_key_file) {
        (Some(cert), Some(key)) => Some(
            insights_api::tls::ReloadingCert::open(cert, key)
                .context("loading the HTTPS certificate ([http] tls_cert_file, tls_key_file)")?,
        ),
        _ => None,
    };
    let reload = tls
        .clone()
        .map(super::signal::reload_tls_on_sighup)
        .transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let app = insights_api::Application::build_serving(state, gdpr, settings.listen, tls, routes)?;
    let addr = app.addr();
    let handle = app.handle();
    tracing::info!(%addr, %scheme, data_dir = %settings.data_dir.display(), "insights serving");
    println!("insights: listening on {scheme}://{addr}");
    first_run.announce(scheme, addr);
    let server = tokio::spawn(app.run_until_stopped());
    let worker = match with_worker {
        true => worker::Embedded::start(&settings, &platform)?,
        false => None,
    };
    let retention = match with_worker {
        true => gdpr_tools::retention::Scheduler::start(
            &settings.retention,
            platform.store.clone(),
            platform.blobs.clone(),
        ),
        false => None,
    };
    super::signal::shutdown_signal().await;
    tracing::info!("shutting down");
    if let Some(r) = reload {
        r.abort();
    }
    if let Some(r) = retention {
        r.stop().await;
    }
    handle.stop(true).await;
    bundle_sweeper.stop().await;
    if let Some(d) = directory {
        d.stop().await;
    }
    if let Some(w) = worker {
        w.stop().await;
    }
    stop_uploader.cancel();
    uploader.await.context("uploader task")?;
    spool.shutdown();
    server.await.context("server task")?.context("server")?;
    Ok(())
}
