//! Who may call the webhook: validation of the bearer token Graph
//! Communications puts on every callback.
//!
//! A Microsoft token must be RS256, signed by a key published at the
//! configured OpenID configuration (`jwks_uri`, cached and rotated by
//! [`insights_http::jwks::JwksCache`], shared with the API), issued by
//! one of the configured issuers, for the audience = the bot's app id, and
//! within `exp`/`nbf` (with a small leeway). Its `tid` claim names the
//! customer's Entra tenant.
//!
//! When `gateway.trust_simulator_key` is on (off by default; refused
//! together with `gateway.app_id`), an
//! EdDSA token signed with the local simulator key ([`simulator`]) and
//! issued by [`SIMULATOR_ISSUER`] is accepted as well; the call it opens is
//! then controlled in-process instead of through Graph.
//!
//! Anything else (no token, not a JWT, `alg: none`, another algorithm, an
//! unknown key, a bad signature, expired, wrong audience or issuer) is
//! refused before the request body is even parsed.

pub mod simulator;

use std::sync::Arc;
use std::time::Duration;

use insights_http::jwks::{JwksCache, KeyLookupError, KeyRef};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;

pub use simulator::{
    SIMULATOR_ISSUER, SimulatorKey, SimulatorKeyError, default_key_path, mint_simulator_token,
};

/// Who signed a valid callback token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenIssuer {
    /// Microsoft Graph Communications.
    Microsoft,
    /// The local call simulator.
    Simulator,
}

/// What a valid token tells us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    pub issuer: TokenIssuer,
    /// The `tid` claim: the customer's Entra tenant, when present.
    pub directory_tenant_id: Option<Uuid>,
}

/// Why a token was refused. Each has a stable code for logs, metrics and
/// the problem response.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token is signed by an unknown key")]
    UnknownKey,
    #[error("the token is signed by the simulator key, which is not trusted here")]
    UntrustedSimulator,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued for another audience")]
    Audience,
    #[error("the token comes from an unexpected issuer")]
    Issuer,
    #[error("the token lacks a required claim")]
    MissingClaim,
    /// The signing keys could not be fetched and none are cached.
    #[error("the signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    /// Stable kebab-case code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "token-missing",
            AuthError::Malformed => "token-malformed",
            AuthError::Algorithm => "token-algorithm",
            AuthError::UnknownKey => "token-unknown-key",
            AuthError::UntrustedSimulator => "token-untrusted-simulator",
            AuthError::Signature => "token-signature",
            AuthError::Expired => "token-expired",
            AuthError::NotYetValid => "token-not-yet-valid",
            AuthError::Audience => "token-audience",
            AuthError::Issuer => "token-issuer",
            AuthError::MissingClaim => "token-claim-missing",
            AuthError::KeysUnavailable(_) => "signing-keys-unavailable",
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    tid: Option<String>,
}

/// Settings of the validator.
#[derive(Clone, Debug)]
pub struct ValidatorSettings {
    /// Expected `aud`: the bot's app id.
    pub audience: String,
    /// Accepted `iss` values of Microsoft tokens.
    pub issuers: Vec<String>,
    /// Leeway on `exp`/`nbf`.
    pub leeway: Duration,
    pub openid_configuration_url: String,
    pub jwks_refresh: Duration,
    pub jwks_min_refresh: Duration,
    pub request_timeout: Duration,
}

struct TrustedSimulator {
    kid: String,
    key: DecodingKey,
}

/// Validates callback tokens.
pub struct TokenValidator {
    settings: ValidatorSettings,
    jwks: Arc<JwksCache>,
    simulator: Option<TrustedSimulator>,
}

impl TokenValidator {
    /// A validator for Microsoft tokens, also trusting `simulator` if given.
    pub fn new(
        http: reqwest::Client,
        settings: ValidatorSettings,
        simulator: Option<&SimulatorKey>,
    ) -> Result<Self, SimulatorKeyError> {
        let jwks = Arc::new(JwksCache::new(
            http,
            settings.openid_configuration_url.clone(),
            settings.jwks_refresh,
            settings.jwks_min_refresh,
            settings.request_timeout,
        ));
        let simulator = match simulator {
            Some(k) => Some(TrustedSimulator {
                kid: k.kid().to_owned(),
                key: k.decoding_key()?,
            }),
            None => None,
        };
        Ok(Self {
            settings,
            jwks,
            simulator,
        })
    }

    /// Whether simulator-signed tokens are accepted.
    pub fn trusts_simulator(&self) -> bool {
        self.simulator.is_some()
    }

    /// How many times the signing keys were fetched (for tests and metrics).
    pub fn jwks_fetch_count(&self) -> u64 {
        self.jwks.fetch_count()
    }

    /// Validates an `Authorization` header value (`Bearer <jwt>`).
    pub async fn validate_header(
        &self,
        authorization: Option<&str>,
    ) -> Result<VerifiedToken, AuthError> {
        let value = authorization.map(str::trim).ok_or(AuthError::Missing)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Missing);
        }
        self.validate(token.trim()).await
    }

    /// Validates a bare JWT.
    pub async fn validate(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        // `alg: none` and unknown algorithms do not even parse as a header.
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let (issuer, key, issuers) = match header.alg {
            Algorithm::RS256 => {
                let r = KeyRef {
                    kid: header.kid.as_deref(),
                    x5t: header.x5t.as_deref(),
                };
                if r.kid.is_none() && r.x5t.is_none() {
                    return Err(AuthError::UnknownKey);
                }
                let key = self.jwks.key(r).await.map_err(|e| match e {
                    KeyLookupError::Unknown => AuthError::UnknownKey,
                    KeyLookupError::Unavailable(why) => AuthError::KeysUnavailable(why),
                })?;
                (TokenIssuer::Microsoft, key, self.settings.issuers.clone())
            }
            Algorithm::EdDSA => {
                let sim = self
                    .simulator
                    .as_ref()
                    .ok_or(AuthError::UntrustedSimulator)?;
                if header.kid.as_deref() != Some(sim.kid.as_str()) {
                    return Err(AuthError::UnknownKey);
                }
                (
                    TokenIssuer::Simulator,
                    sim.key.clone(),
                    vec![SIMULATOR_ISSUER.to_owned()],
                )
            }
            _ => return Err(AuthError::Algorithm),
        };
        let mut v = Validation::new(header.alg);
        v.set_audience(&[self.settings.audience.as_str()]);
        v.set_issuer(&issuers);
        v.set_required_spec_claims(&["exp", "aud", "iss"]);
        v.validate_nbf = true;
        v.leeway = self.settings.leeway.as_secs();
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => AuthError::Signature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidAudience => AuthError::Audience,
            ErrorKind::InvalidIssuer => AuthError::Issuer,
            ErrorKind::MissingRequiredClaim(_) => AuthError::MissingClaim,
            ErrorKind::InvalidAlgorithm => AuthError::Algorithm,
            _ => AuthError::Malformed,
        })?;
        let directory_tenant_id = data
            .claims
            .tid
            .as_deref()
            .and_then(|t| Uuid::parse_str(t).ok());
        Ok(VerifiedToken {
            issuer,
            directory_tenant_id,
        })
    }
}
