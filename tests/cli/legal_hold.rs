//! Issue 13 §6 through the real binary: a legal hold wins everywhere.
//! `insights keys shred` is refused for a held recording's key (the
//! store decides in the transaction that would delete it).

use std::path::Path;

use insights_core::crypto::WrappedDataKey;
use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;
use serde_json::json;

use crate::content_access::{seed, sqlite_url, user_session};
use crate::{insights, serve};

/// Gives recording `rec` a stored media object under a new data key.
async fn with_key(data: &Path, tenant: TenantId, rec: RecordingId) -> KeyId {
    let store = SqliteStore::connect(&sqlite_url(data), 2).await.unwrap();
    let key = WrappedDataKey {
        id: KeyId::new(),
        tenant_id: tenant,
        kek_id: "kek-test".into(),
        wrapped: vec![7; 60],
        created_at: now(),
    };
    store.put_data_key(tenant, &key).await.unwrap();
    store
        .set_recording_media(
            tenant,
            rec,
            Some(&MediaObject {
                container: Tenant::container_name(tenant),
                key: format!("recordings/{rec}.ins"),
                byte_size: 100,
                sha256: "ab".repeat(32),
                data_key_id: key.id,
                content_type: "audio/ogg".into(),
                plaintext_size: 90,
            }),
        )
        .await
        .unwrap();
    store.close().await;
    key.id
}

async fn key_exists(data: &Path, tenant: TenantId, key: KeyId) -> bool {
    let store = SqliteStore::connect(&sqlite_url(data), 2).await.unwrap();
    let found = store.get_data_key(tenant, key).await.is_ok();
    store.close().await;
    found
}

