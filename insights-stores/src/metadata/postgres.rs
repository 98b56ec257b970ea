//! PostgreSQL metadata store: the production and scale-out backend.
//!
//! Tenant isolation has two walls. The first is in this code: every table
//! carries `tenant_id` (part of every primary key) and every query filters
//! on it. The second is row-level security in the database: every tenant
//! table has a policy that only shows and accepts rows of the tenant named
//! by the transaction-local setting `app.tenant_id`, and tenant-scoped work
//! runs as the role [`APP_ROLE`], which has no `BYPASSRLS` and owns
//! nothing. [`PgStore::tenant_session`] opens such a transaction; every
//! tenant-scoped method of the store runs in one. Only platform-scope
//! operations (the `tenants` table) run as the connecting user.
//!
//! Architecture invariant: user input never becomes SQL text. Dynamic SQL
//! (search) is assembled from constant fragments; every value is bound.

mod accounts;
mod approvals;
mod audit;
mod directory;
mod entra;
mod error;
mod governance;
mod jobs;
mod keys;
mod processing;
mod recordings;
mod search;
mod subjects;
mod tenants;
mod transcripts;

use async_trait::async_trait;
use insights_core::crypto::WrappedDataKey;
use insights_core::domain::*;
use insights_core::store::{
    AccountChange, GovernanceQuery, MetadataStore, StoreError, StoreResult,
};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use self::error::DbResultExt;

/// The NOLOGIN role tenant-scoped transactions switch to. Created by the
/// first migration; subject to row-level security.
pub const APP_ROLE: &str = "insights_app";

/// Migrations under `insights-stores/migrations/pg`, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/pg");

/// The PostgreSQL implementation of [`MetadataStore`].
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects a pool of at most `max_connections` and brings the schema
    /// up to date (migrations are append-only and run on every start).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect(url)
            .await
            .db()?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(PgStore { pool })
    }

    /// The connection pool (connections run as the connecting user, which
    /// bypasses row-level security: use [`PgStore::tenant_session`] for
    /// anything that touches tenant data).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Opens a transaction scoped to `tenant`: the role is switched to
    /// [`APP_ROLE`] and `app.tenant_id` is set, both transaction-local, so
    /// row-level security shows and accepts only this tenant's rows. Both
    /// settings end with the transaction (commit, rollback or drop).
    pub async fn tenant_session(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.db()?;
        // `set_config('role', ..., true)` is `SET LOCAL ROLE` with a bound
        // value; one round trip for both settings.
        sqlx::query("SELECT set_config('role', $1, true), set_config('app.tenant_id', $2, true)")
            .bind(APP_ROLE)
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await
            .db()?;
        Ok(tx)
    }
}

/// Commits a transaction.
async fn commit(tx: Transaction<'static, Postgres>) -> StoreResult<()> {
    tx.commit().await.db()
}

/// Runs `$body` (an expression using `$conn: &mut PgConnection`) in a
/// tenant session and commits it; the session is rolled back when the
/// body fails.
macro_rules! in_tenant {
    ($store:expr, $tenant:expr, |$conn:ident| $body:expr) => {{
        let mut tx = $store.tenant_session($tenant).await?;
        let out = {
            let $conn: &mut sqlx::PgConnection = &mut tx;
            $body.await?
        };
        commit(tx).await?;
        Ok(out)
    }};
}

/// Runs `$body` like [`in_tenant!`] for a tenant realm; for the platform
/// realm (operators, no tenant) in a transaction as the connecting user,
/// whose tables `insights_app` cannot reach.
macro_rules! in_realm {
    ($store:expr, $realm:expr, |$conn:ident| $body:expr) => {{
        match $realm {
            Realm::Tenant(t) => in_tenant!($store, t, |$conn| $body),
            Realm::Platform => {
                let mut tx = $store.pool.begin().await.db()?;
                let out = {
                    let $conn: &mut sqlx::PgConnection = &mut tx;
                    $body.await?
                };
                commit(tx).await?;
                Ok(out)
            }
        }
    }};
}

