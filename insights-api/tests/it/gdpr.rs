//! Data-subject routes (`/api/gdpr/*`) over the real API: only the DPO
//! (`gdpr-actions`) may use them; find answers with reasons; an access
//! job yields a zip; an erasure is planned, executed and certified; bad
//! input is a problem+json 400 that echoes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::io::Read;

use chrono::{TimeZone, Utc};
use insights_core::domain::*;
use serde_json::{Value, json};
use support::{TestApp, code};

const EMAIL: &str = "erin.subject@example.net";

async fn seed(app: &TestApp) -> RecordingId {
    let t = app.tenant.id;
    let mut rec = Recording::new(
        t,
        RecordingKind::Call,
        Direction::Inbound,
        Utc.with_ymd_and_hms(2026, 5, 4, 10, 0, 0).unwrap(),
    );
    let subject = Participant {
        id: ParticipantId::new(),
        role: ParticipantRole::Caller,
        display_name: Some("Erin Subject".into()),
        phone_number: Some("+4930901820".into()),
        uri: None,
        email: Some(EMAIL.into()),
        directory_user_id: None,
        recorded_user: false,
        joined_ms: None,
        left_ms: None,
    };
    let mut agent = subject.clone();
    agent.id = ParticipantId::new();
    agent.role = ParticipantRole::Callee;
    agent.display_name = Some("Agent Smith".into());
    agent.email = Some("agent@contoso.com".into());
    agent.phone_number = None;
    agent.recorded_user = true;
    rec.participants = vec![subject, agent];
    app.store.insert_recording(t, &rec).await.unwrap();
    rec.id
}

struct Client<'a> {
    app: &'a TestApp,
    token: String,
}

impl Client<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut r = self
            .app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.app.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }
}

async fn login<'a>(app: &'a TestApp, email: &str, role: Role) -> Client<'a> {
    let (_, seed) = app.add_user(email, role).await;
    let mut body =
        json!({"tenant": app.tenant.name, "email": email, "password": support::PASSWORD});
    if let Some(seed) = seed {
        body["totp"] = json!(code(&seed));
    }
    let (token, _) = app.login_ok(body).await;
    Client { app, token }
}

