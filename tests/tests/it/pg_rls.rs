//! Row-level security, the second wall of tenant isolation on PostgreSQL:
//! with the store's own filters out of the way (hand-written SQL), a
//! tenant session still sees and writes only its tenant's rows, a session
//! without a tenant sees nothing, and every tenant table is covered, so a
//! table added later without a policy fails here.

use chrono::Duration;
use insights_core::crypto::{WrappedDataKey, WrappedKek};
use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::postgres::{APP_ROLE, PgStore};
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

/// Tables without `tenant_id`: platform scope, not tenant data.
/// `operator_*`: platform operators belong to no tenant;
/// `login_throttles`: sign-in attempts per digest of (tenant name, email),
/// counted before the tenant is even known to exist;
/// `signing_keys`: the public halves of the nodes' evidence-signing keys;
/// `pending_sign_ins` and `address_throttles`: OIDC sign-ins in progress
/// and failed logins per client address, before a tenant is known;
/// `scheduler_leases` and `scheduler_runs`: the periodic jobs' leases and
/// interval runs, one per job for the whole installation;
/// `node_heartbeats`: every node's heartbeat (alerting).
const PLATFORM_TABLES: &[&str] = &[
    "tenants",
    "_sqlx_migrations",
    "operator_accounts",
    "operator_sessions",
    "login_throttles",
    "signing_keys",
    "pending_sign_ins",
    "address_throttles",
    "scheduler_leases",
    "scheduler_runs",
    "node_heartbeats",
];

async fn store(max_connections: u32) -> PgStore {
    let url = insights_tests::fresh_pg_database().await;
    PgStore::connect(&url, max_connections)
        .await
        .unwrap_or_else(|e| panic!("cannot open the PostgreSQL store: {e:?}"))
}

#[track_caller]
fn ok<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every base table of the store's schema that has a `tenant_id` column.
async fn tenant_tables(s: &PgStore) -> Vec<String> {
    ok(
        sqlx::query_scalar(
            "SELECT c.table_name::text FROM information_schema.columns c \
             JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id' \
               AND t.table_type = 'BASE TABLE' \
             ORDER BY 1",
        )
        .fetch_all(s.pool())
        .await,
        "list tenant tables",
    )
}

async fn count(c: &mut PgConnection, table: &str, filter: Option<TenantId>) -> i64 {
    let sql = match filter {
        None => format!("SELECT count(*) FROM {}", quote_ident(table)),
        Some(_) => format!(
            "SELECT count(*) FROM {} WHERE tenant_id = $1",
            quote_ident(table)
        ),
    };
    let mut q = sqlx::query_scalar(AssertSqlSafe(sql));
    if let Some(t) = filter {
        q = q.bind(t.0);
    }
    ok(q.fetch_one(c).await, &format!("count {table}"))
}

