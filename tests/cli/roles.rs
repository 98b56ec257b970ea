//! Node roles through the binary: `insights serve --roles ...` and the
//! shorthands `insights api`, `gateway`, `worker` and `scheduler` start
//! only their parts; every node answers `/livez`, `/readyz` and
//! `/metrics`; a node without the gateway role never opens the spool;
//! `/readyz` names what is down (problem+json, no path); a bad role name
//! exits 2.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;

use crate::insights;

/// A node process, killed when dropped.
struct Node {
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `insights ARGS --data-dir DATA --listen 127.0.0.1:0` and waits
/// for its "listening" line; logs go to `log`.
fn start(cwd: &Path, data: &Path, args: &[&str], log: &Path) -> Node {
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let mut child = insights(cwd, &all)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("insights: listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(base) => Node { child, base },
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{args:?} did not report its address: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        }
    }
}

fn get(http: &Client, url: &str) -> (u16, String, String) {
    let r = http.get(url).send().unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ct, r.text().unwrap())
}

/// `/livez` 200, `/readyz` 200 listing `components`, `/metrics` 200.
fn assert_health(http: &Client, base: &str, components: &[&str]) {
    let (s, _, body) = get(http, &format!("{base}/livez"));
    assert_eq!(s, 200, "livez: {body}");
    let (s, _, body) = get(http, &format!("{base}/readyz"));
    assert_eq!(s, 200, "readyz: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ready", "{v}");
    let got: Vec<&str> = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(got, components, "{v}");
    let (s, _, text) = get(http, &format!("{base}/metrics"));
    assert_eq!(s, 200);
    assert!(text.contains("insights_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/readyz\""), "{text}");
}

fn post_webhook(http: &Client, base: &str) -> u16 {
    http.post(format!("{base}/api/calls"))
        .header("content-type", "application/json")
        .body(r#"{"value":[]}"#)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn a_worker_node_serves_health_and_metrics_but_no_api_and_no_spool() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let log = cwd.path().join("worker.log");
    let node = start(
        cwd.path(),
        &data,
        &[
            "worker",
            "--concurrency",
            "2",
            "--test-engine-delay-ms",
            "10",
        ],
        &log,
    );
    let http = Client::new();
    assert_health(&http, &node.base, &["blob", "keys", "store"]);
    let (s, ct, body) = get(&http, &format!("{}/api/auth/me", node.base));
    assert_eq!(s, 404, "no API on a worker: {body}");
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    assert_eq!(
        post_webhook(&http, &node.base),
        404,
        "no webhook on a worker"
    );
    let (s, _, _) = get(&http, &format!("{}/", node.base));
    assert_eq!(s, 404, "no web UI on a worker");
    assert!(!data.join("spool").exists(), "a worker opened a spool");

    // A broken dependency: 503 problem+json naming it, without a path.
    let blobs = data.join("blobs");
    std::fs::rename(&blobs, data.join("blobs.away")).unwrap();
    std::fs::write(&blobs, b"not a directory").unwrap();
    let (s, ct, body) = get(&http, &format!("{}/readyz", node.base));
    assert_eq!(s, 503, "{body}");
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], 503, "{v}");
    assert_eq!(v["code"], "not-ready", "{v}");
    assert_eq!(v["down"], serde_json::json!(["blob"]), "{v}");
    assert!(!body.contains(data.to_str().unwrap()), "a path: {body}");
    let (s, _, _) = get(&http, &format!("{}/livez", node.base));
    assert_eq!(s, 200, "still alive while not ready");
    std::fs::remove_file(&blobs).unwrap();
    std::fs::rename(data.join("blobs.away"), &blobs).unwrap();
    let (s, _, body) = get(&http, &format!("{}/readyz", node.base));
    assert_eq!(s, 200, "ready again: {body}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("retention run"), "{log}");
}

