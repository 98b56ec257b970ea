//! "Sign in with your organisation": the OpenID Connect authorization
//! code flow with PKCE (S256) for the web UI.
//!
//! * `GET /api/auth/providers` → `{"local": true, "oidc": {"enabled", "label"}}`
//!   (public: the login page asks which buttons to show).
//! * `GET /api/auth/oidc/login?return_to=/path` → `302` to the provider's
//!   `authorization_endpoint` (from the discovery document) with
//!   `response_type=code`, `client_id`, `redirect_uri`, `scope=openid
//!   profile`, a random `state` and `nonce` and the PKCE `code_challenge`
//!   (S256 of a random `code_verifier`). State, nonce, verifier and
//!   `return_to` stay on the server, in the metadata store shared by every
//!   API node ([`PendingSignIn`]: found by the SHA-256 of the state; the
//!   rest sealed under the platform key owner's KEK and bound to that
//!   hash, so a database reader can neither finish nor replay a sign-in;
//!   single use, 10 minutes): the callback may reach any node. The
//!   browser gets only the state again, in the `HttpOnly`
//!   `insights_oidc_state` cookie (`SameSite=Lax`: it must come back on
//!   the provider's top-level redirect), which binds the flow to the
//!   browser that started it (no login CSRF). `return_to` must be a
//!   same-origin path (`/…`, not `//…`, no backslash or control
//!   character), else `400 invalid-return-to`.
//! * `GET /api/auth/oidc/callback?code&state` → the state is taken
//!   (deleted and returned in one statement, on whichever node: a replay
//!   finds nothing, `400 invalid-state`) and must match the cookie; the code is redeemed at the discovered `token_endpoint` with
//!   the `code_verifier` (and the client secret, when configured); the
//!   `id_token` is validated with the same JWKS machinery as bearer
//!   tokens (RS256, our client id as audience, the issuer with
//!   `{tenantid}` = its `tid`, `exp`/`nbf`, and the `nonce` we sent);
//!   `tid` → our tenant, `roles` → our role and `oid` → the directory
//!   user exactly as for bearer tokens. Then a session (an
//!   [`OidcSession`] row keeping the mapped claims: no local account
//!   stands behind it), the session cookie, the readable `insights_csrf`
//!   cookie, and `302` to `return_to`.
//!
//! Every outcome once the tenant is known is audited in its chain
//! (`login` / `login-failed` with `method: oidc` and a reason; the actor
//! `oidc:<oid>`); earlier failures are logged with a reason only. No
//! code, token, state or claim value is logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use insights_core::config::OidcSettings;
use insights_core::crypto::{KeyProvider, PLATFORM_KEY_OWNER, open_secret, seal_secret};
use insights_core::domain::{
    AuditAction, NewAuditEvent, OidcSession, OidcSessionClaims, PendingSignIn, Realm, TenantId, now,
};
use insights_core::store::{MetadataStore, StoreError};
use insights_http::jwks::{JwksCache, KeyLookupError, KeyRef};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{AuthMethod, Authenticator, Principal, Subject, map_roles, secs, session};
use crate::AppState;
use crate::error::ApiError;

/// The cookie binding a pending sign-in to the browser.
pub const STATE_COOKIE: &str = "insights_oidc_state";
/// How long a started sign-in may take.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// At most this many sign-ins pending at once (table bound).
const MAX_PENDING: u32 = 10_000;
/// At most this many pending per client address: a further start from
/// the same address replaces its oldest, so nobody can fill the table
/// and lock everyone else out of sign-in.
const MAX_PENDING_PER_CLIENT: u32 = 20;
/// The discovery document is fetched again after this long.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Session token prefix: `o1.<tenant>.<secret>` (local sessions are `v1.`).
const TOKEN_VERSION: &str = "o1";

/// Registers the sign-in routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/auth/providers", web::get().to(providers))
        .route("/api/auth/oidc/login", web::get().to(login))
        .route("/api/auth/oidc/callback", web::get().to(callback));
}

