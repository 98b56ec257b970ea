//! Settings of the local encrypted spool and the uploader (`[spool]`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[spool]`: where live and finished recordings wait for upload, how
/// much disk they may take, how often they are made durable, and how the
/// uploader retries.
///
/// Durations are whole seconds (`*_secs`) or milliseconds (`*_ms`), so
/// they can be set from the environment
/// (`INSIGHTS_SPOOL__MAX_AGE_SECS=86400`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSettings {
    /// Spool directory. Default: `spool` in the data directory. Keep it on
    /// a local disk (fsync must mean something) and off network shares.
    pub dir: Option<PathBuf>,
    /// Soft quota in bytes for everything in the spool (live and finished
    /// recordings). A new call is refused when the spool would exceed it
    /// counting the headroom reserved for the calls already recording;
    /// calls already recording are never cut off by the quota. Default
    /// 10 GiB.
    pub quota_bytes: u64,
    /// Headroom reserved per live call when admitting new calls: a call
    /// is admitted only if `used + reserved + call_reserve_bytes <=
    /// quota_bytes`, where `reserved` is what the live calls have not yet
    /// written of their own reserve. Default 64 MiB (≈ 6 h of 24 kbit/s
    /// Opus stereo).
    pub call_reserve_bytes: u64,
    /// How long a finished recording may wait in the spool for upload
    /// before it counts as expired (seed §4.8.4: 24 hours). Expired
    /// recordings are kept, alarmed and still retried: never deleted
    /// silently. Default 86400.
    pub max_age_secs: u64,
    /// The early-warning alarm fires at this percentage of `max_age_secs`
    /// (1–99). Default 80.
    pub warn_at_percent: u8,
    /// How often audio handed to the spool is sealed and fsync'd, in ms
    /// (10–1000). Audio older than this (plus one fsync) survives a crash.
    /// Default 500.
    pub fsync_interval_ms: u64,
    /// Files fsync'd in parallel by the durability tick (1–64). Default 4.
    pub fsync_parallelism: usize,
    /// Recordings uploaded at the same time (1–256). Default 4.
    pub upload_concurrency: usize,
    /// First retry delay after a failed upload, ms. Default 1000.
    pub backoff_initial_ms: u64,
    /// Largest retry delay, ms. Default 300000 (5 min).
    pub backoff_max_ms: u64,
    /// How often the uploader looks for work and checks expiry, ms
    /// (it also wakes as soon as a recording finishes). Default 1000.
    pub scan_interval_ms: u64,
    /// The installation's Ed25519 signing key for chain-of-custody
    /// manifests (created on first start, mode 0600). Default:
    /// `installation-signing-key.json` beside the key file.
    pub signing_key_file: Option<PathBuf>,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        Self {
            dir: None,
            quota_bytes: 10 * 1024 * 1024 * 1024,
            call_reserve_bytes: 64 * 1024 * 1024,
            max_age_secs: 24 * 60 * 60,
            warn_at_percent: 80,
            fsync_interval_ms: 500,
            fsync_parallelism: 4,
            upload_concurrency: 4,
            backoff_initial_ms: 1000,
            backoff_max_ms: 300_000,
            scan_interval_ms: 1000,
            signing_key_file: None,
        }
    }
}

impl SpoolSettings {
    /// The spool directory (`dir`, or `spool` in `data_dir`).
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("spool"))
    }

    /// The installation signing key file (`signing_key_file`, or
    /// `installation-signing-key.json` in the directory of `key_file`).
    pub fn signing_key_file(&self, key_file: &Path) -> PathBuf {
        self.signing_key_file.clone().unwrap_or_else(|| {
            key_file
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join("installation-signing-key.json")
        })
    }

    /// `max_age_secs` as a duration.
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_secs)
    }

    /// When the early-warning alarm fires.
    pub fn warn_age(&self) -> Duration {
        self.max_age() * u32::from(self.warn_at_percent) / 100
    }

    /// `fsync_interval_ms` as a duration.
    pub fn fsync_interval(&self) -> Duration {
        Duration::from_millis(self.fsync_interval_ms)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_owned(),
            })
        };
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return bad("spool.dir", "must not be empty");
        }
        if self.quota_bytes == 0 {
            return bad("spool.quota_bytes", "must be at least 1");
        }
        if self.call_reserve_bytes > self.quota_bytes {
            return bad(
                "spool.call_reserve_bytes",
                "must not exceed spool.quota_bytes (no call could ever start)",
            );
        }
        if self.max_age_secs == 0 {
            return bad("spool.max_age_secs", "must be at least 1");
        }
        if !(1..=99).contains(&self.warn_at_percent) {
            return bad("spool.warn_at_percent", "must be 1-99");
        }
        if !(10..=1000).contains(&self.fsync_interval_ms) {
            return bad(
                "spool.fsync_interval_ms",
                "must be 10-1000 (audio must be durable within a second)",
            );
        }
        if !(1..=64).contains(&self.fsync_parallelism) {
            return bad("spool.fsync_parallelism", "must be 1-64");
        }
        if !(1..=256).contains(&self.upload_concurrency) {
            return bad("spool.upload_concurrency", "must be 1-256");
        }
        if self.backoff_initial_ms == 0 {
            return bad("spool.backoff_initial_ms", "must be at least 1");
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return bad(
                "spool.backoff_max_ms",
                "must be at least spool.backoff_initial_ms",
            );
        }
        if self.scan_interval_ms == 0 {
            return bad("spool.scan_interval_ms", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_resolve_paths() {
        let s = SpoolSettings::default();
        assert!(s.validate().is_ok());
        assert_eq!(s.dir(Path::new("/d")), PathBuf::from("/d/spool"));
        assert_eq!(
            s.signing_key_file(Path::new("/d/keys/kek.json")),
            PathBuf::from("/d/keys/installation-signing-key.json")
        );
        assert_eq!(s.max_age(), Duration::from_secs(86400));
        assert_eq!(s.warn_age(), Duration::from_secs(69120));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(SpoolSettings, &str)> = vec![
            (
                SpoolSettings {
                    fsync_interval_ms: 1500,
                    ..Default::default()
                },
                "spool.fsync_interval_ms",
            ),
            (
                SpoolSettings {
                    quota_bytes: 10,
                    call_reserve_bytes: 11,
                    ..Default::default()
                },
                "spool.call_reserve_bytes",
            ),
            (
                SpoolSettings {
                    warn_at_percent: 100,
                    ..Default::default()
                },
                "spool.warn_at_percent",
            ),
            (
                SpoolSettings {
                    backoff_max_ms: 1,
                    ..Default::default()
                },
                "spool.backoff_max_ms",
            ),
        ];
        for (s, key) in cases {
            let e = s
                .validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(key), "{e}");
        }
    }
}
