//! Issue 13 through `insights serve` (§10, §3): `/metrics` names no
//! tenant unless `[metrics] tenant_labels` is on; result URLs Azure
//! Speech returns are fetched only from the configured origin; and
//! `scripts/run.sh --demo` seeds a demo tenant whose calls are stored
//! (and, with the Whisper build, transcribed) and prints how to sign in.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use insights_core::domain::*;
use serde_json::{Value, json};

use crate::e2e_call::{add_tenant, simulate, speak};
use crate::serve_with_env;

/// The tenant's id and its directory (Entra) tenant id.
fn tenant_ids(data: &Path) -> (TenantId, uuid::Uuid) {
    let settings = insights_core::config::Settings::load(
        None,
        &insights_core::config::Overrides {
            data_dir: Some(data.to_path_buf()),
            listen: None,
        },
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = insights::platform::Platform::open(&settings).await.unwrap();
        let t = p.store.tenant_by_name("contoso").await.unwrap();
        (t.id, t.directory_tenant_id.unwrap())
    })
}

/// A simulated two-party call against `base`.
fn call(cwd: &Path, data: &Path, env: &[(String, String)], base: &str) -> RecordingId {
    let a = speak(
        cwd,
        "a",
        "Good morning, I am calling about the report.",
        "en-us",
    );
    let b = speak(cwd, "b", "Hello, the invoice was paid yesterday.", "en-gb");
    simulate(
        cwd,
        env,
        &[
            "simulate-call",
            "--gateway",
            base,
            "--tenant",
            "contoso",
            "--speed",
            "0",
            "--data-dir",
            data.to_str().unwrap(),
            "--participant",
            &format!("Carol Caller:carol@contoso.com:{}", a.display()),
            "--participant",
            &format!("Dave Callee:+14255550123:{}", b.display()),
        ],
    )
}

/// `/metrics` of a serve that ran the retention pass (the gauge of
/// recordings due, recorded per tenant) and a simulated call.
fn scrape_after_a_call(tenant_labels: Option<&str>) -> (String, TenantId, uuid::Uuid) {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let mut env: Vec<(String, String)> = vec![
        // The retention pass at once, so its per-tenant gauge is set.
        ("INSIGHTS_RETENTION__INITIAL_DELAY_SECS".into(), "0".into()),
    ];
    if let Some(v) = tenant_labels {
        env.push(("INSIGHTS_METRICS__TENANT_LABELS".into(), v.into()));
    }
    add_tenant(cwd.path(), data.to_str().unwrap(), &env, "contoso");
    let (tenant, directory) = tenant_ids(&data);
    let server = serve_with_env(cwd.path(), &data, &env, &cwd.path().join("serve.log"));
    call(cwd.path(), &data, &env, &server.base);
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = http.get(format!("{}/metrics", server.base)).send().unwrap();
        assert_eq!(res.status(), 200);
        let text = res.text().unwrap();
        if text.contains("insights_retention_due_recordings")
            && text.contains("insights_ingest_frames_received_total")
        {
            return (text, tenant, directory);
        }
        assert!(
            Instant::now() < deadline,
            "no retention gauge or ingest counter in /metrics:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn metrics_name_no_tenant_unless_tenant_labels_is_on() {
    // Default: no tenant id, of ours or the directory's, anywhere.
    let (text, tenant, directory) = scrape_after_a_call(None);
    for id in [tenant.to_string(), directory.to_string()] {
        assert!(!text.contains(&id), "a tenant id in /metrics:\n{text}");
    }
    assert!(
        !text.contains("tenant=\"") && !text.contains("tenant_id=\""),
        "a tenant label in /metrics:\n{text}"
    );
    let due: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("insights_retention_due_recordings"))
        .collect();
    assert_eq!(due.len(), 1, "one series, summed: {due:?}");

    // `[metrics] tenant_labels = true`: the per-tenant series.
    let (text, tenant, _) = scrape_after_a_call(Some("true"));
    assert!(
        text.lines()
            .any(|l| l.starts_with("insights_retention_due_recordings")
                && l.contains(&format!("tenant=\"{tenant}\""))),
        "the tenant's series when configured:\n{text}"
    );
}

// ---------------------------------------------------------------------------
// An Azure Speech stand-in
// ---------------------------------------------------------------------------

/// One request a stand-in received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
}

type Answer = dyn Fn(&Seen, &str) -> (u16, Value) + Send + Sync;

/// A minimal HTTP/1.1 server on 127.0.0.1:0 (one request per connection)
/// that records every request and answers through `answer`.
struct StandIn {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandIn {
    fn start(answer: Box<Answer>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, b) = (seen.clone(), base.clone());
        let answer: Arc<Answer> = Arc::from(answer);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (s, b, answer) = (s.clone(), b.clone(), answer.clone());
                std::thread::spawn(move || serve_one(conn, &s, &b, answer.as_ref()));
            }
        });
        StandIn { base, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_one(conn: TcpStream, seen: &Mutex<Vec<Seen>>, base: &str, answer: &Answer) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    let req = Seen {
        method,
        path,
        headers,
    };
    seen.lock().unwrap().push(req.clone());
    let (status, v) = answer(&req, base);
    let body = if v.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&v).unwrap()
    };
    let mut w = conn;
    let _ = write!(
        w,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = w.write_all(&body);
}

