//! `insights directory sync` through the real binary, configured from the
//! environment like production, against a minimal stand-in of the Entra
//! token endpoint and Graph's `/users/delta` (one thread, blocking I/O).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use insights_core::domain::Lease;
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;

use super::insights;

/// Serves requests until the process ends; records "METHOD path?query".
fn stand_in() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (b, s) = (base.clone(), seen.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let target = line.split(' ').nth(1).unwrap_or("").to_owned();
            let mut len = 0usize;
            let mut auth = String::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    auth = h.trim().to_owned();
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            s.lock()
                .unwrap()
                .push(format!("{} {target}", line.split(' ').next().unwrap_or("")));
            let json = if target.ends_with("/oauth2/v2.0/token") {
                let form: BTreeMap<String, String> = url_decode(&String::from_utf8_lossy(&body));
                assert_eq!(
                    form.get("client_secret").map(String::as_str),
                    Some("s3cret")
                );
                r#"{"token_type":"Bearer","expires_in":3599,"access_token":"cli-token"}"#.to_owned()
            } else if auth != "authorization: Bearer cli-token"
                && auth != "Authorization: Bearer cli-token"
            {
                r#"{"error":{"code":"InvalidAuthenticationToken"}}"#.to_owned()
            } else if target.contains("deltatoken=d1") {
                format!(
                    r#"{{"value":[{{"id":"oid-b","@removed":{{"reason":"deleted"}}}}],"@odata.deltaLink":"{b}/v1.0/users/delta?$deltatoken=d2"}}"#
                )
            } else {
                format!(
                    r#"{{"value":[{{"id":"oid-a","givenName":"Ann","businessPhones":["+1 425 555 0100"]}},{{"id":"oid-b","givenName":"Bob"}}],"@odata.deltaLink":"{b}/v1.0/users/delta?$deltatoken=d1"}}"#
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
                json.len()
            );
        }
    });
    (base, seen)
}

fn url_decode(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%2F", "/").replace("%3A", ":")))
        .collect()
}

fn run(cwd: &Path, data: &Path, base: &str, args: &[&str], secret: Option<&str>) -> Output {
    let mut full = vec!["--data-dir", data.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut c = insights(cwd, &full);
    // The stand-in Graph speaks plain HTTP.
    c.env("INSIGHTS_ALLOW_INSECURE_HTTP", "true")
        .env("INSIGHTS_DIRECTORY__CLIENT_ID", "cli-test-client")
        .env("INSIGHTS_DIRECTORY__GRAPH_BASE_URL", format!("{base}/v1.0"))
        .env(
            "INSIGHTS_DIRECTORY__TOKEN_URL",
            format!("{base}/{{tenant}}/oauth2/v2.0/token"),
        )
        .env(
            "INSIGHTS_DIRECTORY__CLIENT_SECRET_ENV",
            "INSIGHTS_TEST_GRAPH_SECRET",
        );
    if let Some(s) = secret {
        c.env("INSIGHTS_TEST_GRAPH_SECRET", s);
    }
    c.output().unwrap()
}

#[test]
fn directory_sync_runs_full_then_delta_and_reports_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (base, seen) = stand_in();
    let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let o = run(
        dir.path(),
        &data,
        &base,
        &[
            "admin",
            "tenant",
            "add",
            "contoso",
            "--directory-tenant-id",
            tid,
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Without the secret: a clear error naming the variable, exit code 1.
    let o = run(dir.path(), &data, &base, &["directory", "sync"], None);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("INSIGHTS_TEST_GRAPH_SECRET"), "{err}");

    let o = run(
        dir.path(),
        &data,
        &base,
        &["directory", "sync", "--tenant", "contoso"],
        Some("s3cret"),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("2 added, 0 updated, 0 deactivated, 1 page,"),
        "{out}"
    );
    assert!(out.contains("full sync"), "{out}");
    assert!(
        !out.contains("Ann") && !out.contains("+1425"),
        "no personal data: {out}"
    );

    let o = run(
        dir.path(),
        &data,
        &base,
        &["directory", "sync", "--json"],
        Some("s3cret"),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["tenant"], "contoso");
    assert_eq!(v["report"]["deactivated"], 1);
    assert_eq!(v["report"]["delta"], true);

    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|s| s == &format!("POST /{tid}/oauth2/v2.0/token")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.contains("$deltatoken=d1")),
        "{seen:?}"
    );
}

