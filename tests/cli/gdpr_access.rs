//! Access bundles through `insights serve` (issue 13, §2): media needs
//! `download-media` and every bundle a reason; the request and the
//! download are audited (recording ids, salted hashes of the identifiers,
//! reason, client address); the bundle is sealed in the tenant's blob
//! container (its job in the metadata store), streamed on download and
//! gone after its expiry.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use insights_core::domain::*;
use serde_json::{Value, json};

use crate::e2e_call::{add_tenant, simulate, speak};
use crate::{Server, insights, serve_with_env};

/// The other party of the simulated calls: the data subject.
pub(crate) const SUBJECT_PHONE: &str = "+14255550142";

/// A data dir with tenant `contoso`, and `insights serve` on it.
pub(crate) struct World {
    pub cwd: tempfile::TempDir,
    pub data: PathBuf,
    pub env: Vec<(String, String)>,
    pub server: Option<Server>,
    pub http: reqwest::blocking::Client,
}

impl World {
    /// Tenant `contoso` and `insights serve` with `env` (plus the
    /// simulator's key trusted, which the simulated calls need).
    pub fn start(mut env: Vec<(String, String)>) -> World {
        let cwd = tempfile::tempdir().unwrap();
        let data = cwd.path().join("data");
        env.push((
            "INSIGHTS_GATEWAY__TRUST_SIMULATOR_KEY".into(),
            "true".into(),
        ));
        add_tenant(cwd.path(), data.to_str().unwrap(), &env, "contoso");
        let mut w = World {
            cwd,
            data,
            env,
            server: None,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .unwrap(),
        };
        w.restart();
        w
    }

    /// (Re)starts `insights serve`.
    pub fn restart(&mut self) {
        self.server = None;
        let log = self.cwd.path().join("serve.log");
        // Appends: the log of every run stays.
        let tmp = self.cwd.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut env = self.env.clone();
        env.push(("TMPDIR".into(), tmp.to_str().unwrap().into()));
        let log_file = self.cwd.path().join(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        self.server = Some(serve_with_env(self.cwd.path(), &self.data, &env, &log_file));
        let _ = log;
    }

    pub fn base(&self) -> &str {
        &self.server.as_ref().unwrap().base
    }

    /// The platform's settings, as the binary reads them.
    pub fn settings(&self) -> insights_core::config::Settings {
        let mut s = insights_core::config::Settings::load(
            None,
            &insights_core::config::Overrides {
                data_dir: Some(self.data.clone()),
                listen: None,
            },
        )
        .unwrap();
        for (k, v) in &self.env {
            match k.as_str() {
                "INSIGHTS_BLOB__BACKEND" => {
                    s.blob.backend = insights_core::config::BlobBackend::Azure;
                }
                "INSIGHTS_BLOB__AZURE__USE_EMULATOR" => s.blob.azure.use_emulator = true,
                "INSIGHTS_BLOB__AZURE__ENDPOINT" => s.blob.azure.endpoint = Some(v.clone()),
                _ => {}
            }
        }
        s
    }

    /// `insights ARGS --data-dir D` with the world's environment.
    pub fn run(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut full: Vec<&str> = args.to_vec();
        full.extend_from_slice(&["--data-dir", self.data.to_str().unwrap()]);
        let mut child = insights(self.cwd.path(), &full)
            .envs(self.env.iter().cloned())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    /// Adds an account through `insights admin user add` (initial
    /// password on stdin). Returns no seed: the user enrols TOTP at the
    /// first sign-in ([`Self::login`]).
    pub fn add_user(&self, email: &str, role: &str, profile: Option<&str>) -> Option<String> {
        let mut extra = Vec::new();
        if let Some(p) = profile {
            extra.extend_from_slice(&["--security-profile", p]);
        }
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        crate::accounts::add_user(
            self.cwd.path(),
            &self.data,
            &env,
            Some("contoso"),
            email,
            role,
            &extra,
        );
        None
    }

    /// The account's first sign-in (TOTP enrolment when its permissions
    /// need it, its own password); returns the API token.
    pub fn login(&self, email: &str, _seed: Option<&str>) -> String {
        crate::accounts::first_sign_in(self.base(), Some("contoso"), email).token
    }

    pub fn get(&self, token: &str, path: &str) -> reqwest::blocking::Response {
        self.http
            .get(format!("{}{path}", self.base()))
            .bearer_auth(token)
            .send()
            .unwrap()
    }

    pub fn post(&self, token: &str, path: &str, body: Value) -> reqwest::blocking::Response {
        self.http
            .post(format!("{}{path}", self.base()))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap()
    }

    /// A simulated two-party call: the recorded user, and the subject
    /// (`SUBJECT_PHONE`) on the phone.
    pub fn call(&self, seconds_of_speech: &str) -> RecordingId {
        let a = speak(self.cwd.path(), "agent", seconds_of_speech, "en-us");
        let b = speak(
            self.cwd.path(),
            "subject",
            "Yes, that is right, thank you.",
            "en-gb",
        );
        simulate(
            self.cwd.path(),
            &self.env,
            &[
                "simulate-call",
                "--gateway",
                self.base(),
                "--tenant",
                "contoso",
                "--speed",
                "0",
                "--data-dir",
                self.data.to_str().unwrap(),
                "--participant",
                &format!("Agent Example:agent@contoso.com:{}", a.display()),
                "--participant",
                &format!("Kim Subject:{SUBJECT_PHONE}:{}", b.display()),
            ],
        )
    }

    /// A security profile of role `dpo` with `permissions` (set up in the
    /// store directly: the test is about the GDPR routes, not profiles).
    pub fn dpo_profile(&self, permissions: &[Permission]) -> SecurityProfileId {
        let settings = self.settings();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let p = insights::platform::Platform::open(&settings).await.unwrap();
            let t = p.store.tenant_by_name("contoso").await.unwrap();
            let profile = SecurityProfile {
                id: SecurityProfileId::new(),
                tenant_id: t.id,
                name: "DPO with media".into(),
                role: Role::Dpo,
                permissions: permissions.to_vec(),
                scope: VisibilityScope::All,
            };
            p.store
                .upsert_security_profile(t.id, &profile)
                .await
                .unwrap();
            profile.id
        })
    }
}

