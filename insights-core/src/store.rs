//! The metadata store: one trait, implemented by the SQLite (embedded
//! default) and PostgreSQL backends in `insights-stores`, and proven by one
//! contract suite in `tests`.
//!
//! Every method that touches tenant data takes the [`TenantId`] first and
//! only ever sees that tenant's rows; on PostgreSQL row-level security is
//! a second wall below this one. Lookups of an object that exists in
//! another tenant behave exactly like lookups of a missing object.

use async_trait::async_trait;

use crate::crypto::WrappedDataKey;
use crate::domain::*;

/// Errors of a metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (in this tenant).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated (e.g. duplicate tenant name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request itself is invalid (bad cursor, bad scope...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The operation is refused by a rule of the domain (legal hold...).
    #[error("refused: {0}")]
    Refused(String),
    /// Stored data could not be read back as a domain value.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Persistent metadata: tenants, directory users, recordings, transcripts,
/// insights, audit chain, policies, holds, profiles and wrapped data keys.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Short backend name (`sqlite`, `postgres`) for health output.
    fn backend(&self) -> &'static str;

    /// Cheap round trip to the database.
    async fn health(&self) -> StoreResult<()>;

    // ---- tenants (platform scope) ----

    /// Creates a tenant. Names and directory tenant ids are unique:
    /// a duplicate is [`StoreError::Conflict`].
    async fn create_tenant(&self, new: NewTenant) -> StoreResult<Tenant>;
    /// All tenants ordered by name.
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    async fn get_tenant(&self, id: TenantId) -> StoreResult<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> StoreResult<Tenant>;
    /// Maps a Teams/Entra tenant id to our tenant.
    async fn tenant_by_directory_id(&self, directory_tenant_id: uuid::Uuid) -> StoreResult<Tenant>;
    async fn update_tenant_settings(
        &self,
        id: TenantId,
        settings: &TenantSettings,
    ) -> StoreResult<()>;

    // ---- directory users ----

    /// Inserts or replaces a user (matched by `id`).
    async fn upsert_directory_user(
        &self,
        tenant: TenantId,
        user: &DirectoryUser,
    ) -> StoreResult<()>;
    async fn get_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<DirectoryUser>;
    async fn directory_user_by_object_id(
        &self,
        tenant: TenantId,
        object_id: &str,
    ) -> StoreResult<DirectoryUser>;
    /// All users ordered by (last name, first name, id).
    async fn list_directory_users(&self, tenant: TenantId) -> StoreResult<Vec<DirectoryUser>>;
    /// Deletes a user; refused while it is active.
    async fn delete_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<()>;
    /// Inserts or replaces several users in one transaction: all of them
    /// or, on any error, none (directory sync writes a page at a time).
    async fn upsert_directory_users(
        &self,
        tenant: TenantId,
        users: &[DirectoryUser],
    ) -> StoreResult<()>;
    /// The tenant's directory sync state (`None` before the first
    /// complete run).
    async fn get_directory_sync_state(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Option<DirectorySyncState>>;
    /// Stores (inserts or replaces) the tenant's directory sync state;
    /// `state.tenant_id` must equal `tenant` (else `Invalid`).
    async fn put_directory_sync_state(
        &self,
        tenant: TenantId,
        state: &DirectorySyncState,
    ) -> StoreResult<()>;
    /// Stores a new OIDC browser session (`Conflict` for a token hash
    /// that exists; `Invalid` if `session.tenant_id` is not `tenant`).
    async fn create_oidc_session(&self, tenant: TenantId, session: &OidcSession)
    -> StoreResult<()>;
    /// The OIDC session with this token hash, live or not.
    async fn get_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
    ) -> StoreResult<OidcSession>;
    /// Moves `last_seen_at` forward to `at` (never backwards).
    async fn touch_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()>;
    /// Revokes an OIDC session; returns whether it was live (not yet
    /// revoked). `NotFound` if there is no such session.
    async fn revoke_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;

    // ---- recordings ----

    /// Inserts a recording with its participants and streams.
    /// `recording.tenant_id` must equal `tenant` (else `Invalid`).
    async fn insert_recording(&self, tenant: TenantId, recording: &Recording) -> StoreResult<()>;
    /// A recording with its participants (in insertion order) and streams.
    async fn get_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<Recording>;
    /// Finds the recording of a platform call id (Graph call id).
    async fn recording_by_external_call_id(
        &self,
        tenant: TenantId,
        call_id: &str,
    ) -> StoreResult<Recording>;
    /// Adds a participant to an existing recording (roster updates).
    async fn add_participant(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        p: &Participant,
    ) -> StoreResult<()>;
    /// Adds a media stream to an existing recording.
    async fn add_stream(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        s: &MediaStream,
    ) -> StoreResult<()>;
    /// Sets the lifecycle status; `ended_at`/`result_code` are kept when
    /// `None`. Sets `duration_ms` from `ended_at - started_at`.
    async fn update_recording_status(
        &self,
        tenant: TenantId,
        id: RecordingId,
        status: RecordingStatus,
        ended_at: Option<chrono::DateTime<chrono::Utc>>,
        result_code: Option<&str>,
    ) -> StoreResult<()>;
    /// Records where the encrypted media lives (or `None` once deleted).
    async fn set_recording_media(
        &self,
        tenant: TenantId,
        id: RecordingId,
        media: Option<&MediaObject>,
    ) -> StoreResult<()>;
    async fn set_legal_hold_flag(
        &self,
        tenant: TenantId,
        id: RecordingId,
        held: bool,
    ) -> StoreResult<()>;
    /// Records what the call learns about a stored participant while it
    /// runs: `recorded_user = true` marks them as a policy-recorded user
    /// (never unmarked: `false` leaves the flag as it is); `left_ms` is
    /// when they left (ms after the start), `None` while present (a
    /// rejoin clears it). `NotFound` unless the participant belongs to
    /// this recording of this tenant.
    async fn update_participant_presence(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        recorded_user: bool,
        left_ms: Option<i64>,
    ) -> StoreResult<()>;
    /// Deletes a recording with its participants, streams, transcript,
    /// insights and search-index entries. Refused while on legal hold.
    async fn delete_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<()>;
    /// Searches recordings; see [`RecordingQuery`] for the semantics.
    async fn search_recordings(
        &self,
        tenant: TenantId,
        query: &RecordingQuery,
    ) -> StoreResult<SearchPage>;

    // ---- transcripts and insights ----

    /// Stores segments; a segment whose id already exists is replaced, so
    /// a retried job never duplicates. Marks the recording `has_transcript`.
    async fn put_transcript_segments(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()>;
    /// Segments ordered by (start_ms, id).
    async fn list_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<TranscriptSegment>>;
    /// Stores insights (replacing by id). Every citation must name a
    /// segment of this recording (else `Invalid`).
    async fn put_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        insights: &[Insight],
    ) -> StoreResult<()>;
    /// Insights ordered by (kind, created_at, id).
    async fn list_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<Insight>>;

    // ---- jobs (AI pipeline) ----
    //
    // Durable work items (see [`Job`]). Enqueue and listing are tenant
    // scoped; claiming is across tenants (a worker serves every tenant),
    // so claim, renew, complete, fail and release work on job rows only
    // (ids, states, times: no personal data) and are fenced by the
    // [`JobLease`] of the claim.

    /// Adds a job unless one of the same kind is pending (queued or
    /// running) for the recording: then that one is returned
    /// (`created = false`). `NotFound` if the recording does not exist
    /// in this tenant; `Invalid` if `max_attempts` is 0.
    async fn enqueue_job(&self, tenant: TenantId, job: &NewJob) -> StoreResult<Enqueued>;
    /// Claims the most overdue job of the requested kinds in any tenant:
    /// queued with `run_after <= now`, or running with an expired lease
    /// (its worker is gone). The job becomes running under a fresh lease
    /// and its attempt count goes up by one. Running jobs whose lease
    /// expired on their last attempt are dead-lettered instead. Two
    /// concurrent claims never return the same job.
    async fn claim_job(&self, req: &ClaimRequest) -> StoreResult<Option<ClaimedJob>>;
    /// Extends the lease to `until`; `false` if the lease was lost (the
    /// job was claimed by another worker, or is no longer running).
    async fn renew_job_lease(
        &self,
        lease: &JobLease,
        until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Marks the job succeeded; `false` if the lease was lost.
    async fn complete_job(
        &self,
        lease: &JobLease,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Records a failed attempt: queued again at `retry_at` while attempts
    /// remain and the failure is transient, else dead with the reason.
    /// Returns the new state, `None` if the lease was lost.
    async fn fail_job(
        &self,
        lease: &JobLease,
        failure: &JobFailure,
    ) -> StoreResult<Option<JobState>>;
    /// Gives a running job back unfinished (graceful shutdown): queued
    /// again at once, and the attempt does not count. `false` if the lease
    /// was lost.
    async fn release_job(
        &self,
        lease: &JobLease,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// One job of this tenant.
    async fn get_job(&self, tenant: TenantId, id: JobId) -> StoreResult<Job>;
    /// The recording's jobs, oldest first (`NotFound` for a recording that
    /// does not exist in this tenant).
    async fn list_jobs(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Vec<Job>>;
    /// Replaces the recording's whole transcript with `segments` in one
    /// transaction (the search index follows), so a retried or re-run
    /// transcription never duplicates segments. Concurrent replaces of one
    /// recording are serialised. Sets `has_transcript` to whether any
    /// segment is left.
    async fn replace_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()>;

    // ---- audit chain ----

    /// Appends to the tenant's hash chain atomically (no gaps or forks
    /// under concurrent appends) and returns the stored event.
    async fn append_audit(&self, tenant: TenantId, event: NewAuditEvent)
    -> StoreResult<AuditEvent>;
    /// Events matching the filters, ordered by `seq`.
    async fn list_audit(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// The recorded head of the chain: last `seq` and hash.
    async fn audit_head(&self, tenant: TenantId) -> StoreResult<Option<(i64, String)>>;

    // ---- retention, holds, profiles ----

    async fn upsert_retention_policy(
        &self,
        tenant: TenantId,
        p: &RetentionPolicy,
    ) -> StoreResult<()>;
    async fn list_retention_policies(&self, tenant: TenantId) -> StoreResult<Vec<RetentionPolicy>>;
    async fn delete_retention_policy(
        &self,
        tenant: TenantId,
        id: RetentionPolicyId,
    ) -> StoreResult<()>;
    async fn create_legal_hold(&self, tenant: TenantId, hold: &LegalHold) -> StoreResult<()>;
    /// Holds ordered by placed_at; `active_only` skips lifted ones.
    async fn list_legal_holds(
        &self,
        tenant: TenantId,
        active_only: bool,
    ) -> StoreResult<Vec<LegalHold>>;
    async fn lift_legal_hold(&self, tenant: TenantId, id: LegalHoldId, by: &str)
    -> StoreResult<()>;
    /// Recordings for governance sweeps (retention, legal holds): oldest
    /// first by (`started_at`, id), keyset-paged, with participants and
    /// streams, and no total count (see [`GovernanceQuery`]).
    async fn list_recordings_for_governance(
        &self,
        tenant: TenantId,
        query: &GovernanceQuery,
    ) -> StoreResult<Vec<Recording>>;
    /// Re-evaluates the recording's `legal_hold` flag from the tenant's
    /// active holds ([`HoldScope::covers`], the one rule) and stores it,
    /// atomically with respect to concurrent hold changes and roster
    /// updates; returns the new flag. `NotFound` for a recording that is
    /// not in this tenant. The store also does this by itself whenever a
    /// recording is inserted or gains a participant, so recordings made
    /// after a hold was placed are held too.
    async fn apply_legal_holds(&self, tenant: TenantId, id: RecordingId) -> StoreResult<bool>;
    /// Changes a tenant account's role, security profile (`Some(None)`
    /// clears it) and active flag; fields left `None` stay. The profile
    /// must exist in the tenant (else `Invalid`). Returns the account.
    async fn update_account(
        &self,
        tenant: TenantId,
        id: AccountId,
        change: &AccountChange,
    ) -> StoreResult<LocalAccount>;
    /// Inserts or replaces a profile after [`SecurityProfile::validate`].
    async fn upsert_security_profile(
        &self,
        tenant: TenantId,
        p: &SecurityProfile,
    ) -> StoreResult<()>;
    async fn list_security_profiles(&self, tenant: TenantId) -> StoreResult<Vec<SecurityProfile>>;

    // ---- four-eyes access requests ----

    /// Stores a new request (status pending). The recording must exist in
    /// this tenant (else `NotFound`).
    async fn create_access_request(&self, tenant: TenantId, r: &AccessRequest) -> StoreResult<()>;
    async fn get_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
    ) -> StoreResult<AccessRequest>;
    /// Requests newest first; `status` and `requested_by` narrow the list.
    async fn list_access_requests(
        &self,
        tenant: TenantId,
        status: Option<AccessRequestStatus>,
        requested_by: Option<&str>,
    ) -> StoreResult<Vec<AccessRequest>>;
    /// Decides a pending request atomically and returns it. A request that
    /// is no longer pending is a `Conflict`; a decision by the requester
    /// themselves is `Invalid`.
    async fn decide_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
        decision: &AccessDecision,
    ) -> StoreResult<AccessRequest>;

    // ---- local accounts and browser sessions ----
    //
    // A realm is one tenant's users or the platform operators (who belong
    // to no tenant and are kept in tables of their own). Every method takes
    // the realm first and only ever sees that realm's rows.

    /// Creates an account after [`LocalAccount::validate`];
    /// `account.realm()` must be `realm` (else `Invalid`). An email that
    /// exists in the realm already is a `Conflict`.
    async fn create_account(&self, realm: Realm, account: &LocalAccount) -> StoreResult<()>;
    async fn get_account(&self, realm: Realm, id: AccountId) -> StoreResult<LocalAccount>;
    /// Looks an account up by email, case-insensitively ([`normalize_email`]).
    async fn account_by_email(&self, realm: Realm, email: &str) -> StoreResult<LocalAccount>;
    /// All accounts of the realm ordered by (email, id).
    async fn list_accounts(&self, realm: Realm) -> StoreResult<Vec<LocalAccount>>;
    /// Counts a failed login, atomically. When the consecutive count
    /// reaches `lock_after`, the account is locked until `at + lock_for`
    /// and the count restarts at 0. Returns the state after the update.
    async fn record_login_failure(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        lock_after: u32,
        lock_for: chrono::Duration,
    ) -> StoreResult<LoginFailure>;
    /// Records a successful login: failures and lockout reset,
    /// `last_login_at = at`. With `totp_step`, the step is recorded too,
    /// atomically, and the call changes nothing and returns `false` if
    /// that step (or a later one) was accepted before (a replayed code).
    async fn record_login_success(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        totp_step: Option<i64>,
    ) -> StoreResult<bool>;
    /// Stores a new session of an account of the realm (`NotFound` if the
    /// account does not exist there).
    async fn create_session(&self, realm: Realm, session: &LoginSession) -> StoreResult<()>;
    /// The session with this token hash, live or not.
    async fn get_session(&self, realm: Realm, token_hash: &str) -> StoreResult<LoginSession>;
    /// Moves `last_seen_at` forward to `at` (never backwards).
    async fn touch_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()>;
    /// Revokes a session; returns whether it was live (not yet revoked).
    /// `NotFound` if there is no such session.
    async fn revoke_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;

    // ---- wrapped data keys ----

    async fn put_data_key(&self, tenant: TenantId, key: &WrappedDataKey) -> StoreResult<()>;
    /// [`StoreError::NotFound`] once the key was shredded.
    async fn get_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<WrappedDataKey>;
    /// Crypto-shredding: destroys the wrapped key so every copy of the
    /// media encrypted with it becomes unreadable. Returns whether a key
    /// was destroyed (false if it was already gone). Backends overwrite
    /// the freed bytes where the engine allows it.
    async fn shred_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<bool>;

    // ---- provider calls (processing records) ----

    /// Records one call to an external AI provider. `call.tenant_id` must
    /// equal `tenant` (else `Invalid`); an unknown tenant is `NotFound`.
    /// Recording an id that exists already changes nothing (a retried
    /// write never duplicates a record). Records are kept when the
    /// recording they mention is deleted.
    async fn record_provider_call(&self, tenant: TenantId, call: &ProviderCall) -> StoreResult<()>;
    /// The tenant's records matching the query, ordered by (at, id).
    async fn list_provider_calls(
        &self,
        tenant: TenantId,
        query: &ProviderCallQuery,
    ) -> StoreResult<Vec<ProviderCall>>;

    // ---- data-subject requests (GDPR) ----

    /// Participant rows of the tenant matching any key exactly (see
    /// [`SubjectKeys`]), ordered by (started_at, recording, participant),
    /// at most `limit` (0: no limit). Empty keys match nothing.
    async fn find_subject_participants(
        &self,
        tenant: TenantId,
        keys: &SubjectKeys,
        limit: u32,
    ) -> StoreResult<Vec<ParticipantHit>>;
    /// Pseudonymises a participant for erasure: `display_name` becomes
    /// `label`; phone number, URI, email and directory link are cleared
    /// (search indexes follow). `NotFound` unless the participant belongs
    /// to this recording of this tenant; refused while the recording is on
    /// legal hold.
    async fn erase_participant_identity(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        label: &str,
    ) -> StoreResult<()>;
    /// Deletes every insight of the recording; returns how many.
    async fn delete_insights(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<u64>;
    /// Inserts or replaces an erasure request (matched by id).
    /// `record.tenant_id` must equal `tenant` (else `Invalid`).
    async fn put_erasure_request(
        &self,
        tenant: TenantId,
        record: &ErasureRecord,
    ) -> StoreResult<()>;
    async fn get_erasure_request(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
    ) -> StoreResult<ErasureRecord>;
    /// The tenant's erasure requests, newest first.
    async fn list_erasure_requests(&self, tenant: TenantId) -> StoreResult<Vec<ErasureRecord>>;
    /// The recordings of this tenant among `ids` (missing ones skipped),
    /// with participants and streams, ordered by (started_at, id): a few
    /// queries for any number of recordings.
    async fn get_recordings(
        &self,
        tenant: TenantId,
        ids: &[RecordingId],
    ) -> StoreResult<Vec<Recording>>;
}

/// A page of recordings for governance sweeps
/// ([`MetadataStore::list_recordings_for_governance`]). Every filter is
/// optional and they combine with AND; results are ordered by
/// (`started_at`, id) ascending.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GovernanceQuery {
    /// `started_at < started_before` (a retention cutoff, or a hold's `to`).
    pub started_before: Option<chrono::DateTime<chrono::Utc>>,
    /// `started_at >= started_from` (a hold's `from`).
    pub started_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only these recordings (`Some(vec![])` matches nothing).
    pub ids: Option<Vec<RecordingId>>,
    /// Only recordings in which this directory user took part.
    pub user_id: Option<UserId>,
    /// Only recordings whose flag is this.
    pub legal_hold: Option<bool>,
    /// Keyset cursor: only recordings after this (`started_at`, id).
    pub after: Option<(chrono::DateTime<chrono::Utc>, RecordingId)>,
    /// Page size, clamped to 1..=1000.
    pub limit: u32,
}

/// A change to a tenant account ([`MetadataStore::update_account`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountChange {
    pub role: Option<Role>,
    /// `Some(None)` clears the profile.
    pub security_profile_id: Option<Option<SecurityProfileId>>,
    pub active: Option<bool>,
}

/// Events read per page by [`check_audit_chain`].
const AUDIT_CHECK_PAGE: u32 = 5_000;

/// Reads a tenant's whole audit chain page by page (memory: two digests
/// per event) and its recorded head, and diagnoses it: which events were
/// edited, deleted, reordered or truncated ([`ChainReport`]).
///
/// An event that cannot even be read back as an [`AuditEvent`] (a stored
/// field made unparsable) does not stop the check: it is located by
/// paging past it one seq at a time and reported as
/// [`ChainProblem::Unreadable`]. Any other store error is returned.
pub async fn check_audit_chain(
    store: &dyn MetadataStore,
    tenant: TenantId,
) -> StoreResult<ChainReport> {
    // The head is read after the events: an event appended while we read
    // then lies within the head instead of beyond it.
    let mut checker = ChainChecker::new();
    let mut after = 0i64;
    loop {
        let query = AuditQuery {
            after_seq: Some(after),
            limit: AUDIT_CHECK_PAGE,
            ..AuditQuery::default()
        };
        match store.list_audit(tenant, &query).await {
            Ok(page) => {
                let Some(last) = page.last().map(|e| e.seq) else {
                    break;
                };
                for ev in &page {
                    checker.push(ev);
                }
                after = last;
            }
            Err(StoreError::Corrupt(_)) => {
                // Somewhere in this page: read on one event at a time up
                // to the unreadable one, then page on after it.
                loop {
                    let one = AuditQuery {
                        after_seq: Some(after),
                        limit: 1,
                        ..AuditQuery::default()
                    };
                    match store.list_audit(tenant, &one).await {
                        Ok(page) => match page.first() {
                            Some(ev) => {
                                checker.push(ev);
                                after = ev.seq;
                            }
                            None => break,
                        },
                        Err(StoreError::Corrupt(_)) => {
                            after = locate_unreadable(store, tenant, after).await?;
                            checker.push_unreadable(after);
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    let head = store.audit_head(tenant).await?;
    Ok(checker.finish(head.as_ref().map(|(s, h)| (*s, h.as_str()))))
}

/// Probes made to locate one unreadable event.
const MAX_UNREADABLE_PROBES: i64 = 100_000;

/// The seq of the first event after `after` that cannot be read: the
/// smallest `k > after` from which reading on succeeds. (Events between
/// `after` and `k` are unreadable too or missing; they are reported as
/// missing.)
async fn locate_unreadable(
    store: &dyn MetadataStore,
    tenant: TenantId,
    after: i64,
) -> StoreResult<i64> {
    let mut k = after;
    loop {
        k = k
            .checked_add(1)
            .filter(|k| *k - after <= MAX_UNREADABLE_PROBES)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "an audit event after seq {after} cannot be read and cannot be located"
                ))
            })?;
        let query = AuditQuery {
            after_seq: Some(k),
            limit: 1,
            ..AuditQuery::default()
        };
        match store.list_audit(tenant, &query).await {
            Ok(_) => return Ok(k),
            Err(StoreError::Corrupt(_)) => {}
            Err(e) => return Err(e),
        }
    }
}
