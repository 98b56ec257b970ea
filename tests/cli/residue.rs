//! Issue 13 §10, residue, through the real binary: after an erasure on
//! SQLite no erased identifier or spoken word is left in the raw database
//! or WAL files (full-text index segments, old page images), and the
//! serve log keeps non-personal decimal numbers intact.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;

use crate::e2e_call::{add_tenant, simulate};
use crate::gateway_trust::tone_wav;
use crate::{insights, serve_with_env};

const SUBJECT_EMAIL: &str = "kim.quixotic@example.org";
const SUBJECT_NAME: &str = "Kim Quixotic";
const SUBJECT_PHONE: &str = "+15557654321";
/// What the subject said (porter stems them to themselves, so they are
/// the index's terms as well as the stored text).
const SPOKEN: &[&str] = &["zanzibar", "quokka", "xylophon"];

/// One stored call of the tenant: the recorded agent and the subject,
/// each with a transcript line; committed through the store (WAL mode).
async fn seed(data: &Path) {
    let url = format!("sqlite://{}", data.join("insights.db").display());
    let store = SqliteStore::connect(&url, 1).await.unwrap();
    let tenant = store.tenant_by_name("contoso").await.unwrap().id;
    for n in 0..3 {
        let mut rec = Recording::new(
            tenant,
            RecordingKind::Call,
            Direction::Inbound,
            Utc::now() - chrono::Duration::hours(n + 1),
        );
        let agent = Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Caller,
            display_name: Some("Agent Smith".into()),
            phone_number: None,
            uri: None,
            email: Some("agent@contoso.com".into()),
            directory_user_id: None,
            recorded_user: true,
            joined_ms: None,
            left_ms: None,
        };
        let subject = Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Callee,
            display_name: Some(SUBJECT_NAME.into()),
            phone_number: Some(SUBJECT_PHONE.into()),
            uri: None,
            email: Some(SUBJECT_EMAIL.into()),
            directory_user_id: None,
            recorded_user: false,
            joined_ms: None,
            left_ms: None,
        };
        rec.participants = vec![agent.clone(), subject.clone()];
        rec.status = RecordingStatus::Stored;
        store.insert_recording(tenant, &rec).await.unwrap();
        let segment = |p: &Participant, start: i64, text: &str| TranscriptSegment {
            id: SegmentId::new(),
            recording_id: rec.id,
            participant_id: Some(p.id),
            start_ms: start,
            end_ms: start + 900,
            text: text.into(),
            confidence: 0.9,
            language: Some("en".into()),
        };
        store
            .put_transcript_segments(
                tenant,
                rec.id,
                &[
                    segment(&agent, 0, "Good morning, how can I help?"),
                    segment(
                        &subject,
                        1000,
                        &format!("My password is {} {} {}.", SPOKEN[0], SPOKEN[1], SPOKEN[2]),
                    ),
                ],
            )
            .await
            .unwrap();
    }
    store.close().await;
}

/// The raw bytes of the database file and its WAL (if any).
fn raw_files(data: &Path) -> Vec<(String, Vec<u8>)> {
    ["insights.db", "insights.db-wal"]
        .iter()
        .filter_map(|f| {
            std::fs::read(data.join(f))
                .ok()
                .map(|b| ((*f).to_owned(), b))
        })
        .collect()
}

/// Which needles occur (case-insensitively) in which raw file.
fn found(files: &[(String, Vec<u8>)], needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    for (name, bytes) in files {
        let lower = bytes.to_ascii_lowercase();
        for n in needles {
            let n = n.to_ascii_lowercase();
            if lower.windows(n.len()).any(|w| w == n.as_bytes()) {
                hits.push(format!("`{n}` in {name}"));
            }
        }
    }
    hits
}

