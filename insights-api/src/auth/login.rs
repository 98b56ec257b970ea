//! Local logins, first sign-ins and logouts (the logic behind
//! `POST /api/auth/login`, `POST /api/auth/first-sign-in` and
//! `POST /api/auth/logout`).
//!
//! A login under attack:
//!
//! 1. the client address's failure budget is checked (429);
//! 2. a password-check permit is taken ([`Authenticator`]'s semaphore,
//!    `auth.max_concurrent_password_checks`): none free → 429 with
//!    `Retry-After`;
//! 3. the attempt is counted in the store **before** the password is
//!    checked ([`AccountStore::claim_login_attempt`], keyed by a digest
//!    of tenant name and email whether or not the account exists, shared
//!    by every process on the database): while the key is locked nothing
//!    is evaluated, not even a correct password (423 with `Retry-After`);
//!    so of any number of parallel guesses at most
//!    `auth.lockout_threshold` are evaluated;
//! 4. only then argon2 runs; a success forgets the key's count.
//!
//! A correct password of an account whose first sign-in is still to come
//! (the password an administrator set; or TOTP required by the account's
//! permissions and not enrolled) opens no session: the answer is a
//! challenge for `POST /api/auth/first-sign-in`, where the user proves a
//! TOTP seed they enrol themselves, chooses a new password, and gets ten
//! single-use recovery codes once.
//!
//! Every outcome is audited in the tenant's chain (who: account id or
//! `unknown`; what: `login` / `login-failed` with a reason; when; from
//! where: the client address) — never the email, password or code.
//! Platform operators have no tenant chain: their logins go to the log
//! (ids only).
//!
//! [`AccountStore::claim_login_attempt`]: insights_core::store::AccountStore::claim_login_attempt

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use insights_core::domain::{
    AccountId, AuditAction, FirstSignIn, LocalAccount, LoginAttempt, LoginSession, NewAuditEvent,
    Realm, normalize_email, now,
};
use insights_core::store::StoreError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::SemaphorePermit;
use zeroize::Zeroizing;

use super::password::{self, MAX_PASSWORD_LEN};
use super::token::{API_TOKEN_AUDIENCE, API_TOKEN_ISSUER, ApiClaims};
use super::{
    AuthMethod, Authenticator, Principal, recovery, reveals_content, secs, session, totp,
    unauthorized, unix_now,
};
use crate::error::ApiError;

/// Audience of a first sign-in challenge (never accepted as an API token).
pub const FIRST_SIGN_IN_AUDIENCE: &str = "insights-first-sign-in";
/// How long a first sign-in challenge is valid.
pub const FIRST_SIGN_IN_TTL_SECS: u64 = 600;

/// `POST /api/auth/login` body.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Tenant name; omitted for a platform operator.
    #[serde(default)]
    pub tenant: Option<String>,
    pub email: String,
    pub password: String,
    /// The current TOTP code (required once TOTP is enrolled).
    #[serde(default)]
    pub totp: Option<String>,
    /// A single-use recovery code instead of the TOTP code.
    #[serde(default)]
    pub recovery_code: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").finish_non_exhaustive()
    }
}

/// `POST /api/auth/first-sign-in` body.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FirstSignInRequest {
    /// The `challenge` of the login answer.
    pub challenge: String,
    /// The user's own new password (required when
    /// `password_change_required`; 12 to 1024 characters, not the old one).
    #[serde(default)]
    pub new_password: Option<String>,
    /// A current code of the seed in `totp_uri` (required when
    /// `totp_enrolment_required`).
    #[serde(default)]
    pub totp: Option<String>,
}

impl std::fmt::Debug for FirstSignInRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstSignInRequest").finish_non_exhaustive()
    }
}

/// A signed-in answer (the session cookie is set as well).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// `signed-in`.
    pub status: &'static str,
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
    /// After a first sign-in only: the ten single-use recovery codes,
    /// shown this once (only their digests are stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

