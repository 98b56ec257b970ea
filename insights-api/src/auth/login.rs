//! Local logins and logouts (the logic behind `POST /api/auth/login` and
//! `POST /api/auth/logout`).
//!
//! Every outcome is audited in the tenant's chain (who: account id or
//! `unknown`; what: `login` / `login-failed` with a reason; when; from
//! where: the client address) — never the email, password or code.
//! Platform operators have no tenant chain: their logins go to the log
//! (ids only).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use insights_core::domain::{
    AuditAction, LocalAccount, LoginSession, NewAuditEvent, Realm, normalize_email, now,
};
use insights_core::store::StoreError;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::password::{self, MAX_PASSWORD_LEN};
use super::token::{API_TOKEN_AUDIENCE, API_TOKEN_ISSUER, ApiClaims};
use super::{AuthMethod, Authenticator, Principal, secs, session, totp, unauthorized, unix_now};
use crate::error::ApiError;

/// `POST /api/auth/login` body.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Tenant name; omitted for a platform operator.
    #[serde(default)]
    pub tenant: Option<String>,
    pub email: String,
    pub password: String,
    /// The current TOTP code (required for the roles in `auth.mfa_roles`).
    #[serde(default)]
    pub totp: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").finish_non_exhaustive()
    }
}

/// `POST /api/auth/login` answer (the session cookie is set as well).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// API token for `Authorization: Bearer`.
    pub token: String,
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
    /// Seconds until `expires_at`.
    pub expires_in: u64,
    /// When the session (and the cookie) ends at the latest.
    pub session_expires_at: DateTime<Utc>,
    /// The session's CSRF token (also in the readable `insights_csrf`
    /// cookie): a browser sends it as `X-CSRF-Token` on every POST, PUT,
    /// PATCH and DELETE it authenticates with the session cookie.
    pub csrf_token: String,
}

/// What a successful login produced.
pub(crate) struct LoginOutcome {
    pub response: LoginResponse,
    pub session_token: Zeroizing<String>,
}

/// Why a login failed (audit detail; never shown to the client).
#[derive(Clone, Copy)]
enum Failure {
    UnknownAccount,
    WrongPassword,
    Inactive,
    MissingCode,
    WrongCode,
    MfaNotEnrolled,
    ReplayedCode,
    Locked,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::UnknownAccount => "unknown-account",
            Failure::WrongPassword => "wrong-password",
            Failure::Inactive => "account-inactive",
            Failure::MissingCode => "totp-missing",
            Failure::WrongCode => "totp-wrong",
            Failure::MfaNotEnrolled => "totp-not-enrolled",
            Failure::ReplayedCode => "totp-replayed",
            Failure::Locked => "account-locked",
        }
    }

    /// Whether it counts towards the lockout.
    fn counts(self) -> bool {
        !matches!(self, Failure::Inactive | Failure::Locked)
    }
}

fn too_long(r: &LoginRequest) -> bool {
    r.email.len() > 254
        || r.password.len() > 4 * MAX_PASSWORD_LEN
        || r.totp.as_ref().is_some_and(|c| c.len() > 16)
        || r.tenant.as_ref().is_some_and(|t| t.len() > 63)
}