/// `insights serve` with `[directory]` configured syncs on its schedule
/// (first run shortly after start) and serves `POST /api/directory/sync`.
#[test]
fn serve_syncs_on_schedule_and_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (base, seen) = stand_in();
    let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let o = run(
        dir.path(),
        &data,
        &base,
        &[
            "admin",
            "tenant",
            "add",
            "contoso",
            "--directory-tenant-id",
            tid,
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let env: Vec<(String, String)> = [
        (
            "INSIGHTS_DIRECTORY__CLIENT_ID",
            "cli-test-client".to_owned(),
        ),
        ("INSIGHTS_DIRECTORY__GRAPH_BASE_URL", format!("{base}/v1.0")),
        (
            "INSIGHTS_DIRECTORY__TOKEN_URL",
            format!("{base}/{{tenant}}/oauth2/v2.0/token"),
        ),
        ("INSIGHTS_GRAPH_CLIENT_SECRET", "s3cret".to_owned()),
        ("INSIGHTS_ALLOW_INSECURE_HTTP", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let server = super::serve_with_env(dir.path(), &data, &env, &dir.path().join("serve.log"));
    // The scheduled run: token, then the first delta page.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !seen
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.starts_with("GET /v1.0/users/delta?$select="))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled sync: {}",
            std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));

    let http = reqwest::blocking::Client::new();
    let admin = super::accounts::sign_in_new_user(
        dir.path(),
        &data,
        &server.base,
        Some("contoso"),
        "admin@contoso.com",
        "tenant-admin",
    );
    let token = admin.token;
    // While another run (another node, say) holds the tenant's lease, a
    // sync asked for through the API does nothing and says why.
    let tenant = super::key_vault::tenant_id(dir.path(), data.to_str().unwrap(), &[], "contoso");
    let job = format!("directory-sync:{}", tenant.as_uuid());
    let db = data.join("insights.db");
    let other = hold_lease(&db, &job, "node-b#other", 60);
    let before = seen.lock().unwrap().len();
    let res = http
        .post(format!("{}/api/directory/sync", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(res.status(), 409);
    let problem: serde_json::Value = res.json().unwrap();
    assert_eq!(problem["code"], "directory-sync-running", "{problem}");
    assert_eq!(seen.lock().unwrap().len(), before, "Graph not called");
    release_lease(&db, &other);
    let res = http
        .post(format!("{}/api/directory/sync", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().unwrap();
    assert_eq!(report["delta"], true, "{report}");
    assert_eq!(report["deactivated"], 1, "{report}");
    let users: serde_json::Value = http
        .get(format!("{}/api/directory/users", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let items = users["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|u| u["active"] == true).count(), 1);
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    assert!(log.contains("directory sync done"), "{log}");
    assert!(!log.contains("Ann") && !log.contains("s3cret"), "{log}");
}

/// Takes `job`'s lease in the node's database for another holder, as a
/// run on another node would.
fn hold_lease(db: &Path, job: &str, holder: &str, secs: u64) -> Lease {
    let url = format!("sqlite://{}", db.display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::connect(&url, 1).await.unwrap();
        store
            .acquire_lease(job, holder, std::time::Duration::from_secs(secs))
            .await
            .unwrap()
            .expect("the lease is free")
    })
}

fn release_lease(db: &Path, lease: &Lease) {
    let url = format!("sqlite://{}", db.display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::connect(&url, 1).await.unwrap();
        store.release_lease(lease).await.unwrap();
    })
}
