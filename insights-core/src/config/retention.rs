//! Settings of scheduled retention enforcement (`[retention]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[retention]`: whether `insights serve` enforces every tenant's
/// retention policies on a schedule. On by default: enforcement only ever
/// deletes what a tenant's own enabled policy says is due (no policy, no
/// deletion), and legal holds always win.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Run enforcement in `insights serve`. Default true.
    pub enabled: bool,
    /// Time between runs, s (2–604800; under 60 only for tests). Runs
    /// start at multiples of it since the Unix epoch, one per interval
    /// across every node. Default 3600.
    pub interval_secs: u64,
    /// Delay of the first run after start-up, s (0–86400). Default 300.
    pub initial_delay_secs: u64,
    /// The installation-wide minimum retention, days (0–36500; 0: none).
    /// No tenant policy can keep recordings for less: the API refuses a
    /// shorter policy, and enforcement treats an older, shorter one as
    /// this long. Default 0.
    pub minimum_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 3600,
            initial_delay_secs: 300,
            minimum_days: 0,
        }
    }
}

impl RetentionSettings {
    /// `interval_secs` as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    /// `initial_delay_secs` as a duration.
    pub fn initial_delay(&self) -> Duration {
        Duration::from_secs(self.initial_delay_secs)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(2..=604_800).contains(&self.interval_secs) {
            return Err(ConfigError::Invalid {
                key: "retention.interval_secs",
                problem: "must be 2-604800".into(),
            });
        }
        if self.minimum_days > 36_500 {
            return Err(ConfigError::Invalid {
                key: "retention.minimum_days",
                problem: "must be 0-36500".into(),
            });
        }
        if self.initial_delay_secs > 86_400 {
            return Err(ConfigError::Invalid {
                key: "retention.initial_delay_secs",
                problem: "must be 0-86400".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(RetentionSettings::default().validate().is_ok());
        let s = RetentionSettings {
            interval_secs: 1,
            ..RetentionSettings::default()
        };
        assert!(matches!(
            s.validate(),
            Err(ConfigError::Invalid {
                key: "retention.interval_secs",
                ..
            })
        ));
    }
}