#[derive(Clone)]
struct Endpoints {
    authorization: String,
    token: String,
}

/// What a pending sign-in keeps sealed.
#[derive(Serialize, Deserialize)]
struct Pending {
    nonce: String,
    verifier: String,
    return_to: String,
}

impl Drop for Pending {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.nonce.zeroize();
        self.verifier.zeroize();
    }
}

/// The sign-in flow's configuration and state; one per process, in the
/// [`Authenticator`].
pub struct OidcLogin {
    http: reqwest::Client,
    discovery_url: String,
    client_id: String,
    client_secret: Option<Zeroizing<String>>,
    redirect_uri: String,
    label: String,
    issuer: String,
    leeway: u64,
    request_timeout: Duration,
    jwks: Arc<JwksCache>,
    endpoints: tokio::sync::Mutex<Option<(Instant, Endpoints)>>,
    /// Where pending sign-ins are kept, and the keys that seal them.
    store: Arc<dyn MetadataStore>,
    keys: Arc<dyn KeyProvider>,
}

/// Why sign-in cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("auth.oidc.login_client_secret_file: {0}")]
pub struct SecretFileError(String);

impl OidcLogin {
    /// `Ok(None)` unless sign-in is configured (`login_enabled`).
    pub fn new(
        http: reqwest::Client,
        s: &OidcSettings,
        store: Arc<dyn MetadataStore>,
        keys: Arc<dyn KeyProvider>,
    ) -> Result<Option<Self>, SecretFileError> {
        if !s.login_enabled() {
            return Ok(None);
        }
        let (Some(discovery_url), Some(client_id), Some(redirect_uri)) = (
            s.discovery_url.clone(),
            s.login_client_id.clone(),
            s.login_redirect_uri.clone(),
        ) else {
            return Ok(None);
        };
        let client_secret = match &s.login_client_secret_file {
            Some(p) => Some(Zeroizing::new(
                std::fs::read_to_string(p)
                    .map_err(|e| SecretFileError(format!("{}: {e}", p.display())))?
                    .trim()
                    .to_owned(),
            )),
            None => std::env::var(&s.login_client_secret_env)
                .ok()
                .filter(|v| !v.is_empty())
                .map(Zeroizing::new),
        };
        let jwks = Arc::new(JwksCache::new(
            http.clone(),
            discovery_url.clone(),
            Duration::from_secs(s.jwks_refresh_secs),
            Duration::from_secs(s.jwks_min_refresh_secs),
            Duration::from_millis(s.request_timeout_ms),
        ));
        Ok(Some(Self {
            http,
            discovery_url,
            client_id,
            client_secret,
            redirect_uri,
            label: s.login_label.clone(),
            issuer: s.issuer.clone(),
            leeway: s.leeway_secs,
            request_timeout: Duration::from_millis(s.request_timeout_ms),
            jwks,
            endpoints: tokio::sync::Mutex::new(None),
            store,
            keys,
        }))
    }