impl Authenticator {
    /// Signs in a local account.
    pub(crate) async fn login(
        &self,
        req: LoginRequest,
        client: Option<IpAddr>,
    ) -> Result<LoginOutcome, ApiError> {
        let at = now();
        if let Some(ip) = client {
            self.throttle
                .check_address(ip, at)
                .map_err(|s| ApiError::TooManyRequests {
                    retry_after_secs: s,
                })?;
        }
        if too_long(&req) {
            return Err(ApiError::BadRequest {
                code: "invalid-body",
                detail: "a field of the login is too long".into(),
            });
        }
        let email = normalize_email(&req.email);
        let realm = match &req.tenant {
            None => Some(Realm::Platform),
            Some(name) => match self.store.tenant_by_name(name).await {
                Ok(t) => Some(Realm::Tenant(t.id)),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
        };
        let account = match realm {
            Some(r) => match self.store.account_by_email(r, &email).await {
                Ok(a) => Some(a),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let Some(account) = account else {
            let key = format!("{}\u{0}{email}", req.tenant.as_deref().unwrap_or(""));
            if let Err(s) = self.throttle.check_unknown(&key, at) {
                self.audit_failure(realm, None, Failure::Locked, client)
                    .await;
                return Err(ApiError::Locked {
                    retry_after_secs: s,
                });
            }
            let pw = Zeroizing::new(req.password);
            blocking(move || password::burn_verification(&pw)).await?;
            self.throttle.unknown_failed(&key, at);
            if let Some(ip) = client {
                self.throttle.address_failed(ip, at);
            }
            self.audit_failure(realm, None, Failure::UnknownAccount, client)
                .await;
            return Err(unauthorized("invalid-credentials"));
        };
        let realm = account.realm();
        if let Some(until) = account.locked_until.filter(|u| *u > at) {
            self.audit_failure(Some(realm), Some(&account), Failure::Locked, client)
                .await;
            return Err(ApiError::Locked {
                retry_after_secs: super::throttle::secs_until(until, at),
            });
        }
        match self
            .check_credentials(&account, &req.totp, req.password, at)
            .await?
        {
            Err(f) => {
                self.fail(&account, f, client, at).await?;
                Err(unauthorized("invalid-credentials"))
            }
            Ok(step) => {
                if !self
                    .store
                    .record_login_success(realm, account.id, at, step)
                    .await?
                {
                    self.fail(&account, Failure::ReplayedCode, client, at)
                        .await?;
                    return Err(unauthorized("invalid-credentials"));
                }
                self.succeed(&account, step.is_some(), client, at).await
            }
        }
    }

    /// `Ok(Ok(totp step))` when password (and code, if needed) are right.
    async fn check_credentials(
        &self,
        a: &LocalAccount,
        code: &Option<String>,
        password: String,
        at: DateTime<Utc>,
    ) -> Result<Result<Option<i64>, Failure>, ApiError> {
        let pw = Zeroizing::new(password);
        let phc = a.password_hash.clone();
        let ok = blocking(move || password::verify_password(&pw, &phc)).await?;
        if !ok {
            return Ok(Err(Failure::WrongPassword));
        }
        if !a.active {
            return Ok(Err(Failure::Inactive));
        }
        let needs_code = self.settings.requires_mfa(a.role) || a.totp.is_some();
        if !needs_code {
            return Ok(Ok(None));
        }
        let Some(sealed) = &a.totp else {
            tracing::warn!(account = %a.id, "TOTP is required for this role but not enrolled");
            return Ok(Err(Failure::MfaNotEnrolled));
        };
        let Some(code) = code.as_deref().filter(|c| !c.trim().is_empty()) else {
            return Ok(Err(Failure::MissingCode));
        };
        let owner = a
            .tenant_id
            .unwrap_or(insights_core::crypto::PLATFORM_KEY_OWNER);
        let unix = u64::try_from(at.timestamp()).unwrap_or(0);
        match totp::check(self.keys.as_ref(), owner, a.id, sealed, code, unix).await {
            Ok(Some(step)) => Ok(Ok(Some(step))),
            Ok(None) => Ok(Err(Failure::WrongCode)),
            Err(e) => Err(ApiError::internal(anyhow::anyhow!(
                "account {}: cannot check the TOTP code: {e}",
                a.id
            ))),
        }
    }

    async fn fail(
        &self,
        a: &LocalAccount,
        f: Failure,
        client: Option<IpAddr>,
        at: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        if f.counts() {
            let r = self
                .store
                .record_login_failure(
                    a.realm(),
                    a.id,
                    at,
                    self.settings.lockout_threshold,
                    secs(self.settings.lockout_secs),
                )
                .await?;
            if r.locked_until.is_some_and(|u| u > at) {
                tracing::warn!(account = %a.id, "account locked after repeated failed logins");
            }
        }
        if let Some(ip) = client {
            self.throttle.address_failed(ip, at);
        }
        self.audit_failure(Some(a.realm()), Some(a), f, client)
            .await;
        Ok(())
    }

    async fn succeed(
        &self,
        a: &LocalAccount,
        mfa: bool,
        client: Option<IpAddr>,
        at: DateTime<Utc>,
    ) -> Result<LoginOutcome, ApiError> {
        let realm = a.realm();
        // Audited before anything is handed out: no unaudited login.
        self.audit(
            realm,
            NewAuditEvent {
                actor: a.id.to_string(),
                action: AuditAction::Login,
                recording_id: None,
                target: Some(a.id.to_string()),
                reason: None,
                source: client.map(|c| c.to_string()),
                details: serde_json::json!({ "method": "password", "mfa": mfa, "role": a.role }),
            },
        )
        .await?;
        let (token, hash) = session::new_token(realm);
        let max = secs(self.settings.session_max_secs);
        let s = LoginSession {
            token_hash: hash.clone(),
            tenant_id: a.tenant_id,
            account_id: a.id,
            created_at: at,
            last_seen_at: at,
            expires_at: at + max,
            revoked_at: None,
        };
        self.store.create_session(realm, &s).await?;
        let iat = unix_now();
        let ttl = self.settings.token_ttl_secs;
        let claims = ApiClaims {
            iss: API_TOKEN_ISSUER.into(),
            aud: API_TOKEN_AUDIENCE.into(),
            sub: a.id.to_string(),
            tid: a.tenant_id.map(|t| t.to_string()),
            sid: hash,
            iat,
            exp: iat + ttl,
        };
        let api_token = self
            .tokens
            .issue(&claims)
            .map_err(|_| ApiError::internal(anyhow::anyhow!("cannot sign an API token")))?;
        Ok(LoginOutcome {
            response: LoginResponse {
                token: api_token,
                token_type: "Bearer",
                expires_at: at + secs(ttl),
                expires_in: ttl,
                session_expires_at: s.expires_at,
                csrf_token: session::csrf_token(&token),
            },
            session_token: token,
        })
    }

    /// Revokes the principal's session (if it has one) and audits it.
    /// Returns whether a live session ended.
    pub(crate) async fn logout(
        &self,
        p: &Principal,
        client: Option<IpAddr>,
    ) -> Result<bool, ApiError> {
        let Some((realm, hash)) = &p.session else {
            return Ok(false);
        };
        let revoked = match (realm, &p.subject) {
            // A session of a directory principal signed in through OIDC.
            (Realm::Tenant(t), super::Subject::Oidc(_)) => {
                self.store.revoke_oidc_session(*t, hash, now()).await
            }
            _ => self.store.revoke_session(*realm, hash, now()).await,
        };
        let revoked = match revoked {
            Ok(r) => r,
            Err(StoreError::NotFound) => false,
            Err(e) => return Err(e.into()),
        };
        if revoked {
            let via = match p.auth_method {
                AuthMethod::ApiToken => "api-token",
                AuthMethod::SessionCookie => "session-cookie",
                AuthMethod::Oidc => "oidc",
            };
            self.audit(
                *realm,
                NewAuditEvent {
                    actor: p.actor(),
                    action: AuditAction::Logout,
                    recording_id: None,
                    target: Some(p.actor()),
                    reason: None,
                    source: client.map(|c| c.to_string()),
                    details: serde_json::json!({ "via": via }),
                },
            )
            .await?;
        }
        Ok(revoked)
    }

    /// Audits a failed login; a failing audit write is logged, and the
    /// login is refused anyway.
    async fn audit_failure(
        &self,
        realm: Option<Realm>,
        a: Option<&LocalAccount>,
        f: Failure,
        client: Option<IpAddr>,
    ) {
        let Some(realm) = realm else {
            tracing::info!(reason = f.as_str(), "login failed for an unknown tenant");
            return;
        };
        let actor = a
            .map(|a| a.id.to_string())
            .unwrap_or_else(|| "unknown".into());
        let ev = NewAuditEvent {
            actor: actor.clone(),
            action: AuditAction::LoginFailed,
            recording_id: None,
            target: a.map(|a| a.id.to_string()),
            reason: None,
            source: client.map(|c| c.to_string()),
            details: serde_json::json!({ "method": "password", "reason": f.as_str() }),
        };
        if let Err(e) = self.audit(realm, ev).await {
            tracing::error!(error = %e, "cannot audit a failed login");
        }
    }

    /// Appends to the tenant's audit chain; platform events go to the log.
    async fn audit(&self, realm: Realm, ev: NewAuditEvent) -> Result<(), ApiError> {
        match realm {
            Realm::Tenant(t) => {
                self.store.append_audit(t, ev).await?;
            }
            Realm::Platform => {
                tracing::info!(
                    audit = ev.action.as_str(),
                    actor = ev.actor,
                    source = ev.source.as_deref().unwrap_or("-"),
                    details = %ev.details,
                    "platform operator authentication"
                );
            }
        }
        Ok(())
    }
}

/// Runs CPU-heavy work (argon2) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("password check task failed: {e}")))
}