#[async_trait]
impl MetadataStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn health(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.db()?;
        Ok(())
    }

    // ---- tenants (platform scope) ----

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
        in_tenant!(self, tenant, |c| directory::upsert(c, tenant, user))
    }

    async fn get_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<DirectoryUser> {
        in_tenant!(self, tenant, |c| directory::get(c, tenant, id))
    }

    async fn directory_user_by_object_id(
        &self,
        tenant: TenantId,
        object_id: &str,
    ) -> StoreResult<DirectoryUser> {
        in_tenant!(self, tenant, |c| directory::by_object_id(
            c, tenant, object_id
        ))
    }

    async fn list_directory_users(&self, tenant: TenantId) -> StoreResult<Vec<DirectoryUser>> {
        in_tenant!(self, tenant, |c| directory::list(c, tenant))
    }

    async fn delete_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| directory::delete(c, tenant, id))
    }

    async fn upsert_directory_users(
        &self,
        tenant: TenantId,
        users: &[DirectoryUser],
    ) -> StoreResult<()> {
        if users.is_empty() {
            return Ok(());
        }
        in_tenant!(self, tenant, |c| entra::upsert_users(c, tenant, users))
    }

    async fn get_directory_sync_state(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Option<DirectorySyncState>> {
        in_tenant!(self, tenant, |c| entra::get_sync_state(c, tenant))
    }

    async fn put_directory_sync_state(
        &self,
        tenant: TenantId,
        state: &DirectorySyncState,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| entra::put_sync_state(c, tenant, state))
    }

    async fn create_oidc_session(
        &self,
        tenant: TenantId,
        session: &OidcSession,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| entra::create_session(c, tenant, session))
    }

    async fn get_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
    ) -> StoreResult<OidcSession> {
        in_tenant!(self, tenant, |c| entra::get_session(c, tenant, token_hash))
    }

    async fn touch_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| entra::touch_session(
            c, tenant, token_hash, at
        ))
    }

    async fn revoke_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        in_tenant!(self, tenant, |c| entra::revoke_session(
            c, tenant, token_hash, at
        ))
    }

    // ---- recordings ----

    async fn insert_recording(&self, tenant: TenantId, recording: &Recording) -> StoreResult<()> {
        if recording.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "recording belongs to another tenant".into(),
            ));
        }
        in_tenant!(self, tenant, |c| recordings::insert(c, tenant, recording))
    }

    async fn get_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<Recording> {
        in_tenant!(self, tenant, |c| recordings::get(c, tenant, id))
    }

    async fn recording_by_external_call_id(
        &self,
        tenant: TenantId,
        call_id: &str,
    ) -> StoreResult<Recording> {
        in_tenant!(self, tenant, |c| recordings::by_external_call_id(
            c, tenant, call_id
        ))
    }

    async fn add_participant(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        p: &Participant,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| recordings::add_participant(
            c, tenant, recording, p
        ))
    }

    async fn add_stream(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        s: &MediaStream,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| recordings::add_stream(
            c, tenant, recording, s
        ))
    }

    async fn update_recording_status(
        &self,
        tenant: TenantId,
        id: RecordingId,
        status: RecordingStatus,
        ended_at: Option<chrono::DateTime<chrono::Utc>>,
        result_code: Option<&str>,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| recordings::update_status(
            c,
            tenant,
            id,
            status,
            ended_at,
            result_code
        ))
    }

    async fn set_recording_media(
        &self,
        tenant: TenantId,
        id: RecordingId,
        media: Option<&MediaObject>,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| recordings::set_media(
            c, tenant, id, media
        ))
    }

    async fn set_legal_hold_flag(
        &self,
        tenant: TenantId,
        id: RecordingId,
        held: bool,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| recordings::set_legal_hold(
            c, tenant, id, held
        ))
    }

    async fn update_participant_presence(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        recorded_user: bool,
        left_ms: Option<i64>,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| recordings::update_participant_presence(
            c,
            tenant,
            recording,
            participant,
            recorded_user,
            left_ms
        ))
    }

    async fn delete_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| recordings::delete(c, tenant, id))
    }

    async fn search_recordings(
        &self,
        tenant: TenantId,
        query: &RecordingQuery,
    ) -> StoreResult<SearchPage> {
        // Parse the request before touching the database.
        let plan = search::Plan::new(query)?;
        in_tenant!(self, tenant, |c| search::run(c, tenant, &plan))
    }

    // ---- transcripts and insights ----

    async fn put_transcript_segments(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| transcripts::put_segments(
            c, tenant, recording, segments
        ))
    }

    async fn list_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<TranscriptSegment>> {
        in_tenant!(self, tenant, |c| transcripts::list_segments(
            c, tenant, recording
        ))
    }

    async fn put_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        insights: &[Insight],
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| transcripts::put_insights(
            c, tenant, recording, insights
        ))
    }

    async fn list_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<Insight>> {
        in_tenant!(self, tenant, |c| transcripts::list_insights(
            c, tenant, recording
        ))
    }

    // ---- jobs ----

    async fn enqueue_job(&self, tenant: TenantId, job: &NewJob) -> StoreResult<Enqueued> {
        in_tenant!(self, tenant, |c| jobs::enqueue(c, tenant, job))
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
        in_tenant!(self, tenant, |c| jobs::get(c, tenant, id))
    }

    async fn list_jobs(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Vec<Job>> {
        in_tenant!(self, tenant, |c| jobs::list(c, tenant, recording))
    }

    async fn replace_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| jobs::replace_transcript(
            c, tenant, recording, segments
        ))
    }

    // ---- audit chain ----

    async fn append_audit(
        &self,
        tenant: TenantId,
        event: NewAuditEvent,
    ) -> StoreResult<AuditEvent> {
        in_tenant!(self, tenant, |c| audit::append(c, tenant, event))
    }

    async fn list_audit(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEvent>> {
        in_tenant!(self, tenant, |c| audit::list(c, tenant, query))
    }

    async fn audit_head(&self, tenant: TenantId) -> StoreResult<Option<(i64, String)>> {
        in_tenant!(self, tenant, |c| audit::head(c, tenant))
    }

    // ---- retention, holds, profiles ----

    async fn upsert_retention_policy(
        &self,
        tenant: TenantId,
        p: &RetentionPolicy,
    ) -> StoreResult<()> {
        if p.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "policy belongs to another tenant".into(),
            ));
        }
        in_tenant!(self, tenant, |c| governance::upsert_retention_policy(
            c, tenant, p
        ))
    }

    async fn list_retention_policies(&self, tenant: TenantId) -> StoreResult<Vec<RetentionPolicy>> {
        in_tenant!(self, tenant, |c| governance::list_retention_policies(
            c, tenant
        ))
    }

    async fn delete_retention_policy(
        &self,
        tenant: TenantId,
        id: RetentionPolicyId,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| governance::delete_retention_policy(
            c, tenant, id
        ))
    }

    async fn create_legal_hold(&self, tenant: TenantId, hold: &LegalHold) -> StoreResult<()> {
        if hold.tenant_id != tenant {
            return Err(StoreError::Invalid("hold belongs to another tenant".into()));
        }
        in_tenant!(self, tenant, |c| governance::create_legal_hold(
            c, tenant, hold
        ))
    }

    async fn list_legal_holds(
        &self,
        tenant: TenantId,
        active_only: bool,
    ) -> StoreResult<Vec<LegalHold>> {
        in_tenant!(self, tenant, |c| governance::list_legal_holds(
            c,
            tenant,
            active_only
        ))
    }

    async fn lift_legal_hold(
        &self,
        tenant: TenantId,
        id: LegalHoldId,
        by: &str,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| governance::lift_legal_hold(
            c, tenant, id, by
        ))
    }

    async fn list_recordings_for_governance(
        &self,
        tenant: TenantId,
        query: &GovernanceQuery,
    ) -> StoreResult<Vec<Recording>> {
        in_tenant!(
            self,
            tenant,
            |c| governance::list_recordings_for_governance(c, tenant, query)
        )
    }

    async fn apply_legal_holds(&self, tenant: TenantId, id: RecordingId) -> StoreResult<bool> {
        in_tenant!(self, tenant, |c| governance::apply_legal_holds(
            c, tenant, id
        ))
    }

    async fn update_account(
        &self,
        tenant: TenantId,
        id: AccountId,
        change: &AccountChange,
    ) -> StoreResult<LocalAccount> {
        in_tenant!(self, tenant, |c| governance::update_account(
            c, tenant, id, change
        ))
    }

    async fn upsert_security_profile(
        &self,
        tenant: TenantId,
        p: &SecurityProfile,
    ) -> StoreResult<()> {
        p.validate().map_err(StoreError::Invalid)?;
        if p.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "profile belongs to another tenant".into(),
            ));
        }
        in_tenant!(self, tenant, |c| governance::upsert_security_profile(
            c, tenant, p
        ))
    }

    async fn list_security_profiles(&self, tenant: TenantId) -> StoreResult<Vec<SecurityProfile>> {
        in_tenant!(self, tenant, |c| governance::list_security_profiles(
            c, tenant
        ))
    }

    async fn create_access_request(&self, tenant: TenantId, r: &AccessRequest) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| approvals::create(c, tenant, r))
    }

    async fn get_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
    ) -> StoreResult<AccessRequest> {
        in_tenant!(self, tenant, |c| approvals::get(c, tenant, id))
    }

    async fn list_access_requests(
        &self,
        tenant: TenantId,
        status: Option<AccessRequestStatus>,
        requested_by: Option<&str>,
    ) -> StoreResult<Vec<AccessRequest>> {
        in_tenant!(self, tenant, |c| approvals::list(
            c,
            tenant,
            status,
            requested_by
        ))
    }

    async fn decide_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
        decision: &AccessDecision,
    ) -> StoreResult<AccessRequest> {
        in_tenant!(self, tenant, |c| approvals::decide(c, tenant, id, decision))
    }

    // ---- local accounts and sessions ----

    async fn create_account(&self, realm: Realm, account: &LocalAccount) -> StoreResult<()> {
        in_realm!(self, realm, |c| accounts::create_account(c, realm, account))
    }

    async fn get_account(&self, realm: Realm, id: AccountId) -> StoreResult<LocalAccount> {
        in_realm!(self, realm, |c| accounts::get_account(c, realm, id))
    }

    async fn account_by_email(&self, realm: Realm, email: &str) -> StoreResult<LocalAccount> {
        in_realm!(self, realm, |c| accounts::account_by_email(c, realm, email))
    }

    async fn list_accounts(&self, realm: Realm) -> StoreResult<Vec<LocalAccount>> {
        in_realm!(self, realm, |c| accounts::list_accounts(c, realm))
    }

    async fn record_login_failure(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        lock_after: u32,
        lock_for: chrono::Duration,
    ) -> StoreResult<LoginFailure> {
        in_realm!(self, realm, |c| accounts::record_login_failure(
            c, realm, id, at, lock_after, lock_for
        ))
    }

    async fn record_login_success(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        totp_step: Option<i64>,
    ) -> StoreResult<bool> {
        in_realm!(self, realm, |c| accounts::record_login_success(
            c, realm, id, at, totp_step
        ))
    }

    async fn create_session(&self, realm: Realm, session: &LoginSession) -> StoreResult<()> {
        in_realm!(self, realm, |c| accounts::create_session(c, realm, session))
    }

    async fn get_session(&self, realm: Realm, token_hash: &str) -> StoreResult<LoginSession> {
        in_realm!(self, realm, |c| accounts::get_session(c, realm, token_hash))
    }

    async fn touch_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        in_realm!(self, realm, |c| accounts::touch_session(
            c, realm, token_hash, at
        ))
    }

    async fn revoke_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        in_realm!(self, realm, |c| accounts::revoke_session(
            c, realm, token_hash, at
        ))
    }

    // ---- wrapped data keys ----

    async fn put_data_key(&self, tenant: TenantId, key: &WrappedDataKey) -> StoreResult<()> {
        if key.tenant_id != tenant {
            return Err(StoreError::Invalid("key belongs to another tenant".into()));
        }
        in_tenant!(self, tenant, |c| keys::put(c, tenant, key))
    }

    async fn get_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<WrappedDataKey> {
        in_tenant!(self, tenant, |c| keys::get(c, tenant, id))
    }

    async fn shred_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<bool> {
        in_tenant!(self, tenant, |c| keys::shred(c, tenant, id))
    }

    // ---- provider calls (processing records) ----

    async fn record_provider_call(&self, tenant: TenantId, call: &ProviderCall) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| processing::record(c, tenant, call))
    }

    async fn list_provider_calls(
        &self,
        tenant: TenantId,
        query: &ProviderCallQuery,
    ) -> StoreResult<Vec<ProviderCall>> {
        in_tenant!(self, tenant, |c| processing::list(c, tenant, query))
    }

    // ---- data-subject requests (GDPR) ----

    async fn find_subject_participants(
        &self,
        tenant: TenantId,
        keys: &SubjectKeys,
        limit: u32,
    ) -> StoreResult<Vec<ParticipantHit>> {
        in_tenant!(self, tenant, |c| subjects::find(c, tenant, keys, limit))
    }

    async fn erase_participant_identity(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        label: &str,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| subjects::erase_participant(
            c,
            tenant,
            recording,
            participant,
            label
        ))
    }

    async fn delete_insights(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<u64> {
        in_tenant!(self, tenant, |c| subjects::delete_insights(
            c, tenant, recording
        ))
    }

    async fn put_erasure_request(
        &self,
        tenant: TenantId,
        record: &ErasureRecord,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| subjects::put_erasure(c, tenant, record))
    }

    async fn get_erasure_request(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
    ) -> StoreResult<ErasureRecord> {
        in_tenant!(self, tenant, |c| subjects::get_erasure(c, tenant, id))
    }

    async fn list_erasure_requests(&self, tenant: TenantId) -> StoreResult<Vec<ErasureRecord>> {
        in_tenant!(self, tenant, |c| subjects::list_erasures(c, tenant))
    }

    async fn get_recordings(
        &self,
        tenant: TenantId,
        ids: &[RecordingId],
    ) -> StoreResult<Vec<Recording>> {
        in_tenant!(self, tenant, |c| subjects::get_many(c, tenant, ids))
    }
}
