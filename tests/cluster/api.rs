//! What the cluster test and the load benchmark do through the real API
//! and CLI: an officer's first sign-in, simulated calls through a node's
//! gateway, search and playback. Shared by `tests/cluster/` and
//! `benches/cluster_load.rs` (`#[path]`).

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use insights_tests::cluster::{Node, tone_wav};
use serde_json::{Value, json};

/// The password `admin user add` is given, and the one the officer
/// chooses at the first sign-in.
const INITIAL_PASSWORD: &str = "initial password from the admin";
const PASSWORD: &str = "the officer's own long passphrase";
/// Sent with every content read (tenants may require a reason).
pub const ACCESS_REASON: (&str, &str) = ("x-access-reason", "cluster test");

/// A blocking client with a generous timeout (requests through HAProxy
/// are retried there, not here).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The current TOTP code of the seed in an `otpauth://` URI.
fn totp_code(uri: &str) -> String {
    let seed = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap_or_else(|| panic!("no secret in the enrolment URI"));
    let secret = totp_rs::Secret::try_from_base32(seed).unwrap();
    let totp = totp_rs::Builder::new().with_secret(secret).build().unwrap();
    totp.generate(unix_now()).to_string()
}

/// Creates a compliance officer of `tenant` with `insights admin user
/// add` on `node`, then signs them in for the first time (TOTP
/// enrolment, own password) at `base` (HAProxy or a node); the bearer
/// token.
pub fn sign_in_new_officer(node: &Node, base: &str, tenant: &str, email: &str) -> String {
    sign_in_new_user(node, base, tenant, email, "compliance-officer")
}

/// Like [`sign_in_new_officer`], for an account of `role`.
pub fn sign_in_new_user(node: &Node, base: &str, tenant: &str, email: &str, role: &str) -> String {
    let mut child = node
        .command(&[
            "admin", "user", "add", "--tenant", tenant, "--email", email, "--role", role,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{INITIAL_PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "admin user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let http = client();
    let c: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "tenant": tenant, "email": email, "password": INITIAL_PASSWORD }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(c["status"], "first-sign-in", "{c}");
    let uri = c["totp_uri"].as_str().expect("an officer enrols TOTP");
    let res = http
        .post(format!("{base}/api/auth/first-sign-in"))
        .json(&json!({
            "challenge": c["challenge"],
            "new_password": PASSWORD,
            "totp": totp_code(uri),
        }))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "first sign-in refused");
    let v: Value = res.json().unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// A short two-party call of `tenant` through `node`'s gateway
/// (`insights simulate-call`, as fast as possible): the recording id.
/// The recorded user is `Agent <n>` (`agent<n>@<tenant>.com`).
pub fn record_call(node: &Node, dir: &Path, tenant: &str, n: u32, secs: u32) -> String {
    let a = dir.join(format!("a{n}.wav"));
    let b = dir.join(format!("b{n}.wav"));
    tone_wav(&a, secs, 440.0);
    tone_wav(&b, secs, 660.0);
    let out = node.cli_ok(&[
        "simulate-call",
        "--gateway",
        &node.base_url(),
        "--tenant",
        tenant,
        "--speed",
        "0",
        "--participant",
        &format!("Agent {n}:agent{n}@{tenant}.com:{}", a.display()),
        "--participant",
        &format!("Other Party:+1425555{n:04}:{}", b.display()),
    ]);
    out.lines()
        .find_map(|l| l.strip_prefix("recording").map(|r| r.trim().to_owned()))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| panic!("no recording id in: {out}"))
}

/// `POST /api/recordings/search` at `base`: the status and the body.
pub fn search(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    query: &Value,
) -> (u16, Value) {
    let r = http
        .post(format!("{base}/api/recordings/search"))
        .bearer_auth(token)
        .header(ACCESS_REASON.0, ACCESS_REASON.1)
        .json(query)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// The ids of the recordings a search found (first page).
pub fn ids(page: &Value) -> Vec<String> {
    let mut ids: Vec<String> = page["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["recording"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// How many media reads [`media`] resumed with a Range request.
pub static RESUMED: AtomicU64 = AtomicU64::new(0);

/// `GET /api/recordings/{id}/media` at `base`, read as a media player
/// reads it: if the connection breaks after the answer began (the node
/// died mid-stream, when no balancer can retry it any more), the rest is
/// asked for with `Range: bytes=N-` (through HAProxy: another node), at
/// most twice ([`RESUMED`] counts it). The status and the bytes.
pub fn media(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    id: &str,
) -> (u16, Vec<u8>) {
    let mut body = Vec::new();
    let mut status = 0;
    for attempt in 0..3 {
        let mut req = http
            .get(format!("{base}/api/recordings/{id}/media"))
            .bearer_auth(token)
            .header(ACCESS_REASON.0, ACCESS_REASON.1);
        if attempt > 0 {
            req = req.header("range", format!("bytes={}-", body.len()));
        }
        let mut r = match req.send() {
            Ok(r) => r,
            Err(e) => return (0, e.to_string().into_bytes()),
        };
        let st = r.status().as_u16();
        if attempt == 0 {
            status = st;
        }
        let expected = if attempt == 0 { 200 } else { 206 };
        if st != expected {
            return (st, r.bytes().map(|b| b.to_vec()).unwrap_or_default());
        }
        match r.read_to_end(&mut body) {
            Ok(_) => return (status, body),
            Err(_) if attempt < 2 => {
                RESUMED.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => return (0, e.to_string().into_bytes()),
        }
    }
    (status, body)
}

/// The recording's media once the uploader has stored it (waits up to
/// 90 s).
pub fn play_when_stored(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    id: &str,
) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = media(http, base, token, id);
        if status == 200 {
            assert!(body.starts_with(b"OggS"), "not Ogg media");
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "recording {id} not playable through {base}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
