//! Authentication: who is calling.
//!
//! Three ways in, checked by [`Authenticator::authenticate`] (and so by the
//! [`Principal`] extractor):
//!
//! 1. `Authorization: Bearer <API token>`: a short-lived HS256 JWT from
//!    `POST /api/auth/login` ([`token`]), bound to a session that must
//!    still be live;
//! 2. the session cookie `insights_session` ([`session`]) of a browser;
//! 3. `Authorization: Bearer <OIDC token>` of the configured issuer
//!    (Entra ID, [`oidc`]): `tid` → our tenant (by its directory tenant
//!    id), `roles` → our role (`auth.oidc.role_map`), `oid` → the
//!    directory user.
//!
//! Local accounts ([`login`], [`accounts`]): argon2id passwords
//! ([`password`]), TOTP ([`totp`]) required for every account whose
//! effective permissions reveal content (and the roles in
//! `auth.mfa_roles`), enrolled by the user at the first sign-in, with
//! single-use recovery codes ([`recovery`]); attempts counted in the
//! store before the password is checked, lockout after
//! `auth.lockout_threshold` of them (423, the same for unknown emails),
//! at most `auth.max_concurrent_password_checks` argon2 runs at once and
//! `auth.address_max_failures` failures per client address and window
//! (429, [`throttle`]). Unknown tenant, unknown email, wrong password,
//! missing or wrong TOTP code and inactive account all answer the same
//! `401 invalid-credentials`, after the same password-hashing work.
//!
//! Platform operators sign in with no tenant; their principal never holds
//! a content permission ([`Principal`]).

pub mod accounts;
mod escalation;
mod login;
pub mod oidc;
pub mod oidc_login;
pub mod password;
mod principal;
pub mod recovery;
pub mod session;
pub mod throttle;
pub mod token;
pub mod totp;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;
use chrono::Utc;
use insights_core::config::AuthSettings;
use insights_core::crypto::KeyProvider;
use insights_core::domain::{
    LocalAccount, Permission, Realm, Role, SecurityProfile, TenantId, VisibilityScope,
};
use insights_core::store::{MetadataStore, StoreError};
use jsonwebtoken::Algorithm;

pub(crate) use login::LoginAnswer;
pub use login::{
    FIRST_SIGN_IN_AUDIENCE, FirstSignInChallenge, FirstSignInRequest, LoginRequest, LoginResponse,
};
pub use principal::{AuthMethod, Principal, Subject};

use crate::error::ApiError;
use oidc::{OidcError, OidcValidator};
use throttle::Throttle;
use token::{TokenError, TokenSigner};

