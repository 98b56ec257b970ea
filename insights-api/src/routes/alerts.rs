//! Alerts and alert channels (issue 17 §4). A tenant administrator
//! (`manage-settings`) sees and acknowledges the tenant's alerts and
//! manages its channels; a platform operator (`operate-platform`, no
//! tenant) the installation's.
//!
//! * `GET /api/admin/alerts?open=true&limit=100`: newest first.
//! * `POST /api/admin/alerts/{id}/ack`: acknowledges (audited
//!   `alert-acknowledged`); `409 already-acknowledged` the second time.
//! * `GET /api/admin/alert-channels`: without secrets (`has_secret`).
//! * `POST /api/admin/alert-channels`: `webhook` (`url`, `secret`: the
//!   HMAC key, at least 16 characters), `email` (`recipients`), `teams`
//!   (`url`: the incoming-webhook URL, kept as a secret). Secrets are
//!   write-only: sealed under the owner's key-encryption key, never
//!   shown. Audited `alert-channel-change` (id and kind only).
//! * `DELETE /api/admin/alert-channels/{id}`: audited.
//!
//! Installation events (no tenant chain) go to the log, like operators'
//! sign-ins.

use actix_web::{HttpRequest, HttpResponse, web};
use insights_core::crypto::{PLATFORM_KEY_OWNER, seal_secret};
use insights_core::domain::{
    Alert, AlertChannel, AlertChannelId, AlertId, AuditAction, ChannelKind, Permission, Realm, now,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::recordings::{Audited, audit};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/alerts", web::get().to(list_alerts))
        .route("/api/admin/alerts/{id}/ack", web::post().to(ack_alert))
        .route("/api/admin/alert-channels", web::get().to(list_channels))
        .route("/api/admin/alert-channels", web::post().to(create_channel))
        .route(
            "/api/admin/alert-channels/{id}",
            web::delete().to(delete_channel),
        );
}

/// The caller's realm: their tenant (`manage-settings`) or, for a
/// platform operator, the installation (`operate-platform`).
fn realm(p: &Principal) -> Result<Realm, ApiError> {
    match p.tenant_id {
        Some(t) => {
            p.require(Permission::ManageSettings)?;
            Ok(Realm::Tenant(t))
        }
        None => {
            p.require(Permission::OperatePlatform)?;
            Ok(Realm::Platform)
        }
    }
}

/// Audits in the tenant's chain, or logs an installation event.
async fn audited(
    state: &AppState,
    realm: Realm,
    p: &Principal,
    req: &HttpRequest,
    action: AuditAction,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    match realm {
        Realm::Tenant(t) => {
            audit(
                state,
                t,
                p,
                req,
                Audited {
                    action,
                    recording: None,
                    reason: None,
                    details,
                },
            )
            .await
        }
        Realm::Platform => {
            tracing::info!(audit = action.as_str(), actor = p.actor(), details = %details, "installation alerts");
            Ok(())
        }
    }
}

fn parse<T: From<Uuid>>(s: &str) -> Result<T, ApiError> {
    Uuid::parse_str(s)
        .map(T::from)
        .map_err(|_| ApiError::NotFound)
}

/// An alert as the API shows it: ids, counts, codes and times.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    pub id: String,
    pub tenant_id: Option<String>,
    pub kind: String,
    pub severity: String,
    pub key: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Map<String, serde_json::Value>,
    pub occurrences: i64,
    #[schema(value_type = String)]
    pub first_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = String)]
    pub last_at: chrono::DateTime<chrono::Utc>,
    /// `pending`, `delivered`, `failed`, `rate-limited` or `no-channel`.
    pub delivery: String,
    /// Per channel id: `sent` or an error code.
    #[schema(value_type = Object)]
    pub deliveries: serde_json::Map<String, serde_json::Value>,
    #[schema(value_type = Option<String>)]
    pub acknowledged_at: Option<chrono::DateTime<chrono::Utc>>,
    pub acknowledged_by: Option<String>,
}

