//! End-to-end tests of the `insights` binary itself: a fresh data dir,
//! the real process, real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod account_resets;
mod accounts;
mod alerts;
mod audit_verify;
mod bundle_media;
mod completeness;
mod content_access;
mod directory;
mod directory_identity;
mod e2e_call;
#[cfg(feature = "whisper")]
mod e2e_transcript;
mod escalation;
mod first_run;
mod gateway_trust;
mod gdpr_access;
mod gdpr_erase_kill;
mod gdpr_retention;
mod gdpr_wiring;
mod invite_variants;
mod jobs_fault;
mod key_vault;
mod keys_cluster;
mod keys_local;
mod legal_hold;
mod login_attack;
mod meeting_legs;
mod pause;
mod recording_policy;
mod residue;
mod roles;
mod scheduler_lease;
mod serve_hardening;
mod signing_keys;
mod siprec;
mod stateless_api;
mod tls;
#[cfg(feature = "whisper")]
mod transcribe;
mod users;
#[cfg(feature = "whisper")]
mod web_ui;

const BIN: &str = env!("CARGO_BIN_EXE_insights");

/// Runs `insights ARGS` in `cwd` with no INSIGHTS_* variables inherited.
fn insights(cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(cwd).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("INSIGHTS_") {
            c.env_remove(k);
        }
    }
    c
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What test servers set so `insights simulate-call` (the simulator key)
/// is trusted: off by default, as in production.
const TRUST_SIMULATOR: (&str, &str) = ("INSIGHTS_GATEWAY__TRUST_SIMULATOR_KEY", "true");

/// Starts `insights serve` on a free port and waits for its "listening" line
/// (the simulator key trusted).
fn serve(cwd: &Path, data_dir: &Path) -> Server {
    start_serve(
        insights(
            cwd,
            &[
                "serve",
                "--data-dir",
                data_dir.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
        )
        .env(TRUST_SIMULATOR.0, TRUST_SIMULATOR.1)
        .stderr(Stdio::inherit()),
    )
}

/// `insights serve` with extra environment, its logs (stderr) in `log`
/// (the simulator key trusted unless `env` says otherwise).
fn serve_with_env(cwd: &Path, data_dir: &Path, env: &[(String, String)], log: &Path) -> Server {
    let log = std::fs::File::create(log).unwrap();
    start_serve(
        insights(
            cwd,
            &[
                "serve",
                "--data-dir",
                data_dir.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
        )
        .env(TRUST_SIMULATOR.0, TRUST_SIMULATOR.1)
        .envs(env.iter().cloned())
        .stderr(log),
    )
}

fn start_serve(cmd: &mut Command) -> Server {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn insights serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("insights: listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not report its address");
    Server { child, base }
}

#[test]
fn simulated_call_end_to_end_on_sqlite_and_local_files() {
    e2e_call::two_party_call(None, None, "pcm16");
}

#[test]
fn simulated_call_end_to_end_on_sqlite_and_azurite() {
    e2e_call::two_party_call(None, Some(&insights_tests::azurite_endpoint()), "pcm16");
}

#[test]
fn simulated_meeting_end_to_end_on_sqlite_and_azurite() {
    e2e_call::meeting(None, Some(&insights_tests::azurite_endpoint()), "pcm16");
}

/// The adapter sends Opus packets: a call is stored without re-encoding
/// (two mono packet streams muxed into the stereo call file).
#[test]
fn simulated_opus_call_end_to_end_on_sqlite_and_local_files() {
    e2e_call::two_party_call(None, None, "opus");
}

/// Opus packets in a meeting: decoded for the mix and the tracks.
#[test]
fn simulated_opus_meeting_end_to_end_on_sqlite_and_local_files() {
    e2e_call::meeting(None, None, "opus");
}

#[test]
fn simulated_meeting_end_to_end_on_sqlite_and_local_files() {
    e2e_call::meeting(None, None, "pcm16");
}

#[test]
fn simulated_meeting_end_to_end_on_postgres_and_azurite() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    e2e_call::meeting(
        Some(&url),
        Some(&insights_tests::azurite_endpoint()),
        "pcm16",
    );
}

#[test]
fn storage_down_two_minutes_while_twenty_calls_finish() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    e2e_call::storage_outage(&url);
}

