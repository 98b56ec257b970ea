//! Settings of the Prometheus endpoint (`[metrics]`).
//!
//! `/metrics` is served on the main listener by default. Operators who do
//! not want it reachable where the API is set `listen` (a separate
//! address, e.g. one only the monitoring network reaches) and/or
//! `bearer_token` (the scraper then sends `Authorization: Bearer …`).
//! Metric labels carry no tenant id unless `tenant_labels` is on.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

/// `[metrics]`: where and to whom `/metrics` is served.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve `/metrics` on this address only (not on the main listener).
    /// Unset: on the main listener.
    pub listen: Option<SocketAddr>,
    /// Require `Authorization: Bearer <token>` on `/metrics`.
    pub bearer_token: Option<Secret>,
    /// File holding the bearer token (alternative to `bearer_token`).
    pub bearer_token_file: Option<PathBuf>,
    /// Keep per-tenant labels (`tenant="<uuid>"`) on metrics. Default
    /// false: tenant labels are dropped and their series summed, so the
    /// exposition names no tenant.
    pub tenant_labels: bool,
}

impl MetricsSettings {
    /// The bearer token, read from `bearer_token_file` if given.
    pub fn bearer_token(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(s) = &self.bearer_token {
            return Ok(Some(s.clone()));
        }
        match &self.bearer_token_file {
            Some(p) => {
                let s = std::fs::read_to_string(p).map_err(|e| ConfigError::Invalid {
                    key: "metrics.bearer_token_file",
                    problem: format!("{}: {e}", p.display()),
                })?;
                let s = s.trim();
                if s.len() < 16 {
                    return Err(ConfigError::Invalid {
                        key: "metrics.bearer_token_file",
                        problem: "the token must be at least 16 characters".into(),
                    });
                }
                Ok(Some(Secret::new(s)))
            }
            None => Ok(None),
        }
    }

    /// Checks values that parse but make no sense; `main_listen` is the
    /// API's listen address.
    pub fn validate(&self, main_listen: SocketAddr) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(invalid(
                "metrics.bearer_token",
                "give bearer_token or bearer_token_file, not both",
            ));
        }
        if self
            .bearer_token
            .as_ref()
            .is_some_and(|t| t.expose().trim().len() < 16)
        {
            return Err(invalid(
                "metrics.bearer_token",
                "must be at least 16 characters",
            ));
        }
        if let Some(l) = self.listen
            && l == main_listen
            && l.port() != 0
        {
            return Err(invalid(
                "metrics.listen",
                "must differ from the main listen address",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_on_the_main_listener_without_tenants() {
        let m = MetricsSettings::default();
        assert!(m.listen.is_none() && !m.tenant_labels);
        m.validate(SocketAddr::from(([127, 0, 0, 1], 8080)))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn short_tokens_and_the_main_address_are_refused() {
        let main = SocketAddr::from(([127, 0, 0, 1], 8080));
        let m = MetricsSettings {
            bearer_token: Some(Secret::new("short")),
            ..MetricsSettings::default()
        };
        let e = m
            .validate(main)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("metrics.bearer_token"), "{e}");
        let m = MetricsSettings {
            listen: Some(main),
            ..MetricsSettings::default()
        };
        let e = m
            .validate(main)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("metrics.listen"), "{e}");
    }
}
