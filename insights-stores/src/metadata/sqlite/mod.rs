//! SQLite metadata store: the embedded default. One database file in WAL
//! mode; FTS5 indexes for participant and transcript search.
//!
//! Layout: this module opens the database and maps the trait onto one
//! submodule per area (`tenants`, `directory`, `recordings`, `search`,
//! `transcripts`, `audit`, `governance`, `keys`); `util` holds error
//! mapping and conversions. The schema is in `migrations/sqlite`.
//!
//! Every query of tenant data binds and filters on `tenant_id`; user input
//! is only ever bound, never interpolated into SQL.

mod accounts;
mod approvals;
mod audit;
mod directory;
mod entra;
mod governance;
mod jobs;
mod keys;
mod processing;
mod recordings;
mod search;
mod subjects;
mod tenants;
mod transcripts;
mod util;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use insights_core::crypto::WrappedDataKey;
use insights_core::domain::*;
use insights_core::store::{
    AccountChange, GovernanceQuery, MetadataStore, StoreError, StoreResult,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use util::db;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite metadata store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directory) the database
    /// at `url` (`sqlite:///path/insights.db`, `sqlite:data/insights.db`
    /// or `sqlite::memory:`) and brings its schema up to date.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Invalid("not a valid SQLite URL".into()))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let parent = options
            .get_filename()
            .parent()
            .filter(|d| !in_memory && !d.as_os_str().is_empty());
        if let Some(dir) = parent {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| StoreError::Backend(Box::new(e)))?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL, not NORMAL: in WAL mode NORMAL only syncs at
            // checkpoints, so a power loss can roll back the last
            // acknowledged commits. Here a commit can be an audit event,
            // a legal hold or a crypto-shred that must not come back; FULL
            // costs one WAL fsync per transaction, which our write rate
            // (metadata, not media) easily affords.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // Deleted content (shredded data keys, erased personal data) is
            // overwritten with zeros instead of lingering in free pages.
            .pragma("secure_delete", "ON");
        let mut pool = SqlitePoolOptions::new().max_connections(max_connections.max(1));
        if in_memory {
            // An in-memory database lives only while a connection is open.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool.connect_with(options).await.map_err(db)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(SqliteStore { pool })
    }

    /// Closes every connection (waits for in-flight queries).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl MetadataStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn health(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db)
    }

    // ---- tenants ----

    async fn create_tenant(&self, new: NewTenant) -> StoreResult<Tenant> {
        tenants::create(&self.pool, new).await
    }
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        tenants::list(&self.pool).await
    }
    async fn get_tenant(&self, id: TenantId) -> StoreResult<Tenant> {
        tenants::get(&self.pool, id).await
    }
    async fn tenant_by_name(&self, name: &str) -> StoreResult<Tenant> {
        tenants::by_name(&self.pool, name).await
    }
    async fn tenant_by_directory_id(&self, directory_tenant_id: uuid::Uuid) -> StoreResult<Tenant> {
        tenants::by_directory_id(&self.pool, directory_tenant_id).await
    }
    async fn update_tenant_settings(
        &self,
        id: TenantId,
        settings: &TenantSettings,
    ) -> StoreResult<()> {
        tenants::update_settings(&self.pool, id, settings).await
    }

    // ---- directory users ----

    async fn upsert_directory_user(
        &self,
        tenant: TenantId,
        user: &DirectoryUser,
    ) -> StoreResult<()> {
        directory::upsert(&self.pool, tenant, user).await
    }
    async fn get_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<DirectoryUser> {
        directory::get(&self.pool, tenant, id).await
    }
    async fn directory_user_by_object_id(
        &self,
        tenant: TenantId,
        object_id: &str,
    ) -> StoreResult<DirectoryUser> {
        directory::by_object_id(&self.pool, tenant, object_id).await
    }
    async fn list_directory_users(&self, tenant: TenantId) -> StoreResult<Vec<DirectoryUser>> {
        directory::list(&self.pool, tenant).await
    }
    async fn delete_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<()> {
        directory::delete(&self.pool, tenant, id).await
    }

    async fn upsert_directory_users(
        &self,
        tenant: TenantId,
        users: &[DirectoryUser],
    ) -> StoreResult<()> {
        entra::upsert_users(&self.pool, tenant, users).await
    }

    async fn get_directory_sync_state(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Option<DirectorySyncState>> {
        entra::get_sync_state(&self.pool, tenant).await
    }

    async fn put_directory_sync_state(
        &self,
        tenant: TenantId,
        state: &DirectorySyncState,
    ) -> StoreResult<()> {
        entra::put_sync_state(&self.pool, tenant, state).await
    }

    async fn create_oidc_session(
        &self,
        tenant: TenantId,
        session: &OidcSession,
    ) -> StoreResult<()> {
        entra::create_session(&self.pool, tenant, session).await
    }

    async fn get_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
    ) -> StoreResult<OidcSession> {
        entra::get_session(&self.pool, tenant, token_hash).await
    }

    async fn touch_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        entra::touch_session(&self.pool, tenant, token_hash, at).await
    }

    async fn revoke_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        entra::revoke_session(&self.pool, tenant, token_hash, at).await
    }

    // ---- recordings ----

    async fn insert_recording(&self, tenant: TenantId, recording: &Recording) -> StoreResult<()> {
        recordings::insert(&self.pool, tenant, recording).await
    }
    async fn get_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<Recording> {
        recordings::get(&self.pool, tenant, id).await
    }
    async fn recording_by_external_call_id(
        &self,
        tenant: TenantId,
        call_id: &str,
    ) -> StoreResult<Recording> {
        recordings::by_external_call_id(&self.pool, tenant, call_id).await
    }
    async fn add_participant(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        p: &Participant,
    ) -> StoreResult<()> {
        recordings::add_participant(&self.pool, tenant, recording, p).await
    }
    async fn add_stream(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        s: &MediaStream,
    ) -> StoreResult<()> {
        recordings::add_stream(&self.pool, tenant, recording, s).await
    }
    async fn update_recording_status(
        &self,
        tenant: TenantId,
        id: RecordingId,
        status: RecordingStatus,
        ended_at: Option<chrono::DateTime<chrono::Utc>>,
        result_code: Option<&str>,
    ) -> StoreResult<()> {
        recordings::update_status(&self.pool, tenant, id, status, ended_at, result_code).await
    }
    async fn set_recording_media(
        &self,
        tenant: TenantId,
        id: RecordingId,
        media: Option<&MediaObject>,
    ) -> StoreResult<()> {
        recordings::set_media(&self.pool, tenant, id, media).await
    }
    async fn set_legal_hold_flag(
        &self,
        tenant: TenantId,
        id: RecordingId,
        held: bool,
    ) -> StoreResult<()> {
        recordings::set_legal_hold(&self.pool, tenant, id, held).await
    }
    async fn update_participant_presence(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        recorded_user: bool,
        left_ms: Option<i64>,
    ) -> StoreResult<()> {
        recordings::update_participant_presence(
            &self.pool,
            tenant,
            recording,
            participant,
            recorded_user,
            left_ms,
        )
        .await
    }
    async fn delete_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<()> {
        recordings::delete(&self.pool, tenant, id).await
    }
    async fn search_recordings(
        &self,
        tenant: TenantId,
        query: &RecordingQuery,
    ) -> StoreResult<SearchPage> {
        search::search(&self.pool, tenant, query).await
    }

    // ---- transcripts and insights ----

    async fn put_transcript_segments(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()> {
        transcripts::put_segments(&self.pool, tenant, recording, segments).await
    }
    async fn list_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<TranscriptSegment>> {
        transcripts::list_segments(&self.pool, tenant, recording).await
    }
    async fn put_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        insights: &[Insight],
    ) -> StoreResult<()> {
        transcripts::put_insights(&self.pool, tenant, recording, insights).await
    }
    async fn list_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<Insight>> {
        transcripts::list_insights(&self.pool, tenant, recording).await
    }

    // ---- jobs ----

    async fn enqueue_job(&self, tenant: TenantId, job: &NewJob) -> StoreResult<Enqueued> {
        jobs::enqueue(&self.pool, tenant, job).await
    }
    async fn claim_job(&self, req: &ClaimRequest) -> StoreResult<Option<ClaimedJob>> {
        jobs::claim(&self.pool, req).await
    }
    async fn renew_job_lease(
        &self,
        lease: &JobLease,
        until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        jobs::renew(&self.pool, lease, until).await
    }
    async fn complete_job(
        &self,
        lease: &JobLease,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        jobs::complete(&self.pool, lease, now).await
    }
    async fn fail_job(
        &self,
        lease: &JobLease,
        failure: &JobFailure,
    ) -> StoreResult<Option<JobState>> {
        jobs::fail(&self.pool, lease, failure).await
    }
    async fn release_job(
        &self,
        lease: &JobLease,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        jobs::release(&self.pool, lease, now).await
    }
    async fn get_job(&self, tenant: TenantId, id: JobId) -> StoreResult<Job> {
        jobs::get(&self.pool, tenant, id).await
    }
    async fn list_jobs(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Vec<Job>> {
        jobs::list(&self.pool, tenant, recording).await
    }
    async fn replace_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()> {
        jobs::replace_transcript(&self.pool, tenant, recording, segments).await
    }

    // ---- audit chain ----

    async fn append_audit(
        &self,
        tenant: TenantId,
        event: NewAuditEvent,
    ) -> StoreResult<AuditEvent> {
        audit::append(&self.pool, tenant, event).await
    }
    async fn list_audit(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEvent>> {
        audit::list(&self.pool, tenant, query).await
    }
    async fn audit_head(&self, tenant: TenantId) -> StoreResult<Option<(i64, String)>> {
        audit::head(&self.pool, tenant).await
    }

    // ---- retention, holds, profiles ----

    async fn upsert_retention_policy(
        &self,
        tenant: TenantId,
        p: &RetentionPolicy,
    ) -> StoreResult<()> {
        governance::upsert_retention_policy(&self.pool, tenant, p).await
    }
    async fn list_retention_policies(&self, tenant: TenantId) -> StoreResult<Vec<RetentionPolicy>> {
        governance::list_retention_policies(&self.pool, tenant).await
    }
    async fn delete_retention_policy(
        &self,
        tenant: TenantId,
        id: RetentionPolicyId,
    ) -> StoreResult<()> {
        governance::delete_retention_policy(&self.pool, tenant, id).await
    }
    async fn create_legal_hold(&self, tenant: TenantId, hold: &LegalHold) -> StoreResult<()> {
        governance::create_legal_hold(&self.pool, tenant, hold).await
    }
    async fn list_legal_holds(
        &self,
        tenant: TenantId,
        active_only: bool,
    ) -> StoreResult<Vec<LegalHold>> {
        governance::list_legal_holds(&self.pool, tenant, active_only).await
    }
    async fn lift_legal_hold(
        &self,
        tenant: TenantId,
        id: LegalHoldId,
        by: &str,
    ) -> StoreResult<()> {
        governance::lift_legal_hold(&self.pool, tenant, id, by).await
    }
    async fn list_recordings_for_governance(
        &self,
        tenant: TenantId,
        query: &GovernanceQuery,
    ) -> StoreResult<Vec<Recording>> {
        governance::list_recordings_for_governance(&self.pool, tenant, query).await
    }
    async fn apply_legal_holds(&self, tenant: TenantId, id: RecordingId) -> StoreResult<bool> {
        governance::apply_legal_holds(&self.pool, tenant, id).await
    }
    async fn update_account(
        &self,
        tenant: TenantId,
        id: AccountId,
        change: &AccountChange,
    ) -> StoreResult<LocalAccount> {
        governance::update_account(&self.pool, tenant, id, change).await
    }
    async fn upsert_security_profile(
        &self,
        tenant: TenantId,
        p: &SecurityProfile,
    ) -> StoreResult<()> {
        governance::upsert_security_profile(&self.pool, tenant, p).await
    }
    async fn list_security_profiles(&self, tenant: TenantId) -> StoreResult<Vec<SecurityProfile>> {
        governance::list_security_profiles(&self.pool, tenant).await
    }

    async fn create_access_request(&self, tenant: TenantId, r: &AccessRequest) -> StoreResult<()> {
        approvals::create(&self.pool, tenant, r).await
    }

    async fn get_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
    ) -> StoreResult<AccessRequest> {
        approvals::get(&self.pool, tenant, id).await
    }

    async fn list_access_requests(
        &self,
        tenant: TenantId,
        status: Option<AccessRequestStatus>,
        requested_by: Option<&str>,
    ) -> StoreResult<Vec<AccessRequest>> {
        approvals::list(&self.pool, tenant, status, requested_by).await
    }

    async fn decide_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
        decision: &AccessDecision,
    ) -> StoreResult<AccessRequest> {
        approvals::decide(&self.pool, tenant, id, decision).await
    }

    // ---- local accounts and sessions ----

    async fn create_account(&self, realm: Realm, account: &LocalAccount) -> StoreResult<()> {
        accounts::create_account(&self.pool, realm, account).await
    }
    async fn get_account(&self, realm: Realm, id: AccountId) -> StoreResult<LocalAccount> {
        accounts::get_account(&self.pool, realm, id).await
    }
    async fn account_by_email(&self, realm: Realm, email: &str) -> StoreResult<LocalAccount> {
        accounts::account_by_email(&self.pool, realm, email).await
    }
    async fn list_accounts(&self, realm: Realm) -> StoreResult<Vec<LocalAccount>> {
        accounts::list_accounts(&self.pool, realm).await
    }
    async fn record_login_failure(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        lock_after: u32,
        lock_for: chrono::Duration,
    ) -> StoreResult<LoginFailure> {
        accounts::record_login_failure(&self.pool, realm, id, at, lock_after, lock_for).await
    }
    async fn record_login_success(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        totp_step: Option<i64>,
    ) -> StoreResult<bool> {
        accounts::record_login_success(&self.pool, realm, id, at, totp_step).await
    }
    async fn create_session(&self, realm: Realm, session: &LoginSession) -> StoreResult<()> {
        accounts::create_session(&self.pool, realm, session).await
    }
    async fn get_session(&self, realm: Realm, token_hash: &str) -> StoreResult<LoginSession> {
        accounts::get_session(&self.pool, realm, token_hash).await
    }
    async fn touch_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        accounts::touch_session(&self.pool, realm, token_hash, at).await
    }
    async fn revoke_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        accounts::revoke_session(&self.pool, realm, token_hash, at).await
    }

    // ---- wrapped data keys ----

    async fn put_data_key(&self, tenant: TenantId, key: &WrappedDataKey) -> StoreResult<()> {
        keys::put(&self.pool, tenant, key).await
    }
    async fn get_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<WrappedDataKey> {
        keys::get(&self.pool, tenant, id).await
    }
    async fn shred_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<bool> {
        keys::shred(&self.pool, tenant, id).await
    }

    // ---- provider calls (processing records) ----

    async fn record_provider_call(&self, tenant: TenantId, call: &ProviderCall) -> StoreResult<()> {
        processing::record(&self.pool, tenant, call).await
    }
    async fn list_provider_calls(
        &self,
        tenant: TenantId,
        query: &ProviderCallQuery,
    ) -> StoreResult<Vec<ProviderCall>> {
        processing::list(&self.pool, tenant, query).await
    }

    // ---- data-subject requests (GDPR) ----

    async fn find_subject_participants(
        &self,
        tenant: TenantId,
        keys: &SubjectKeys,
        limit: u32,
    ) -> StoreResult<Vec<ParticipantHit>> {
        subjects::find(&self.pool, tenant, keys, limit).await
    }
    async fn erase_participant_identity(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        label: &str,
    ) -> StoreResult<()> {
        subjects::erase_participant(&self.pool, tenant, recording, participant, label).await
    }
    async fn delete_insights(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<u64> {
        subjects::delete_insights(&self.pool, tenant, recording).await
    }
    async fn put_erasure_request(
        &self,
        tenant: TenantId,
        record: &ErasureRecord,
    ) -> StoreResult<()> {
        subjects::put_erasure(&self.pool, tenant, record).await
    }
    async fn get_erasure_request(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
    ) -> StoreResult<ErasureRecord> {
        subjects::get_erasure(&self.pool, tenant, id).await
    }
    async fn list_erasure_requests(&self, tenant: TenantId) -> StoreResult<Vec<ErasureRecord>> {
        subjects::list_erasures(&self.pool, tenant).await
    }
    async fn get_recordings(
        &self,
        tenant: TenantId,
        ids: &[RecordingId],
    ) -> StoreResult<Vec<Recording>> {
        subjects::get_many(&self.pool, tenant, ids).await
    }
}
