//! Issue 17 §1, pause and resume, through the real `insights serve`:
//! Teams is played by the call simulator (callback tokens signed like
//! Microsoft's, every `updateRecordingStatus` to the Graph stand-in).
//!
//! The recorded user pauses their live call through the API while the
//! "card details" are read out (a 880 Hz tone in their audio), a
//! supervisor resumes it. The stored audio has no slot of the paused
//! interval (no 880 Hz, and shorter by the pause), the gap is stored
//! with who and when, both requests are audited (ids only), Teams heard
//! `notRecording` and `recording` again, and nobody else may pause: a
//! compliance officer lacks the permission (403), another user does not
//! see the call (404).

use std::time::{Duration, Instant};

use bot_gateway::simulator::{SimParticipant, SimulatedCall, TokenSource};
use insights_core::domain::*;
use insights_core::store::prelude::*;
use serde_json::Value;

use crate::accounts::{Session, sign_in_new_user_with};
use crate::recording_policy::{MEDIA_TOKEN, Teams, recording};

/// Seconds of the call, and where the card details are read out.
const CALL_SECS: f64 = 12.0;
const SECRET_FROM: f64 = 3.0;
const SECRET_TO: f64 = 8.0;
/// When (after the first audio) the user pauses and the supervisor
/// resumes: ≥ 0.8 s around the secret.
const PAUSE_AT: f64 = 2.0;
const RESUME_AT: f64 = 9.2;

fn tone(hz: f64, from: f64, to: f64, out: &mut [i16]) {
    let (a, b) = ((from * 16_000.0) as usize, (to * 16_000.0) as usize);
    for (i, s) in out.iter_mut().enumerate().take(b).skip(a) {
        let t = i as f64 / 16_000.0;
        *s = (6_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
    }
}

/// Power of `hz` in `x` (16 kHz), per sample (Goertzel).
fn power(x: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 16_000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.len().max(1) as f64).powi(2)
}

