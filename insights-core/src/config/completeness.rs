//! Settings of the completeness reconciliation (`[completeness]`, issue
//! 17 §3). Graph access (app id, secret, token endpoint, service root) is
//! `[directory]`'s: the same Entra app reads users and call records.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[completeness]`: the daily reconciliation of Microsoft's call records
/// against the recordings, on the scheduler role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompletenessConfig {
    /// Run the reconciliation on a schedule in `insights serve` (when
    /// `[directory]` is configured: it needs Graph). Default true.
    pub enabled: bool,
    /// Time between scheduled runs, s (2–604800; under 60 only for
    /// tests). Default 86400 (daily).
    pub interval_secs: u64,
    /// Delay of the first scheduled run after start-up, s (0–86400).
    /// Default 600.
    pub initial_delay_secs: u64,
    /// How far back a scheduled run reconciles, hours (1–720: Graph keeps
    /// call records 30 days). Default 48: yesterday's calls, and those
    /// whose call record came late.
    pub lookback_hours: u32,
    /// Uncovered stretches up to this long at a call's edges and between
    /// legs are not gaps (the bot joins a second or two after the call
    /// starts), s (0–300). Default 10.
    pub tolerance_secs: u32,
    /// The alert threshold of tenants that set none: coverage of in-scope
    /// call time below this percentage raises the completeness alert
    /// (0–100). Default 99.
    pub threshold_percent: f64,
}

impl Default for CompletenessConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 86_400,
            initial_delay_secs: 600,
            lookback_hours: 48,
            tolerance_secs: 10,
            threshold_percent: 99.0,
        }
    }
}

impl CompletenessConfig {
    /// `threshold_percent` in thousandths.
    pub fn threshold_permille(&self) -> u32 {
        // Validated to 0..=100, so the product fits.
        (self.threshold_percent * 10.0).round().clamp(0.0, 1000.0) as u32
    }

    /// `initial_delay_secs` as a duration.
    pub fn initial_delay(&self) -> Duration {
        Duration::from_secs(self.initial_delay_secs)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(2..=604_800).contains(&self.interval_secs) {
            return Err(ConfigError::Invalid {
                key: "completeness.interval_secs",
                problem: "must be 2-604800".into(),
            });
        }
        if self.initial_delay_secs > 86_400 {
            return Err(ConfigError::Invalid {
                key: "completeness.initial_delay_secs",
                problem: "must be 0-86400".into(),
            });
        }
        if !(1..=720).contains(&self.lookback_hours) {
            return Err(ConfigError::Invalid {
                key: "completeness.lookback_hours",
                problem: "must be 1-720".into(),
            });
        }
        if self.tolerance_secs > 300 {
            return Err(ConfigError::Invalid {
                key: "completeness.tolerance_secs",
                problem: "must be 0-300".into(),
            });
        }
        if !(0.0..=100.0).contains(&self.threshold_percent) {
            return Err(ConfigError::Invalid {
                key: "completeness.threshold_percent",
                problem: "must be 0-100".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_their_key() {
        let d = CompletenessConfig::default();
        assert!(d.validate().is_ok());
        assert_eq!(d.threshold_permille(), 990);
        for (bad, key) in [
            (
                CompletenessConfig {
                    lookback_hours: 0,
                    ..d.clone()
                },
                "completeness.lookback_hours",
            ),
            (
                CompletenessConfig {
                    threshold_percent: 101.0,
                    ..d.clone()
                },
                "completeness.threshold_percent",
            ),
            (
                CompletenessConfig {
                    interval_secs: 1,
                    ..d.clone()
                },
                "completeness.interval_secs",
            ),
        ] {
            match bad.validate() {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{other:?}"),
            }
        }
    }
}
