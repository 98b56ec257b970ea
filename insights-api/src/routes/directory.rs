//! The tenant's directory users (synchronised from Entra ID through
//! Microsoft Graph, `gdpr_tools::directory`), `manage-users` only:
//!
//! * `GET /api/directory/users` → `{"items": [DirectoryUser]}`, active and
//!   inactive alike (ordered by last name, first name, id);
//! * `POST /api/directory/sync` → `200` with the run's `SyncReport`
//!   (`{added, updated, deactivated, pages, throttled_retries, delta, participants_linked}`);
//!   `409 directory-sync-not-configured` when `[directory]` is not set up
//!   in this process, `503 directory-sync-failed` when Graph or the token
//!   endpoint failed (the cause is logged), `409 no-directory-tenant` when the tenant has no
//!   directory tenant id, `409 directory-sync-running` while a sync of the
//!   tenant (scheduled, or asked for on any node) holds its lease;
//! * `DELETE /api/directory/users/{id}` → `204`; `409 user-active` while
//!   the user is still in the directory (only users that left may be
//!   deleted, by an admin, as the seed describes).
//!
//! Sync runs and deletions are audited (`user-change`, ids and counts
//! only). Directory data is corrected at the source directory, never
//! here: there is no PUT.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use gdpr_tools::directory::{DirectoryError, DirectorySync};
use insights_core::domain::{AuditAction, Permission, UserId};
use insights_core::store::StoreError;
use serde_json::json;

use super::recordings::{Audited, audit};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// The directory sync a process runs, registered as app data by whoever
/// starts the API with `[directory]` configured (`insights serve`).
#[derive(Clone)]
pub struct DirectorySyncHandle(pub Arc<DirectorySync>);

/// Registers the directory routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/directory/users", web::get().to(list_users))
        .route("/api/directory/sync", web::post().to(sync))
        .route("/api/directory/users/{id}", web::delete().to(delete_user));
}

/// `GET /api/directory/users`.
#[utoipa::path(get, path = "/api/directory/users", tag = "directory",
    responses(
        (status = 200, description = "The tenant's directory users, active and inactive: {\"items\": [DirectoryUser]}", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn list_users(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageUsers)?;
    let tenant = p.tenant()?;
    let items = state.store.list_directory_users(tenant).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// `POST /api/directory/sync`.
#[utoipa::path(post, path = "/api/directory/sync", tag = "directory",
    responses(
        (status = 200, description = "The run's report: {added, updated, deactivated, pages, throttled_retries, delta, participants_linked}", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 409, description = "Directory sync is not configured (`directory-sync-not-configured`), the tenant has no directory tenant id (`no-directory-tenant`), or a sync of the tenant is already running on some node (`directory-sync-running`)", body = super::openapi::Problem),
        (status = 503, description = "Graph or the token endpoint failed", body = super::openapi::Problem)))]
async fn sync(
    p: Principal,
    state: web::Data<AppState>,
    handle: Option<web::Data<DirectorySyncHandle>>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageUsers)?;
    let tenant = p.tenant()?;
    let Some(handle) = handle else {
        return Err(ApiError::Conflict {
            code: "directory-sync-not-configured",
            detail: "directory sync is not configured on this server ([directory])".into(),
        });
    };
    let t = state.store.get_tenant(tenant).await?;
    match handle.0.sync_tenant(&t, &p.actor()).await {
        Ok(report) => Ok(HttpResponse::Ok().json(report)),
        Err(DirectoryError::NoDirectoryTenant(_)) => Err(ApiError::Conflict {
            code: "no-directory-tenant",
            detail: "the tenant has no directory (Entra) tenant id".into(),
        }),
        Err(DirectoryError::Busy) => Err(ApiError::Conflict {
            code: "directory-sync-running",
            detail: "a directory sync of this tenant is already running; try again shortly".into(),
        }),
        Err(DirectoryError::Store(e)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(tenant = %tenant, error = %e, "directory sync failed");
            Err(ApiError::Unavailable {
                code: "directory-sync-failed",
            })
        }
    }
}

/// `DELETE /api/directory/users/{id}`.
#[utoipa::path(delete, path = "/api/directory/users/{id}", tag = "directory",
    params(("id" = String, Path, description = "Directory user id (UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a UUID", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such user", body = super::openapi::Problem),
        (status = 409, description = "The user is still active in the directory", body = super::openapi::Problem)))]
async fn delete_user(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageUsers)?;
    let tenant = p.tenant()?;
    let id = uuid::Uuid::try_parse(&id)
        .map(UserId)
        .map_err(|_| ApiError::BadRequest {
            code: "invalid-id",
            detail: "the id is not a UUID".into(),
        })?;
    match state.store.delete_directory_user(tenant, id).await {
        Ok(()) => {}
        Err(StoreError::Refused(_)) => {
            return Err(ApiError::Conflict {
                code: "user-active",
                detail: "the user is still active in the directory; only users that left it \
                         can be deleted"
                    .into(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::UserChange,
            recording: None,
            reason: None,
            details: json!({ "directory_user_deleted": id }),
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
