//! Never miss an invite over a detail: policy-based recording invites whose
//! optional `botData` parts come in shapes other than Microsoft's example
//! (a phone as a Graph `identity` object, `botData` as a JSON string, a
//! field in a shape nobody expects) are answered by the real `insights
//! serve` and recorded; what could not be read is counted in `/metrics`
//! and never logged by value.

use std::path::Path;
use std::time::{Duration, Instant};

use insights_core::domain::{Recording, TenantId};
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;
use serde_json::{Value, json};

use crate::{insights, serve_with_env};

const DIRECTORY_TENANT: &str = "3b0d7c55-8f3e-4a51-9e0a-6c1d2b7f4a90";
/// The audience of the simulator's callback tokens when no bot app id is
/// configured (`bot_gateway::auth::simulator`).
const LOCAL_AUDIENCE: &str = "insights-local-bot";
const PHONE: &str = "+14255550100";

/// A policy-based recording invite (the simulator's shape, Microsoft's
/// `call-answer.md` example 3) with the given `applicationMetadata`.
fn invite(call_id: &str, recorded_oid: &str, metadata: Value) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [{
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "created",
            "resourceUrl": format!("/communications/calls/{call_id}"),
            "resourceData": {
                "@odata.type": "#microsoft.graph.call",
                "state": "incoming",
                "direction": "incoming",
                "source": {
                    "@odata.type": "#microsoft.graph.participantInfo",
                    "id": "p-recorded",
                    "identity": {"user": {"id": recorded_oid, "displayName": "Recorded User",
                        "tenantId": DIRECTORY_TENANT}},
                },
                "targets": [{
                    "identity": {"applicationInstance": {"id": "6c1f4b5a-1d0e-4a55-9a1b-0f3a8d2c7e11"}},
                    "id": "p-bot",
                }],
                "tenantId": DIRECTORY_TENANT,
                "callChainId": uuid::Uuid::new_v4().to_string(),
                "incomingContext": {"sourceParticipantId": "p-recorded",
                    "observedParticipantId": "p-recorded"},
                "id": call_id,
                "applicationMetadata": metadata,
            },
        }],
    })
}

/// The end of a call (`deleted`, state `terminated`).
fn ended(call_id: &str) -> Value {
    json!({"value": [{
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "deleted",
        "resourceUrl": format!("/communications/calls/{call_id}"),
        "resourceData": {"@odata.type": "#microsoft.graph.call", "state": "terminated",
            "resultInfo": {"code": 200, "subcode": 0}},
    }]})
}