/// Waits until the uploader stored `id` (local blob backend).
fn wait_stored(w: &World, id: RecordingId) {
    let settings = w.settings();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = insights::platform::Platform::open(&settings).await.unwrap();
        let t = p.store.tenant_by_name("contoso").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = p.store.get_recording(t.id, id).await.unwrap();
            if r.status == RecordingStatus::Stored {
                return;
            }
            assert!(Instant::now() < deadline, "not stored: {:?}", r.status);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// Waits for bundle `id` to finish.
fn wait_bundle(w: &World, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = w
            .get(token, &format!("/api/gdpr/access/{id}"))
            .json()
            .unwrap();
        if v["status"] != "running" {
            return v;
        }
        assert!(Instant::now() < deadline, "bundle not finished: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn audit_events(w: &World) -> Vec<AuditEvent> {
    let settings = w.settings();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = insights::platform::Platform::open(&settings).await.unwrap();
        let t = p.store.tenant_by_name("contoso").await.unwrap();
        p.store
            .list_audit(
                t.id,
                &AuditQuery {
                    action: Some(AuditAction::GdprAccess),
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap()
    })
}

#[test]
fn access_bundle_with_media_needs_permission_and_reason_is_sealed_audited_streamed_and_expires() {
    let mut w = World::start(vec![(
        "INSIGHTS_GDPR__BUNDLE_EXPIRY_DAYS".into(),
        "1".into(),
    )]);
    let id = w.call("Good morning, I am calling about your contract renewal.");
    wait_stored(&w, id);

    // A DPO of the default role: no download-media.
    let plain_seed = w.add_user("dpo@contoso.com", "dpo", None);
    let plain = w.login("dpo@contoso.com", plain_seed.as_deref());
    let ids = json!({"phone": SUBJECT_PHONE});
    let res = w.post(
        &plain,
        "/api/gdpr/access",
        json!({"identifiers": ids, "include_media": true, "reason": "Art. 15 request 77"}),
    );
    assert_eq!(res.status(), 403, "media without download-media");
    let v: Value = res.json().unwrap();
    assert_eq!(v["code"], "permission-denied");
    // No reason: refused, with or without media.
    let res = w.post(&plain, "/api/gdpr/access", json!({"identifiers": ids}));
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().unwrap()["code"], "reason-required");
    let res = w.post(
        &plain,
        "/api/gdpr/access",
        json!({"identifiers": ids, "reason": "   "}),
    );
    assert_eq!(res.status(), 400);
    assert!(
        audit_events(&w).is_empty(),
        "nothing built, nothing audited"
    );

    // A DPO whose profile adds download-media.
    let profile = w.dpo_profile(&[
        Permission::Search,
        Permission::ViewTranscript,
        Permission::GdprActions,
        Permission::DownloadMedia,
    ]);
    let media_seed = w.add_user("dpo2@contoso.com", "dpo", Some(&profile.to_string()));
    let media_dpo = w.login("dpo2@contoso.com", media_seed.as_deref());
    let res = w.post(
        &media_dpo,
        "/api/gdpr/access",
        json!({"identifiers": ids, "include_media": true, "reason": "Art. 15 request 78"}),
    );
    assert_eq!(res.status(), 202);
    let started: Value = res.json().unwrap();
    let bundle = started["id"].as_str().unwrap().to_owned();
    let done = wait_bundle(&w, &media_dpo, &bundle);
    assert_eq!(done["status"], "done", "{done}");

    // Sealed in the tenant's blob container (the local blob store under
    // the data directory here), nothing in a bundle folder or the temp
    // folder.
    assert!(
        !w.data.join("gdpr").join("bundles").exists(),
        "no local bundle folder"
    );
    let on_disk: Vec<_> = files_under(&w.data.join("blobs"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/bundles/"))
        .collect();
    assert_eq!(on_disk.len(), 1, "the sealed bundle: {on_disk:?}");
    assert!(
        on_disk[0].ends_with(format!("bundles/{bundle}.zip.env")),
        "{on_disk:?}"
    );
    for f in &on_disk {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.windows(4).any(|x| x == b"PK\x03\x04"),
            "a clear zip entry on disk: {}",
            f.display()
        );
        assert!(
            !bytes.windows(4).any(|x| x == b"OggS"),
            "clear media on disk"
        );
        assert!(
            !bytes
                .windows(SUBJECT_PHONE.len())
                .any(|x| x == SUBJECT_PHONE.as_bytes()),
            "the subject's number on disk"
        );
    }
    assert!(
        files_under(&w.cwd.path().join("tmp"))
            .iter()
            .all(|p| !p.to_string_lossy().contains("insights-gdpr")),
        "nothing of the GDPR tools in the temp folder"
    );

    // Someone else (the other DPO) cannot see or take it.
    assert_eq!(
        w.get(&plain, &format!("/api/gdpr/access/{bundle}/file"))
            .status(),
        404
    );
    // Download: streamed (chunked), a zip with the media.
    let res = w.get(&media_dpo, &format!("/api/gdpr/access/{bundle}/file"));
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("content-length").is_none(),
        "streamed, not buffered: {:?}",
        res.headers()
    );
    let zip_bytes = res.bytes().unwrap().to_vec();
    assert!(zip_bytes.starts_with(b"PK\x03\x04"), "a zip");
    let has = |name: &str| zip_bytes.windows(name.len()).any(|x| x == name.as_bytes());
    // The central directory names every file in clear.
    assert!(
        has(&format!("media/{id}-subject-channel.ogg")),
        "the subject's media is in the bundle"
    );
    assert!(has("manifest.json") && has("recordings.json"));

    // Audited: the request (reason, client, recording ids, salted hashes of
    // the identifiers, never the identifiers), each recording, the download.
    let events = audit_events(&w);
    let build = events
        .iter()
        .find(|e| e.details["step"] == "build")
        .expect("the build is audited");
    assert_eq!(build.reason.as_deref(), Some("Art. 15 request 78"));
    assert_eq!(build.source.as_deref(), Some("127.0.0.1"));
    assert_eq!(build.details["recording_ids"], json!([id]));
    let hashes = build.details["identifiers"].as_array().unwrap();
    assert_eq!(hashes.len(), 1);
    assert_eq!(hashes[0]["field"], "phone");
    assert_eq!(hashes[0]["sha256"].as_str().unwrap().len(), 64);
    assert!(build.details["identifiers_salt"].is_string());
    let included: Vec<_> = events
        .iter()
        .filter(|e| e.details["step"] == "included")
        .collect();
    assert_eq!(included.len(), 1);
    assert_eq!(included[0].recording_id, Some(id));
    let download = events
        .iter()
        .find(|e| e.details["step"] == "download")
        .expect("the download is audited");
    assert_eq!(download.target.as_deref(), Some(bundle.as_str()));
    assert_eq!(download.source.as_deref(), Some("127.0.0.1"));
    assert_eq!(download.details["recording_ids"], json!([id]));
    for e in &events {
        let text = serde_json::to_string(e).unwrap();
        assert!(
            !text.contains(SUBJECT_PHONE),
            "an identifier in the audit trail: {text}"
        );
        assert!(
            !text.contains("4255550142"),
            "an identifier in the audit trail: {text}"
        );
    }

    // Kept across a restart, until it expires.
    w.restart();
    assert_eq!(
        w.get(&media_dpo, &format!("/api/gdpr/access/{bundle}"))
            .json::<Value>()
            .unwrap()["status"],
        "done"
    );
    // Expiry: a day later (moved back in time in its job's row).
    let (created, expires) = bundle_times(&w.data, &bundle);
    assert_eq!(
        expires - created,
        chrono::Duration::days(1),
        "bundle_expiry_days"
    );
    expire_bundle(&w.data, &bundle);
    assert_eq!(
        w.get(&media_dpo, &format!("/api/gdpr/access/{bundle}/file"))
            .status(),
        404,
        "expired"
    );
    assert!(
        files_under(&w.data.join("blobs"))
            .iter()
            .all(|p| !p.to_string_lossy().contains("/bundles/")),
        "an expired bundle is deleted"
    );
}

/// A bundle job's (created_at, expires_at), from the SQLite file.
fn bundle_times(
    data: &Path,
    bundle: &str,
) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    use sqlx::{Connection, Row};
    let id: uuid::Uuid = bundle.parse().unwrap();
    let url = format!("sqlite://{}", data.join("insights.db").display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let row = sqlx::query("SELECT created_at, expires_at FROM file_jobs WHERE id = ?")
            .bind(id)
            .fetch_one(&mut c)
            .await
            .unwrap();
        let t =
            |col: &str| chrono::DateTime::from_timestamp_micros(row.get::<i64, _>(col)).unwrap();
        (t("created_at"), t("expires_at"))
    })
}

