//! Stateless API nodes (issue 15 §2) through the real binary: two
//! `insights serve` processes, each with its own data directory, on one
//! PostgreSQL database and one Azurite, with the `database` key provider
//! (one root key). Whatever one node starts, the other finishes:
//!
//! * an OIDC sign-in started on node A completes by the callback on node
//!   B (the pending sign-in is in the database, its nonce and verifier
//!   sealed), and the same callback replayed on A is refused;
//! * an Excel export started on A is polled and downloaded on B (the
//!   workbook reads back); a job whose node stopped renewing its lease is
//!   reported failed, never running forever;
//! * an access bundle built on A downloads on B;
//! * nothing of either file is on a node's disk (sealed in the blob store);
//! * failed logins from one address are counted across both nodes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::postgres::PgStore;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::directory_identity::{LOGIN_CLIENT, StandIn, TID, cookie};
use crate::e2e_call::{simulate, speak};
use crate::{Server, insights, serve_with_env};

/// Failed logins per address and window on both nodes.
const ADDRESS_MAX_FAILURES: usize = 4;

struct Node {
    server: Server,
    data: PathBuf,
}

fn start_node(cwd: &Path, name: &str, env: &[(String, String)]) -> Node {
    let data = cwd.join(name);
    let mut env = env.to_vec();
    env.push(("INSIGHTS_NODE_NAME".into(), format!("node-{name}")));
    let server = serve_with_env(cwd, &data, &env, &cwd.join(format!("{name}.log")));
    Node { server, data }
}