/// The recording of `call_id` once `done` says it is complete.
async fn recording(
    store: &SqliteStore,
    tenant: TenantId,
    call_id: &str,
    done: impl Fn(&Recording) -> bool,
) -> Option<Recording> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = store.recording_by_external_call_id(tenant, call_id).await
            && done(&r)
        {
            return Some(r);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tenant_add(cwd: &Path, data: &str) {
    let out = insights(
        cwd,
        &[
            "admin",
            "tenant",
            "add",
            "contoso",
            "--directory-tenant-id",
            DIRECTORY_TENANT,
            "--data-dir",
            data,
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_invites_with_unexpected_bot_data_shapes_are_answered_and_recorded() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let d = data.to_str().unwrap().to_owned();
    tenant_add(cwd.path(), &d);
    let log = cwd.path().join("serve.log");
    let server = serve_with_env(cwd.path(), &data, &[], &log);
    let token = bot_gateway::auth::simulator::mint_simulator_token(
        &data,
        LOCAL_AUDIENCE,
        DIRECTORY_TENANT.parse().unwrap(),
    )
    .unwrap();

    let user = |oid: &str| json!({"id": oid, "tenantId": DIRECTORY_TENANT, "participationMethod": "caller"});
    let pbr = json!(["PolicyBasedRecording"]);
    // (call id, applicationMetadata, the other side's phone we expect stored)
    let variants: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "phone-as-identity",
            json!({"botData": {"inviteReasons": pbr, "user": user("oid-1"),
                "otherSideUser": {"participantId": "p-other", "participationMethod": "callee",
                    "phone": {"@odata.type": "#microsoft.graph.identity", "id": PHONE}}}}),
            Some(PHONE),
        ),
        (
            "phone-as-string",
            json!({"botData": {"inviteReasons": pbr, "user": user("oid-2"),
                "otherSideUser": {"participantId": "p-other", "participationMethod": "callee",
                    "phone": PHONE}}}),
            Some(PHONE),
        ),
        (
            "bot-data-as-json-string",
            json!({"botData": json!({"inviteReasons": pbr, "user": user("oid-3"),
                "otherSideUser": {"participationMethod": "callee", "phone": {"id": PHONE}}})
                .to_string()}),
            Some(PHONE),
        ),
        (
            "unreadable-user-name",
            json!({"botData": {"inviteReasons": pbr,
                "user": {"id": "oid-4", "displayName": {"first": ["Secret", "Name"]}},
                "somethingNew": [1, 2, 3]}}),
            None,
        ),
        (
            "metadata-broken-json",
            Value::String("{\"botData\": {\"inviteReasons\": [\"PolicyBasedRecording\"]".into()),
            None,
        ),
    ];

    let client = reqwest::Client::new();
    for (call_id, meta, _) in &variants {
        let oid = format!("{call_id}-oid");
        let res = client
            .post(format!("{}/api/calls", server.base))
            .bearer_auth(&token)
            .json(&invite(call_id, &oid, meta.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{call_id}");
    }

    let store = SqliteStore::connect(
        &format!("sqlite://{}", data.join("insights.db").display()),
        2,
    )
    .await
    .unwrap();
    let tenant = store
        .tenant_by_directory_id(DIRECTORY_TENANT.parse().unwrap())
        .await
        .unwrap()
        .id;
    for (call_id, _, phone) in &variants {
        recording(&store, tenant, call_id, |_| true)
            .await
            .unwrap_or_else(|| panic!("{call_id}: the invite was not answered and recorded"));
        // At the end of the call every party the invite named is stored.
        let res = client
            .post(format!("{}/api/calls", server.base))
            .bearer_auth(&token)
            .json(&ended(call_id))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{call_id}");
        let rec = recording(&store, tenant, call_id, |r| r.ended_at.is_some())
            .await
            .unwrap_or_else(|| panic!("{call_id}: the call did not end"));
        assert!(
            rec.participants.iter().any(|p| p.recorded_user),
            "{call_id}: {:?}",
            rec.participants
        );
        let stored_phone = rec
            .participants
            .iter()
            .find(|p| !p.recorded_user)
            .and_then(|p| p.phone_number.clone());
        assert_eq!(stored_phone.as_deref(), *phone, "{call_id}");
    }
    // An invite for another reason is still not answered.
    let res = client
        .post(format!("{}/api/calls", server.base))
        .bearer_auth(&token)
        .json(&invite(
            "not-a-policy-invite",
            "oid-x",
            json!({"botData": {"inviteReasons": ["SomethingElse"]}}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);

    // What could not be read is counted by field name.
    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for field in ["user.displayName", "applicationMetadata"] {
        assert!(
            metrics.contains(&format!(
                "insights_gateway_invite_fields_unreadable_total{{field=\"{field}\"}} 1"
            )),
            "{field} not counted:\n{metrics}"
        );
    }
    assert!(
        store
            .recording_by_external_call_id(tenant, "not-a-policy-invite")
            .await
            .is_err(),
        "an invite for another reason must not be recorded"
    );
    store.close().await;
    drop(server);

    // The log names the skipped fields, never what they held.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("user.displayName"), "{log}");
    for secret in ["Secret", PHONE, "4255550100"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}
