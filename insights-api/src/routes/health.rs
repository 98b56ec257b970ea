//! Health of a node, whatever its roles: `GET /livez` (the process is
//! up), `GET /readyz` (what its roles depend on is reachable; for a load
//! balancer) and `GET /healthz` (each component's status). Served by the
//! API's server and by the small listener of nodes without the API role
//! ([`crate::Application::build_node`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use futures::future::BoxFuture;
use insights_core::blob::BlobStore;
use insights_core::crypto::KeyProvider;
use insights_core::problem::{self, Problem};
use insights_core::store::MetadataStore;
use serde::Serialize;

/// How long one component may take to answer before it counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A dependency of one of the node's roles beyond the three backends
/// (the gateway's spool): `Err` carries a cause for the logs only.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What `/readyz` and `/healthz` probe: the metadata store, the blob
/// store, the key provider and each role's own checks.
#[derive(Clone)]
pub struct Readiness {
    store: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    keys: Arc<dyn KeyProvider>,
    extra: Vec<(&'static str, &'static str, ReadyCheck)>,
}

impl Readiness {
    /// The three backends every role uses.
    pub fn new(
        store: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        keys: Arc<dyn KeyProvider>,
    ) -> Self {
        Self {
            store,
            blobs,
            keys,
            extra: Vec::new(),
        }
    }

    /// Adds a component (`name`, e.g. `spool`; `backend`, e.g. `local`).
    pub fn with(mut self, name: &'static str, backend: &'static str, check: ReadyCheck) -> Self {
        self.extra.push((name, backend, check));
        self
    }

    async fn components(&self) -> BTreeMap<&'static str, Component> {
        let (store, blob, keys) = tokio::join!(
            probe("store", self.store.backend(), self.store.health()),
            probe("blob", self.blobs.backend(), self.blobs.health()),
            probe("keys", self.keys.backend(), self.keys.health()),
        );
        let mut components = BTreeMap::new();
        components.insert("store", store);
        components.insert("blob", blob);
        components.insert("keys", keys);
        for (name, backend, check) in &self.extra {
            components.insert(*name, probe(name, backend, check()).await);
        }
        components
    }
}

/// One component's state. The cause of a failure goes to the logs only:
/// these endpoints are unauthenticated and must not reveal paths or hosts.
#[derive(Serialize)]
struct Component {
    status: &'static str,
    backend: &'static str,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    components: BTreeMap<&'static str, Component>,
}

async fn probe<E: std::fmt::Display>(
    name: &str,
    backend: &'static str,
    fut: impl Future<Output = Result<(), E>>,
) -> Component {
    let status = match tokio::time::timeout(PROBE_TIMEOUT, fut).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(component = name, backend, error = %e, "health probe failed");
            "down"
        }
        Err(_) => {
            tracing::warn!(component = name, backend, "health probe timed out");
            "down"
        }
    };
    Component { status, backend }
}

/// Registers `/livez`, `/readyz` and `/healthz` (their state: a
/// [`Readiness`] in the app data).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/livez", web::get().to(livez))
        .route("/readyz", web::get().to(readyz))
        .route("/healthz", web::get().to(healthz));
}

/// `GET /healthz`: 200 when every component answers, 503 otherwise; the
/// body gives each component's status.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "Every component is up", body = Object),
        (status = 503, description = "A component is down", body = Object)))]
pub async fn healthz(ready: web::Data<Readiness>) -> HttpResponse {
    let components = ready.components().await;
    let ok = components.values().all(|c| c.status == "ok");
    let body = Health {
        status: if ok { "ok" } else { "degraded" },
        version: env!("CARGO_PKG_VERSION"),
        components,
    };
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[derive(Serialize)]
struct Live {
    status: &'static str,
}

/// `GET /livez`: 200 while the process serves HTTP; it checks nothing
/// else (a restart would not fix an unreachable database).
#[utoipa::path(get, path = "/livez", tag = "operations",
    responses((status = 200, description = "The process is up", body = Object)))]
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(Live { status: "ok" })
}

/// The body of a ready node.
#[derive(Serialize)]
struct Ready {
    status: &'static str,
    components: Vec<&'static str>,
}

/// A not-ready node's problem, naming the components that are down.
#[derive(Serialize)]
struct NotReady {
    #[serde(flatten)]
    problem: Problem,
    down: Vec<&'static str>,
}

/// `GET /readyz`: 200 when everything this node's roles depend on answers
/// (metadata store, blob store, key provider; a gateway's spool), else
/// 503 `application/problem+json` (`code` `not-ready`) whose `down` names
/// the components, never a host or a path. For load-balancer checks.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready: every dependency answers", body = Object),
        (status = 503, description = "Not ready: `down` names the components", body = super::openapi::Problem,
            content_type = "application/problem+json")))]
pub async fn readyz(ready: web::Data<Readiness>) -> HttpResponse {
    let components = ready.components().await;
    let down: Vec<&'static str> = components
        .iter()
        .filter(|(_, c)| c.status != "ok")
        .map(|(n, _)| *n)
        .collect();
    if down.is_empty() {
        return HttpResponse::Ok().json(Ready {
            status: "ready",
            components: components.keys().copied().collect(),
        });
    }
    let body = NotReady {
        problem: Problem::new(
            503,
            "Service Unavailable",
            "not-ready",
            format!("not ready: {} down", down.join(", ")),
        ),
        down,
    };
    HttpResponse::ServiceUnavailable()
        .content_type(problem::CONTENT_TYPE)
        .json(body)
}
