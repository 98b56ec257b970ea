//! Tenant administration: the tenant's settings and its security
//! profiles.
//!
//! * `GET|PUT /api/settings` (`manage-settings`): the switches that change
//!   how content may be used — cloud AI, the media-deletion waiver,
//!   reason for access, four-eyes playback. Every change is audited with
//!   the names of the switches that changed and their new values.
//! * `GET /api/security-profiles`, `POST /api/security-profiles`,
//!   `PUT /api/security-profiles/{id}` (`manage-users`): named sets of
//!   permissions and a visibility scope that accounts are assigned to.
//!   A profile is checked by `SecurityProfile::validate` (a
//!   platform-operator profile can never reveal content); every change is
//!   audited as a policy change.
//!
//! Nothing here reads recording content, so nothing here is refused to a
//! tenant admin for lack of a content permission; operators have no
//! tenant and get `403 tenant-required`.

use actix_web::{HttpRequest, HttpResponse, web};
use insights_core::domain::{
    AuditAction, Permission, Role, SecurityProfile, SecurityProfileId, TenantSettings,
    VisibilityScope,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::recordings::{Audited, audit};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// Longest profile name (characters).
const MAX_NAME: usize = 100;

/// Registers the administration routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/settings", web::get().to(get_settings))
        .route("/api/settings", web::put().to(put_settings))
        .route("/api/security-profiles", web::get().to(list_profiles))
        .route("/api/security-profiles", web::post().to(create_profile))
        .route(
            "/api/security-profiles/{id}",
            web::put().to(replace_profile),
        );
}

/// The tenant's settings (every switch must be given on `PUT`).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Cloud AI providers may receive this tenant's media and transcripts.
    pub cloud_ai_enabled: bool,
    /// The customer signed the waiver that allows immediate deletion of
    /// media on an erasure request.
    pub media_deletion_waiver: bool,
    /// Play, download and transcript view require a stated reason.
    pub require_access_reason: bool,
    /// A supervisor needs a second person's approval before playing.
    pub four_eyes_playback: bool,
}

impl From<&TenantSettings> for Settings {
    fn from(s: &TenantSettings) -> Self {
        Settings {
            cloud_ai_enabled: s.cloud_ai_enabled,
            media_deletion_waiver: s.media_deletion_waiver,
            require_access_reason: s.require_access_reason,
            four_eyes_playback: s.four_eyes_playback,
        }
    }
}

/// `GET /api/settings`.
#[utoipa::path(get, path = "/api/settings", tag = "administration",
    responses(
        (status = 200, description = "The tenant's settings", body = Settings),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn get_settings(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageSettings)?;
    let tenant = p.tenant()?;
    let t = state.store.get_tenant(tenant).await?;
    Ok(HttpResponse::Ok().json(Settings::from(&t.settings)))
}

/// `PUT /api/settings`: replaces the settings; audited.
#[utoipa::path(put, path = "/api/settings", tag = "administration",
    request_body = Settings,
    responses(
        (status = 200, description = "The stored settings", body = Settings),
        (status = 202, description = "Stored, except the media-deletion waiver: turning it on waits for a second user's approval", body = Object),
        (status = 400, description = "Malformed body", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn put_settings(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Settings>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageSettings)?;
    let tenant = p.tenant()?;
    let new = body.into_inner();
    let old = state.store.get_tenant(tenant).await?.settings;
    let mut settings = TenantSettings {
        cloud_ai_enabled: new.cloud_ai_enabled,
        media_deletion_waiver: new.media_deletion_waiver,
        require_access_reason: new.require_access_reason,
        four_eyes_playback: new.four_eyes_playback,
    };
    // Turning the media-deletion waiver on needs a second person
    // (two-person governance): it is asked for here and applied when
    // another settings manager approves it.
    let mut pending = None;
    if settings.media_deletion_waiver && !old.media_deletion_waiver {
        settings.media_deletion_waiver = false;
        pending = Some(
            super::governance::request_change(
                &state,
                &p,
                &req,
                insights_core::domain::ChangeKind::MediaDeletionWaiverOn,
                "tenant".into(),
                json!({}),
            )
            .await?,
        );
    }
    let changed: serde_json::Map<String, serde_json::Value> = [
        (
            "cloud_ai_enabled",
            old.cloud_ai_enabled,
            settings.cloud_ai_enabled,
        ),
        (
            "media_deletion_waiver",
            old.media_deletion_waiver,
            settings.media_deletion_waiver,
        ),
        (
            "require_access_reason",
            old.require_access_reason,
            settings.require_access_reason,
        ),
        (
            "four_eyes_playback",
            old.four_eyes_playback,
            settings.four_eyes_playback,
        ),
    ]
    .into_iter()
    .filter(|(_, a, b)| a != b)
    .map(|(k, _, b)| (k.to_owned(), json!(b)))
    .collect();
    if !changed.is_empty() {
        state
            .store
            .update_tenant_settings(tenant, &settings)
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
                details: json!({ "changed": changed }),
            },
        )
        .await?;
    }
    if let Some(change) = pending {
        return Ok(HttpResponse::Accepted().json(json!({
            "settings": Settings::from(&settings),
            "pending_change": change,
        })));
    }
    Ok(HttpResponse::Ok().json(Settings::from(&settings)))
}