/// Moves a bundle job's expiry into the past (SQLite).
fn expire_bundle(data: &Path, bundle: &str) {
    use sqlx::Connection;
    let id: uuid::Uuid = bundle.parse().unwrap();
    let url = format!("sqlite://{}", data.join("insights.db").display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let past = (chrono::Utc::now() - chrono::Duration::seconds(1)).timestamp_micros();
        let n = sqlx::query("UPDATE file_jobs SET expires_at = ? WHERE id = ?")
            .bind(past)
            .bind(id)
            .execute(&mut c)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 1);
    });
}

/// Pearson correlation of two speech envelopes (RMS per 20 ms).
fn envelope_correlation(a: &[i16], b: &[i16]) -> f64 {
    let env = |s: &[i16]| -> Vec<f64> {
        s.chunks(320)
            .map(|c| (c.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
            .collect()
    };
    let (a, b) = (env(a), env(b));
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let ma = a.iter().sum::<f64>() / n as f64;
    let mb = b.iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma).powi(2);
        sbb += (b[i] - mb).powi(2);
    }
    sab / (saa.sqrt() * sbb.sqrt())
}

#[test]
fn masking_the_other_parties_keeps_only_the_subjects_channel_of_a_call() {
    let w = World::start(Vec::new());
    let agent_text = "Good morning, this is the agent. I am calling about your contract renewal \
        and the new prices that apply from next month, and I would like to go through them.";
    let id = w.call(agent_text);
    wait_stored(&w, id);
    let profile = w.dpo_profile(&[Permission::GdprActions, Permission::DownloadMedia]);
    let seed = w.add_user("dpo@contoso.com", "dpo", Some(&profile.to_string()));
    let dpo = w.login("dpo@contoso.com", seed.as_deref());
    let bundle = |mask: bool| -> zip::ZipArchive<std::io::Cursor<Vec<u8>>> {
        let res = w.post(
            &dpo,
            "/api/gdpr/access",
            json!({"identifiers": {"phone": SUBJECT_PHONE}, "include_media": true,
                   "mask_others": mask, "reason": "Art. 15 request 79"}),
        );
        assert_eq!(res.status(), 202);
        let id = res.json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(wait_bundle(&w, &dpo, &id)["status"], "done");
        let bytes = w
            .get(&dpo, &format!("/api/gdpr/access/{id}/file"))
            .bytes()
            .unwrap()
            .to_vec();
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap()
    };
    let read = |z: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str| -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut z.by_name(name).unwrap(), &mut out).unwrap();
        out
    };

    // Unmasked: the whole stereo call.
    let mut whole = bundle(false);
    let stereo = read(&mut whole, &format!("media/{id}.ogg"));
    let stereo = recorder::decode_ogg_opus(std::io::Cursor::new(stereo), 16_000).unwrap();
    assert_eq!(stereo.channels.len(), 2);

    // Masked (the default): only the subject's side, as mono.
    let mut masked = bundle(true);
    assert!(
        masked.by_name(&format!("media/{id}.ogg")).is_err(),
        "the stereo call is not in a masked bundle"
    );
    let mono = read(&mut masked, &format!("media/{id}-subject-channel.ogg"));
    let mono = recorder::decode_ogg_opus(std::io::Cursor::new(mono), 16_000).unwrap();
    assert_eq!(mono.channels.len(), 1, "one channel");
    let subject = &mono.channels[0];
    let (agent_side, subject_side) = (&stereo.channels[0], &stereo.channels[1]);
    let same = envelope_correlation(subject, subject_side);
    let other = envelope_correlation(subject, agent_side);
    assert!(same > 0.9, "the subject's channel: {same}");
    assert!(other < 0.3, "not the agent's voice: {other}");
    let manifest: Value = serde_json::from_slice(&read(&mut masked, "manifest.json")).unwrap();
    assert_eq!(manifest["masked_others"], true);
}