/// Puts a row into every tenant table for `t` through the store.
async fn seed(s: &PgStore, name: &str) -> TenantId {
    let t = ok(
        s.create_tenant(NewTenant {
            name: name.into(),
            directory_tenant_id: None,
        })
        .await,
        "create tenant",
    )
    .id;
    let user = DirectoryUser {
        id: UserId::new(),
        tenant_id: t,
        directory_object_id: Some(Uuid::new_v4().to_string()),
        first_name: Some("Ann".into()),
        last_name: Some("Lee".into()),
        display_name: Some("Ann Lee".into()),
        alias: None,
        email: Some("ann@contoso.com".into()),
        upn: None,
        phone_numbers: vec!["+14255550100".into()],
        sip_uri: None,
        tel_uri: None,
        groups: vec!["sales".into()],
        active: true,
        updated_at: now(),
    };
    ok(s.upsert_directory_user(t, &user).await, "user");

    let key = WrappedDataKey {
        id: KeyId::new(),
        tenant_id: t,
        kek_id: "kek-1".into(),
        wrapped: vec![1, 2, 3],
        created_at: now(),
    };
    ok(s.put_data_key(t, &key).await, "data key");
    // A key-encryption key of the `database` key provider.
    let kek = WrappedKek {
        tenant_id: t,
        version: 1,
        kek_id: format!("db:{}", Uuid::new_v4()),
        root_check: vec![1; 8],
        wrapped: vec![2; 60],
        created_at: now(),
    };
    ok(s.put_kek(t, &kek).await, "key-encryption key");
    ok(
        s.claim_meeting(t, "chain", RecordingId::new(), "node-a", now(), now())
            .await,
        "meeting claim",
    );
    let staged = RecordingId::new();
    ok(
        s.begin_segment_upload(
            t,
            &SegmentUpload {
                tenant_id: t,
                recording_id: staged,
                node: "node-a".into(),
                epoch: 1,
                lease_until: now(),
                object_key: format!("recordings/{staged}/spool.log"),
                blocks: 0,
                staged_len: 0,
                journal: "{}".into(),
                created_at: now(),
                updated_at: now(),
            },
        )
        .await,
        "segment upload",
    );

    let mut r = Recording::new(t, RecordingKind::Call, Direction::Inbound, now());
    r.participants.push(Participant {
        id: ParticipantId::new(),
        role: ParticipantRole::Caller,
        display_name: Some("Carol Danvers".into()),
        phone_number: Some("+14255550100".into()),
        uri: Some("tel:+14255550100".into()),
        email: None,
        directory_user_id: Some(user.id),
        recorded_user: true,
        joined_ms: Some(0),
        left_ms: None,
    });
    r.streams.push(MediaStream {
        id: StreamId::new(),
        participant_id: Some(r.participants[0].id),
        track: 0,
        media_type: "audio".into(),
        codec: "opus".into(),
        sample_rate: 16_000,
        start_ms: 0,
    });
    r.media = Some(MediaObject {
        container: Tenant::container_name(t),
        key: format!("{}.ins", r.id),
        byte_size: 10,
        sha256: "00".repeat(32),
        data_key_id: key.id,
        content_type: "audio/ogg".into(),
        plaintext_size: 8,
    });
    ok(s.insert_recording(t, &r).await, "recording");
    let failover = MeetingFailover {
        tenant_id: t,
        recording_id: r.id,
        continues: RecordingId::new(),
        gap_from: now(),
        gap_to: now(),
        reason: FAILOVER_PRIMARY_NODE_LOST.into(),
        node: "node-b".into(),
    };
    ok(
        s.record_meeting_failover(t, &failover).await,
        "meeting failover",
    );
    ok(
        s.open_recording_gap(t, &RecordingGap::pause(t, r.id, "account", now()))
            .await,
        "recording gap",
    );
    ok(
        s.enqueue_job(t, &NewJob::now(r.id, JobKind::Transcribe))
            .await,
        "job",
    );
    let seg = TranscriptSegment {
        id: SegmentId::new(),
        recording_id: r.id,
        participant_id: Some(r.participants[0].id),
        start_ms: 0,
        end_ms: 900,
        text: "the confidential merger".into(),
        confidence: 0.9,
        language: Some("en".into()),
    };
    ok(
        s.put_transcript_segments(t, r.id, std::slice::from_ref(&seg))
            .await,
        "segments",
    );
    let insight = Insight {
        id: InsightId::new(),
        recording_id: r.id,
        kind: InsightKind::Summary,
        text: "merger talk".into(),
        owner_participant_id: None,
        provider: "local:test".into(),
        created_at: now(),
        citations: vec![Citation::of(&seg)],
    };
    ok(s.put_insights(t, r.id, &[insight]).await, "insights");
    let call = ProviderCall {
        id: ProviderCallId::new(),
        tenant_id: t,
        recording_id: Some(r.id),
        provider: "openai-compatible".into(),
        operation: "chat-completions".into(),
        bytes_sent: 1200,
        bytes_received: 300,
        http_status: Some(200),
        outcome: ProviderCallOutcome::Ok,
        at: now(),
        duration_ms: 850,
    };
    ok(s.record_provider_call(t, &call).await, "provider call");
    let policy = RecordingPolicy {
        rules: vec![ok(
            PolicyRule::new(
                PolicyList::NeverRecord,
                RuleKind::Number,
                "+14255550100",
                None,
            ),
            "rule",
        )],
        updated_at: now(),
        updated_by: "cli".into(),
        ..RecordingPolicy::default_for(t)
    };
    ok(s.put_recording_policy(t, &policy).await, "recording policy");
    let at = insights_core::domain::now();
    let call = CallCompleteness {
        call_id: format!("call-{name}"),
        call_type: "peerToPeer".into(),
        started_at: at,
        ended_at: at,
        status: CompletenessStatus::Recorded,
        coverage_permille: 1000,
        reason: None,
        result_code: None,
        rule: None,
        rule_id: None,
        gaps: vec![],
        recording_ids: vec![r.id],
        user_ids: vec![],
        participants: 2,
    };
    let run = CompletenessRun {
        id: uuid::Uuid::new_v4(),
        tenant_id: t,
        from: at,
        to: at,
        trigger: CompletenessTrigger::OnDemand,
        actor: "cli".into(),
        started_at: at,
        finished_at: at,
        totals: CompletenessTotals::of([&call]),
        call_records: 1,
        pstn_rows: 0,
        throttled_retries: 0,
        threshold_permille: 990,
        below_threshold: false,
    };
    ok(s.put_completeness(t, &run, &[call]).await, "completeness");
    let threshold = CompletenessThreshold {
        tenant_id: t,
        threshold_permille: 990,
        updated_at: at,
        updated_by: "cli".into(),
    };
    ok(
        s.put_completeness_threshold(t, &threshold).await,
        "completeness threshold",
    );
    for action in [AuditAction::Search, AuditAction::Play] {
        let ev = NewAuditEvent {
            actor: "acc-1".into(),
            action,
            recording_id: Some(r.id),
            target: None,
            reason: None,
            source: None,
            details: serde_json::json!({}),
        };
        ok(s.append_audit(t, ev).await, "audit");
    }
    let policy = RetentionPolicy {
        id: RetentionPolicyId::new(),
        tenant_id: t,
        name: "calls".into(),
        scope: RetentionScope::default(),
        retain_days: 90,
        action: RetentionAction::DeleteMedia,
        enabled: true,
        updated_at: now(),
    };
    ok(s.upsert_retention_policy(t, &policy).await, "policy");
    let hold = LegalHold {
        id: LegalHoldId::new(),
        tenant_id: t,
        case_name: "case".into(),
        reason: None,
        scope: HoldScope {
            recording_ids: vec![r.id],
            ..HoldScope::default()
        },
        placed_by: "acc-1".into(),
        placed_at: now() - Duration::hours(1),
        lifted_by: None,
        lifted_at: None,
    };
    ok(s.create_legal_hold(t, &hold).await, "hold");
    let request = AccessRequest::new(t, r.id, "acc-2".into(), "case 1".into(), now());
    ok(s.create_access_request(t, &request).await, "access request");
    let at = now();
    let file_job = FileJob {
        id: FileJobId::new(),
        tenant_id: t,
        kind: FileJobKind::Export,
        owner: "account:admin".into(),
        state: FileJobState::Running,
        error: None,
        done: 0,
        total: 0,
        details: serde_json::json!({}),
        recordings: Vec::new(),
        output: None,
        lease_until: at,
        created_at: at,
        expires_at: at + chrono::Duration::days(1),
        attempt: 1,
        request: None,
    };
    ok(s.create_file_job(t, &file_job).await, "file job");
    let change = GovernanceChange::new(
        t,
        ChangeKind::LegalHoldLift,
        hold.id.to_string(),
        serde_json::json!({"reason": "case closed"}),
        "acc-1".into(),
        now(),
    );
    ok(
        s.create_governance_change(t, &change).await,
        "governance change",
    );
    let profile = SecurityProfile {
        id: SecurityProfileId::new(),
        tenant_id: t,
        name: "supervisors".into(),
        role: Role::Supervisor,
        permissions: Role::Supervisor.default_permissions(),
        scope: VisibilityScope::All,
    };
    ok(s.upsert_security_profile(t, &profile).await, "profile");
    let realm = Realm::Tenant(t);
    let account = LocalAccount {
        id: AccountId::new(),
        tenant_id: Some(t),
        email: "ann@contoso.com".into(),
        role: Role::User,
        security_profile_id: Some(profile.id),
        directory_user_id: Some(user.id),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        totp: None,
        totp_last_step: None,
        failed_logins: 0,
        locked_until: None,
        active: true,
        created_at: now(),
        last_login_at: None,
        must_change_password: false,
        totp_pending: None,
        recovery_codes: Vec::new(),
    };
    ok(s.create_account(realm, &account).await, "account");
    let session = LoginSession {
        token_hash: hex::encode(Uuid::new_v4().as_bytes()),
        tenant_id: Some(t),
        account_id: account.id,
        created_at: now(),
        last_seen_at: now(),
        expires_at: now() + Duration::hours(1),
        revoked_at: None,
    };
    ok(s.create_session(realm, &session).await, "session");
    let sync_state = DirectorySyncState {
        tenant_id: t,
        delta_link: Some("https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x".into()),
        last_sync_at: now(),
        last_full_sync_at: Some(now()),
    };
    ok(
        s.put_directory_sync_state(t, &sync_state).await,
        "directory sync state",
    );
    let oidc_session = OidcSession {
        token_hash: hex::encode(Uuid::new_v4().as_bytes()),
        tenant_id: t,
        subject: "oid-ann".into(),
        role: Role::User,
        directory_user_id: Some(user.id),
        created_at: now(),
        last_seen_at: now(),
        expires_at: now() + Duration::hours(1),
        revoked_at: None,
    };
    ok(
        s.create_oidc_session(t, &oidc_session).await,
        "oidc session",
    );
    let erasure = ErasureRecord {
        id: Uuid::now_v7(),
        tenant_id: t,
        status: "planned".into(),
        created_at: now(),
        created_by: account.id.to_string(),
        updated_at: now(),
        state: serde_json::json!({}),
    };
    ok(s.put_erasure_request(t, &erasure).await, "erasure request");
    // An alert and an alert channel.
    ok(
        s.raise_alert(
            Realm::Tenant(t),
            &NewAlert::new(AlertKind::NoRecordings).count("minutes", 60),
            now(),
            std::time::Duration::from_secs(3600),
        )
        .await,
        "alert",
    );
    ok(
        s.put_alert_channel(
            Realm::Tenant(t),
            &AlertChannel {
                id: AlertChannelId::new(),
                tenant_id: Some(t),
                kind: ChannelKind::Email,
                name: "soc".into(),
                target: "soc@example.com".into(),
                secret: None,
                enabled: true,
                created_at: now(),
                created_by: "seed".into(),
            },
        )
        .await,
        "alert channel",
    );
    t
}

