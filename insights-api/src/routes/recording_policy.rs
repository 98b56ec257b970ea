//! The tenant's recording policy (issue 17 §1, §2):
//! `GET|PUT /api/admin/recording-policy` (`manage-settings`, the tenant
//! admin): which calls the gateway records (mode `record-all` or
//! `include-only`, include and never-record rules) and what it does when
//! recording cannot proceed (`failure_mode`: `required` or
//! `best-effort`). The precedence is in
//! `insights_core::domain::recording_policy`.
//!
//! Every change is audited as a policy change naming the mode, the
//! failure mode and the rule ids added and removed, never a rule's value
//! (values name people, numbers and domains).

use std::collections::HashSet;

use actix_web::{HttpRequest, HttpResponse, web};
use insights_core::domain::{
    AuditAction, FailureMode, Permission, PolicyList, PolicyMode, PolicyRule, RecordingPolicy,
    RuleKind, now,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::recordings::{Audited, audit};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// The route.
pub const PATH: &str = "/api/admin/recording-policy";

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(PATH, web::get().to(get_policy))
        .route(PATH, web::put().to(put_policy));
}

/// One rule as the API shows and takes it.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRuleBody {
    /// Kept when given (an existing rule); a new rule gets one.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub id: Option<Uuid>,
    /// `include` or `never-record`.
    #[schema(value_type = String)]
    pub list: PolicyList,
    /// `user`, `group`, `number`, `number-prefix` or `domain` (the last
    /// two on the never-record list only).
    #[schema(value_type = String)]
    pub kind: RuleKind,
    /// A directory user id, Entra object id, e-mail or UPN; a group; an
    /// international number (`+…`); a number prefix (`+…`); a domain.
    pub value: String,
    /// Why the rule exists (shown to admins).
    #[serde(default)]
    pub label: Option<String>,
}

/// The policy as `PUT` takes it (every field must be given).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingPolicyBody {
    /// `record-all` (default) or `include-only`.
    #[schema(value_type = String)]
    pub mode: PolicyMode,
    /// `required` (default: fail closed) or `best-effort`.
    #[schema(value_type = String)]
    pub failure_mode: FailureMode,
    /// In evaluation order within each list.
    pub rules: Vec<PolicyRuleBody>,
}

/// The stored policy as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingPolicyView {
    #[schema(value_type = String)]
    pub mode: PolicyMode,
    #[schema(value_type = String)]
    pub failure_mode: FailureMode,
    pub rules: Vec<PolicyRuleBody>,
    /// When it was last changed (absent: never, the defaults apply).
    #[schema(value_type = Option<String>)]
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Who changed it last (an account id, `oidc:<subject>` or `cli`).
    pub updated_by: Option<String>,
}

impl From<&RecordingPolicy> for RecordingPolicyView {
    fn from(p: &RecordingPolicy) -> Self {
        let stored = !p.updated_by.is_empty();
        RecordingPolicyView {
            mode: p.mode,
            failure_mode: p.failure_mode,
            rules: p
                .rules
                .iter()
                .map(|r| PolicyRuleBody {
                    id: Some(r.id),
                    list: r.list,
                    kind: r.kind,
                    value: r.value.clone(),
                    label: r.label.clone(),
                })
                .collect(),
            updated_at: stored.then_some(p.updated_at),
            updated_by: stored.then(|| p.updated_by.clone()),
        }
    }
}

/// `GET /api/admin/recording-policy`.
#[utoipa::path(get, path = "/api/admin/recording-policy", tag = "administration",
    responses(
        (status = 200, description = "The tenant's recording policy (the defaults when none was stored)", body = RecordingPolicyView),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn get_policy(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageSettings)?;
    let tenant = p.tenant()?;
    let policy = state
        .store
        .recording_policy(tenant)
        .await?
        .unwrap_or_else(|| RecordingPolicy::default_for(tenant));
    Ok(HttpResponse::Ok().json(RecordingPolicyView::from(&policy)))
}

/// `PUT /api/admin/recording-policy`: replaces the policy; audited.
#[utoipa::path(put, path = "/api/admin/recording-policy", tag = "administration",
    request_body = RecordingPolicyBody,
    responses(
        (status = 200, description = "The stored policy", body = RecordingPolicyView),
        (status = 400, description = "Malformed body or an invalid rule", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn put_policy(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RecordingPolicyBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageSettings)?;
    let tenant = p.tenant()?;
    let body = body.into_inner();
    let old = state
        .store
        .recording_policy(tenant)
        .await?
        .unwrap_or_else(|| RecordingPolicy::default_for(tenant));
    let mut rules = Vec::with_capacity(body.rules.len());
    for (i, r) in body.rules.into_iter().enumerate() {
        let mut rule = PolicyRule::new(r.list, r.kind, &r.value, r.label).map_err(|detail| {
            ApiError::BadRequest {
                code: "invalid-rule",
                detail: format!("rule {i}: {detail}"),
            }
        })?;
        if let Some(id) = r.id {
            rule.id = id;
        }
        rules.push(rule);
    }
    let policy = RecordingPolicy {
        tenant_id: tenant,
        mode: body.mode,
        failure_mode: body.failure_mode,
        rules,
        updated_at: now(),
        updated_by: p.actor(),
    };
    policy.validate().map_err(|detail| ApiError::BadRequest {
        code: "invalid-policy",
        detail,
    })?;
    state.store.put_recording_policy(tenant, &policy).await?;
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::PolicyChange,
            recording: None,
            reason: None,
            details: change_details(&old, &policy),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(RecordingPolicyView::from(&policy)))
}

/// What an audit event says about a change: modes and rule ids (with
/// list and kind), never a rule's value.
pub fn change_details(old: &RecordingPolicy, new: &RecordingPolicy) -> serde_json::Value {
    let ids = |p: &RecordingPolicy| p.rules.iter().map(|r| r.id).collect::<HashSet<_>>();
    let (before, after) = (ids(old), ids(new));
    let describe = |p: &RecordingPolicy, keep: &dyn Fn(&Uuid) -> bool| {
        p.rules
            .iter()
            .filter(|r| keep(&r.id))
            .map(|r| json!({"id": r.id, "list": r.list, "kind": r.kind}))
            .collect::<Vec<_>>()
    };
    json!({
        "recording_policy": {
            "mode": new.mode,
            "failure_mode": new.failure_mode,
            "rules": new.rules.len(),
            "added": describe(new, &|id| !before.contains(id)),
            "removed": describe(old, &|id| !after.contains(id)),
        }
    })
}
