//! First run: while no tenant exists, `insights serve` prints a one-time
//! setup link (`/setup#<token>`, valid for an hour, usable from any
//! address: the token is the credential). Its page posts the token with
//! the first tenant's name and its administrator's email and password to
//! `POST /api/setup`, which provisions the tenant (container, key) and
//! the account; the administrator's first sign-in then enrols TOTP.
//!
//! The token (two random UUIDs, 244 bits) lives in this process's memory
//! only; it is spent by
//! the first successful use (or by a tenant created otherwise, e.g. with
//! `insights admin tenant add`). It is never logged, only printed once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use insights_api::ApiError;
use insights_api::auth::accounts::{AddUserError, NewUser, add_first_admin};
use insights_core::domain::{NewTenant, Role};
use zeroize::Zeroizing;

use crate::platform::Platform;

/// How long the link works.
pub const SETUP_TTL: Duration = Duration::from_secs(3600);

/// The first-run state of one `serve` process (inactive when a tenant
/// exists at start).
#[derive(Clone)]
pub struct FirstRun {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    platform: Platform,
    /// The token and its expiry; `None` once spent.
    pending: Mutex<Option<(Zeroizing<String>, Instant)>>,
    /// Printed once, then dropped.
    token: Mutex<Option<Zeroizing<String>>>,
}

impl FirstRun {
    /// A fresh token when the installation has no tenant yet.
    pub async fn prepare(platform: &Platform) -> anyhow::Result<FirstRun> {
        if !platform.store.list_tenants().await?.is_empty() {
            return Ok(FirstRun { inner: None });
        }
        let token = Zeroizing::new(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ));
        Ok(FirstRun {
            inner: Some(Arc::new(Inner {
                platform: platform.clone(),
                pending: Mutex::new(Some((token.clone(), Instant::now() + SETUP_TTL))),
                token: Mutex::new(Some(token)),
            })),
        })
    }

    /// Mounts `POST /api/setup` (always: without a pending token it
    /// answers `404 setup-unavailable`).
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let me = web::Data::new(self.clone());
        cfg.app_data(me).route("/api/setup", web::post().to(setup));
    }

    /// Prints the link (once) for a server listening on `addr`.
    pub fn announce(&self, scheme: &str, addr: std::net::SocketAddr) {
        let Some(inner) = &self.inner else { return };
        let Some(token) = inner.token.lock().ok().and_then(|mut t| t.take()) else {
            return;
        };
        println!(
            "insights: no tenant yet: open {scheme}://{addr}/setup#{} within an hour to create the first tenant and its administrator (the link works once)",
            token.as_str()
        );
    }

    /// Spends the token if `token` is it and it is still valid.
    fn spend(&self, token: &str) -> bool {
        let Some(inner) = &self.inner else {
            return false;
        };
        let Ok(mut pending) = inner.pending.lock() else {
            return false;
        };
        let same = match &*pending {
            Some((t, until)) if Instant::now() < *until => {
                let (a, b) = (t.as_bytes(), token.as_bytes());
                a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
            }
            _ => false,
        };
        if same {
            *pending = None;
        }
        same
    }
}

struct SetupBody {
    token: String,
    tenant: String,
    email: String,
    password: String,
}

fn unavailable() -> ApiError {
    ApiError::NotFound
}

/// `POST /api/setup`.
async fn setup(
    first: web::Data<FirstRun>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let field = |k: &str| -> Result<String, ApiError> {
        body.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::BadRequest {
                code: "invalid-body",
                detail: "token, tenant, email and password are required strings".into(),
            })
    };
    let b = SetupBody {
        token: field("token")?,
        tenant: field("tenant")?,
        email: field("email")?,
        password: field("password")?,
    };
    let Some(inner) = &first.inner else {
        return Err(unavailable());
    };
    if b.token.len() > 128 || b.password.len() > 4096 || b.email.len() > 254 {
        return Err(ApiError::BadRequest {
            code: "invalid-body",
            detail: "a field is too long".into(),
        });
    }
    let password = Zeroizing::new(b.password);
    // Checked before the token is spent, so a typo does not burn it.
    insights_api::auth::password::check_policy(&password).map_err(|e| ApiError::BadRequest {
        code: "bad-password",
        detail: e.to_string(),
    })?;
    insights_core::domain::validate_email(&b.email).map_err(|detail| ApiError::BadRequest {
        code: "bad-email",
        detail,
    })?;
    insights_core::domain::validate_tenant_name(&b.tenant).map_err(|detail| {
        ApiError::BadRequest {
            code: "bad-tenant-name",
            detail,
        }
    })?;
    let tenants = inner
        .platform
        .store
        .list_tenants()
        .await
        .map_err(ApiError::from)?;
    if !tenants.is_empty() || !first.spend(&b.token) {
        return Err(unavailable());
    }
    let tenant = inner
        .platform
        .add_tenant(
            NewTenant {
                name: b.tenant,
                directory_tenant_id: None,
            },
            "setup",
        )
        .await
        .map_err(ApiError::internal)?;
    let created = add_first_admin(
        &inner.platform.store,
        NewUser {
            tenant: Some(tenant.id),
            email: b.email,
            role: Role::TenantAdmin,
            security_profile_id: None,
            directory_user_id: None,
        },
        &password,
    )
    .await
    .map_err(|e| match e {
        AddUserError::Store(e) => ApiError::from(e),
        other => ApiError::internal(other),
    })?;
    tracing::info!(tenant = %tenant.id, account = %created.account.id, "first run: tenant and administrator created");
    Ok(HttpResponse::Created().json(serde_json::json!({
        "tenant": tenant.name,
        "tenant_id": tenant.id,
        "account_id": created.account.id,
        "next": "sign in: the first sign-in enrols TOTP in your authenticator app",
    })))
}
