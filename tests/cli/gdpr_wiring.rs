//! Production wiring through `insights serve` (issue 13, §1):
//!
//! * every route family answers from real state (no `500` for a missing
//!   piece, no improvised GDPR context): the erasure certificate verifies
//!   with the installation key, bundles are kept sealed in the tenant's
//!   blob container (and erased with their recordings), and nothing of the GDPR tools lands in the temp folder;
//! * a call that sits in the spool while the blob store is down, erased
//!   through the API, is never stored: its spool copy is deleted at once
//!   (the erasure itself answers 503 until it can check the blob store,
//!   then resumes), no blob and no transcription job appear once the
//!   store is back, and the certificate states what was removed from the
//!   spool.

use std::path::Path;
use std::time::{Duration, Instant};

use insights_core::blob::layout;
use insights_core::domain::*;
use serde_json::{Value, json};

use crate::gdpr_access::{SUBJECT_PHONE, World};

/// `GET`/`POST` with the status checked: never a 500 (a route served
/// without its state answers 500 in actix).
fn expect(res: reqwest::blocking::Response, what: &str, ok: &[u16]) -> reqwest::blocking::Response {
    let status = res.status().as_u16();
    assert_ne!(status, 500, "{what}: 500");
    assert!(
        ok.contains(&status),
        "{what}: {status}, expected one of {ok:?}"
    );
    res
}

/// Writes the erasure's certificate to a file and runs `insights gdpr
/// verify-certificate` on it with the installation key (the default).
fn verify_certificate(w: &World, cert: &str) -> String {
    let file = w.cwd.path().join("certificate.json");
    std::fs::write(&file, cert).unwrap();
    let o = w.run(&["gdpr", "verify-certificate", file.to_str().unwrap()], "");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "verify-certificate refused it: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("certificate OK"), "{out}");
    assert!(
        !out.contains("integrity only"),
        "checked against the installation key: {out}"
    );
    out
}

fn files_named(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(needle) {
                out.push(name);
            }
            if e.path().is_dir() {
                out.extend(files_named(&e.path(), needle));
            }
        }
    }
    out
}

