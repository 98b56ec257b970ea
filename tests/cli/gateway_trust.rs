//! Issue 13 §9, through the real `insights serve`: the simulator key is
//! not trusted unless configured (and never with a bot app id), a
//! notification for a live call counts only from the tenant that created
//! the call, and the webhook checks the bearer token before it reads a
//! byte of the body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use insights_core::domain::{Recording, TenantId};
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;
use serde_json::{Value, json};

use crate::{Server, insights, serve_with_env, start_serve};

const TENANT_A: &str = "8a51c0de-4b1e-4c2a-9f00-1f2e3d4c5b6a";
const TENANT_B: &str = "0b7e2f4d-63a1-4d8e-8c55-9a0b1c2d3e4f";
/// The audience of simulator tokens when no bot app id is configured.
const LOCAL_AUDIENCE: &str = "insights-local-bot";

fn tenant_add(cwd: &Path, data: &Path, name: &str, directory_tenant: &str) -> TenantId {
    let out = insights(
        cwd,
        &[
            "admin",
            "tenant",
            "add",
            name,
            "--directory-tenant-id",
            directory_tenant,
            "--data-dir",
            data.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = insights(
        cwd,
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "admin",
            "tenant",
            "list",
            "--json",
        ],
    )
    .output()
    .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|t| t["name"] == name)
        .and_then(|t| t["id"].as_str().map(|s| TenantId(s.parse().unwrap())))
        .unwrap()
}

/// A policy-based recording invite of the recorded user of `tenant`.
fn invite(call_id: &str, tenant: &str) -> Value {
    json!({"value": [{
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "created",
        "resourceUrl": format!("/communications/calls/{call_id}"),
        "resourceData": {
            "@odata.type": "#microsoft.graph.call",
            "state": "incoming",
            "direction": "incoming",
            "source": {
                "@odata.type": "#microsoft.graph.participantInfo",
                "id": "p-recorded",
                "identity": {"user": {"id": "0f9d3c1e-7a2b-4c5d-8e6f-112233445566",
                    "displayName": "Recorded User", "tenantId": tenant}},
            },
            "targets": [{
                "identity": {"applicationInstance": {"id": "6c1f4b5a-1d0e-4a55-9a1b-0f3a8d2c7e11"}},
                "id": "p-bot",
            }],
            "tenantId": tenant,
            "callChainId": uuid::Uuid::new_v4().to_string(),
            "incomingContext": {"sourceParticipantId": "p-recorded",
                "observedParticipantId": "p-recorded"},
            "id": call_id,
            "applicationMetadata": {"botData": {
                "inviteReasons": ["PolicyBasedRecording"],
                "user": {"id": "0f9d3c1e-7a2b-4c5d-8e6f-112233445566", "tenantId": tenant,
                    "participationMethod": "caller"},
            }},
        },
    }]})
}

/// The end of a call with the given result code.
fn ended(call_id: &str, code: i64) -> Value {
    json!({"value": [{
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "deleted",
        "resourceUrl": format!("/communications/calls/{call_id}"),
        "resourceData": {"@odata.type": "#microsoft.graph.call", "state": "terminated",
            "resultInfo": {"code": code, "subcode": 0}},
    }]})
}

fn token(data: &Path, directory_tenant: &str) -> String {
    bot_gateway::auth::simulator::mint_simulator_token(
        data,
        LOCAL_AUDIENCE,
        directory_tenant.parse().unwrap(),
    )
    .unwrap()
}

async fn post(base: &str, token: &str, body: &Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/calls"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The recording of `call_id` once `done` says so (None after 20 s).
async fn recording_when(
    store: &SqliteStore,
    tenant: TenantId,
    call_id: &str,
    done: impl Fn(&Recording) -> bool,
) -> Option<Recording> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = store.recording_by_external_call_id(tenant, call_id).await
            && done(&r)
        {
            return Some(r);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `insights serve` exactly as an operator starts it: no test overrides.
fn serve_untouched(cwd: &Path, data: &Path, log: &Path) -> Server {
    start_serve(
        insights(
            cwd,
            &[
                "serve",
                "--data-dir",
                data.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
        )
        .stderr(std::fs::File::create(log).unwrap()),
    )
}

/// `secs` seconds of a 440 Hz tone as a 16 kHz mono WAV file.
pub(crate) fn tone_wav(path: &Path, secs: usize) {
    let samples: Vec<i16> = (0..16_000 * secs)
        .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin() * 8000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&32_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, w).unwrap();
}

/// By default the gateway trusts no simulator token: a simulated invite is
/// refused with 401 and `insights simulate-call` says how to turn the
/// trust on for a local gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_key_is_not_trusted_by_default_and_simulate_call_says_so() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let tenant = tenant_add(cwd.path(), &data, "contoso", TENANT_A);
    let log = cwd.path().join("serve.log");
    let server = serve_untouched(cwd.path(), &data, &log);
    assert!(
        !data.join("keys").join("simulator-signing.pem").exists(),
        "serve created a simulator key although it does not trust one"
    );

    let sim = token(&data, TENANT_A);
    let (status, body) = post(&server.base, &sim, &invite("call-untrusted", TENANT_A)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "token-untrusted-simulator", "{body}");
    let db = format!("sqlite://{}", data.join("insights.db").display());
    let store = SqliteStore::connect(&db, 1).await.unwrap();
    assert!(
        store
            .recording_by_external_call_id(tenant, "call-untrusted")
            .await
            .is_err(),
        "a refused invite was recorded"
    );

    let wav = cwd.path().join("tone.wav");
    tone_wav(&wav, 1);
    let out = insights(
        cwd.path(),
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "simulate-call",
            "--gateway",
            &server.base,
            "--tenant",
            "contoso",
            "--speed",
            "0",
            "--participant",
            &format!("Ann:ann@contoso.example:{}", wav.display()),
            "--participant",
            &format!("Bob:+14255550100:{}", wav.display()),
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "simulate-call succeeded: {stderr}");
    assert!(
        stderr.contains("token-untrusted-simulator")
            && stderr.contains("INSIGHTS_GATEWAY__TRUST_SIMULATOR_KEY=true"),
        "no clear hint: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    drop(server);
}

/// A gateway registered with Microsoft (`gateway.app_id`) refuses to start
/// with the simulator key trusted: a configuration error naming the key.
#[test]
fn trusting_the_simulator_with_a_bot_app_id_refuses_to_start() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let mut child = insights(
        cwd.path(),
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    )
    .env(
        "INSIGHTS_GATEWAY__APP_ID",
        "4c0ffee0-1111-4222-8333-944445555666",
    )
    .env("INSIGHTS_GATEWAY__TRUST_SIMULATOR_KEY", "true")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve started with the simulator trusted and a bot app id");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("gateway.trust_simulator_key") && stderr.contains("app_id"),
        "{stderr}"
    );
}

