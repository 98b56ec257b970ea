//! Governance: legal holds, retention, and the tenant's local accounts.
//!
//! * `manage-legal-holds`: `GET|POST /api/legal-holds`,
//!   `POST /api/legal-holds/{id}/lift`. Placing and lifting go through
//!   `gdpr_tools::holds` (the store flags every covered recording; the
//!   chain records who, when, which hold and how many recordings).
//! * `manage-retention`: `GET|POST /api/retention-policies`,
//!   `PUT|DELETE /api/retention-policies/{id}` (audited as policy
//!   changes), `POST /api/retention/run {dry_run}` and
//!   `GET /api/retention/due` (`gdpr_tools::retention`). No policy may
//!   keep recordings for less than the installation's
//!   `[retention] minimum_days`.
//! * **Two-person governance**: deleting a retention policy, shortening
//!   one (fewer `retain_days`), lifting a legal hold and turning on the
//!   media-deletion waiver (`PUT /api/settings`) only *ask*: they answer
//!   `202` with a pending change, which takes effect when a second user
//!   holding the same permission approves it:
//!   `GET /api/governance-changes`,
//!   `POST /api/governance-changes/{id}/approve|reject`. The requester
//!   can never decide their own change; every step is audited.
//! * `manage-users`: `GET|POST /api/users`, `PUT /api/users/{id}`: local
//!   accounts of the caller's tenant (audited as user changes). Responses
//!   never carry a password hash or a TOTP secret: a new account's owner
//!   enrols TOTP at their first sign-in.
//!   `POST /api/users/{id}/reset-password {password}` gives an account a
//!   new initial password (replaced by its owner at the next sign-in),
//!   `POST /api/users/{id}/reset-second-factor` forgets its TOTP seed and
//!   recovery codes (enrolled again at the next sign-in); both sign the
//!   account out everywhere and are audited. An account that administers
//!   users, or has a permission the caller lacks (only a tenant
//!   administrator may ask then), is only reset when a second
//!   administrator approves (`202`, two-person governance as above; the
//!   pending change never shows the password).
//!   A tenant administrator adding an account with permissions they do
//!   not hold (a DPO) gets `202` too: a second tenant administrator
//!   approves the `account-create` change, and the account is created.
//!
//! Everything is scoped to the caller's tenant: an id of another tenant
//! is a 404, like a missing one. Platform operators have no tenant and
//! none of these permissions (403).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use gdpr_tools::holds::{self, Actor, HoldError, NewHold};
use gdpr_tools::retention::{self, RetentionError, RunOptions};
use insights_core::domain::{
    AccountId, AuditAction, ChangeKind, ChangeStatus, CredentialReset, GovernanceChange,
    GovernanceChangeId, HoldScope, LegalHoldId, LocalAccount, NewAuditEvent, Permission, Realm,
    RetentionAction, RetentionPolicy, RetentionPolicyId, RetentionScope, Role, SecurityProfileId,
    TenantId, UserId, normalize_email, now,
};
use insights_core::store::{AccountChange, StoreError};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::recordings::{Audited, audit, client};
use crate::AppState;
use crate::auth::Principal;
use crate::auth::accounts::{AddUserError, NewUser, add_user, add_user_with_hash, check_new_user};
use crate::error::ApiError;

/// Registers the governance routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/legal-holds", web::get().to(list_holds))
        .route("/api/legal-holds", web::post().to(place_hold))
        .route("/api/legal-holds/{id}/lift", web::post().to(lift_hold))
        .route("/api/retention-policies", web::get().to(list_policies))
        .route("/api/retention-policies", web::post().to(create_policy))
        .route("/api/retention-policies/{id}", web::put().to(update_policy))
        .route(
            "/api/retention-policies/{id}",
            web::delete().to(delete_policy),
        )
        .route("/api/retention/run", web::post().to(run_retention))
        .route("/api/retention/due", web::get().to(retention_due))
        .route("/api/governance-changes", web::get().to(list_changes))
        .route(
            "/api/governance-changes/{id}/approve",
            web::post().to(approve_change),
        )
        .route(
            "/api/governance-changes/{id}/reject",
            web::post().to(reject_change),
        )
        .route("/api/users", web::get().to(list_users))
        .route("/api/users", web::post().to(create_user))
        .route("/api/users/{id}", web::put().to(update_user))
        .route(
            "/api/users/{id}/reset-password",
            web::post().to(reset_password),
        )
        .route(
            "/api/users/{id}/reset-second-factor",
            web::post().to(reset_second_factor),
        );
}

fn hold_error(e: HoldError) -> ApiError {
    match e {
        HoldError::Invalid(detail) => ApiError::BadRequest {
            code: "invalid-legal-hold",
            detail,
        },
        HoldError::NotFound => ApiError::NotFound,
        HoldError::AlreadyLifted => ApiError::Conflict {
            code: "already-lifted",
            detail: "the legal hold was already lifted".into(),
        },
        HoldError::Store(e) => e.into(),
    }
}

