//! Issue 6, end to end through the binary: a simulated two-party call
//! (espeak-ng speech, a different sentence per side) → the gateway stores
//! it → the uploader queues a transcription → the worker embedded in
//! `insights serve` runs the real pipeline with the offline Whisper
//! engine → the job is `succeeded` in `GET /api/recordings/{id}/jobs` →
//! every segment is attributed to the participant who spoke it → `POST
//! /api/recordings/search` for a word only the callee said finds the
//! recording with the word highlighted in a snippet.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2e_call::{add_tenant, simulate, speak};
use crate::serve_with_env;

fn lower(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_lowercase()
}

#[test]
fn a_simulated_call_becomes_a_searchable_per_speaker_transcript() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let env: Vec<(String, String)> =
        vec![("INSIGHTS_WORKER__POLL_INTERVAL_MS".into(), "200".into())];
    add_tenant(cwd.path(), &d, &env, "contoso");
    // The caller never says "invoice"; the callee never says "report".
    let caller_wav = speak(
        cwd.path(),
        "caller",
        "Good morning. I am calling about the monthly report for the London office.",
        "en-us",
    );
    let callee_wav = speak(
        cwd.path(),
        "callee",
        "Hello. The invoice was approved and paid yesterday afternoon.",
        "en-us",
    );

    let logs = cwd.path().join("serve.log");
    let server = serve_with_env(cwd.path(), &data, &env, &logs);
    let id = simulate(
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
            &format!("Carol Caller:carol@contoso.com:{}", caller_wav.display()),
            "--participant",
            &format!("Dave Callee:+14255550123:{}", callee_wav.display()),
        ],
    );

    let http = reqwest::blocking::Client::new();
    let token = crate::accounts::sign_in_new_user(
        cwd.path(),
        &data,
        &server.base,
        Some("contoso"),
        "officer@contoso.com",
        "compliance-officer",
    )
    .token;
    let get = |path: String| -> Value {
        let res = http
            .get(format!("{}{path}", server.base))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        res.json().unwrap()
    };

    // The job, as the API shows it.
    let started = Instant::now();
    let job = loop {
        let jobs = get(format!("/api/recordings/{id}/jobs"));
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
            started.elapsed() < Duration::from_secs(300),
            "no finished transcription within 300 s: {jobs}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(job["state"], "succeeded", "{job}");
    eprintln!(
        "transcribed in {:.1} s (from upload to job done)",
        started.elapsed().as_secs_f64()
    );

    let detail = get(format!("/api/recordings/{id}"));
    let parts = detail["recording"]["participants"].as_array().unwrap();
    let id_of = |role: &str| {
        parts
            .iter()
            .find(|p| p["role"] == role)
            .map(|p| p["id"].clone())
            .unwrap()
    };
    let (caller, callee) = (id_of("caller"), id_of("callee"));
    let transcript = get(format!("/api/recordings/{id}/transcript"));
    let segs = transcript["segments"].as_array().unwrap();
    assert!(!segs.is_empty(), "{transcript}");
    for s in segs {
        eprintln!(
            "{} {}-{} ms",
            if s["participant_id"] == caller {
                "caller"
            } else {
                "callee"
            },
            s["start_ms"],
            s["end_ms"]
        );
    }
    let said_by = |word: &str| -> Vec<Value> {
        segs.iter()
            .filter(|s| lower(&s["text"]).contains(word))
            .map(|s| s["participant_id"].clone())
            .collect()
    };
    assert!(
        segs.iter()
            .all(|s| s["participant_id"] == caller || s["participant_id"] == callee),
        "{transcript}"
    );
    let invoice = said_by("invoice");
    assert!(
        !invoice.is_empty(),
        "the callee's word was recognised: {transcript}"
    );
    assert!(invoice.iter().all(|p| *p == callee), "{transcript}");
    let report = said_by("report");
    assert!(
        !report.is_empty(),
        "the caller's word was recognised: {transcript}"
    );
    assert!(report.iter().all(|p| *p == caller), "{transcript}");

    // Search finds it, with the word highlighted.
    let res: Value = http
        .post(format!("{}/api/recordings/search", server.base))
        .bearer_auth(&token)
        .json(&json!({ "transcript_text": "invoice" }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let items = res["items"].as_array().unwrap();
    let hit = items
        .iter()
        .find(|i| i["recording"]["id"] == id.to_string())
        .unwrap_or_else(|| panic!("search did not find the recording: {res}"));
    let snippets = hit["snippets"].as_array().unwrap();
    assert!(
        snippets.iter().any(|s| lower(s).contains("[[invoice]]")),
        "{snippets:?}"
    );
    // The recap follows: every item cites segments of this transcript,
    // made by the local extractive engine (no cloud AI for this tenant).
    let started = Instant::now();
    loop {
        let jobs = get(format!("/api/recordings/{id}/jobs"));
        let recap = jobs["jobs"].as_array().and_then(|a| {
            a.iter()
                .find(|j| j["kind"] == "recap" && j["state"] != "queued" && j["state"] != "running")
                .cloned()
        });
        if let Some(j) = recap {
            assert_eq!(j["state"], "succeeded", "{j}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no finished recap within 120 s: {jobs}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let detail = get(format!("/api/recordings/{id}"));
    let items = detail["insights"].as_array().unwrap();
    assert!(
        items.iter().any(|i| i["kind"] == "summary"),
        "a summary: {detail}"
    );
    let seg_ids: Vec<&Value> = segs.iter().map(|s| &s["id"]).collect();
    for item in items {
        assert_eq!(item["provider"], "local:extractive", "{item}");
        let cites = item["citations"].as_array().unwrap();
        assert!(!cites.is_empty(), "{item}");
        assert!(
            cites.iter().all(|c| seg_ids.contains(&&c["segment_id"])),
            "{item}"
        );
    }

    drop(server);

    // The serve log names nobody and holds none of the recognised words.
    let log = std::fs::read_to_string(&logs).unwrap();
    for secret in [
        "Carol",
        "Dave",
        "carol@contoso.com",
        "4255550123",
        "invoice",
        "afternoon",
        "London",
    ] {
        assert!(!log.contains(secret), "serve log contains `{secret}`");
    }
}