/// The environment both nodes share: PostgreSQL, Azurite, the database
/// key provider with one root key, one API token key, OIDC sign-in and
/// the directory (Graph) pointed at the stand-in.
fn cluster_env(cwd: &Path, pg: &str, azurite: &str, idp: &StandIn) -> Vec<(String, String)> {
    let root = cwd.join("root.key");
    let hex = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    std::fs::write(&root, format!("{hex}\n")).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut env: Vec<(String, String)> = [
        ("INSIGHTS_DATABASE__URL", pg.to_owned()),
        ("INSIGHTS_BLOB__BACKEND", "azure".to_owned()),
        ("INSIGHTS_BLOB__AZURE__USE_EMULATOR", "true".to_owned()),
        ("INSIGHTS_BLOB__AZURE__ENDPOINT", azurite.to_owned()),
        ("INSIGHTS_KEYS__PROVIDER", "database".to_owned()),
        ("INSIGHTS_KEYS__ROOT_KEY_FILE", root.display().to_string()),
        (
            "INSIGHTS_AUTH__TOKEN_KEY_FILE",
            cwd.join("api-token.key").display().to_string(),
        ),
        (
            "INSIGHTS_AUTH__ADDRESS_MAX_FAILURES",
            ADDRESS_MAX_FAILURES.to_string(),
        ),
        ("INSIGHTS_AUTH__ADDRESS_WINDOW_SECS", "600".to_owned()),
        (
            "INSIGHTS_AUTH__OIDC__DISCOVERY_URL",
            format!(
                "{}/organizations/v2.0/.well-known/openid-configuration",
                idp.base
            ),
        ),
        (
            "INSIGHTS_AUTH__OIDC__ISSUER",
            format!("{}/{{tenantid}}/v2.0", idp.base),
        ),
        ("INSIGHTS_AUTH__OIDC__AUDIENCE", "api://insights".to_owned()),
        (
            "INSIGHTS_AUTH__OIDC__LOGIN_CLIENT_ID",
            LOGIN_CLIENT.to_owned(),
        ),
        (
            "INSIGHTS_AUTH__OIDC__LOGIN_REDIRECT_URI",
            "https://insights.example.com/api/auth/oidc/callback".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(idp.directory_env());
    env
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
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

/// No file of either node names `id` (nothing of a job's file is on a
/// node's disk, sealed or not).
#[track_caller]
fn on_no_disk(nodes: &[&Node], id: &str) {
    for n in nodes {
        let found: Vec<_> = files_under(&n.data)
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(id))
            .collect();
        assert!(found.is_empty(), "{id} on {}: {found:?}", n.data.display());
    }
}

/// Polls `url` (as `token`) until its `field` leaves `running`.
fn wait_done(http: &reqwest::blocking::Client, url: &str, token: &str, field: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let res = http.get(url).bearer_auth(token).send().unwrap();
        assert_eq!(res.status(), 200, "{url}");
        let v: Value = res.json().unwrap();
        if v[field] != "running" {
            return v;
        }
        assert!(Instant::now() < deadline, "{url} still running: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The OIDC sign-in: started on A, the callback on B, replayed on A.
fn sign_in_across_nodes(a: &Node, b: &Node, idp: &StandIn, pg: &str) {
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http
        .get(format!(
            "{}/api/auth/oidc/login?return_to=/recordings",
            a.server.base
        ))
        .send()
        .unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().unwrap_or_default());
    let state_cookie = cookie(&res, "insights_oidc_state");
    let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let q: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
    let (state, nonce) = (q["state"].clone(), q["nonce"].clone());

    // In the database: found by a digest of the state; the nonce and
    // the PKCE verifier are sealed (a reader of the table has neither).
    let rows: Vec<(String, String)> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = sqlx::PgConnection::connect(pg).await.unwrap();
        sqlx::query_as("SELECT state_hash, sealed FROM pending_sign_ins")
            .fetch_all(&mut c)
            .await
            .unwrap()
    });
    assert_eq!(rows.len(), 1, "one pending sign-in");
    let (hash, sealed) = &rows[0];
    assert_eq!(hash.len(), 64, "a SHA-256 of the state");
    for secret in [&state, &nonce] {
        assert!(
            !hash.contains(secret.as_str()) && !sealed.contains(secret.as_str()),
            "a sign-in secret in clear in the database"
        );
    }

    let oid = "0a6f3b2c-4444-4e8d-9c7b-5d4e3f2a1b04";
    idp.world.lock().unwrap().id_token =
        Some(idp.id_token(oid, &nonce, &["Insights.ComplianceOfficer"], &[]));
    let callback = |node: &Node| {
        http.get(format!(
            "{}/api/auth/oidc/callback?code=c0de&state={state}",
            node.server.base
        ))
        .header("cookie", format!("insights_oidc_state={state_cookie}"))
        .send()
        .unwrap()
    };
    let res = callback(b);
    assert_eq!(res.status(), 302, "{}", res.text().unwrap_or_default());
    assert_eq!(res.headers()["location"], "/recordings");
    let session = cookie(&res, "insights_session");
    let csrf = cookie(&res, "insights_csrf");
    // The session works on both nodes.
    for node in [a, b] {
        let me = http
            .get(format!("{}/api/auth/me", node.server.base))
            .header(
                "cookie",
                format!("insights_session={session}; insights_csrf={csrf}"),
            )
            .send()
            .unwrap();
        assert_eq!(me.status(), 200);
        let me: Value = me.json().unwrap();
        assert_eq!(me["role"], "compliance-officer", "{me}");
    }
    // Replayed on A (with a token the provider would hand out again):
    // the sign-in was used on B, so it is unknown everywhere.
    idp.world.lock().unwrap().id_token =
        Some(idp.id_token(oid, &nonce, &["Insights.ComplianceOfficer"], &[]));
    let res = callback(a);
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().unwrap();
    assert_eq!(problem["code"], "invalid-state", "{problem}");
    let res = callback(b);
    assert_eq!(res.status(), 400, "nor on B");
}

/// `insights admin tenant add contoso` against the cluster's store.
fn add_contoso(cwd: &Path, env: &[(String, String)]) {
    let out = insights(
        cwd,
        &[
            "admin",
            "tenant",
            "add",
            "contoso",
            "--directory-tenant-id",
            TID,
            "--data-dir",
            cwd.join("a").to_str().unwrap(),
        ],
    )
    .envs(env.iter().cloned())
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn two_api_nodes_share_sign_ins_jobs_and_throttles(pg: &str, azurite: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let idp = StandIn::start(vec![]);
    let env = cluster_env(cwd, pg, azurite, &idp);
    add_contoso(cwd, &env);
    let a = start_node(cwd, "a", &env);
    let b = start_node(cwd, "b", &env);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();

    sign_in_across_nodes(&a, &b, &idp, pg);

    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let admin = crate::accounts::sign_in_new_user_with(
        cwd,
        &a.data,
        &env_refs,
        &a.server.base,
        Some("contoso"),
        "admin@contoso.com",
        "tenant-admin",
        &[],
    )
    .token;
    let dpo = crate::accounts::sign_in_new_user_with(
        cwd,
        &a.data,
        &env_refs,
        &b.server.base,
        Some("contoso"),
        "dpo@contoso.com",
        "dpo",
        &[],
    )
    .token;

    // A call recorded through A, in the metadata both nodes read.
    let x = speak(cwd, "x", "Good morning, this is the trading desk.", "en-us");
    let y = speak(cwd, "y", "Confirmed, thank you.", "en-gb");
    let mut call_env = env.clone();
    call_env.push(("INSIGHTS_NODE_NAME".into(), "node-a".into()));
    let recording = simulate(
        cwd,
        &call_env,
        &[
            "simulate-call",
            "--gateway",
            &a.server.base,
            "--tenant",
            "contoso",
            "--speed",
            "0",
            "--data-dir",
            a.data.to_str().unwrap(),
            "--participant",
            &format!("Agent Example:agent@contoso.com:{}", x.display()),
            "--participant",
            &format!("Other Party:+14255550123:{}", y.display()),
        ],
    );

    // ---- export: started on A, polled and downloaded on B ----
    let res = http
        .post(format!("{}/api/exports", a.server.base))
        .bearer_auth(&admin)
        .json(&json!({"columns": ["recording-id", "direction"], "reason": "cluster check"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().unwrap_or_default());
    let started: Value = res.json().unwrap();
    let export_id = started["id"].as_str().unwrap().to_owned();
    let done = wait_done(
        &http,
        &format!("{}/api/exports/{export_id}", b.server.base),
        &admin,
        "state",
    );
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["rows_written"], 1, "{done}");
    let res = http
        .get(format!("{}/api/exports/{export_id}/file", b.server.base))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let xlsx = res.bytes().unwrap().to_vec();
    let rows: Vec<Vec<String>> = {
        use calamine::{Reader, Xlsx};
        let mut wb = Xlsx::new(std::io::Cursor::new(xlsx)).unwrap();
        let range = wb.worksheet_range_at(0).unwrap().unwrap();
        range
            .rows()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    };
    assert_eq!(rows.len(), 2, "header + the call: {rows:?}");
    assert_eq!(rows[1][0], recording.to_string());
    // Another account (the DPO) does not see it on either node.
    for node in [&a, &b] {
        let res = http
            .get(format!("{}/api/exports/{export_id}", node.server.base))
            .bearer_auth(&dpo)
            .send()
            .unwrap();
        assert_eq!(res.status(), 404);
    }

    // ---- a job whose node died: failed once its lease ran out ----
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ghost = rt.block_on(async {
        let store = PgStore::connect(pg, 2).await.unwrap();
        let tenant = store.tenant_by_name("contoso").await.unwrap().id;
        let export: FileJobId = export_id.parse().unwrap();
        let mut job = store.get_file_job(tenant, export).await.unwrap();
        assert_eq!(
            job.output.as_ref().map(|o| o.blob_key.as_str()),
            Some(format!("exports/{export_id}.xlsx.env").as_str())
        );
        let at = now();
        job.id = FileJobId::new();
        job.state = FileJobState::Running;
        job.output = None;
        job.created_at = at - chrono::Duration::minutes(5);
        job.lease_until = at - chrono::Duration::minutes(1);
        store.create_file_job(tenant, &job).await.unwrap();
        job.id
    });
    let lost: Value = http
        .get(format!("{}/api/exports/{ghost}", b.server.base))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(lost["state"], "failed", "{lost}");
    assert_eq!(lost["error"], "node-lost", "{lost}");

    // ---- access bundle: built on A, downloaded on B ----
    let res = http
        .post(format!("{}/api/gdpr/access", a.server.base))
        .bearer_auth(&dpo)
        .json(&json!({
            "identifiers": {"phone": "+14255550123"},
            "reason": "Art. 15 request 15",
        }))
        .send()
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().unwrap_or_default());
    let bundle = res.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = wait_done(
        &http,
        &format!("{}/api/gdpr/access/{bundle}", b.server.base),
        &dpo,
        "status",
    );
    assert_eq!(done["status"], "done", "{done}");
    let res = http
        .get(format!("{}/api/gdpr/access/{bundle}/file", b.server.base))
        .bearer_auth(&dpo)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let zip = res.bytes().unwrap().to_vec();
    assert!(zip.starts_with(b"PK\x03\x04"), "a zip");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut listing = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("recordings.json").unwrap(),
        &mut listing,
    )
    .unwrap();
    assert!(listing.contains(&recording.to_string()), "{listing}");
    // The admin (another account) cannot take it.
    let res = http
        .get(format!("{}/api/gdpr/access/{bundle}/file", a.server.base))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(res.status(), 403, "no gdpr-actions");

    // Both files are sealed in the blob store, on no node's disk.
    on_no_disk(&[&a, &b], &export_id);
    on_no_disk(&[&a, &b], &bundle);
    assert!(!a.data.join("gdpr").join("bundles").exists());

    // ---- login throttling counted across both nodes ----
    let attempt = |node: &Node, n: usize| {
        http.post(format!("{}/api/auth/login", node.server.base))
            .json(&json!({
                "tenant": "contoso",
                "email": format!("nobody{n}@contoso.com"),
                "password": "wrong password",
            }))
            .send()
            .unwrap()
    };
    for n in 0..ADDRESS_MAX_FAILURES {
        let node = if n % 2 == 0 { &a } else { &b };
        assert_eq!(attempt(node, n).status(), 401, "attempt {n}");
    }
    // Two failures on each node: either node alone would still admit
    // more; together they are over the budget.
    for (node, n) in [(&a, 10), (&b, 11)] {
        let res = attempt(node, n);
        assert_eq!(res.status(), 429, "{}", node.server.base);
        assert!(res.headers().get("retry-after").is_some());
    }
}

/// Recordings inserted straight into the database (as a bulk import
/// would): enough that an export of them runs for several seconds.
fn bulk_recordings(pg: &str, tenant: TenantId, n: i64) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = sqlx::PgConnection::connect(pg).await.unwrap();
        sqlx::query(
            "INSERT INTO recordings (tenant_id, id, kind, direction, started_at, ended_at, \
             duration_ms, status, retention_class, legal_hold, has_transcript, created_at) \
             SELECT $1, gen_random_uuid(), 'call', 'inbound', \
             now() - make_interval(secs => i), now() - make_interval(secs => i) + interval '1 minute', \
             60000, 'stored', 'default', false, false, now() \
             FROM generate_series(1, $2) AS i",
        )
        .bind(tenant.0)
        .bind(n)
        .execute(&mut c)
        .await
        .unwrap();
    });
}

