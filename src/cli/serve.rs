//! `insights serve [--roles api,gateway,worker,scheduler]` and its
//! shorthands `insights api`, `gateway`, `worker` and `scheduler`: the
//! long-running services of one node, by role.
//!
//! * `api`: the HTTP API and the web UI (sign-in, OIDC, exports, GDPR
//!   routes, `POST /api/directory/sync`) and the sweep of expired
//!   exports and access bundles (sealed in the blob store);
//! * `gateway`: the Teams webhook, the media WebSocket, the spool (this
//!   node's `spool.lock`), the uploader and the custody signer; with
//!   `[siprec] listen` set, also the SIPREC recording server (its SIP
//!   listeners open before the node reports it is listening, or start-up
//!   fails);
//! * `worker`: the AI pipeline's job workers;
//! * `scheduler`: the periodic jobs (retention, directory sync, the
//!   completeness reconciliation, alerts), each run
//!   only by the node holding its lease (`gdpr_tools::leader`).
//!
//! Every node serves `/livez`, `/readyz`, `/healthz` and `/metrics` on
//! `listen`: inside the API's server when it has the `api` role, else on
//! a small listener of its own (with the gateway's routes on a gateway
//! node). A node without the `gateway` role never opens the spool.

use std::sync::Arc;

use actix_web::web;
use anyhow::Context;
use bot_gateway::spool::{Spool, SpoolConfig};
use bot_gateway::uploader::{Uploader, UploaderConfig};
use bot_gateway::webhook::{GatewayState, mount};
use insights_core::config::Settings;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::worker;
use crate::platform::Platform;

/// A node role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Role {
    /// HTTP API and web UI.
    Api,
    /// Teams webhook, media ingest, spool and uploader.
    Gateway,
    /// AI job workers.
    Worker,
    /// Periodic jobs under a lease (retention, directory sync).
    Scheduler,
}

/// The roles a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub gateway: bool,
    pub worker: bool,
    pub scheduler: bool,
    /// Whether the roles were chosen (`--roles` or a shorthand) rather
    /// than the default of `serve`: a chosen `worker` runs whatever
    /// `[worker] embedded` says, and is checked like `insights worker`.
    pub chosen: bool,
}

impl Roles {
    /// Every role: `insights serve` without `--roles` (the embedded
    /// default, with the worker as `[worker] embedded` says).
    pub fn all() -> Self {
        Self {
            api: true,
            gateway: true,
            worker: true,
            scheduler: true,
            chosen: false,
        }
    }

    /// The roles named (`--roles` or a shorthand).
    pub fn of(list: &[Role]) -> Self {
        let has = |r| list.contains(&r);
        Self {
            api: has(Role::Api),
            gateway: has(Role::Gateway),
            worker: has(Role::Worker),
            scheduler: has(Role::Scheduler),
            chosen: true,
        }
    }

    /// The names, for logs.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.api, "api"),
            (self.gateway, "gateway"),
            (self.worker, "worker"),
            (self.scheduler, "scheduler"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect()
    }
}

/// Options of the worker role (`insights worker`'s flags).
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerOptions {
    pub concurrency: Option<usize>,
    pub test_engine_delay_ms: Option<u64>,
}

/// How long shutdown waits for a segment staging under way to finish.
const SEGMENTS_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The gateway role's running parts.
struct GatewayParts {
    spool: Spool,
    stop_uploader: CancellationToken,
    uploader: JoinHandle<()>,
    /// Segmented upload: awaited on shutdown (at most
    /// [`SEGMENTS_STOP_WAIT`]) so that a staging under way is finished,
    /// not cut in half.
    segments: JoinHandle<()>,
    /// `[siprec]`: the SIPREC recording server, when configured.
    siprec: Option<bot_gateway::siprec::SiprecServer>,
}

