//! Leaving the local key file (issue 14 §1), through the real binary on
//! SQLite and local blobs: an installation that recorded with the
//! default `local-file` provider runs `insights keys migrate --to
//! database` (idempotent), restarts with `provider = "database"` and the
//! root key in an environment variable, and plays its recordings; a
//! rotation there keeps them playable and the officer can still sign in
//! with TOTP (sealed secrets are rewrapped too). `insights keys ensure`
//! never makes a KEK for a tenant that has data without being told.

use std::path::Path;
use std::time::{Duration, Instant};

use insights_core::domain::RecordingId;
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;

use crate::accounts;
use crate::e2e_call::{add_tenant, simulate, speak};
use crate::{Server, insights, serve_with_env};

const ROOT_VAR: &str = "INSIGHTS_TEST_ROOT_KEY";

fn run(cwd: &Path, env: &[(String, String)], args: &[&str]) -> (bool, String, String) {
    let out = insights(cwd, args)
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn play(server: &Server, token: &str, id: RecordingId) -> Vec<u8> {
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = http
            .get(format!("{}/api/recordings/{id}/media", server.base))
            .bearer_auth(token)
            .header("x-access-reason", "key provider test")
            .send()
            .unwrap();
        let status = r.status();
        let body = r.bytes().unwrap().to_vec();
        if status.is_success() {
            assert!(body.starts_with(b"OggS"));
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{id} not playable: {status} {}",
            String::from_utf8_lossy(&body)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn migrate_local_file_installation_to_database() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = cwd.join("data");
    let d = data.to_str().unwrap().to_owned();
    add_tenant(cwd, &d, &[], "contoso");

    // Recorded with the embedded default.
    let server = serve_with_env(cwd, &data, &[], &cwd.join("local.log"));
    let mut officer = accounts::sign_in_new_user(
        cwd,
        &data,
        &server.base,
        Some("contoso"),
        "officer@contoso.com",
        "compliance-officer",
    );
    let a = speak(
        cwd,
        "a",
        "Good morning, about the settlement figures.",
        "en-us",
    );
    let b = speak(cwd, "b", "Confirmed, thank you.", "en-gb");
    let call = |server: &Server| {
        simulate(
            cwd,
            &[],
            &[
                "simulate-call",
                "--gateway",
                &server.base,
                "--tenant",
                "contoso",
                "--speed",
                "0",
                "--data-dir",
                &d,
                "--participant",
                &format!("Agent Example:agent@contoso.com:{}", a.display()),
                "--participant",
                &format!("Other Party:+14255550126:{}", b.display()),
            ],
        )
    };
    let r1 = call(&server);
    let r1_bytes = play(&server, &officer.token, r1);
    drop(server);

    // The root key in an environment variable; the move twice.
    let root_hex = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let env: Vec<(String, String)> = vec![
        ("INSIGHTS_KEYS__ROOT_KEY_ENV".into(), ROOT_VAR.into()),
        (ROOT_VAR.into(), root_hex.clone()),
    ];
    // Without the variable: a clear error, nothing moved.
    let (ok, _, err) = run(
        cwd,
        &env[..1],
        &["keys", "migrate", "--to", "database", "--data-dir", &d],
    );
    assert!(!ok);
    assert!(err.contains(ROOT_VAR) && err.contains("not set"), "{err}");
    let (ok, out, err) = run(
        cwd,
        &env,
        &["keys", "migrate", "--to", "database", "--data-dir", &d],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("1 key-encryption key(s) moved"), "{out}");
    let (ok, out, _) = run(
        cwd,
        &env,
        &["keys", "migrate", "--to", "database", "--data-dir", &d],
    );
    assert!(
        ok && out.contains("0 key-encryption key(s) moved to the database, 1 already there"),
        "{out}"
    );

    // Restarted on the database provider: the old recording plays, a new
    // one is recorded.
    let mut db_env = env.clone();
    db_env.push(("INSIGHTS_KEYS__PROVIDER".into(), "database".into()));
    let server = serve_with_env(cwd, &data, &db_env, &cwd.join("db.log"));
    assert_eq!(play(&server, &officer.token, r1), r1_bytes);
    // simulate-call opens the platform too: it needs the provider.
    let r2 = simulate(
        cwd,
        &db_env,
        &[
            "simulate-call",
            "--gateway",
            &server.base,
            "--tenant",
            "contoso",
            "--speed",
            "0",
            "--data-dir",
            &d,
            "--participant",
            &format!("Agent Example:agent@contoso.com:{}", a.display()),
            "--participant",
            &format!("Other Party:+14255550126:{}", b.display()),
        ],
    );
    let r2_bytes = play(&server, &officer.token, r2);

    // Rotation on SQLite: both play, and TOTP sign-in still works.
    let (ok, out, err) = run(
        cwd,
        &db_env,
        &["keys", "rotate", "--tenant", "contoso", "--data-dir", &d],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("2 data keys rewrapped"), "{out}");
    assert_eq!(play(&server, &officer.token, r1), r1_bytes);
    assert_eq!(play(&server, &officer.token, r2), r2_bytes);
    let again = accounts::sign_in(&server.base, &mut officer, false);
    assert_eq!(play(&server, &again.token, r2), r2_bytes);
    drop(server);

    // `keys ensure`: a tenant with a KEK is left alone; a tenant that has
    // data but lost its KEK gets none unless the operator says so.
    let (ok, out, _) = run(
        cwd,
        &db_env,
        &["keys", "ensure", "--tenant", "contoso", "--data-dir", &d],
    );
    assert!(ok && out.contains("has its key-encryption key"), "{out}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::connect(&crate::content_access::sqlite_url(&data), 1)
            .await
            .unwrap();
        let t = store.tenant_by_name("contoso").await.unwrap().id;
        assert_eq!(store.delete_keks_before(t, u32::MAX).await.unwrap(), 1);
    });
    let (ok, _, err) = run(
        cwd,
        &db_env,
        &["keys", "ensure", "--tenant", "contoso", "--data-dir", &d],
    );
    assert!(!ok);
    assert!(err.contains("has data but no key-encryption key"), "{err}");
    let (ok, out, err) = run(
        cwd,
        &db_env,
        &[
            "keys",
            "ensure",
            "--tenant",
            "contoso",
            "--accept-unreadable-data",
            "--data-dir",
            &d,
        ],
    );
    assert!(ok && out.contains("created"), "{out}{err}");
}

/// The wrapped data keys of the installation's SQLite store: `(tenant,
/// key id, kek id)`.
/// Starts an Excel export and waits until it is done; its id.
fn start_export(server: &Server, token: &str) -> String {
    let http = reqwest::blocking::Client::new();
    let res = http
        .post(format!("{}/api/exports", server.base))
        .bearer_auth(token)
        .json(&serde_json::json!({"columns": ["recording-id", "direction"], "reason": "rotation check"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().unwrap_or_default());
    let started: serde_json::Value = res.json().unwrap();
    let id = started["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: serde_json::Value = http
            .get(format!("{}/api/exports/{id}", server.base))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if v["state"] != "running" {
            assert_eq!(v["state"], "done", "{v}");
            return id;
        }
        assert!(Instant::now() < deadline, "export still running: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The export's file, downloaded.
fn export_file(server: &Server, token: &str, id: &str) -> Vec<u8> {
    let res = reqwest::blocking::Client::new()
        .get(format!("{}/api/exports/{id}/file", server.base))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "export {id}");
    let bytes = res.bytes().unwrap().to_vec();
    assert!(bytes.starts_with(b"PK"), "not an xlsx");
    bytes
}

fn stored_keys(data: &Path) -> Vec<(String, String, String)> {
    use sqlx::{Connection, Row};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", data.join("insights.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT tenant_id, id, kek_id FROM data_keys ORDER BY created_at")
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let t: uuid::Uuid = r.get("tenant_id");
                let k: uuid::Uuid = r.get("id");
                (t.to_string(), k.to_string(), r.get::<String, _>("kek_id"))
            })
            .collect()
    })
}

/// The KEK ids in the local key file of tenant `tenant` (current first).
fn local_kek_ids(data: &Path, tenant: &str) -> Vec<String> {
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("keys/kek.json")).unwrap()).unwrap();
    let kek = &file["keks"][tenant];
    let mut ids = vec![kek["id"].as_str().unwrap().to_owned()];
    for p in kek["previous"].as_array().into_iter().flatten() {
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    ids
}