/// The answer to a correct password whose first sign-in is still to come.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct FirstSignInChallenge {
    /// `first-sign-in`.
    pub status: &'static str,
    /// Send back to `POST /api/auth/first-sign-in` within `expires_in`.
    pub challenge: String,
    pub expires_in: u64,
    pub password_change_required: bool,
    pub totp_enrolment_required: bool,
    /// `otpauth://totp/...` of the seed to enrol (shown to the user only;
    /// a new seed at every login until the enrolment is completed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_uri: Option<String>,
    /// The same seed in base32, for typing into an app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_secret: Option<String>,
}

impl std::fmt::Debug for FirstSignInChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstSignInChallenge")
            .finish_non_exhaustive()
    }
}

/// What a successful login produced.
pub(crate) struct LoginOutcome {
    pub response: LoginResponse,
    pub session_token: Zeroizing<String>,
}

/// What a correct login answers.
pub(crate) enum LoginAnswer {
    SignedIn(LoginOutcome),
    FirstSignIn(FirstSignInChallenge),
}

/// Why a login failed (audit detail; never shown to the client).
#[derive(Clone, Copy)]
enum Failure {
    UnknownAccount,
    WrongPassword,
    Inactive,
    MissingCode,
    WrongCode,
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
            Failure::ReplayedCode => "totp-replayed",
            Failure::Locked => "account-locked",
        }
    }
}

/// What correct credentials lead to.
struct Checked {
    /// The TOTP step used (never accepted again).
    step: Option<i64>,
    /// Whether a second factor was proven.
    mfa: bool,
    /// Password change or TOTP enrolment still to come.
    first_sign_in: bool,
    /// TOTP must be enrolled (the account's permissions require it).
    enrol_totp: bool,
}

fn too_long(r: &LoginRequest) -> bool {
    r.email.len() > 254
        || r.password.len() > 4 * MAX_PASSWORD_LEN
        || r.totp.as_ref().is_some_and(|c| c.len() > 24)
        || r.recovery_code.as_ref().is_some_and(|c| c.len() > 32)
        || r.tenant.as_ref().is_some_and(|t| t.len() > 63)
}

/// The login throttle key of a realm name and email: a digest, so the
/// store never holds a tried email in clear.
fn throttle_key(tenant: Option<&str>, email: &str) -> String {
    let tenant = tenant.map(|t| t.trim().to_lowercase()).unwrap_or_default();
    let d = Sha256::digest(format!("insights-login\u{0}{tenant}\u{0}{email}"));
    hex::encode(d)
}

/// The throttle key of the code guesses of one first sign-in.
fn first_sign_in_key(id: AccountId) -> String {
    hex::encode(Sha256::digest(format!("insights-first-sign-in\u{0}{id}")))
}

impl Authenticator {
    /// A permit to hash a password, or `429` with `Retry-After` when
    /// `auth.max_concurrent_password_checks` are running already.
    fn password_permit(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        self.password_checks
            .try_acquire()
            .map_err(|_| ApiError::TooManyRequests {
                retry_after_secs: 1,
            })
    }

