//! [`Principal`]: who is calling, extracted from the request.
//!
//! Handlers take a `Principal` argument; the extractor authenticates the
//! request (API token, session cookie or OIDC bearer token, see
//! [`crate::auth`]) or fails with a `401` problem. Then:
//!
//! ```ignore
//! async fn search(p: Principal, state: web::Data<AppState>, ...) -> Result<_, ApiError> {
//!     p.require(Permission::Search)?;
//!     let tenant = p.tenant()?;          // 403 for platform operators
//!     // filter by p.scope (OwnRecordings: p.directory_user_id) ...
//! }
//! ```

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use actix_web::http::Method;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use insights_core::domain::{
    AccountId, Permission, Realm, Role, SecurityProfileId, TenantId, UserId, VisibilityScope,
};
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;

/// How the caller proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// `Authorization: Bearer` with an API token from `/api/auth/login`.
    ApiToken,
    /// The browser session cookie.
    SessionCookie,
    /// `Authorization: Bearer` with a token of the configured OIDC issuer.
    Oidc,
}

/// Who the caller is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "id", rename_all = "kebab-case")]
pub enum Subject {
    /// A local account (tenant user or platform operator).
    Account(AccountId),
    /// An OIDC subject: the directory object id (`oid`), else `sub`.
    Oidc(String),
}

/// An authenticated caller. Built only by this crate's authenticator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The caller's tenant; `None` for platform operators.
    pub tenant_id: Option<TenantId>,
    pub subject: Subject,
    pub role: Role,
    /// Effective permissions: the account's security profile, else the
    /// role's defaults. Never a content permission for an operator.
    pub permissions: BTreeSet<Permission>,
    /// Whose recordings the caller may see.
    pub scope: VisibilityScope,
    /// The directory user the caller is (for `OwnRecordings`).
    pub directory_user_id: Option<UserId>,
    /// The security profile the permissions come from (an account's, or
    /// the one a directory principal's app roles or groups map to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_profile_id: Option<SecurityProfileId>,
    pub auth_method: AuthMethod,
    /// The CSRF token a browser must echo in `X-CSRF-Token` on unsafe
    /// requests (session-cookie callers only; see [`super::session`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// Hash of the session behind a token or cookie (for logout).
    #[serde(skip)]
    pub(crate) session: Option<(Realm, String)>,
}

impl Principal {
    /// Builds a principal, clamping a platform operator to
    /// non-content permissions and scope `nothing`.
    pub(crate) fn new(
        tenant_id: Option<TenantId>,
        subject: Subject,
        role: Role,
        permissions: impl IntoIterator<Item = Permission>,
        scope: VisibilityScope,
        directory_user_id: Option<UserId>,
        auth_method: AuthMethod,
    ) -> Self {
        let mut permissions: BTreeSet<Permission> = permissions.into_iter().collect();
        let mut scope = scope;
        if role == Role::PlatformOperator || tenant_id.is_none() {
            // Operating the platform and reading its content are different
            // permissions, whatever a profile says.
            permissions.retain(|p| !p.reveals_content());
            scope = VisibilityScope::Nothing;
        }
        Self {
            tenant_id,
            subject,
            role,
            permissions,
            scope,
            directory_user_id,
            security_profile_id: None,
            auth_method,
            csrf_token: None,
            session: None,
        }
    }

    /// `Ok` if the caller has `p`, else `403 permission-denied`.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.permissions.contains(&p) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                code: "permission-denied",
            })
        }
    }

    /// Whether the caller has `p`.
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// The caller's tenant, else `403 tenant-required` (operators).
    pub fn tenant(&self) -> Result<TenantId, ApiError> {
        self.tenant_id.ok_or(ApiError::Forbidden {
            code: "tenant-required",
        })
    }

    /// The audit actor: `<account id>` or `oidc:<subject>`; never a name.
    pub fn actor(&self) -> String {
        match &self.subject {
            Subject::Account(id) => id.to_string(),
            Subject::Oidc(s) => format!("oidc:{s}"),
        }
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if let Some(p) = req.extensions().get::<Principal>() {
                return Ok(p.clone());
            }
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?
                .clone();
            let mut p = state.auth.authenticate(&req).await?;
            if p.auth_method == AuthMethod::SessionCookie {
                p.csrf_token = Some(check_csrf(&req)?);
            }
            req.extensions_mut().insert(p.clone());
            Ok(p)
        })
    }
}

/// For a caller authenticated by the session cookie: on an unsafe
/// method (anything but GET, HEAD, OPTIONS, TRACE) the `X-CSRF-Token`
/// header must carry the session's CSRF token, else `403
/// csrf-token-invalid`. Returns the session's token (for `/api/auth/me`).
/// Bearer-token callers never get here: a cross-site page cannot make
/// the browser send an `Authorization` header.
fn check_csrf(req: &HttpRequest) -> Result<String, ApiError> {
    let cookie = req
        .cookie(super::session::SESSION_COOKIE)
        .ok_or(ApiError::Unauthorized {
            code: "authentication-required",
        })?;
    let token = cookie.value();
    let safe = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if !safe {
        let presented = req
            .headers()
            .get(super::session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !super::session::csrf_matches(token, presented) {
            return Err(ApiError::Forbidden {
                code: "csrf-token-invalid",
            });
        }
    }
    Ok(super::session::csrf_token(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_operators_never_get_content_permissions() {
        // Even handed every permission and scope `all` (a bad profile):
        let p = Principal::new(
            None,
            Subject::Account(AccountId::new()),
            Role::PlatformOperator,
            Permission::ALL.iter().copied(),
            VisibilityScope::All,
            None,
            AuthMethod::ApiToken,
        );
        assert!(p.permissions.iter().all(|x| !x.reveals_content()));
        for c in [
            Permission::Search,
            Permission::Play,
            Permission::DownloadMedia,
            Permission::ViewTranscript,
            Permission::Export,
        ] {
            assert!(p.require(c).is_err(), "{c}");
        }
        assert!(p.require(Permission::OperatePlatform).is_ok());
        assert_eq!(p.scope, VisibilityScope::Nothing);
        assert!(p.tenant().is_err());
        // The same role with a tenant (an impossible combination) too.
        let p = Principal::new(
            Some(TenantId::new()),
            Subject::Oidc("x".into()),
            Role::PlatformOperator,
            Permission::ALL.iter().copied(),
            VisibilityScope::All,
            None,
            AuthMethod::Oidc,
        );
        assert!(p.permissions.iter().all(|x| !x.reveals_content()));
    }

    #[test]
    fn tenant_roles_keep_their_permissions() {
        let t = TenantId::new();
        let p = Principal::new(
            Some(t),
            Subject::Oidc("abc".into()),
            Role::ComplianceOfficer,
            Role::ComplianceOfficer.default_permissions(),
            VisibilityScope::All,
            None,
            AuthMethod::Oidc,
        );
        assert!(p.require(Permission::Play).is_ok());
        assert!(p.require(Permission::ManageUsers).is_err());
        assert_eq!(p.tenant().ok(), Some(t));
        assert_eq!(p.actor(), "oidc:abc");
    }
}
