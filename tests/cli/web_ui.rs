//! Issue 5, end to end in a real browser: `insights serve` with two
//! simulated calls (espeak-ng speech, transcribed by the embedded worker
//! with the offline Whisper engine), then `tests/browser/web_ui.js`
//! drives Debian's headless Chromium through the web UI with
//! playwright-core: TOTP sign-in, search by number and by a spoken word,
//! playback (time advances, no media error, speed), click-to-seek in the
//! transcript, an export of three columns (the downloaded .xlsx is read
//! back here with calamine), a legal hold placed and lifted, the chain
//! verified, the main pages fitting 768 px and 1024 px widths without
//! sideways scrolling, a DPO finding a data subject by number and planning an
//! erasure, a compliance officer refused the admin pages, a platform
//! operator seeing no recordings, CSP violations none, and axe-core on
//! every main page with no serious or critical violation. Issue 19: an
//! administrator adds a DPO (a second administrator approves), whose
//! first sign-in enrols TOTP from the key shown and reaches their pages;
//! a reused code named as such; confirmations; resets; overlapping
//! retention policies; the audit log newest first by person with an
//! actor filter; time zones; From after To refused; Back keeps the
//! search; deep links; officers not shown where media is stored; erasure
//! references and a fully held erasure reported as such. Screenshots go
//! to a temporary folder, or to `docs/screenshots/` with
//! `INSIGHTS_UPDATE_SCREENSHOTS=1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use calamine::{Reader, Xlsx, open_workbook};
use serde_json::{Value, json};

use crate::e2e_call::{add_tenant, simulate, speak};
use crate::serve_with_env;

/// Adds an account (its first sign-in comes once the server runs).
fn add_user(cwd: &Path, d: &str, tenant: Option<&str>, email: &str, role: &str) {
    crate::accounts::add_user(cwd, Path::new(d), &[], tenant, email, role, &[]);
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("browser")
}