    /// Signs in a local account.
    pub(crate) async fn login(
        &self,
        req: LoginRequest,
        client: Option<IpAddr>,
    ) -> Result<LoginAnswer, ApiError> {
        let at = now();
        if let Some(ip) = client {
            self.throttle.check_address(ip, at).await?;
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
            // Tenant names are lower-case (`validate_tenant_name`): typed
            // in any case, like e-mail addresses.
            Some(name) => match self.store.tenant_by_name(&name.trim().to_lowercase()).await {
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
        let _permit = self.password_permit()?;
        // Counted before anything is evaluated; the same for accounts that
        // exist and those that do not.
        let key = throttle_key(req.tenant.as_deref(), &email);
        if let LoginAttempt::Locked { until } = self
            .store
            .claim_login_attempt(
                &key,
                at,
                self.settings.lockout_threshold,
                secs(self.settings.lockout_secs),
            )
            .await?
        {
            self.audit_failure(realm, account.as_ref(), Failure::Locked, client)
                .await;
            return Err(ApiError::Locked {
                retry_after_secs: super::throttle::secs_until(until, at),
            });
        }
        let Some(account) = account else {
            let pw = Zeroizing::new(req.password);
            blocking(move || password::burn_verification(&pw)).await?;
            if let Some(ip) = client {
                self.throttle.address_failed(ip, at).await;
            }
            self.audit_failure(realm, None, Failure::UnknownAccount, client)
                .await;
            return Err(unauthorized("invalid-credentials"));
        };
        let realm = account.realm();
        let checked = match self.check_credentials(&account, &req, at).await? {
            Ok(c) => c,
            Err(f) => {
                self.fail(&account, f, client, at).await;
                return Err(unauthorized("invalid-credentials"));
            }
        };
        if checked.step.is_some() || !checked.first_sign_in {
            // Records the step (a code is accepted once) and the login.
            if !self
                .store
                .record_login_success(realm, account.id, at, checked.step)
                .await?
            {
                // Password and code were right, the code was used before:
                // only its owner can have it, so say so (wait for the next).
                self.fail(&account, Failure::ReplayedCode, client, at).await;
                return Err(unauthorized("totp-code-reused"));
            }
        }
        self.store.clear_login_attempts(&key).await?;
        if checked.first_sign_in {
            return self
                .first_sign_in_challenge(&account, checked.enrol_totp, client)
                .await
                .map(LoginAnswer::FirstSignIn);
        }
        self.succeed(&account, checked.mfa, client, at, None)
            .await
            .map(LoginAnswer::SignedIn)
    }

    /// Whether a local account must use TOTP: its role is in
    /// `auth.mfa_roles`, or its effective permissions reveal content.
    pub(crate) async fn needs_mfa(&self, a: &LocalAccount) -> Result<bool, ApiError> {
        if self.settings.requires_mfa(a.role) {
            return Ok(true);
        }
        let p = self.account_principal(a, AuthMethod::SessionCookie).await?;
        Ok(reveals_content(&p))
    }

    /// `Ok(Ok(..))` when password (and code, if needed) are right.
    async fn check_credentials(
        &self,
        a: &LocalAccount,
        req: &LoginRequest,
        at: DateTime<Utc>,
    ) -> Result<Result<Checked, Failure>, ApiError> {
        let pw = Zeroizing::new(req.password.clone());
        let phc = a.password_hash.clone();
        let ok = blocking(move || password::verify_password(&pw, &phc)).await?;
        if !ok {
            return Ok(Err(Failure::WrongPassword));
        }
        if !a.active {
            return Ok(Err(Failure::Inactive));
        }
        let needs_mfa = self.needs_mfa(a).await?;
        let Some(sealed) = &a.totp else {
            // Nothing to prove yet: TOTP is enrolled at the first sign-in.
            return Ok(Ok(Checked {
                step: None,
                mfa: false,
                first_sign_in: needs_mfa || a.must_change_password,
                enrol_totp: needs_mfa,
            }));
        };
        let first_sign_in = a.must_change_password;
        if let Some(rc) = req
            .recovery_code
            .as_deref()
            .filter(|c| !c.trim().is_empty())
        {
            return if self
                .store
                .use_recovery_code(a.realm(), a.id, &recovery::digest(rc))
                .await?
            {
                tracing::info!(account = %a.id, "a recovery code was used");
                Ok(Ok(Checked {
                    step: None,
                    mfa: true,
                    first_sign_in,
                    enrol_totp: false,
                }))
            } else {
                Ok(Err(Failure::WrongCode))
            };
        }
        let Some(code) = req.totp.as_deref().filter(|c| !c.trim().is_empty()) else {
            return Ok(Err(Failure::MissingCode));
        };
        let owner = a
            .tenant_id
            .unwrap_or(insights_core::crypto::PLATFORM_KEY_OWNER);
        let unix = u64::try_from(at.timestamp()).unwrap_or(0);
        match totp::check(self.keys.as_ref(), owner, a.id, sealed, code, unix).await {
            Ok(Some(step)) => Ok(Ok(Checked {
                step: Some(step),
                mfa: true,
                first_sign_in,
                enrol_totp: false,
            })),
            Ok(None) => Ok(Err(Failure::WrongCode)),
            Err(e) => Err(ApiError::internal(anyhow::anyhow!(
                "account {}: cannot check the TOTP code: {e}",
                a.id
            ))),
        }
    }

    /// A challenge for the first sign-in; with a fresh pending TOTP seed
    /// when one is to be enrolled.
    async fn first_sign_in_challenge(
        &self,
        a: &LocalAccount,
        enrol_totp: bool,
        client: Option<IpAddr>,
    ) -> Result<FirstSignInChallenge, ApiError> {
        let (totp_uri, totp_secret) = if enrol_totp {
            let owner = a
                .tenant_id
                .unwrap_or(insights_core::crypto::PLATFORM_KEY_OWNER);
            let e = totp::enrol(self.keys.as_ref(), owner, a.id, &a.email)
                .await
                .map_err(ApiError::internal)?;
            self.store
                .set_pending_totp(a.realm(), a.id, &e.sealed)
                .await?;
            let secret = totp::seed_of_uri(&e.uri);
            (Some(e.uri.to_string()), secret)
        } else {
            (None, None)
        };
        let iat = unix_now();
        let claims = ApiClaims {
            iss: API_TOKEN_ISSUER.into(),
            aud: FIRST_SIGN_IN_AUDIENCE.into(),
            sub: a.id.to_string(),
            tid: a.tenant_id.map(|t| t.to_string()),
            sid: String::new(),
            iat,
            exp: iat + FIRST_SIGN_IN_TTL_SECS,
        };
        let challenge = self
            .tokens
            .issue(&claims)
            .map_err(|_| ApiError::internal(anyhow::anyhow!("cannot sign a challenge")))?;
        self.audit(
            a.realm(),
            NewAuditEvent {
                actor: a.id.to_string(),
                action: AuditAction::UserChange,
                recording_id: None,
                target: Some(a.id.to_string()),
                reason: None,
                source: client.map(|c| c.to_string()),
                details: serde_json::json!({
                    "change": "first-sign-in-started",
                    "password_change_required": a.must_change_password,
                    "totp_enrolment_required": enrol_totp,
                }),
            },
        )
        .await?;
        Ok(FirstSignInChallenge {
            status: "first-sign-in",
            challenge,
            expires_in: FIRST_SIGN_IN_TTL_SECS,
            password_change_required: a.must_change_password,
            totp_enrolment_required: enrol_totp,
            totp_uri,
            totp_secret,
        })
    }

    /// Completes a first sign-in: proves the pending TOTP seed, sets the
    /// user's own password, hands out recovery codes, opens a session.
    pub(crate) async fn first_sign_in(
        &self,
        req: FirstSignInRequest,
        client: Option<IpAddr>,
    ) -> Result<LoginOutcome, ApiError> {
        let at = now();
        if let Some(ip) = client {
            self.throttle.check_address(ip, at).await?;
        }
        if req.challenge.len() > 4096
            || req.totp.as_ref().is_some_and(|c| c.len() > 24)
            || req
                .new_password
                .as_ref()
                .is_some_and(|p| p.len() > 4 * MAX_PASSWORD_LEN)
        {
            return Err(ApiError::BadRequest {
                code: "invalid-body",
                detail: "a field is too long".into(),
            });
        }
        let claims = self
            .tokens
            .verify_for(&req.challenge, FIRST_SIGN_IN_AUDIENCE)
            .map_err(|_| unauthorized("challenge-invalid"))?;
        let realm = match &claims.tid {
            Some(t) => Realm::Tenant(t.parse().map_err(|_| unauthorized("challenge-invalid"))?),
            None => Realm::Platform,
        };
        let id: AccountId = claims
            .sub
            .parse()
            .map_err(|_| unauthorized("challenge-invalid"))?;
        let a = match self.store.get_account(realm, id).await {
            Ok(a) if a.active => a,
            Ok(_) | Err(StoreError::NotFound) => return Err(unauthorized("challenge-invalid")),
            Err(e) => return Err(e.into()),
        };
        let needs_mfa = self.needs_mfa(&a).await?;
        let enrolling = a.totp.is_none() && needs_mfa;
        if !a.must_change_password && !enrolling {
            return Err(unauthorized("challenge-invalid"));
        }
        let _permit = self.password_permit()?;
        let key = first_sign_in_key(a.id);
        if let LoginAttempt::Locked { until } = self
            .store
            .claim_login_attempt(
                &key,
                at,
                self.settings.lockout_threshold,
                secs(self.settings.lockout_secs),
            )
            .await?
        {
            self.audit_failure(Some(realm), Some(&a), Failure::Locked, client)
                .await;
            return Err(ApiError::Locked {
                retry_after_secs: super::throttle::secs_until(until, at),
            });
        }
        let (totp, step) = if enrolling {
            let Some(pending) = &a.totp_pending else {
                return Err(unauthorized("challenge-invalid"));
            };
            let Some(code) = req.totp.as_deref().filter(|c| !c.trim().is_empty()) else {
                return Err(ApiError::BadRequest {
                    code: "totp-required",
                    detail: "a code of the authenticator app is required".into(),
                });
            };
            let owner = a
                .tenant_id
                .unwrap_or(insights_core::crypto::PLATFORM_KEY_OWNER);
            let unix = u64::try_from(at.timestamp()).unwrap_or(0);
            match totp::check(self.keys.as_ref(), owner, a.id, pending, code, unix).await {
                Ok(Some(step)) => (Some(pending.clone()), Some(step)),
                Ok(None) => {
                    self.fail(&a, Failure::WrongCode, client, at).await;
                    return Err(unauthorized("invalid-code"));
                }
                Err(e) => return Err(ApiError::internal(e)),
            }
        } else {
            (None, None)
        };
        let password_hash = if a.must_change_password {
            let Some(new) = req.new_password.map(Zeroizing::new) else {
                return Err(ApiError::BadRequest {
                    code: "password-required",
                    detail: "choose a new password".into(),
                });
            };
            password::check_policy(&new).map_err(|e| ApiError::BadRequest {
                code: "bad-password",
                detail: e.to_string(),
            })?;
            let old = a.password_hash.clone();
            let (same, hash) = blocking(move || {
                let same = password::verify_password(&new, &old);
                (same, password::hash_password(&new))
            })
            .await?;
            if same {
                return Err(ApiError::BadRequest {
                    code: "password-reused",
                    detail: "the new password must differ from the one you were given".into(),
                });
            }
            hash.map_err(ApiError::internal)?
        } else {
            a.password_hash.clone()
        };
        let (codes, hashes) = recovery::generate();
        let done = FirstSignIn {
            password_hash,
            totp,
            totp_step: step,
            recovery_codes: hashes,
            at,
        };
        if !self
            .store
            .complete_first_sign_in(realm, a.id, &a.password_hash, &done)
            .await?
        {
            return Err(unauthorized("challenge-invalid"));
        }
        self.store.clear_login_attempts(&key).await?;
        self.audit(
            realm,
            NewAuditEvent {
                actor: a.id.to_string(),
                action: AuditAction::UserChange,
                recording_id: None,
                target: Some(a.id.to_string()),
                reason: None,
                source: client.map(|c| c.to_string()),
                details: serde_json::json!({
                    "change": "first-sign-in-completed",
                    "password_changed": a.must_change_password,
                    "totp_enrolled": enrolling,
                    "recovery_codes": codes.len(),
                }),
            },
        )
        .await?;
        let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
        self.succeed(&a, enrolling || a.totp.is_some(), client, at, Some(codes))
            .await
    }

    async fn fail(&self, a: &LocalAccount, f: Failure, client: Option<IpAddr>, at: DateTime<Utc>) {
        if let Some(ip) = client {
            self.throttle.address_failed(ip, at).await;
        }
        self.audit_failure(Some(a.realm()), Some(a), f, client)
            .await;
    }

    async fn succeed(
        &self,
        a: &LocalAccount,
        mfa: bool,
        client: Option<IpAddr>,
        at: DateTime<Utc>,
        recovery_codes: Option<Vec<String>>,
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
                status: "signed-in",
                token: api_token,
                token_type: "Bearer",
                expires_at: at + secs(ttl),
                expires_in: ttl,
                session_expires_at: s.expires_at,
                csrf_token: session::csrf_token(&token),
                recovery_codes,
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
