//! The completeness reconciliation (issue 17 §3), `view-completeness`
//! (tenant admins and compliance officers):
//!
//! * `GET /api/completeness?from&to` → the reconciled calls that started
//!   in the period with totals, coverage per day, the tenant's threshold
//!   and its latest runs; `from`/`to` are RFC 3339 times or `YYYY-MM-DD`
//!   dates (UTC; `to` exclusive; default: the last 7 days, at most 31);
//! * `GET /api/completeness/export.xlsx?from&to` → the same as a workbook;
//! * `POST /api/completeness/runs` `{from, to}` → runs the reconciliation
//!   of the caller's tenant for the period now and answers the run;
//!   `409 completeness-not-configured` without Graph (`[directory]`),
//!   `409 no-directory-tenant`, `409 completeness-running` while a run of
//!   the tenant holds its lease, `503 completeness-failed` when Graph
//!   failed (the cause is logged);
//! * `PUT /api/completeness/threshold` `{threshold_percent}` (also
//!   `manage-settings`) → the tenant's alert threshold.
//!
//! Every read, export, run and change is audited (ids and counts only).

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use gdpr_tools::completeness::{
    CompletenessError, MAX_PERIOD_DAYS, Reconciler, RunSummary, per_day, xlsx,
};
use insights_core::domain::{
    AuditAction, CompletenessThreshold, CompletenessTotals, CompletenessTrigger, Permission, now,
};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::recordings::{Audited, audit};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// The reconciler a process runs, registered as app data by whoever
/// starts the API with `[directory]` configured (`insights serve`).
#[derive(Clone)]
pub struct CompletenessHandle(pub Arc<Reconciler>);

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/completeness", web::get().to(report))
        .route("/api/completeness/export.xlsx", web::get().to(export))
        .route("/api/completeness/runs", web::post().to(run))
        .route("/api/completeness/threshold", web::put().to(threshold));
}

/// The period of a request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// Start (RFC 3339 or `YYYY-MM-DD`, UTC), inclusive.
    pub from: Option<String>,
    /// End (RFC 3339 or `YYYY-MM-DD`, UTC), exclusive.
    pub to: Option<String>,
}

/// `POST /api/completeness/runs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// Start (RFC 3339 or `YYYY-MM-DD`, UTC), inclusive.
    pub from: String,
    /// End (RFC 3339 or `YYYY-MM-DD`, UTC), exclusive.
    pub to: String,
}

/// `PUT /api/completeness/threshold`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdBody {
    /// Coverage below this percentage (0–100) raises the alert.
    pub threshold_percent: f64,
}

fn bad(detail: &str) -> ApiError {
    ApiError::BadRequest {
        code: "invalid-period",
        detail: detail.into(),
    }
}

/// A time: RFC 3339, or a date (its midnight, UTC).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        })
}

fn period(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = match to {
        Some(s) => parse_time(s).ok_or_else(|| bad("`to` is not an RFC 3339 time or a date"))?,
        None => now(),
    };
    let from = match from {
        Some(s) => parse_time(s).ok_or_else(|| bad("`from` is not an RFC 3339 time or a date"))?,
        None => to - Duration::days(7),
    };
    if to <= from || to - from > Duration::days(MAX_PERIOD_DAYS) {
        return Err(bad("the period must be non-empty and at most 31 days"));
    }
    Ok((from, to))
}

/// `GET /api/completeness`.
#[utoipa::path(get, path = "/api/completeness", tag = "completeness",
    params(("from" = Option<String>, Query, description = "Start (RFC 3339 or YYYY-MM-DD, UTC)"),
           ("to" = Option<String>, Query, description = "End, exclusive (RFC 3339 or YYYY-MM-DD, UTC)")),
    responses(
        (status = 200, description = "{from, to, totals, days: [{day, totals}], calls: [CallCompleteness], threshold_permille, configured, runs: [run summary]}", body = Object),
        (status = 400, description = "Bad period", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn report(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<PeriodQuery>,
    handle: Option<web::Data<CompletenessHandle>>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ViewCompleteness)?;
    let tenant = p.tenant()?;
    let (from, to) = period(q.from.as_deref(), q.to.as_deref())?;
    let calls = state
        .store
        .list_completeness_calls(tenant, from, to)
        .await?;
    let runs = state.store.list_completeness_runs(tenant, 10).await?;
    let threshold = match &handle {
        Some(h) => h.0.threshold(tenant).await?,
        None => state
            .store
            .completeness_threshold(tenant)
            .await?
            .map(|s| s.threshold_permille)
            .unwrap_or_else(|| {
                insights_core::config::CompletenessConfig::default().threshold_permille()
            }),
    };
    let totals = CompletenessTotals::of(&calls);
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::CompletenessView,
            recording: None,
            reason: None,
            details: json!({ "from": from, "to": to, "calls": totals.calls }),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "from": from,
        "to": to,
        "totals": totals,
        "days": per_day(&calls),
        "calls": calls,
        "threshold_permille": threshold,
        "configured": handle.is_some(),
        "runs": runs.iter().map(RunSummary::of).collect::<Vec<_>>(),
    })))
}