#[test]
fn serve_wires_every_route_family_with_real_state() {
    let w = World::start(Vec::new());
    let id = w.call("Hello, this is the agent speaking about your account.");
    let admin_seed = w.add_user("admin@contoso.com", "tenant-admin", None);
    let dpo_seed = w.add_user("dpo@contoso.com", "dpo", None);
    let admin = w.login("admin@contoso.com", admin_seed.as_deref());
    let dpo = w.login("dpo@contoso.com", dpo_seed.as_deref());
    // Stored, so the recording routes have something to show.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = w.get(&admin, &format!("/api/recordings/{id}"));
        let status = r.status();
        let body = r.text().unwrap();
        if status == 200 && body.contains("\"status\":\"stored\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the call was not stored: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Health, metrics, auth, OpenAPI.
    let h = w.http.get(format!("{}/healthz", w.base())).send().unwrap();
    expect(h, "healthz", &[200]);
    let m = w.http.get(format!("{}/metrics", w.base())).send().unwrap();
    expect(m, "metrics", &[200, 401, 403, 404]);
    expect(w.get(&admin, "/api/auth/me"), "auth", &[200]);
    expect(w.get(&admin, "/api/openapi.json"), "openapi", &[200]);
    // Recordings, four-eyes, administration, audit, directory, exports,
    // jobs, governance.
    expect(
        w.post(&admin, "/api/recordings/search", json!({})),
        "recordings",
        &[200],
    );
    expect(
        w.get(&admin, "/api/access-requests"),
        "access requests",
        &[200],
    );
    expect(w.get(&admin, "/api/settings"), "admin", &[200]);
    expect(w.get(&admin, "/api/audit"), "audit", &[200]);
    expect(w.get(&admin, "/api/directory/users"), "directory", &[200]);
    // Not configured here: a clear 409, not a fallback.
    expect(
        w.post(&admin, "/api/directory/sync", json!({})),
        "directory sync",
        &[409],
    );
    expect(
        w.post(
            &admin,
            "/api/exports",
            json!({"columns": ["recording-id"], "reason": "wiring check"}),
        ),
        "exports",
        &[202],
    );
    expect(
        w.get(&admin, &format!("/api/recordings/{id}/jobs")),
        "jobs",
        &[200],
    );
    expect(w.get(&admin, "/api/legal-holds"), "governance", &[200]);

    // GDPR: find, rectification, an access bundle, an erasure and its
    // certificate.
    let ids = json!({"phone": SUBJECT_PHONE});
    let found: Value = expect(
        w.post(&dpo, "/api/gdpr/find", json!({"identifiers": ids})),
        "gdpr find",
        &[200],
    )
    .json()
    .unwrap();
    assert!(
        found["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == json!(id)),
        "{found}"
    );
    expect(
        w.get(&dpo, "/api/gdpr/rectification"),
        "rectification",
        &[200],
    );
    let bundle: Value = expect(
        w.post(
            &dpo,
            "/api/gdpr/access",
            json!({"identifiers": ids, "reason": "wiring check"}),
        ),
        "gdpr access",
        &[202],
    )
    .json()
    .unwrap();
    let bundle_id = bundle["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = w
            .get(&dpo, &format!("/api/gdpr/access/{bundle_id}"))
            .json()
            .unwrap();
        if v["status"] == "done" {
            break;
        }
        assert_ne!(v["status"], "failed", "{v}");
        assert!(Instant::now() < deadline, "bundle not built");
        std::thread::sleep(Duration::from_millis(100));
    }
    // `bundles/<id>.zip.env` in the tenant's container.
    let sealed_bundle = format!("{bundle_id}.zip.env");
    let bundle_blobs = || {
        files_named(&w.data.join("blobs"), &bundle_id)
            .into_iter()
            .filter(|name| *name == sealed_bundle)
            .count()
    };
    assert_eq!(
        bundle_blobs(),
        1,
        "bundles are kept sealed in the tenant's blob container"
    );
    expect(
        w.get(&dpo, &format!("/api/gdpr/access/{bundle_id}/file")),
        "gdpr bundle download",
        &[200],
    );
    let erasure: Value = expect(
        w.post(
            &dpo,
            "/api/gdpr/erasures",
            json!({"identifiers": ids, "reason": "Art. 17 wiring check"}),
        ),
        "gdpr erasure",
        &[201],
    )
    .json()
    .unwrap();
    let eid = erasure["id"].as_str().unwrap().to_owned();
    expect(
        w.post(
            &dpo,
            &format!("/api/gdpr/erasures/{eid}/execute"),
            json!({}),
        ),
        "gdpr execute",
        &[200],
    );
    let cert = expect(
        w.get(&dpo, &format!("/api/gdpr/erasures/{eid}/certificate")),
        "gdpr certificate",
        &[200],
    )
    .text()
    .unwrap();
    // Signed with the installation key, not a per-process one.
    verify_certificate(&w, &cert);
    // The erasure deleted the bundle that held the recording.
    assert_eq!(
        bundle_blobs(),
        0,
        "the erasure reached the bundle in the blob store"
    );
    assert!(
        files_named(&w.cwd.path().join("tmp"), "insights-gdpr").is_empty(),
        "no improvised GDPR state in the temp folder"
    );

    // Web UI, Teams webhook, media ingest.
    let ui = w.http.get(format!("{}/login", w.base())).send().unwrap();
    expect(ui, "web ui", &[200]);
    let hook = w
        .http
        .post(format!("{}/api/calls", w.base()))
        .json(&json!({"value": []}))
        .send()
        .unwrap();
    expect(hook, "webhook", &[400, 401, 403]);
    let media = w
        .http
        .get(format!("{}/media/v1/calls/wiring", w.base()))
        .send()
        .unwrap();
    expect(media, "media ingest", &[400, 401, 403, 404]);
}

#[test]
fn erasure_while_blob_store_is_down_never_stores_the_spooled_media() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let az = tempfile::tempdir().unwrap();
    // A private Azurite this test may stop and start.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let az_dir = az.path().join("azurite");
    let azurite = |cmd: &str| {
        let st = std::process::Command::new(root.join("scripts/azurite.sh"))
            .args([cmd, az_dir.to_str().unwrap()])
            .env("AZURITE_PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "azurite.sh {cmd} failed");
    };
    azurite("start");
    let endpoint = format!("http://127.0.0.1:{port}/devstoreaccount1");
    let w = World::start(vec![
        ("INSIGHTS_BLOB__BACKEND".into(), "azure".into()),
        ("INSIGHTS_BLOB__AZURE__USE_EMULATOR".into(), "true".into()),
        ("INSIGHTS_BLOB__AZURE__ENDPOINT".into(), endpoint),
        ("INSIGHTS_SPOOL__BACKOFF_MAX_MS".into(), "2000".into()),
    ]);
    let settings = w.settings();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (platform, tenant) = rt.block_on(async {
        let p = insights::platform::Platform::open(&settings).await.unwrap();
        let t = p.store.tenant_by_name("contoso").await.unwrap();
        // The customer signed the media-deletion waiver.
        let s = TenantSettings {
            media_deletion_waiver: true,
            ..t.settings.clone()
        };
        p.store.update_tenant_settings(t.id, &s).await.unwrap();
        (p, t)
    });
    let dpo_seed = w.add_user("dpo@contoso.com", "dpo", None);
    let dpo = w.login("dpo@contoso.com", dpo_seed.as_deref());

    // The blob store goes down; a call ends and waits in the spool.
    azurite("stop");
    let id = w.call("This call must never reach the blob store.");
    let entry = w.data.join("spool").join(id.to_string());
    assert!(entry.exists(), "the call is in the spool");
    // Let the uploader fail at least once.
    std::thread::sleep(Duration::from_secs(3));
    let rec = rt
        .block_on(platform.store.get_recording(tenant.id, id))
        .unwrap();
    assert_ne!(rec.status, RecordingStatus::Stored);
    assert!(entry.exists(), "still in the spool while the store is down");

    // The DPO erases the subject (the other party) through the API while
    // the blob store is down, and again once it is back.
    let ids = json!({"phone": SUBJECT_PHONE});
    let req: Value = w
        .post(
            &dpo,
            "/api/gdpr/erasures",
            json!({"identifiers": ids, "reason": "Art. 17 request 9001"}),
        )
        .json()
        .unwrap();
    assert_eq!(req["report"]["recordings"][0]["id"], json!(id), "{req}");
    let eid = req["id"].as_str().unwrap().to_owned();
    let execute = || {
        w.post(
            &dpo,
            &format!("/api/gdpr/erasures/{eid}/execute"),
            json!({}),
        )
    };
    // The spool copy goes at once; the blobs cannot be checked while the
    // store is down: a clear 503, and executing again resumes.
    let res = execute();
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.json::<Value>().unwrap()["code"],
        "blob-store-unavailable"
    );
    assert!(!entry.exists(), "the spool copy is deleted first");
    azurite("start");
    let res = execute();
    let status = res.status();
    let done: Value = res.json().unwrap();
    if status != 200 {
        for e in std::fs::read_dir(w.cwd.path()).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("serve-") {
                let log = std::fs::read_to_string(e.path()).unwrap();
                let tail: Vec<_> = log.lines().rev().take(15).collect();
                eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
        }
        panic!("execute: {status} {done}");
    }
    assert_eq!(done["status"], "completed", "{done}");
    assert!(!entry.exists(), "the spool copy is deleted");

    // The store is back and the uploader keeps running: nothing appears.
    std::thread::sleep(Duration::from_secs(8));
    rt.block_on(async {
        let container = Tenant::container_name(tenant.id);
        let blobs = match platform
            .blobs
            .list(&container, &layout::recording_prefix(id))
            .await
        {
            Ok(k) => k,
            Err(insights_core::blob::BlobError::ContainerNotFound) => Vec::new(),
            Err(e) => panic!("listing blobs: {e}"),
        };
        assert!(
            blobs.is_empty(),
            "media of an erased recording stored: {blobs:?}"
        );
        let jobs = platform.store.list_jobs(tenant.id, id).await.unwrap();
        assert!(
            jobs.is_empty(),
            "a transcription job for an erased recording"
        );
        // Pseudonymised (the subject is the other party): the row stays,
        // with no media, for good.
        let rec = platform.store.get_recording(tenant.id, id).await.unwrap();
        assert!(rec.media.is_none());
        assert_eq!(rec.status, RecordingStatus::MediaDeleted);
        assert!(
            rec.participants
                .iter()
                .all(|p| p.phone_number.as_deref() != Some(SUBJECT_PHONE)),
            "the subject is pseudonymised"
        );
    });
    assert!(!entry.exists(), "the spool copy did not come back");

    // The certificate verifies with the installation key and states what
    // was removed from the spool.
    let cert = w
        .get(&dpo, &format!("/api/gdpr/erasures/{eid}/certificate"))
        .text()
        .unwrap();
    verify_certificate(&w, &cert);
    let signed: Value = serde_json::from_str(&cert).unwrap();
    let doc = if signed["certificate"].is_object() {
        &signed["certificate"]
    } else {
        &signed
    };
    let recs = doc["recordings"]
        .as_array()
        .expect("recordings in the certificate");
    let r = recs
        .iter()
        .find(|r| r["recording_id"] == json!(id))
        .unwrap();
    assert_eq!(r["spool_copy"]["entry_deleted"], true, "{r}");
    assert!(
        r["spool_copy"]["bytes_deleted"].as_u64().unwrap() > 0,
        "{r}"
    );
    drop(w);
    azurite("stop");
}