/// `insights gdpr erase` of a subject while `insights serve` holds the
/// database open (so the WAL stays): afterwards neither the database file
/// nor the WAL holds the subject's e-mail, name, number or spoken words
/// anywhere, including the full-text indexes' old segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_identifier_or_spoken_word_in_the_sqlite_files() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let d = data.to_str().unwrap().to_owned();
    add_tenant(cwd.path(), &d, &[], "contoso");
    seed(&data).await;
    let needles: Vec<&str> = [SUBJECT_EMAIL, "quixotic", &SUBJECT_PHONE[1..]]
        .into_iter()
        .chain(SPOKEN.iter().copied())
        .collect();
    // The serve process keeps connections open: its WAL stays in place.
    let server = serve_with_env(cwd.path(), &data, &[], &cwd.path().join("serve.log"));
    let before = found(&raw_files(&data), &needles);
    assert!(
        before.iter().any(|h| h.contains(SPOKEN[0]))
            && before.iter().any(|h| h.contains("quixotic")),
        "the seeded data is not in the raw files: {before:?}"
    );

    let out = insights(
        cwd.path(),
        &[
            "gdpr",
            "erase",
            "--tenant",
            "contoso",
            "--email",
            SUBJECT_EMAIL,
            "--reason",
            "Art. 17 request 7",
            "--certificate",
            cwd.path().join("cert.json").to_str().unwrap(),
            "--data-dir",
            &d,
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("completed") || stdout.contains("deferred"),
        "{stdout}"
    );

    // While serve still has the database open.
    let after = found(&raw_files(&data), &needles);
    assert!(
        after.is_empty(),
        "erased data left in the raw files: {after:?}"
    );
    drop(server);
    let after = found(&raw_files(&data), &needles);
    assert!(
        after.is_empty(),
        "erased data left after serve stopped: {after:?}"
    );

    // The erasure did what it says: search finds the subject no more.
    let out = insights(
        cwd.path(),
        &[
            "gdpr",
            "find",
            "--tenant",
            "contoso",
            "--email",
            SUBJECT_EMAIL,
            "--data-dir",
            &d,
        ],
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(!text.contains("quixotic"), "{text}");
}

/// One simulated call through `insights serve` with
/// `worker.max_media_duration_secs = 1`:
/// * the transcription decodes the stored 3 s call as a stream and stops
///   at the maximum: the job fails for good, saying why (without the
///   limit it would wait for the speech-to-text engine);
/// * the log redactor masks phone numbers but not measurements: the
///   upload's duration (`secs=0.…`) stays a number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_longer_than_the_maximum_is_not_decoded_and_logs_keep_decimals() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let d = data.to_str().unwrap().to_owned();
    add_tenant(cwd.path(), &d, &[], "contoso");
    let log = cwd.path().join("serve.log");
    let env = [
        (
            "INSIGHTS_WORKER__MAX_MEDIA_DURATION_SECS".to_owned(),
            "1".to_owned(),
        ),
        (
            "INSIGHTS_WORKER__POLL_INTERVAL_MS".to_owned(),
            "100".to_owned(),
        ),
    ];
    let server = serve_with_env(cwd.path(), &data, &env, &log);
    let wav = cwd.path().join("tone.wav");
    tone_wav(&wav, 3);
    let rec = simulate(
        cwd.path(),
        &[],
        &[
            "--data-dir",
            &d,
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
    );
    let url = format!("sqlite://{}", data.join("insights.db").display());
    let store = SqliteStore::connect(&url, 1).await.unwrap();
    let tenant = store.tenant_by_name("contoso").await.unwrap().id;
    let deadline = Instant::now() + Duration::from_secs(60);
    let reason = loop {
        let jobs = store.list_jobs(tenant, rec).await.unwrap_or_default();
        if let Some(e) = jobs.iter().find_map(|j| j.last_error.clone())
            && e.contains("longer than")
        {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no transcription failed at the maximum duration: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(reason.contains("maximum of 1 s"), "{reason}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    drop(server);

    let line = text
        .lines()
        .find(|l| l.contains("recording uploaded"))
        .unwrap_or_else(|| panic!("no upload logged:\n{text}"));
    let secs = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("secs="))
        .unwrap_or_else(|| panic!("no secs field: {line}"));
    assert!(
        secs.parse::<f64>().is_ok(),
        "the upload duration was mangled: {line}"
    );
    assert!(
        !text.contains(".[phone]") && !text.contains("[phone]."),
        "a decimal was masked as a phone number:\n{text}"
    );
    assert!(!text.contains("4255550100"), "a phone number was logged");
}

/// `/metrics` labels are bounded: a request with a made-up method is
/// counted as `other`, never under its own name.
#[test]
fn metrics_count_made_up_methods_as_other() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let server = serve_with_env(cwd.path(), &data, &[], &cwd.path().join("serve.log"));
    let http = reqwest::blocking::Client::new();
    let odd = reqwest::Method::from_bytes(b"XSPAM-7731").unwrap();
    let _ = http
        .request(odd, format!("{}/healthz", server.base))
        .send()
        .unwrap();
    let text = http
        .get(format!("{}/metrics", server.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!text.contains("XSPAM-7731"), "{text}");
    assert!(
        text.lines().any(
            |l| l.starts_with("insights_http_requests_total") && l.contains("method=\"other\"")
        ),
        "{text}"
    );
}

/// `[metrics] listen` and `bearer_token`: `/metrics` moves to its own
/// address (the main listener no longer serves it) and needs the token.
#[test]
fn metrics_on_their_own_listener_need_the_token() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = "scrape-token-0123456789";
    let env = [
        (
            "INSIGHTS_METRICS__LISTEN".to_owned(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "INSIGHTS_METRICS__BEARER_TOKEN".to_owned(),
            token.to_owned(),
        ),
    ];
    let server = serve_with_env(cwd.path(), &data, &env, &cwd.path().join("serve.log"));
    let http = reqwest::blocking::Client::new();
    let main = http
        .get(format!("{}/metrics", server.base))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(
        main.status(),
        404,
        "the main listener still serves /metrics"
    );
    let at = format!("http://127.0.0.1:{port}/metrics");
    let started = Instant::now();
    let none = loop {
        match http.get(&at).send() {
            Ok(r) => break r,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("no metrics listener: {e}"),
        }
    };
    assert_eq!(none.status(), 401);
    let wrong = http
        .get(&at)
        .bearer_auth("scrape-token-wrong-000")
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = http.get(&at).bearer_auth(token).send().unwrap();
    assert_eq!(ok.status(), 200);
    let text = ok.text().unwrap();
    assert!(text.contains("insights_http_requests_total"), "{text}");
}

/// Signing-key, token and provider endpoints must be HTTPS: a plain-HTTP
/// one is a configuration error naming its key, unless the test-only
/// `allow_insecure_http` is set.
#[test]
fn plain_http_key_token_and_provider_endpoints_are_configuration_errors() {
    let cwd = tempfile::tempdir().unwrap();
    let cases = [
        (
            "INSIGHTS_GATEWAY__OPENID_CONFIGURATION_URL",
            "http://10.0.0.5/openid",
            "gateway.openid_configuration_url",
        ),
        (
            "INSIGHTS_GATEWAY__TOKEN_ENDPOINT",
            "http://10.0.0.5/{tenant}/token",
            "gateway.token_endpoint",
        ),
        (
            "INSIGHTS_DIRECTORY__TOKEN_URL",
            "http://10.0.0.5/{tenant}/token",
            "directory.token_url",
        ),
        (
            "INSIGHTS_AUTH__OIDC__DISCOVERY_URL",
            "http://10.0.0.5/.well-known/openid-configuration",
            "auth.oidc.discovery_url",
        ),
        (
            "INSIGHTS_AI__AZURE_SPEECH__ENDPOINT",
            "http://10.0.0.5",
            "ai.azure_speech.endpoint",
        ),
    ];
    for (var, value, key) in cases {
        let out = insights(cwd.path(), &["config"])
            .env(var, value)
            .env("INSIGHTS_AUTH__OIDC__AUDIENCE", "api://insights")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {err}");
        assert!(err.contains(key) && err.contains("https"), "{var}: {err}");
        let out = insights(cwd.path(), &["config"])
            .env(var, value)
            .env("INSIGHTS_AUTH__OIDC__AUDIENCE", "api://insights")
            .env("INSIGHTS_ALLOW_INSECURE_HTTP", "true")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{var} with allow_insecure_http: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A local model server may be plain HTTP on the loopback address.
    let out = insights(cwd.path(), &["config"])
        .env("INSIGHTS_AI__OPENAI__BASE_URL", "http://127.0.0.1:11434/v1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A stand-in OpenID provider: every request gets its discovery document.
fn discovery_stand_in() -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let doc = serde_json::json!({
        "issuer": format!("{base}/tenant/v2.0"),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/keys"),
    })
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut s = &stream;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{doc}",
                doc.len()
            );
        }
    });
    base
}

/// Pending OIDC sign-ins are capped per client address: one address
/// starting ten thousand sign-ins (the whole table) only replaces its
/// own, and someone else can still sign in.
#[test]
fn one_address_cannot_fill_the_pending_sign_ins() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let provider = discovery_stand_in();
    let env: Vec<(String, String)> = [
        ("INSIGHTS_ALLOW_INSECURE_HTTP", "true".to_owned()),
        (
            "INSIGHTS_AUTH__OIDC__DISCOVERY_URL",
            format!("{provider}/.well-known/openid-configuration"),
        ),
        ("INSIGHTS_AUTH__OIDC__AUDIENCE", "api://insights".to_owned()),
        (
            "INSIGHTS_AUTH__OIDC__LOGIN_CLIENT_ID",
            "web-client".to_owned(),
        ),
        (
            "INSIGHTS_AUTH__OIDC__LOGIN_REDIRECT_URI",
            "https://insights.example.com/api/auth/oidc/callback".to_owned(),
        ),
        (
            "INSIGHTS_AUTH__TRUSTED_PROXIES",
            "[\"127.0.0.1/32\"]".to_owned(),
        ),
        // Sign-in re-checks directory users with Graph: the directory
        // app's credentials are required (the schedule stays off).
        ("INSIGHTS_DIRECTORY__CLIENT_ID", "directory-app".to_owned()),
        (
            "INSIGHTS_DIRECTORY__GRAPH_BASE_URL",
            format!("{provider}/v1.0"),
        ),
        (
            "INSIGHTS_DIRECTORY__TOKEN_URL",
            format!("{provider}/{{tenant}}/oauth2/v2.0/token"),
        ),
        ("INSIGHTS_DIRECTORY__INTERVAL_SECS", "0".to_owned()),
        ("INSIGHTS_GRAPH_CLIENT_SECRET", "unused".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let server = serve_with_env(cwd.path(), &data, &env, &cwd.path().join("serve.log"));
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = |from: &str| {
        http.get(format!("{}/api/auth/oidc/login?return_to=/", server.base))
            .header("x-forwarded-for", from)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    for i in 0..10_000 {
        let status = start("203.0.113.9");
        assert_eq!(status, 302, "sign-in start {i} from the flooding address");
    }
    assert_eq!(
        start("198.51.100.7"),
        302,
        "someone else was locked out of sign-in"
    );
}
