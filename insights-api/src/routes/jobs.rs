//! Job status of a recording's AI pipeline: `GET
//! /api/recordings/{id}/jobs`. Whoever may read the recording's
//! transcript may see how its making went (state, attempts, the
//! dead-letter reason); a recording of another tenant or outside the
//! caller's scope answers `404` like a missing one. Job rows hold no
//! content, so reading them is not audited and needs no access reason.

use actix_web::{HttpResponse, web};
use insights_core::domain::{Job, Permission};
use serde_json::json;

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// Registers the job routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/recordings/{id}/jobs", web::get().to(list));
}

/// What a caller sees of a job (not which worker host holds it).
fn view(j: &Job) -> serde_json::Value {
    json!({
        "id": j.id,
        "kind": j.kind,
        "state": j.state,
        "attempts": j.attempts,
        "max_attempts": j.max_attempts,
        "run_after": j.run_after,
        "last_error": j.last_error,
        "created_at": j.created_at,
        "updated_at": j.updated_at,
        "finished_at": j.finished_at,
    })
}

/// `GET /api/recordings/{id}/jobs`.
#[utoipa::path(get, path = "/api/recordings/{id}/jobs", tag = "recordings",
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 200, description = "The recording's pipeline jobs, oldest first: kind (transcribe, recap), state (queued, running, succeeded, dead), attempts, and the reason of the last failure"),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such recording in the caller's tenant and scope", body = super::openapi::Problem)))]
pub(super) async fn list(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ViewTranscript)?;
    let tenant = p.tenant()?;
    let rec = super::recordings::visible(&state, &p, tenant, &path).await?;
    let jobs = state.store.list_jobs(tenant, rec.id).await?;
    let jobs: Vec<_> = jobs.iter().map(view).collect();
    Ok(HttpResponse::Ok().json(json!({ "recording_id": rec.id, "jobs": jobs })))
}
