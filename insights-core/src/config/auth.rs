//! Settings of authentication (`[auth]`): local accounts, sessions and
//! API tokens of the embedded default, and OIDC bearer tokens (Entra ID)
//! for production (`[auth.oidc]`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::domain::Role;

/// `[auth]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Lifetime of the signed API tokens a login returns (default 900 s).
    pub token_ttl_secs: u64,
    /// A browser session ends after this long without a request (default 1800 s).
    pub session_idle_secs: u64,
    /// ... and after this long in any case (default 43 200 s = 12 h).
    pub session_max_secs: u64,
    /// Key signing API tokens (32 random bytes, created 0600 on first
    /// start). Default `<data_dir>/keys/api-token.key`. Processes that
    /// serve the API for the same installation share it.
    pub token_key_file: Option<PathBuf>,
    /// Roles whose local accounts must give a TOTP code at every login
    /// (default tenant-admin, dpo, platform-operator).
    pub mfa_roles: Vec<Role>,
    /// Consecutive failed logins that lock an account (default 5) ...
    pub lockout_threshold: u32,
    /// ... for this long (default 900 s).
    pub lockout_secs: u64,
    /// Failed logins one client address may make per window before it
    /// gets 429 (default 20 per 300 s).
    pub address_max_failures: u32,
    pub address_window_secs: u64,
    /// Password hashes (argon2id, ~19 MiB and tens of milliseconds each)
    /// computed at once per process; a sign-in arriving when all are busy
    /// gets `429` with `Retry-After` (default 4).
    pub max_concurrent_password_checks: u32,
    /// Reverse proxies (addresses or CIDR ranges, e.g. `10.0.0.0/8`,
    /// `::1`) whose `X-Forwarded-For` header is believed. The client
    /// address in audit events and login throttling is the peer's address
    /// unless the peer is one of these; then it is the right-most
    /// `X-Forwarded-For` entry that is not. Default: none, so no header
    /// can forge where a request came from.
    pub trusted_proxies: Vec<String>,
    pub oidc: OidcSettings,
}

/// `[auth.oidc]`: bearer tokens of an OpenID Connect provider (Entra ID).
/// Off while `discovery_url` is unset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcSettings {
    /// The provider's OpenID configuration, e.g.
    /// `https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration`.
    pub discovery_url: Option<String>,
    /// Expected `iss`. `{tenantid}` stands for the token's own `tid`
    /// (Entra multi-tenant apps: `https://login.microsoftonline.com/{tenantid}/v2.0`).
    pub issuer: String,
    /// Expected `aud`: the API's application (client) id or its App ID URI.
    pub audience: Option<String>,
    /// App-role values of the `roles` claim and the role each maps to.
    /// Never `platform-operator`: a customer directory cannot make one.
    pub role_map: BTreeMap<String, Role>,
    /// Clock skew allowed on `exp`/`nbf` (default 60 s).
    pub leeway_secs: u64,
    /// Keys older than this are refetched in the background (default 3600 s).
    pub jwks_refresh_secs: u64,
    /// An unknown key id refetches the keys at most this often (default 30 s).
    pub jwks_min_refresh_secs: u64,
    /// Timeout of one request to the provider (default 10 000 ms).
    pub request_timeout_ms: u64,
    /// "Sign in with your organisation" (authorization code + PKCE) is
    /// offered when this is set together with `discovery_url`: the web
    /// app registration's client id (the audience of its id tokens).
    pub login_client_id: Option<String>,
    /// Name of the environment variable holding that registration's
    /// client secret (default `INSIGHTS_OIDC_CLIENT_SECRET`); when the
    /// variable is unset the code is redeemed without a secret (a public
    /// client, PKCE only).
    pub login_client_secret_env: String,
    /// A file holding the client secret instead (wins over the variable).
    pub login_client_secret_file: Option<PathBuf>,
    /// The callback URL registered with the provider, e.g.
    /// `https://insights.example.com/api/auth/oidc/callback`.
    pub login_redirect_uri: Option<String>,
    /// What the sign-in button says (default "Sign in with your organisation").
    pub login_label: String,
    /// Refuse tokens and sign-ins whose `amr` claim does not prove
    /// multi-factor authentication (`mfa`, or an `otp`/`hwk`/`fido`/`sc`
    /// factor next to `pwd`) (default true).
    pub require_mfa: bool,
    /// Directory app roles and groups (their object ids) mapped to
    /// security profiles, per tenant: `[[auth.oidc.profile_map]]` with
    /// `tenant` (name), `claim` (`roles` or `groups`), `value` and
    /// `profile` (the profile's name in that tenant). The first entry
    /// matching a principal (in file order) gives its permissions and
    /// scope instead of the role's defaults.
    pub profile_map: Vec<OidcProfileMapping>,
    /// A browser session signed in through OIDC re-checks with Microsoft
    /// Graph (`accountEnabled`, with the `[directory]` app's credentials)
    /// that its directory user is still enabled once the last
    /// confirmation is older than this, s (0–300; default 300). A
    /// disabled or deleted user's session is revoked; when Graph cannot
    /// answer, requests are refused with `503` until it can.
    pub active_check_max_age_secs: u64,
}