/// A session is touched (idle timer restarted) at most this often.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// Why the authenticator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(transparent)]
    TokenKey(#[from] token::TokenKeyError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error(transparent)]
    OidcLogin(#[from] oidc_login::SecretFileError),
}

/// Everything authentication needs; one per process, in [`crate::AppState`].
pub struct Authenticator {
    store: Arc<dyn MetadataStore>,
    keys: Arc<dyn KeyProvider>,
    settings: AuthSettings,
    tokens: TokenSigner,
    oidc: Option<OidcValidator>,
    throttle: Throttle,
    /// Bounds concurrent argon2 work (`auth.max_concurrent_password_checks`).
    password_checks: tokio::sync::Semaphore,
    trusted_proxies: Vec<insights_core::config::Cidr>,
    /// "Sign in with your organisation" (authorization code + PKCE).
    oidc_login: Option<oidc_login::OidcLogin>,
    /// Microsoft Graph's word on whether an OIDC session's directory user
    /// is still enabled (`insights serve` sets it whenever sign-in is on;
    /// without it a session due for the check is refused with `503`).
    active_check: Option<Arc<gdpr_tools::directory::ActiveCheck>>,
}

impl Authenticator {
    /// Builds from `[auth]`, with the API token key under `data_dir`
    /// (created on first start). Fetches nothing yet.
    pub fn new(
        settings: &AuthSettings,
        data_dir: &Path,
        store: Arc<dyn MetadataStore>,
        keys: Arc<dyn KeyProvider>,
    ) -> Result<Self, AuthSetupError> {
        let tokens = TokenSigner::open_or_create(&settings.token_key_path(data_dir))?;
        Self::with_signer(settings, tokens, store, keys)
    }

    /// Builds with a given token signer.
    pub fn with_signer(
        settings: &AuthSettings,
        tokens: TokenSigner,
        store: Arc<dyn MetadataStore>,
        keys: Arc<dyn KeyProvider>,
    ) -> Result<Self, AuthSetupError> {
        let http = insights_http::ClientOptions::new(Duration::from_secs(5))
            .follow_redirects()
            .build()
            .map_err(|e| AuthSetupError::Http(e.to_string()))?;
        let oidc_login =
            oidc_login::OidcLogin::new(http.clone(), &settings.oidc, store.clone(), keys.clone())?;
        let oidc = OidcValidator::new(http, &settings.oidc);
        let throttle = Throttle::new(
            store.clone(),
            settings.address_max_failures,
            secs(settings.address_window_secs),
        );
        let permits = usize::try_from(settings.max_concurrent_password_checks.max(1)).unwrap_or(1);
        Ok(Self {
            store,
            keys,
            settings: settings.clone(),
            tokens,
            oidc,
            throttle,
            password_checks: tokio::sync::Semaphore::new(permits),
            trusted_proxies: settings.trusted_proxy_ranges(),
            oidc_login,
            active_check: None,
        })
    }

    /// Re-checks OIDC sessions' directory users with Microsoft Graph
    /// (`[auth.oidc] active_check_max_age_secs`).
    #[must_use]
    pub fn with_active_check(mut self, check: Arc<gdpr_tools::directory::ActiveCheck>) -> Self {
        self.active_check = Some(check);
        self
    }

    /// Whether "sign in with your organisation" is on (then `serve` needs
    /// an [`ActiveCheck`](gdpr_tools::directory::ActiveCheck)).
    pub fn oidc_login_enabled(&self) -> bool {
        self.oidc_login.is_some()
    }

    /// Where `req` came from (see [`crate::client_addr`]).
    pub fn client_ip(&self, req: &actix_web::HttpRequest) -> Option<std::net::IpAddr> {
        crate::client_addr::client_ip(req, &self.trusted_proxies)
    }

    /// The settings in force.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The OIDC validator, when OIDC is on.
    pub fn oidc(&self) -> Option<&OidcValidator> {
        self.oidc.as_ref()
    }

    /// Authenticates a request: bearer token first, else the session
    /// cookie; `401` if neither is there or valid.
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Principal, ApiError> {
        if let Some(value) = req.headers().get(AUTHORIZATION) {
            let value = value.to_str().map_err(|_| unauthorized("token-invalid"))?;
            let token = value
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| unauthorized("token-invalid"))?;
            return self.bearer(token).await;
        }
        if let Some(c) = req.cookie(session::SESSION_COOKIE) {
            // Sessions of directory principals signed in through OIDC.
            if let Some((t, hash)) = oidc_login::parse_session_token(c.value()) {
                return self.oidc_session_principal(t, &hash).await;
            }
            return self.cookie(c.value()).await;
        }
        Err(unauthorized("authentication-required"))
    }

    async fn bearer(&self, token: &str) -> Result<Principal, ApiError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthorized("token-invalid"))?;
        match header.alg {
            Algorithm::HS256 if header.kid.as_deref() == Some(self.tokens.kid()) => {
                self.api_token(token).await
            }
            Algorithm::RS256 if self.oidc.is_some() => self.oidc_token(token).await,
            _ => Err(unauthorized("token-invalid")),
        }
    }

    async fn api_token(&self, token: &str) -> Result<Principal, ApiError> {
        let claims = self.tokens.verify(token).map_err(|e| match e {
            TokenError::Expired => unauthorized("token-expired"),
            TokenError::Invalid => unauthorized("token-invalid"),
        })?;
        let realm = match &claims.tid {
            Some(t) => Realm::Tenant(t.parse().map_err(|_| unauthorized("token-invalid"))?),
            None => Realm::Platform,
        };
        let account = claims
            .sub
            .parse()
            .map_err(|_| unauthorized("token-invalid"))?;
        let mut p = self
            .session_principal(realm, &claims.sid, AuthMethod::ApiToken)
            .await?;
        if p.subject != Subject::Account(account) {
            return Err(unauthorized("token-invalid"));
        }
        p.auth_method = AuthMethod::ApiToken;
        Ok(p)
    }

    async fn cookie(&self, value: &str) -> Result<Principal, ApiError> {
        let (realm, hash) =
            session::parse_token(value).ok_or_else(|| unauthorized("session-expired"))?;
        self.session_principal(realm, &hash, AuthMethod::SessionCookie)
            .await
    }

    /// The principal of a live session (touching it), else `401`.
    async fn session_principal(
        &self,
        realm: Realm,
        hash: &str,
        method: AuthMethod,
    ) -> Result<Principal, ApiError> {
        let now = insights_core::domain::now();
        let s = match self.store.get_session(realm, hash).await {
            Ok(s) => s,
            Err(StoreError::NotFound) => return Err(unauthorized("session-expired")),
            Err(e) => return Err(e.into()),
        };
        if !s.is_live(now, secs(self.settings.session_idle_secs)) {
            return Err(unauthorized("session-expired"));
        }
        let account = match self.store.get_account(realm, s.account_id).await {
            Ok(a) if a.active => a,
            Ok(_) | Err(StoreError::NotFound) => return Err(unauthorized("session-expired")),
            Err(e) => return Err(e.into()),
        };
        if now - s.last_seen_at >= TOUCH_EVERY {
            self.store.touch_session(realm, hash, now).await?;
        }
        let mut p = self.account_principal(&account, method).await?;
        // Permissions that reveal content need a second factor: a session
        // of an account that gained them without TOTP ends here (the next
        // login enrols it).
        if account.totp.is_none()
            && (reveals_content(&p) || self.settings.requires_mfa(account.role))
        {
            return Err(unauthorized("mfa-enrolment-required"));
        }
        p.session = Some((realm, hash.to_owned()));
        Ok(p)
    }

    /// The principal of a local account: its profile's permissions and
    /// scope, else its role's defaults. A profile that no longer exists
    /// grants nothing (fail closed).
    pub(crate) async fn account_principal(
        &self,
        a: &LocalAccount,
        method: AuthMethod,
    ) -> Result<Principal, ApiError> {
        let (permissions, scope) = match (a.tenant_id, a.security_profile_id) {
            (Some(t), Some(profile)) => match self.profile(t, profile).await? {
                Some(p) => (p.permissions, p.scope),
                None => {
                    tracing::warn!(account = %a.id, profile = %profile, "the account's security profile is missing; no permissions");
                    (Vec::new(), VisibilityScope::Nothing)
                }
            },
            _ => (a.role.default_permissions(), a.role.default_scope()),
        };
        Ok(Principal::new(
            a.tenant_id,
            Subject::Account(a.id),
            a.role,
            permissions,
            scope,
            a.directory_user_id,
            method,
        ))
    }

    async fn profile(
        &self,
        tenant: TenantId,
        id: insights_core::domain::SecurityProfileId,
    ) -> Result<Option<SecurityProfile>, ApiError> {
        Ok(self
            .store
            .list_security_profiles(tenant)
            .await?
            .into_iter()
            .find(|p| p.id == id))
    }

    async fn oidc_token(&self, token: &str) -> Result<Principal, ApiError> {
        let Some(v) = &self.oidc else {
            return Err(unauthorized("token-invalid"));
        };
        let id = v.validate(token).await.map_err(|e| match e {
            OidcError::Expired => unauthorized("token-expired"),
            OidcError::Invalid(why) => {
                tracing::debug!(reason = why, "OIDC token refused");
                unauthorized("token-invalid")
            }
            OidcError::KeysUnavailable => ApiError::Unavailable {
                code: "signing-keys-unavailable",
            },
            OidcError::MfaRequired => unauthorized("mfa-required"),
        })?;
        let tenant = match self
            .store
            .tenant_by_directory_id(id.directory_tenant_id)
            .await
        {
            Ok(t) => t,
            Err(StoreError::NotFound) => return Err(unauthorized("unknown-tenant")),
            Err(e) => return Err(e.into()),
        };
        let role = map_roles(&self.settings.oidc.role_map, &id.roles)
            .ok_or(ApiError::Forbidden { code: "no-role" })?;
        let directory_user_id = match &id.object_id {
            Some(oid) => match self.store.directory_user_by_object_id(tenant.id, oid).await {
                // A deactivated directory user is refused outright.
                Ok(u) if !u.active => return Err(unauthorized("directory-user-inactive")),
                Ok(u) => Some(u.id),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        // A security profile mapped from the token's app roles or groups
        // replaces the role's defaults.
        let mapped = self
            .mapped_profile(&tenant.name, tenant.id, &id.roles, &id.groups)
            .await?;
        let (permissions, scope, profile_id) = match mapped {
            Some(p) => (p.permissions, p.scope, Some(p.id)),
            None => (role.default_permissions(), role.default_scope(), None),
        };
        let mut p = Principal::new(
            Some(tenant.id),
            Subject::Oidc(id.subject),
            role,
            permissions,
            scope,
            directory_user_id,
            AuthMethod::Oidc,
        );
        p.security_profile_id = profile_id;
        Ok(p)
    }

    /// The first `auth.oidc.profile_map` entry of `tenant_name` matching
    /// one of `roles` or `groups`, as the tenant's profile of that name.
    /// A mapping naming a profile the tenant does not have grants
    /// nothing (fail closed).
    pub(super) async fn mapped_profile(
        &self,
        tenant_name: &str,
        tenant: TenantId,
        roles: &[String],
        groups: &[String],
    ) -> Result<Option<SecurityProfile>, ApiError> {
        let hit = self.settings.oidc.profile_map.iter().find(|m| {
            m.tenant.eq_ignore_ascii_case(tenant_name)
                && match m.claim.as_str() {
                    "roles" => roles.contains(&m.value),
                    "groups" => groups.contains(&m.value),
                    _ => false,
                }
        });
        let Some(hit) = hit else {
            return Ok(None);
        };
        let profiles = self.store.list_security_profiles(tenant).await?;
        Ok(Some(
            profiles
                .into_iter()
                .find(|p| p.name == hit.profile)
                .unwrap_or_else(|| {
                    tracing::warn!("a mapped security profile is missing; no permissions");
                    SecurityProfile {
                        id: insights_core::domain::SecurityProfileId::new(),
                        tenant_id: tenant,
                        name: hit.profile.clone(),
                        role: Role::User,
                        permissions: Vec::new(),
                        scope: VisibilityScope::Nothing,
                    }
                }),
        ))
    }
}

/// Precedence when a token carries several mapped roles.
const ROLE_PRECEDENCE: &[Role] = &[
    Role::TenantAdmin,
    Role::Dpo,
    Role::ComplianceOfficer,
    Role::Supervisor,
    Role::User,
];

/// Our role for a token's app roles: the highest-ranked mapped one.
/// `platform-operator` is never the answer, whatever the mapping says.
pub fn map_roles(map: &std::collections::BTreeMap<String, Role>, roles: &[String]) -> Option<Role> {
    let mapped: Vec<Role> = roles.iter().filter_map(|r| map.get(r).copied()).collect();
    ROLE_PRECEDENCE.iter().copied().find(|r| mapped.contains(r))
}

fn unauthorized(code: &'static str) -> ApiError {
    ApiError::Unauthorized { code }
}

fn secs(s: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}

/// Unix seconds now.
fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

/// Whether a principal may do anything that reveals content (used by
/// tests and the operator invariant).
pub fn reveals_content(p: &Principal) -> bool {
    p.permissions.iter().any(Permission::reveals_content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_by_precedence_and_never_to_operator() {
        let mut map: std::collections::BTreeMap<String, Role> =
            insights_core::config::DEFAULT_ROLE_MAP
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect();
        let r = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(map_roles(&map, &r(&["Insights.User"])), Some(Role::User));
        assert_eq!(
            map_roles(&map, &r(&["Insights.User", "Insights.Dpo"])),
            Some(Role::Dpo)
        );
        assert_eq!(map_roles(&map, &r(&["Other"])), None);
        assert_eq!(map_roles(&map, &[]), None);
        map.insert("Ops".into(), Role::PlatformOperator);
        assert_eq!(map_roles(&map, &r(&["Ops"])), None);
    }
}