/// Runs a node with `roles` until SIGTERM or ctrl-c, then stops every
/// part in order.
pub async fn serve(settings: Settings, roles: Roles, opts: WorkerOptions) -> anyhow::Result<()> {
    if roles.worker && roles.chosen {
        // A dedicated worker without its model is a configuration error:
        // say so at once rather than dead-lettering every job.
        worker::check_engine(&settings, opts.test_engine_delay_ms)?;
    }
    let platform = Platform::open(&settings).await?;
    if roles.api || roles.gateway {
        platform.reconcile_tenants().await?;
    }
    let mut ready = insights_api::Readiness::new(
        platform.store.clone(),
        platform.blobs.clone(),
        platform.keys.clone(),
    );
    // This node's signing key, registered so that every node verifies
    // what it signs (refused if the registry says it was rotated out):
    // custody manifests (gateway) and erasure certificates (api).
    let signing_key = super::signing::key_file(&settings);
    let signer = match roles.api || roles.gateway {
        true => Some(Arc::new(
            super::signing::open_and_register(&settings, platform.store.as_ref()).await?,
        )),
        false => None,
    };
    // The spool recovers every call a previous run left behind before
    // anything else starts; the uploader then moves finished ones out.
    let gateway = match (roles.gateway, &signer) {
        (true, Some(signer)) => {
            let spool = Spool::open(
                SpoolConfig::from_settings(&settings)?,
                platform.keys.clone(),
            )
            .await
            .context("opening the spool")?;
            ready = ready.with("spool", "local", spool_check(&spool));
            // Segmented upload: live calls staged in the blob store every
            // `[uploader] segment_seconds`; calls of lost nodes recovered.
            let segments = bot_gateway::segments::Segments::new(
                spool.clone(),
                platform.store.clone(),
                platform.blobs.clone(),
                bot_gateway::segments::SegmentConfig::from_settings(
                    &settings.uploader,
                    &super::signing::node_name(&settings)?,
                ),
            );
            let uploader = Uploader::new(
                spool.clone(),
                platform.store.clone(),
                platform.blobs.clone(),
                signer.clone(),
                UploaderConfig::from_settings(&settings.spool),
            )
            .with_segments(segments.clone());
            let stop_uploader = CancellationToken::new();
            let uploader = tokio::spawn(uploader.run(stop_uploader.clone()));
            let segments = tokio::spawn(segments.run(stop_uploader.clone()));
            // A listener that cannot be opened stops start-up here.
            let siprec = bot_gateway::siprec::SiprecServer::start(
                &settings.siprec,
                platform.store.clone(),
                spool.clone(),
            )
            .await
            .context("starting the SIPREC recording server")?;
            if let Some(s) = &siprec {
                for (transport, addr) in s.local_addrs() {
                    println!("insights: siprec listening on {transport}:{addr}");
                }
            }
            Some(GatewayParts {
                spool,
                stop_uploader,
                uploader,
                segments,
                siprec,
            })
        }
        _ => None,
    };
    let (gateway_routes, call_registry) = match &gateway {
        Some(g) => {
            let (routes, registry) = gateway_routes(&settings, &platform, &g.spool)?;
            (Some(routes), Some(registry))
        }
        None => (None, None),
    };
    let leadership = match roles.scheduler {
        true => Some(gdpr_tools::leader::Leadership::new(
            &super::signing::node_name(&settings)?,
            &settings.scheduler,
        )),
        false => None,
    };
    let directory = match roles.api || roles.scheduler {
        true => gdpr_tools::directory::Scheduler::start(
            &settings.directory,
            platform.store.clone(),
            leadership.as_ref(),
        )
        .context("starting directory sync")?,
        false => None,
    };
    // Completeness reconciliation: Graph through `[directory]`; the daily
    // run on the scheduler role, on-demand runs through the API.
    let completeness = match roles.api || roles.scheduler {
        true => gdpr_tools::completeness::Scheduler::start(
            &settings.directory,
            &settings.completeness,
            platform.store.clone(),
            leadership.as_ref(),
        )
        .context("starting the completeness reconciliation")?,
        false => None,
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
    let mut bundle_sweeper = None;
    let mut first_run = None;
    let app = if roles.api {
        let first = crate::cli::admin::setup::FirstRun::prepare(&platform).await?;
        let setup_routes = first.clone();
        first_run = Some(first);
        // The data-subject tools: certificates signed with the
        // installation key (the custody manifests' key), erasure reaching
        // this process's spool through the spool itself (none without the
        // gateway role). Exports and access bundles are sealed in the blob
        // store, their jobs in the metadata store: a sweep deletes expired
        // ones (any API node may run it).
        let spool_copies: Option<Arc<dyn insights_core::spool::SpoolCopies>> = gateway
            .as_ref()
            .map(|g| Arc::new(g.spool.clone()) as Arc<dyn insights_core::spool::SpoolCopies>);
        let gdpr = insights_api::GdprContext::new(
            gdpr_tools::certificate::CertificateSigner::open_or_create(&signing_key)
                .context("opening the installation signing key for certificates")?,
            spool_copies,
            &settings.gdpr,
        )
        .context("preparing the data-subject tools")?;
        gdpr_tools::bundles::remove_legacy_folder(&settings.data_dir);
        bundle_sweeper = Some(gdpr_tools::bundles::Sweeper::start(
            platform.store.clone(),
            platform.blobs.clone(),
            std::time::Duration::from_secs(3600),
        ));
        let state = api_state(&settings, &platform)?;
        let directory_handle = directory
            .as_ref()
            .map(|d| web::Data::new(insights_api::DirectorySyncHandle(d.sync().clone())));
        let completeness_handle = completeness
            .as_ref()
            .map(|c| web::Data::new(insights_api::CompletenessHandle(c.runner().clone())));
        let gateway_routes = gateway_routes.clone();
        let routes = move |cfg: &mut web::ServiceConfig| {
            if let Some(g) = &gateway_routes {
                g(cfg);
            }
            if let Some(h) = &directory_handle {
                cfg.app_data(h.clone());
            }
            if let Some(h) = &completeness_handle {
                cfg.app_data(h.clone());
            }
            // The web UI, same origin as the API.
            ::web::configure(cfg);
            setup_routes.configure(cfg);
        };
        insights_api::Application::build_serving_ready(
            state,
            gdpr,
            settings.listen,
            tls,
            ready,
            routes,
        )?
    } else {
        let routes = move |cfg: &mut web::ServiceConfig| {
            if let Some(g) = &gateway_routes {
                g(cfg);
            }
        };
        insights_api::Application::build_node(ready, settings.listen, tls, routes)?
    };
    let addr = app.addr();
    let handle = app.handle();
    tracing::info!(%addr, %scheme, roles = ?roles.names(), data_dir = %settings.data_dir.display(), "insights serving");
    println!("insights: listening on {scheme}://{addr}");
    if let Some(f) = &first_run {
        f.announce(scheme, addr);
    }
    let server = tokio::spawn(app.run_until_stopped());
    let worker = match roles.worker {
        true if roles.chosen => Some(worker::Embedded::start_dedicated(
            &settings,
            &platform,
            opts.concurrency,
            opts.test_engine_delay_ms,
        )?),
        true => worker::Embedded::start(&settings, &platform)?,
        false => None,
    };
    let retention = match &leadership {
        Some(l) => gdpr_tools::retention::Scheduler::start(
            &settings.retention,
            l,
            platform.store.clone(),
            platform.blobs.clone(),
        ),
        None => None,
    };
    // Alerting: every node's heartbeat (with its spool's state on a
    // gateway), the rules and delivery on the `alerts` lease's leader.
    let heartbeat = gdpr_tools::alerts::Heartbeat::start(
        platform.store.clone(),
        super::signing::node_name(&settings)?,
        roles.names().join(","),
        settings.alerts.heartbeat(),
        gateway.as_ref().map(|g| spool_probe(&g.spool)),
    );
    let alerts = match &leadership {
        Some(l) => gdpr_tools::alerts::Scheduler::start(
            &settings.alerts,
            settings.allow_insecure_http,
            l,
            platform.store.clone(),
            platform.keys.clone(),
        )
        .context("starting alerts ([alerts], [alerts.smtp])")?,
        None => None,
    };
    super::signal::shutdown_signal().await;
    tracing::info!("shutting down");
    if let Some(r) = &call_registry {
        // Live recordings cannot go on: Teams hears each tenant's
        // failure mode (`failed` or `notRecording`) before media stops.
        r.shutdown().await;
    }
    if let Some(r) = reload {
        r.abort();
    }
    if let Some(r) = retention {
        r.stop().await;
    }
    if let Some(a) = alerts {
        a.stop().await;
    }
    heartbeat.stop().await;
    handle.stop(true).await;
    if let Some(s) = bundle_sweeper {
        s.stop().await;
    }
    if let Some(d) = directory {
        d.stop().await;
    }
    if let Some(c) = completeness {
        c.stop().await;
    }
    if let Some(w) = worker {
        w.stop().await;
    }
    if let Some(g) = gateway {
        if let Some(s) = g.siprec {
            s.shutdown().await;
        }
        g.stop_uploader.cancel();
        g.uploader.await.context("uploader task")?;
        match tokio::time::timeout(SEGMENTS_STOP_WAIT, g.segments).await {
            Ok(done) => done.context("segmented upload task")?,
            Err(_) => tracing::warn!(
                "segmented upload still staging at shutdown: left to the node that recovers its calls"
            ),
        }
        g.spool.shutdown();
    }
    server.await.context("server task")?.context("server")?;
    Ok(())
}

/// `/readyz` of a gateway: its spool folder is there and has room.
fn spool_check(spool: &Spool) -> insights_api::ReadyCheck {
    let spool = spool.clone();
    Arc::new(move || {
        let spool = spool.clone();
        Box::pin(async move {
            let cfg = spool.config();
            let dir = cfg.dir.clone();
            let is_dir = tokio::task::spawn_blocking(move || dir.is_dir())
                .await
                .map_err(|e| format!("spool check: {e}"))?;
            if !is_dir {
                return Err("the spool folder is gone".into());
            }
            if spool.used_bytes() >= cfg.quota_bytes {
                return Err("the spool is full".into());
            }
            Ok(())
        })
    })
}

/// What a gateway's heartbeat says about its spool (the spool and
/// upload-backlog alert rules).
fn spool_probe(spool: &Spool) -> gdpr_tools::alerts::SpoolProbe {
    let spool = spool.clone();
    Arc::new(move || gdpr_tools::alerts::SpoolStatus {
        used_bytes: spool.used_bytes(),
        quota_bytes: spool.config().quota_bytes,
        oldest_pending_at: spool.finished().first().and_then(|j| j.finished_at),
    })
}

type Routes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// The gateway role's routes: the Teams webhook and the media WebSocket.
fn gateway_routes(
    settings: &Settings,
    platform: &Platform,
    spool: &Spool,
) -> anyhow::Result<(Routes, Arc<bot_gateway::calls::CallRegistry>)> {
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
    let registry = gateway.registry.clone();
    let webhook = mount(gateway);
    let media = bot_gateway::ingest::mount(ingest);
    let routes: Routes = Arc::new(move |cfg: &mut web::ServiceConfig| {
        webhook(cfg);
        media(cfg);
    });
    Ok((routes, registry))
}

/// The API role's state: stores, keys and the authenticator.
fn api_state(settings: &Settings, platform: &Platform) -> anyhow::Result<insights_api::AppState> {
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
    Ok(insights_api::AppState {
        store: platform.store.clone(),
        blobs: platform.blobs.clone(),
        keys: platform.keys.clone(),
        auth: Arc::new(auth),
        retention_minimum_days: settings.retention.minimum_days,
    })
}
