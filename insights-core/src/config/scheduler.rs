//! Settings of the periodic jobs' leader election (`[scheduler]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[scheduler]`: how the nodes running the `scheduler` role agree on one
/// leader per periodic job (retention, directory sync). Each job has a
/// lease row in the metadata store; the holder renews it every third of
/// `lease_secs`, and another node takes it over once it has expired, so
/// a dead leader is replaced within two lease periods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// How long a lease lasts without renewal, s (2-3600). Default 30.
    pub lease_secs: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self { lease_secs: 30 }
    }
}

impl SchedulerSettings {
    /// `lease_secs` as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// How often the holder renews (and a follower retries): a third of
    /// the lease.
    pub fn renew_every(&self) -> Duration {
        self.lease() / 3
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(2..=3600).contains(&self.lease_secs) {
            return Err(ConfigError::Invalid {
                key: "scheduler.lease_secs",
                problem: "must be 2-3600".into(),
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
        let d = SchedulerSettings::default();
        assert!(d.validate().is_ok());
        assert_eq!(d.renew_every(), Duration::from_secs(10));
        for bad in [0, 1, 3601] {
            let s = SchedulerSettings { lease_secs: bad };
            assert!(matches!(
                s.validate(),
                Err(ConfigError::Invalid {
                    key: "scheduler.lease_secs",
                    ..
                })
            ));
        }
    }
}