fn retention_error(e: RetentionError) -> ApiError {
    match e {
        RetentionError::Invalid(detail) => ApiError::BadRequest {
            code: "invalid-retention-policy",
            detail,
        },
        RetentionError::Store(e) => e.into(),
        RetentionError::Blob(e) => ApiError::internal(e),
    }
}

fn actor(state: &AppState, p: &Principal, req: &HttpRequest) -> Actor {
    Actor {
        id: p.actor(),
        source: client(state, req),
    }
}

fn parse_id<T: From<uuid::Uuid>>(s: &str) -> Result<T, ApiError> {
    s.parse::<uuid::Uuid>()
        .map(T::from)
        .map_err(|_| ApiError::NotFound)
}

// ---------------------------------------------------------------------
// legal holds
// ---------------------------------------------------------------------

/// The scope of a hold: a recording is held when it matches every field
/// that is set (at least one must be).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldScopeBody {
    /// A directory user who took part.
    #[schema(value_type = Option<String>)]
    pub user_id: Option<UserId>,
    /// A phone number, email or SIP/Tel URI of any participant.
    pub participant_identifier: Option<String>,
    /// Recordings that started at or after this time (RFC 3339).
    #[schema(value_type = Option<String>)]
    pub from: Option<DateTime<Utc>>,
    /// Recordings that started before this time (RFC 3339).
    #[schema(value_type = Option<String>)]
    pub to: Option<DateTime<Utc>>,
    /// Explicit recordings.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub recording_ids: Vec<insights_core::domain::RecordingId>,
}

/// `POST /api/legal-holds` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHoldBody {
    /// The case (1–200 characters).
    pub case_name: String,
    pub reason: Option<String>,
    pub scope: HoldScopeBody,
}

/// `POST /api/legal-holds/{id}/lift` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiftBody {
    pub reason: Option<String>,
}

/// `GET /api/legal-holds`: active and lifted holds, newest first.
#[utoipa::path(get, path = "/api/legal-holds", tag = "governance",
    responses(
        (status = 200, description = "The tenant's legal holds, newest first, with the number of recordings each holds", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn list_holds(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageLegalHolds)?;
    let tenant = p.tenant()?;
    let items = holds::list(state.store.as_ref(), tenant)
        .await
        .map_err(hold_error)?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// `POST /api/legal-holds`: places a hold; every recording it covers is
/// held at once, and so is every later one it covers.
#[utoipa::path(post, path = "/api/legal-holds", tag = "governance",
    request_body = NewHoldBody,
    responses(
        (status = 201, description = "The placed hold", body = Object),
        (status = 400, description = "Blank case name, empty scope or bad body", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn place_hold(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<NewHoldBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageLegalHolds)?;
    let tenant = p.tenant()?;
    let b = body.into_inner();
    let new = NewHold {
        case_name: b.case_name,
        reason: b.reason,
        scope: HoldScope {
            user_id: b.scope.user_id,
            participant_identifier: b.scope.participant_identifier,
            from: b.scope.from,
            to: b.scope.to,
            recording_ids: b.scope.recording_ids,
        },
    };
    let view = holds::place(state.store.as_ref(), tenant, new, &actor(&state, &p, &req))
        .await
        .map_err(hold_error)?;
    Ok(HttpResponse::Created().json(view))
}

/// `POST /api/legal-holds/{id}/lift`.
#[utoipa::path(post, path = "/api/legal-holds/{id}/lift", tag = "governance",
    params(("id" = String, Path, description = "Legal hold id")),
    request_body = LiftBody,
    responses(
        (status = 202, description = "A pending change a second user must approve", body = Object),
        (status = 400, description = "Bad body", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such hold in this tenant", body = super::openapi::Problem),
        (status = 409, description = "Already lifted", body = super::openapi::Problem)))]
async fn lift_hold(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Option<web::Json<LiftBody>>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageLegalHolds)?;
    let tenant = p.tenant()?;
    let id: LegalHoldId = parse_id(&path)?;
    let reason = body.and_then(|b| b.into_inner().reason);
    let hold = state
        .store
        .list_legal_holds(tenant, false)
        .await?
        .into_iter()
        .find(|h| h.id == id)
        .ok_or(ApiError::NotFound)?;
    if !hold.is_active() {
        return Err(hold_error(HoldError::AlreadyLifted));
    }
    let change = request_change(
        &state,
        &p,
        &req,
        ChangeKind::LegalHoldLift,
        id.to_string(),
        json!({ "reason": reason }),
    )
    .await?;
    Ok(HttpResponse::Accepted().json(change))
}

// ---------------------------------------------------------------------
// two-person governance
// ---------------------------------------------------------------------

/// Stores a pending destructive change (the caller holds its permission)
/// and audits the request.
pub(super) async fn request_change(
    state: &AppState,
    p: &Principal,
    req: &HttpRequest,
    kind: ChangeKind,
    target: String,
    payload: serde_json::Value,
) -> Result<GovernanceChange, ApiError> {
    p.require(kind.permission())?;
    let tenant = p.tenant()?;
    let change = GovernanceChange::new(tenant, kind, target, payload, p.actor(), now());
    state
        .store
        .create_governance_change(tenant, &change)
        .await?;
    audit(
        state,
        tenant,
        p,
        req,
        Audited {
            action: AuditAction::GovernanceChangeRequest,
            recording: None,
            reason: None,
            details: json!({
                "change": change.id,
                "kind": change.kind,
                "target": change.target,
            }),
        },
    )
    .await?;
    Ok(change)
}

/// A change as the API shows it: a password's hash stays inside.
fn redacted(mut c: GovernanceChange) -> GovernanceChange {
    if let Some(o) = c.payload.as_object_mut() {
        o.remove("password_hash");
    }
    c
}

/// The permissions that let `p` see or decide changes of each kind.
fn may_decide(p: &Principal, kind: ChangeKind) -> bool {
    p.has(kind.permission())
}

/// Query of `GET /api/governance-changes`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// `pending`, `approved` or `rejected`.
    pub status: Option<String>,
}

