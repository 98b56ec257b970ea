//! Settings of directory sync (`[directory]`): users from Entra ID through
//! Microsoft Graph (`/users/delta`), with an app registration's client
//! credentials. Off while `client_id` is unset.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[directory]`.
///
/// One app registration (multi-tenant, application permission
/// `User.Read.All`, consented in each customer directory) serves every
/// tenant that has a directory tenant id. Its secret is read from the
/// environment variable named by `client_secret_env`, never from the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectorySettings {
    /// The app registration's client id; sync is off while unset.
    pub client_id: Option<String>,
    /// Name of the environment variable holding the client secret
    /// (default `INSIGHTS_GRAPH_CLIENT_SECRET`).
    pub client_secret_env: String,
    /// Microsoft Graph's service root (default
    /// `https://graph.microsoft.com/v1.0`).
    pub graph_base_url: String,
    /// The token endpoint; `{tenant}` stands for the tenant's directory
    /// (Entra) tenant id (default
    /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`).
    pub token_url: String,
    /// The scope asked for (default `https://graph.microsoft.com/.default`).
    pub scope: String,
    /// How often `insights serve` syncs every tenant, s (60–604800;
    /// default 3600). 0 turns the schedule off (CLI and API only).
    pub interval_secs: u64,
    /// Retries of one request answered 429/503 (default 6) ...
    pub max_retries: u32,
    /// ... each waiting the `Retry-After` the service asked for, but at
    /// most this long, s (default 300).
    pub max_retry_after_secs: u64,
    /// Timeout of one request, ms (default 30 000).
    pub request_timeout_ms: u64,
}

impl Default for DirectorySettings {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret_env: "INSIGHTS_GRAPH_CLIENT_SECRET".to_owned(),
            graph_base_url: "https://graph.microsoft.com/v1.0".to_owned(),
            token_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token".to_owned(),
            scope: "https://graph.microsoft.com/.default".to_owned(),
            interval_secs: 3600,
            max_retries: 6,
            max_retry_after_secs: 300,
            request_timeout_ms: 30_000,
        }
    }
}

impl DirectorySettings {
    /// Whether directory sync is configured.
    pub fn enabled(&self) -> bool {
        self.client_id
            .as_deref()
            .is_some_and(|c| !c.trim().is_empty())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        if !self.enabled() {
            return Ok(());
        }
        for (key, v) in [
            ("directory.graph_base_url", &self.graph_base_url),
            ("directory.token_url", &self.token_url),
        ] {
            if !(v.starts_with("https://") || v.starts_with("http://")) {
                return Err(invalid(key, "must be an http(s) URL"));
            }
        }
        if self.client_secret_env.trim().is_empty() {
            return Err(invalid(
                "directory.client_secret_env",
                "must name an environment variable",
            ));
        }
        if self.interval_secs != 0 && !(60..=604_800).contains(&self.interval_secs) {
            return Err(invalid(
                "directory.interval_secs",
                "must be 0 (no schedule) or between 60 and 604800",
            ));
        }
        if self.max_retries > 50 || self.max_retry_after_secs == 0 {
            return Err(invalid(
                "directory.max_retries",
                "max_retries must be at most 50 and max_retry_after_secs at least 1",
            ));
        }
        if !(1000..=600_000).contains(&self.request_timeout_ms) {
            return Err(invalid(
                "directory.request_timeout_ms",
                "must be between 1000 and 600000",
            ));
        }
        Ok(())
    }
}