/// `n` recordings of one caller's number, inserted straight into the
/// database: an access bundle of that number audits each inclusion
/// before it reads anything, long enough to be killed part-way. Their
/// ids, sorted.
fn bulk_subject_recordings(pg: &str, tenant: TenantId, n: i64, phone: &str) -> Vec<RecordingId> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = sqlx::PgConnection::connect(pg).await.unwrap();
        let mut ids: Vec<RecordingId> = sqlx::query_scalar::<_, uuid::Uuid>(
            "WITH r AS ( \
               INSERT INTO recordings (tenant_id, id, kind, direction, started_at, ended_at, \
               duration_ms, status, retention_class, legal_hold, has_transcript, created_at) \
               SELECT $1, gen_random_uuid(), 'call', 'inbound', \
               now() - make_interval(days => 1, secs => i), \
               now() - make_interval(days => 1, secs => i) + interval '1 minute', \
               60000, 'stored', 'default', false, false, now() \
               FROM generate_series(1, $2) AS i RETURNING id) \
             INSERT INTO participants (tenant_id, recording_id, id, position, role, \
               phone_number, recorded_user, joined_ms) \
             SELECT $1, r.id, gen_random_uuid(), 0, 'caller', $3, false, 0 FROM r \
             RETURNING recording_id",
        )
        .bind(tenant.0)
        .bind(n)
        .bind(phone)
        .fetch_all(&mut c)
        .await
        .unwrap()
        .into_iter()
        .map(RecordingId)
        .collect();
        ids.sort();
        ids
    })
}

