//! `[keys.azure_key_vault]`: tenant key-encryption keys held in Azure Key
//! Vault (one RSA key per tenant, named `<key_prefix><tenant id>`); data
//! keys are wrapped and unwrapped by the vault (`wrapkey`/`unwrapkey`,
//! RSA-OAEP-256). Authenticated with Entra client credentials
//! (`tenant_id`, `client_id`, `client_secret_file`) or a managed identity
//! (`managed_identity_endpoint`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The managed-identity token endpoint of Azure VMs and containers (IMDS).
pub const IMDS_TOKEN_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// `[keys.azure_key_vault]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureKeyVaultSettings {
    /// The vault, e.g. `https://contoso-insights.vault.azure.net`
    /// (https; plain HTTP only with `allow_insecure_http`).
    pub vault_url: Option<String>,
    /// The Entra (directory) tenant of the app registration (client
    /// credentials).
    pub tenant_id: Option<String>,
    /// The app registration's client id (client credentials), or the
    /// client id of a user-assigned managed identity.
    pub client_id: Option<String>,
    /// File holding the client secret (client credentials).
    pub client_secret_file: Option<PathBuf>,
    /// A managed-identity token endpoint of the IMDS shape (e.g.
    /// [`IMDS_TOKEN_ENDPOINT`]); used instead of client credentials.
    pub managed_identity_endpoint: Option<String>,
    /// The client-credentials token endpoint; `{tenant}` stands for
    /// `tenant_id` (default
    /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`).
    pub token_endpoint: String,
    /// Prefix of the tenants' key names: `<key_prefix><tenant id>`
    /// (letters, digits and `-`; default `insights-kek-`).
    pub key_prefix: String,
    /// How long unwrapped data keys stay in memory, s (default 300; 0 =
    /// no cache). Evicted keys are zeroised. A key disabled in the vault
    /// still opens recordings whose data key is cached, for at most this
    /// long; new recordings are refused at once.
    pub cache_ttl_secs: u64,
    /// Most unwrapped data keys held in memory (default 10 000).
    pub cache_max_entries: usize,
    /// Retries of one request answered 408/429/5xx or not answered
    /// (default 4) ...
    pub max_retries: u32,
    /// ... each waiting the `Retry-After` asked for, but at most this
    /// long, s (default 30).
    pub max_retry_after_secs: u64,
    /// Timeout of one request, ms (default 10 000).
    pub request_timeout_ms: u64,
}

impl Default for AzureKeyVaultSettings {
    fn default() -> Self {
        Self {
            vault_url: None,
            tenant_id: None,
            client_id: None,
            client_secret_file: None,
            managed_identity_endpoint: None,
            token_endpoint: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
                .to_owned(),
            key_prefix: "insights-kek-".to_owned(),
            cache_ttl_secs: 300,
            cache_max_entries: 10_000,
            max_retries: 4,
            max_retry_after_secs: 30,
            request_timeout_ms: 10_000,
        }
    }
}

impl AzureKeyVaultSettings {
    /// Checks the settings of an installation whose provider is
    /// `azure-key-vault`.
    pub fn validate(&self, allow_insecure_http: bool) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        let https = |key: &'static str, url: &str| {
            if url.starts_with("https://") || (allow_insecure_http && url.starts_with("http://")) {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    "must be an https:// URL (allow_insecure_http = true is for tests with local stand-ins only)",
                ))
            }
        };
        let vault = self.vault_url.as_deref().unwrap_or("");
        if vault.is_empty() {
            return Err(invalid(
                "keys.azure_key_vault.vault_url",
                "required when keys.provider = \"azure-key-vault\"",
            ));
        }
        https("keys.azure_key_vault.vault_url", vault)?;
        if self.key_prefix.is_empty()
            || self.key_prefix.len() > 80
            || !self
                .key_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid(
                "keys.azure_key_vault.key_prefix",
                "1 to 80 letters, digits or `-` (Key Vault key names)",
            ));
        }
        match &self.managed_identity_endpoint {
            Some(mi) => {
                // IMDS is link-local plain HTTP by design: it never leaves
                // the host.
                if !(mi.starts_with("http://169.254.169.254/") || mi.starts_with("https://")) {
                    https("keys.azure_key_vault.managed_identity_endpoint", mi)?;
                }
                if self.client_secret_file.is_some() {
                    return Err(invalid(
                        "keys.azure_key_vault.client_secret_file",
                        "give either a client secret or managed_identity_endpoint, not both",
                    ));
                }
            }
            None => {
                for (key, v) in [
                    ("keys.azure_key_vault.tenant_id", &self.tenant_id),
                    ("keys.azure_key_vault.client_id", &self.client_id),
                ] {
                    if v.as_deref().is_none_or(|v| v.trim().is_empty()) {
                        return Err(invalid(
                            key,
                            "required with client credentials (or set managed_identity_endpoint)",
                        ));
                    }
                }
                if self.client_secret_file.is_none() {
                    return Err(invalid(
                        "keys.azure_key_vault.client_secret_file",
                        "required with client credentials (or set managed_identity_endpoint)",
                    ));
                }
                https("keys.azure_key_vault.token_endpoint", &self.token_endpoint)?;
            }
        }
        if self.request_timeout_ms == 0 {
            return Err(invalid(
                "keys.azure_key_vault.request_timeout_ms",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> AzureKeyVaultSettings {
        AzureKeyVaultSettings {
            vault_url: Some("https://v.vault.azure.net".into()),
            tenant_id: Some("t".into()),
            client_id: Some("c".into()),
            client_secret_file: Some("/run/secret".into()),
            ..Default::default()
        }
    }

    #[test]
    fn validation_names_the_key() {
        assert!(ok().validate(false).is_ok());
        let key = |s: AzureKeyVaultSettings, insecure| match s.validate(insecure) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        let mut s = ok();
        s.vault_url = Some("http://127.0.0.1:1".into());
        assert_eq!(key(s.clone(), false), "keys.azure_key_vault.vault_url");
        assert!(s.validate(true).is_ok());
        let mut s = ok();
        s.key_prefix = "bad_prefix".into();
        assert_eq!(key(s, false), "keys.azure_key_vault.key_prefix");
        let mut s = ok();
        s.client_secret_file = None;
        assert_eq!(
            key(s.clone(), false),
            "keys.azure_key_vault.client_secret_file"
        );
        s.managed_identity_endpoint = Some(IMDS_TOKEN_ENDPOINT.into());
        s.tenant_id = None;
        assert!(s.validate(false).is_ok());
    }
}