/// One entry of `[[auth.oidc.profile_map]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProfileMapping {
    /// The tenant's name.
    pub tenant: String,
    /// `roles` (app-role values) or `groups` (group object ids).
    pub claim: String,
    pub value: String,
    /// A security profile's name in that tenant.
    pub profile: String,
}

/// The default mapping of Entra app roles to our roles.
pub const DEFAULT_ROLE_MAP: &[(&str, Role)] = &[
    ("Insights.TenantAdmin", Role::TenantAdmin),
    ("Insights.ComplianceOfficer", Role::ComplianceOfficer),
    ("Insights.Supervisor", Role::Supervisor),
    ("Insights.User", Role::User),
    ("Insights.Dpo", Role::Dpo),
];

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            token_ttl_secs: 900,
            session_idle_secs: 1800,
            session_max_secs: 12 * 3600,
            token_key_file: None,
            mfa_roles: vec![Role::TenantAdmin, Role::Dpo, Role::PlatformOperator],
            lockout_threshold: 5,
            lockout_secs: 900,
            address_max_failures: 20,
            address_window_secs: 300,
            max_concurrent_password_checks: 4,
            trusted_proxies: Vec::new(),
            oidc: OidcSettings::default(),
        }
    }
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self {
            discovery_url: None,
            issuer: "https://login.microsoftonline.com/{tenantid}/v2.0".to_owned(),
            audience: None,
            role_map: DEFAULT_ROLE_MAP
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            leeway_secs: 60,
            jwks_refresh_secs: 3600,
            jwks_min_refresh_secs: 30,
            request_timeout_ms: 10_000,
            login_client_id: None,
            login_client_secret_env: "INSIGHTS_OIDC_CLIENT_SECRET".to_owned(),
            login_client_secret_file: None,
            login_redirect_uri: None,
            login_label: "Sign in with your organisation".to_owned(),
            require_mfa: true,
            profile_map: Vec::new(),
            active_check_max_age_secs: 300,
        }
    }
}

impl AuthSettings {
    /// Path of the API token signing key.
    pub fn token_key_path(&self, data_dir: &Path) -> PathBuf {
        self.token_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("keys").join("api-token.key"))
    }

    /// Whether local accounts of `role` must use TOTP.
    pub fn requires_mfa(&self, role: Role) -> bool {
        self.mfa_roles.contains(&role)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        if !(60..=3600).contains(&self.token_ttl_secs) {
            return Err(invalid(
                "auth.token_ttl_secs",
                "must be between 60 and 3600 (tokens are short-lived)",
            ));
        }
        if self.session_idle_secs == 0 || self.session_max_secs < self.session_idle_secs {
            return Err(invalid(
                "auth.session_max_secs",
                "must be at least auth.session_idle_secs, which must be at least 1",
            ));
        }
        if self.lockout_threshold == 0 || self.lockout_secs == 0 {
            return Err(invalid(
                "auth.lockout_threshold",
                "lockout_threshold and lockout_secs must be at least 1",
            ));
        }
        if self.address_max_failures == 0 || self.address_window_secs == 0 {
            return Err(invalid(
                "auth.address_max_failures",
                "address_max_failures and address_window_secs must be at least 1",
            ));
        }
        if self.max_concurrent_password_checks == 0 {
            return Err(invalid(
                "auth.max_concurrent_password_checks",
                "must be at least 1",
            ));
        }
        for p in &self.trusted_proxies {
            Cidr::parse(p).map_err(|problem| invalid("auth.trusted_proxies", &problem))?;
        }
        self.oidc.validate()
    }

    /// The parsed [`AuthSettings::trusted_proxies`] (entries that do not
    /// parse are left out; [`AuthSettings::validate`] refuses them).
    pub fn trusted_proxy_ranges(&self) -> Vec<Cidr> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| Cidr::parse(p).ok())
            .collect()
    }
}