#[test]
fn short_calls_all_end_stored_whatever_the_call_end_order() {
    e2e_call::short_calls_all_end_stored(20);
}

#[test]
fn gateway_killed_mid_call_keeps_all_but_the_last_second() {
    e2e_call::kill_mid_call();
}

#[test]
fn simulated_call_end_to_end_on_postgres_and_azurite() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    e2e_call::two_party_call(
        Some(&url),
        Some(&insights_tests::azurite_endpoint()),
        "pcm16",
    );
}

#[test]
fn two_nodes_share_tenant_keks_through_the_database_key_provider() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    keys_cluster::two_nodes_share_keks_and_rotate(&url, &insights_tests::azurite_endpoint());
}

/// Issue 15 §2: any request may reach any API node (sign-ins in progress,
/// export and access-bundle jobs and their files, login throttles).
#[test]
fn two_api_nodes_share_sign_ins_jobs_files_and_throttles() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    stateless_api::two_api_nodes_share_sign_ins_jobs_and_throttles(
        &url,
        &insights_tests::azurite_endpoint(),
    );
}

/// Issue 15 §Proof: an export on an API node killed mid-job finishes
/// through the other node; a sign-in started on it completes there too.
#[test]
fn an_export_on_a_killed_api_node_finishes_through_the_other() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    stateless_api::an_export_on_a_killed_node_finishes_through_the_other(
        &url,
        &insights_tests::azurite_endpoint(),
    );
}

/// Issue 14: `insights keys rotate` killed mid-run resumes when run again.
#[test]
fn a_killed_key_rotation_resumes_through_the_binary() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    keys_cluster::killed_rotation_resumes(&url, &insights_tests::azurite_endpoint());
}

/// `insights keys rotate` keeps the old KEK version while a call is still
/// spooled on a node (its data key is not in the store yet).
#[test]
fn key_rotation_keeps_the_old_kek_while_a_call_is_spooled() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    keys_cluster::spooled_call_survives_rotation(&url);
}

/// Issue 15: two `insights scheduler` processes on one PostgreSQL: one
/// leader per interval, takeover within two lease periods after SIGKILL,
/// a frozen leader fenced out, no duplicate audit event.
#[test]
fn two_schedulers_share_one_lease_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    drop(rt);
    scheduler_lease::two_schedulers_one_leader(&url);
}

#[test]
fn local_file_installation_moves_to_the_database_key_provider() {
    keys_local::migrate_local_file_installation_to_database();
}

#[test]
fn serve_from_nothing_answers_healthz_with_data_only_under_data_dir() {
    let cwd = tempfile::tempdir().unwrap();
    let data_root = tempfile::tempdir().unwrap();
    let data_dir = data_root.path().join("data");

    let started = Instant::now();
    let server = serve(cwd.path(), &data_dir);
    let client = reqwest::blocking::Client::new();
    let res = loop {
        match client.get(format!("{}/healthz", server.base)).send() {
            Ok(r) => break r,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("healthz never answered: {e}"),
        }
    };
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    for c in ["store", "blob", "keys"] {
        assert_eq!(body["components"][c]["status"], "ok", "{body}");
    }
    assert_eq!(body["components"]["store"]["backend"], "sqlite");
    assert_eq!(body["components"]["blob"]["backend"], "local");

    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("insights_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/healthz\""), "{metrics}");

    // The Teams webhook is mounted and refuses unauthenticated callbacks.
    let res = client
        .post(format!("{}/api/calls", server.base))
        .header("content-type", "application/json")
        .body(r#"{"value":[]}"#)
        .send()
        .unwrap();
    assert_eq!(res.status(), 401);

    // A broken component turns health to 503 and names the component,
    // without revealing paths to an unauthenticated caller.
    let blobs = data_dir.join("blobs");
    let key_file = data_dir.join("keys").join("kek.json");
    let saved_keys = std::fs::read(&key_file).unwrap();
    std::fs::rename(&blobs, data_dir.join("blobs.away")).unwrap();
    std::fs::write(&blobs, b"not a directory").unwrap();
    std::fs::write(&key_file, b"{ garbage").unwrap();
    let res = client
        .get(format!("{}/healthz", server.base))
        .send()
        .unwrap();
    assert_eq!(res.status(), 503);
    let text = res.text().unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["components"]["blob"]["status"], "down", "{body}");
    assert_eq!(body["components"]["keys"]["status"], "down", "{body}");
    assert_eq!(body["components"]["store"]["status"], "ok", "{body}");
    assert!(
        !text.contains(data_dir.to_str().unwrap()),
        "health leaks a path: {text}"
    );
    std::fs::remove_file(&blobs).unwrap();
    std::fs::rename(data_dir.join("blobs.away"), &blobs).unwrap();
    std::fs::write(&key_file, saved_keys).unwrap();
    let res = client
        .get(format!("{}/healthz", server.base))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "health did not recover");
    drop(server);

    // Everything lives under the data dir; nothing was written to the cwd.
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "serve wrote into its working directory"
    );
    assert!(data_dir.join("insights.db").is_file());
    assert!(data_dir.join("blobs").is_dir());
    assert!(key_file.is_file());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let outside: Vec<_> = std::fs::read_dir(data_root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("data")]);
}