fn session(t: &Teams, base: &str, email: &str, role: &str, extra: &[&str]) -> Session {
    let env: Vec<(&str, &str)> = t
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sign_in_new_user_with(
        t.cwd.path(),
        &t.data,
        &env,
        base,
        Some("contoso"),
        email,
        role,
        extra,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_recorded_user_pauses_a_supervisor_resumes_and_nothing_of_the_pause_is_stored() {
    let dir = uuid::Uuid::new_v4();
    let t = Teams::start(&[("contoso", dir)], &[]).await;
    let tenant = t.store.tenant_by_name("contoso").await.unwrap().id;
    let alice_oid = t.user(tenant, "alice@contoso.com", &["trading"]).await;
    let _ = t.user(tenant, "bob@contoso.com", &["trading"]).await;
    let users = t.store.list_directory_users(tenant).await.unwrap();
    let uid = |email: &str| {
        users
            .iter()
            .find(|u| u.email.as_deref() == Some(email))
            .unwrap()
            .id
            .to_string()
    };
    let (alice_uid, bob_uid) = (uid("alice@contoso.com"), uid("bob@contoso.com"));
    let base = t.base();
    let (alice, sam, bob, carl) = tokio::task::block_in_place(|| {
        (
            session(
                &t,
                &base,
                "alice@contoso.com",
                "user",
                &["--directory-user", &alice_uid],
            ),
            session(&t, &base, "sam@contoso.com", "supervisor", &[]),
            session(
                &t,
                &base,
                "bob@contoso.com",
                "user",
                &["--directory-user", &bob_uid],
            ),
            session(&t, &base, "carl@contoso.com", "compliance-officer", &[]),
        )
    });
    let http = reqwest::Client::new();
    let call_api = |s: &Session, method: &str, path: String| {
        let req = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(&s.token);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // Alice's audio: 220 Hz, the card details (880 Hz) from 3 to 8 s.
    let n = (CALL_SECS * 16_000.0) as usize;
    let mut mine = vec![0i16; n];
    tone(220.0, 0.0, CALL_SECS, &mut mine);
    tone(880.0, SECRET_FROM, SECRET_TO, &mut mine);
    let mut theirs = vec![0i16; n];
    tone(330.0, 0.0, CALL_SECS, &mut theirs);
    let people = vec![
        SimParticipant {
            name: "Recorded Person".into(),
            identity: "alice@contoso.com".into(),
            object_id: Some(alice_oid.clone()),
            pcm: mine,
        },
        SimParticipant {
            name: "Customer".into(),
            identity: "+14255550123".into(),
            object_id: None,
            pcm: theirs,
        },
    ];
    let mut call = SimulatedCall::new(
        base.clone(),
        dir,
        people,
        TokenSource::Bearer(t.graph_token(dir)),
        MEDIA_TOKEN,
    );
    call.speed = 1.0;
    let call_id = call.call_id.clone();
    let run = tokio::spawn(async move { call.run().await });

    // The first audio: the primary stream's row is stored.
    let rec = recording(&t.store, tenant, &call_id, |r| !r.streams.is_empty()).await;
    let t0 = Instant::now();
    let id = rec.id.to_string();
    let at = |secs: f64| tokio::time::sleep_until((t0 + Duration::from_secs_f64(secs)).into());

    // Nobody else may pause it.
    let path = |verb: &str| format!("/api/recordings/{id}/{verb}");
    let (status, body) = call_api(&carl, "POST", path("pause")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("permission-denied"))
    );
    let (status, _) = call_api(&bob, "POST", path("pause")).await;
    assert_eq!(status, 404, "another user does not see the call");
    let (status, body) = call_api(&alice, "POST", path("resume")).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("not-paused")));

    // Alice pauses before the card details.
    at(PAUSE_AT).await;
    let (status, paused) = call_api(&alice, "POST", path("pause")).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["applied"], true);
    let gap_id = paused["gap"]["id"].as_str().unwrap().to_owned();
    assert!(paused["gap"]["started_at"].is_string());
    assert_eq!(paused["gap"]["requested_by"], alice.account_id.as_str());
    let (status, body) = call_api(&sam, "POST", path("pause")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already-paused"))
    );
    let statuses = t.statuses(&call_id, 2).await;
    assert_eq!(statuses, ["recording", "notRecording"]);

    // The supervisor resumes after them.
    at(RESUME_AT).await;
    let (status, resumed) = call_api(&sam, "POST", path("resume")).await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["gap"]["id"], gap_id.as_str());
    assert!(resumed["gap"]["ended_at"].is_string());
    assert_eq!(resumed["gap"]["resumed_by"], sam.account_id.as_str());

    let report = run.await.unwrap().unwrap();
    assert_eq!(
        t.statuses(&call_id, 4).await,
        ["recording", "notRecording", "recording", "notRecording"]
    );
    let stored = recording(&t.store, tenant, &call_id, |r| {
        r.status == RecordingStatus::Stored
    })
    .await;
    assert_eq!(report.recording_id, stored.id.to_string());
    let (status, _) = call_api(&alice, "POST", path("resume")).await;
    assert_eq!(status, 409, "the call is over");

    // The gap: who and when, in the recording's detail.
    let (status, detail) = call_api(&sam, "GET", format!("/api/recordings/{id}")).await;
    assert_eq!(status, 200);
    let gaps = detail["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{detail}");
    let g = &gaps[0];
    assert_eq!(g["reason"], "paused");
    assert_eq!(g["requested_by"], alice.account_id.as_str());
    assert_eq!(g["resumed_by"], sam.account_id.as_str());
    let ts = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let paused_ms = (ts(&g["ended_at"]) - ts(&g["started_at"])).num_milliseconds();
    let asked_ms = ((RESUME_AT - PAUSE_AT) * 1000.0) as i64;
    assert!(
        (paused_ms - asked_ms).abs() < 1_500,
        "paused {paused_ms} ms, asked for {asked_ms} ms"
    );
    assert!(ts(&g["started_at"]) >= ts(&g["requested_at"]));

    // The stored audio: no slot of the pause, no card details.
    let media = http
        .get(format!("{base}/api/recordings/{id}/media"))
        .bearer_auth(&sam.token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let decoded = recorder::decode_ogg_opus(std::io::Cursor::new(media), 16_000).unwrap();
    for (i, ch) in decoded.channels.iter().enumerate() {
        let (secret, voice) = (power(ch, 880.0), power(ch, 220.0).max(power(ch, 330.0)));
        assert!(
            secret * 1_000.0 < voice,
            "channel {i}: 880 Hz (paused) at {secret}, voices at {voice}"
        );
    }
    // Alice's side: where her 220 Hz is.
    let left = decoded
        .channels
        .iter()
        .max_by(|a, b| power(a, 220.0).total_cmp(&power(b, 220.0)))
        .unwrap();
    let audio_ms = left.len() as i64 * 1000 / 16_000;
    let want_ms = (CALL_SECS * 1000.0) as i64 - paused_ms;
    assert!(
        (audio_ms - want_ms).abs() < 1_000,
        "{audio_ms} ms of audio, {want_ms} ms expected (the call less the pause)"
    );
    // Alice is heard before and after the pause.
    let second = 16_000;
    for (what, part) in [
        ("before", &left[..second]),
        ("after", &left[left.len() - second..]),
    ] {
        let (v, s) = (power(part, 220.0), power(part, 880.0));
        assert!(v > 100.0 * s.max(1e-9), "{what}: 220 Hz {v}, 880 Hz {s}");
    }

    // Audited, ids only.
    for (action, who) in [
        (AuditAction::RecordingPause, &alice),
        (AuditAction::RecordingResume, &sam),
    ] {
        let events = t.audit(tenant, action).await;
        assert_eq!(events.len(), 1, "{action}: {events:?}");
        let e = &events[0];
        assert_eq!(e.actor, who.account_id);
        assert_eq!(e.recording_id, Some(stored.id));
        assert_eq!(e.details, serde_json::json!({ "gap_id": gap_id }));
    }
    t.ms.assert_no_problems();
    let log = std::fs::read_to_string(&t.log).unwrap();
    assert!(log.contains("recording paused"), "{log}");
    for secret in ["alice@", "4255550123"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

fn browser_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("browser")
}

/// The recording page of a live call in Chromium: the recorded user
/// pauses with the button, the timeline shows the paused interval, and
/// resumes (`tests/browser/pause.js`); the gap is stored and Teams was
/// told both times.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_recording_page_pauses_and_resumes_a_live_call_in_chromium() {
    let dir = uuid::Uuid::new_v4();
    let t = Teams::start(&[("contoso", dir)], &[]).await;
    let tenant = t.store.tenant_by_name("contoso").await.unwrap().id;
    let alice_oid = t.user(tenant, "alice@contoso.com", &[]).await;
    let alice_uid = t
        .store
        .list_directory_users(tenant)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.directory_object_id.as_deref() == Some(alice_oid.as_str()))
        .unwrap()
        .id
        .to_string();
    let base = t.base();
    let alice = tokio::task::block_in_place(|| {
        session(
            &t,
            &base,
            "alice@contoso.com",
            "user",
            &["--directory-user", &alice_uid],
        )
    });
    let secs = 40;
    let pcm = |hz: f64| {
        let mut v = vec![0i16; secs * 16_000];
        tone(hz, 0.0, secs as f64, &mut v);
        v
    };
    let people = vec![
        SimParticipant {
            name: "Recorded Person".into(),
            identity: "alice@contoso.com".into(),
            object_id: Some(alice_oid.clone()),
            pcm: pcm(220.0),
        },
        SimParticipant {
            name: "Customer".into(),
            identity: "+14255550123".into(),
            object_id: None,
            pcm: pcm(330.0),
        },
    ];
    let mut call = SimulatedCall::new(
        base.clone(),
        dir,
        people,
        TokenSource::Bearer(t.graph_token(dir)),
        MEDIA_TOKEN,
    );
    call.speed = 1.0;
    let call_id = call.call_id.clone();
    let run = tokio::spawn(async move { call.run().await });
    let rec = recording(&t.store, tenant, &call_id, |r| !r.streams.is_empty()).await;

    let shots = std::env::var_os("INSIGHTS_UPDATE_SCREENSHOTS")
        .map(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("docs")
                .join("screenshots")
        })
        .unwrap_or_else(|| t.cwd.path().to_path_buf());
    let spec = serde_json::json!({
        "base": base,
        "tenant": "contoso",
        "password": crate::accounts::PASSWORD,
        "user": { "email": "alice@contoso.com", "seed": alice.totp_seed },
        "recording": rec.id,
        "screenshots": shots,
    });
    let spec_path = t.cwd.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    assert!(
        browser_dir()
            .join("node_modules")
            .join("playwright-core")
            .is_dir(),
        "run `npm ci --prefix tests/browser` (scripts/test.sh does)"
    );
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new("node")
            .arg(browser_dir().join("pause.js"))
            .arg(&spec_path)
            .output()
            .expect("node runs")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("pause.js printed no report ({e}): {stdout}\n{stderr}"));
    let failed: Vec<&Value> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] != true)
        .collect();
    assert!(failed.is_empty(), "browser steps failed: {failed:#?}");
    assert_eq!(report["steps"].as_array().unwrap().len(), 3, "{report}");

    // What the clicks did, in the store and at Teams.
    let gaps = t.store.recording_gaps(tenant, rec.id).await.unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0].started_at.is_some() && gaps[0].ended_at.is_some());
    assert_eq!(gaps[0].requested_by, alice.account_id);
    assert_eq!(
        gaps[0].resumed_by.as_deref(),
        Some(alice.account_id.as_str())
    );
    assert_eq!(
        t.statuses(&call_id, 3).await,
        ["recording", "notRecording", "recording"]
    );
    run.await.unwrap().unwrap();
    t.ms.assert_no_problems();
}
