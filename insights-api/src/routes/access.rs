//! Four-eyes access (issue 4, part 6; issue 13). When a tenant turns on
//! `four_eyes_playback`, a supervisor plays or downloads a recording's
//! media, reads its transcript, its insights (summary, key points, action
//! items) or its search snippets only with a second person's approval:
//!
//! * `POST /api/recordings/{id}/access-requests` — the supervisor asks,
//!   with a reason (free text or case number);
//! * `GET /api/access-requests` — approvers see the requests for
//!   recordings within their own visibility scope, anyone else only
//!   their own;
//! * `POST /api/access-requests/{id}/approve` and `…/deny` — someone with
//!   `approve-access` who may see the recording, never the requester,
//!   decides; an approval is valid for one recording, for the requester
//!   only, for a limited time (default [`DEFAULT_VALID_MINUTES`]).
//!
//! Every step is audited; the playback's own audit event names the
//! approval it used. A request or decision about a recording the caller
//! may not see answers `404`, like everywhere else.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Duration;
use insights_core::domain::{
    AccessDecision, AccessRequest, AccessRequestId, AccessRequestStatus, AuditAction, Permission,
    RecordingId, Role, TenantId, TenantSettings,
};
use insights_core::store::StoreError;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::recordings::{Audited, MAX_REASON, audit, visible};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// How long an approval lets the requester play, unless the approver says.
pub const DEFAULT_VALID_MINUTES: i64 = 60;
/// The longest window an approver may grant (one working day).
pub const MAX_VALID_MINUTES: i64 = 8 * 60;

/// Registers the four-eyes routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/recordings/{id}/access-requests",
        web::post().to(create),
    )
    .route("/api/access-requests", web::get().to(list))
    .route("/api/access-requests/{id}/approve", web::post().to(approve))
    .route("/api/access-requests/{id}/deny", web::post().to(deny));
}

/// Whether `p` needs an approval to play in this tenant.
fn needs_approval(p: &Principal, four_eyes: bool) -> bool {
    four_eyes && p.role == Role::Supervisor
}

/// Called before any content of `recording` (media, transcript,
/// insights, snippets) is sent: `Ok(Some(id))` with
/// the approval used, `Ok(None)` when none is needed, else
/// `403 approval-required`.
pub(super) async fn four_eyes_gate(
    state: &AppState,
    p: &Principal,
    tenant: TenantId,
    settings: &TenantSettings,
    recording: RecordingId,
) -> Result<Option<AccessRequestId>, ApiError> {
    if !needs_approval(p, settings.four_eyes_playback) {
        return Ok(None);
    }
    let actor = p.actor();
    let now = insights_core::domain::now();
    let approvals = state
        .store
        .list_access_requests(tenant, Some(AccessRequestStatus::Approved), Some(&actor))
        .await?;
    approvals
        .iter()
        .find(|r| r.grants(&actor, recording, now))
        .map(|r| Some(r.id))
        .ok_or(ApiError::Forbidden {
            code: "approval-required",
        })
}

/// Body of `POST /api/recordings/{id}/access-requests`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccessRequest {
    /// Why access is needed: free text or a case number (1–500 characters).
    pub reason: String,
}

/// Body of the approve and deny calls.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Decision {
    /// A note for the requester and the audit trail (≤ 500 characters).
    pub note: Option<String>,
    /// Approvals only: minutes the approval stays valid (1–480, default 60).
    pub valid_minutes: Option<i64>,
}

/// Query of `GET /api/access-requests`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `pending`, `approved` or `denied`.
    pub status: Option<String>,
}

fn bad(code: &'static str, detail: &str) -> ApiError {
    ApiError::BadRequest {
        code,
        detail: detail.to_owned(),
    }
}

/// `POST /api/recordings/{id}/access-requests`: ask for approval to play.
#[utoipa::path(post, path = "/api/recordings/{id}/access-requests", tag = "four-eyes",
    params(("id" = String, Path, description = "Recording id")),
    request_body = NewAccessRequest,
    responses(
        (status = 201, description = "The pending request", body = Object),
        (status = 400, description = "Missing or too long reason", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such recording (or not visible)", body = super::openapi::Problem),
        (status = 409, description = "Four-eyes playback is off for this tenant", body = super::openapi::Problem)))]
async fn create(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<NewAccessRequest>,
) -> Result<HttpResponse, ApiError> {
    if !p.has(Permission::ViewTranscript) {
        p.require(Permission::Play)?;
    }
    let tenant = p.tenant()?;
    let rec = visible(&state, &p, tenant, &path).await?;
    let reason = body.into_inner().reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(bad("bad-reason", "reason must be 1-500 characters"));
    }
    let settings = state.store.get_tenant(tenant).await?.settings;
    if !settings.four_eyes_playback {
        return Err(ApiError::Conflict {
            code: "four-eyes-off",
            detail: "this tenant does not require approval to play".into(),
        });
    }
    let r = AccessRequest::new(
        tenant,
        rec.id,
        p.actor(),
        reason.clone(),
        insights_core::domain::now(),
    );
    state.store.create_access_request(tenant, &r).await?;
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::AccessRequest,
            recording: Some(rec.id),
            reason: Some(reason),
            details: json!({ "request": r.id }),
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(r))
}

