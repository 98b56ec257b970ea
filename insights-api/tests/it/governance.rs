//! Governance endpoints against the running API: legal holds block
//! retention (with the hold named in the report) and lifting lets the
//! next run proceed; retention deletes blobs and crypto-shreds keys so a
//! backup copy of a deleted blob cannot be decrypted; dry runs change
//! nothing; every placement, lift and deletion is audited; recordings
//! made after a hold are held; policies and local accounts are managed
//! per tenant; roles without the permission get 403, another tenant's
//! ids are 404.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use chrono::Duration;
use insights_core::blob::{BlobError, BlobStore};
use insights_core::crypto::DataKey;
use insights_core::crypto::envelope::{self, ExpectedIds, Header};
use insights_core::domain::*;
use insights_core::store::StoreError;
use insights_stores::blob::local::LocalBlobStore;
use serde_json::{Value, json};
use sha2::Digest;
use support::{PASSWORD, TestApp};

struct World {
    app: TestApp,
    other: Tenant,
    blobs: LocalBlobStore,
    tokens: Vec<(&'static str, String)>,
    accounts: Vec<(&'static str, AccountId)>,
}

async fn account(
    app: &TestApp,
    tenant: Option<&Tenant>,
    email: &str,
    role: Role,
) -> (AccountId, Option<String>) {
    app.add_account(tenant, email, role, None, None).await
}

async fn world() -> World {
    let app = TestApp::start_with(false, |s| s.mfa_roles.clear()).await;
    let contoso = app.tenant.id;
    let other = app
        .store
        .create_tenant(NewTenant {
            name: "fabrikam".into(),
            directory_tenant_id: None,
        })
        .await
        .unwrap();
    // As `admin tenant add` does: nothing creates a KEK later.
    app.keys.ensure_kek(other.id).await.unwrap();
    let contoso_t = app.tenant.clone();
    let roles: [(&'static str, Option<&Tenant>, Role); 8] = [
        ("tenant-admin", Some(&contoso_t), Role::TenantAdmin),
        // The second person of two-person governance.
        ("tenant-admin-2", Some(&contoso_t), Role::TenantAdmin),
        (
            "compliance-officer",
            Some(&contoso_t),
            Role::ComplianceOfficer,
        ),
        ("supervisor", Some(&contoso_t), Role::Supervisor),
        ("user", Some(&contoso_t), Role::User),
        ("dpo", Some(&contoso_t), Role::Dpo),
        ("platform-operator", None, Role::PlatformOperator),
        ("fabrikam-admin", Some(&other), Role::TenantAdmin),
    ];
    let mut tokens = Vec::new();
    let mut accounts = Vec::new();
    for (name, tenant, role) in roles {
        let email = format!("{name}@example.com");
        let (id, seed) = account(&app, tenant, &email, role).await;
        let name_of = tenant.map(|t| {
            if t.id == contoso {
                "contoso"
            } else {
                "fabrikam"
            }
        });
        let (token, _) = app.login_as(name_of, &email, seed.as_deref()).await;
        tokens.push((name, token));
        accounts.push((name, id));
    }
    let blobs = LocalBlobStore::new(app.dir.path().join("blobs"));
    World {
        app,
        other,
        blobs,
        tokens,
        accounts,
    }
}

impl World {
    fn token(&self, role: &str) -> &str {
        &self.tokens.iter().find(|(n, _)| *n == role).unwrap().1
    }

    /// The second admin approves a pending governance change.
    async fn approve(&self, change: &Value) {
        let (s, v) = self
            .call(
                "tenant-admin-2",
                "POST",
                &format!(
                    "/api/governance-changes/{}/approve",
                    change["id"].as_str().unwrap()
                ),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }

    fn account(&self, role: &str) -> AccountId {
        self.accounts.iter().find(|(n, _)| *n == role).unwrap().1
    }

    async fn call(
        &self,
        role: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.app.base))
            .bearer_auth(self.token(role));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        if status >= 400 {
            assert_eq!(
                res.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/problem+json"),
                "{role} {method} {path}"
            );
        }
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call("tenant-admin", method, path, body).await;
        assert!(status < 300, "{method} {path}: {status} {v}");
        v
    }

    /// A stored recording of `tenant` that started `days_ago`, with one
    /// external participant of phone number `phone` and encrypted media
    /// (two blobs under the recording's prefix, like the uploader's
    /// stream and manifest).
    async fn recording(
        &self,
        tenant: TenantId,
        days_ago: i64,
        phone: &str,
        plain: &[u8],
    ) -> Recording {
        let mut rec = Recording::new(
            tenant,
            RecordingKind::Call,
            Direction::Inbound,
            now() - Duration::days(days_ago),
        );
        rec.status = RecordingStatus::Stored;
        rec.participants.push(Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Caller,
            display_name: None,
            phone_number: Some(phone.into()),
            uri: None,
            email: None,
            directory_user_id: None,
            recorded_user: false,
            joined_ms: Some(0),
            left_ms: None,
        });
        let app = &self.app;
        app.keys.ensure_kek(tenant).await.unwrap();
        let key = DataKey::generate(KeyId::new());
        let wrapped = app.keys.wrap(tenant, &key).await.unwrap();
        app.store.put_data_key(tenant, &wrapped).await.unwrap();
        let sealed =
            envelope::encrypt_to_vec(&key, &Header::new(tenant, rec.id.as_uuid(), key.id), plain)
                .unwrap();
        let container = Tenant::container_name(tenant);
        self.blobs.ensure_container(&container).await.unwrap();
        let blob_key = insights_core::blob::layout::stream_blob_key(rec.id, 0, "audio/ogg");
        self.blobs
            .put(&container, &blob_key, &mut &sealed[..])
            .await
            .unwrap();
        self.blobs
            .put(
                &container,
                &insights_core::blob::layout::manifest_key(rec.id),
                &mut &b"{}"[..],
            )
            .await
            .unwrap();
        rec.media = Some(MediaObject {
            container,
            key: blob_key,
            byte_size: sealed.len() as i64,
            sha256: hex::encode(sha2::Sha256::digest(&sealed)),
            data_key_id: key.id,
            content_type: "audio/ogg".into(),
            plaintext_size: plain.len() as i64,
        });
        app.store.insert_recording(tenant, &rec).await.unwrap();
        app.store.get_recording(tenant, rec.id).await.unwrap()
    }

    async fn blob_keys(&self, rec: &Recording) -> Vec<String> {
        self.blobs
            .list(
                &Tenant::container_name(rec.tenant_id),
                &insights_core::blob::layout::recording_prefix(rec.id),
            )
            .await
            .unwrap()
    }

    async fn audit(&self, action: AuditAction) -> Vec<AuditEvent> {
        self.app
            .audit()
            .await
            .into_iter()
            .filter(|e| e.action == action)
            .collect()
    }
}

/// The raw ciphertext of a recording's media (a "backup" copy).
async fn backup(w: &World, rec: &Recording) -> Vec<u8> {
    let m = rec.media.as_ref().unwrap();
    w.blobs
        .get_range(&m.container, &m.key, 0..m.byte_size as u64)
        .await
        .unwrap()
        .to_vec()
}

/// Decrypts a copy of `rec`'s media with the key the store holds now.
async fn decrypt_with_stored_key(
    w: &World,
    rec: &Recording,
    copy: &[u8],
) -> Result<Vec<u8>, String> {
    let m = rec.media.as_ref().unwrap();
    let wrapped = w
        .app
        .store
        .get_data_key(rec.tenant_id, m.data_key_id)
        .await
        .map_err(|e| format!("key: {e}"))?;
    let key = w
        .app
        .keys
        .unwrap(&wrapped)
        .await
        .map_err(|e| e.to_string())?;
    envelope::decrypt_to_vec(
        &key,
        copy,
        &ExpectedIds::new(rec.tenant_id, rec.id.as_uuid(), m.data_key_id),
    )
    .map_err(|e| e.to_string())
}

fn outcome_of(report: &Value, rec: &Recording) -> String {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["recording_id"] == rec.id.to_string())
        .map(|i| i["outcome"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "absent".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legal_hold_blocks_retention_and_lifting_lets_the_next_run_proceed() {
    let w = world().await;
    let t = w.app.tenant.id;
    let held_media = b"held media: the evidence".to_vec();
    let free_media = b"free media: past retention".to_vec();
    let held = w.recording(t, 400, "+1 (425) 555-0100", &held_media).await;
    let free = w.recording(t, 400, "+14255550199", &free_media).await;
    let young = w.recording(t, 5, "+14255550100", b"young").await;
    let theirs = w
        .recording(w.other.id, 400, "+14255550100", b"theirs")
        .await;

    let policy = w
        .admin(
            "POST",
            "/api/retention-policies",
            Some(json!({"name": "Calls: one year", "scope": {"kind": "call"},
                        "retain_days": 365, "action": "delete-media"})),
        )
        .await;
    assert_eq!(policy["enabled"], true);
    let hold = w
        .admin(
            "POST",
            "/api/legal-holds",
            Some(
                json!({"case_name": "Contoso v. Fabrikam", "reason": "litigation",
                        "scope": {"participant_identifier": "tel:+14255550100"}}),
            ),
        )
        .await;
    assert_eq!(hold["active"], true);
    assert_eq!(
        hold["held_recordings"], 2,
        "the old and the young one: {hold}"
    );
    let hold_id = hold["id"].as_str().unwrap().to_owned();
    for r in [&held, &young] {
        assert!(w.app.store.get_recording(t, r.id).await.unwrap().legal_hold);
    }
    assert!(
        !w.app
            .store
            .get_recording(t, free.id)
            .await
            .unwrap()
            .legal_hold
    );
    assert!(
        !w.app
            .store
            .get_recording(w.other.id, theirs.id)
            .await
            .unwrap()
            .legal_hold,
        "another tenant's recordings are never touched"
    );

    // What is due.
    let due = w.admin("GET", "/api/retention/due", None).await;
    assert_eq!(due["due"], 2, "{due}");
    assert_eq!(due["by_policy"][0]["due"], 2);
    let metrics = w
        .app
        .http
        .get(format!("{}/metrics", w.app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Exported without the tenant's id (`[metrics] tenant_labels` is off
    // by default): tenants' series are summed.
    assert!(
        metrics
            .lines()
            .any(|l| l == "insights_retention_due_recordings 2"),
        "the due gauge is exported: {metrics}"
    );
    assert!(!metrics.contains(&t.to_string()), "a tenant id in /metrics");

    // A dry run reports and deletes nothing.
    let free_backup = backup(&w, &free).await;
    assert_eq!(
        decrypt_with_stored_key(&w, &free, &free_backup)
            .await
            .unwrap(),
        free_media,
        "the backup copy decrypts while the key exists"
    );
    let dry = w
        .admin("POST", "/api/retention/run", Some(json!({"dry_run": true})))
        .await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["due"], 2);
    assert_eq!(outcome_of(&dry, &free), "would-delete-media");
    assert_eq!(outcome_of(&dry, &held), "blocked-by-legal-hold");
    assert_eq!(outcome_of(&dry, &young), "absent");
    assert_eq!(dry["deleted_media"], 0);
    assert_eq!(w.blob_keys(&free).await.len(), 2, "dry run deleted nothing");
    assert!(
        w.app
            .store
            .get_recording(t, free.id)
            .await
            .unwrap()
            .media
            .is_some()
    );
    assert!(w.audit(AuditAction::RetentionDelete).await.is_empty());

    // The real run: the free recording's media goes, the held one stays,
    // and the report names the hold.
    let run = w
        .admin(
            "POST",
            "/api/retention/run",
            Some(json!({"dry_run": false})),
        )
        .await;
    assert_eq!(run["deleted_media"], 1, "{run}");
    assert_eq!(outcome_of(&run, &free), "deleted-media");
    assert_eq!(outcome_of(&run, &held), "blocked-by-legal-hold");
    let blocked = run["blocked"].as_array().unwrap();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0]["recording_id"], held.id.to_string());
    assert_eq!(blocked[0]["holds"][0]["id"], hold_id.as_str());
    assert_eq!(blocked[0]["holds"][0]["case_name"], "Contoso v. Fabrikam");

    let after = w.app.store.get_recording(t, free.id).await.unwrap();
    assert!(after.media.is_none());
    assert_eq!(after.status, RecordingStatus::MediaDeleted);
    assert!(w.blob_keys(&free).await.is_empty(), "every blob deleted");
    let m = free.media.as_ref().unwrap();
    assert!(matches!(
        w.blobs.head(&m.container, &m.key).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        w.app.store.get_data_key(t, m.data_key_id).await,
        Err(StoreError::NotFound)
    ));
    // The backup copy is intact but undecryptable: its key is shredded.
    assert_eq!(backup_len(&free_backup), m.byte_size as usize);
    let err = decrypt_with_stored_key(&w, &free, &free_backup)
        .await
        .unwrap_err();
    assert!(err.starts_with("key:"), "{err}");
    // ...and no other key opens it.
    let stranger = DataKey::generate(m.data_key_id);
    assert!(
        envelope::decrypt_to_vec(
            &stranger,
            &free_backup,
            &ExpectedIds::new(t, free.id.as_uuid(), m.data_key_id)
        )
        .is_err()
    );
    // The held recording is untouched and still plays.
    assert_eq!(w.blob_keys(&held).await.len(), 2);
    let held_now = w.app.store.get_recording(t, held.id).await.unwrap();
    assert_eq!(
        decrypt_with_stored_key(&w, &held_now, &backup(&w, &held_now).await)
            .await
            .unwrap(),
        held_media
    );
    // Nobody can delete it through the store either.
    assert!(matches!(
        w.app.store.delete_recording(t, held.id).await,
        Err(StoreError::Refused(_))
    ));
    let deletions = w.audit(AuditAction::RetentionDelete).await;
    assert_eq!(deletions.len(), 1);
    assert_eq!(deletions[0].recording_id, Some(free.id));
    assert_eq!(deletions[0].details["action"], "delete-media");
    assert_eq!(deletions[0].details["data_key_shredded"], true);
    assert_eq!(deletions[0].details["blobs_deleted"], 2);

    // Lifting asks; a second admin approves; lifting twice is a conflict.
    let (s, change) = w
        .call(
            "tenant-admin",
            "POST",
            &format!("/api/legal-holds/{hold_id}/lift"),
            Some(json!({"reason": "case closed"})),
        )
        .await;
    assert_eq!(s, 202, "{change}");
    assert!(
        w.app
            .store
            .get_recording(t, held.id)
            .await
            .unwrap()
            .legal_hold
    );
    w.approve(&change).await;
    let holds = w.admin("GET", "/api/legal-holds", None).await;
    let lifted = &holds["items"][0];
    assert_eq!(lifted["active"], false, "{holds}");
    assert!(lifted["lifted_at"].is_string());
    let (s, _) = w
        .call(
            "tenant-admin",
            "POST",
            &format!("/api/legal-holds/{hold_id}/lift"),
            None,
        )
        .await;
    assert_eq!(s, 409);
    assert!(
        !w.app
            .store
            .get_recording(t, held.id)
            .await
            .unwrap()
            .legal_hold
    );

    // The next run proceeds.
    let run = w
        .admin(
            "POST",
            "/api/retention/run",
            Some(json!({"dry_run": false})),
        )
        .await;
    assert_eq!(outcome_of(&run, &held), "deleted-media", "{run}");
    assert!(run["blocked"].as_array().unwrap().is_empty());
    assert!(w.blob_keys(&held).await.is_empty());
    assert_eq!(w.admin("GET", "/api/retention/due", None).await["due"], 0);
    // The other tenant's old recording was never due for contoso's policy.
    assert!(
        w.app
            .store
            .get_recording(w.other.id, theirs.id)
            .await
            .unwrap()
            .media
            .is_some()
    );

    // Audited: placement, lift, both deletions.
    let placed = w.audit(AuditAction::LegalHoldPlace).await;
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].target.as_deref(), Some(hold_id.as_str()));
    assert_eq!(placed[0].details["held_recordings"], 2);
    assert_eq!(placed[0].actor, w.account("tenant-admin").to_string());
    let text = serde_json::to_string(&placed[0]).unwrap();
    assert!(!text.contains("4255550100"), "no identifier in the event");
    let lifts = w.audit(AuditAction::LegalHoldLift).await;
    assert_eq!(lifts.len(), 1, "the refused second lift is not an event");
    assert_eq!(lifts[0].reason.as_deref(), Some("case closed"));
    assert_eq!(lifts[0].details["released_recordings"], 2);
    assert_eq!(w.audit(AuditAction::RetentionDelete).await.len(), 2);
    let policy_changes = w.audit(AuditAction::PolicyChange).await;
    assert_eq!(policy_changes.len(), 1);
    assert!(
        insights_core::store::check_audit_chain(w.app.store.as_ref(), t)
            .await
            .unwrap()
            .is_intact()
    );
}

