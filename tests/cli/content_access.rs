//! Issue 13 §5 through the real `insights serve`: transcript-derived
//! content (insights, search snippets) needs `view-transcript`, the
//! tenant's reason for access and, under four-eyes, an approval, and
//! every read of it is audited; four-eyes composes with the reason;
//! exports audit filter names, never values, and transcript words need
//! `view-transcript`; approvers see only requests within their scope.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::{Server, serve};

/// A spoken account number: transcript text that must not leak.
pub(crate) const SPOKEN: &str = "80417755";

/// A signed-in API session (bearer token).
pub(crate) struct Session {
    http: Client,
    base: String,
    token: String,
}

impl Session {
    fn send(&self, req: reqwest::blocking::RequestBuilder, reason: Option<&str>) -> (u16, Value) {
        let mut req = req.bearer_auth(&self.token);
        if let Some(r) = reason {
            req = req.header("x-access-reason", r);
        }
        blocking(move || {
            let res = req.send().unwrap();
            let status = res.status().as_u16();
            let text = res.text().unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    /// `GET path`, with a reason for access when given.
    pub(crate) fn get(&self, path: &str, reason: Option<&str>) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)), reason)
    }

    /// `POST path` with a JSON body, with a reason for access when given.
    pub(crate) fn post(&self, path: &str, body: &Value, reason: Option<&str>) -> (u16, Value) {
        self.send(
            self.http.post(format!("{}{path}", self.base)).json(body),
            reason,
        )
    }

    /// `PUT path` with a JSON body.
    pub(crate) fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.http.put(format!("{}{path}", self.base)).json(body),
            None,
        )
    }

    /// `DELETE path`.
    pub(crate) fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base)), None)
    }
}

/// Runs blocking HTTP from the async tests (a blocking reqwest client
/// runs its own runtime, which Tokio allows only in a blocking section).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(f),
        Err(_) => f(),
    }
}

/// Creates a local account through `insights admin user add` (the
/// initial password on stdin; [`crate::accounts::add_user`]).
pub(crate) fn add_account(data: &Path, tenant: &str, email: &str, role: &str, extra: &[&str]) {
    let cwd = tempfile::tempdir().unwrap();
    crate::accounts::add_user(cwd.path(), data, &[], Some(tenant), email, role, extra);
}

/// Creates a local account ([`add_account`]) and signs it in against
/// `server` through the real first sign-in (TOTP enrolment when its
/// permissions need it, the user's own password).
pub(crate) fn user_session(
    data: &Path,
    server: &Server,
    tenant: &str,
    email: &str,
    role: &str,
    extra: &[&str],
) -> Session {
    add_account(data, tenant, email, role, extra);
    let (http, s) = blocking(|| {
        (
            Client::new(),
            crate::accounts::first_sign_in(&server.base, Some(tenant), email),
        )
    });
    Session {
        http,
        base: server.base.clone(),
        token: s.token,
    }
}

pub(crate) fn sqlite_url(data: &Path) -> String {
    format!("sqlite://{}", data.join("insights.db").display())
}

/// What [`seed`] made.
pub(crate) struct World {
    pub(crate) _cwd: tempfile::TempDir,
    pub(crate) data: PathBuf,
    pub(crate) tenant: TenantId,
    /// Two directory users and one transcribed recording of each.
    pub(crate) users: [UserId; 2],
    pub(crate) recordings: [RecordingId; 2],
}

fn directory_user(tenant: TenantId, name: &str) -> DirectoryUser {
    DirectoryUser {
        id: UserId::new(),
        tenant_id: tenant,
        directory_object_id: Some(uuid::Uuid::new_v4().to_string()),
        first_name: Some(name.to_owned()),
        last_name: None,
        display_name: Some(name.to_owned()),
        alias: None,
        email: None,
        upn: None,
        phone_numbers: Vec::new(),
        sip_uri: None,
        tel_uri: None,
        groups: Vec::new(),
        active: true,
        updated_at: now(),
    }
}

