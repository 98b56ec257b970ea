//! Durable background jobs: the AI pipeline's work items (transcribe a
//! recording, then recap it), kept in the metadata store so that any
//! worker process can run them and a killed worker's job is run again.
//!
//! A job is `queued` until a worker claims it, `running` under a lease
//! (worker id, lease id, expiry) that the worker renews while it works,
//! then `succeeded`, or `queued` again with a later `run_after` after a
//! transient failure, or `dead` (dead-lettered) with the reason once it
//! failed permanently or ran out of attempts. A running job whose lease
//! expired (its worker died) is claimed again like a queued one.
//!
//! Rows hold ids, states, counters, times and a failure reason written by
//! our own code: never transcript text or other personal data.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{RecordingId, TenantId, string_enum};

/// The id of a [`Job`] (UUIDv7: sorts by creation time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub Uuid);

impl JobId {
    /// A fresh id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl From<Uuid> for JobId {
    fn from(u: Uuid) -> Self {
        Self(u)
    }
}

string_enum!(
    /// What a job does.
    JobKind {
        /// Speech-to-text of every participant's audio.
        Transcribe => "transcribe",
        /// Summary, decisions, action items and topics (after `transcribe`).
        Recap => "recap",
    }
);

string_enum!(
    /// Where a job is in its life.
    JobState {
        /// Waiting for a worker (not before `run_after`).
        Queued => "queued",
        /// Claimed by a worker holding a lease.
        Running => "running",
        /// Done.
        Succeeded => "succeeded",
        /// Dead-lettered: failed permanently or out of attempts; see
        /// `last_error`. Runs again only when re-enqueued.
        Dead => "dead",
    }
);

impl JobState {
    /// Queued or running: an enqueue for the same recording and kind
    /// returns this job instead of adding one.
    pub fn is_pending(&self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }
}

/// A durable job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub tenant_id: TenantId,
    pub recording_id: RecordingId,
    pub kind: JobKind,
    pub state: JobState,
    /// Claims so far (a claim is an attempt, also when its worker died).
    pub attempts: u32,
    pub max_attempts: u32,
    /// Not claimed before this time (backoff after a transient failure).
    pub run_after: DateTime<Utc>,
    /// The worker holding the lease while running.
    pub worker_id: Option<String>,
    /// When the current lease runs out (running jobs only).
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed (a reason of our own code, no content).
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it succeeded or was dead-lettered.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job to add with `MetadataStore::enqueue_job`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    pub recording_id: RecordingId,
    pub kind: JobKind,
    /// At least 1.
    pub max_attempts: u32,
    pub run_after: DateTime<Utc>,
}

impl NewJob {
    /// A job due now with [`DEFAULT_MAX_ATTEMPTS`].
    pub fn now(recording_id: RecordingId, kind: JobKind) -> Self {
        Self {
            recording_id,
            kind,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            run_after: super::now(),
        }
    }
}

/// Attempts a job gets unless configured otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// What an enqueue did.
#[derive(Clone, Debug, PartialEq)]
pub struct Enqueued {
    /// The new job, or the pending one that was already there.
    pub job: Job,
    /// Whether a job was added (false: one was already pending).
    pub created: bool,
}

/// Proof that a worker holds a running job: every call that changes the
/// job presents it, and fails (returns `false`) once another worker has
/// claimed the job after the lease expired. The lease id is fresh per
/// claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobLease {
    pub job_id: JobId,
    pub tenant_id: TenantId,
    pub lease_id: Uuid,
}

/// A job a worker has claimed, with its lease.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedJob {
    pub job: Job,
    pub lease: JobLease,
}

/// Parameters of a claim.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimRequest {
    /// Who claims (host:pid:loop), stored for operators.
    pub worker_id: String,
    /// Only jobs of these kinds.
    pub kinds: Vec<JobKind>,
    /// The claimer's clock.
    pub now: DateTime<Utc>,
    /// The lease runs until this time unless renewed.
    pub lease_until: DateTime<Utc>,
}

/// How a failed attempt ends.
#[derive(Clone, Debug, PartialEq)]
pub struct JobFailure {
    /// Why (our own wording: ids and error kinds, no content).
    pub reason: String,
    /// `Some(t)`: transient, retry not before `t` if attempts remain;
    /// `None`: permanent, dead-letter now.
    pub retry_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Exponential backoff with jitter for transient failures: the shared
/// implementation in [`crate::backoff`], re-exported where the job queue
/// has always had it.
pub use crate::backoff::Backoff;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_strings_are_stable() {
        assert_eq!(JobKind::Transcribe.as_str(), "transcribe");
        assert_eq!("dead".parse::<JobState>().ok(), Some(JobState::Dead));
        assert!(JobState::Running.is_pending());
        assert!(!JobState::Succeeded.is_pending());
    }
}
