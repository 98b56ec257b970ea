//! Settings of the data-subject tools served by the API (`[gdpr]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[gdpr]`: access bundles built through the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GdprSettings {
    /// Days an access bundle stays downloadable before it is deleted
    /// (1-365). Default 7.
    pub bundle_expiry_days: u32,
    /// Longest media a bundle decodes per recording when it masks the
    /// other parties' audio, s (1-172800). Default 43200 (12 h).
    pub bundle_media_max_secs: u64,
    /// Region (ISO 3166, e.g. `DE`) for phone numbers given without a
    /// country code in API requests. Default none.
    pub default_region: Option<String>,
}

impl Default for GdprSettings {
    fn default() -> Self {
        Self {
            bundle_expiry_days: 7,
            bundle_media_max_secs: 12 * 3600,
            default_region: None,
        }
    }
}

impl GdprSettings {
    /// `bundle_expiry_days` as a duration.
    pub fn bundle_expiry(&self) -> Duration {
        Duration::from_secs(u64::from(self.bundle_expiry_days) * 86_400)
    }

    /// `bundle_media_max_secs` as a duration.
    pub fn bundle_media_max(&self) -> Duration {
        Duration::from_secs(self.bundle_media_max_secs)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=365).contains(&self.bundle_expiry_days) {
            return Err(ConfigError::Invalid {
                key: "gdpr.bundle_expiry_days",
                problem: "must be 1-365".into(),
            });
        }
        if !(1..=172_800).contains(&self.bundle_media_max_secs) {
            return Err(ConfigError::Invalid {
                key: "gdpr.bundle_media_max_secs",
                problem: "must be 1-172800".into(),
            });
        }
        if let Some(r) = &self.default_region
            && (r.len() != 2 || !r.chars().all(|c| c.is_ascii_alphabetic()))
        {
            return Err(ConfigError::Invalid {
                key: "gdpr.default_region",
                problem: "must be a two-letter ISO 3166 region code".into(),
            });
        }
        Ok(())
    }
}