/// `GET /api/completeness/export.xlsx`.
#[utoipa::path(get, path = "/api/completeness/export.xlsx", tag = "completeness",
    params(("from" = Option<String>, Query, description = "Start (RFC 3339 or YYYY-MM-DD, UTC)"),
           ("to" = Option<String>, Query, description = "End, exclusive (RFC 3339 or YYYY-MM-DD, UTC)")),
    responses(
        (status = 200, description = "The report as .xlsx (Summary and Calls sheets)", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 400, description = "Bad period", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn export(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<PeriodQuery>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ViewCompleteness)?;
    let tenant = p.tenant()?;
    let (from, to) = period(q.from.as_deref(), q.to.as_deref())?;
    let calls = state
        .store
        .list_completeness_calls(tenant, from, to)
        .await?;
    let n = calls.len();
    let bytes = web::block(move || xlsx::workbook(from, to, &calls))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("workbook task: {e}")))?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("workbook: {e}")))?;
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::CompletenessView,
            recording: None,
            reason: None,
            details: json!({ "from": from, "to": to, "calls": n, "format": "xlsx" }),
        },
    )
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        .insert_header((
            "content-disposition",
            format!(
                "attachment; filename=\"completeness-{}-{}.xlsx\"",
                from.format("%Y%m%d"),
                to.format("%Y%m%d")
            ),
        ))
        .body(bytes))
}

/// `POST /api/completeness/runs`.
#[utoipa::path(post, path = "/api/completeness/runs", tag = "completeness",
    request_body = RunBody,
    responses(
        (status = 200, description = "The run: {run_id, from, to, trigger, totals, call_records, pstn_rows, threshold_permille, below_threshold}", body = Object),
        (status = 400, description = "Bad period", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 409, description = "Not configured (`completeness-not-configured`), no directory tenant id (`no-directory-tenant`), or a run of the tenant is already going on (`completeness-running`)", body = super::openapi::Problem),
        (status = 503, description = "Graph or the token endpoint failed", body = super::openapi::Problem)))]
async fn run(
    p: Principal,
    state: web::Data<AppState>,
    body: web::Json<RunBody>,
    handle: Option<web::Data<CompletenessHandle>>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ViewCompleteness)?;
    let tenant = p.tenant()?;
    let (from, to) = period(Some(&body.from), Some(&body.to))?;
    let Some(handle) = handle else {
        return Err(ApiError::Conflict {
            code: "completeness-not-configured",
            detail: "the reconciliation needs Microsoft Graph: [directory] is not configured on \
                     this server"
                .into(),
        });
    };
    let t = state.store.get_tenant(tenant).await?;
    match handle
        .0
        .run_tenant(&t, from, to, CompletenessTrigger::OnDemand, &p.actor())
        .await
    {
        Ok(run) => Ok(HttpResponse::Ok().json(RunSummary::of(&run))),
        Err(CompletenessError::NoDirectoryTenant(_)) => Err(ApiError::Conflict {
            code: "no-directory-tenant",
            detail: "the tenant has no directory (Entra) tenant id".into(),
        }),
        Err(CompletenessError::Busy) => Err(ApiError::Conflict {
            code: "completeness-running",
            detail: "a reconciliation of this tenant is already running; try again shortly".into(),
        }),
        Err(CompletenessError::BadPeriod) => Err(bad("the period must be at most 31 days")),
        Err(CompletenessError::Store(e)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(tenant = %tenant, error = %e, "completeness reconciliation failed");
            Err(ApiError::Unavailable {
                code: "completeness-failed",
            })
        }
    }
}

/// `PUT /api/completeness/threshold`.
#[utoipa::path(put, path = "/api/completeness/threshold", tag = "completeness",
    request_body = ThresholdBody,
    responses(
        (status = 200, description = "{threshold_permille}", body = Object),
        (status = 400, description = "Not 0-100", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn threshold(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ThresholdBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ViewCompleteness)?;
    p.require(Permission::ManageSettings)?;
    let tenant = p.tenant()?;
    if !(0.0..=100.0).contains(&body.threshold_percent) {
        return Err(ApiError::BadRequest {
            code: "invalid-threshold",
            detail: "threshold_percent must be 0-100".into(),
        });
    }
    let permille = (body.threshold_percent * 10.0).round() as u32;
    state
        .store
        .put_completeness_threshold(
            tenant,
            &CompletenessThreshold {
                tenant_id: tenant,
                threshold_permille: permille,
                updated_at: now(),
                updated_by: p.actor(),
            },
        )
        .await?;
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::SettingsChange,
            recording: None,
            reason: None,
            details: json!({ "completeness_threshold_permille": permille }),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "threshold_permille": permille })))
}