#[tokio::test]
async fn dpo_finds_exports_and_erases_a_subject() {
    let app = TestApp::start().await;
    let rec = seed(&app).await;
    let dpo = login(&app, "dpo@contoso.com", Role::Dpo).await;
    let admin = login(&app, "admin@contoso.com", Role::TenantAdmin).await;
    let ids = json!({"identifiers": {"email": EMAIL.to_uppercase()}});

    // Only the DPO.
    let res = admin
        .call("POST", "/api/gdpr/find", Some(ids.clone()))
        .await;
    assert_eq!(res.status(), 403);

    // Find, with reasons.
    let res = dpo.call("POST", "/api/gdpr/find", Some(ids.clone())).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    let m = &v["matches"].as_array().unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["type"], "recording");
    assert_eq!(m[0]["id"], rec.to_string());
    assert_eq!(m[0]["reasons"][0]["field"], "email");
    assert_eq!(m[0]["reasons"][0]["role"], "caller");

    // Bad input: 400 problem, the value is not echoed.
    let res = dpo
        .call(
            "POST",
            "/api/gdpr/find",
            Some(json!({"identifiers": {"phone": "12345 secret-ish"}})),
        )
        .await;
    assert_eq!(res.status(), 400);
    let body = res.text().await.unwrap();
    assert!(body.contains("invalid-identifiers") && !body.contains("secret-ish"));
    let res = dpo
        .call("POST", "/api/gdpr/find", Some(json!({"identifiers": {}})))
        .await;
    assert_eq!(res.status(), 400);

    // Access bundle: a reason is required; then 202, poll, download.
    let res = dpo
        .call("POST", "/api/gdpr/access", Some(ids.clone()))
        .await;
    assert_eq!(res.status(), 400);
    let access = json!({
        "identifiers": {"email": EMAIL.to_uppercase()},
        "reason": "Art. 15 request 12",
    });
    let res = dpo
        .call("POST", "/api/gdpr/access", Some(access.clone()))
        .await;
    assert_eq!(res.status(), 202);
    let job: Value = res.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let mut status = Value::Null;
    for _ in 0..100 {
        status = dpo
            .call("GET", &format!("/api/gdpr/access/{id}"), None)
            .await
            .json()
            .await
            .unwrap();
        if status["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status["status"], "done", "{status}");
    // Another account cannot see the job.
    let res = admin
        .call("GET", &format!("/api/gdpr/access/{id}"), None)
        .await;
    assert_eq!(res.status(), 403);
    let res = dpo
        .call("GET", &format!("/api/gdpr/access/{id}/file"), None)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/zip"
    );
    let zip_bytes = res.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes.to_vec())).unwrap();
    let mut listing = String::new();
    zip.by_name("recordings.json")
        .unwrap()
        .read_to_string(&mut listing)
        .unwrap();
    assert!(listing.contains(&rec.to_string()));
    assert!(listing.contains("[masked]") && !listing.contains("Agent Smith"));
    assert!(
        app.audit()
            .await
            .iter()
            .any(|e| e.action == AuditAction::GdprAccess)
    );

    // Rectification explanation.
    let v: Value = dpo
        .call("GET", "/api/gdpr/rectification", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(v["directory"].as_str().unwrap().contains("Entra"));
    assert!(!v["where"].as_array().unwrap().is_empty());

    // Erasure: planned with the report, executed, certified.
    let res = dpo
        .call(
            "POST",
            "/api/gdpr/erasures",
            Some(json!({"identifiers": {"email": EMAIL}, "reason": "ticket 9"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["status"], "planned");
    assert_eq!(e["report"]["recordings"][0]["id"], rec.to_string());
    assert_eq!(
        e["report"]["recordings"][0]["action"], "erase-metadata-defer-media",
        "no waiver: media waits for retention"
    );
    let eid = e["id"].as_str().unwrap().to_owned();
    let res = dpo
        .call(
            "GET",
            &format!("/api/gdpr/erasures/{eid}/certificate"),
            None,
        )
        .await;
    assert_eq!(res.status(), 409, "not executed yet");
    let res = dpo
        .call("POST", &format!("/api/gdpr/erasures/{eid}/execute"), None)
        .await;
    assert_eq!(res.status(), 200);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["status"], "partially-deferred");
    // The access bundle held the erased recording: it is gone, job, key
    // and sealed file.
    let res = dpo
        .call("GET", &format!("/api/gdpr/access/{id}/file"), None)
        .await;
    assert_eq!(res.status(), 404);
    assert!(
        app.store
            .list_file_jobs(app.tenant.id)
            .await
            .unwrap()
            .is_empty()
    );
    let list: Value = dpo
        .call("GET", "/api/gdpr/erasures", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["id"], eid);
    let res = dpo
        .call(
            "GET",
            &format!("/api/gdpr/erasures/{eid}/certificate"),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let cert = res.text().await.unwrap();
    let v = gdpr_tools::certificate::verify(cert.as_bytes(), None).unwrap();
    assert_eq!(v.certificate["request_id"], eid);
    // The subject is pseudonymised; the agent is untouched.
    let got = app.store.get_recording(app.tenant.id, rec).await.unwrap();
    assert_eq!(got.participants[0].email, None);
    assert_eq!(
        got.participants[1].display_name.as_deref(),
        Some("Agent Smith")
    );
    // Unknown ids are 404s.
    let res = dpo.call("GET", "/api/gdpr/erasures/not-an-id", None).await;
    assert_eq!(res.status(), 404);
    let res = dpo
        .call(
            "POST",
            &format!("/api/gdpr/erasures/{}/execute", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(res.status(), 404);
}