    /// The provider's authorization and token endpoints (cached).
    async fn endpoints(&self) -> Result<Endpoints, ApiError> {
        let mut cached = self.endpoints.lock().await;
        if let Some((at, e)) = cached.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(e.clone());
        }
        let unavailable = |why: &str| {
            tracing::warn!(reason = why, "cannot read the OpenID configuration");
            ApiError::Unavailable {
                code: "oidc-provider-unavailable",
            }
        };
        let res = self
            .http
            .get(&self.discovery_url)
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|_| unavailable("request failed"))?;
        if !res.status().is_success() {
            return Err(unavailable("HTTP error"));
        }
        let doc: serde_json::Value = res.json().await.map_err(|_| unavailable("not JSON"))?;
        // A document fetched over HTTPS cannot send the code or the
        // browser to plain HTTP.
        let secure = self.discovery_url.starts_with("https://");
        let url = |k: &str| {
            doc.get(k)
                .and_then(serde_json::Value::as_str)
                .filter(|u| u.starts_with("https://") || (!secure && u.starts_with("http://")))
                .map(str::to_owned)
        };
        let (Some(authorization), Some(token)) =
            (url("authorization_endpoint"), url("token_endpoint"))
        else {
            return Err(unavailable("no authorization or token endpoint"));
        };
        let e = Endpoints {
            authorization,
            token,
        };
        *cached = Some((Instant::now(), e.clone()));
        Ok(e)
    }

    /// Remembers a started sign-in under the hash of its state (sealed,
    /// in the store every node shares).
    async fn remember(
        &self,
        state: &str,
        p: &Pending,
        client: Option<std::net::IpAddr>,
    ) -> Result<(), ApiError> {
        let hash = state_hash(state);
        let clear = Zeroizing::new(serde_json::to_vec(p).map_err(ApiError::internal)?);
        let sealed = seal_secret(
            self.keys.as_ref(),
            PLATFORM_KEY_OWNER,
            &context(&hash),
            &clear,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot seal a pending sign-in");
            ApiError::Unavailable {
                code: "key-service-unavailable",
            }
        })?;
        let at = now();
        let pending = PendingSignIn {
            state_hash: hash,
            sealed,
            client_key: client.map(|c| super::throttle::address_key(&c)),
            created_at: at,
            expires_at: at + chrono::Duration::from_std(PENDING_TTL).unwrap_or_default(),
        };
        match self
            .store
            .put_pending_sign_in(&pending, MAX_PENDING_PER_CLIENT, MAX_PENDING)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::Refused(_)) => Err(ApiError::Unavailable {
                code: "too-many-pending-sign-ins",
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes (single use, on whichever node) the pending sign-in of
    /// `state`, if still fresh.
    async fn take(&self, state: &str) -> Result<Option<Pending>, ApiError> {
        let hash = state_hash(state);
        let Some(p) = self.store.take_pending_sign_in(&hash, now()).await? else {
            return Ok(None);
        };
        let clear = match open_secret(
            self.keys.as_ref(),
            PLATFORM_KEY_OWNER,
            &context(&hash),
            &p.sealed,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "a pending sign-in cannot be opened");
                return Ok(None);
            }
        };
        Ok(serde_json::from_slice(&clear).ok())
    }
}

/// The stored form of a state: its SHA-256 (hex).
fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// The sealing context of a pending sign-in: bound to its row.
fn context(hash: &str) -> String {
    format!("oidc-sign-in:{hash}")
}

/// A random 32-byte value, base64url (43 characters).
fn random_token() -> String {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::fill(&mut raw[..]);
    URL_SAFE_NO_PAD.encode(&raw[..])
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `return_to` if it is a same-origin path: starts with one `/`, no
/// `//` or `/\` (protocol-relative URLs), no backslash or control
/// character, at most 2048 bytes.
pub fn safe_return_to(r: Option<&str>) -> Option<String> {
    let r = r.unwrap_or("/");
    let ok = r.starts_with('/')
        && !r.starts_with("//")
        && r.len() <= 2048
        && !r
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace());
    ok.then(|| r.to_owned())
}

/// A fresh OIDC session token for `tenant` and its hash.
fn new_session_token(tenant: TenantId) -> (Zeroizing<String>, String) {
    let token = Zeroizing::new(format!(
        "{TOKEN_VERSION}.{}.{}",
        tenant.0.simple(),
        random_token()
    ));
    let hash = session::hash_token(&token);
    (token, hash)
}

/// The tenant and hash of a presented OIDC session token, if well-formed.
pub fn parse_session_token(token: &str) -> Option<(TenantId, String)> {
    let mut parts = token.split('.');
    let (v, tenant, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if v != TOKEN_VERSION || parts.next().is_some() || secret.len() != 43 {
        return None;
    }
    let t = TenantId(Uuid::try_parse(tenant).ok()?);
    Some((t, session::hash_token(token)))
}

fn state_cookie(value: &str, max_age: i64) -> Cookie<'static> {
    Cookie::build(STATE_COOKIE, value.to_owned())
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Lax)
        .path("/api/auth/oidc")
        .max_age(CookieDuration::seconds(max_age))
        .finish()
}

