//! The recording endpoints against the running API: a role × endpoint ×
//! tenant matrix where every cell asserts the exact status, the user's
//! own-recordings scope, the platform operator refused all content,
//! decrypted playback with Range, reason for access, and the audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use insights_core::blob::BlobStore;
use insights_core::crypto::DataKey;
use insights_core::crypto::envelope::{self, Header};
use insights_core::domain::*;
use insights_stores::blob::local::LocalBlobStore;
use serde_json::{Value, json};
use sha2::Digest;
use support::TestApp;

struct World {
    app: TestApp,
    other: Tenant,
    /// A recording in which the `user` account's directory user took part.
    own: Recording,
    /// A recording of the same tenant without them.
    foreign: Recording,
    /// A recording of the other tenant.
    other_tenant: Recording,
    /// The plaintext media of `own`.
    media: Vec<u8>,
    /// Role name → API token (tenant `contoso`), plus `fabrikam-admin`
    /// and `platform-operator`.
    tokens: Vec<(&'static str, String)>,
    accounts: Vec<(&'static str, AccountId)>,
}

async fn account(
    app: &TestApp,
    tenant: Option<&Tenant>,
    email: &str,
    role: Role,
    dir: Option<UserId>,
) -> (AccountId, Option<String>) {
    app.add_account(tenant, email, role, dir, None).await
}

fn party(role: ParticipantRole, user: Option<UserId>, name: &str) -> Participant {
    Participant {
        id: ParticipantId::new(),
        role,
        display_name: Some(name.into()),
        phone_number: None,
        uri: None,
        email: None,
        directory_user_id: user,
        recorded_user: user.is_some(),
        joined_ms: Some(0),
        left_ms: None,
    }
}

/// Stores `rec` with encrypted media `plain` and one transcript segment.
async fn recording_with_media(
    app: &TestApp,
    tenant: TenantId,
    mut rec: Recording,
    plain: &[u8],
) -> Recording {
    let blobs = LocalBlobStore::new(app.dir.path().join("blobs"));
    app.keys.ensure_kek(tenant).await.unwrap();
    let key = DataKey::generate(KeyId::new());
    let wrapped = app.keys.wrap(tenant, &key).await.unwrap();
    app.store.put_data_key(tenant, &wrapped).await.unwrap();
    let sealed =
        envelope::encrypt_to_vec(&key, &Header::new(tenant, rec.id.as_uuid(), key.id), plain)
            .unwrap();
    let container = Tenant::container_name(tenant);
    blobs.ensure_container(&container).await.unwrap();
    let blob_key = format!("recordings/{}/media.ogg.env", rec.id);
    blobs
        .put(&container, &blob_key, &mut &sealed[..])
        .await
        .unwrap();
    app.store.insert_recording(tenant, &rec).await.unwrap();
    let media = MediaObject {
        container,
        key: blob_key,
        byte_size: sealed.len() as i64,
        sha256: hex::encode(sha2::Sha256::digest(&sealed)),
        data_key_id: key.id,
        content_type: "audio/ogg".into(),
        plaintext_size: plain.len() as i64,
    };
    app.store
        .set_recording_media(tenant, rec.id, Some(&media))
        .await
        .unwrap();
    app.store
        .put_transcript_segments(
            tenant,
            rec.id,
            &[TranscriptSegment {
                id: SegmentId::new(),
                recording_id: rec.id,
                participant_id: rec.participants.first().map(|p| p.id),
                start_ms: 0,
                end_ms: 1000,
                text: "the settlement figures are confirmed".into(),
                confidence: 0.9,
                language: Some("en".into()),
            }],
        )
        .await
        .unwrap();
    rec.media = Some(media);
    rec
}

async fn world() -> World {
    let app = TestApp::start_with(false, |s| s.mfa_roles.clear()).await;
    let contoso = app.tenant.id;
    let contoso_t = app.tenant.clone();
    let other = app
        .store
        .create_tenant(NewTenant {
            name: "fabrikam".into(),
            directory_tenant_id: None,
        })
        .await
        .unwrap();
    let alice = UserId::new();
    app.store
        .upsert_directory_user(
            contoso,
            &DirectoryUser {
                id: alice,
                tenant_id: contoso,
                directory_object_id: None,
                first_name: Some("Alice".into()),
                last_name: Some("Example".into()),
                display_name: Some("Alice Example".into()),
                alias: None,
                email: None,
                upn: None,
                phone_numbers: Vec::new(),
                sip_uri: None,
                tel_uri: None,
                groups: vec!["trading".into()],
                active: true,
                updated_at: now(),
            },
        )
        .await
        .unwrap();
    let media: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();

    let mut own = Recording::new(contoso, RecordingKind::Call, Direction::Inbound, now());
    own.participants
        .push(party(ParticipantRole::Callee, Some(alice), "Alice Example"));
    own.participants
        .push(party(ParticipantRole::Caller, None, "Bob External"));
    let own = recording_with_media(&app, contoso, own, &media).await;
    let mut foreign = Recording::new(contoso, RecordingKind::Call, Direction::Outbound, now());
    foreign.participants.push(party(
        ParticipantRole::Caller,
        Some(UserId::new()),
        "Carol Example",
    ));
    let foreign = recording_with_media(&app, contoso, foreign, b"other media").await;
    let mut theirs = Recording::new(other.id, RecordingKind::Call, Direction::Inbound, now());
    theirs.participants.push(party(
        ParticipantRole::Callee,
        Some(UserId::new()),
        "Dave Fabrikam",
    ));
    let other_tenant = recording_with_media(&app, other.id, theirs, b"fabrikam media").await;

    let roles: [(&'static str, Option<TenantId>, Role, Option<UserId>); 7] = [
        ("tenant-admin", Some(contoso), Role::TenantAdmin, None),
        (
            "compliance-officer",
            Some(contoso),
            Role::ComplianceOfficer,
            None,
        ),
        ("supervisor", Some(contoso), Role::Supervisor, None),
        ("user", Some(contoso), Role::User, Some(alice)),
        ("dpo", Some(contoso), Role::Dpo, None),
        ("platform-operator", None, Role::PlatformOperator, None),
        ("fabrikam-admin", Some(other.id), Role::TenantAdmin, None),
    ];
    let mut tokens = Vec::new();
    let mut accounts = Vec::new();
    for (name, tenant, role, dir) in roles {
        let email = format!("{name}@example.com");
        let of = match tenant {
            Some(t) if t == contoso => Some(&contoso_t),
            Some(_) => Some(&other),
            None => None,
        };
        let (id, seed) = account(&app, of, &email, role, dir).await;
        let (token, _) = app
            .login_as(of.map(|t| t.name.as_str()), &email, seed.as_deref())
            .await;
        tokens.push((name, token));
        accounts.push((name, id));
    }
    World {
        app,
        other,
        own,
        foreign,
        other_tenant,
        media,
        tokens,
        accounts,
    }
}

impl World {
    fn token(&self, role: &str) -> &str {
        &self.tokens.iter().find(|(n, _)| *n == role).unwrap().1
    }

    async fn call(
        &self,
        role: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self
            .app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.app.base));
        if let Some(role) = role {
            r = r.bearer_auth(self.token(role));
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_endpoint_tenant_matrix() {
    let w = world().await;
    let own = w.own.id;
    let foreign = w.foreign.id;
    let theirs = w.other_tenant.id;
    let endpoints: Vec<(String, &str, String)> = vec![
        ("search".into(), "POST", "/api/recordings/search".into()),
        ("detail".into(), "GET", format!("/api/recordings/{own}")),
        (
            "transcript".into(),
            "GET",
            format!("/api/recordings/{own}/transcript"),
        ),
        (
            "media".into(),
            "GET",
            format!("/api/recordings/{own}/media"),
        ),
        (
            "download".into(),
            "GET",
            format!("/api/recordings/{own}/download"),
        ),
        (
            "detail-foreign".into(),
            "GET",
            format!("/api/recordings/{foreign}"),
        ),
        (
            "media-foreign".into(),
            "GET",
            format!("/api/recordings/{foreign}/media"),
        ),
        (
            "detail-other-tenant".into(),
            "GET",
            format!("/api/recordings/{theirs}"),
        ),
        (
            "media-other-tenant".into(),
            "GET",
            format!("/api/recordings/{theirs}/media"),
        ),
        (
            "transcript-other-tenant".into(),
            "GET",
            format!("/api/recordings/{theirs}/transcript"),
        ),
        (
            "detail-missing".into(),
            "GET",
            format!("/api/recordings/{}", RecordingId::new()),
        ),
        (
            "detail-not-an-id".into(),
            "GET",
            "/api/recordings/not-an-id".into(),
        ),
        (
            "access-requests".into(),
            "GET",
            "/api/access-requests".into(),
        ),
        ("jobs".into(), "GET", format!("/api/recordings/{own}/jobs")),
        (
            "jobs-other-tenant".into(),
            "GET",
            format!("/api/recordings/{theirs}/jobs"),
        ),
        // Data-subject requests: the DPO's alone.
        ("gdpr-erasures".into(), "GET", "/api/gdpr/erasures".into()),
        (
            "gdpr-rectification".into(),
            "GET",
            "/api/gdpr/rectification".into(),
        ),
        // The exact count of a search: the search's own rights.
        ("count".into(), "POST", "/api/recordings/count".into()),
        // Pause and resume (`pause-recording`): permission first (403
        // whatever the id), then scope (404), then state (these live
        // recordings are not paused: 409). Pausing itself is proven
        // through `insights serve` (tests/cli/pause.rs).
        (
            "resume".into(),
            "POST",
            format!("/api/recordings/{own}/resume"),
        ),
        (
            "resume-foreign".into(),
            "POST",
            format!("/api/recordings/{foreign}/resume"),
        ),
        (
            "resume-other-tenant".into(),
            "POST",
            format!("/api/recordings/{theirs}/resume"),
        ),
        (
            "pause-missing".into(),
            "POST",
            format!("/api/recordings/{}/pause", RecordingId::new()),
        ),
        // Alerts and their channels (`manage-settings`, in the caller's
        // realm: a tenant's admin sees the tenant's, the platform
        // operator the installation's). Raising and delivery are proven
        // through `insights serve` (tests/cli/alerts.rs).
        ("alerts".into(), "GET", "/api/admin/alerts".into()),
        (
            "alert-channels".into(),
            "GET",
            "/api/admin/alert-channels".into(),
        ),
    ];
    // Expected status per role, in the order of `endpoints`.
    let expect: Vec<(Option<&str>, [u16; 24])> = vec![
        (
            Some("tenant-admin"),
            [
                200, 200, 200, 200, 200, 200, 200, 404, 404, 404, 404, 404, 200, 200, 404, 403,
                403, 200, 409, 409, 404, 404, 200, 200,
            ],
        ),
        (
            Some("compliance-officer"),
            [
                200, 200, 200, 200, 403, 200, 200, 404, 404, 404, 404, 404, 200, 200, 404, 403,
                403, 200, 403, 403, 403, 403, 403, 403,
            ],
        ),
        (
            Some("supervisor"),
            [
                200, 200, 200, 200, 403, 200, 200, 404, 404, 404, 404, 404, 200, 200, 404, 403,
                403, 200, 409, 409, 404, 404, 403, 403,
            ],
        ),
        // A user sees only recordings they took part in: the rest is 404.
        (
            Some("user"),
            [
                200, 200, 200, 200, 403, 404, 404, 404, 404, 404, 404, 404, 200, 200, 404, 403,
                403, 200, 409, 404, 404, 404, 403, 403,
            ],
        ),
        // A DPO searches and reads transcripts but does not play (a
        // missing permission is 403 whatever the id: it reveals nothing).
        (
            Some("dpo"),
            [
                200, 200, 200, 403, 403, 200, 403, 404, 403, 404, 404, 404, 403, 200, 404, 200,
                200, 200, 403, 403, 403, 403, 403, 403,
            ],
        ),
        // The platform operator is refused every content endpoint; the
        // installation's alerts are theirs.
        (
            Some("platform-operator"),
            [
                403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403,
                403, 403, 403, 403, 403, 403, 200, 200,
            ],
        ),
        // Another tenant's admin: contoso's recordings do not exist for them.
        (
            Some("fabrikam-admin"),
            [
                200, 404, 404, 404, 404, 404, 404, 200, 200, 200, 404, 404, 200, 404, 200, 403,
                403, 200, 404, 404, 409, 404, 200, 200,
            ],
        ),
        (None, [401; 24]),
    ];
    let mut failures = Vec::new();
    for (role, statuses) in &expect {
        for ((name, method, path), want) in endpoints.iter().zip(statuses) {
            let body = (*method == "POST").then(|| json!({}));
            let res = w.call(*role, method, path, body).await;
            let got = res.status().as_u16();
            if got != *want {
                failures.push(format!("{role:?} {name}: got {got}, want {want}"));
            }
            if got >= 400 {
                assert_eq!(
                    res.headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok()),
                    Some("application/problem+json"),
                    "{role:?} {name}"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "matrix mismatches:\n{}",
        failures.join("\n")
    );
}

/// Pause and resume without a gateway to apply them: a `user` pauses
/// only calls they are a recorded user of, only live Teams recordings
/// are paused, one pause at a time; unapplied requests answer `202`,
/// are stored as a gap and audited with ids only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_rules_without_a_gateway() {
    let w = world().await;
    let contoso = w.app.tenant.id;
    let alice = w.own.participants[0].directory_user_id.unwrap();
    // Alice took part in this call, but the recorded user was Carol.
    let mut shared = Recording::new(contoso, RecordingKind::Call, Direction::Inbound, now());
    let mut listener = party(ParticipantRole::Caller, Some(alice), "Alice Example");
    listener.recorded_user = false;
    shared.participants.push(listener);
    shared.participants.push(party(
        ParticipantRole::Callee,
        Some(UserId::new()),
        "Carol Example",
    ));
    w.app
        .store
        .insert_recording(contoso, &shared)
        .await
        .unwrap();
    let mut over = Recording::new(contoso, RecordingKind::Call, Direction::Inbound, now());
    over.ended_at = Some(now());
    w.app.store.insert_recording(contoso, &over).await.unwrap();
    let mut sbc = Recording::new(contoso, RecordingKind::Call, Direction::Inbound, now());
    sbc.external_call_id = Some("siprec:abc@sbc.example".into());
    w.app.store.insert_recording(contoso, &sbc).await.unwrap();

    let wr = &w;
    let post = |role: &'static str, id: RecordingId, verb: &'static str| {
        let path = format!("/api/recordings/{id}/{verb}");
        async move {
            let res = wr.call(Some(role), "POST", &path, None).await;
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let code = |v: &Value| v["code"].as_str().unwrap_or_default().to_owned();
    let (st, body) = post("user", shared.id, "pause").await;
    assert_eq!((st, code(&body)), (403, "not-recorded-user".into()));
    let (st, body) = post("supervisor", over.id, "pause").await;
    assert_eq!((st, code(&body)), (409, "not-live".into()));
    let (st, body) = post("supervisor", sbc.id, "pause").await;
    assert_eq!((st, code(&body)), (409, "not-pausable".into()));

    // No gateway applies it: 202, stored as asked for.
    let (st, paused) = post("supervisor", shared.id, "pause").await;
    assert_eq!(st, 202, "{paused}");
    assert_eq!(paused["applied"], false);
    assert!(paused["gap"]["started_at"].is_null());
    let (st, body) = post("tenant-admin", shared.id, "pause").await;
    assert_eq!((st, code(&body)), (409, "already-paused".into()));
    let (st, resumed) = post("tenant-admin", shared.id, "resume").await;
    assert_eq!(st, 202, "{resumed}");
    assert!(resumed["gap"]["resume_requested_at"].is_string());
    let (st, body) = post("tenant-admin", shared.id, "resume").await;
    assert_eq!((st, code(&body)), (409, "not-paused".into()));
    let detail: Value = w
        .call(
            Some("supervisor"),
            "GET",
            &format!("/api/recordings/{}", shared.id),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let gaps = detail["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{detail}");
    assert_eq!(gaps[0]["id"], paused["gap"]["id"]);
    let account = |role: &str| {
        w.accounts
            .iter()
            .find(|(n, _)| *n == role)
            .unwrap()
            .1
            .to_string()
    };
    assert_eq!(gaps[0]["requested_by"], account("supervisor").as_str());
    assert_eq!(gaps[0]["resumed_by"], account("tenant-admin").as_str());
    for (action, who) in [
        (AuditAction::RecordingPause, "supervisor"),
        (AuditAction::RecordingResume, "tenant-admin"),
    ] {
        let events = w
            .app
            .store
            .list_audit(
                contoso,
                &AuditQuery {
                    action: Some(action),
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "{action}");
        assert_eq!(events[0].actor, account(who));
        assert_eq!(events[0].recording_id, Some(shared.id));
        assert_eq!(events[0].details, json!({ "gap_id": paused["gap"]["id"] }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_is_scoped_and_audited_without_personal_data() {
    let w = world().await;
    let total = |v: &Value| v["total"].as_u64().unwrap();
    let ids = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["recording"]["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let admin: Value = w
        .call(
            Some("tenant-admin"),
            "POST",
            "/api/recordings/search",
            Some(json!({})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(total(&admin), 2);
    let user: Value = w
        .call(
            Some("user"),
            "POST",
            "/api/recordings/search",
            Some(json!({})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&user), vec![w.own.id.to_string()]);
    // A client cannot widen its own scope.
    let widened: Value = w
        .call(
            Some("user"),
            "POST",
            "/api/recordings/search",
            Some(json!({"visible_to_users": null})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(total(&widened), 1);
    assert_eq!(widened["total_is_lower_bound"], json!(false));
    // The exact count has the search's scope: a user counts only their own.
    for (role, want) in [("tenant-admin", 2), ("user", 1), ("fabrikam-admin", 1)] {
        let counted: Value = w
            .call(
                Some(role),
                "POST",
                "/api/recordings/count",
                Some(json!({"visible_to_users": null})),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(counted, json!({"total": want}), "{role}");
    }
    let fab: Value = w
        .call(
            Some("fabrikam-admin"),
            "POST",
            "/api/recordings/search",
            Some(json!({})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&fab), vec![w.other_tenant.id.to_string()]);
    assert_eq!(w.other.name, "fabrikam");

    // Filters and transcript words, with highlighted snippets.
    let hits: Value = w
        .call(
            Some("compliance-officer"),
            "POST",
            "/api/recordings/search",
            Some(json!({"participant": "alice", "transcript_text": "settlement"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&hits), vec![w.own.id.to_string()]);
    let snippet = hits["items"][0]["snippets"][0].as_str().unwrap();
    assert!(snippet.contains("[[settlement]]"), "{snippet}");
    // A bad page size is a 400 problem.
    let res = w
        .call(
            Some("tenant-admin"),
            "POST",
            "/api/recordings/search",
            Some(json!({"limit": 0})),
        )
        .await;
    assert_eq!(res.status(), 400);

    // Audited: who searched, which filters, how many results; never the
    // values typed in.
    let events = w.app.audit().await;
    let co = w
        .accounts
        .iter()
        .find(|(n, _)| *n == "compliance-officer")
        .unwrap()
        .1;
    let search = events
        .iter()
        .find(|e| e.action == AuditAction::Search && e.actor == co.to_string())
        .expect("the search is audited");
    assert_eq!(
        search.details["filters"],
        json!(["participant", "transcript_text"])
    );
    assert_eq!(search.details["results"], 1);
    let all = serde_json::to_string(&events).unwrap();
    assert!(
        !all.contains("alice") && !all.contains("settlement"),
        "{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playback_streams_the_decrypted_media_with_ranges_and_is_audited() {
    let w = world().await;
    let path = format!("/api/recordings/{}/media", w.own.id);
    let res = w.call(Some("supervisor"), "GET", &path, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "audio/ogg");
    assert_eq!(res.headers()["accept-ranges"], "bytes");
    assert!(res.bytes().await.unwrap() == w.media);

    let res = w
        .app
        .http
        .get(format!("{}{path}", w.app.base))
        .bearer_auth(w.token("supervisor"))
        .header("range", "bytes=70000-70099")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 70000-70099/{}", w.media.len()).as_str()
    );
    assert!(res.bytes().await.unwrap() == w.media[70_000..70_100]);
    let res = w
        .app
        .http
        .get(format!("{}{path}", w.app.base))
        .bearer_auth(w.token("supervisor"))
        .header("range", "bytes=999999-")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 416);

    // Download: the same bytes as an attachment, for those allowed.
    let res = w
        .call(
            Some("tenant-admin"),
            "GET",
            &format!("/api/recordings/{}/download", w.own.id),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(res.bytes().await.unwrap() == w.media);

    let sup = w
        .accounts
        .iter()
        .find(|(n, _)| *n == "supervisor")
        .unwrap()
        .1;
    let plays: Vec<_> = w
        .app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::Play && e.actor == sup.to_string())
        .collect();
    assert_eq!(plays.len(), 3, "every read of the media is audited");
    assert!(plays.iter().all(|e| e.recording_id == Some(w.own.id)));
    assert_eq!(plays[1].details["range"], "bytes=70000-70099");
    assert_eq!(plays[0].source.as_deref(), Some("127.0.0.1"));
    let downloads = w
        .app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::Download)
        .count();
    assert_eq!(downloads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_can_require_a_reason_for_access() {
    let w = world().await;
    let mut settings = w.app.tenant.settings.clone();
    settings.require_access_reason = true;
    w.app
        .store
        .update_tenant_settings(w.app.tenant.id, &settings)
        .await
        .unwrap();
    for path in [
        format!("/api/recordings/{}/media", w.own.id),
        format!("/api/recordings/{}/transcript", w.own.id),
    ] {
        let res = w.call(Some("compliance-officer"), "GET", &path, None).await;
        assert_eq!(res.status(), 400, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "access-reason-required");
        let res = w
            .app
            .http
            .get(format!("{}{path}", w.app.base))
            .bearer_auth(w.token("compliance-officer"))
            .header("x-access-reason", "case 2026-114")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let events = w.app.audit().await;
    let reasons: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.action, AuditAction::Play | AuditAction::TranscriptView))
        .map(|e| e.reason.as_deref())
        .collect();
    assert_eq!(reasons, vec![Some("case 2026-114"), Some("case 2026-114")]);
    // Metadata and search need no reason.
    let res = w
        .call(
            Some("compliance-officer"),
            "GET",
            &format!("/api/recordings/{}", w.own.id),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let detail: Value = res.json().await.unwrap();
    assert_eq!(detail["recording"]["id"], w.own.id.to_string());
    assert_eq!(
        detail["recording"]["participants"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_is_listed_filtered_and_verified_for_auditors_only() {
    let w = world().await;
    let play = format!("/api/recordings/{}/media", w.own.id);
    assert_eq!(
        w.call(Some("supervisor"), "GET", &play, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        w.call(Some("supervisor"), "GET", &play, None)
            .await
            .status(),
        200
    );

    for (role, want) in [
        ("tenant-admin", 200),
        ("compliance-officer", 200),
        ("dpo", 200),
        ("supervisor", 403),
        ("user", 403),
        ("platform-operator", 403),
    ] {
        for path in ["/api/audit", "/api/audit/verify"] {
            let got = w.call(Some(role), "GET", path, None).await.status();
            assert_eq!(got, want, "{role} {path}");
        }
    }
    assert_eq!(w.call(None, "GET", "/api/audit", None).await.status(), 401);

    let page: Value = w
        .call(
            Some("compliance-officer"),
            "GET",
            &format!("/api/audit?action=play&recording_id={}", w.own.id),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["action"] == "play"));
    // Paging: one at a time, in chain order, without gaps.
    let first: Value = w
        .call(Some("tenant-admin"), "GET", "/api/audit?limit=1", None)
        .await
        .json()
        .await
        .unwrap();
    let after = first["next_after"].as_i64().unwrap();
    let second: Value = w
        .call(
            Some("tenant-admin"),
            "GET",
            &format!("/api/audit?limit=1&after={after}"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["events"][0]["seq"].as_i64().unwrap(), after + 1);
    // Another tenant's trail is not reachable: fabrikam's admin sees
    // only fabrikam's events (account set-up and its own login), none of
    // contoso's plays.
    let fab: Value = w
        .call(Some("fabrikam-admin"), "GET", "/api/audit", None)
        .await
        .json()
        .await
        .unwrap();
    let fab = fab["events"].as_array().unwrap();
    assert!(fab.iter().any(|e| e["action"] == "login"));
    assert!(
        !fab.iter()
            .any(|e| e["action"] == "play" || e["recording_id"].is_string())
    );
    for bad in [
        "/api/audit?action=nonsense",
        "/api/audit?limit=0",
        "/api/audit?recording_id=x",
        "/api/audit?surprise=1",
    ] {
        assert_eq!(
            w.call(Some("tenant-admin"), "GET", bad, None)
                .await
                .status(),
            400,
            "{bad}"
        );
    }

    let verdict: Value = w
        .call(Some("compliance-officer"), "GET", "/api/audit/verify", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert!(verdict["events"].as_u64().unwrap() >= 9);
    assert_eq!(
        verdict["head"]["seq"].as_u64().unwrap(),
        verdict["events"].as_u64().unwrap()
    );
}

/// Starts an export as `role`, waits for it, returns (start answer, file).
async fn export(w: &World, role: &str, columns: &[&str]) -> (Value, Vec<u8>) {
    let res = w
        .call(
            Some(role),
            "POST",
            "/api/exports",
            Some(json!({"query": {}, "columns": columns, "reason": "quarterly review"})),
        )
        .await;
    assert_eq!(res.status(), 202, "{role}");
    let started: Value = res.json().await.unwrap();
    let status_url = started["status_url"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        let s: Value = w
            .call(Some(role), "GET", &status_url, None)
            .await
            .json()
            .await
            .unwrap();
        if s["state"] != "running" {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "export still running: {s}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status["state"], "done", "{status}");
    let res = w
        .call(
            Some(role),
            "GET",
            status["file_url"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("spreadsheetml")
    );
    (started, res.bytes().await.unwrap().to_vec())
}

fn sheet(bytes: &[u8]) -> Vec<Vec<String>> {
    use calamine::{Reader, Xlsx};
    let mut wb = Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let range = wb.worksheet_range_at(0).unwrap().unwrap();
    range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_run_in_the_background_with_the_callers_columns_and_scope() {
    let w = world().await;
    let cols = ["recording-id", "direction", "caller-name", "callee-name"];
    // An admin gets every chosen column and both recordings.
    let (started, bytes) = export(&w, "tenant-admin", &cols).await;
    assert_eq!(started["omitted"], json!([]));
    let rows = sheet(&bytes);
    assert_eq!(rows.len(), 3, "header + 2 recordings: {rows:?}");
    assert_eq!(
        rows[0],
        vec!["Recording ID", "Direction", "Caller name", "Callee name"]
    );
    let mut ids: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![w.own.id.to_string(), w.foreign.id.to_string()];
    want.sort_unstable();
    assert_eq!(ids, want);
    assert!(rows.iter().any(|r| r.contains(&"Alice Example".to_owned())));

    // Roles without the `export` permission are refused; a DPO exports,
    // and whatever columns its profile may not see are omitted, never
    // written.
    for role in [
        "compliance-officer",
        "supervisor",
        "user",
        "platform-operator",
    ] {
        let res = w
            .call(
                Some(role),
                "POST",
                "/api/exports",
                Some(json!({"columns": cols})),
            )
            .await;
        assert_eq!(res.status(), 403, "{role}");
    }
    let (dpo, bytes) = export(&w, "dpo", &cols).await;
    let rows = sheet(&bytes);
    assert_eq!(
        rows[0].len() + dpo["omitted"].as_array().unwrap().len(),
        cols.len()
    );

    // Bad choices are refused before anything runs.
    for (body, code) in [
        (json!({"columns": []}), 400),
        (json!({"columns": ["no-such-column"]}), 400),
        (json!({"columns": ["direction", "direction"]}), 400),
        (json!({"columns": ["direction"], "surprise": 1}), 400),
    ] {
        let res = w
            .call(
                Some("tenant-admin"),
                "POST",
                "/api/exports",
                Some(body.clone()),
            )
            .await;
        assert_eq!(res.status(), code, "{body}");
    }

    // A job is visible only to the account that started it: anyone else,
    // in this tenant or another, gets 404.
    let status_url = started["status_url"].as_str().unwrap();
    let res = w.call(Some("dpo"), "GET", status_url, None).await;
    assert_eq!(res.status(), 404);
    let res = w
        .call(Some("fabrikam-admin"), "GET", status_url, None)
        .await;
    assert_eq!(res.status(), 404);

    // Every export is audited, with its reason.
    let exports: Vec<_> = w
        .app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::Export)
        .collect();
    assert_eq!(exports.len(), 2);
    assert!(
        exports
            .iter()
            .all(|e| e.reason.as_deref() == Some("quarterly review"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let w = world().await;
    let own = format!("/api/recordings/{}", w.own.id);
    for (role, path) in [
        (Some("tenant-admin"), own.as_str()),
        (None, own.as_str()),
        (Some("tenant-admin"), "/api/no-such-route"),
        (None, "/healthz"),
    ] {
        let res = w.call(role, "GET", path, None).await;
        let h = res.headers();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            (
                "content-security-policy",
                "default-src 'none'; frame-ancestors 'none'",
            ),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(
                h.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{path} as {role:?}: {name}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_and_the_real_search_fields() {
    let w = world().await;
    let res = w.call(None, "GET", "/api/openapi.json", None).await;
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let routes = [
        ("get", "/healthz"),
        ("get", "/livez"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("post", "/api/auth/login"),
        ("post", "/api/auth/first-sign-in"),
        ("post", "/api/auth/logout"),
        ("get", "/api/auth/me"),
        ("get", "/api/auth/providers"),
        ("get", "/api/auth/oidc/login"),
        ("get", "/api/auth/oidc/callback"),
        ("post", "/api/recordings/search"),
        ("post", "/api/recordings/count"),
        ("get", "/api/recordings/{id}"),
        ("get", "/api/recordings/{id}/transcript"),
        ("get", "/api/recordings/{id}/media"),
        ("get", "/api/recordings/{id}/download"),
        ("get", "/api/recordings/{id}/streams/{track}/media"),
        ("post", "/api/recordings/{id}/pause"),
        ("post", "/api/recordings/{id}/resume"),
        ("get", "/api/recordings/{id}/jobs"),
        ("get", "/api/audit"),
        ("get", "/api/audit/verify"),
        ("get", "/api/people"),
        ("post", "/api/exports"),
        ("get", "/api/exports/{id}"),
        ("get", "/api/exports/{id}/file"),
        ("post", "/api/recordings/{id}/access-requests"),
        ("get", "/api/access-requests"),
        ("post", "/api/access-requests/{id}/approve"),
        ("post", "/api/access-requests/{id}/deny"),
        ("get", "/api/settings"),
        ("put", "/api/settings"),
        ("get", "/api/security-profiles"),
        ("post", "/api/security-profiles"),
        ("put", "/api/security-profiles/{id}"),
        ("get", "/api/admin/recording-policy"),
        ("put", "/api/admin/recording-policy"),
        ("get", "/api/completeness"),
        ("get", "/api/completeness/export.xlsx"),
        ("post", "/api/completeness/runs"),
        ("put", "/api/completeness/threshold"),
        ("get", "/api/admin/alerts"),
        ("post", "/api/admin/alerts/{id}/ack"),
        ("get", "/api/admin/alert-channels"),
        ("post", "/api/admin/alert-channels"),
        ("delete", "/api/admin/alert-channels/{id}"),
        ("get", "/api/legal-holds"),
        ("post", "/api/legal-holds"),
        ("post", "/api/legal-holds/{id}/lift"),
        ("get", "/api/retention-policies"),
        ("post", "/api/retention-policies"),
        ("put", "/api/retention-policies/{id}"),
        ("delete", "/api/retention-policies/{id}"),
        ("post", "/api/retention/run"),
        ("get", "/api/retention/due"),
        ("get", "/api/governance-changes"),
        ("post", "/api/governance-changes/{id}/approve"),
        ("post", "/api/governance-changes/{id}/reject"),
        ("get", "/api/users"),
        ("post", "/api/users"),
        ("put", "/api/users/{id}"),
        ("post", "/api/users/{id}/reset-password"),
        ("post", "/api/users/{id}/reset-second-factor"),
        ("get", "/api/directory/users"),
        ("post", "/api/directory/sync"),
        ("delete", "/api/directory/users/{id}"),
        ("post", "/api/gdpr/find"),
        ("post", "/api/gdpr/access"),
        ("get", "/api/gdpr/access/{id}"),
        ("get", "/api/gdpr/access/{id}/file"),
        ("get", "/api/gdpr/rectification"),
        ("post", "/api/gdpr/erasures"),
        ("get", "/api/gdpr/erasures"),
        ("get", "/api/gdpr/erasures/{id}"),
        ("post", "/api/gdpr/erasures/{id}/execute"),
        ("get", "/api/gdpr/erasures/{id}/certificate"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in routes {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        routes.len(),
        "a documented route this test does not know"
    );
    // The documented search body is exactly what the store accepts.
    let schema = &doc["components"]["schemas"]["SearchRequest"]["properties"];
    let mut documented: Vec<String> = schema.as_object().unwrap().keys().cloned().collect();
    documented.sort();
    let real = serde_json::to_value(RecordingQuery::default()).unwrap();
    let mut real: Vec<String> = real.as_object().unwrap().keys().cloned().collect();
    real.sort();
    assert_eq!(documented, real);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// The schemathesis binary: `INSIGHTS_TEST_SCHEMATHESIS` (set by
/// scripts/test.sh), else the venv test.sh creates.
fn schemathesis() -> std::path::PathBuf {
    std::env::var_os("INSIGHTS_TEST_SCHEMATHESIS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz/.venv/bin/st")
        })
}

/// A schema-driven fuzz run (schemathesis, fixed seed) against the
/// running API as a tenant admin: no 5xx and no response outside the
/// documented schema, on every operation but logout (which would end
/// the fuzzer's own session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_driven_fuzzing_finds_no_server_error_and_no_schema_violation() {
    let w = world().await;
    let st = schemathesis();
    assert!(
        st.exists(),
        "{} is missing: scripts/test.sh installs schemathesis (tests/fuzz/requirements.txt)",
        st.display()
    );
    let cwd = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "run",
        &format!("{}/api/openapi.json", w.app.base),
        "-H",
        &format!("Authorization: Bearer {}", w.token("tenant-admin")),
        "--exclude-path",
        "/api/auth/logout",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        "25",
        "--seed",
        "20261122",
        "--request-timeout",
        "30",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let dir = cwd.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&st)
            .current_dir(dir)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in report
        .lines()
        .filter(|l| l.contains("generated") || l.contains("Tested:"))
    {
        eprintln!("schemathesis: {}", line.trim());
    }
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(report.contains("passed"), "{report}");
    // And every documented operation but logout was exercised.
    let doc: Value = w
        .call(None, "GET", "/api/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert!(
        report.contains(&format!("Tested: {}", operations - 1)),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_meeting_track_plays_on_its_own() {
    let w = world().await;
    let tenant = w.app.tenant.id;
    let alice = w.own.participants[0].directory_user_id.unwrap();
    let mut meeting = Recording::new(tenant, RecordingKind::Meeting, Direction::Internal, now());
    meeting.participants.push(party(
        ParticipantRole::Organizer,
        Some(alice),
        "Alice Example",
    ));
    meeting
        .participants
        .push(party(ParticipantRole::Attendee, None, "Erin Guest"));
    let mix: Vec<u8> = (0..90_000u32).map(|i| (i % 251) as u8).collect();
    let mut meeting = recording_with_media(&w.app, tenant, meeting, &mix).await;
    // Tracks: 0 the mix, 1 Alice's own track (stored), 2 Erin's (its
    // blob missing).
    let media = meeting.media.clone().unwrap();
    let track: Vec<u8> = (0..70_000u32).map(|i| (i % 241) as u8).collect();
    let wrapped = w
        .app
        .store
        .get_data_key(tenant, media.data_key_id)
        .await
        .unwrap();
    let key = w.app.keys.unwrap(&wrapped).await.unwrap();
    for (i, p) in [(0u16, None), (1, Some(0usize)), (2, Some(1))] {
        let s = MediaStream {
            id: StreamId::new(),
            participant_id: p.map(|k| meeting.participants[k].id),
            track: i32::from(i),
            media_type: "audio".into(),
            codec: "opus".into(),
            sample_rate: 48_000,
            start_ms: 0,
        };
        w.app
            .store
            .add_stream(tenant, meeting.id, &s)
            .await
            .unwrap();
        if i == 1 {
            let object = insights_core::blob::layout::envelope_object_id(meeting.id, i, s.id);
            let sealed =
                envelope::encrypt_to_vec(&key, &Header::new(tenant, object, key.id), &track)
                    .unwrap();
            let blobs = LocalBlobStore::new(w.app.dir.path().join("blobs"));
            let blob_key = insights_core::blob::layout::stream_blob_key(meeting.id, i, "audio/ogg");
            blobs
                .put(&media.container, &blob_key, &mut &sealed[..])
                .await
                .unwrap();
        }
        meeting.streams.push(s);
    }
    let path = |t: u16| format!("/api/recordings/{}/streams/{t}/media", meeting.id);
    // Alice (role user) took part: she hears the mix and her own track.
    let res = w.call(Some("user"), "GET", &path(0), None).await;
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap() == mix);
    let res = w
        .app
        .http
        .get(format!("{}{}", w.app.base, path(1)))
        .bearer_auth(w.token("user"))
        .header("range", "bytes=65530-65545")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert!(res.bytes().await.unwrap() == track[65_530..=65_545]);
    // A track whose blob is gone is a clear conflict; no such track is 404.
    let res = w.call(Some("supervisor"), "GET", &path(2), None).await;
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "media-missing");
    assert_eq!(
        w.call(Some("supervisor"), "GET", &path(7), None)
            .await
            .status(),
        404
    );
    // Another tenant and roles without `play` never get there.
    assert_eq!(
        w.call(Some("fabrikam-admin"), "GET", &path(1), None)
            .await
            .status(),
        404
    );
    assert_eq!(
        w.call(Some("dpo"), "GET", &path(1), None).await.status(),
        403
    );
    assert_eq!(
        w.call(Some("platform-operator"), "GET", &path(1), None)
            .await
            .status(),
        403
    );
    // Audited with the track.
    let tracks: Vec<_> = w
        .app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::Play && e.recording_id == Some(meeting.id))
        .map(|e| e.details["track"].as_u64())
        .collect();
    assert_eq!(tracks, vec![Some(0), Some(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_playback_needs_a_second_persons_approval() {
    let w = world().await;
    let contoso = w.app.tenant.id;
    let own = w.own.id;
    let media = format!("/api/recordings/{own}/media");
    let status = |r: &reqwest::Response| r.status().as_u16();
    let problem_code = |v: &Value| v["code"].as_str().unwrap_or_default().to_owned();

    // Off: nobody needs an approval and no request can be filed.
    let res = w
        .call(
            Some("supervisor"),
            "POST",
            &format!("/api/recordings/{own}/access-requests"),
            Some(json!({"reason": "QA sample 7"})),
        )
        .await;
    assert_eq!(status(&res), 409);

    let mut settings = w.app.store.get_tenant(contoso).await.unwrap().settings;
    settings.four_eyes_playback = true;
    w.app
        .store
        .update_tenant_settings(contoso, &settings)
        .await
        .unwrap();

    // A supervisor is stopped; other roles are not.
    let res = w.call(Some("supervisor"), "GET", &media, None).await;
    assert_eq!(status(&res), 403);
    assert_eq!(
        problem_code(&res.json().await.unwrap()),
        "approval-required"
    );
    let res = w
        .call(Some("compliance-officer"), "GET", &media, None)
        .await;
    assert_eq!(status(&res), 200);

    // Asking needs a reason.
    let ask_path = format!("/api/recordings/{own}/access-requests");
    let ask = |reason: &'static str| {
        w.call(
            Some("supervisor"),
            "POST",
            &ask_path,
            Some(json!({ "reason": reason })),
        )
    };
    assert_eq!(status(&ask("   ").await), 400);
    let res = ask("case 2026-114").await;
    assert_eq!(status(&res), 201);
    let request: Value = res.json().await.unwrap();
    let rid = request["id"].as_str().unwrap().to_owned();
    assert_eq!(request["status"], "pending");
    // Pending grants nothing.
    assert_eq!(
        status(&w.call(Some("supervisor"), "GET", &media, None).await),
        403
    );

    // Another tenant cannot see or decide it; nor can someone without
    // approve-access; the supervisor sees only their own requests.
    let approve = format!("/api/access-requests/{rid}/approve");
    assert_eq!(
        status(&w.call(Some("fabrikam-admin"), "POST", &approve, None).await),
        404
    );
    assert_eq!(
        status(&w.call(Some("supervisor"), "POST", &approve, None).await),
        403
    );
    assert_eq!(
        status(
            &w.call(
                Some("platform-operator"),
                "GET",
                "/api/access-requests",
                None
            )
            .await
        ),
        403
    );
    let listed: Value = w
        .call(
            Some("compliance-officer"),
            "GET",
            "/api/access-requests?status=pending",
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["id"], rid.as_str());
    assert_eq!(listed["items"][0]["reason"], "case 2026-114");
    assert_eq!(
        status(
            &w.call(
                Some("compliance-officer"),
                "GET",
                "/api/access-requests?status=bogus",
                None
            )
            .await
        ),
        400
    );

    // Nobody approves their own request.
    let res = w
        .call(
            Some("compliance-officer"),
            "POST",
            &format!("/api/recordings/{own}/access-requests"),
            Some(json!({"reason": "own"})),
        )
        .await;
    let own_request: Value = res.json().await.unwrap();
    let res = w
        .call(
            Some("compliance-officer"),
            "POST",
            &format!(
                "/api/access-requests/{}/approve",
                own_request["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status(&res), 403);
    assert_eq!(problem_code(&res.json().await.unwrap()), "own-request");

    // A bad validity is refused; a good approval is final.
    assert_eq!(
        status(
            &w.call(
                Some("compliance-officer"),
                "POST",
                &approve,
                Some(json!({"valid_minutes": 100000}))
            )
            .await
        ),
        400
    );
    let res = w
        .call(
            Some("compliance-officer"),
            "POST",
            &approve,
            Some(json!({"note": "ok for the case", "valid_minutes": 30})),
        )
        .await;
    assert_eq!(status(&res), 200);
    let decided: Value = res.json().await.unwrap();
    assert_eq!(decided["status"], "approved");
    assert!(decided["expires_at"].is_string());
    assert_eq!(
        status(&w.call(Some("tenant-admin"), "POST", &approve, None).await),
        409
    );

    // Now the supervisor plays this recording, and only this one.
    let res = w.call(Some("supervisor"), "GET", &media, None).await;
    assert_eq!(status(&res), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), w.media.as_slice());
    let foreign = format!("/api/recordings/{}/media", w.foreign.id);
    assert_eq!(
        status(&w.call(Some("supervisor"), "GET", &foreign, None).await),
        403
    );

    // A denied request grants nothing.
    let res = w
        .call(
            Some("supervisor"),
            "POST",
            &format!("/api/recordings/{}/access-requests", w.foreign.id),
            Some(json!({"reason": "curious"})),
        )
        .await;
    let denied_id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = w
        .call(
            Some("tenant-admin"),
            "POST",
            &format!("/api/access-requests/{denied_id}/deny"),
            Some(json!({"note": "no case"})),
        )
        .await;
    assert_eq!(status(&res), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "denied");
    assert_eq!(
        status(&w.call(Some("supervisor"), "GET", &foreign, None).await),
        403
    );

    // The trail: the request with its reason, the decisions, and the play
    // naming the approval it used.
    let events = w.app.audit().await;
    let supervisor = w
        .accounts
        .iter()
        .find(|(n, _)| *n == "supervisor")
        .unwrap()
        .1
        .to_string();
    assert!(events.iter().any(|e| e.action == AuditAction::AccessRequest
        && e.actor == supervisor
        && e.recording_id == Some(own)
        && e.reason.as_deref() == Some("case 2026-114")));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == AuditAction::AccessDecision)
            .count(),
        2
    );
    let play = events
        .iter()
        .rev()
        .find(|e| e.action == AuditAction::Play && e.actor == supervisor)
        .expect("the supervisor's play is audited");
    assert_eq!(play.details["approval"], rid.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_settings_and_security_profiles() {
    let w = world().await;
    let status = |r: &reqwest::Response| r.status().as_u16();

    // Settings: admins only, per tenant, every change audited.
    for role in [
        "compliance-officer",
        "supervisor",
        "user",
        "dpo",
        "platform-operator",
    ] {
        let res = w.call(Some(role), "GET", "/api/settings", None).await;
        assert_eq!(status(&res), 403, "{role}");
    }
    let settings: Value = w
        .call(Some("tenant-admin"), "GET", "/api/settings", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(settings["four_eyes_playback"], false);
    let mut changed = settings.clone();
    changed["four_eyes_playback"] = json!(true);
    changed["require_access_reason"] = json!(true);
    let res = w
        .call(
            Some("tenant-admin"),
            "PUT",
            "/api/settings",
            Some(changed.clone()),
        )
        .await;
    assert_eq!(status(&res), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), changed);
    let stored = w
        .app
        .store
        .get_tenant(w.app.tenant.id)
        .await
        .unwrap()
        .settings;
    assert!(stored.four_eyes_playback && stored.require_access_reason);
    assert!(!stored.cloud_ai_enabled && !stored.media_deletion_waiver);
    let theirs: Value = w
        .call(Some("fabrikam-admin"), "GET", "/api/settings", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["four_eyes_playback"], false, "tenants are separate");
    let mut unknown = changed.clone();
    unknown["debug"] = json!(true);
    assert_eq!(
        status(
            &w.call(Some("tenant-admin"), "PUT", "/api/settings", Some(unknown))
                .await
        ),
        400
    );
    let change = w
        .app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::SettingsChange)
        .collect::<Vec<_>>();
    assert_eq!(change.len(), 1, "one change, one event");
    assert_eq!(
        change[0].details["changed"],
        json!({"four_eyes_playback": true, "require_access_reason": true})
    );

    // Profiles: create, refuse invalid ones, replace, tenant-scoped.
    let body = json!({
        "name": "Desk supervisors",
        "role": "supervisor",
        "permissions": ["search", "search", "view-transcript"],
        "scope": {"type": "all"}
    });
    assert_eq!(
        status(
            &w.call(
                Some("compliance-officer"),
                "POST",
                "/api/security-profiles",
                Some(body.clone())
            )
            .await
        ),
        403
    );
    let res = w
        .call(
            Some("tenant-admin"),
            "POST",
            "/api/security-profiles",
            Some(body),
        )
        .await;
    assert_eq!(status(&res), 201);
    let profile: Value = res.json().await.unwrap();
    assert_eq!(profile["permissions"], json!(["search", "view-transcript"]));
    let pid = profile["id"].as_str().unwrap().to_owned();
    for bad in [
        json!({"name": "ops", "role": "platform-operator", "permissions": [], "scope": {"type": "nothing"}}),
        json!({"name": "x", "role": "supervisor", "permissions": ["fly"], "scope": {"type": "all"}}),
        json!({"name": "  ", "role": "supervisor", "permissions": [], "scope": {"type": "all"}}),
    ] {
        let res = w
            .call(
                Some("tenant-admin"),
                "POST",
                "/api/security-profiles",
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status(&res), 400, "{bad}");
    }
    let listed: Value = w
        .call(Some("tenant-admin"), "GET", "/api/security-profiles", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let theirs: Value = w
        .call(
            Some("fabrikam-admin"),
            "GET",
            "/api/security-profiles",
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs["items"].as_array().unwrap().is_empty());

    // An account on that profile gets exactly what it allows, and a
    // replacement takes effect on its next request.
    let (id, seed) = w
        .app
        .add_account(
            Some(&w.app.tenant),
            "desk@example.com",
            Role::Supervisor,
            None,
            Some(SecurityProfileId(pid.parse().unwrap())),
        )
        .await;
    assert_ne!(id, AccountId::new());
    let (token, _) = w
        .app
        .login_as(Some("contoso"), "desk@example.com", seed.as_deref())
        .await;
    let get = |path: String| {
        w.app
            .http
            .get(format!("{}{path}", w.app.base))
            .bearer_auth(token.clone())
            .header("x-access-reason", "test")
            .send()
    };
    let detail = format!("/api/recordings/{}", w.own.id);
    let transcript = format!("/api/recordings/{}/transcript", w.own.id);
    assert_eq!(get(detail.clone()).await.unwrap().status(), 200);
    // The tenant turned four-eyes on above: a supervisor's transcript
    // read needs an approval too (issue 13), not only playback.
    let res = get(transcript.clone()).await.unwrap();
    assert_eq!(res.status(), 403);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "approval-required");
    let narrower = json!({
        "name": "Desk supervisors",
        "role": "supervisor",
        "permissions": ["search"],
        "scope": {"type": "nothing"}
    });
    let path = format!("/api/security-profiles/{pid}");
    assert_eq!(
        status(
            &w.call(Some("fabrikam-admin"), "PUT", &path, Some(narrower.clone()))
                .await
        ),
        404,
        "another tenant's profile does not exist for them"
    );
    assert_eq!(
        status(
            &w.call(
                Some("tenant-admin"),
                "PUT",
                &format!("/api/security-profiles/{}", SecurityProfileId::new()),
                Some(narrower.clone())
            )
            .await
        ),
        404
    );
    assert_eq!(
        status(
            &w.call(Some("tenant-admin"), "PUT", &path, Some(narrower))
                .await
        ),
        200
    );
    assert_eq!(
        get(detail).await.unwrap().status(),
        404,
        "scope is now nothing"
    );
    assert_eq!(get(transcript).await.unwrap().status(), 403);
    let policy = w
        .app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::PolicyChange)
        .count();
    assert_eq!(policy, 2, "create and replace are audited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_manage_the_recording_policy_per_tenant_and_changes_are_audited() {
    let w = world().await;
    let path = "/api/admin/recording-policy";
    let status = |r: &reqwest::Response| r.status().as_u16();
    let body = json!({
        "mode": "include-only",
        "failure_mode": "best-effort",
        "rules": [
            {"list": "include", "kind": "group", "value": "Trading"},
            {"list": "never-record", "kind": "number-prefix", "value": "+49 30",
             "label": "doctor's line"},
            {"list": "never-record", "kind": "domain", "value": "@Works-Council.Example"},
        ],
    });
    // The role matrix: only the tenant admin reads or changes it.
    assert_eq!(status(&w.call(None, "GET", path, None).await), 401);
    for role in [
        "compliance-officer",
        "supervisor",
        "user",
        "dpo",
        "platform-operator",
    ] {
        assert_eq!(
            status(&w.call(Some(role), "GET", path, None).await),
            403,
            "{role}"
        );
        let res = w.call(Some(role), "PUT", path, Some(body.clone())).await;
        assert_eq!(status(&res), 403, "{role}");
    }
    // The defaults before anything is stored: record all, fail closed.
    let got: Value = w
        .call(Some("tenant-admin"), "GET", path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["mode"], "record-all");
    assert_eq!(got["failure_mode"], "required");
    assert_eq!(got["rules"], json!([]));

    let res = w
        .call(Some("tenant-admin"), "PUT", path, Some(body.clone()))
        .await;
    assert_eq!(status(&res), 200);
    let stored: Value = res.json().await.unwrap();
    assert_eq!(stored["mode"], "include-only");
    assert_eq!(stored["failure_mode"], "best-effort");
    let values: Vec<&str> = stored["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        ["Trading", "+4930", "works-council.example"],
        "normalised"
    );
    let policy = w
        .app
        .store
        .recording_policy(w.app.tenant.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(policy.failure_mode, FailureMode::BestEffort);
    assert_eq!(policy.rules.len(), 3);
    // Another tenant's admin sees its own (default) policy.
    let theirs: Value = w
        .call(Some("fabrikam-admin"), "GET", path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["mode"], "record-all", "tenants are separate");

    // Invalid rules and unknown fields are refused; nothing changes.
    for bad in [
        json!({"mode": "record-all", "failure_mode": "required",
               "rules": [{"list": "include", "kind": "domain", "value": "x.com"}]}),
        json!({"mode": "record-all", "failure_mode": "required",
               "rules": [{"list": "never-record", "kind": "number", "value": "12"}]}),
        json!({"mode": "sometimes", "failure_mode": "required", "rules": []}),
        json!({"mode": "record-all", "failure_mode": "required", "rules": [], "debug": 1}),
    ] {
        let res = w
            .call(Some("tenant-admin"), "PUT", path, Some(bad.clone()))
            .await;
        assert_eq!(status(&res), 400, "{bad}");
    }
    assert_eq!(
        w.app
            .store
            .recording_policy(w.app.tenant.id)
            .await
            .unwrap()
            .unwrap()
            .rules
            .len(),
        3
    );

    // Removing a rule keeps the others' ids; the audit names ids, never
    // values.
    let mut next = stored.clone();
    next["rules"].as_array_mut().unwrap().remove(1);
    next.as_object_mut().unwrap().remove("updated_at");
    next.as_object_mut().unwrap().remove("updated_by");
    let removed = stored["rules"][1]["id"].as_str().unwrap().to_owned();
    let res = w.call(Some("tenant-admin"), "PUT", path, Some(next)).await;
    assert_eq!(status(&res), 200);
    let after: Value = res.json().await.unwrap();
    assert_eq!(after["rules"][0]["id"], stored["rules"][0]["id"]);
    let changes: Vec<AuditEvent> = w
        .app
        .audit()
        .await
        .into_iter()
        .filter(|e| {
            e.action == AuditAction::PolicyChange && e.details.get("recording_policy").is_some()
        })
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(
        changes[1].details["recording_policy"]["removed"][0]["id"],
        removed
    );
    for e in &changes {
        let text = e.details.to_string();
        for value in ["Trading", "+4930", "works-council"] {
            assert!(!text.contains(value), "{value} in the audit: {text}");
        }
    }
}
