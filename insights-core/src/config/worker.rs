//! Settings of the AI pipeline's job workers (`[worker]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[worker]`: how `insights worker` (and the worker embedded in
/// `insights serve`) claims and runs jobs.
///
/// Durations are whole seconds (`*_secs`) or milliseconds (`*_ms`), so
/// they can be set from the environment (`INSIGHTS_WORKER__LEASE_SECS=120`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Whether `insights serve` also runs workers in its own process, so a
    /// single-machine install transcribes with no extra setup. Turn off
    /// when dedicated `insights worker` processes run. Default true.
    pub embedded: bool,
    /// Jobs run at the same time per process (1–64). Speech-to-text uses
    /// every core it gets: more than one per few cores rarely helps.
    /// Default 1.
    pub concurrency: usize,
    /// Lease length, s (5–3600). A worker renews its lease every third of
    /// it while it works; a job whose worker stopped renewing (killed,
    /// partitioned) is claimed by another worker once it expires.
    /// Default 60.
    pub lease_secs: u64,
    /// How often an idle worker looks for due jobs, ms (50–60000).
    /// Default 1000.
    pub poll_interval_ms: u64,
    /// Attempts per job before it is dead-lettered (1–100). Default 5.
    pub max_attempts: u32,
    /// Delay after the first transient failure, s; doubled per attempt,
    /// with jitter. Default 10.
    pub backoff_base_secs: u64,
    /// Largest retry delay, s. Default 1800.
    pub backoff_max_secs: u64,
    /// On shutdown, how long a running job may take to finish before it
    /// is handed back to the queue (released, the attempt not counted),
    /// s. Default 20.
    pub shutdown_grace_secs: u64,
    /// Longest audio a stored recording may decode to for transcription
    /// (and access bundles), s. Decoding is streamed and stops there:
    /// the job fails permanently instead of the process allocating for
    /// hours of audio a small file can claim. Default 43200 (12 h).
    pub max_media_duration_secs: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            embedded: true,
            concurrency: 1,
            lease_secs: 60,
            poll_interval_ms: 1000,
            max_attempts: 5,
            backoff_base_secs: 10,
            backoff_max_secs: 1800,
            shutdown_grace_secs: 20,
            max_media_duration_secs: 12 * 3600,
        }
    }
}

impl WorkerSettings {
    /// `lease_secs` as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// `poll_interval_ms` as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// `max_media_duration_secs` as a duration.
    pub fn max_media_duration(&self) -> Duration {
        Duration::from_secs(self.max_media_duration_secs)
    }

    /// `shutdown_grace_secs` as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_owned(),
            })
        };
        if !(1..=64).contains(&self.concurrency) {
            return bad("worker.concurrency", "must be 1-64");
        }
        if !(5..=3600).contains(&self.lease_secs) {
            return bad("worker.lease_secs", "must be 5-3600");
        }
        if !(50..=60_000).contains(&self.poll_interval_ms) {
            return bad("worker.poll_interval_ms", "must be 50-60000");
        }
        if !(1..=100).contains(&self.max_attempts) {
            return bad("worker.max_attempts", "must be 1-100");
        }
        if self.max_media_duration_secs == 0 {
            return bad("worker.max_media_duration_secs", "must be at least 1");
        }
        if self.backoff_base_secs == 0 {
            return bad("worker.backoff_base_secs", "must be at least 1");
        }
        if self.backoff_max_secs < self.backoff_base_secs {
            return bad(
                "worker.backoff_max_secs",
                "must not be below worker.backoff_base_secs",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(WorkerSettings::default().validate().is_ok());
        let w = WorkerSettings {
            concurrency: 0,
            ..WorkerSettings::default()
        };
        assert!(matches!(
            w.validate(),
            Err(ConfigError::Invalid {
                key: "worker.concurrency",
                ..
            })
        ));
        let w = WorkerSettings {
            backoff_max_secs: 1,
            ..WorkerSettings::default()
        };
        assert!(w.validate().is_err());
    }
}