#[test]
fn the_web_ui_searches_plays_exports_and_administers_in_chromium() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let s = |v: &str| v.to_owned();
    let env: Vec<(String, String)> = vec![
        (s("INSIGHTS_WORKER__POLL_INTERVAL_MS"), s("200")),
        // Alerts evaluated every 2 s; nothing recorded yet at start, so
        // the no-recordings rule raises one for the Alerts page step.
        (s("INSIGHTS_ALERTS__INTERVAL_SECS"), s("2")),
        (s("INSIGHTS_ALERTS__INITIAL_DELAY_SECS"), s("0")),
        (s("INSIGHTS_ALERTS__NO_RECORDINGS_MINUTES"), s("1")),
        (s("INSIGHTS_ALERTS__BUSINESS_DAYS"), s("daily")),
        (s("INSIGHTS_ALERTS__BUSINESS_HOURS"), s("00:00-24:00")),
    ];
    add_tenant(cwd.path(), &d, &env, "contoso");
    for (tenant, email, role) in [
        (Some("contoso"), "admin@contoso.com", "tenant-admin"),
        (Some("contoso"), "admin2@contoso.com", "tenant-admin"),
        (Some("contoso"), "officer@contoso.com", "compliance-officer"),
        (Some("contoso"), "sup@contoso.com", "supervisor"),
        (Some("contoso"), "dpo@contoso.com", "dpo"),
        (None, "ops@vendor.example", "platform-operator"),
    ] {
        add_user(cwd.path(), &d, tenant, email, role);
    }

    // Call 1: the callee says "invoice" and has the number we search for.
    let caller = speak(
        cwd.path(),
        "caller",
        "Good morning. I am calling about the monthly report for the London office.",
        "en-us",
    );
    let callee = speak(
        cwd.path(),
        "callee",
        "Hello. The invoice was approved and paid yesterday afternoon.",
        "en-us",
    );
    // Call 2: other people, other words.
    let other_a = speak(
        cwd.path(),
        "a2",
        "The weather in Paris is lovely today.",
        "en-us",
    );
    let other_b = speak(
        cwd.path(),
        "b2",
        "Let us meet at the station at noon.",
        "en-us",
    );

    let logs = cwd.path().join("serve.log");
    let server = serve_with_env(cwd.path(), &data, &env, &logs);
    // Every account's first sign-in: TOTP enrolled by the user (every
    // role here may see content, or is an operator), own password.
    let first = |tenant: Option<&str>, email: &str| {
        crate::accounts::first_sign_in(&server.base, tenant, email)
    };
    let admin = first(Some("contoso"), "admin@contoso.com");
    let admin2 = first(Some("contoso"), "admin2@contoso.com");
    let officer = first(Some("contoso"), "officer@contoso.com");
    let sup = first(Some("contoso"), "sup@contoso.com");
    let dpo = first(Some("contoso"), "dpo@contoso.com");
    let ops = first(None, "ops@vendor.example");
    let call = |a: String, b: String| {
        simulate(
            cwd.path(),
            &env,
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
                &a,
                "--participant",
                &b,
            ],
        )
    };
    let id1 = call(
        format!("Carol Caller:carol@contoso.com:{}", caller.display()),
        format!("Dave Callee:+14255550123:{}", callee.display()),
    );
    let id2 = call(
        format!("Erin Example:erin@contoso.com:{}", other_a.display()),
        format!("Frank Field:+442079460958:{}", other_b.display()),
    );

    // Wait (as the officer, in the session of the first sign-in) until
    // both are transcribed and recapped, so the page shows everything.
    let http = reqwest::blocking::Client::new();
    let token = officer.token.clone();
    let started = Instant::now();
    for id in [id1, id2] {
        loop {
            let jobs: Value = http
                .get(format!("{}/api/recordings/{id}/jobs", server.base))
                .bearer_auth(&token)
                .send()
                .unwrap()
                .json()
                .unwrap();
            let finished = |kind: &str| {
                jobs["jobs"].as_array().and_then(|a| {
                    a.iter()
                        .find(|j| {
                            j["kind"] == kind && j["state"] != "queued" && j["state"] != "running"
                        })
                        .map(|j| j["state"].clone())
                })
            };
            if let Some(state) = finished("transcribe") {
                assert_eq!(state, "succeeded", "{jobs}");
                if finished("recap").is_some() {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(400),
                "not transcribed in time: {jobs}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    let shots = match std::env::var_os("INSIGHTS_UPDATE_SCREENSHOTS") {
        Some(_) => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join("screenshots"),
        None => cwd.path().join("screenshots"),
    };
    let downloads = cwd.path().join("downloads");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::create_dir_all(&downloads).unwrap();
    let spec = json!({
        "base": server.base,
        "tenant": "contoso",
        "password": crate::accounts::PASSWORD,
        "admin": { "email": "admin@contoso.com", "seed": admin.totp_seed },
        "admin2": { "email": "admin2@contoso.com", "seed": admin2.totp_seed },
        "officer": { "email": "officer@contoso.com", "seed": officer.totp_seed },
        "supervisor": { "email": "sup@contoso.com", "seed": sup.totp_seed },
        "operator": { "email": "ops@vendor.example", "seed": ops.totp_seed },
        "dpo": { "email": "dpo@contoso.com", "seed": dpo.totp_seed },
        "recording": id1.to_string(),
        "other_recording": id2.to_string(),
        "number": "4255550123",
        "word": "invoice",
        "export_columns": ["recording-id", "started-at", "direction"],
        "screenshots": shots,
        "downloads": downloads,
    });
    let spec_path = cwd.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let modules = browser_dir().join("node_modules");
    assert!(
        modules.join("playwright-core").is_dir() && modules.join("axe-core").is_dir(),
        "run `npm ci --prefix tests/browser` (scripts/test.sh does)"
    );
    let out = Command::new("node")
        .arg(browser_dir().join("web_ui.js"))
        .arg(&spec_path)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("web_ui.js printed no report ({e}): {stdout}\n{stderr}"));
    let failed: Vec<&Value> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] != true)
        .collect();
    assert!(failed.is_empty(), "browser steps failed: {failed:#?}");
    assert!(out.status.success(), "{stderr}");

    // Playback really advanced, and the seek landed on the segment.
    let play = &report["playback"];
    assert!(play["advanced_s"].as_f64().unwrap() > 0.3, "{play}");
    assert_eq!(play["error"], Value::Null, "{play}");
    let (at, target) = (
        play["after_seek_s"].as_f64().unwrap(),
        play["segment_start_s"].as_f64().unwrap(),
    );
    assert!(
        (at - target).abs() < 0.25,
        "seeked to {at}, segment starts at {target}"
    );
    // Accessibility: no serious or critical violation on any main page.
    let axe = report["axe"].as_object().unwrap();
    for page in [
        "login",
        "search",
        "recording",
        "export",
        "audit",
        "holds",
        "settings",
        "users",
        "retention",
        "gdpr",
        "alerts",
    ] {
        assert!(axe.contains_key(page), "axe did not run on {page}");
    }
    for (page, v) in axe {
        assert_eq!(v.as_array().unwrap().len(), 0, "axe on {page}: {v:#}");
    }
    // The export: exactly the three chosen columns, one row per recording.
    let xlsx = PathBuf::from(report["export_file"].as_str().unwrap());
    let mut wb: Xlsx<_> = open_workbook(&xlsx).unwrap();
    let sheet = wb.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(
        rows[0],
        vec!["Recording ID", "Start (UTC)", "Direction"],
        "{rows:?}"
    );
    let mut ids: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![id1.to_string(), id2.to_string()];
    want.sort_unstable();
    assert_eq!(ids, want, "{rows:?}");
    // Screenshots of every page.
    for page in [
        "login",
        "search",
        "search-words",
        "recording",
        "export",
        "audit",
        "holds",
        "settings",
        "users",
        "retention",
        "officer-forbidden",
        "operator",
        "gdpr",
        "alerts",
        "users-added",
        "first-sign-in",
        "audit-people",
        "retention-overlap",
    ] {
        let f = shots.join(format!("{page}.png"));
        assert!(
            std::fs::metadata(&f)
                .map(|m| m.len() > 5000)
                .unwrap_or(false),
            "{f:?}"
        );
    }
    drop(server);

    // Nothing typed into the UI reached the server's log.
    let log = std::fs::read_to_string(&logs).unwrap();
    for secret in [
        "4255550123",
        "invoice",
        "Carol",
        "carol@contoso.com",
        "zoë.dpo@contoso.com",
        "initial password typed in the UI",
        "the new DPO chose this passphrase",
        crate::accounts::PASSWORD,
        crate::accounts::INITIAL_PASSWORD,
    ] {
        assert!(!log.contains(secret), "serve log contains `{secret}`");
    }
}
