//! OIDC bearer tokens, as Entra ID issues them for our API.
//!
//! A token must be RS256, signed by a key published at the configured
//! discovery URL (`jwks_uri`; cached, rotated and refetched for an
//! unknown key id by [`JwksCache`]), carry the configured audience, an
//! issuer equal to `auth.oidc.issuer` (with `{tenantid}` replaced by the
//! token's own `tid`), be within `exp`/`nbf` (with leeway), and name its
//! directory tenant (`tid`, a GUID). Anything else — `alg: none`, HS256
//! (which would let a public key act as an HMAC secret), an unknown key,
//! a bad signature — is refused.

use std::sync::Arc;
use std::time::Duration;

use insights_core::config::OidcSettings;
use insights_http::jwks::{JwksCache, KeyLookupError, KeyRef};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use uuid::Uuid;

/// What a valid OIDC token tells us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The directory (Entra) tenant.
    pub directory_tenant_id: Uuid,
    /// `oid` (the directory object id), else `sub`.
    pub subject: String,
    /// The directory object id, when present.
    pub object_id: Option<String>,
    /// App-role values of the `roles` claim.
    pub roles: Vec<String>,
    /// Group object ids (`groups` claim).
    pub groups: Vec<String>,
}

/// Why an OIDC token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid ({0})")]
    Invalid(&'static str),
    #[error("the signing keys are unavailable")]
    KeysUnavailable,
    #[error("the token does not prove multi-factor authentication")]
    MfaRequired,
}

/// Whether an `amr` claim (RFC 8176) proves multi-factor authentication:
/// `mfa` itself, or a second factor (`otp`, `hwk`, `swk`, `fido`, `sc`,
/// `face`, `fpt`, `iris`) next to another method.
pub fn amr_proves_mfa(amr: &[String]) -> bool {
    const SECOND: &[&str] = &["otp", "hwk", "swk", "fido", "sc", "face", "fpt", "iris"];
    amr.iter().any(|m| m == "mfa")
        || (amr.len() >= 2 && amr.iter().any(|m| SECOND.contains(&m.as_str())))
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    amr: Vec<String>,
}

/// Validates OIDC bearer tokens.
pub struct OidcValidator {
    settings: OidcSettings,
    audience: String,
    jwks: Arc<JwksCache>,
}

impl OidcValidator {
    /// A validator for enabled settings (`None` when OIDC is off).
    pub fn new(http: reqwest::Client, settings: &OidcSettings) -> Option<Self> {
        let url = settings.discovery_url.clone()?;
        let audience = settings.audience.clone()?;
        let jwks = Arc::new(JwksCache::new(
            http,
            url,
            Duration::from_secs(settings.jwks_refresh_secs),
            Duration::from_secs(settings.jwks_min_refresh_secs),
            Duration::from_millis(settings.request_timeout_ms),
        ));
        Some(Self {
            settings: settings.clone(),
            audience,
            jwks,
        })
    }

    /// How often the keys were fetched (tests, metrics).
    pub fn jwks_fetch_count(&self) -> u64 {
        self.jwks.fetch_count()
    }

    /// Validates a bare JWT.
    pub async fn validate(&self, token: &str) -> Result<OidcIdentity, OidcError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| OidcError::Invalid("malformed"))?;
        if header.alg != Algorithm::RS256 {
            return Err(OidcError::Invalid("algorithm"));
        }
        let r = KeyRef {
            kid: header.kid.as_deref(),
            x5t: header.x5t.as_deref(),
        };
        if r.kid.is_none() && r.x5t.is_none() {
            return Err(OidcError::Invalid("no key id"));
        }
        let key = self.jwks.key(r).await.map_err(|e| match e {
            KeyLookupError::Unknown => OidcError::Invalid("unknown key"),
            KeyLookupError::Unavailable(_) => OidcError::KeysUnavailable,
        })?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[self.audience.as_str()]);
        v.set_required_spec_claims(&["exp", "aud", "iss"]);
        v.validate_nbf = true;
        v.leeway = self.settings.leeway_secs;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => OidcError::Expired,
            ErrorKind::InvalidSignature => OidcError::Invalid("signature"),
            ErrorKind::ImmatureSignature => OidcError::Invalid("not yet valid"),
            ErrorKind::InvalidAudience => OidcError::Invalid("audience"),
            ErrorKind::MissingRequiredClaim(_) => OidcError::Invalid("missing claim"),
            _ => OidcError::Invalid("malformed"),
        })?;
        let c = data.claims;
        let tid = c
            .tid
            .as_deref()
            .and_then(|t| Uuid::try_parse(t).ok())
            .ok_or(OidcError::Invalid("no tenant"))?;
        // Entra multi-tenant issuers name the tenant: compare with the
        // token's own tid substituted.
        let expected = self
            .settings
            .issuer
            .replace("{tenantid}", &tid.hyphenated().to_string());
        if c.iss != expected {
            return Err(OidcError::Invalid("issuer"));
        }
        let subject = c
            .oid
            .clone()
            .or(c.sub)
            .filter(|s| !s.is_empty())
            .ok_or(OidcError::Invalid("no subject"))?;
        if self.settings.require_mfa && !amr_proves_mfa(&c.amr) {
            return Err(OidcError::MfaRequired);
        }
        Ok(OidcIdentity {
            directory_tenant_id: tid,
            subject,
            object_id: c.oid,
            roles: c.roles,
            groups: c.groups,
        })
    }
}