/// `GET /api/access-requests`: approvers see the requests for recordings
/// within their scope, others their own.
#[utoipa::path(get, path = "/api/access-requests", tag = "four-eyes",
    params(ListQuery),
    responses(
        (status = 200, description = "Requests, newest first", body = Object),
        (status = 400, description = "Unknown status", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn list(
    p: Principal,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    // Who may have requests: approvers, players, and supervisors who
    // read transcripts (four-eyes covers those too).
    let may_request = p.has(Permission::ViewTranscript) && p.role == Role::Supervisor;
    if !p.has(Permission::ApproveAccess) && !may_request {
        p.require(Permission::Play)?;
    }
    let tenant = p.tenant()?;
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<AccessRequestStatus>()
                .map_err(|_| bad("bad-status", "status must be pending, approved or denied"))?,
        ),
    };
    let actor = p.actor();
    let mine_only = (!p.has(Permission::ApproveAccess)).then_some(actor.as_str());
    let mut items = state
        .store
        .list_access_requests(tenant, status, mine_only)
        .await?;
    if mine_only.is_none() {
        // An approver lists only what they could decide: requests for
        // recordings within their own scope (the reason and requester of
        // any other request are not theirs to see).
        let users = super::recordings::visible_users(&state, tenant, &p).await?;
        if let Some(users) = users {
            let mut mine = Vec::with_capacity(items.len());
            for r in items {
                match state.store.get_recording(tenant, r.recording_id).await {
                    Ok(rec) if super::recordings::may_see(Some(&users), &rec) => mine.push(r),
                    Ok(_) | Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            items = mine;
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// `POST /api/access-requests/{id}/approve`.
#[utoipa::path(post, path = "/api/access-requests/{id}/approve", tag = "four-eyes",
    params(("id" = String, Path, description = "Access request id")),
    request_body(content = Decision, description = "Optional note and validity"),
    responses(
        (status = 200, description = "The approved request", body = Object),
        (status = 400, description = "Bad note or validity", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted, or the caller's own request", body = super::openapi::Problem),
        (status = 404, description = "No such request (or its recording is not visible)", body = super::openapi::Problem),
        (status = 409, description = "Already decided", body = super::openapi::Problem)))]
async fn approve(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Option<web::Json<Decision>>,
) -> Result<HttpResponse, ApiError> {
    decide(p, state, req, path, body, true).await
}

/// `POST /api/access-requests/{id}/deny`.
#[utoipa::path(post, path = "/api/access-requests/{id}/deny", tag = "four-eyes",
    params(("id" = String, Path, description = "Access request id")),
    request_body(content = Decision, description = "Optional note"),
    responses(
        (status = 200, description = "The denied request", body = Object),
        (status = 400, description = "Bad note", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted, or the caller's own request", body = super::openapi::Problem),
        (status = 404, description = "No such request (or its recording is not visible)", body = super::openapi::Problem),
        (status = 409, description = "Already decided", body = super::openapi::Problem)))]
async fn deny(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Option<web::Json<Decision>>,
) -> Result<HttpResponse, ApiError> {
    decide(p, state, req, path, body, false).await
}

async fn decide(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Option<web::Json<Decision>>,
    approve: bool,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ApproveAccess)?;
    let tenant = p.tenant()?;
    let id = AccessRequestId(path.parse().map_err(|_| ApiError::NotFound)?);
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let note = body
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_REASON)
    {
        return Err(bad("bad-note", "note must be at most 500 characters"));
    }
    let minutes = body.valid_minutes.unwrap_or(DEFAULT_VALID_MINUTES);
    if !(1..=MAX_VALID_MINUTES).contains(&minutes) {
        return Err(bad("bad-validity", "valid_minutes must be 1-480"));
    }
    let current = state.store.get_access_request(tenant, id).await?;
    // The approver must be allowed to see the recording themselves.
    visible(&state, &p, tenant, &current.recording_id.to_string()).await?;
    let actor = p.actor();
    if current.requested_by == actor {
        return Err(ApiError::Forbidden {
            code: "own-request",
        });
    }
    let at = insights_core::domain::now();
    let decision = AccessDecision {
        approve,
        by: actor,
        note,
        at,
        expires_at: at + Duration::minutes(minutes),
    };
    let decided = match state
        .store
        .decide_access_request(tenant, id, &decision)
        .await
    {
        Ok(r) => r,
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::Conflict {
                code: "already-decided",
                detail: "the request was already approved or denied".into(),
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
            action: AuditAction::AccessDecision,
            recording: Some(decided.recording_id),
            reason: None,
            details: json!({
                "request": decided.id,
                "approved": approve,
                "expires_at": decided.expires_at,
            }),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(decided))
}