fn call_args(base: &str, d: &str, a: &Path, b: &Path) -> Vec<String> {
    [
        "simulate-call",
        "--gateway",
        base,
        "--tenant",
        "contoso",
        "--speed",
        "0",
        "--data-dir",
        d,
        "--participant",
        &format!("Agent Example:agent@contoso.com:{}", a.display()),
        "--participant",
        &format!("Other Party:+14255550126:{}", b.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn record(cwd: &Path, env: &[(String, String)], args: &[String]) -> RecordingId {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    simulate(cwd, env, &args)
}

/// Issue 14, through the binary: `insights keys rotate` on the embedded
/// default (local-file) while `insights serve` runs: a new KEK version in
/// the key file, every data key and the officer's TOTP seed rewrapped,
/// the old version removed; the running node follows (plays, records,
/// signs in). Then `insights keys migrate --to azure-key-vault` (against
/// the Key Vault stand-in; idempotent) puts every data key and sealed
/// secret under the tenant's vault key; restarted on the vault provider
/// everything plays and the officer signs in; `insights keys rotate`
/// there makes a new vault key version (version list paged through
/// `nextLink`), rewraps, and disables the old version with `PATCH`.
#[test]
fn local_file_rotates_then_moves_to_the_vault_and_rotates_there() {
    let kv = insights_tests::key_vault::KeyVaultStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = cwd.join("data");
    let d = data.to_str().unwrap().to_owned();
    add_tenant(cwd, &d, &[], "contoso");
    let tenant = crate::key_vault::tenant_id(cwd, &d, &[], "contoso");
    let t = tenant.to_string();

    let server = serve_with_env(cwd, &data, &[], &cwd.join("local.log"));
    let mut officer = accounts::sign_in_new_user(
        cwd,
        &data,
        &server.base,
        Some("contoso"),
        "officer@contoso.com",
        "compliance-officer",
    );
    let a = speak(cwd, "a", "Good morning, about the rotation.", "en-us");
    let b = speak(cwd, "b", "Confirmed, thank you.", "en-gb");
    let r1 = record(cwd, &[], &call_args(&server.base, &d, &a, &b));
    let r1_bytes = play(&server, &officer.token, r1);
    let v1 = local_kek_ids(&data, &t);
    assert_eq!(v1.len(), 1);
    // An export kept for download: its file's key (only in the job row)
    // must follow every rotation and the move, or the file is lost.
    let mut admin = accounts::sign_in_new_user(
        cwd,
        &data,
        &server.base,
        Some("contoso"),
        "admin@contoso.com",
        "tenant-admin",
    );
    let export = start_export(&server, &admin.token);
    let export_bytes = export_file(&server, &admin.token, &export);

    // Local-file rotation while serve runs.
    let (ok, out, err) = run(
        cwd,
        &[],
        &["keys", "rotate", "--tenant", "contoso", "--data-dir", &d],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("1 data keys rewrapped, 1 old version(s) destroyed"),
        "{out}"
    );
    let v2 = local_kek_ids(&data, &t);
    assert_eq!(v2.len(), 1, "old version left in the key file");
    assert_ne!(v2[0], v1[0]);
    let key_file = std::fs::read_to_string(data.join("keys/kek.json")).unwrap();
    assert!(!key_file.contains(&v1[0]));
    assert!(stored_keys(&data).iter().all(|(_, _, k)| *k == v2[0]));
    // The running node follows: plays, records under the new version,
    // and the officer's TOTP seed (rewrapped) still opens.
    assert_eq!(play(&server, &officer.token, r1), r1_bytes);
    let r2 = record(cwd, &[], &call_args(&server.base, &d, &a, &b));
    let r2_bytes = play(&server, &officer.token, r2);
    assert!(stored_keys(&data).iter().all(|(_, _, k)| *k == v2[0]));
    let again = accounts::sign_in(&server.base, &mut officer, false);
    assert_eq!(play(&server, &again.token, r2), r2_bytes);
    assert_eq!(
        export_file(&server, &admin.token, &export),
        export_bytes,
        "the export survives the local rotation"
    );
    drop(server);

    // The move to the vault, run with the local provider still set.
    kv.page_size(1);
    let mut vault = crate::key_vault::vault_env(&kv, cwd);
    vault.retain(|(k, _)| k != "INSIGHTS_KEYS__PROVIDER");
    let migrate = [
        "keys",
        "migrate",
        "--to",
        "azure-key-vault",
        "--data-dir",
        &d,
    ];
    let (ok, out, err) = run(cwd, &vault, &migrate);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("2 data keys and 2 sealed secrets moved"),
        "{out}"
    );
    assert!(out.contains("provider = \"azure-key-vault\""), "{out}");
    let name = format!("insights-kek-{}", tenant.as_uuid());
    let prefix = format!("{}/keys/{name}/", kv.vault_url());
    assert!(
        stored_keys(&data)
            .iter()
            .all(|(_, _, k)| k.starts_with(&prefix)),
        "{:?}",
        stored_keys(&data)
    );
    // Idempotent: nothing left to move.
    let (ok, out, err) = run(cwd, &vault, &migrate);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("0 data keys and 0 sealed secrets moved"),
        "{out}"
    );
    // Configured for the vault already: refused, naming what to do.
    let on_vault = crate::key_vault::vault_env(&kv, cwd);
    let (ok, _, err) = run(cwd, &on_vault, &migrate);
    assert!(
        !ok && err.contains("still set to local-file or database"),
        "{err}"
    );

    // Restarted on the vault provider: both recordings play, the officer
    // signs in, the chain of custody verifies.
    let server = serve_with_env(cwd, &data, &on_vault, &cwd.join("vault.log"));
    let s = accounts::sign_in(&server.base, &mut officer, false);
    assert_eq!(play(&server, &s.token, r1), r1_bytes);
    assert_eq!(play(&server, &s.token, r2), r2_bytes);
    let adm = accounts::sign_in(&server.base, &mut admin, false);
    assert_eq!(
        export_file(&server, &adm.token, &export),
        export_bytes,
        "the export survives the move to the vault"
    );
    let (ok, out, err) = run(
        cwd,
        &on_vault,
        &["verify-recording", &r1.to_string(), "--data-dir", &d],
    );
    assert!(ok, "{out}{err}");

    // Rotation in the vault while serve runs.
    let before = kv.versions(&name);
    assert_eq!(before.len(), 1);
    let (ok, out, err) = run(
        cwd,
        &on_vault,
        &["keys", "rotate", "--tenant", "contoso", "--data-dir", &d],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("2 data keys rewrapped, 1 old version(s) disabled"),
        "{out}"
    );
    let after = kv.versions(&name);
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(
        after[0],
        (before[0].0.clone(), false),
        "old version not disabled"
    );
    assert!(after[1].1, "new version disabled");
    assert!(kv.count("update") >= 1 && kv.count("versions") >= 2);
    let current = format!("{prefix}{}", after[1].0);
    assert!(stored_keys(&data).iter().all(|(_, _, k)| *k == current));
    let s = accounts::sign_in(&server.base, &mut officer, false);
    assert_eq!(play(&server, &s.token, r1), r1_bytes);
    assert_eq!(play(&server, &s.token, r2), r2_bytes);
    let r3 = record(cwd, &on_vault, &call_args(&server.base, &d, &a, &b));
    play(&server, &s.token, r3);
    let adm = accounts::sign_in(&server.base, &mut admin, false);
    assert_eq!(
        export_file(&server, &adm.token, &export),
        export_bytes,
        "the export survives the vault rotation"
    );
    for r in [r1, r2, r3] {
        let (ok, out, err) = run(
            cwd,
            &on_vault,
            &["verify-recording", &r.to_string(), "--data-dir", &d],
        );
        assert!(ok, "{r}: {out}{err}");
    }
    drop(server);
}

/// Issue 14: an installation on the `database` provider moves to the
/// vault with `insights keys migrate --to azure-key-vault` and plays its
/// recordings there.
#[test]
fn database_installation_moves_to_the_vault() {
    let kv = insights_tests::key_vault::KeyVaultStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = cwd.join("data");
    let d = data.to_str().unwrap().to_owned();
    let root_hex = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let db_env: Vec<(String, String)> = vec![
        ("INSIGHTS_KEYS__PROVIDER".into(), "database".into()),
        ("INSIGHTS_KEYS__ROOT_KEY_ENV".into(), ROOT_VAR.into()),
        (ROOT_VAR.into(), root_hex),
    ];
    add_tenant(cwd, &d, &db_env, "contoso");
    let server = serve_with_env(cwd, &data, &db_env, &cwd.join("db.log"));
    let env: Vec<(&str, &str)> = db_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let officer = accounts::sign_in_new_user_with(
        cwd,
        &data,
        &env,
        &server.base,
        Some("contoso"),
        "officer@contoso.com",
        "compliance-officer",
        &[],
    );
    let a = speak(cwd, "a", "Good morning, about the vault.", "en-us");
    let b = speak(cwd, "b", "Confirmed.", "en-gb");
    let r1 = record(cwd, &db_env, &call_args(&server.base, &d, &a, &b));
    let r1_bytes = play(&server, &officer.token, r1);
    drop(server);
    assert!(
        stored_keys(&data)
            .iter()
            .all(|(_, _, k)| k.starts_with("db:"))
    );

    let mut env = db_env.clone();
    env.extend(
        crate::key_vault::vault_env(&kv, cwd)
            .into_iter()
            .filter(|(k, _)| k != "INSIGHTS_KEYS__PROVIDER"),
    );
    let (ok, out, err) = run(
        cwd,
        &env,
        &[
            "keys",
            "migrate",
            "--to",
            "azure-key-vault",
            "--data-dir",
            &d,
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("1 data keys and 1 sealed secrets moved"),
        "{out}"
    );
    assert!(
        stored_keys(&data)
            .iter()
            .all(|(_, _, k)| k.starts_with(&format!("{}/keys/", kv.vault_url())))
    );

    let on_vault = crate::key_vault::vault_env(&kv, cwd);
    let server = serve_with_env(cwd, &data, &on_vault, &cwd.join("vault.log"));
    let mut officer = officer;
    let s = accounts::sign_in(&server.base, &mut officer, false);
    assert_eq!(play(&server, &s.token, r1), r1_bytes);
}