/// Issue 15 §Proof: the API node running an export is killed (`kill -9`)
/// mid-job: another node takes the job over once its lease ran out, runs
/// it again from the request stored with it, and the export downloads
/// from that node complete; the `export` audit event is not repeated. An
/// OIDC sign-in started on the killed node completes on the other. An
/// access bundle lost with its node is run again by the other, without
/// repeating the audit events the lost run appended.
pub fn an_export_on_a_killed_node_finishes_through_the_other(pg: &str, azurite: &str) {
    const RECORDINGS: i64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let idp = StandIn::start(vec![]);
    let env = cluster_env(cwd, pg, azurite, &idp);
    add_contoso(cwd, &env);
    let a = start_node(cwd, "a", &env);
    let b = start_node(cwd, "b", &env);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(PgStore::connect(pg, 2)).unwrap();
    let tenant = rt.block_on(store.tenant_by_name("contoso")).unwrap().id;
    bulk_recordings(pg, tenant, RECORDINGS);

    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let admin = crate::accounts::sign_in_new_user_with(
        cwd,
        &a.data,
        &env_refs,
        &a.server.base,
        Some("contoso"),
        "admin@contoso.com",
        "tenant-admin",
        &[],
    )
    .token;
    let dpo = crate::accounts::sign_in_new_user_with(
        cwd,
        &a.data,
        &env_refs,
        &b.server.base,
        Some("contoso"),
        "dpo@contoso.com",
        "dpo",
        &[],
    )
    .token;

    // An OIDC sign-in started on A, before A dies.
    let res = http
        .get(format!(
            "{}/api/auth/oidc/login?return_to=/recordings",
            a.server.base
        ))
        .send()
        .unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().unwrap_or_default());
    let state_cookie = cookie(&res, "insights_oidc_state");
    let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let q: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
    let (state, nonce) = (q["state"].clone(), q["nonce"].clone());

    // The export starts on A; A is killed while it runs.
    let res = http
        .post(format!("{}/api/exports", a.server.base))
        .bearer_auth(&admin)
        .json(&json!({"columns": ["recording-id", "direction"], "reason": "takeover check"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().unwrap_or_default());
    let export_id: String = res.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let status_on_b = format!("{}/api/exports/{export_id}", b.server.base);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = http
            .get(&status_on_b)
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            v["state"], "running",
            "the export ended before the kill: {v}"
        );
        if v["rows_written"].as_u64().unwrap_or(0) > 0 {
            break; // A renewed the lease with its progress: mid-job
        }
        assert!(Instant::now() < deadline, "no progress on A: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let killed_at = Instant::now();
    drop(a); // SIGKILL

    // The sign-in completes on B.
    let oid = "0a6f3b2c-4444-4e8d-9c7b-5d4e3f2a1b04";
    idp.world.lock().unwrap().id_token =
        Some(idp.id_token(oid, &nonce, &["Insights.ComplianceOfficer"], &[]));
    let res = http
        .get(format!(
            "{}/api/auth/oidc/callback?code=c0de&state={state}",
            b.server.base
        ))
        .header("cookie", format!("insights_oidc_state={state_cookie}"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().unwrap_or_default());
    assert_eq!(res.headers()["location"], "/recordings");

    // The export: running (never failed) until B takes it over and
    // finishes it.
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = loop {
        let v: Value = http
            .get(&status_on_b)
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if v["state"] != "running" {
            break v;
        }
        assert!(Instant::now() < deadline, "still running: {v}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["rows_written"], RECORDINGS, "{done}");
    let took = killed_at.elapsed();
    let id: FileJobId = export_id.parse().unwrap();
    let job = rt.block_on(store.get_file_job(tenant, id)).unwrap();
    assert_eq!(job.attempt, 2, "run once more, by B");
    assert_eq!(job.request, None, "the stored request went with the end");
    assert_eq!(
        job.output.as_ref().map(|o| o.blob_key.clone()),
        Some(format!("exports/{export_id}.2.xlsx.env")),
        "the re-run's own file"
    );

    let res = http
        .get(format!("{}/api/exports/{export_id}/file", b.server.base))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let xlsx = res.bytes().unwrap().to_vec();
    let ids: std::collections::BTreeSet<String> = {
        use calamine::{Reader, Xlsx};
        let mut wb = Xlsx::new(std::io::Cursor::new(xlsx)).unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for name in wb.sheet_names() {
            let range = wb.worksheet_range(&name).unwrap();
            for row in range.rows().skip(1) {
                assert!(ids.insert(row[0].to_string()), "a row twice");
            }
        }
        ids
    };
    assert_eq!(ids.len() as i64, RECORDINGS, "every recording exported");
    let stored: std::collections::BTreeSet<String> = rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(pg).await.unwrap();
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM recordings WHERE tenant_id = $1")
            .bind(tenant.0)
            .fetch_all(&mut c)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.to_string())
            .collect()
    });
    assert_eq!(ids, stored, "exactly the tenant's recordings");

    // One `export` audit event (the request's), the chain intact.
    let audit = rt
        .block_on(store.list_audit(tenant, &AuditQuery::default()))
        .unwrap();
    let exports = audit
        .iter()
        .filter(|e| e.action == AuditAction::Export)
        .count();
    assert_eq!(exports, 1, "the re-run appended no audit event");
    let chain = rt
        .block_on(insights_core::store::check_audit_chain(&store, tenant))
        .unwrap();
    assert!(chain.is_intact(), "{chain:?}");
    println!(
        "export of {RECORDINGS} recordings finished by the other node {:.1} s after the kill",
        took.as_secs_f64()
    );

    // ---- an access bundle whose node is killed mid-build: run again by
    // B, the audit events of the lost run not repeated ----
    const SUBJECT_RECORDINGS: i64 = 5_000;
    let phone = "+14255550199";
    let subject_ids = bulk_subject_recordings(pg, tenant, SUBJECT_RECORDINGS, phone);
    let c = start_node(cwd, "c", &env);
    let res = http
        .post(format!("{}/api/gdpr/access", c.server.base))
        .bearer_auth(&dpo)
        .json(&json!({"identifiers": {"phone": phone}, "reason": "Art. 15 request 17"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().unwrap_or_default());
    let bundle: FileJobId = res.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // C audits the build, then one `included` event per recording before
    // it reads anything: it is killed part-way through those.
    let included_so_far = |conn: &mut sqlx::PgConnection| -> i64 {
        rt.block_on(
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND target = $2 \
                 AND details->>'step' = 'included'",
            )
            .bind(tenant.0)
            .bind(bundle.to_string())
            .fetch_one(conn),
        )
        .unwrap()
    };
    let mut conn = rt.block_on(sqlx::PgConnection::connect(pg)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = included_so_far(&mut conn);
        assert!(
            n < SUBJECT_RECORDINGS,
            "C audited every inclusion before the kill: the build was too quick to interrupt"
        );
        if n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "C never started the build");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(c); // SIGKILL, mid-build
    let before_takeover = included_so_far(&mut conn);
    assert!(
        (1..SUBJECT_RECORDINGS).contains(&before_takeover),
        "killed mid-build: {before_takeover} of {SUBJECT_RECORDINGS} inclusions audited"
    );
    let job = rt.block_on(store.get_file_job(tenant, bundle)).unwrap();
    assert_eq!(job.state, FileJobState::Running, "lost, not failed");
    assert_eq!(job.attempt, 1);
    let deadline = Instant::now() + Duration::from_secs(240);
    let done = loop {
        let v: Value = http
            .get(format!("{}/api/gdpr/access/{bundle}", b.server.base))
            .bearer_auth(&dpo)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if v["status"] != "running" {
            break v;
        }
        assert!(Instant::now() < deadline, "still running: {v}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(done["status"], "done", "taken over and run again: {done}");
    let job = rt.block_on(store.get_file_job(tenant, bundle)).unwrap();
    assert_eq!(job.attempt, 2, "run once more, by B");
    assert_eq!(job.request, None);
    let mut kept = job.recordings.clone();
    kept.sort();
    assert_eq!(kept, subject_ids, "every recording of the subject");
    let res = http
        .get(format!("{}/api/gdpr/access/{bundle}/file", b.server.base))
        .bearer_auth(&dpo)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(res.bytes().unwrap().to_vec())).unwrap();
    let mut listing = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("recordings.json").unwrap(),
        &mut listing,
    )
    .unwrap();
    for id in &subject_ids {
        assert!(
            listing.contains(&id.to_string()),
            "{id} missing from the bundle"
        );
    }
    let events: Vec<AuditEvent> = rt
        .block_on(store.list_audit(tenant, &AuditQuery::default()))
        .unwrap()
        .into_iter()
        .filter(|e| e.target.as_deref() == Some(bundle.to_string().as_str()))
        .collect();
    let step = |name: &str| {
        events
            .iter()
            .filter(|e| e.details["step"] == name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        step("build").len(),
        1,
        "the build audited once (by the lost run)"
    );
    let mut included: Vec<RecordingId> = step("included")
        .iter()
        .filter_map(|e| e.recording_id)
        .collect();
    included.sort();
    assert_eq!(
        included, subject_ids,
        "each recording's inclusion audited exactly once across both runs"
    );
    assert_eq!(step("download").len(), 1);
    let chain = rt
        .block_on(insights_core::store::check_audit_chain(&store, tenant))
        .unwrap();
    assert!(chain.is_intact(), "{chain:?}");
    println!(
        "access bundle: killed after {before_takeover} of {SUBJECT_RECORDINGS} inclusions, finished by the other node"
    );
    drop(b);
}
