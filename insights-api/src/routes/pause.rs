//! Pause and resume a live recording (issue 17 §1):
//! `POST /api/recordings/{id}/pause` and `POST /api/recordings/{id}/resume`
//! (`pause-recording`). A `user` (scope: own recordings) may pause only
//! calls they are a recorded user of; anyone else within their
//! visibility scope (a supervisor's users or groups, a tenant admin's
//! tenant). A recording outside the caller's scope answers `404`, like a
//! missing one.
//!
//! The API node and the gateway node holding the call are not the same
//! process in a cluster, so the request travels through the metadata
//! store: a pause opens a gap row of the recording (`recording_gaps`), a
//! resume marks it resume-requested; the gateway polls its live calls'
//! open gap, stops (or resumes) writing media, tells Teams
//! (`updateRecordingStatus` `notRecording` / `recording`) and stamps the
//! gap's effective start (end). The request waits up to
//! [`APPLY_WAIT`] for the gateway: `200` once applied (media off, or on
//! again), `202` when the gateway has not applied it yet (it will).
//!
//! Both are audited (`recording-pause`, `recording-resume`) with the
//! recording and the gap id only.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use insights_core::domain::{
    AuditAction, Permission, Recording, RecordingGap, RecordingStatus, TenantId, VisibilityScope,
    now,
};
use insights_core::store::StoreError;
use serde_json::json;

use super::recordings::{Audited, audit, visible};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// How long a request waits for the gateway to apply it.
pub const APPLY_WAIT: Duration = Duration::from_secs(5);
/// How often it looks meanwhile.
const APPLY_POLL: Duration = Duration::from_millis(100);

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/recordings/{id}/pause", web::post().to(pause))
        .route("/api/recordings/{id}/resume", web::post().to(resume));
}

/// The live recording the caller may pause or resume: permission (`403`),
/// tenant and scope (`404`), a `user` only their own recorded calls
/// (`403 not-recorded-user`), live (`409 not-live`).
async fn pausable(
    state: &AppState,
    p: &Principal,
    tenant: TenantId,
    id: &str,
) -> Result<Recording, ApiError> {
    p.require(Permission::PauseRecording)?;
    let rec = visible(state, p, tenant, id).await?;
    if p.scope == VisibilityScope::OwnRecordings {
        let mine = rec.participants.iter().any(|x| {
            x.recorded_user
                && x.directory_user_id.is_some()
                && x.directory_user_id == p.directory_user_id
        });
        if !mine {
            return Err(ApiError::Forbidden {
                code: "not-recorded-user",
            });
        }
    }
    if rec.status != RecordingStatus::Recording || rec.ended_at.is_some() {
        return Err(ApiError::Conflict {
            code: "not-live",
            detail: "the recording is not live".into(),
        });
    }
    // SIPREC sessions (call ids `siprec:…`) have no pause: the SBC, not
    // Teams, decides what it forks to the recorder.
    if rec
        .external_call_id
        .as_deref()
        .is_some_and(|c| c.starts_with("siprec:"))
    {
        return Err(ApiError::Conflict {
            code: "not-pausable",
            detail: "only Teams recordings can be paused".into(),
        });
    }
    Ok(rec)
}

/// Waits until `applied` says the gateway applied the gap (or
/// [`APPLY_WAIT`] passed); the gap as last seen and whether it was.
async fn wait_applied(
    state: &AppState,
    tenant: TenantId,
    mut gap: RecordingGap,
    applied: impl Fn(&Option<RecordingGap>) -> bool,
) -> Result<(RecordingGap, bool), ApiError> {
    let deadline = tokio::time::Instant::now() + APPLY_WAIT;
    loop {
        let current = state
            .store
            .current_recording_gap(tenant, gap.recording_id)
            .await?;
        if applied(&current) {
            // Closed gaps are no longer current: read it back.
            if let Some(g) = state
                .store
                .recording_gaps(tenant, gap.recording_id)
                .await?
                .into_iter()
                .find(|g| g.id == gap.id)
            {
                gap = g;
            }
            return Ok((gap, true));
        }
        if let Some(g) = current.filter(|g| g.id == gap.id) {
            gap = g;
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok((gap, false));
        }
        tokio::time::sleep(APPLY_POLL).await;
    }
}

fn answer(gap: &RecordingGap, applied: bool) -> HttpResponse {
    let body = json!({ "gap": gap, "applied": applied });
    if applied {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Accepted().json(body)
    }
}

/// `POST /api/recordings/{id}/pause`.
#[utoipa::path(post, path = "/api/recordings/{id}/pause", tag = "recordings",
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 200, description = "Paused: the gateway stopped writing media and told Teams `notRecording`. `{\"gap\": {id, recording_id, reason: \"paused\", requested_at, requested_by, started_at, resume_requested_at, resumed_by, ended_at}, \"applied\": true}`", body = Object),
        (status = 202, description = "Asked for; the gateway holding the call has not applied it yet (`applied: false`)", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "No `pause-recording` permission, or (a `user`) not a recorded user of the call", body = super::openapi::Problem),
        (status = 404, description = "No such recording in the caller's tenant and scope", body = super::openapi::Problem),
        (status = 409, description = "The recording is not live (`not-live`), not a Teams recording (`not-pausable`) or already paused (`already-paused`)", body = super::openapi::Problem)))]
async fn pause(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = p.tenant()?;
    let rec = pausable(&state, &p, tenant, &path).await?;
    let gap = RecordingGap::pause(tenant, rec.id, p.actor(), now());
    let gap = match state.store.open_recording_gap(tenant, &gap).await {
        Ok(g) => g,
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::Conflict {
                code: "already-paused",
                detail: "the recording is paused already".into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::RecordingPause,
            recording: Some(rec.id),
            reason: None,
            details: json!({ "gap_id": gap.id }),
        },
    )
    .await?;
    let id = gap.id;
    let (gap, applied) = wait_applied(&state, tenant, gap, |g| {
        g.as_ref()
            .is_some_and(|g| g.id == id && g.started_at.is_some())
    })
    .await?;
    Ok(answer(&gap, applied))
}

/// `POST /api/recordings/{id}/resume`.
#[utoipa::path(post, path = "/api/recordings/{id}/resume", tag = "recordings",
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 200, description = "Resumed: Teams acknowledged `recording` and the gateway writes media again; the gap is closed (`ended_at`). `{\"gap\": {…}, \"applied\": true}`", body = Object),
        (status = 202, description = "Asked for; the gateway holding the call has not resumed yet (`applied: false`)", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "No `pause-recording` permission, or (a `user`) not a recorded user of the call", body = super::openapi::Problem),
        (status = 404, description = "No such recording in the caller's tenant and scope", body = super::openapi::Problem),
        (status = 409, description = "The recording is not live (`not-live`), not a Teams recording (`not-pausable`) or not paused (`not-paused`)", body = super::openapi::Problem)))]
async fn resume(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = p.tenant()?;
    let rec = pausable(&state, &p, tenant, &path).await?;
    let gap = match state
        .store
        .request_gap_end(tenant, rec.id, &p.actor(), now())
        .await
    {
        Ok(g) => g,
        Err(StoreError::NotFound) => {
            return Err(ApiError::Conflict {
                code: "not-paused",
                detail: "the recording is not paused".into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::RecordingResume,
            recording: Some(rec.id),
            reason: None,
            details: json!({ "gap_id": gap.id }),
        },
    )
    .await?;
    let id = gap.id;
    let (gap, applied) = wait_applied(&state, tenant, gap, |g| {
        g.as_ref().is_none_or(|g| g.id != id)
    })
    .await?;
    Ok(answer(&gap, applied))
}