/// The SQLSTATE of a failed statement.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

#[tokio::test]
async fn every_tenant_table_has_row_level_security() {
    let s = store(2).await;
    let tables = tenant_tables(&s).await;
    for expected in [
        "directory_users",
        "recordings",
        "participants",
        "media_streams",
        "transcript_segments",
        "insights",
        "audit_events",
        "audit_heads",
        "retention_policies",
        "legal_holds",
        "security_profiles",
        "data_keys",
        "accounts",
        "sessions",
        "provider_calls",
        "access_requests",
        "jobs",
        "directory_sync_state",
        "oidc_sessions",
        "erasure_requests",
    ] {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} has a tenant_id column"
        );
    }

    for table in &tables {
        let row = ok(
            sqlx::query(
                "SELECT c.relrowsecurity, \
                 (SELECT count(*) FROM pg_policies p \
                  WHERE p.schemaname = n.nspname AND p.tablename = c.relname \
                    AND p.cmd = 'ALL' AND p.permissive = 'PERMISSIVE' \
                    AND p.qual LIKE '%tenant_id%app.tenant_id%' \
                    AND p.with_check LIKE '%tenant_id%app.tenant_id%') AS policies, \
                 (SELECT count(*) FROM pg_policies p \
                  WHERE p.schemaname = n.nspname AND p.tablename = c.relname) AS all_policies \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relname = $1",
            )
            .bind(table)
            .fetch_one(s.pool())
            .await,
            "policy lookup",
        );
        let enabled: bool = ok(row.try_get("relrowsecurity"), "relrowsecurity");
        let policies: i64 = ok(row.try_get("policies"), "policies");
        let all: i64 = ok(row.try_get("all_policies"), "all_policies");
        assert!(enabled, "row-level security is not enabled on {table}");
        assert_eq!(
            policies, 1,
            "{table} needs the tenant_isolation policy (USING and WITH CHECK on app.tenant_id)"
        );
        assert_eq!(all, 1, "{table} has extra policies that could widen access");
    }

    // A table without tenant_id must be a known platform table: a tenant
    // table that forgot the column would escape every check above.
    let all_tables: Vec<String> = ok(
        sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .fetch_all(s.pool())
        .await,
        "list tables",
    );
    for table in all_tables {
        assert!(
            tables.contains(&table) || PLATFORM_TABLES.contains(&table.as_str()),
            "table {table} has no tenant_id column and is not a known platform table"
        );
    }

    // The application role cannot bypass the policies.
    let (superuser, bypass): (bool, bool) = ok(
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
            .bind(APP_ROLE)
            .fetch_one(s.pool())
            .await,
        "app role",
    );
    assert!(!superuser && !bypass, "{APP_ROLE} must be subject to RLS");
    let owned: i64 = ok(
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner \
             WHERE r.rolname = $1",
        )
        .bind(APP_ROLE)
        .fetch_one(s.pool())
        .await,
        "owned tables",
    );
    assert_eq!(owned, 0, "{APP_ROLE} owns nothing (owners bypass RLS)");
}