/// A tenant `acme` with `settings`, two directory users and a recording
/// of each, transcribed (the account number spoken) and summarised.
pub(crate) async fn seed(settings: TenantSettings) -> World {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = SqliteStore::connect(&sqlite_url(&data), 2).await.unwrap();
    let tenant = store
        .create_tenant(NewTenant {
            name: "acme".into(),
            directory_tenant_id: None,
        })
        .await
        .unwrap()
        .id;
    // Its key-encryption key, as `admin tenant add` makes it: a node
    // never makes one for a tenant that has data.
    {
        use insights_core::crypto::KeyProvider as _;
        insights_core::crypto::LocalKeyFile::open(data.join("keys").join("kek.json"))
            .unwrap()
            .ensure_kek(tenant)
            .await
            .unwrap();
    }
    store
        .update_tenant_settings(tenant, &settings)
        .await
        .unwrap();
    let users = [directory_user(tenant, "Ann"), directory_user(tenant, "Bob")];
    let mut recordings = Vec::new();
    for (i, u) in users.iter().enumerate() {
        store.upsert_directory_user(tenant, u).await.unwrap();
        let mut r = Recording::new(
            tenant,
            RecordingKind::Call,
            Direction::Inbound,
            now() - chrono::Duration::hours(i64::try_from(i).unwrap() + 1),
        );
        let p = Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Callee,
            display_name: u.display_name.clone(),
            phone_number: None,
            uri: None,
            email: None,
            directory_user_id: Some(u.id),
            recorded_user: true,
            joined_ms: None,
            left_ms: None,
        };
        r.participants.push(p.clone());
        store.insert_recording(tenant, &r).await.unwrap();
        let seg = TranscriptSegment {
            id: SegmentId::new(),
            recording_id: r.id,
            participant_id: Some(p.id),
            start_ms: 0,
            end_ms: 2000,
            text: format!("my account number is {SPOKEN}"),
            confidence: 0.9,
            language: Some("en".into()),
        };
        store
            .replace_transcript(tenant, r.id, std::slice::from_ref(&seg))
            .await
            .unwrap();
        store
            .put_insights(
                tenant,
                r.id,
                &[Insight {
                    id: InsightId::new(),
                    recording_id: r.id,
                    kind: InsightKind::Summary,
                    text: format!("The customer gave account number {SPOKEN}."),
                    owner_participant_id: None,
                    provider: "local:test".into(),
                    created_at: now(),
                    citations: vec![Citation::of(&seg)],
                }],
            )
            .await
            .unwrap();
        recordings.push(r.id);
    }
    store.close().await;
    World {
        _cwd: cwd,
        data,
        tenant,
        users: [users[0].id, users[1].id],
        recordings: [recordings[0], recordings[1]],
    }
}

/// Stores a security profile before `serve` starts; returns its id.
pub(crate) async fn profile(
    data: &Path,
    tenant: TenantId,
    role: Role,
    permissions: Vec<Permission>,
    scope: VisibilityScope,
) -> String {
    let store = SqliteStore::connect(&sqlite_url(data), 2).await.unwrap();
    let p = SecurityProfile {
        id: SecurityProfileId::new(),
        tenant_id: tenant,
        name: format!("profile {}", uuid::Uuid::new_v4().simple()),
        role,
        permissions,
        scope,
    };
    store.upsert_security_profile(tenant, &p).await.unwrap();
    store.close().await;
    p.id.to_string()
}