impl From<Alert> for AlertView {
    fn from(a: Alert) -> Self {
        AlertView {
            id: a.id.to_string(),
            tenant_id: a.tenant_id.map(|t| t.to_string()),
            kind: a.kind.as_str().into(),
            severity: a.kind.severity().into(),
            key: a.key,
            details: a.details,
            occurrences: a.occurrences,
            first_at: a.first_at,
            last_at: a.last_at,
            delivery: a.delivery,
            deliveries: a.deliveries,
            acknowledged_at: a.acknowledged_at,
            acknowledged_by: a.acknowledged_by,
        }
    }
}

/// Query of `GET /api/admin/alerts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Only unacknowledged alerts (default false).
    #[serde(default)]
    pub open: bool,
    /// At most this many (1-1000, default 100).
    pub limit: Option<u32>,
}

/// `GET /api/admin/alerts`.
#[utoipa::path(get, path = "/api/admin/alerts", tag = "administration",
    params(AlertQuery),
    responses(
        (status = 200, description = "Alerts, newest first", body = [AlertView]),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn list_alerts(
    p: Principal,
    state: web::Data<AppState>,
    q: web::Query<AlertQuery>,
) -> Result<HttpResponse, ApiError> {
    let realm = realm(&p)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let alerts = state.store.alerts(realm, q.open, limit).await?;
    let view: Vec<AlertView> = alerts.into_iter().map(AlertView::from).collect();
    Ok(HttpResponse::Ok().json(view))
}

/// `POST /api/admin/alerts/{id}/ack`.
#[utoipa::path(post, path = "/api/admin/alerts/{id}/ack", tag = "administration",
    params(("id" = String, Path, description = "Alert id")),
    responses(
        (status = 200, description = "The acknowledged alert", body = AlertView),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such alert", body = super::openapi::Problem),
        (status = 409, description = "Already acknowledged", body = super::openapi::Problem)))]