/// A security profile as the API takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    /// A name unique enough for admins to tell profiles apart (1–100 characters).
    pub name: String,
    /// The role it is meant for (`tenant-admin`, `compliance-officer`,
    /// `supervisor`, `user`, `dpo`).
    #[schema(value_type = String)]
    pub role: Role,
    /// What it allows (`search`, `play`, `download-media`, …).
    #[schema(value_type = Vec<String>)]
    pub permissions: Vec<Permission>,
    /// Whose recordings: `{"type":"all"}`, `{"type":"own-recordings"}`,
    /// `{"type":"nothing"}`, `{"type":"users","value":[ids]}`,
    /// `{"type":"groups","value":[names]}`.
    #[schema(value_type = Object)]
    pub scope: VisibilityScope,
}

impl ProfileBody {
    fn into_profile(
        self,
        id: SecurityProfileId,
        tenant: insights_core::domain::TenantId,
    ) -> Result<SecurityProfile, ApiError> {
        let name = self.name.trim().to_owned();
        if name.chars().count() > MAX_NAME {
            return Err(ApiError::BadRequest {
                code: "bad-name",
                detail: "name must be 1-100 characters".into(),
            });
        }
        let mut permissions = self.permissions;
        permissions.sort();
        permissions.dedup();
        let p = SecurityProfile {
            id,
            tenant_id: tenant,
            name,
            role: self.role,
            permissions,
            scope: self.scope,
        };
        if p.role == Role::PlatformOperator {
            // Operators belong to no tenant: a tenant has no use for such
            // a profile, and it must never reveal content anyway.
            return Err(ApiError::BadRequest {
                code: "invalid-profile",
                detail: "a tenant's profile cannot be for the platform-operator role".into(),
            });
        }
        p.validate().map_err(|detail| ApiError::BadRequest {
            code: "invalid-profile",
            detail,
        })?;
        Ok(p)
    }
}

/// `GET /api/security-profiles`.
#[utoipa::path(get, path = "/api/security-profiles", tag = "administration",
    responses(
        (status = 200, description = "The tenant's profiles, by name", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn list_profiles(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageUsers)?;
    let tenant = p.tenant()?;
    let items = state.store.list_security_profiles(tenant).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

async fn store_profile(
    p: &Principal,
    state: &AppState,
    req: &HttpRequest,
    profile: &SecurityProfile,
    created: bool,
) -> Result<(), ApiError> {
    let tenant = p.tenant()?;
    state.store.upsert_security_profile(tenant, profile).await?;
    audit(
        state,
        tenant,
        p,
        req,
        Audited {
            action: AuditAction::PolicyChange,
            recording: None,
            reason: None,
            details: json!({
                "security_profile": profile.id,
                "created": created,
                "role": profile.role,
                "permissions": profile.permissions,
                "scope": profile.scope,
            }),
        },
    )
    .await
}

/// `POST /api/security-profiles`: creates a profile.
#[utoipa::path(post, path = "/api/security-profiles", tag = "administration",
    request_body = ProfileBody,
    responses(
        (status = 201, description = "The stored profile", body = Object),
        (status = 400, description = "Invalid profile", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn create_profile(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ProfileBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageUsers)?;
    let tenant = p.tenant()?;
    let profile = body
        .into_inner()
        .into_profile(SecurityProfileId::new(), tenant)?;
    state
        .auth
        .check_profile_change(&p, None, &profile.permissions)
        .await?;
    store_profile(&p, &state, &req, &profile, true).await?;
    Ok(HttpResponse::Created().json(profile))
}

/// `PUT /api/security-profiles/{id}`: replaces an existing profile.
#[utoipa::path(put, path = "/api/security-profiles/{id}", tag = "administration",
    params(("id" = String, Path, description = "Security profile id")),
    request_body = ProfileBody,
    responses(
        (status = 200, description = "The stored profile", body = Object),
        (status = 400, description = "Invalid profile", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted, or a permission the caller does not hold", body = super::openapi::Problem),
        (status = 404, description = "No such profile in this tenant", body = super::openapi::Problem),
        (status = 409, description = "The profile assigned to the caller", body = super::openapi::Problem)))]
async fn replace_profile(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<ProfileBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageUsers)?;
    let tenant = p.tenant()?;
    let id = SecurityProfileId(path.parse().map_err(|_| ApiError::NotFound)?);
    let exists = state
        .store
        .list_security_profiles(tenant)
        .await?
        .iter()
        .any(|x| x.id == id);
    if !exists {
        return Err(ApiError::NotFound);
    }
    let profile = body.into_inner().into_profile(id, tenant)?;
    state
        .auth
        .check_profile_change(&p, Some(id), &profile.permissions)
        .await?;
    store_profile(&p, &state, &req, &profile, false).await?;
    Ok(HttpResponse::Ok().json(profile))
}