#[test]
fn azure_speech_result_urls_outside_the_configured_origin_are_never_fetched() {
    // Another origin: it must never receive a request.
    let foreign = StandIn::start(Box::new(|_, _| (200, json!({"recognizedPhrases": []}))));
    let result_url = format!("{}/results/0.json?sig=abc", foreign.base);
    let speech = StandIn::start(Box::new(move |r, base| {
        let t = format!("{base}/speechtotext/v3.2/transcriptions/5");
        match (r.method.as_str(), r.path.as_str()) {
            ("PUT", p) if p.starts_with("/staging/") => (201, Value::Null),
            ("DELETE", _) => (204, Value::Null),
            ("POST", "/speechtotext/v3.2/transcriptions") => (
                201,
                json!({"self": t, "status": "NotStarted",
                       "links": {"files": format!("{t}/files")}}),
            ),
            ("GET", "/speechtotext/v3.2/transcriptions/5") => (
                200,
                json!({"self": t, "status": "Succeeded",
                       "links": {"files": format!("{t}/files")}}),
            ),
            ("GET", "/speechtotext/v3.2/transcriptions/5/files") => (
                200,
                json!({"values": [{"name": "contenturl_0.json", "kind": "Transcription",
                                    "links": {"contentUrl": result_url}}]}),
            ),
            _ => (404, json!({"code": "NotFound"})),
        }
    }));

    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let env: Vec<(String, String)> = vec![
        ("INSIGHTS_ALLOW_INSECURE_HTTP".into(), "true".into()),
        ("INSIGHTS_AI__CLOUD_STT".into(), "azure-speech".into()),
        (
            "INSIGHTS_AI__AZURE_SPEECH__ENDPOINT".into(),
            speech.base.clone(),
        ),
        (
            "INSIGHTS_AI__AZURE_SPEECH__API_KEY_ENV".into(),
            "TEST_AZURE_SPEECH_KEY".into(),
        ),
        ("TEST_AZURE_SPEECH_KEY".into(), "speech-key-serve".into()),
        (
            "INSIGHTS_AI__AZURE_SPEECH__STAGING_SAS_URL_ENV".into(),
            "TEST_AZURE_SPEECH_STAGING".into(),
        ),
        (
            "TEST_AZURE_SPEECH_STAGING".into(),
            format!("{}/staging?sv=1&sig=s3g", speech.base),
        ),
        (
            "INSIGHTS_AI__AZURE_SPEECH__POLL_INTERVAL_MS".into(),
            "50".into(),
        ),
        ("INSIGHTS_WORKER__POLL_INTERVAL_MS".into(), "200".into()),
        // The refusal is retried as a provider failure: two attempts,
        // a second apart, then the job is dead.
        ("INSIGHTS_WORKER__MAX_ATTEMPTS".into(), "2".into()),
        ("INSIGHTS_WORKER__BACKOFF_BASE_SECS".into(), "1".into()),
    ];
    add_tenant(cwd.path(), data.to_str().unwrap(), &env, "contoso");
    let server = serve_with_env(cwd.path(), &data, &env, &cwd.path().join("serve.log"));
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // The tenant opts into cloud AI through the API.
    let admin = crate::accounts::sign_in_new_user_with(
        cwd.path(),
        &data,
        &envs,
        &server.base,
        Some("contoso"),
        "admin@contoso.com",
        "tenant-admin",
        &[],
    );
    let http = reqwest::blocking::Client::new();
    let res = http
        .put(format!("{}/api/settings", server.base))
        .bearer_auth(&admin.token)
        .json(
            &json!({"cloud_ai_enabled": true, "media_deletion_waiver": false,
                      "require_access_reason": false, "four_eyes_playback": false}),
        )
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().unwrap_or_default());

    let id = call(cwd.path(), &data, &env, &server.base);
    let officer = crate::accounts::sign_in_new_user_with(
        cwd.path(),
        &data,
        &envs,
        &server.base,
        Some("contoso"),
        "officer@contoso.com",
        "compliance-officer",
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let jobs: Value = http
            .get(format!("{}/api/recordings/{id}/jobs", server.base))
            .bearer_auth(&officer.token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let done = jobs["jobs"].as_array().and_then(|a| {
            a.iter()
                .find(|j| {
                    j["kind"] == "transcribe" && j["state"] != "queued" && j["state"] != "running"
                })
                .cloned()
        });
        if let Some(j) = done {
            break j;
        }
        assert!(
            Instant::now() < deadline,
            "the transcription did not finish: {jobs}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(job["state"], "dead", "the job fails: {job}");
    assert!(
        job["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("points away from the configured origins")),
        "refused for the foreign link: {job}"
    );
    let seen = speech.seen();
    assert!(
        seen.iter()
            .any(|r| r.path == "/speechtotext/v3.2/transcriptions/5/files"),
        "the provider's file list was read: {seen:?}"
    );
    assert!(
        foreign.seen().is_empty(),
        "the foreign origin received a request: {:?}",
        foreign.seen()
    );
    assert!(
        seen.iter()
            .filter(|r| r.path.starts_with("/staging/"))
            .all(|r| !r.headers.contains_key("ocp-apim-subscription-key")),
        "the key only goes to the Speech API"
    );
}

// ---------------------------------------------------------------------------
// scripts/run.sh --demo
// ---------------------------------------------------------------------------

/// The repository's root (where `scripts/` is).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Whisper model the demo's worker reads (as in `transcribe.rs`):
/// missing is a failure, never a skip.
#[cfg(feature = "whisper")]
fn model_dir() -> PathBuf {
    let dir = match std::env::var_os("INSIGHTS_STT__MODEL_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache"));
            cache.join("insights/models/whisper-tiny.en")
        }
    };
    assert!(
        dir.join("model.bin").is_file(),
        "no Whisper model in {}: run scripts/fetch-model.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// `scripts/run.sh --demo` running in its own process group; killed with
/// the group when dropped.
struct Demo {
    child: std::process::Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        // The group: run.sh, serve and whatever else it started.
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-s", "TERM", "--", &group])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn run_sh_demo_seeds_a_tenant_with_three_calls_and_prints_how_to_sign_in() {
    use std::os::unix::process::CommandExt;

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data-demo");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(repo_root().join("scripts/run.sh"))
        .args(["--demo", "--listen", "127.0.0.1:0"])
        .current_dir(repo_root())
        .env("INSIGHTS_BIN", crate::BIN)
        .env("INSIGHTS_DEMO_DATA", &data)
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(
            std::fs::File::create(tmp.path().join("run.log")).unwrap(),
        ))
        .process_group(0);
    for (k, _) in std::env::vars() {
        if k.starts_with("INSIGHTS_") {
            cmd.env_remove(k);
        }
    }
    #[cfg(feature = "whisper")]
    cmd.env("INSIGHTS_STT__MODEL_DIR", model_dir());
    // Poll the worker often, so the bounded wait below is about the
    // transcription itself.
    cmd.env("INSIGHTS_WORKER__POLL_INTERVAL_MS", "200");
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let demo = Demo { child };

    // The sign-in instructions, as printed.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let end = line.starts_with("Stop with Ctrl-C");
            lines.push(line);
            if end {
                let _ = tx.send(lines.clone());
            }
        }
    });
    let printed = rx
        .recv_timeout(Duration::from_secs(600))
        .unwrap_or_else(|_| {
            panic!(
                "no sign-in instructions; run.sh said:\n{}",
                std::fs::read_to_string(tmp.path().join("run.log")).unwrap_or_default()
            )
        });
    let field = |name: &str| -> String {
        printed
            .iter()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no `{name}` in {printed:#?}"))
    };
    let base = printed
        .iter()
        .find_map(|l| l.strip_prefix("Insights demo is running at "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {printed:#?}"))
        .to_owned();
    let tenant = field("Organisation:");
    let email = field("Email:");
    let password_file = field("Password:")
        .split(" the one in ")
        .nth(1)
        .unwrap_or_else(|| panic!("no password file in {printed:#?}"))
        .to_owned();
    assert_eq!(tenant, "demo");
    let initial = std::fs::read_to_string(&password_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(initial.len() >= 16, "a random initial password");

    // The first sign-in with the printed credentials (own password, TOTP
    // enrolment, recovery codes).
    let admin = crate::accounts::first_sign_in_with(&base, Some(&tenant), &email, &initial);
    let http = reqwest::blocking::Client::new();
    let me: Value = http
        .get(format!("{base}/api/auth/me"))
        .bearer_auth(&admin.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["role"], "tenant-admin", "{me}");

    // The three calls are stored.
    let search = |token: &str| -> Value {
        let res = http
            .post(format!("{base}/api/recordings/search"))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let items = loop {
        let v = search(&admin.token);
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let stored = items
            .iter()
            .filter(|r| r["recording"]["status"] == "stored")
            .count();
        if stored == 3 {
            break items;
        }
        assert!(Instant::now() < deadline, "three stored calls: {v}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(items.len(), 3, "exactly the three demo calls");

    // …and transcribed within a bounded wait (the Whisper build).
    #[cfg(feature = "whisper")]
    {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let v = search(&admin.token);
            let done = v["items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|r| r["recording"]["has_transcript"] == true)
                        .count()
                })
                .unwrap_or(0);
            if done == 3 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "three transcribed calls within 300 s: {v}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    #[cfg(not(feature = "whisper"))]
    eprintln!(
        "this build has no speech-to-text engine (--no-default-features): \
         the transcription of the demo calls is checked in the Whisper build"
    );
    drop(demo);
}
