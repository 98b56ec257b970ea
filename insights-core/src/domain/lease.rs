//! Leases of the periodic jobs (retention, directory sync): one row per
//! job naming the node process that runs it, until when, and a fencing
//! token that grows by one every time the lease changes hands.
//!
//! The store's lease row is the only agreement between nodes: no
//! consensus of our own. A holder renews before expiry; once a lease has
//! expired any node may take it, which increments the token. Writes of a
//! job are fenced by the token: the store refuses a fenced write whose
//! token is no longer the row's (or whose lease expired), in the same
//! transaction as the write. Every interval of a job runs once: its run is
//! recorded as a [`ScheduledRun`] keyed by job and interval start.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// The message of the [`StoreError::Refused`](crate::store::StoreError::Refused)
/// a fenced write gets when its lease is no longer held.
pub const LEASE_LOST: &str = "the scheduler lease is no longer held by this node";

/// A held lease, as the store granted it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The job (`retention`, `directory-sync`).
    pub job: String,
    /// The holding node process (node name and a per-process suffix).
    pub holder: String,
    /// The fencing token: strictly greater than that of every earlier
    /// holder of this job's lease.
    pub token: i64,
    /// Until when it is held without renewal (the store's clock).
    pub expires_at: DateTime<Utc>,
}

/// What [`claim_scheduled_run`](crate::store::LeaseStore::claim_scheduled_run)
/// found for an interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunClaim {
    /// Nobody ran it yet: it is now recorded as started by this holder.
    Started,
    /// An earlier holder started it and did not finish (it died or lost
    /// its lease): it is now this holder's to finish.
    Resumed,
    /// It was finished already: nothing to do.
    Done,
}

/// One interval's run of a periodic job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledRun {
    pub job: String,
    /// The start of the interval (a multiple of the interval since the
    /// Unix epoch).
    pub interval_start: DateTime<Utc>,
    /// The holder that last claimed it, and its token.
    pub holder: String,
    pub token: i64,
    /// How many holders claimed it (more than 1 only after a leader
    /// change in the middle of the run).
    pub attempts: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The start of the interval of length `every` that contains `at`:
/// intervals are aligned on the Unix epoch, so every node computes the
/// same ones.
pub fn interval_start(at: DateTime<Utc>, every: std::time::Duration) -> DateTime<Utc> {
    let every_us = i64::try_from(every.as_micros()).unwrap_or(i64::MAX).max(1);
    let us = at.timestamp_micros();
    let start = us - us.rem_euclid(every_us);
    Utc.timestamp_micros(start).single().unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn intervals_align_on_the_epoch() {
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 10, 17, 42).unwrap();
        assert_eq!(
            interval_start(at, Duration::from_secs(3600)),
            Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap()
        );
        assert_eq!(
            interval_start(at, Duration::from_secs(5)),
            Utc.with_ymd_and_hms(2026, 12, 7, 10, 17, 40).unwrap()
        );
        let s = interval_start(at, Duration::from_secs(7));
        assert_eq!(interval_start(s, Duration::from_secs(7)), s);
    }
}