#[tokio::test]
async fn a_tenant_session_sees_only_its_tenant() {
    let s = store(3).await;
    let a = seed(&s, "contoso").await;
    let b = seed(&s, "fabrikam").await;
    let tables = tenant_tables(&s).await;

    // As the connecting (owner) user, both tenants have rows everywhere:
    // there is something to hide.
    let mut admin = ok(s.pool().acquire().await, "acquire");
    let mut want = Vec::new();
    for table in &tables {
        let rows_a = count(&mut admin, table, Some(a)).await;
        let rows_b = count(&mut admin, table, Some(b)).await;
        assert!(
            rows_a > 0 && rows_b > 0,
            "seed() in pg_rls.rs must put rows of both tenants into {table}"
        );
        want.push(rows_a);
    }
    drop(admin);

    let mut tx = ok(s.tenant_session(a).await, "session");
    let (user, setting): (String, String) = ok(
        sqlx::query_as("SELECT current_user::text, current_setting('app.tenant_id')")
            .fetch_one(&mut *tx)
            .await,
        "session identity",
    );
    assert_eq!(user, APP_ROLE);
    assert_eq!(setting, a.to_string());
    for (table, rows_a) in tables.iter().zip(want) {
        assert_eq!(
            count(&mut tx, table, None).await,
            rows_a,
            "SELECT count(*) FROM {table} shows exactly tenant A's rows"
        );
        assert_eq!(
            count(&mut tx, table, Some(b)).await,
            0,
            "{table}: tenant B's rows are invisible"
        );
    }
    // Hand-written reads of content and of B's rows by id.
    let texts: Vec<String> = ok(
        sqlx::query_scalar("SELECT text FROM transcript_segments")
            .fetch_all(&mut *tx)
            .await,
        "segments",
    );
    assert_eq!(texts.len(), 1);
    let b_recordings: i64 = ok(
        sqlx::query_scalar("SELECT count(*) FROM recordings r WHERE r.tenant_id <> $1")
            .bind(a.0)
            .fetch_one(&mut *tx)
            .await,
        "others",
    );
    assert_eq!(b_recordings, 0);
    // Writes aimed at B's rows touch nothing.
    let updated = ok(
        sqlx::query("UPDATE recordings SET legal_hold = NOT legal_hold WHERE tenant_id = $1")
            .bind(b.0)
            .execute(&mut *tx)
            .await,
        "update B",
    );
    assert_eq!(updated.rows_affected(), 0);
    let deleted = ok(
        sqlx::query("DELETE FROM data_keys WHERE tenant_id = $1")
            .bind(b.0)
            .execute(&mut *tx)
            .await,
        "delete B",
    );
    assert_eq!(deleted.rows_affected(), 0);
    ok(tx.rollback().await, "rollback");

    // The platform table of tenants is out of a tenant session's reach.
    let mut tx = ok(s.tenant_session(a).await, "session");
    let err = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tenants")
        .fetch_one(&mut *tx)
        .await
        .err()
        .unwrap_or_else(|| panic!("a tenant session can read the tenants table"));
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    drop(tx);

    // So are the platform operators' accounts and sessions.
    for table in [
        "operator_accounts",
        "operator_sessions",
        "login_throttles",
        "signing_keys",
        "pending_sign_ins",
        "address_throttles",
        "scheduler_leases",
        "scheduler_runs",
        "node_heartbeats",
    ] {
        let mut tx = ok(s.tenant_session(a).await, "session");
        let err =
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut *tx)
                .await
                .err()
                .unwrap_or_else(|| panic!("a tenant session can read {table}"));
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
        drop(tx);
    }

    // Nothing of B changed.
    let mut admin = ok(s.pool().acquire().await, "acquire");
    assert!(count(&mut admin, "data_keys", Some(b)).await > 0);
}

