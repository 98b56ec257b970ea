//! `insights gdpr retention`: a dry run reports and deletes nothing, a
//! legal hold blocks (named in the report), the real run deletes what is
//! due, and an unknown tenant is a clear error.

use chrono::Duration;
use gdpr_tools::holds::{self, Actor, NewHold};
use insights_core::domain::*;
use insights_core::store::StoreError;
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;
use serde_json::Value;

use crate::insights;

fn sqlite_url(data: &std::path::Path) -> String {
    format!("sqlite://{}", data.join("insights.db").display())
}

async fn old_recording(store: &dyn MetadataStore, t: TenantId, phone: &str) -> RecordingId {
    let mut r = Recording::new(
        t,
        RecordingKind::Call,
        Direction::Outbound,
        now() - Duration::days(90),
    );
    r.participants.push(Participant {
        id: ParticipantId::new(),
        role: ParticipantRole::Callee,
        display_name: None,
        phone_number: Some(phone.into()),
        uri: None,
        email: None,
        directory_user_id: None,
        recorded_user: false,
        joined_ms: None,
        left_ms: None,
    });
    store.insert_recording(t, &r).await.unwrap();
    r.id
}

fn retention(data: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let cwd = tempfile::tempdir().unwrap();
    let mut args = vec!["gdpr", "retention", "--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = insights(cwd.path(), &args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn gdpr_retention_dry_run_hold_and_real_run() {
    let data = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&sqlite_url(data.path()), 2)
        .await
        .unwrap();
    let t = store
        .create_tenant(NewTenant {
            name: "acme".into(),
            directory_tenant_id: None,
        })
        .await
        .unwrap()
        .id;
    let held = old_recording(&store, t, "+14255550100").await;
    let free = old_recording(&store, t, "+14255550199").await;
    store
        .upsert_retention_policy(
            t,
            &RetentionPolicy {
                id: RetentionPolicyId::new(),
                tenant_id: t,
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
    let hold = holds::place(
        &store,
        t,
        NewHold {
            case_name: "Acme inquiry".into(),
            reason: None,
            scope: HoldScope {
                participant_identifier: Some("+1 425 555 0100".into()),
                ..HoldScope::default()
            },
        },
        &Actor {
            id: "test".into(),
            source: None,
        },
    )
    .await
    .unwrap();
    store.close().await;

    let (code, out, err) = retention(data.path(), &["--tenant", "acme", "--dry-run", "--json"]);
    assert_eq!(code, 0, "{err}");
    let line: Value = serde_json::from_str(out.trim()).unwrap();
    let report = &line["report"];
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["due"], 2);
    assert_eq!(report["blocked"][0]["recording_id"], held.to_string());
    assert_eq!(
        report["blocked"][0]["holds"][0]["case_name"],
        "Acme inquiry"
    );
    assert_eq!(
        report["blocked"][0]["holds"][0]["id"],
        hold.hold.id.to_string()
    );

    let (code, out, err) = retention(data.path(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("deleted 1 recordings, blocked by legal hold 1"),
        "{out}"
    );
    assert!(out.contains(&format!(
        "recording {held} blocked by legal hold: Acme inquiry"
    )));

    let store = SqliteStore::connect(&sqlite_url(data.path()), 2)
        .await
        .unwrap();
    assert!(matches!(
        store.get_recording(t, free).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.get_recording(t, held).await.unwrap().legal_hold);
    let deletions: Vec<AuditEvent> = store
        .list_audit(t, &AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::RetentionDelete)
        .collect();
    assert_eq!(deletions.len(), 1);
    assert_eq!(deletions[0].actor, "cli");
    store.close().await;

    let (code, _, err) = retention(data.path(), &["--tenant", "nobody"]);
    assert_eq!(code, 1);
    assert!(err.contains("no tenant `nobody`"), "{err}");
}
