use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::AppState;

/// How long one component may take to answer before it counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One component's state. The cause of a failure goes to the logs only:
/// this endpoint is unauthenticated and must not reveal paths or hosts.
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
    backend: &'static str,
    fut: impl Future<Output = Result<(), E>>,
) -> Component {
    let status = match tokio::time::timeout(PROBE_TIMEOUT, fut).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(component = backend, error = %e, "health probe failed");
            "down"
        }
        Err(_) => {
            tracing::warn!(component = backend, "health probe timed out");
            "down"
        }
    };
    Component { status, backend }
}

/// `GET /healthz`: 200 when every component answers, 503 otherwise; the
/// body gives each component's status.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "Every component is up", body = Object),
        (status = 503, description = "A component is down", body = Object)))]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let (store, blob, keys) = tokio::join!(
        probe(state.store.backend(), state.store.health()),
        probe(state.blobs.backend(), state.blobs.health()),
        probe(state.keys.backend(), state.keys.health()),
    );
    let mut components = BTreeMap::new();
    components.insert("store", store);
    components.insert("blob", blob);
    components.insert("keys", keys);
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