#[test]
fn an_api_node_has_no_spool_and_no_webhook_and_a_gateway_node_no_api() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let api = start(cwd.path(), &data, &["api"], &cwd.path().join("api.log"));
    let http = Client::new();
    assert_health(&http, &api.base, &["blob", "keys", "store"]);
    let (s, _, body) = get(&http, &format!("{}/api/auth/me", api.base));
    assert_eq!(s, 401, "the API is served: {body}");
    let (s, _, body) = get(&http, &format!("{}/healthz", api.base));
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        post_webhook(&http, &api.base),
        404,
        "no webhook on an API node"
    );
    assert!(!data.join("spool").exists(), "an API node opened a spool");

    // On the same data dir a gateway starts: the API holds no spool lock.
    let gw = start(
        cwd.path(),
        &data,
        &["gateway"],
        &cwd.path().join("gateway.log"),
    );
    assert_health(&http, &gw.base, &["blob", "keys", "spool", "store"]);
    assert!(data.join("spool").join("spool.lock").exists());
    assert_eq!(post_webhook(&http, &gw.base), 401, "the webhook is served");
    let (s, _, body) = get(&http, &format!("{}/api/auth/me", gw.base));
    assert_eq!(s, 404, "no API on a gateway node: {body}");
    let (s, _, _) = get(&http, &format!("{}/api/openapi.json", gw.base));
    assert_eq!(s, 404);

    // The spool gone: the gateway is not ready, and says which part.
    let spool = data.join("spool");
    std::fs::rename(&spool, data.join("spool.away")).unwrap();
    let (s, ct, body) = get(&http, &format!("{}/readyz", gw.base));
    std::fs::rename(data.join("spool.away"), &spool).unwrap();
    assert_eq!(s, 503, "{body}");
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["down"], serde_json::json!(["spool"]), "{v}");
    assert!(!body.contains(data.to_str().unwrap()), "a path: {body}");
    // The API node does not depend on the spool.
    let (s, _, _) = get(&http, &format!("{}/readyz", api.base));
    assert_eq!(s, 200);

    // A second gateway on the same spool is refused (the lock is real).
    let out = insights(
        cwd.path(),
        &[
            "gateway",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn a_scheduler_node_serves_health_and_leads_its_jobs_without_api() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let node = start(
        cwd.path(),
        &data,
        &["scheduler"],
        &cwd.path().join("scheduler.log"),
    );
    let http = Client::new();
    assert_health(&http, &node.base, &["blob", "keys", "store"]);
    let (s, _, _) = get(&http, &format!("{}/api/auth/me", node.base));
    assert_eq!(s, 404);
    assert_eq!(post_webhook(&http, &node.base), 404);
    assert!(!data.join("spool").exists(), "a scheduler opened a spool");
    // It leads the retention lease (alone on its database).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, text) = get(&http, &format!("{}/metrics", node.base));
        if text
            .lines()
            .any(|l| l.starts_with("insights_scheduler_leader{job=\"retention\"} 1"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "not leading: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn serve_runs_the_roles_named_and_refuses_unknown_ones() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let node = start(
        cwd.path(),
        &data,
        &["serve", "--roles", "api,worker"],
        &cwd.path().join("serve.log"),
    );
    let http = Client::new();
    assert_health(&http, &node.base, &["blob", "keys", "store"]);
    let (s, _, _) = get(&http, &format!("{}/api/auth/me", node.base));
    assert_eq!(s, 401, "api role");
    assert_eq!(post_webhook(&http, &node.base), 404, "no gateway role");
    assert!(!data.join("spool").exists());
    drop(node);

    for bad in ["api,bogus", "", "API"] {
        let out = insights(
            cwd.path(),
            &[
                "serve",
                "--roles",
                bad,
                "--data-dir",
                data.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
        assert_eq!(out.status.code(), Some(2), "--roles {bad:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--roles") && err.contains("api, gateway, worker, scheduler"),
            "--roles {bad:?}: {err}"
        );
    }
}
