//! Settings of the uploader's segmented upload (`[uploader]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[uploader]`: while a call runs, the sealed records of its spool media
/// log are staged in the tenant's blob container every `segment_seconds`
/// (uncommitted blocks of one object per recording), so that a gateway
/// node destroyed with its disk loses at most one segment of a long call:
/// another gateway node commits the blocks and stores the recording as
/// partial (`gateway-node-lost`). The other uploader settings (retries,
/// concurrency) are in `[spool]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploaderSettings {
    /// Seconds between two segment uploads of a live call (1–3600).
    /// At most this much audio (plus one upload) is lost when a node and
    /// its disk are lost. Default 60.
    pub segment_seconds: u64,
}

impl Default for UploaderSettings {
    fn default() -> Self {
        Self {
            segment_seconds: 60,
        }
    }
}

impl UploaderSettings {
    /// `segment_seconds` as a duration.
    pub fn segment_interval(&self) -> Duration {
        Duration::from_secs(self.segment_seconds)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=3600).contains(&self.segment_seconds) {
            return Err(ConfigError::Invalid {
                key: "uploader.segment_seconds",
                problem: "must be 1 to 3600".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_seconds_is_checked() {
        assert_eq!(UploaderSettings::default().segment_seconds, 60);
        assert!(UploaderSettings::default().validate().is_ok());
        for bad in [0, 3601] {
            let s = UploaderSettings {
                segment_seconds: bad,
            };
            assert!(s.validate().is_err(), "{bad}");
        }
        let s = UploaderSettings { segment_seconds: 2 };
        assert_eq!(s.segment_interval(), Duration::from_secs(2));
    }
}