/// The tenant's audit events (read by someone with `view-audit`).
fn audit_of(s: &Session, query: &str) -> Vec<Value> {
    let (st, body) = s.get(&format!("/api/audit?limit=1000{query}"), None);
    assert_eq!(st, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

fn no_spoken_text(body: &Value) {
    assert!(
        !body.to_string().contains(SPOKEN),
        "transcript text leaked: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn insights_and_snippets_need_view_transcript_and_the_reason_and_are_audited() {
    let w = seed(TenantSettings {
        require_access_reason: true,
        ..TenantSettings::default()
    })
    .await;
    let narrow = profile(
        &w.data,
        w.tenant,
        Role::Supervisor,
        vec![Permission::Search, Permission::Play],
        VisibilityScope::All,
    )
    .await;
    let server = serve(w._cwd.path(), &w.data);
    let officer = user_session(
        &w.data,
        &server,
        "acme",
        "officer@acme.example",
        "compliance-officer",
        &[],
    );
    let searcher = user_session(
        &w.data,
        &server,
        "acme",
        "searcher@acme.example",
        "supervisor",
        &["--security-profile", &narrow],
    );
    let rec = w.recordings[0];
    let path = format!("/api/recordings/{rec}");

    // No reason: the metadata, no insights, and why.
    let (st, body) = officer.get(&path, None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["recording"]["id"], rec.to_string());
    assert_eq!(body["insights"], Value::Null);
    assert_eq!(body["insights_withheld"], "access-reason-required");
    no_spoken_text(&body);
    // Without view-transcript: never, whatever the reason.
    let (st, body) = searcher.get(&path, Some("case 7"));
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["insights_withheld"], "permission-denied");
    no_spoken_text(&body);
    // With the reason: the summary, and the read is in the trail.
    let (st, body) = officer.get(&path, Some("case 7"));
    assert_eq!(st, 200, "{body}");
    assert!(
        body["insights"][0]["text"]
            .as_str()
            .unwrap()
            .contains(SPOKEN)
    );
    let reads: Vec<Value> = audit_of(&officer, &format!("&recording_id={rec}"))
        .into_iter()
        .filter(|e| e["action"] == "transcript-view")
        .collect();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0]["reason"], "case 7");
    assert_eq!(reads[0]["details"]["insights"], 1);

    // Search by a spoken word: no snippet before the reason.
    let q = json!({ "transcript_text": "account", "limit": 50 });
    let (st, body) = officer.post("/api/recordings/search", &q, None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["total"], 2);
    assert_eq!(body["snippets_withheld"], "access-reason-required");
    no_spoken_text(&body);
    let (st, body) = searcher.post(
        "/api/recordings/search",
        &json!({ "participant": "Ann", "limit": 50 }),
        Some("case 7"),
    );
    assert_eq!(st, 200, "{body}");
    no_spoken_text(&body);
    // With the reason: snippets, each audited as a read of its recording.
    let (st, body) = officer.post("/api/recordings/search", &q, Some("case 8"));
    assert_eq!(st, 200, "{body}");
    assert!(body.to_string().contains(SPOKEN), "{body}");
    assert_eq!(body["snippets_withheld"], Value::Null);
    for r in w.recordings {
        let reads: Vec<Value> = audit_of(&officer, &format!("&recording_id={r}"))
            .into_iter()
            .filter(|e| e["action"] == "transcript-view" && e["details"]["via"] == "search")
            .collect();
        assert_eq!(reads.len(), 1, "{r}: {reads:?}");
        assert_eq!(reads[0]["reason"], "case 8");
    }
    // Nothing spoken or searched for is in the trail's details.
    for e in audit_of(&officer, "") {
        assert!(!e["details"].to_string().contains(SPOKEN), "{e}");
        assert!(!e["details"].to_string().contains("account number"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn four_eyes_covers_transcript_and_insights_and_composes_with_the_reason() {
    let w = seed(TenantSettings {
        require_access_reason: true,
        four_eyes_playback: true,
        ..TenantSettings::default()
    })
    .await;
    let server = serve(w._cwd.path(), &w.data);
    let sup = user_session(
        &w.data,
        &server,
        "acme",
        "sup@acme.example",
        "supervisor",
        &[],
    );
    let officer = user_session(
        &w.data,
        &server,
        "acme",
        "officer@acme.example",
        "compliance-officer",
        &[],
    );
    let rec = w.recordings[0];
    let path = format!("/api/recordings/{rec}");

    // The reason first, then the approval: each gate says what it needs.
    let (_, body) = sup.get(&path, None);
    assert_eq!(body["insights_withheld"], "access-reason-required");
    let (st, body) = sup.get(&path, Some("coaching 3"));
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["insights_withheld"], "approval-required");
    no_spoken_text(&body);
    let (st, body) = sup.get(&format!("{path}/transcript"), Some("coaching 3"));
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["code"], "approval-required");
    no_spoken_text(&body);
    let (st, body) = sup.post(
        "/api/recordings/search",
        &json!({ "transcript_text": "account", "limit": 50 }),
        Some("coaching 3"),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["total"], 2);
    no_spoken_text(&body);

    // Ask, an officer approves: then transcript and insights open, for
    // that recording only, with the approval named in the trail.
    let (st, req) = sup.post(
        &format!("{path}/access-requests"),
        &json!({ "reason": "coaching 3" }),
        None,
    );
    assert_eq!(st, 201, "{req}");
    let (st, body) = officer.post(
        &format!(
            "/api/access-requests/{}/approve",
            req["id"].as_str().unwrap()
        ),
        &json!({}),
        None,
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = sup.get(&path, Some("coaching 3"));
    assert_eq!(st, 200, "{body}");
    assert!(
        body["insights"][0]["text"]
            .as_str()
            .unwrap()
            .contains(SPOKEN)
    );
    let (st, body) = sup.get(&format!("{path}/transcript"), Some("coaching 3"));
    assert_eq!(st, 200, "{body}");
    let (_, body) = sup.post(
        "/api/recordings/search",
        &json!({ "transcript_text": "account", "limit": 50 }),
        Some("coaching 3"),
    );
    let items = body["items"].as_array().unwrap();
    for item in items {
        let shown = !item["snippets"].as_array().unwrap().is_empty();
        assert_eq!(
            shown,
            item["recording"]["id"] == rec.to_string(),
            "snippets only of the approved recording: {item}"
        );
    }
    let reads: Vec<Value> = audit_of(&officer, &format!("&recording_id={rec}"))
        .into_iter()
        .filter(|e| e["action"] == "transcript-view")
        .collect();
    assert!(reads.len() >= 3, "{reads:?}");
    assert!(
        reads.iter().all(|e| e["details"]["approval"] == req["id"]),
        "{reads:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_audit_filter_names_only_and_transcript_words_need_view_transcript() {
    let w = seed(TenantSettings::default()).await;
    let no_transcript = profile(
        &w.data,
        w.tenant,
        Role::TenantAdmin,
        vec![
            Permission::Search,
            Permission::Export,
            Permission::ExportPersonalData,
        ],
        VisibilityScope::All,
    )
    .await;
    let server = serve(w._cwd.path(), &w.data);
    let dpo = user_session(&w.data, &server, "acme", "dpo@acme.example", "dpo", &[]);
    let exporter = user_session(
        &w.data,
        &server,
        "acme",
        "exporter@acme.example",
        "tenant-admin",
        &["--security-profile", &no_transcript],
    );

    // Words spoken need view-transcript, in exports as in search.
    let (st, body) = exporter.post(
        "/api/exports",
        &json!({ "query": { "transcript_text": "account" }, "columns": ["started-at"] }),
        None,
    );
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["code"], "permission-denied");

    let (st, body) = dpo.post(
        "/api/exports",
        &json!({
            "query": { "participant": "Ann", "transcript_text": "account number" },
            "columns": ["started-at", "participant-names", "transcript-matches"],
            "reason": "DSAR 12",
        }),
        None,
    );
    assert_eq!(st, 202, "{body}");
    let status_url = body["status_url"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, s) = dpo.get(&status_url, None);
        if s["state"] == "done" {
            break;
        }
        assert_ne!(s["state"], "failed", "{s}");
        assert!(Instant::now() < deadline, "export did not finish: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let exports: Vec<Value> = audit_of(&dpo, "")
        .into_iter()
        .filter(|e| e["action"] == "export")
        .collect();
    assert_eq!(exports.len(), 1, "{exports:?}");
    let details = &exports[0]["details"];
    assert_eq!(
        details["filters"],
        json!(["participant", "transcript_text"])
    );
    let text = exports[0].to_string();
    for value in ["Ann", "account number", SPOKEN] {
        assert!(
            !text.contains(value),
            "`{value}` in the export's audit event: {text}"
        );
    }
    assert_eq!(exports[0]["reason"], "DSAR 12");
}

#[tokio::test(flavor = "multi_thread")]
async fn approvers_list_only_access_requests_within_their_scope() {
    let w = seed(TenantSettings {
        four_eyes_playback: true,
        ..TenantSettings::default()
    })
    .await;
    let only_ann = profile(
        &w.data,
        w.tenant,
        Role::ComplianceOfficer,
        Role::ComplianceOfficer.default_permissions(),
        VisibilityScope::Users(vec![w.users[0]]),
    )
    .await;
    let server = serve(w._cwd.path(), &w.data);
    let sup = user_session(
        &w.data,
        &server,
        "acme",
        "sup@acme.example",
        "supervisor",
        &[],
    );
    let approver = user_session(
        &w.data,
        &server,
        "acme",
        "ann-approver@acme.example",
        "compliance-officer",
        &["--security-profile", &only_ann],
    );
    let everyone = user_session(
        &w.data,
        &server,
        "acme",
        "officer@acme.example",
        "compliance-officer",
        &[],
    );
    for (r, why) in w.recordings.iter().zip(["about Ann", "about Bob"]) {
        let (st, body) = sup.post(
            &format!("/api/recordings/{r}/access-requests"),
            &json!({ "reason": why }),
            None,
        );
        assert_eq!(st, 201, "{body}");
    }
    let (st, body) = approver.get("/api/access-requests", None);
    assert_eq!(st, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["recording_id"], w.recordings[0].to_string());
    assert!(!body.to_string().contains("about Bob"), "{body}");
    let (_, body) = everyone.get("/api/access-requests", None);
    assert_eq!(body["items"].as_array().unwrap().len(), 2, "{body}");
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("browser")
}

/// The recording page in Chromium: no summary or transcript text before
/// the reason for access; a supervisor who gives it reaches the approval
/// form (the two flows compose); after an officer's approval the page
/// shows summary and transcript.
#[tokio::test(flavor = "multi_thread")]
async fn the_recording_page_asks_the_reason_first_then_for_approval_in_chromium() {
    let w = seed(TenantSettings {
        require_access_reason: true,
        four_eyes_playback: true,
        ..TenantSettings::default()
    })
    .await;
    let server = serve(w._cwd.path(), &w.data);
    // First sign-ins over HTTP; the browser then signs in as a returning
    // user (own password, a code of the enrolled seed).
    let first = |email: &str, role: &str| {
        add_account(&w.data, "acme", email, role, &[]);
        blocking(|| crate::accounts::first_sign_in(&server.base, Some("acme"), email)).totp_seed
    };
    let sup_seed = first("sup@acme.example", "supervisor");
    let off_seed = first("officer@acme.example", "compliance-officer");
    let spec = json!({
        "base": server.base,
        "tenant": "acme",
        "password": crate::accounts::PASSWORD,
        "supervisor": { "email": "sup@acme.example", "seed": sup_seed },
        "officer": { "email": "officer@acme.example", "seed": off_seed },
        "recording": w.recordings[0],
        "spoken": SPOKEN,
    });
    let spec_path = w._cwd.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let modules = browser_dir().join("node_modules");
    assert!(
        modules.join("playwright-core").is_dir(),
        "run `npm ci --prefix tests/browser` (scripts/test.sh does)"
    );
    let out = blocking(|| {
        std::process::Command::new("node")
            .arg(browser_dir().join("content_access.js"))
            .arg(&spec_path)
            .output()
            .expect("node runs")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("content_access.js printed no report ({e}): {stdout}\n{stderr}")
    });
    let failed: Vec<&Value> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] != true)
        .collect();
    assert!(failed.is_empty(), "browser steps failed: {failed:#?}");
    assert_eq!(report["steps"].as_array().unwrap().len(), 3, "{report}");
    assert!(out.status.success(), "{stderr}");
}