/// `GET /api/governance-changes`: the changes of the kinds the caller
/// may decide, newest first.
#[utoipa::path(get, path = "/api/governance-changes", tag = "governance",
    params(ChangesQuery),
    responses(
        (status = 200, description = "Governance changes, newest first", body = Object),
        (status = 400, description = "Unknown status", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn list_changes(
    p: Principal,
    state: web::Data<AppState>,
    query: web::Query<ChangesQuery>,
) -> Result<HttpResponse, ApiError> {
    if !ChangeKind::ALL.iter().any(|k| may_decide(&p, *k)) {
        return Err(ApiError::Forbidden {
            code: "permission-denied",
        });
    }
    let tenant = p.tenant()?;
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<ChangeStatus>()
                .map_err(|_| ApiError::BadRequest {
                    code: "bad-status",
                    detail: "status must be pending, approved or rejected".into(),
                })?,
        ),
    };
    let items: Vec<GovernanceChange> = state
        .store
        .list_governance_changes(tenant, status)
        .await?
        .into_iter()
        .filter(|c| may_decide(&p, c.kind))
        .map(redacted)
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// `POST /api/governance-changes/{id}/approve`: a second user with the
/// same permission approves; the change is applied at once.
#[utoipa::path(post, path = "/api/governance-changes/{id}/approve", tag = "governance",
    params(("id" = String, Path, description = "Governance change id")),
    responses(
        (status = 200, description = "The approved change, applied", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted, or the caller's own change", body = super::openapi::Problem),
        (status = 404, description = "No such change in this tenant", body = super::openapi::Problem),
        (status = 409, description = "Already decided, or no longer applicable", body = super::openapi::Problem)))]
async fn approve_change(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    decide_change(p, state, req, path, true).await
}

/// `POST /api/governance-changes/{id}/reject`.
#[utoipa::path(post, path = "/api/governance-changes/{id}/reject", tag = "governance",
    params(("id" = String, Path, description = "Governance change id")),
    responses(
        (status = 200, description = "The rejected change", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted, or the caller's own change", body = super::openapi::Problem),
        (status = 404, description = "No such change in this tenant", body = super::openapi::Problem),
        (status = 409, description = "Already decided", body = super::openapi::Problem)))]
async fn reject_change(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    decide_change(p, state, req, path, false).await
}

async fn decide_change(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    approve: bool,
) -> Result<HttpResponse, ApiError> {
    let tenant = p.tenant()?;
    let id: GovernanceChangeId = parse_id(&path)?;
    let current = state.store.get_governance_change(tenant, id).await?;
    if !may_decide(&p, current.kind) {
        return Err(ApiError::Forbidden {
            code: "permission-denied",
        });
    }
    if current.requested_by == p.actor() {
        return Err(ApiError::Forbidden { code: "own-change" });
    }
    if approve && current.kind == ChangeKind::AccountCreate && p.role != Role::TenantAdmin {
        // Only what a tenant administrator may ask for, another approves.
        return Err(ApiError::Forbidden {
            code: "permission-denied",
        });
    }
    if approve
        && matches!(
            current.kind,
            ChangeKind::AccountPasswordReset | ChangeKind::AccountSecondFactorReset
        )
    {
        let id: AccountId = parse_id(&current.target)?;
        let target = state.store.get_account(Realm::Tenant(tenant), id).await?;
        if target.id.to_string() == p.actor() {
            return Err(ApiError::Conflict {
                code: "own-account",
                detail: "you cannot approve a reset of your own account".into(),
            });
        }
        holds_all_of(&state, &p, &target).await?;
    }
    let decided = match state
        .store
        .decide_governance_change(tenant, id, approve, &p.actor(), now())
        .await
    {
        Ok(c) => c,
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::Conflict {
                code: "already-decided",
                detail: "the change was already approved or rejected".into(),
            });
        }
        Err(StoreError::Invalid(_)) => return Err(ApiError::Forbidden { code: "own-change" }),
        Err(e) => return Err(e.into()),
    };
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::GovernanceChangeDecision,
            recording: None,
            reason: None,
            details: json!({
                "change": decided.id,
                "kind": decided.kind,
                "target": decided.target,
                "requested_by": decided.requested_by,
                "approved": approve,
            }),
        },
    )
    .await?;
    if approve {
        apply_change(&state, &p, &req, tenant, &decided).await?;
    }
    Ok(HttpResponse::Ok().json(redacted(decided)))
}

