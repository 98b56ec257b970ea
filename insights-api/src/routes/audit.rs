//! The audit trail: `GET /api/audit` (filtered, paged; oldest first, or
//! newest first with `newest_first=true` and `before`) and
//! `GET /api/audit/verify` (the hash chain checked end to end, naming
//! every edited, deleted, reordered or truncated event). Both need the
//! `view-audit` permission and read only the caller's tenant. Reading
//! the trail is not itself audited (it holds no recording content);
//! filters are ids and dates, never personal data, so they may sit in
//! the query string (the UI turns an e-mail or a name typed as the actor
//! into the account id with `GET /api/people`).
//!
//! `GET /api/people`: who the actor ids of the trail, the access
//! requests and the pending governance changes are: each local account's
//! id, e-mail, role and (when it is linked to a directory user) name. For
//! callers who see other people's actions (`view-audit`,
//! `approve-access`, `manage-users`, `manage-retention`,
//! `manage-legal-holds`, `manage-settings`).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

use insights_core::domain::{
    AuditAction, AuditQuery, DirectoryUser, Permission, Realm, RecordingId, Role, UserId,
};
use insights_core::store::check_audit_chain;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// Most events per page.
const MAX_PAGE: u32 = 1000;

/// Registers the audit routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/audit", web::get().to(list))
        .route("/api/audit/verify", web::get().to(verify))
        .route("/api/people", web::get().to(people));
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
    /// Newest first (`before` pages on).
    newest_first: Option<bool>,
    /// With `newest_first`: events before this sequence number (the
    /// previous page's `next_before`).
    before: Option<i64>,
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
        ("newest_first" = Option<bool>, Query, description = "Newest first; page on with `before`"),
        ("before" = Option<i64>, Query, description = "With newest_first: events before this sequence number"),
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
    if let (Some(from), Some(to)) = (f.from, f.to)
        && from > to
    {
        return Err(bad("\"from\" is later than \"to\""));
    }
    let newest_first = f.newest_first.unwrap_or(false);
    if f.before.is_some() && !newest_first {
        return Err(bad("before pages a newest_first listing"));
    }
    let query = AuditQuery {
        actor: f.actor,
        action,
        recording_id,
        from: f.from,
        to: f.to,
        after_seq: f.after,
        limit,
    };
    let events = if newest_first {
        state
            .store
            .list_audit_newest_first(tenant, &query, f.before)
            .await?
    } else {
        state.store.list_audit(tenant, &query).await?
    };
    let last = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    let (next_after, next_before) = if newest_first {
        (None, last)
    } else {
        (last, None)
    };
    Ok(HttpResponse::Ok()
        .json(json!({ "events": events, "next_after": next_after, "next_before": next_before })))
}

/// One person of `GET /api/people`.
#[derive(Debug, Serialize)]
struct Person {
    /// The actor id the trail shows (the account id).
    id: String,
    email: String,
    /// The linked directory user's name, if any.
    name: Option<String>,
    role: Role,
    active: bool,
}

#[utoipa::path(get, path = "/api/people", tag = "audit",
    responses(
        (status = 200, description = "The tenant's local accounts: id, e-mail, name, role", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn people(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    const SEE_OTHERS: [Permission; 6] = [
        Permission::ViewAudit,
        Permission::ApproveAccess,
        Permission::ManageUsers,
        Permission::ManageRetention,
        Permission::ManageLegalHolds,
        Permission::ManageSettings,
    ];
    if !SEE_OTHERS.iter().any(|x| p.has(*x)) {
        return Err(ApiError::Forbidden {
            code: "permission-denied",
        });
    }
    let tenant = p.tenant()?;
    let accounts = state.store.list_accounts(Realm::Tenant(tenant)).await?;
    let directory: HashMap<UserId, DirectoryUser> =
        if accounts.iter().any(|a| a.directory_user_id.is_some()) {
            state
                .store
                .list_directory_users(tenant)
                .await?
                .into_iter()
                .map(|u| (u.id, u))
                .collect()
        } else {
            HashMap::new()
        };
    let items: Vec<Person> = accounts
        .into_iter()
        .map(|a| Person {
            id: a.id.to_string(),
            name: a
                .directory_user_id
                .and_then(|u| directory.get(&u))
                .and_then(|u| {
                    u.display_name.clone().or_else(|| {
                        let n = [u.first_name.as_deref(), u.last_name.as_deref()]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join(" ");
                        (!n.is_empty()).then_some(n)
                    })
                }),
            email: a.email,
            role: a.role,
            active: a.active,
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
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