/// A notification naming a live call is applied only when it comes from
/// the tenant (and route) that created the call: another tenant's
/// hang-up changes nothing, the creator's ends the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_takes_notifications_only_from_the_tenant_that_created_it() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let a = tenant_add(cwd.path(), &data, "contoso", TENANT_A);
    let _b = tenant_add(cwd.path(), &data, "fabrikam", TENANT_B);
    let log = cwd.path().join("serve.log");
    let server = serve_with_env(cwd.path(), &data, &[], &log);
    let db = format!("sqlite://{}", data.join("insights.db").display());
    let store = SqliteStore::connect(&db, 1).await.unwrap();

    let (status, body) = post(
        &server.base,
        &token(&data, TENANT_A),
        &invite("live-1", TENANT_A),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let rec = recording_when(&store, a, "live-1", |_| true).await;
    assert!(rec.is_some(), "the invite was not recorded");

    // Fabrikam's (valid) token names Contoso's live call: ignored.
    let (status, _) = post(&server.base, &token(&data, TENANT_B), &ended("live-1", 487)).await;
    assert_eq!(status, 202);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rec = store
        .recording_by_external_call_id(a, "live-1")
        .await
        .unwrap();
    assert!(
        rec.ended_at.is_none(),
        "another tenant ended the call: {:?}",
        rec.status
    );
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("insights_gateway_foreign_notifications_total") && l.ends_with(" 1")
        ),
        "the ignored notification is not counted"
    );

    // Contoso's own hang-up ends it.
    let (status, _) = post(&server.base, &token(&data, TENANT_A), &ended("live-1", 200)).await;
    assert_eq!(status, 202);
    let rec = recording_when(&store, a, "live-1", |r| r.ended_at.is_some()).await;
    assert!(rec.is_some(), "the creator's hang-up did not end the call");
    drop(server);
}

/// Sends raw request bytes and returns what the server answered within
/// `wait` (the status line, or "" if it said nothing).
fn raw_exchange(base: &str, request: &[u8], wait: Duration) -> String {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(request).unwrap();
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        Err(_) => String::new(),
    }
}

/// The webhook validates the bearer token before it reads the body: an
/// unauthenticated caller who announces a large body and sends a byte of
/// it is answered 401 at once (the gateway does not wait for or buffer
/// the body), also when the body would be too large; an authenticated
/// caller's oversized batch is 413.
#[test]
fn the_webhook_checks_the_token_before_reading_the_body() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let log = cwd.path().join("serve.log");
    let server = serve_with_env(cwd.path(), &data, &[], &log);

    let head = |auth: &str, len: usize| {
        format!(
            "POST /api/calls HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{auth}content-length: {len}\r\n\r\n{{"
        )
        .into_bytes()
    };
    let started = Instant::now();
    let line = raw_exchange(&server.base, &head("", 3_000_000), Duration::from_secs(5));
    assert!(
        line.contains(" 401"),
        "an unauthenticated body was waited for: `{line}` after {:?}",
        started.elapsed()
    );
    let line = raw_exchange(
        &server.base,
        &head("authorization: Bearer not-a-jwt\r\n", 50_000_000),
        Duration::from_secs(5),
    );
    assert!(line.contains(" 401"), "`{line}`");

    let good = token(&data, TENANT_A);
    let line = raw_exchange(
        &server.base,
        &head(&format!("authorization: Bearer {good}\r\n"), 50_000_000),
        Duration::from_secs(5),
    );
    assert!(line.contains(" 413"), "`{line}`");
}
