//! Short-lived state that any API node may need for the next request, so
//! it lives in the metadata store, never in one process's memory: OIDC
//! sign-ins in progress, failed-login windows per client address, and the
//! jobs that produce a file to download (Excel exports, access bundles).
//!
//! * [`PendingSignIn`]: found by the SHA-256 of its `state` (the state
//!   itself is only in the browser's cookie and the provider's redirect);
//!   the nonce, PKCE verifier and return path are a [`SealedSecret`]
//!   (sealed under the platform key owner's KEK, bound to the state hash),
//!   so a reader of the database can neither finish nor replay a sign-in.
//!   Taken exactly once (`DELETE … RETURNING`), expires after 10 minutes.
//! * [`AddressWindow`]: failed logins of one client address (kept as a
//!   digest) in a fixed window, counted atomically across nodes.
//! * [`FileJob`]: an export or access bundle being built by one node and
//!   polled and downloaded through any. A running job holds a lease that
//!   its node renews; a job whose lease ran out is reported `failed`
//!   ([`FileJob::lost`]): another node takes it over and runs it again
//!   from its stored request (a new [`FileJob::attempt`], which fences the
//!   old run out), and after a few attempts it is `failed`: a node that
//!   died mid-job never leaves it `running` forever. The finished file is sealed in the tenant's blob
//!   container under a data key of its own, wrapped by the tenant's KEK
//!   and kept only here: deleting the row shreds the file.

use super::{FileJobId, RecordingId, TenantId, string_enum};
use crate::crypto::{SealedSecret, WrappedDataKey};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A sign-in started on some node, waiting for the provider's callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingSignIn {
    /// SHA-256 (hex) of the `state` sent to the provider.
    pub state_hash: String,
    /// The nonce, PKCE verifier and return path, sealed.
    pub sealed: SealedSecret,
    /// A digest of the client address the sign-in was started from (for
    /// the per-client cap), if known.
    pub client_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Failed logins from one client address in the current window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressWindow {
    pub started_at: DateTime<Utc>,
    pub failures: u32,
}

string_enum!(
    /// What a [`FileJob`] produces.
    FileJobKind {
        /// An Excel export of a search (`POST /api/exports`).
        Export => "export",
        /// A data-subject access bundle (`POST /api/gdpr/access`).
        AccessBundle => "access-bundle",
    }
);

string_enum!(
    /// Where a [`FileJob`] stands.
    FileJobState {
        Running => "running",
        Done => "done",
        Failed => "failed",
    }
);

/// The sealed file of a finished job, in its tenant's container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileJobOutput {
    /// The blob key (see `blob::layout::file_job_key`).
    pub blob_key: String,
    /// The file's data key, wrapped by the tenant's KEK: the only copy.
    pub data_key: WrappedDataKey,
    /// Bytes of the sealed object.
    pub byte_size: u64,
}

/// An export or access bundle job.
#[derive(Clone, Debug, PartialEq)]
pub struct FileJob {
    pub id: FileJobId,
    pub tenant_id: TenantId,
    pub kind: FileJobKind,
    /// The actor who started it: the only one who may see or download it.
    pub owner: String,
    pub state: FileJobState,
    /// A stable error code once failed.
    pub error: Option<String>,
    /// Progress: units done of `total` (rows of an export; 0 of 0 when
    /// the job cannot tell).
    pub done: u64,
    pub total: u64,
    /// What the API shows about the job (export: the columns written and
    /// omitted; bundle: whether media is included). No personal data.
    pub details: serde_json::Value,
    /// The recordings whose content the file holds (an erasure of any
    /// deletes the file).
    pub recordings: Vec<RecordingId>,
    /// The sealed file, once done.
    pub output: Option<FileJobOutput>,
    /// A running job's lease: its node renews it; past it, the job is lost.
    pub lease_until: DateTime<Utc>,
    /// Which run of the job this is: 1 for the first; each takeover by
    /// another node (after the running node stopped renewing the lease)
    /// adds one. The fencing token: a renewal or an end carrying another
    /// attempt changes nothing, so a node that lost its lease cannot
    /// overwrite the run that replaced it.
    pub attempt: u32,
    /// What a re-run needs (the kind's own request, e.g. an export's
    /// search and columns), kept while the job runs and cleared when it
    /// ends. `None`: the job cannot be run again.
    pub request: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    /// The file (and the job) is deleted at this time.
    pub expires_at: DateTime<Utc>,
}

impl FileJob {
    /// A running job whose node stopped renewing its lease (it died, or
    /// lost the database): it will never finish.
    pub fn lost(&self, now: DateTime<Utc>) -> bool {
        self.state == FileJobState::Running && self.lease_until < now
    }

    /// Past its expiry: gone for every reader.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }
}

/// How a running job ends.
#[derive(Clone, Debug, PartialEq)]
pub enum FileJobEnd {
    /// The sealed file is stored; `recordings` and `details` are final.
    Done {
        output: FileJobOutput,
        recordings: Vec<RecordingId>,
        details: serde_json::Value,
        done: u64,
        total: u64,
    },
    /// Failed with a stable code (nothing stored).
    Failed { error: String },
}
