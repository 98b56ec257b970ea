//! The audit trail: `GET /api/audit` (filtered, paged) and
//! `GET /api/audit/verify` (the hash chain checked end to end, naming
//! every edited, deleted, reordered or truncated event). Both need the
//! `view-audit` permission and read only the caller's tenant. Reading
//! the trail is not itself audited (it holds no recording content);
//! filters are ids and dates, never personal data, so they may sit in
//! the query string.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use insights_core::domain::{AuditAction, AuditQuery, Permission, RecordingId};
use insights_core::store::check_audit_chain;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// Most events per page.
const MAX_PAGE: u32 = 1000;

/// Registers the audit routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/audit", web::get().to(list))
        .route("/api/audit/verify", web::get().to(verify));
}

/// Query string of `GET /api/audit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filters {
    actor: Option<String>,
    action: Option<String>,
    recording_id: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    /// Events after this sequence number (the previous page's `next_after`).
    after: Option<i64>,
    limit: Option<u32>,
}

fn bad(detail: &str) -> ApiError {
    ApiError::BadRequest {
        code: "invalid-filter",
        detail: detail.into(),
    }
}

#[utoipa::path(get, path = "/api/audit", tag = "audit",
    params(
        ("actor" = Option<String>, Query, description = "Account id or oidc:<subject>"),
        ("action" = Option<String>, Query, description = "Audit action, e.g. play"),
        ("recording_id" = Option<String>, Query, description = "Recording id"),
        ("from" = Option<String>, Query, description = "RFC 3339 time, inclusive"),
        ("to" = Option<String>, Query, description = "RFC 3339 time, exclusive"),
        ("after" = Option<i64>, Query, description = "Events after this sequence number"),
        ("limit" = Option<u32>, Query, description = "1..=1000, default 100")),
    responses(
        (status = 200, description = "Events and the next page's `after`", body = Object),
        (status = 400, description = "Invalid filter", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn list(
    p: Principal,
    state: web::Data<AppState>,
    filters: web::Query<Filters>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ViewAudit)?;
    let tenant = p.tenant()?;
    let f = filters.into_inner();
    let action = match f.action.as_deref() {
        None => None,
        Some(a) => Some(
            a.parse::<AuditAction>()
                .map_err(|_| bad("unknown audit action"))?,
        ),
    };
    let recording_id = match f.recording_id.as_deref() {
        None => None,
        Some(r) => Some(
            r.parse::<RecordingId>()
                .map_err(|_| bad("recording_id is not an id"))?,
        ),
    };
    let limit = f.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad("limit must be 1..=1000"));
    }
    let events = state
        .store
        .list_audit(
            tenant,
            &AuditQuery {
                actor: f.actor,
                action,
                recording_id,
                from: f.from,
                to: f.to,
                after_seq: f.after,
                limit,
            },
        )
        .await?;
    let next_after = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({ "events": events, "next_after": next_after })))
}

#[utoipa::path(get, path = "/api/audit/verify", tag = "audit",
    responses(
        (status = 200, description = "The chain report: intact, events, head, problems", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn verify(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ViewAudit)?;
    let tenant = p.tenant()?;
    let report = check_audit_chain(state.store.as_ref(), tenant).await?;
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    Ok(HttpResponse::Ok().json(json!({
        "intact": report.is_intact(),
        "events": report.events,
        "head": report.head.map(|(seq, hash)| json!({ "seq": seq, "hash": hash })),
        "problems": report.problems,
        "summary": problems,
    })))
}
