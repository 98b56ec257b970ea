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