fn backup_len(b: &[u8]) -> usize {
    b.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_recording_policies_and_holds_on_later_recordings() {
    let w = world().await;
    let t = w.app.tenant.id;
    let hold = w
        .admin(
            "POST",
            "/api/legal-holds",
            Some(json!({"case_name": "Inquiry", "scope": {"from": (now() - Duration::days(50)).to_rfc3339()}})),
        )
        .await;
    assert_eq!(hold["held_recordings"], 0);
    // Made after the hold was placed: held by the store at insert.
    let later = w.recording(t, 40, "+14255550111", b"later").await;
    assert!(later.legal_hold);
    let old = w.recording(t, 60, "+14255550112", b"old").await;
    assert!(!old.legal_hold);
    let listed = w.admin("GET", "/api/legal-holds", None).await;
    assert_eq!(listed["items"][0]["held_recordings"], 1);

    // Two policies match: the longer retention wins (100 days keeps both).
    let short = w
        .admin(
            "POST",
            "/api/retention-policies",
            Some(json!({"name": "short", "retain_days": 30, "action": "delete-recording"})),
        )
        .await;
    let long = w
        .admin(
            "POST",
            "/api/retention-policies",
            Some(json!({"name": "long", "scope": {"direction": "inbound"}, "retain_days": 100, "action": "delete-recording"})),
        )
        .await;
    let due = w.admin("GET", "/api/retention/due", None).await;
    assert_eq!(due["due"], 0, "{due}");
    // Disable the long one: the short one governs.
    let long_id = long["id"].as_str().unwrap();
    let mut body = json!({"name": "long", "scope": {"direction": "inbound"}, "retain_days": 100,
                          "action": "delete-recording", "enabled": false});
    let updated = w
        .admin(
            "PUT",
            &format!("/api/retention-policies/{long_id}"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(updated["enabled"], false);
    let run = w
        .admin(
            "POST",
            "/api/retention/run",
            Some(json!({"dry_run": false})),
        )
        .await;
    assert_eq!(run["deleted_recordings"], 1, "{run}");
    assert_eq!(outcome_of(&run, &old), "deleted-recording");
    assert_eq!(outcome_of(&run, &later), "blocked-by-legal-hold");
    assert_eq!(run["items"][0]["policy_id"], short["id"]);
    assert!(matches!(
        w.app.store.get_recording(t, old.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(w.blob_keys(&old).await.is_empty());
    assert!(w.app.store.get_recording(t, later.id).await.is_ok());

    // Policy validation and scoping.
    body["retain_days"] = json!(0);
    let (s, v) = w
        .call(
            "tenant-admin",
            "PUT",
            &format!("/api/retention-policies/{long_id}"),
            Some(body),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("invalid-retention-policy"))
    );
    let (s, _) = w
        .call(
            "tenant-admin",
            "POST",
            "/api/retention-policies",
            Some(json!({"name": " ", "retain_days": 5, "action": "delete-media"})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = w
        .call(
            "fabrikam-admin",
            "DELETE",
            &format!("/api/retention-policies/{long_id}"),
            None,
        )
        .await;
    assert_eq!(s, 404, "another tenant's policy does not exist for them");
    let (s, change) = w
        .call(
            "tenant-admin",
            "DELETE",
            &format!("/api/retention-policies/{long_id}"),
            None,
        )
        .await;
    assert_eq!(s, 202, "{change}");
    w.approve(&change).await;
    let policies = w.admin("GET", "/api/retention-policies", None).await;
    assert_eq!(policies["items"].as_array().unwrap().len(), 1);

    // Holds: blank case, empty scope, inverted dates are 400.
    for body in [
        json!({"case_name": " ", "scope": {"to": now().to_rfc3339()}}),
        json!({"case_name": "X", "scope": {}}),
        json!({"case_name": "X", "scope": {"participant_identifier": "  "}}),
        json!({"case_name": "X", "scope": {"from": now().to_rfc3339(), "to": (now() - Duration::days(1)).to_rfc3339()}}),
    ] {
        let (s, v) = w
            .call("tenant-admin", "POST", "/api/legal-holds", Some(body))
            .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("invalid-legal-hold")),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_without_the_permission_get_403_and_other_tenants_ids_404() {
    let w = world().await;
    let hold = w
        .admin(
            "POST",
            "/api/legal-holds",
            Some(json!({"case_name": "Case", "scope": {"recording_ids": [RecordingId::new()]}})),
        )
        .await;
    let hid = hold["id"].as_str().unwrap().to_owned();
    let policy = w
        .admin(
            "POST",
            "/api/retention-policies",
            Some(json!({"name": "p", "retain_days": 5000, "action": "delete-media"})),
        )
        .await;
    let pid = policy["id"].as_str().unwrap().to_owned();
    let officer = w.account("compliance-officer");
    let pbody = json!({"name": "p", "retain_days": 5000, "action": "delete-media"});
    let endpoints: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/legal-holds".into(), None),
        (
            "POST",
            "/api/legal-holds".into(),
            Some(json!({"case_name": "C", "scope": {"to": now().to_rfc3339()}})),
        ),
        (
            "POST",
            format!("/api/legal-holds/{hid}/lift"),
            Some(json!({})),
        ),
        ("GET", "/api/retention-policies".into(), None),
        (
            "POST",
            "/api/retention-policies".into(),
            Some(pbody.clone()),
        ),
        ("PUT", format!("/api/retention-policies/{pid}"), Some(pbody)),
        (
            "POST",
            "/api/retention/run".into(),
            Some(json!({"dry_run": true})),
        ),
        ("GET", "/api/retention/due".into(), None),
        ("GET", "/api/users".into(), None),
        (
            "PUT",
            format!("/api/users/{officer}"),
            Some(json!({"active": true})),
        ),
        (
            "POST",
            format!("/api/users/{officer}/reset-second-factor"),
            None,
        ),
        (
            "POST",
            format!("/api/users/{officer}/reset-password"),
            Some(json!({"password": "a long enough passphrase"})),
        ),
        ("GET", "/api/people".into(), None),
    ];
    // Expected status per role, in the order of `endpoints` (the lift is
    // last for the admin, who lifts it). `/api/people` is for whoever
    // sees others' actions (the audit, access approvals, governance).
    let expect: Vec<(&str, [u16; 13])> = vec![
        (
            "compliance-officer",
            [
                403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200,
            ],
        ),
        ("supervisor", [403; 13]),
        ("user", [403; 13]),
        // A DPO manages legal holds, nothing else here.
        (
            "dpo",
            [
                200, 201, 202, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200,
            ],
        ),
        ("platform-operator", [403; 13]),
        // Another tenant's admin: contoso's hold, policy and user are 404.
        (
            "fabrikam-admin",
            [
                200, 201, 404, 200, 201, 404, 200, 200, 200, 404, 404, 404, 200,
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (role, statuses) in &expect {
        for ((method, path, body), want) in endpoints.iter().zip(statuses) {
            // Each role lifts a fresh hold of its own tenant where it may.
            let (got, v) = w.call(role, method, path, body.clone()).await;
            if got != *want {
                failures.push(format!(
                    "{role} {method} {path}: got {got}, want {want}: {v}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "matrix mismatches:\n{}",
        failures.join("\n")
    );
    let (s, _) = w
        .call(
            "tenant-admin",
            "POST",
            &format!("/api/legal-holds/{}/lift", LegalHoldId::new()),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = w
        .call(
            "tenant-admin",
            "POST",
            "/api/legal-holds/not-an-id/lift",
            None,
        )
        .await;
    assert_eq!(s, 404);
    // Unauthenticated: 401.
    let res = w
        .app
        .http
        .get(format!("{}/api/legal-holds", w.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_local_accounts_of_their_tenant() {
    let w = world().await;
    let t = w.app.tenant.id;
    let (s, created) = w
        .call(
            "tenant-admin",
            "POST",
            "/api/users",
            Some(json!({"email": "New.Officer@Contoso.example", "password": PASSWORD, "role": "compliance-officer"})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["email"], "new.officer@contoso.example");
    assert_eq!(created["active"], true);
    assert_eq!(created["totp_enrolled"], false);
    let text = created.to_string();
    assert!(!text.contains("argon2") && !text.contains(PASSWORD));
    assert!(
        created.get("totp_uri").is_none(),
        "the admin never sees the seed"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    // The new account's first sign-in: the user enrols TOTP themselves.
    let res = w
        .app
        .login(json!({"email": "new.officer@contoso.example", "password": PASSWORD, "tenant": "contoso"}))
        .await;
    assert_eq!(res.status(), 200);
    let first: Value = res.json().await.unwrap();
    assert_eq!(first["status"], "first-sign-in");
    assert_eq!(first["totp_enrolment_required"], true);
    assert_eq!(first["password_change_required"], true);

    let (s, v) = w
        .call(
            "tenant-admin",
            "POST",
            "/api/users",
            Some(json!({"email": "new.officer@contoso.example", "password": PASSWORD, "role": "user"})),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (409, Some("account-exists")));
    for (body, code) in [
        (
            json!({"email": "x@contoso.example", "password": "short", "role": "user"}),
            "bad-password",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD, "role": "user"}),
            "bad-email",
        ),
        (
            json!({"email": "op@contoso.example", "password": PASSWORD, "role": "platform-operator"}),
            "bad-role",
        ),
        (
            json!({"email": "p@contoso.example", "password": PASSWORD, "role": "user",
                "security_profile_id": SecurityProfileId::new()}),
            "unknown-security-profile",
        ),
    ] {
        let (s, v) = w
            .call("tenant-admin", "POST", "/api/users", Some(body))
            .await;
        assert_eq!((s, v["code"].as_str()), (400, Some(code)), "{v}");
    }

    let listed = w.admin("GET", "/api/users", None).await;
    let emails: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&"new.officer@contoso.example"));
    assert!(
        !emails.contains(&"fabrikam-admin@example.com"),
        "tenant scoped"
    );
    assert!(!listed.to_string().contains("argon2"));

    // Role and profile change, then deactivation: the account can no longer sign in.
    let profile = w
        .admin(
            "POST",
            "/api/security-profiles",
            Some(json!({"name": "Readers", "role": "supervisor", "permissions": ["search"], "scope": {"type": "all"}})),
        )
        .await;
    let changed = w
        .admin(
            "PUT",
            &format!("/api/users/{id}"),
            Some(json!({"role": "supervisor", "security_profile_id": profile["id"]})),
        )
        .await;
    assert_eq!(changed["role"], "supervisor");
    assert_eq!(changed["security_profile_id"], profile["id"]);
    let cleared = w
        .admin(
            "PUT",
            &format!("/api/users/{id}"),
            Some(json!({"security_profile_id": null, "active": false})),
        )
        .await;
    assert_eq!(cleared["security_profile_id"], Value::Null);
    assert_eq!(cleared["role"], "supervisor");
    assert_eq!(cleared["active"], false);
    let res = w
        .app
        .login(json!({"email": "new.officer@contoso.example", "password": PASSWORD, "tenant": "contoso"}))
        .await;
    assert_ne!(res.status(), 200, "a deactivated account cannot sign in");

    // Admins cannot demote or deactivate themselves.
    let me = w.account("tenant-admin");
    for body in [json!({"role": "user"}), json!({"active": false})] {
        let (s, v) = w
            .call(
                "tenant-admin",
                "PUT",
                &format!("/api/users/{me}"),
                Some(body),
            )
            .await;
        assert_eq!((s, v["code"].as_str()), (409, Some("own-account")));
    }
    let (s, _) = w
        .call(
            "tenant-admin",
            "PUT",
            &format!("/api/users/{me}"),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(s, 200, "a no-op on oneself is fine");
    // Another tenant's account is 404; unknown fields are 400.
    let theirs = w.account("fabrikam-admin");
    let (s, _) = w
        .call(
            "tenant-admin",
            "PUT",
            &format!("/api/users/{theirs}"),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = w
        .call(
            "tenant-admin",
            "PUT",
            &format!("/api/users/{id}"),
            Some(json!({"password_hash": "x"})),
        )
        .await;
    assert_eq!(s, 400);

    let changes: Vec<AuditEvent> = w
        .app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::UserChange && e.target.as_deref() == Some(id.as_str()))
        .collect();
    let kinds: Vec<&str> = changes
        .iter()
        .map(|e| e.details["change"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "account-created",
            "first-sign-in-started",
            "account-updated",
            "account-updated"
        ],
        "the creation, the first sign-in and both updates are audited"
    );
    assert_eq!(changes[0].actor, w.account("tenant-admin").to_string());
    assert_eq!(changes[3].details["active"]["to"], false);
    let account = w
        .app
        .store
        .get_account(Realm::Tenant(t), id.parse::<uuid::Uuid>().unwrap().into())
        .await
        .unwrap();
    assert!(!account.active);
}

/// `/api/completeness`: admins and compliance officers read and export a
/// tenant's reconciliation (and only their tenant's), runs need Graph
/// (`409` without it), the threshold is the admin's; every other role is
/// refused; reads are audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completeness_is_for_admins_and_officers_of_the_tenant_only() {
    let w = world().await;
    let at = now() - Duration::hours(2);
    for (t, id) in [
        (w.app.tenant.id, "contoso-call"),
        (w.other.id, "fabrikam-call"),
    ] {
        let call = CallCompleteness {
            call_id: id.into(),
            call_type: "peerToPeer".into(),
            started_at: at,
            ended_at: at + Duration::minutes(5),
            status: CompletenessStatus::NotRecorded,
            coverage_permille: 0,
            reason: Some(GapReason::NotInvited),
            result_code: None,
            rule: None,
            rule_id: None,
            gaps: vec![],
            recording_ids: vec![],
            user_ids: vec![],
            participants: 2,
        };
        let run = CompletenessRun {
            id: uuid::Uuid::new_v4(),
            tenant_id: t,
            from: at - Duration::hours(1),
            to: at + Duration::hours(1),
            trigger: CompletenessTrigger::Scheduled,
            actor: "system:completeness".into(),
            started_at: now(),
            finished_at: now(),
            totals: CompletenessTotals::of([&call]),
            call_records: 1,
            pstn_rows: 0,
            throttled_retries: 0,
            threshold_permille: 990,
            below_threshold: true,
        };
        w.app
            .store
            .put_completeness(t, &run, &[call])
            .await
            .unwrap();
    }
    let q = format!(
        "from={}&to={}",
        (at - Duration::days(1)).date_naive(),
        (at + Duration::days(1)).date_naive()
    );
    let report = format!("/api/completeness?{q}");
    let export = format!("/api/completeness/export.xlsx?{q}");
    let run = json!({"from": (at - Duration::days(1)).date_naive().to_string(), "to": (at + Duration::days(1)).date_naive().to_string()});
    let mut failures = Vec::new();
    for (role, want_read, want_run, want_threshold) in [
        ("tenant-admin", 200, 409, 200),
        ("compliance-officer", 200, 409, 403),
        ("supervisor", 403, 403, 403),
        ("user", 403, 403, 403),
        ("dpo", 403, 403, 403),
        ("platform-operator", 403, 403, 403),
        ("fabrikam-admin", 200, 409, 200),
    ] {
        for (method, path, body, want) in [
            ("GET", report.as_str(), None, want_read),
            ("GET", export.as_str(), None, want_read),
            (
                "POST",
                "/api/completeness/runs",
                Some(run.clone()),
                want_run,
            ),
            (
                "PUT",
                "/api/completeness/threshold",
                Some(json!({"threshold_percent": 97.5})),
                want_threshold,
            ),
        ] {
            let res = w
                .app
                .http
                .request(method.parse().unwrap(), format!("{}{path}", w.app.base))
                .bearer_auth(w.token(role));
            let res = match body {
                Some(b) => res.json(&b),
                None => res,
            }
            .send()
            .await
            .unwrap();
            let got = res.status().as_u16();
            if got != want {
                failures.push(format!("{role} {method} {path}: got {got}, want {want}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (_, v) = w.call("compliance-officer", "GET", &report, None).await;
    let ids: Vec<&str> = v["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["contoso-call"], "{v}");
    assert_eq!(v["configured"], false);
    assert_eq!(v["threshold_permille"], 975, "the admin's threshold");
    let (_, v) = w.call("fabrikam-admin", "GET", &report, None).await;
    assert_eq!(v["calls"][0]["call_id"], "fabrikam-call", "{v}");
    assert_eq!(v["calls"].as_array().unwrap().len(), 1);
    let (s, v) = w
        .call("tenant-admin", "POST", "/api/completeness/runs", Some(run))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("completeness-not-configured"))
    );
    let (s, v) = w
        .call(
            "tenant-admin",
            "GET",
            "/api/completeness?from=2026-01-01&to=2026-03-01",
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("invalid-period")),
        "over 31 days"
    );
    let (_, audit) = w
        .call(
            "tenant-admin",
            "GET",
            "/api/audit?action=completeness-view&limit=50",
            None,
        )
        .await;
    assert!(audit["events"].as_array().unwrap().len() >= 4, "{audit}");
}