#[derive(Deserialize)]
struct IdClaims {
    iss: String,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    /// Group object ids (when the app registration emits them).
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    amr: Vec<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
}

/// Why a callback was refused (audit reason; never shown in detail).
#[derive(Clone, Copy)]
enum Refusal {
    Signature,
    Claims,
    Expired,
    Issuer,
    Nonce,
    NoSubject,
    NoRole,
    NoMfa,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Signature => "id-token-signature",
            Refusal::Claims => "id-token-claims",
            Refusal::Expired => "id-token-expired",
            Refusal::Issuer => "id-token-issuer",
            Refusal::Nonce => "nonce-mismatch",
            Refusal::NoSubject => "no-subject",
            Refusal::NoRole => "no-role",
            Refusal::NoMfa => "mfa-not-proven",
        }
    }
}

// ---------------------------------------------------------------------
// handlers
// ---------------------------------------------------------------------

/// `GET /api/auth/providers`.
#[utoipa::path(get, path = "/api/auth/providers", tag = "auth",
    responses((status = 200, description = "Which sign-in methods the login page offers: {\"local\": true, \"oidc\": {\"enabled\", \"label\"}}", body = Object)))]
pub(crate) async fn providers(state: web::Data<AppState>) -> HttpResponse {
    let oidc = state.auth.oidc_login.as_ref();
    HttpResponse::Ok().json(json!({
        "local": true,
        "oidc": {
            "enabled": oidc.is_some(),
            "label": oidc.map(|o| o.label.as_str()),
        }
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct LoginQuery {
    /// Where to go after signing in: a path of this site (default `/`).
    return_to: Option<String>,
}

/// `GET /api/auth/oidc/login`.
#[utoipa::path(get, path = "/api/auth/oidc/login", tag = "auth",
    params(LoginQuery),
    responses(
        (status = 302, description = "To the provider's authorization endpoint (state, nonce, PKCE S256)"),
        (status = 400, description = "return_to is not a path of this site", body = crate::routes::openapi::Problem),
        (status = 404, description = "Sign-in with an organisation is not configured", body = crate::routes::openapi::Problem),
        (status = 503, description = "The provider's configuration cannot be read", body = crate::routes::openapi::Problem)))]
pub(crate) async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<LoginQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some(o) = state.auth.oidc_login.as_ref() else {
        return Err(ApiError::NotFound);
    };
    let return_to = safe_return_to(q.return_to.as_deref()).ok_or_else(|| ApiError::BadRequest {
        code: "invalid-return-to",
        detail: "return_to must be a path of this site".into(),
    })?;
    let endpoints = o.endpoints().await?;
    let st = random_token();
    let nonce = random_token();
    let verifier = Zeroizing::new(random_token());
    let challenge = pkce_challenge(&verifier);
    let mut url = url::Url::parse(&endpoints.authorization).map_err(|_| ApiError::Unavailable {
        code: "oidc-provider-unavailable",
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &o.client_id)
        .append_pair("redirect_uri", &o.redirect_uri)
        .append_pair("response_mode", "query")
        .append_pair("scope", "openid profile")
        .append_pair("state", &st)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    o.remember(
        &st,
        &Pending {
            nonce,
            verifier: verifier.to_string(),
            return_to,
        },
        state.auth.client_ip(&req),
    )
    .await?;
    Ok(HttpResponse::Found()
        .insert_header(("Location", url.to_string()))
        .cookie(state_cookie(
            &st,
            i64::try_from(PENDING_TTL.as_secs()).unwrap_or(600),
        ))
        .finish())
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The state sent with the authorization request.
    state: Option<String>,
    /// An error code from the provider (the user declined...).
    error: Option<String>,
}

/// `GET /api/auth/oidc/callback`.
#[utoipa::path(get, path = "/api/auth/oidc/callback", tag = "auth",
    params(CallbackQuery),
    responses(
        (status = 302, description = "Signed in: the session and insights_csrf cookies are set; to return_to"),
        (status = 400, description = "Unknown, used or foreign state, or no code", body = crate::routes::openapi::Problem),
        (status = 401, description = "The provider refused, or the code or id_token is not valid", body = crate::routes::openapi::Problem),
        (status = 403, description = "No role of ours in the token", body = crate::routes::openapi::Problem),
        (status = 404, description = "Sign-in with an organisation is not configured", body = crate::routes::openapi::Problem),
        (status = 503, description = "The provider cannot be reached", body = crate::routes::openapi::Problem)))]