fn shred(data: &Path, key: KeyId) -> (i32, String, String) {
    let cwd = tempfile::tempdir().unwrap();
    let out = insights(
        cwd.path(),
        &[
            "keys",
            "shred",
            "--tenant",
            "acme",
            "--key-id",
            &key.to_string(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_shred_refuses_a_held_recording() {
    let w = seed(TenantSettings::default()).await;
    let [held, free] = w.recordings;
    let held_key = with_key(&w.data, w.tenant, held).await;
    let free_key = with_key(&w.data, w.tenant, free).await;
    let server = serve(w._cwd.path(), &w.data);
    let admin = user_session(
        &w.data,
        &server,
        "acme",
        "admin@acme.example",
        "tenant-admin",
        &[],
    );
    let (st, hold) = admin.post(
        "/api/legal-holds",
        &json!({ "case_name": "Inquiry 4", "scope": { "recording_ids": [held] } }),
        None,
    );
    assert_eq!(st, 201, "{hold}");

    let (code, out, err) = shred(&w.data, held_key);
    assert_eq!(code, 1, "shred of a held key must fail: {out}{err}");
    assert!(err.contains("legal hold"), "{err}");
    assert!(key_exists(&w.data, w.tenant, held_key).await);
    // The refusal is in the trail.
    let store = SqliteStore::connect(&sqlite_url(&w.data), 2).await.unwrap();
    let refused: Vec<AuditEvent> = store
        .list_audit(w.tenant, &AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::KeyShred)
        .collect();
    store.close().await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].details["refused"], "legal-hold");

    // A recording no hold covers: shredded.
    let (code, out, err) = shred(&w.data, free_key);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("destroyed"), "{out}");
    assert!(!key_exists(&w.data, w.tenant, free_key).await);
}

fn items(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn destructive_governance_takes_effect_only_after_a_second_person_approves() {
    let w = seed(TenantSettings::default()).await;
    let server = serve(w._cwd.path(), &w.data);
    let first = user_session(
        &w.data,
        &server,
        "acme",
        "first@acme.example",
        "tenant-admin",
        &[],
    );
    let second = user_session(
        &w.data,
        &server,
        "acme",
        "second@acme.example",
        "tenant-admin",
        &[],
    );
    // Holds, but no retention or settings permission.
    let dpo = user_session(&w.data, &server, "acme", "dpo@acme.example", "dpo", &[]);

    // Lifting a hold: asked, still active, not by the asker, then lifted.
    let (st, hold) = first.post(
        "/api/legal-holds",
        &json!({ "case_name": "Inquiry 9", "scope": { "recording_ids": [w.recordings[0]] } }),
        None,
    );
    assert_eq!(st, 201, "{hold}");
    let hold_id = hold["id"].as_str().unwrap().to_owned();
    let (st, change) = first.post(
        &format!("/api/legal-holds/{hold_id}/lift"),
        &json!({}),
        None,
    );
    assert_eq!(st, 202, "{change}");
    assert_eq!(change["kind"], "legal-hold-lift");
    assert_eq!(change["status"], "pending");
    let (_, list) = first.get("/api/legal-holds", None);
    assert_eq!(items(&list)[0]["active"], true, "{list}");
    let approve = |s: &crate::content_access::Session, c: &serde_json::Value| {
        s.post(
            &format!(
                "/api/governance-changes/{}/approve",
                c["id"].as_str().unwrap()
            ),
            &json!({}),
            None,
        )
    };
    let (st, body) = approve(&first, &change);
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["code"], "own-change");
    let (_, pending) = dpo.get("/api/governance-changes?status=pending", None);
    assert_eq!(
        items(&pending).len(),
        1,
        "the DPO sees the hold change: {pending}"
    );
    let (st, body) = approve(&second, &change);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["status"], "approved");
    let (_, list) = first.get("/api/legal-holds", None);
    assert_eq!(items(&list)[0]["active"], false, "{list}");
    let (st, _) = approve(&dpo, &change);
    assert_eq!(st, 409, "decided once");

    // Retention: deleting and shortening wait; lengthening does not.
    let policy =
        json!({ "name": "Keep 400 days", "retain_days": 400, "action": "delete-recording" });
    let (st, p) = first.post("/api/retention-policies", &policy, None);
    assert_eq!(st, 201, "{p}");
    let path = format!("/api/retention-policies/{}", p["id"].as_str().unwrap());
    let (st, longer) = first.put(
        &path,
        &json!({ "name": "Keep 500 days", "retain_days": 500, "action": "delete-recording" }),
    );
    assert_eq!(st, 200, "{longer}");
    let (st, shorter) = first.put(
        &path,
        &json!({ "name": "Keep 30 days", "retain_days": 30, "action": "delete-recording" }),
    );
    assert_eq!(st, 202, "{shorter}");
    let (_, list) = first.get("/api/retention-policies", None);
    assert_eq!(items(&list)[0]["retain_days"], 500);
    let (st, body) = approve(&dpo, &shorter);
    assert_eq!(st, 403, "the DPO may not manage retention: {body}");
    let (st, _) = approve(&second, &shorter);
    assert_eq!(st, 200);
    let (_, list) = first.get("/api/retention-policies", None);
    assert_eq!(items(&list)[0]["retain_days"], 30);
    let (st, delete) = first.delete(&path);
    assert_eq!(st, 202, "{delete}");
    let (_, list) = first.get("/api/retention-policies", None);
    assert_eq!(items(&list).len(), 1, "still there until approved");
    let (st, _) = second.post(
        &format!(
            "/api/governance-changes/{}/reject",
            delete["id"].as_str().unwrap()
        ),
        &json!({}),
        None,
    );
    assert_eq!(st, 200);
    let (_, list) = first.get("/api/retention-policies", None);
    assert_eq!(items(&list).len(), 1, "a rejected deletion deletes nothing");

    // The media-deletion waiver: asked, still off, then on.
    let settings = json!({
        "cloud_ai_enabled": false, "media_deletion_waiver": true,
        "require_access_reason": false, "four_eyes_playback": false,
    });
    let (st, body) = first.put("/api/settings", &settings);
    assert_eq!(st, 202, "{body}");
    let (_, now) = first.get("/api/settings", None);
    assert_eq!(now["media_deletion_waiver"], false);
    let (st, _) = approve(&second, &body["pending_change"]);
    assert_eq!(st, 200);
    let (_, now) = first.get("/api/settings", None);
    assert_eq!(now["media_deletion_waiver"], true);

    // Every step is in the trail, naming both people.
    let store = SqliteStore::connect(&sqlite_url(&w.data), 2).await.unwrap();
    let events = store
        .list_audit(w.tenant, &AuditQuery::default())
        .await
        .unwrap();
    store.close().await;
    let count = |a: AuditAction| events.iter().filter(|e| e.action == a).count();
    assert_eq!(count(AuditAction::GovernanceChangeRequest), 4);
    assert_eq!(count(AuditAction::GovernanceChangeDecision), 4);
    assert_eq!(count(AuditAction::LegalHoldLift), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_tenant_undercuts_the_installation_minimum_retention() {
    let w = seed(TenantSettings::default()).await;
    // A 30-day policy stored before the minimum was configured, and a
    // recording 60 days old.
    let store = SqliteStore::connect(&sqlite_url(&w.data), 2).await.unwrap();
    store
        .upsert_retention_policy(
            w.tenant,
            &RetentionPolicy {
                id: RetentionPolicyId::new(),
                tenant_id: w.tenant,
                name: "30 days".into(),
                scope: RetentionScope::default(),
                retain_days: 30,
                action: RetentionAction::DeleteRecording,
                enabled: true,
                updated_at: now(),
            },
        )
        .await
        .unwrap();
    let old = Recording::new(
        w.tenant,
        RecordingKind::Call,
        Direction::Outbound,
        now() - chrono::Duration::days(60),
    );
    store.insert_recording(w.tenant, &old).await.unwrap();
    store.close().await;

    let log = w._cwd.path().join("serve.log");
    let server = crate::serve_with_env(
        w._cwd.path(),
        &w.data,
        &[("INSIGHTS_RETENTION__MINIMUM_DAYS".into(), "90".into())],
        &log,
    );
    let admin = user_session(
        &w.data,
        &server,
        "acme",
        "admin@acme.example",
        "tenant-admin",
        &[],
    );
    let (st, body) = admin.post(
        "/api/retention-policies",
        &json!({ "name": "Short", "retain_days": 30, "action": "delete-media" }),
        None,
    );
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["code"], "invalid-retention-policy");
    assert!(body["detail"].as_str().unwrap().contains("90"), "{body}");
    let (st, body) = admin.post(
        "/api/retention-policies",
        &json!({ "name": "Long enough", "retain_days": 90, "action": "delete-media" }),
        None,
    );
    assert_eq!(st, 201, "{body}");

    // The old 30-day policy is enforced as 90 days: nothing is due.
    let (st, report) = admin.post("/api/retention/run", &json!({ "dry_run": false }), None);
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["deleted_recordings"], 0, "{report}");
    let store = SqliteStore::connect(&sqlite_url(&w.data), 2).await.unwrap();
    assert!(store.get_recording(w.tenant, old.id).await.is_ok());
    store.close().await;
}