/// Applies an approved change, audited like the direct action.
async fn apply_change(
    state: &AppState,
    p: &Principal,
    req: &HttpRequest,
    tenant: TenantId,
    c: &GovernanceChange,
) -> Result<(), ApiError> {
    let stale = || ApiError::Conflict {
        code: "change-not-applicable",
        detail: "the object the change was about no longer exists".into(),
    };
    match c.kind {
        ChangeKind::RetentionPolicyDelete => {
            let id: RetentionPolicyId = parse_id(&c.target).map_err(|_| stale())?;
            state.store.delete_retention_policy(tenant, id).await?;
            policy_audit(state, p, req, id, "deleted", None).await
        }
        ChangeKind::RetentionPolicyShorten => {
            let policy: RetentionPolicy =
                serde_json::from_value(c.payload.clone()).map_err(|_| stale())?;
            if policy.tenant_id != tenant {
                return Err(stale());
            }
            find_policy(state, tenant, policy.id)
                .await
                .map_err(|_| stale())?;
            retention::validate_policy_with_minimum(&policy, state.retention_minimum_days)
                .map_err(retention_error)?;
            state.store.upsert_retention_policy(tenant, &policy).await?;
            policy_audit(state, p, req, policy.id, "updated", Some(&policy)).await
        }
        ChangeKind::LegalHoldLift => {
            let id: LegalHoldId = parse_id(&c.target).map_err(|_| stale())?;
            let reason = c.payload["reason"].as_str().map(str::to_owned);
            holds::lift(
                state.store.as_ref(),
                tenant,
                id,
                reason,
                &actor(state, p, req),
            )
            .await
            .map(|_| ())
            .map_err(hold_error)
        }
        ChangeKind::AccountPasswordReset | ChangeKind::AccountSecondFactorReset => {
            let id: AccountId = parse_id(&c.target).map_err(|_| stale())?;
            let password_hash = match c.kind {
                ChangeKind::AccountPasswordReset => Some(
                    c.payload["password_hash"]
                        .as_str()
                        .ok_or_else(stale)?
                        .to_owned(),
                ),
                _ => None,
            };
            apply_reset(state, p, req, id, password_hash, Some(c.id)).await
        }
        ChangeKind::AccountCreate => {
            let body: PendingAccount =
                serde_json::from_value(c.payload.clone()).map_err(|_| stale())?;
            add_user_with_hash(
                &state.store,
                NewUser {
                    tenant: Some(tenant),
                    email: body.email,
                    role: body.role,
                    security_profile_id: body.security_profile_id,
                    directory_user_id: body.directory_user_id,
                },
                body.password_hash,
                &p.actor(),
            )
            .await
            .map(|_| ())
            .map_err(add_user_error)
        }
        ChangeKind::MediaDeletionWaiverOn => {
            let mut settings = state.store.get_tenant(tenant).await?.settings;
            if !settings.media_deletion_waiver {
                settings.media_deletion_waiver = true;
                state
                    .store
                    .update_tenant_settings(tenant, &settings)
                    .await?;
                audit(
                    state,
                    tenant,
                    p,
                    req,
                    Audited {
                        action: AuditAction::SettingsChange,
                        recording: None,
                        reason: None,
                        details: json!({
                            "changed": { "media_deletion_waiver": true },
                            "change": c.id,
                        }),
                    },
                )
                .await?;
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------
// retention
// ---------------------------------------------------------------------

/// A retention policy as the API takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// 1–100 characters.
    pub name: String,
    /// Which recordings: `{kind?: "call"|"meeting", direction?:
    /// "inbound"|"outbound"|"internal"|"unknown", group?: directory group
    /// of a recorded user, retention_class?}`; unset fields match all.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub scope: RetentionScope,
    /// Days after the start of a recording (1–36500).
    pub retain_days: i32,
    /// `delete-media` or `delete-recording`.
    #[schema(value_type = String)]
    pub action: RetentionAction,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl PolicyBody {
    fn into_policy(
        self,
        id: RetentionPolicyId,
        tenant: insights_core::domain::TenantId,
        minimum_days: u32,
    ) -> Result<RetentionPolicy, ApiError> {
        let p = RetentionPolicy {
            id,
            tenant_id: tenant,
            name: self.name.trim().to_owned(),
            scope: self.scope,
            retain_days: self.retain_days,
            action: self.action,
            enabled: self.enabled,
            updated_at: now(),
        };
        retention::validate_policy_with_minimum(&p, minimum_days).map_err(retention_error)?;
        Ok(p)
    }
}

/// `POST /api/retention/run` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// Report what would be deleted and change nothing.
    pub dry_run: bool,
}

/// `GET /api/retention-policies`.
#[utoipa::path(get, path = "/api/retention-policies", tag = "governance",
    responses(
        (status = 200, description = "The tenant's retention policies, by name", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn list_policies(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageRetention)?;
    let tenant = p.tenant()?;
    let items = state.store.list_retention_policies(tenant).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

async fn policy_audit(
    state: &AppState,
    p: &Principal,
    req: &HttpRequest,
    id: RetentionPolicyId,
    change: &str,
    policy: Option<&RetentionPolicy>,
) -> Result<(), ApiError> {
    audit(
        state,
        p.tenant()?,
        p,
        req,
        Audited {
            action: AuditAction::PolicyChange,
            recording: None,
            reason: None,
            details: json!({
                "retention_policy": id,
                "change": change,
                "policy": policy,
            }),
        },
    )
    .await
}

/// `POST /api/retention-policies`.
#[utoipa::path(post, path = "/api/retention-policies", tag = "governance",
    request_body = PolicyBody,
    responses(
        (status = 201, description = "The stored policy", body = Object),
        (status = 400, description = "Invalid policy", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn create_policy(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<PolicyBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageRetention)?;
    let tenant = p.tenant()?;
    let policy = body.into_inner().into_policy(
        RetentionPolicyId::new(),
        tenant,
        state.retention_minimum_days,
    )?;
    state.store.upsert_retention_policy(tenant, &policy).await?;
    policy_audit(&state, &p, &req, policy.id, "created", Some(&policy)).await?;
    Ok(HttpResponse::Created().json(policy))
}

async fn find_policy(
    state: &AppState,
    tenant: insights_core::domain::TenantId,
    id: RetentionPolicyId,
) -> Result<RetentionPolicy, ApiError> {
    state
        .store
        .list_retention_policies(tenant)
        .await?
        .into_iter()
        .find(|x| x.id == id)
        .ok_or(ApiError::NotFound)
}

/// `PUT /api/retention-policies/{id}`: replaces a policy.
#[utoipa::path(put, path = "/api/retention-policies/{id}", tag = "governance",
    params(("id" = String, Path, description = "Retention policy id")),
    request_body = PolicyBody,
    responses(
        (status = 200, description = "The stored policy", body = Object),
        (status = 202, description = "Shorter retention: a pending change a second user must approve", body = Object),
        (status = 400, description = "Invalid policy", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such policy in this tenant", body = super::openapi::Problem)))]
async fn update_policy(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<PolicyBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageRetention)?;
    let tenant = p.tenant()?;
    let id: RetentionPolicyId = parse_id(&path)?;
    let old = find_policy(&state, tenant, id).await?;
    let policy = body
        .into_inner()
        .into_policy(id, tenant, state.retention_minimum_days)?;
    if policy.retain_days < old.retain_days {
        // Keeping recordings for less time deletes sooner: a second
        // person must agree.
        let payload = serde_json::to_value(&policy).map_err(ApiError::internal)?;
        let change = request_change(
            &state,
            &p,
            &req,
            ChangeKind::RetentionPolicyShorten,
            id.to_string(),
            payload,
        )
        .await?;
        return Ok(HttpResponse::Accepted().json(change));
    }
    state.store.upsert_retention_policy(tenant, &policy).await?;
    policy_audit(&state, &p, &req, id, "updated", Some(&policy)).await?;
    Ok(HttpResponse::Ok().json(policy))
}

/// `DELETE /api/retention-policies/{id}`.
#[utoipa::path(delete, path = "/api/retention-policies/{id}", tag = "governance",
    params(("id" = String, Path, description = "Retention policy id")),
    responses(
        (status = 202, description = "A pending change a second user must approve", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such policy in this tenant", body = super::openapi::Problem)))]
async fn delete_policy(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageRetention)?;
    let tenant = p.tenant()?;
    let id: RetentionPolicyId = parse_id(&path)?;
    find_policy(&state, tenant, id).await?;
    let change = request_change(
        &state,
        &p,
        &req,
        ChangeKind::RetentionPolicyDelete,
        id.to_string(),
        json!({}),
    )
    .await?;
    Ok(HttpResponse::Accepted().json(change))
}

/// `POST /api/retention/run`: enforces the policies now (or reports what
/// it would do with `dry_run`). Legal holds always win.
#[utoipa::path(post, path = "/api/retention/run", tag = "governance",
    request_body = RunBody,
    responses(
        (status = 200, description = "The retention report", body = Object),
        (status = 400, description = "Bad body", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn run_retention(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RunBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageRetention)?;
    let tenant = p.tenant()?;
    let opts = RunOptions {
        dry_run: body.dry_run,
        actor: p.actor(),
        source: client(&state, &req),
        now: now(),
        minimum_days: state.retention_minimum_days,
    };
    let report = retention::run(
        state.store.as_ref(),
        state.blobs.as_ref(),
        tenant,
        &opts,
        &|_| {},
    )
    .await
    .map_err(retention_error)?;
    Ok(HttpResponse::Ok().json(report))
}

/// `GET /api/retention/due`: how many recordings are due now, per policy.
#[utoipa::path(get, path = "/api/retention/due", tag = "governance",
    responses(
        (status = 200, description = "Recordings due for retention now, in total and per policy", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn retention_due(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageRetention)?;
    let tenant = p.tenant()?;
    let due = retention::due_with_minimum(
        state.store.as_ref(),
        tenant,
        now(),
        state.retention_minimum_days,
    )
    .await
    .map_err(retention_error)?;
    Ok(HttpResponse::Ok().json(due))
}

// ---------------------------------------------------------------------
// users
// ---------------------------------------------------------------------

/// A local account as the API shows it (no hash, no secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    #[schema(value_type = String)]
    pub id: AccountId,
    pub email: String,
    #[schema(value_type = String)]
    pub role: Role,
    #[schema(value_type = Option<String>)]
    pub security_profile_id: Option<SecurityProfileId>,
    #[schema(value_type = Option<String>)]
    pub directory_user_id: Option<UserId>,
    pub active: bool,
    pub totp_enrolled: bool,
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Option<String>)]
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<&LocalAccount> for User {
    fn from(a: &LocalAccount) -> Self {
        User {
            id: a.id,
            email: a.email.clone(),
            role: a.role,
            security_profile_id: a.security_profile_id,
            directory_user_id: a.directory_user_id,
            active: a.active,
            totp_enrolled: a.totp.is_some(),
            created_at: a.created_at,
            last_login_at: a.last_login_at,
        }
    }
}

/// `POST /api/users` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    pub email: String,
    /// 12–128 characters (never stored, never logged).
    pub password: String,
    /// `tenant-admin`, `compliance-officer`, `supervisor`, `user` or `dpo`.
    #[schema(value_type = String)]
    pub role: Role,
    #[schema(value_type = Option<String>)]
    pub security_profile_id: Option<SecurityProfileId>,
    #[schema(value_type = Option<String>)]
    pub directory_user_id: Option<UserId>,
}

impl std::fmt::Debug for NewUserBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUserBody").finish_non_exhaustive()
    }
}

/// `PUT /api/users/{id}` body: fields left out stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChangeBody {
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    /// A profile id, or `null` to clear it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub security_profile_id: Option<Option<SecurityProfileId>>,
    pub active: Option<bool>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

async fn user_audit(
    state: &AppState,
    p: &Principal,
    req: &HttpRequest,
    id: AccountId,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let tenant = p.tenant()?;
    state
        .store
        .append_audit(
            tenant,
            NewAuditEvent {
                actor: p.actor(),
                action: AuditAction::UserChange,
                recording_id: None,
                target: Some(id.to_string()),
                reason: None,
                source: client(state, req),
                details,
            },
        )
        .await
        .map(|_| ())
        .map_err(ApiError::internal)
}

/// `GET /api/users`: the tenant's local accounts, by email.
#[utoipa::path(get, path = "/api/users", tag = "governance",
    responses(
        (status = 200, description = "The tenant's local accounts", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn list_users(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageUsers)?;
    let tenant = p.tenant()?;
    let items: Vec<User> = state
        .store
        .list_accounts(Realm::Tenant(tenant))
        .await?
        .iter()
        .map(User::from)
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// `POST /api/users`: creates a local account of the caller's tenant,
/// with no more permissions than the caller holds; the user replaces the
/// password and enrols TOTP at the first sign-in. A tenant administrator
/// asking for an account with permissions they lack (a DPO has
/// `gdpr-actions`) gets a pending `account-create` change that a second
/// tenant administrator approves; anyone else gets `403`.
#[utoipa::path(post, path = "/api/users", tag = "governance",
    request_body = NewUserBody,
    responses(
        (status = 201, description = "The created account", body = Object),
        (status = 202, description = "A tenant administrator asked for an account with permissions they do not hold: a pending change a second tenant administrator must approve", body = Object),
        (status = 400, description = "Bad email, password, role, profile or directory user", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 409, description = "An account with this email exists", body = super::openapi::Problem)))]
async fn create_user(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<NewUserBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageUsers)?;
    let tenant = p.tenant()?;
    let b = body.into_inner();
    let password = Zeroizing::new(b.password);
    let new = NewUser {
        tenant: Some(tenant),
        email: b.email,
        role: b.role,
        security_profile_id: b.security_profile_id,
        directory_user_id: b.directory_user_id,
    };
    match state
        .auth
        .check_grant(&p, b.role, b.security_profile_id)
        .await
    {
        Ok(()) => {}
        // A tenant administrator may ask for an account with permissions
        // they lack (a DPO): a second tenant administrator approves.
        Err(ApiError::Forbidden {
            code: "permission-not-held",
        }) if p.role == Role::TenantAdmin && b.role != Role::PlatformOperator => {
            check_new_user(&state.store, &new, &password)
                .await
                .map_err(add_user_error)?;
            let hash = tokio::task::spawn_blocking(move || {
                crate::auth::password::hash_password(&password)
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
            let pending = PendingAccount {
                email: normalize_email(&new.email),
                role: new.role,
                security_profile_id: new.security_profile_id,
                directory_user_id: new.directory_user_id,
                password_hash: hash,
            };
            let payload = serde_json::to_value(&pending).map_err(ApiError::internal)?;
            let change = request_change(
                &state,
                &p,
                &req,
                ChangeKind::AccountCreate,
                // Not the e-mail: the request is audited with its target.
                "new-account".into(),
                payload,
            )
            .await?;
            return Ok(HttpResponse::Accepted().json(redacted(change)));
        }
        Err(e) => return Err(e),
    }
    let created = add_user(&state.store, new, &password, &p.actor())
        .await
        .map_err(add_user_error)?;
    Ok(HttpResponse::Created().json(User::from(&created.account)))
}

/// An account waiting for a second administrator (`account-create`).
#[derive(Deserialize, Serialize)]
struct PendingAccount {
    email: String,
    role: Role,
    security_profile_id: Option<SecurityProfileId>,
    directory_user_id: Option<UserId>,
    /// argon2id of the initial password; never shown by the API.
    password_hash: String,
}

fn add_user_error(e: AddUserError) -> ApiError {
    let bad = |code: &'static str, detail: String| ApiError::BadRequest { code, detail };
    match e {
        AddUserError::Email => bad("bad-email", e.to_string()),
        AddUserError::Password(_) => bad("bad-password", e.to_string()),
        AddUserError::Realm => bad(
            "bad-role",
            "a tenant account cannot be a platform operator".into(),
        ),
        AddUserError::NoProfile(_) => bad(
            "unknown-security-profile",
            "no such security profile in this tenant".into(),
        ),
        AddUserError::NoDirectoryUser(_) => bad(
            "unknown-directory-user",
            "no such directory user in this tenant".into(),
        ),
        AddUserError::Exists => ApiError::Conflict {
            code: "account-exists",
            detail: "an account with this email exists already".into(),
        },
        AddUserError::Store(e) => e.into(),
    }
}

/// `PUT /api/users/{id}`: changes role, security profile or active flag.
/// Admins cannot change their own role or deactivate themselves (409).
#[utoipa::path(put, path = "/api/users/{id}", tag = "governance",
    params(("id" = String, Path, description = "Account id")),
    request_body = UserChangeBody,
    responses(
        (status = 200, description = "The changed account", body = Object),
        (status = 400, description = "Bad role, profile or body", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such account in this tenant", body = super::openapi::Problem),
        (status = 409, description = "A change to the caller's own role or active flag", body = super::openapi::Problem)))]
async fn update_user(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<UserChangeBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageUsers)?;
    let tenant = p.tenant()?;
    let id: AccountId = parse_id(&path)?;
    let b = body.into_inner();
    let before = state.store.get_account(Realm::Tenant(tenant), id).await?;
    if p.actor() == id.to_string()
        && (b.role.is_some_and(|r| r != before.role) || b.active == Some(false))
    {
        return Err(ApiError::Conflict {
            code: "own-account",
            detail: "you cannot change your own role or deactivate yourself".into(),
        });
    }
    state
        .auth
        .check_user_change(&p, &before, b.role, b.security_profile_id)
        .await?;
    if b.role == Some(Role::PlatformOperator) {
        return Err(ApiError::BadRequest {
            code: "bad-role",
            detail: "a tenant account cannot be a platform operator".into(),
        });
    }
    let change = AccountChange {
        role: b.role,
        security_profile_id: b.security_profile_id,
        active: b.active,
    };
    let after = match state.store.update_account(tenant, id, &change).await {
        Ok(a) => a,
        Err(StoreError::Invalid(_)) => {
            return Err(ApiError::BadRequest {
                code: "unknown-security-profile",
                detail: "no such security profile in this tenant".into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    user_audit(
        &state,
        &p,
        &req,
        id,
        json!({
            "change": "account-updated",
            "role": { "from": before.role, "to": after.role },
            "security_profile_id": { "from": before.security_profile_id, "to": after.security_profile_id },
            "active": { "from": before.active, "to": after.active },
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(User::from(&after)))
}

/// `POST /api/users/{id}/reset-password` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordBody {
    /// The new initial password, 12–128 characters (never stored in
    /// clear, never logged); the owner replaces it at the next sign-in.
    pub password: String,
}

impl std::fmt::Debug for ResetPasswordBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPasswordBody").finish_non_exhaustive()
    }
}

/// Resets an account's credentials (a new initial password, or no second
/// factor) and audits it; `change` is the approved governance change.
async fn apply_reset(
    state: &AppState,
    p: &Principal,
    req: &HttpRequest,
    id: AccountId,
    password_hash: Option<String>,
    change: Option<GovernanceChangeId>,
) -> Result<(), ApiError> {
    let tenant = p.tenant()?;
    let what = if password_hash.is_some() {
        "password-reset"
    } else {
        "second-factor-reset"
    };
    let reset = CredentialReset {
        clear_totp: password_hash.is_none(),
        password_hash,
        at: now(),
    };
    state
        .store
        .reset_credentials(Realm::Tenant(tenant), id, &reset)
        .await?;
    user_audit(
        state,
        p,
        req,
        id,
        json!({ "change": what, "sessions_revoked": true, "governance_change": change }),
    )
    .await
}

/// Whether `p` may grant everything `target` has: `Ok(false)` when a
/// tenant administrator lacks some of it (a second administrator must
/// then agree), `403 permission-not-held` for anyone else who does.
async fn holds_all_of(
    state: &AppState,
    p: &Principal,
    target: &LocalAccount,
) -> Result<bool, ApiError> {
    match state
        .auth
        .check_grant(p, target.role, target.security_profile_id)
        .await
    {
        Ok(()) => Ok(true),
        Err(ApiError::Forbidden {
            code: "permission-not-held",
        }) if p.role == Role::TenantAdmin => Ok(false),
        Err(e) => Err(e),
    }
}

/// The account a reset is about, after the checks every reset needs.
async fn reset_target(
    state: &AppState,
    p: &Principal,
    path: &str,
) -> Result<LocalAccount, ApiError> {
    p.require(Permission::ManageUsers)?;
    let tenant = p.tenant()?;
    let id: AccountId = parse_id(path)?;
    let target = state.store.get_account(Realm::Tenant(tenant), id).await?;
    if p.actor() == id.to_string() {
        return Err(ApiError::Conflict {
            code: "own-account",
            detail: "you cannot reset your own account here; sign in and use your recovery codes, or ask another administrator".into(),
        });
    }
    Ok(target)
}

/// Applies a reset at once, or asks a second administrator when the
/// account administers users or has permissions the caller lacks.
async fn reset(
    state: &AppState,
    p: &Principal,
    req: &HttpRequest,
    target: &LocalAccount,
    password_hash: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let holds_all = holds_all_of(state, p, target).await?;
    if !holds_all || state.auth.administers_users(target).await? {
        let (kind, payload) = match password_hash {
            Some(h) => (
                ChangeKind::AccountPasswordReset,
                json!({ "password_hash": h }),
            ),
            None => (ChangeKind::AccountSecondFactorReset, json!({})),
        };
        let change = request_change(state, p, req, kind, target.id.to_string(), payload).await?;
        return Ok(HttpResponse::Accepted().json(redacted(change)));
    }
    apply_reset(state, p, req, target.id, password_hash, None).await?;
    let after = state.store.get_account(target.realm(), target.id).await?;
    Ok(HttpResponse::Ok().json(User::from(&after)))
}

/// `POST /api/users/{id}/reset-password`: a new initial password, which
/// the owner replaces at the next sign-in; every session of the account
/// ends. For an account that administers users, or one with permissions
/// the (tenant administrator) caller lacks, a pending change a second
/// administrator must approve.
#[utoipa::path(post, path = "/api/users/{id}/reset-password", tag = "governance",
    params(("id" = String, Path, description = "Account id")),
    request_body = ResetPasswordBody,
    responses(
        (status = 200, description = "The account, reset", body = Object),
        (status = 202, description = "An administrator's account, or one with permissions the caller lacks: a pending change a second administrator must approve", body = Object),
        (status = 400, description = "Password too short or too long, or bad body", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted, or the account has permissions the caller lacks", body = super::openapi::Problem),
        (status = 404, description = "No such account in this tenant", body = super::openapi::Problem),
        (status = 409, description = "The caller's own account", body = super::openapi::Problem)))]
async fn reset_password(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<ResetPasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let target = reset_target(&state, &p, &path).await?;
    let password = Zeroizing::new(body.into_inner().password);
    crate::auth::password::check_policy(&password).map_err(|e| ApiError::BadRequest {
        code: "bad-password",
        detail: e.to_string(),
    })?;
    let hash = tokio::task::spawn_blocking(move || crate::auth::password::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    reset(&state, &p, &req, &target, Some(hash)).await
}

/// `POST /api/users/{id}/reset-second-factor`: forgets the account's
/// TOTP seed and recovery codes (the owner enrols again at the next
/// sign-in); every session of the account ends. For an account that
/// administers users, a pending change a second administrator must
/// approve.
#[utoipa::path(post, path = "/api/users/{id}/reset-second-factor", tag = "governance",
    params(("id" = String, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account, reset", body = Object),
        (status = 202, description = "An administrator's account, or one with permissions the caller lacks: a pending change a second administrator must approve", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted, or the account has permissions the caller lacks", body = super::openapi::Problem),
        (status = 404, description = "No such account in this tenant", body = super::openapi::Problem),
        (status = 409, description = "The caller's own account", body = super::openapi::Problem)))]
async fn reset_second_factor(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let target = reset_target(&state, &p, &path).await?;
    reset(&state, &p, &req, &target, None).await
}