async fn ack_alert(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let realm = realm(&p)?;
    let id: AlertId = parse(&path)?;
    let Some(alert) = state
        .store
        .acknowledge_alert(realm, id, &p.actor(), now())
        .await?
    else {
        return Err(ApiError::Conflict {
            code: "already-acknowledged",
            detail: "the alert was acknowledged already".into(),
        });
    };
    audited(
        &state,
        realm,
        &p,
        &req,
        AuditAction::AlertAcknowledged,
        json!({"alert_id": alert.id, "kind": alert.kind.as_str(), "occurrences": alert.occurrences}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(AlertView::from(alert)))
}

/// A channel as the API shows it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    pub id: String,
    /// `webhook`, `email` or `teams`.
    pub kind: String,
    pub name: String,
    /// Webhook: the URL; e-mail: the recipients; Teams: the URL's host.
    pub target: String,
    pub has_secret: bool,
    pub enabled: bool,
    #[schema(value_type = String)]
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<&AlertChannel> for ChannelView {
    fn from(c: &AlertChannel) -> Self {
        ChannelView {
            id: c.id.to_string(),
            kind: c.kind.as_str().into(),
            name: c.name.clone(),
            target: c.target.clone(),
            has_secret: c.secret.is_some(),
            enabled: c.enabled,
            created_at: c.created_at,
        }
    }
}

/// `POST /api/admin/alert-channels`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannelBody {
    /// `webhook`, `email` or `teams`.
    pub kind: String,
    pub name: String,
    /// Webhook: where to POST; Teams: the incoming-webhook URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Webhook: the HMAC-SHA256 key (at least 16 characters). Write-only.
    #[serde(default)]
    pub secret: Option<String>,
    /// E-mail: the recipients.
    #[serde(default)]
    pub recipients: Option<Vec<String>>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

fn bad(code: &'static str, detail: &str) -> ApiError {
    ApiError::BadRequest {
        code,
        detail: detail.into(),
    }
}

fn check_url(u: &str) -> Result<url::Url, ApiError> {
    let url = url::Url::parse(u).map_err(|_| bad("invalid-channel", "url is not a URL"))?;
    match url.scheme() {
        "https" | "http" if url.host_str().is_some() => Ok(url),
        _ => Err(bad("invalid-channel", "url must be an https URL")),
    }
}

/// `GET /api/admin/alert-channels`.
#[utoipa::path(get, path = "/api/admin/alert-channels", tag = "administration",
    responses(
        (status = 200, description = "The channels (secrets never shown)", body = [ChannelView]),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn list_channels(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let realm = realm(&p)?;
    let channels = state.store.alert_channels(realm).await?;
    let view: Vec<ChannelView> = channels.iter().map(ChannelView::from).collect();
    Ok(HttpResponse::Ok().json(view))
}

/// `POST /api/admin/alert-channels`.
#[utoipa::path(post, path = "/api/admin/alert-channels", tag = "administration",
    request_body = NewChannelBody,
    responses(
        (status = 201, description = "The channel (without its secret)", body = ChannelView),
        (status = 400, description = "Malformed body or an invalid channel", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn create_channel(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<NewChannelBody>,
) -> Result<HttpResponse, ApiError> {
    let realm = realm(&p)?;
    let b = body.into_inner();
    let kind: ChannelKind = b
        .kind
        .parse()
        .map_err(|_| bad("invalid-channel", "kind must be webhook, email or teams"))?;
    let name = b.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(bad("invalid-channel", "name must be 1-100 characters"));
    }
    let id = AlertChannelId::new();
    let (target, secret) = match kind {
        ChannelKind::Webhook => {
            let url = check_url(b.url.as_deref().unwrap_or_default())?;
            let secret = b.secret.unwrap_or_default();
            if secret.chars().count() < 16 {
                return Err(bad(
                    "invalid-channel",
                    "a webhook needs a secret of at least 16 characters",
                ));
            }
            (
                url.to_string(),
                Some(zeroize::Zeroizing::new(secret.into_bytes())),
            )
        }
        ChannelKind::Teams => {
            let raw = b.url.unwrap_or_default();
            let url = check_url(&raw)?;
            let host = url.host_str().unwrap_or_default().to_owned();
            (host, Some(zeroize::Zeroizing::new(raw.into_bytes())))
        }
        ChannelKind::Email => {
            let to = b.recipients.unwrap_or_default();
            if to.is_empty() || to.len() > 20 {
                return Err(bad(
                    "invalid-channel",
                    "an e-mail channel needs 1-20 recipients",
                ));
            }
            for r in &to {
                insights_core::domain::validate_email(r)
                    .map_err(|_| bad("invalid-channel", "a recipient is not an e-mail address"))?;
            }
            (to.join(","), None)
        }
    };
    let owner = realm.tenant().unwrap_or(PLATFORM_KEY_OWNER);
    let sealed = match secret {
        Some(s) => Some(
            seal_secret(
                state.keys.as_ref(),
                owner,
                &AlertChannel::secret_context(id),
                &s,
            )
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("sealing a channel secret: {e}")))?,
        ),
        None => None,
    };
    let channel = AlertChannel {
        id,
        tenant_id: realm.tenant(),
        kind,
        name,
        target,
        secret: sealed,
        enabled: b.enabled,
        created_at: now(),
        created_by: p.actor(),
    };
    state.store.put_alert_channel(realm, &channel).await?;
    audited(
        &state,
        realm,
        &p,
        &req,
        AuditAction::AlertChannelChange,
        json!({"channel_id": channel.id, "kind": kind.as_str(), "change": "added"}),
    )
    .await?;
    Ok(HttpResponse::Created().json(ChannelView::from(&channel)))
}

/// `DELETE /api/admin/alert-channels/{id}`.
#[utoipa::path(delete, path = "/api/admin/alert-channels/{id}", tag = "administration",
    params(("id" = String, Path, description = "Channel id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such channel", body = super::openapi::Problem)))]
async fn delete_channel(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let realm = realm(&p)?;
    let id: AlertChannelId = parse(&path)?;
    if !state.store.delete_alert_channel(realm, id).await? {
        return Err(ApiError::NotFound);
    }
    audited(
        &state,
        realm,
        &p,
        &req,
        AuditAction::AlertChannelChange,
        json!({"channel_id": id, "change": "removed"}),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