pub(crate) async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let auth = &state.auth;
    let Some(o) = auth.oidc_login.as_ref() else {
        return Err(ApiError::NotFound);
    };
    let client = auth.client_ip(&req);
    let bad_state = || ApiError::BadRequest {
        code: "invalid-state",
        detail: "the sign-in is unknown, expired or already used; start again".into(),
    };
    let st = q
        .state
        .as_deref()
        .filter(|s| s.len() <= 128)
        .ok_or_else(bad_state)?;
    let Some(pending) = o.take(st).await? else {
        tracing::info!(reason = "unknown-state", "OIDC sign-in refused");
        return Err(bad_state());
    };
    // The state must come back to the browser that started the flow.
    let bound = req.cookie(STATE_COOKIE).is_some_and(|c| {
        let (a, b) = (c.value().as_bytes(), st.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    if !bound {
        tracing::info!(reason = "state-cookie-mismatch", "OIDC sign-in refused");
        return Err(bad_state());
    }
    if q.error.is_some() {
        tracing::info!(
            reason = "provider-error",
            "OIDC sign-in refused by the provider"
        );
        return Err(ApiError::Unauthorized {
            code: "oidc-sign-in-refused",
        });
    }
    let code = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 4096)
        .ok_or_else(|| ApiError::BadRequest {
            code: "invalid-request",
            detail: "the callback has no authorization code".into(),
        })?;
    let endpoints = o.endpoints().await?;
    let id_token = redeem(o, &endpoints, code, &pending.verifier).await?;
    let claims = validate_id_token(o, &id_token).await?;
    let tid = claims.1;
    let claims = claims.0;
    let tenant = match auth.store.tenant_by_directory_id(tid).await {
        Ok(t) => t,
        Err(StoreError::NotFound) => {
            tracing::info!(reason = "unknown-tenant", "OIDC sign-in refused");
            return Err(ApiError::Unauthorized {
                code: "unknown-tenant",
            });
        }
        Err(e) => return Err(e.into()),
    };
    let subject = claims
        .oid
        .clone()
        .or(claims.sub.clone())
        .filter(|s| !s.is_empty());
    let refuse = |r: Refusal, subject: Option<&str>| {
        let actor = subject
            .map(|s| format!("oidc:{s}"))
            .unwrap_or_else(|| "unknown".into());
        NewAuditEvent {
            actor,
            action: AuditAction::LoginFailed,
            recording_id: None,
            target: None,
            reason: None,
            source: client.map(|c| c.to_string()),
            details: json!({ "method": "oidc", "reason": r.as_str() }),
        }
    };
    let nonce_ok = claims.nonce.as_deref().is_some_and(|n| {
        let (a, b) = (n.as_bytes(), pending.nonce.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    let failure = if !nonce_ok {
        Some((Refusal::Nonce, unauthorized("invalid-id-token")))
    } else if subject.is_none() {
        Some((Refusal::NoSubject, unauthorized("invalid-id-token")))
    } else if auth.settings.oidc.require_mfa && !super::oidc::amr_proves_mfa(&claims.amr) {
        Some((Refusal::NoMfa, unauthorized("mfa-required")))
    } else {
        None
    };
    if let Some((r, err)) = failure {
        auth.store
            .append_audit(tenant.id, refuse(r, subject.as_deref()))
            .await?;
        return Err(err);
    }
    let subject = subject.unwrap_or_default();
    let Some(role) = map_roles(&auth.settings.oidc.role_map, &claims.roles) else {
        auth.store
            .append_audit(tenant.id, refuse(Refusal::NoRole, Some(&subject)))
            .await?;
        return Err(ApiError::Forbidden { code: "no-role" });
    };
    let directory_user_id = match &claims.oid {
        Some(oid) => match auth.store.directory_user_by_object_id(tenant.id, oid).await {
            Ok(u) => Some(u.id),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    // Audited before anything is handed out: no unaudited sign-in.
    auth.store
        .append_audit(
            tenant.id,
            NewAuditEvent {
                actor: format!("oidc:{subject}"),
                action: AuditAction::Login,
                recording_id: None,
                target: directory_user_id.map(|u| u.to_string()),
                reason: None,
                source: client.map(|c| c.to_string()),
                details: json!({ "method": "oidc", "role": role }),
            },
        )
        .await?;
    let at = now();
    let (token, hash) = new_session_token(tenant.id);
    let max = auth.settings.session_max_secs;
    let s = OidcSession {
        token_hash: hash,
        tenant_id: tenant.id,
        subject,
        role,
        directory_user_id,
        created_at: at,
        last_seen_at: at,
        expires_at: at + secs(max),
        revoked_at: None,
    };
    auth.store.create_oidc_session(tenant.id, &s).await?;
    // The claims that map the session to a security profile, and the
    // provider's word that the user is active now (it just signed them
    // in). Stored before the cookie is handed out.
    auth.store
        .set_oidc_session_claims(
            tenant.id,
            &s.token_hash,
            &OidcSessionClaims {
                roles: claims.roles.clone(),
                groups: claims.groups.clone(),
                active_confirmed_at: Some(at),
            },
        )
        .await?;
    let mut gone = state_cookie("", 0);
    gone.make_removal();
    Ok(HttpResponse::Found()
        .insert_header(("Location", pending.return_to.clone()))
        .cookie(session::cookie(&token, max))
        .cookie(session::issue_csrf_cookie(&token, max))
        .cookie(gone)
        .finish())
}

fn unauthorized(code: &'static str) -> ApiError {
    ApiError::Unauthorized { code }
}

/// Redeems the code at the token endpoint; returns the id_token.
async fn redeem(
    o: &OidcLogin,
    e: &Endpoints,
    code: &str,
    verifier: &str,
) -> Result<String, ApiError> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &o.redirect_uri)
        .append_pair("client_id", &o.client_id)
        .append_pair("code_verifier", verifier);
    if let Some(secret) = &o.client_secret {
        form.append_pair("client_secret", secret);
    }
    let body = Zeroizing::new(form.finish());
    let res = o
        .http
        .post(&e.token)
        .timeout(o.request_timeout)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body.as_bytes().to_vec())
        .send()
        .await
        .map_err(|_| {
            tracing::warn!(reason = "token endpoint unreachable", "OIDC sign-in failed");
            ApiError::Unavailable {
                code: "oidc-provider-unavailable",
            }
        })?;
    if !res.status().is_success() {
        tracing::info!(
            status = res.status().as_u16(),
            reason = "code-refused",
            "OIDC sign-in refused by the token endpoint"
        );
        return Err(unauthorized("oidc-code-refused"));
    }
    let t: TokenAnswer = res
        .json()
        .await
        .map_err(|_| unauthorized("oidc-code-refused"))?;
    t.id_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("oidc-code-refused"))
}

/// Checks signature, audience, issuer and times; returns the claims and
/// the directory tenant. The nonce is checked by the caller (so that a
/// mismatch is audited in the tenant's chain).
async fn validate_id_token(o: &OidcLogin, token: &str) -> Result<(IdClaims, Uuid), ApiError> {
    let refused = |r: Refusal| {
        tracing::info!(reason = r.as_str(), "OIDC sign-in refused");
        unauthorized("invalid-id-token")
    };
    let header = jsonwebtoken::decode_header(token).map_err(|_| refused(Refusal::Claims))?;
    if header.alg != Algorithm::RS256 {
        return Err(refused(Refusal::Signature));
    }
    let r = KeyRef {
        kid: header.kid.as_deref(),
        x5t: header.x5t.as_deref(),
    };
    if r.kid.is_none() && r.x5t.is_none() {
        return Err(refused(Refusal::Signature));
    }
    let key = o.jwks.key(r).await.map_err(|e| match e {
        KeyLookupError::Unknown => refused(Refusal::Signature),
        KeyLookupError::Unavailable(_) => ApiError::Unavailable {
            code: "signing-keys-unavailable",
        },
    })?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[o.client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "aud", "iss"]);
    v.validate_nbf = true;
    v.leeway = o.leeway;
    let data = jsonwebtoken::decode::<IdClaims>(token, &key, &v).map_err(|e| {
        refused(match e.kind() {
            ErrorKind::ExpiredSignature => Refusal::Expired,
            ErrorKind::InvalidSignature => Refusal::Signature,
            _ => Refusal::Claims,
        })
    })?;
    let c = data.claims;
    let tid = c
        .tid
        .as_deref()
        .and_then(|t| Uuid::try_parse(t).ok())
        .ok_or_else(|| refused(Refusal::Claims))?;
    let expected = o
        .issuer
        .replace("{tenantid}", &tid.hyphenated().to_string());
    if c.iss != expected {
        return Err(refused(Refusal::Issuer));
    }
    Ok((c, tid))
}

// ---------------------------------------------------------------------
// sessions of directory principals
// ---------------------------------------------------------------------

impl Authenticator {
    /// The principal of a live OIDC session (touching it), else `401`:
    /// the role and directory user mapped at sign-in; the permissions and
    /// scope of the security profile the sign-in's `roles` and `groups`
    /// claims or the directory user's synchronised groups map to
    /// (`auth.oidc.profile_map`), else the role's defaults;
    /// `401 directory-user-inactive` once the directory user is inactive
    /// or gone as of the last directory sync, or, asked afresh whenever
    /// the last confirmation is older than `auth.oidc.active_check_max_age_secs`,
    /// as Microsoft Graph says (the session is then revoked and the
    /// revocation audited); `503 directory-unavailable` while Graph
    /// cannot say (never a request on stale data).
    pub(super) async fn oidc_session_principal(
        &self,
        tenant: TenantId,
        hash: &str,
    ) -> Result<Principal, ApiError> {
        let at = now();
        let s = match self.store.get_oidc_session(tenant, hash).await {
            Ok(s) => s,
            Err(StoreError::NotFound) => return Err(unauthorized("session-expired")),
            Err(e) => return Err(e.into()),
        };
        if !s.is_live(at, secs(self.settings.session_idle_secs)) {
            return Err(unauthorized("session-expired"));
        }
        // The directory user must still be active (as of the last
        // directory sync); their synchronised groups map to a profile.
        let mut groups = Vec::new();
        if let Some(u) = s.directory_user_id {
            match self.store.get_directory_user(tenant, u).await {
                Ok(d) if d.active => groups = d.groups,
                Ok(_) | Err(StoreError::NotFound) => {
                    return Err(unauthorized("directory-user-inactive"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let claims = match self.store.get_oidc_session_claims(tenant, hash).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => return Err(unauthorized("session-expired")),
            Err(e) => return Err(e.into()),
        };
        let max_age = secs(self.settings.oidc.active_check_max_age_secs);
        let confirmed = claims
            .active_confirmed_at
            .is_some_and(|t| at - t < max_age && t <= at);
        if !confirmed {
            self.confirm_active(tenant, hash, &s).await?;
            self.store
                .confirm_oidc_session_active(tenant, hash, at)
                .await?;
        }
        if at - s.last_seen_at >= super::TOUCH_EVERY {
            self.store.touch_oidc_session(tenant, hash, at).await?;
        }
        for g in claims.groups {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let name = self.store.get_tenant(tenant).await?.name;
        let mapped = self
            .mapped_profile(&name, tenant, &claims.roles, &groups)
            .await?;
        let (permissions, scope, profile_id) = match mapped {
            Some(p) => (p.permissions, p.scope, Some(p.id)),
            None => (s.role.default_permissions(), s.role.default_scope(), None),
        };
        let mut p = Principal::new(
            Some(tenant),
            Subject::Oidc(s.subject),
            s.role,
            permissions,
            scope,
            s.directory_user_id,
            AuthMethod::SessionCookie,
        );
        p.security_profile_id = profile_id;
        p.session = Some((Realm::Tenant(tenant), hash.to_owned()));
        Ok(p)
    }

    /// Asks Microsoft Graph whether the session's directory user is still
    /// enabled: `Ok` if so; a disabled or deleted user's session is
    /// revoked, the revocation audited, and `401 directory-user-inactive`
    /// returned; `503 directory-unavailable` when Graph (or its token)
    /// cannot answer, or no check is configured.
    async fn confirm_active(
        &self,
        tenant: TenantId,
        hash: &str,
        s: &OidcSession,
    ) -> Result<(), ApiError> {
        use gdpr_tools::directory::UserState;
        let unavailable = ApiError::Unavailable {
            code: "directory-unavailable",
        };
        let Some(check) = &self.active_check else {
            tracing::warn!(
                "an OIDC session is due for its directory check, but none is configured"
            );
            return Err(unavailable);
        };
        let directory_tenant = self
            .store
            .get_tenant(tenant)
            .await?
            .directory_tenant_id
            .ok_or_else(|| unauthorized("session-expired"))?;
        // The subject is the directory object id (`oid`); a session
        // without one cannot be confirmed, so it is not let through.
        let state = match Uuid::try_parse(&s.subject) {
            Ok(oid) => match check.user_state(directory_tenant, oid).await {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "cannot confirm an OIDC session's directory user");
                    return Err(unavailable);
                }
            },
            Err(_) => UserState::Gone,
        };
        let reason = match state {
            UserState::Enabled => return Ok(()),
            UserState::Disabled => "directory-user-disabled",
            UserState::Gone => "directory-user-gone",
        };
        if self.store.revoke_oidc_session(tenant, hash, now()).await? {
            self.store
                .append_audit(
                    tenant,
                    NewAuditEvent {
                        actor: format!("oidc:{}", s.subject),
                        action: AuditAction::Logout,
                        recording_id: None,
                        target: s.directory_user_id.map(|u| u.to_string()),
                        reason: None,
                        source: None,
                        details: json!({ "method": "oidc", "revoked": true, "reason": reason }),
                    },
                )
                .await?;
        }
        tracing::info!(tenant = %tenant, reason, "OIDC session revoked: the directory user may no longer sign in");
        Err(unauthorized("directory-user-inactive"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_must_be_a_local_path() {
        assert_eq!(safe_return_to(None).as_deref(), Some("/"));
        for ok in ["/", "/recordings?x=1#a", "/a/b"] {
            assert_eq!(safe_return_to(Some(ok)).as_deref(), Some(ok));
        }
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil",
            "evil",
            "",
            "/a\nb",
            "/a b",
            "javascript:alert(1)",
        ] {
            assert!(safe_return_to(Some(bad)).is_none(), "{bad:?}");
        }
        assert!(safe_return_to(Some(&format!("/{}", "a".repeat(3000)))).is_none());
    }

    #[test]
    fn pkce_matches_rfc7636_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn session_tokens_round_trip() {
        let t = TenantId::new();
        let (tok, hash) = new_session_token(t);
        assert_eq!(parse_session_token(&tok), Some((t, hash)));
        assert!(parse_session_token(&tok.replacen("o1.", "v1.", 1)).is_none());
        assert!(parse_session_token("o1.nope.x").is_none());
        assert!(
            session::parse_token(&tok).is_none(),
            "never a local session"
        );
    }
}