/// An address range: an address and a prefix length. A dozen lines of
/// `std` rather than a dependency of the core crate for one comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `fd00::/8` or a single address.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let bad = || format!("`{s}` is not an IP address or CIDR range");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is in the range (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod cidr_tests {
    use super::Cidr;

    #[test]
    fn ranges_and_single_addresses() {
        let net = Cidr::parse("10.0.0.0/8").unwrap_or_else(|e| panic!("{e}"));
        assert!(net.contains("10.200.3.4".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!net.contains("11.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap_or_else(|e| panic!("{e}"))));
        let one = Cidr::parse("::1").unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains("::1".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!one.contains("::2".parse().unwrap_or_else(|e| panic!("{e}"))));
        let all = Cidr::parse("0.0.0.0/0").unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains("203.0.113.9".parse().unwrap_or_else(|e| panic!("{e}"))));
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.0/x", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}

impl OidcSettings {
    /// Whether OIDC bearer tokens are accepted.
    pub fn enabled(&self) -> bool {
        self.discovery_url.is_some()
    }

    /// Whether "sign in with your organisation" is offered.
    pub fn login_enabled(&self) -> bool {
        self.enabled()
            && self
                .login_client_id
                .as_deref()
                .is_some_and(|c| !c.trim().is_empty())
            && self.login_redirect_uri.is_some()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        if self.role_map.values().any(|r| *r == Role::PlatformOperator) {
            return Err(invalid(
                "auth.oidc.role_map",
                "cannot map to platform-operator: a customer directory must not make operators",
            ));
        }
        for m in &self.profile_map {
            if m.claim != "roles" && m.claim != "groups" {
                return Err(invalid(
                    "auth.oidc.profile_map",
                    "claim must be `roles` or `groups`",
                ));
            }
        }
        if self.active_check_max_age_secs > 300 {
            return Err(invalid(
                "auth.oidc.active_check_max_age_secs",
                "at most 300: a directory user's active state is never more than 5 minutes stale",
            ));
        }
        let Some(url) = &self.discovery_url else {
            return Ok(());
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid("auth.oidc.discovery_url", "must be an http(s) URL"));
        }
        if self.audience.as_deref().is_none_or(|a| a.trim().is_empty()) {
            return Err(invalid(
                "auth.oidc.audience",
                "required when auth.oidc.discovery_url is set",
            ));
        }
        if self.issuer.trim().is_empty() {
            return Err(invalid("auth.oidc.issuer", "must not be empty"));
        }
        if self.jwks_refresh_secs == 0 || self.request_timeout_ms == 0 {
            return Err(invalid(
                "auth.oidc.jwks_refresh_secs",
                "jwks_refresh_secs and request_timeout_ms must be at least 1",
            ));
        }
        if self.login_client_id.is_some() {
            let ok = self.login_redirect_uri.as_deref().is_some_and(|u| {
                (u.starts_with("https://") || u.starts_with("http://"))
                    && u.ends_with("/api/auth/oidc/callback")
            });
            if !ok {
                return Err(invalid(
                    "auth.oidc.login_redirect_uri",
                    "required with login_client_id: the http(s) URL of /api/auth/oidc/callback",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_oidc_is_off() {
        let a = AuthSettings::default();
        a.validate().unwrap_or_else(|e| panic!("{e}"));
        assert!(!a.oidc.enabled());
        assert!(a.requires_mfa(Role::TenantAdmin) && a.requires_mfa(Role::Dpo));
        assert!(!a.requires_mfa(Role::User));
        assert_eq!(
            a.token_key_path(Path::new("/d")),
            PathBuf::from("/d/keys/api-token.key")
        );
    }

    #[test]
    fn oidc_needs_an_audience_and_never_maps_operators() {
        let mut a = AuthSettings::default();
        a.oidc.discovery_url = Some("https://idp.example/.well-known/openid-configuration".into());
        let e = a
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("auth.oidc.audience"), "{e}");
        a.oidc.audience = Some("api://insights".into());
        a.validate().unwrap_or_else(|e| panic!("{e}"));
        a.oidc.role_map.insert("Ops".into(), Role::PlatformOperator);
        let e = a
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("auth.oidc.role_map"), "{e}");
    }
}