#[test]
fn tenant_add_creates_container_and_key_and_lists() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let d = data.to_str().unwrap();
    let guid = "6f1c2a57-2f0e-4a8e-9d1b-3c6a2f9e8b10";
    let out = insights(
        cwd.path(),
        &[
            "admin",
            "tenant",
            "add",
            "contoso",
            "--directory-tenant-id",
            guid,
            "--data-dir",
            d,
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
        cwd.path(),
        &["--data-dir", d, "admin", "tenant", "list", "--json"],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let t: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(t["name"], "contoso");
    assert_eq!(t["directory_tenant_id"], guid);
    let id = t["id"].as_str().unwrap().replace('-', "");
    assert!(
        data.join("blobs").join(format!("t-{id}")).is_dir(),
        "tenant container missing"
    );
    let keys = std::fs::read_to_string(data.join("keys").join("kek.json")).unwrap();
    assert!(
        keys.contains(t["id"].as_str().unwrap()),
        "tenant KEK missing from key file"
    );

    // A second tenant with the same name is refused with a clear message.
    let out = insights(
        cwd.path(),
        &["admin", "tenant", "add", "contoso", "--data-dir", d],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    // An invalid name is refused before anything is created.
    let out = insights(
        cwd.path(),
        &["admin", "tenant", "add", "Bad Name!", "--data-dir", d],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tenant name"));
}

#[test]
fn bad_configuration_is_a_clear_error_naming_the_key() {
    let cwd = tempfile::tempdir().unwrap();
    let cfg = cwd.path().join("insights.toml");
    std::fs::write(&cfg, "[database]\nmax_connections = \"lots\"\n").unwrap();
    let out = insights(cwd.path(), &["--config", cfg.to_str().unwrap(), "config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database.max_connections"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = insights(cwd.path(), &["config"])
        .env("INSIGHTS_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Environment errors name the variable: `LISTEN` in `INSIGHTS_`.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"LISTEN\"") && err.contains("INSIGHTS_"),
        "{err}"
    );

    let out = insights(
        cwd.path(),
        &["--config", "/nonexistent/insights.toml", "config"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

/// `insights verify-recording` on a recording that went through the real
/// spool and uploader into the data dir the binary uses: verified as
/// stored, and a single flipped byte in the blob is named.
#[test]
fn verify_recording_checks_custody_of_an_uploaded_recording() {
    use std::sync::Arc;

    use bot_gateway::custody::InstallationKey;
    use bot_gateway::spool::{NewRecording, NewStream, Spool, SpoolConfig};
    use bot_gateway::uploader::{Uploader, UploaderConfig};
    use insights_core::config::{Overrides, Settings};
    use insights_core::crypto::KeyProvider;
    use insights_core::domain::*;

    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let d = data.to_str().unwrap();
    let out = insights(
        cwd.path(),
        &["admin", "tenant", "add", "acme", "--data-dir", d],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let settings = Settings::load(
        None,
        &Overrides {
            data_dir: Some(data.clone()),
            listen: None,
        },
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let platform = insights::platform::Platform::open(&settings).await.unwrap();
        let tenant = platform.store.tenant_by_name("acme").await.unwrap();
        let mut rec = Recording::new(tenant.id, RecordingKind::Call, Direction::Inbound, now());
        rec.streams.push(MediaStream {
            id: StreamId::new(),
            participant_id: None,
            track: 0,
            media_type: "audio".into(),
            codec: "opus".into(),
            sample_rate: 48000,
            start_ms: 0,
        });
        platform
            .store
            .insert_recording(tenant.id, &rec)
            .await
            .unwrap();

        let keys: Arc<dyn KeyProvider> = platform.keys.clone();
        let spool = Spool::open(SpoolConfig::from_settings(&settings).unwrap(), keys)
            .await
            .unwrap();
        let spooled = spool
            .begin(NewRecording {
                tenant_id: tenant.id,
                recording_id: rec.id,
                started_at: rec.started_at,
                participants: vec![],
                streams: vec![NewStream {
                    stream_id: rec.streams[0].id,
                    participant_id: None,
                    content_type: "audio/ogg".into(),
                }],
            })
            .await
            .unwrap();
        spooled.write(0, &vec![7u8; 200_000]).unwrap();
        spooled.finish().await.unwrap();
        let signer = Arc::new(
            InstallationKey::open_or_create(settings.spool.signing_key_file(&settings.key_file()))
                .unwrap(),
        );
        let uploader = Uploader::new(
            spool.clone(),
            platform.store.clone(),
            platform.blobs.clone(),
            signer,
            UploaderConfig::from_settings(&settings.spool),
        );
        uploader.upload_once(rec.id).await.unwrap();
        spool.shutdown();
        rec.id
    });
    drop(rt);

    let id_s = id.to_string();
    let out = insights(cwd.path(), &["verify-recording", &id_s, "--data-dir", d])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("VERIFIED"), "{stdout}");

    // Flip one byte of the stored blob: verification names the blob.
    let blob = std::fs::read_dir(data.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap()
        .join("recordings")
        .join(&id_s)
        .join("stream-0.ogg.env");
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1000] ^= 0x01;
    std::fs::write(&blob, bytes).unwrap();
    let out = insights(
        cwd.path(),
        &[
            "verify-recording",
            &id_s,
            "--data-dir",
            d,
            "--tenant",
            "acme",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("MISMATCH"), "{stdout}");
    assert!(stdout.contains("stream-0"), "{stdout}");

    // An unknown recording is a clear error, not a panic.
    let out = insights(
        cwd.path(),
        &[
            "verify-recording",
            &RecordingId::new().to_string(),
            "--data-dir",
            d,
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no recording"));
}

/// Issue 6: two workers share one PostgreSQL; the one running a job is
/// killed with SIGKILL; the other completes it without duplicates.
#[test]
fn worker_killed_mid_job_is_taken_over_without_duplicate_segments() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    jobs_fault::worker_killed_mid_job(&url);
}

/// SIPREC (issue 16): SIPp as an SBC records calls through `insights
/// serve`; see tests/cli/siprec.rs.
#[test]
fn siprec_sbc_calls_recorded_through_the_real_binary() {
    siprec::siprec_end_to_end();
}

/// SIPREC mid-call changes (issue 16): hold/resume, a codec change, a
/// third stream, participants joining and a transfer, session timers.
#[test]
fn siprec_mid_call_changes_applied() {
    siprec::siprec_mid_call_changes();
}

/// SIPREC over TLS (issue 16): trunks chosen by the client
/// certificate's fingerprint; other certificates refused.
#[test]
fn siprec_tls_trunks_by_client_certificate() {
    siprec::siprec_tls_trunks();
}

/// SIPREC SRTP (SDES) and Opus calls recorded; the recording policy
/// refusing a call (inactive streams, nothing stored, audited); GDPR
/// erasure clearing DTMF (issue 16).
#[test]
fn siprec_srtp_opus_policy_and_erasure() {
    siprec::siprec_srtp_opus_and_policy();
}

/// SIPREC: 100 concurrent SIPp sessions, no RTP lost (issue 16 §3).
#[test]
fn siprec_hundred_concurrent_sessions_lose_no_rtp() {
    siprec::siprec_hundred_concurrent_sessions();
}

/// A `[siprec]` listener that cannot be opened, or a trunk naming no
/// tenant, stops `insights serve` at start-up with the reason.
#[test]
fn siprec_misconfiguration_stops_start_up() {
    siprec::siprec_misconfiguration_stops_start_up();
}