#[tokio::test]
async fn a_tenant_session_cannot_write_rows_of_another_tenant() {
    let s = store(2).await;
    let a = seed(&s, "contoso").await;
    let b = seed(&s, "fabrikam").await;

    // INSERT of a row that names tenant B: refused by WITH CHECK.
    let mut tx = ok(s.tenant_session(a).await, "session");
    let err = sqlx::query(
        "INSERT INTO data_keys (tenant_id, id, kek_id, wrapped, created_at) \
         VALUES ($1, $2, 'kek-x', '\\x00', now())",
    )
    .bind(b.0)
    .bind(Uuid::new_v4())
    .execute(&mut *tx)
    .await
    .err()
    .unwrap_or_else(|| panic!("insert into tenant B succeeded"));
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    drop(tx);

    // The same through another table, with a recording of B's id space.
    let mut tx = ok(s.tenant_session(a).await, "session");
    let err = sqlx::query(
        "INSERT INTO recordings (tenant_id, id, kind, direction, started_at, status, \
         retention_class, legal_hold, has_transcript, created_at) \
         VALUES ($1, $2, 'call', 'inbound', now(), 'recording', 'default', false, false, now())",
    )
    .bind(b.0)
    .bind(Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .err()
    .unwrap_or_else(|| panic!("insert of a recording for tenant B succeeded"));
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    drop(tx);

    // Moving one of A's rows to B: refused too.
    let mut tx = ok(s.tenant_session(a).await, "session");
    let err = sqlx::query("UPDATE legal_holds SET tenant_id = $1")
        .bind(b.0)
        .execute(&mut *tx)
        .await
        .err()
        .unwrap_or_else(|| panic!("moving a row to tenant B succeeded"));
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    drop(tx);

    // The audit log is append-only for the application role.
    let mut tx = ok(s.tenant_session(a).await, "session");
    let err = sqlx::query("UPDATE audit_events SET actor = 'someone else'")
        .execute(&mut *tx)
        .await
        .err()
        .unwrap_or_else(|| panic!("audit events could be rewritten"));
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    drop(tx);

    // Inserting for its own tenant works in the same kind of session.
    let mut tx = ok(s.tenant_session(a).await, "session");
    ok(
        sqlx::query(
            "INSERT INTO data_keys (tenant_id, id, kek_id, wrapped, created_at) \
             VALUES ($1, $2, 'kek-x', '\\x00', now())",
        )
        .bind(a.0)
        .bind(Uuid::new_v4())
        .execute(&mut *tx)
        .await,
        "insert own row",
    );
    ok(tx.rollback().await, "rollback");
}

#[tokio::test]
async fn the_app_role_without_a_tenant_sees_nothing() {
    let s = store(2).await;
    seed(&s, "contoso").await;
    seed(&s, "fabrikam").await;
    let tables = tenant_tables(&s).await;

    // No tenant set at all, then an empty one: default deny.
    for setup in [
        "SELECT set_config('role', 'insights_app', true)",
        "SELECT set_config('role', 'insights_app', true), set_config('app.tenant_id', '', true)",
    ] {
        let mut tx = ok(s.pool().begin().await, "begin");
        ok(sqlx::query(setup).execute(&mut *tx).await, "set role");
        for table in &tables {
            assert_eq!(
                count(&mut tx, table, None).await,
                0,
                "{table} shows rows without a tenant ({setup})"
            );
        }
        ok(tx.rollback().await, "rollback");
    }

    // A tenant id that is not a UUID fails closed (an error, not rows).
    let mut tx = ok(s.pool().begin().await, "begin");
    ok(
        sqlx::query(
            "SELECT set_config('role', 'insights_app', true), \
             set_config('app.tenant_id', 'x'' OR true --', true)",
        )
        .execute(&mut *tx)
        .await,
        "set role",
    );
    let r = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM recordings")
        .fetch_one(&mut *tx)
        .await;
    assert!(r.is_err(), "a malformed tenant setting must fail: {r:?}");
}

#[tokio::test]
async fn session_settings_end_with_the_transaction() {
    // One connection: whatever a session leaves behind, the next user of
    // the pool would get.
    let s = store(1).await;
    let a = seed(&s, "contoso").await;
    let tx = ok(s.tenant_session(a).await, "session");
    ok(tx.commit().await, "commit");
    let (user, setting): (String, Option<String>) = ok(
        sqlx::query_as(
            "SELECT current_user::text, NULLIF(current_setting('app.tenant_id', true), '')",
        )
        .fetch_one(s.pool())
        .await,
        "after commit",
    );
    assert_ne!(user, APP_ROLE, "the role was reset");
    assert_eq!(setting, None, "the tenant setting was reset");

    let tx = ok(s.tenant_session(a).await, "session");
    drop(tx); // rolled back
    let user: String = ok(
        sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(s.pool())
            .await,
        "after drop",
    );
    assert_ne!(user, APP_ROLE, "the role was reset after a rollback");
}

/// The text-search lookups of migration 0033 run as their owner so that
/// they reach the full-text and trigram indexes; they must still answer
/// only for the session's own tenant, nothing without one, and nobody but
/// the application role may call them.
#[tokio::test]
async fn the_search_lookups_answer_only_for_the_sessions_tenant() {
    let s = store(2).await;
    let a = seed(&s, "contoso").await;
    let b = seed(&s, "fabrikam").await;
    let lookups = [
        "SELECT r FROM search_participant_words(to_tsquery('simple', 'carol:*')) r",
        "SELECT r FROM search_participant_digits('%4255550100%') r",
    ];
    // What each tenant owns, read by the owner.
    let mut admin = ok(s.pool().acquire().await, "acquire");
    let owned = |t: TenantId| {
        sqlx::query_scalar::<_, Uuid>("SELECT id FROM recordings WHERE tenant_id = $1").bind(t.0)
    };
    let ids_a: Vec<Uuid> = ok(owned(a).fetch_all(&mut *admin).await, "ids a");
    let ids_b: Vec<Uuid> = ok(owned(b).fetch_all(&mut *admin).await, "ids b");
    drop(admin);
    for (t, mine, theirs) in [(a, &ids_a, &ids_b), (b, &ids_b, &ids_a)] {
        for sql in lookups {
            let mut tx = ok(s.tenant_session(t).await, "session");
            let got: Vec<Uuid> = ok(
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .fetch_all(&mut *tx)
                    .await,
                sql,
            );
            assert!(!got.is_empty(), "{sql}: finds the tenant's own recording");
            assert!(
                got.iter().all(|id| mine.contains(id)),
                "{sql}: only own ids"
            );
            assert!(!got.iter().any(|id| theirs.contains(id)), "{sql}: leaks");
            // Counting through the store's search path: own rows only.
            let n: i64 = ok(
                sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT count(*) FROM recordings r WHERE r.id IN ({sql})"
                )))
                .fetch_one(&mut *tx)
                .await,
                "count",
            );
            assert_eq!(usize::try_from(n).unwrap_or(0), got.len());
            ok(tx.rollback().await, "rollback");
        }
    }
    // The app role without a tenant, or with an empty one: nothing.
    for setup in [
        "SELECT set_config('role', 'insights_app', true)",
        "SELECT set_config('role', 'insights_app', true), set_config('app.tenant_id', '', true)",
    ] {
        for sql in lookups {
            let mut tx = ok(s.pool().begin().await, "begin");
            ok(sqlx::query(setup).execute(&mut *tx).await, "set role");
            let got: Vec<Uuid> = ok(
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .fetch_all(&mut *tx)
                    .await,
                sql,
            );
            assert!(got.is_empty(), "{sql} without a tenant: {got:?}");
            ok(tx.rollback().await, "rollback");
        }
    }
    // Nobody else may execute them (EXECUTE revoked from PUBLIC).
    let mut admin = ok(s.pool().acquire().await, "acquire");
    for f in [
        "search_participant_words(tsquery)",
        "search_participant_digits(text)",
    ] {
        let (app, public): (bool, bool) = ok(
            sqlx::query_as(
                "SELECT has_function_privilege('insights_app', $1, 'EXECUTE'), \
                 EXISTS (SELECT FROM pg_proc p, aclexplode(p.proacl) a \
                         WHERE p.oid = $1::regprocedure AND a.grantee = 0)",
            )
            .bind(f)
            .fetch_one(&mut *admin)
            .await,
            f,
        );
        assert!(app, "{f}: the app role may call it");
        assert!(!public, "{f}: PUBLIC must not hold EXECUTE");
    }
}
