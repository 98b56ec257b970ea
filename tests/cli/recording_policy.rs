//! Issue 17 §1 and §2 through the real `insights serve`: Teams is played
//! by the call simulator with callback tokens signed like Microsoft's, so
//! every answer and `updateRecordingStatus` goes to the Graph stand-in,
//! which records what the gateway reports.
//!
//! * The tenant's recording policy, set with `insights admin policy`:
//!   calls it excludes (a never-record directory group, a never-record
//!   number prefix, include-only without a matching rule) are answered,
//!   reported `notRecording`, their media refused, and nothing of them is
//!   stored (no recording, no spool or blob file); each decision is
//!   audited with the rule that made it, and no log line names a person.
//! * Fail closed or fail open per tenant: with the spool full, a call of
//!   a `required` tenant is reported `failed`, one of a `best-effort`
//!   tenant `notRecording`, each raising the recording-failure alert
//!   (metric, audit event, log line); a node stopping mid-call tells
//!   Teams the same way (reason `shutdown`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bot_gateway::ingest::protocol::RefusalCode;
use bot_gateway::simulator::{SimError, SimParticipant, SimulatedCall, TokenSource};
use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;
use insights_tests::keys::TestKey;
use insights_tests::standins::microsoft::{BOT_ISSUER, CLIENT_ID, CLIENT_SECRET, Microsoft};
use serde_json::{Value, json};

use crate::{Server, insights, serve_with_env};

pub(crate) const MEDIA_TOKEN: &str = "recording-policy-media-adapter-token-0123";

/// A gateway on SQLite and local files in front of the Graph stand-in
/// (also used by `pause.rs`).
pub(crate) struct Teams {
    pub(crate) cwd: tempfile::TempDir,
    pub(crate) data: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) ms: Microsoft,
    key: TestKey,
    pub(crate) env: Vec<(String, String)>,
    server: Option<Server>,
    pub(crate) store: SqliteStore,
}

impl Teams {
    /// Adds `tenants` (name, directory tenant), then starts the server
    /// with `extra` environment.
    pub(crate) async fn start(tenants: &[(&str, uuid::Uuid)], extra: &[(&str, &str)]) -> Teams {
        let cwd = tempfile::tempdir().unwrap();
        let data = cwd.path().join("d");
        let ms = Microsoft::start().await;
        let key = TestKey::generate("recording-policy-kid");
        let mut jwk = key.jwk();
        jwk["x5t"] = json!(key.kid);
        jwk["issuer"] = json!(BOT_ISSUER);
        ms.publish(vec![jwk]);
        let s = |v: &str| v.to_owned();
        let mut env: Vec<(String, String)> = vec![
            (s("INSIGHTS_ALLOW_INSECURE_HTTP"), s("true")),
            (s("INSIGHTS_GATEWAY__TRUST_SIMULATOR_KEY"), s("false")),
            (s("INSIGHTS_GATEWAY__APP_ID"), s(CLIENT_ID)),
            (s("INSIGHTS_GATEWAY__CLIENT_SECRET"), s(CLIENT_SECRET)),
            (
                s("INSIGHTS_GATEWAY__OPENID_CONFIGURATION_URL"),
                ms.openid_url(),
            ),
            (s("INSIGHTS_GATEWAY__TOKEN_ENDPOINT"), ms.token_endpoint()),
            (s("INSIGHTS_GATEWAY__GRAPH_BASE_URL"), ms.base.clone()),
            (s("INSIGHTS_GATEWAY__MEDIA_TOKEN"), s(MEDIA_TOKEN)),
        ];
        env.extend(extra.iter().map(|(k, v)| (s(k), s(v))));
        let d = data.to_str().unwrap().to_owned();
        for (name, dir) in tenants {
            let out = insights(
                cwd.path(),
                &[
                    "admin",
                    "tenant",
                    "add",
                    name,
                    "--directory-tenant-id",
                    &dir.to_string(),
                    "--data-dir",
                    &d,
                ],
            )
            .envs(env.iter().cloned())
            .output()
            .unwrap();
            assert!(
                out.status.success(),
                "tenant add: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let log = cwd.path().join("serve.log");
        let server = serve_with_env(cwd.path(), &data, &env, &log);
        let store = SqliteStore::connect(
            &format!("sqlite://{}", data.join("insights.db").display()),
            2,
        )
        .await
        .unwrap();
        Teams {
            cwd,
            data,
            log,
            ms,
            key,
            env,
            server: Some(server),
            store,
        }
    }

    pub(crate) fn base(&self) -> String {
        self.server.as_ref().unwrap().base.clone()
    }

    /// `insights ARGS --data-dir <data>`: stdout, or a panic with stderr.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let mut all: Vec<&str> = args.to_vec();
        let d = self.data.to_str().unwrap();
        all.extend(["--data-dir", d]);
        let out = insights(self.cwd.path(), &all)
            .envs(self.env.iter().cloned())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "insights {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A directory user of `tenant` (as the directory sync stores them);
    /// returns the Entra object id.
    pub(crate) async fn user(&self, tenant: TenantId, email: &str, groups: &[&str]) -> String {
        let oid = uuid::Uuid::new_v4().to_string();
        let user = DirectoryUser {
            id: UserId::new(),
            tenant_id: tenant,
            directory_object_id: Some(oid.clone()),
            first_name: None,
            last_name: None,
            display_name: Some("Directory User".into()),
            alias: None,
            email: Some(email.into()),
            upn: Some(email.into()),
            phone_numbers: Vec::new(),
            sip_uri: None,
            tel_uri: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            active: true,
            updated_at: now(),
        };
        self.store
            .upsert_directory_user(tenant, &user)
            .await
            .unwrap();
        oid
    }

    /// A callback token as Graph Communications signs it, for `tid`.
    pub(crate) fn graph_token(&self, tid: uuid::Uuid) -> String {
        let at = chrono::Utc::now().timestamp();
        self.key.sign(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.key.kid, "x5t": self.key.kid}),
            &json!({
                "aud": CLIENT_ID,
                "iss": BOT_ISSUER,
                "iat": at - 10,
                "nbf": at - 10,
                "exp": at + 3600,
                "tid": tid.to_string(),
            }),
        )
    }

    /// A 1:1 call of the recorded user (`oid`, `email`) with `other`
    /// (a number), `seconds` of audio at `speed`.
    fn call(
        &self,
        tid: uuid::Uuid,
        (oid, email): (&str, &str),
        other: &str,
        seconds: usize,
        speed: f64,
    ) -> SimulatedCall {
        let tone = |hz: f64| -> Vec<i16> {
            (0..seconds * 16_000)
                .map(|i| {
                    let t = i as f64 / 16_000.0;
                    (3_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
                })
                .collect()
        };
        let people = vec![
            SimParticipant {
                name: "Recorded Person".into(),
                identity: email.into(),
                object_id: Some(oid.into()),
                pcm: tone(220.0),
            },
            SimParticipant {
                name: "Other Party".into(),
                identity: other.into(),
                object_id: None,
                pcm: tone(330.0),
            },
        ];
        let mut call = SimulatedCall::new(
            self.base(),
            tid,
            people,
            TokenSource::Bearer(self.graph_token(tid)),
            MEDIA_TOKEN,
        );
        call.speed = speed;
        call
    }

    /// The statuses Graph was told for `call_id`, once `n` were (or 20 s
    /// passed).
    pub(crate) async fn statuses(&self, call_id: &str, n: usize) -> Vec<String> {
        self.ms
            .wait_graph(
                n,
                |c| c.call_id == call_id && c.action == "updateRecordingStatus",
                Duration::from_secs(20),
            )
            .await
            .iter()
            .map(|c| c.body["status"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub(crate) async fn answered(&self, call_id: &str) -> bool {
        !self
            .ms
            .wait_graph(
                1,
                |c| c.call_id == call_id && c.action == "answer",
                Duration::from_secs(20),
            )
            .await
            .is_empty()
    }

    pub(crate) async fn audit(&self, tenant: TenantId, action: AuditAction) -> Vec<AuditEvent> {
        self.store
            .list_audit(
                tenant,
                &AuditQuery {
                    action: Some(action),
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap()
    }

    pub(crate) async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// SIGTERM, then waits for the process to exit.
    fn terminate(&mut self) {
        let mut server = self.server.take().unwrap();
        let st = Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Every file under `dir` (relative paths), for before/after snapshots.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.map_while(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Waits until `call_id`'s recording satisfies `done`.
pub(crate) async fn recording(
    store: &SqliteStore,
    tenant: TenantId,
    call_id: &str,
    done: impl Fn(&Recording) -> bool,
) -> Recording {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = store.recording_by_external_call_id(tenant, call_id).await
            && done(&r)
        {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{call_id}: no recording in the expected state"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ids of the rules of `tenant`'s policy (from `admin policy show --json`).
fn rule_ids(t: &Teams, tenant: &str) -> Vec<(String, String, String)> {
    let shown: Value =
        serde_json::from_str(&t.cli(&["admin", "policy", "show", "--tenant", tenant, "--json"]))
            .unwrap();
    shown["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["list"].as_str().unwrap().to_owned(),
                r["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The value of the sample of `name` with (at least) `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn refused(result: &Result<bot_gateway::simulator::SimReport, SimError>) -> Option<RefusalCode> {
    match result {
        Err(SimError::Refused { code, .. }) => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_the_recording_policy_excludes_are_answered_not_recording_and_never_stored() {
    let dir = uuid::Uuid::new_v4();
    let t = Teams::start(&[("fabrikam", dir)], &[]).await;
    let tenant = t.store.tenant_by_name("fabrikam").await.unwrap().id;
    let alice = t
        .user(tenant, "alice@fabrikam.com", &["works-council"])
        .await;
    let bob = t.user(tenant, "bob@fabrikam.com", &["Trading"]).await;
    let carol = t.user(tenant, "carol@fabrikam.com", &[]).await;
    const LONDON: &str = "+442079460958";
    const DOCTOR: &str = "+493012345678";

    // The policy, through the CLI: never record the works council or
    // anyone on a Berlin number.
    t.cli(&[
        "admin",
        "policy",
        "add",
        "--tenant",
        "fabrikam",
        "--list",
        "never-record",
        "--kind",
        "group",
        "--label",
        "works council",
        "works-council",
    ]);
    t.cli(&[
        "admin",
        "policy",
        "add",
        "--tenant",
        "fabrikam",
        "--list",
        "never-record",
        "--kind",
        "number-prefix",
        "+49 30",
    ]);
    let rules = rule_ids(&t, "fabrikam");
    assert_eq!(rules.len(), 2, "{rules:?}");
    let spool_before = files(&t.data.join("spool"));
    let blobs_before = files(&t.data.join("blobs"));

    // 1. Alice is on the works council: not recorded.
    // 2. Bob calls the doctor's Berlin number: not recorded.
    let mut excluded = Vec::new();
    for (who, other) in [(("alice", &alice), LONDON), (("bob", &bob), DOCTOR)] {
        let email = format!("{}@fabrikam.com", who.0);
        let call = t.call(dir, (who.1, &email), other, 2, 0.0);
        let id = call.call_id.clone();
        let result = call.run().await;
        assert_eq!(
            refused(&result),
            Some(RefusalCode::NotRecorded),
            "{}: {:?}",
            who.0,
            result.err()
        );
        assert!(t.answered(&id).await, "{}: not answered", who.0);
        assert_eq!(t.statuses(&id, 1).await, ["notRecording"], "{}", who.0);
        excluded.push(id);
    }

    // 3. Bob calls London: recorded and stored.
    let call = t.call(dir, (&bob, "bob@fabrikam.com"), LONDON, 2, 0.0);
    let recorded_id = call.call_id.clone();
    call.run().await.unwrap();
    assert_eq!(
        t.statuses(&recorded_id, 2).await,
        ["recording", "notRecording"]
    );
    recording(&t.store, tenant, &recorded_id, |r| {
        r.status == RecordingStatus::Stored
    })
    .await;

    // 4-5. Include only the trading desk: Bob is recorded, Carol not.
    t.cli(&[
        "admin",
        "policy",
        "set",
        "--tenant",
        "fabrikam",
        "--mode",
        "include-only",
    ]);
    t.cli(&[
        "admin", "policy", "add", "--tenant", "fabrikam", "--list", "include", "--kind", "group",
        "trading",
    ]);
    let call = t.call(dir, (&bob, "bob@fabrikam.com"), LONDON, 1, 0.0);
    let included_id = call.call_id.clone();
    call.run().await.unwrap();
    let call = t.call(dir, (&carol, "carol@fabrikam.com"), LONDON, 1, 0.0);
    let not_included_id = call.call_id.clone();
    let result = call.run().await;
    assert_eq!(refused(&result), Some(RefusalCode::NotRecorded));
    assert_eq!(t.statuses(&not_included_id, 1).await, ["notRecording"]);
    excluded.push(not_included_id.clone());
    recording(&t.store, tenant, &included_id, |r| {
        r.status == RecordingStatus::Stored
    })
    .await;

    // Nothing of an excluded call is stored: no recording, and no spool
    // or blob file beyond the recorded calls'.
    for id in &excluded {
        assert!(
            matches!(
                t.store.recording_by_external_call_id(tenant, id).await,
                Err(insights_core::store::StoreError::NotFound)
            ),
            "{id}: a recording was stored"
        );
        assert!(
            !t.statuses(id, 1).await.iter().any(|s| s == "recording"),
            "{id}: reported recording"
        );
    }
    let page = t
        .store
        .search_recordings(tenant, &RecordingQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2, "only the two recorded calls");
    assert_eq!(
        files(&t.data.join("spool")),
        spool_before,
        "the spool holds nothing more (the recorded calls were uploaded)"
    );
    let stored: Vec<String> = page
        .items
        .iter()
        .map(|s| s.recording.id.to_string())
        .collect();
    for f in files(&t.data.join("blobs")) {
        assert!(
            blobs_before.contains(&f) || stored.iter().any(|id| f.contains(id.as_str())),
            "a blob file of no recorded call: {f}"
        );
    }

    // Each decision audited with the rule that made it, without values.
    let decisions = t.audit(tenant, AuditAction::RecordingNotRecorded).await;
    assert_eq!(decisions.len(), 3, "{decisions:?}");
    let by = |call: &str| {
        let e = decisions
            .iter()
            .find(|e| e.target.as_deref() == Some(call))
            .unwrap_or_else(|| panic!("{call}: no audit event"));
        (
            e.details["by"].as_str().unwrap().to_owned(),
            e.details["rule_id"].as_str().map(str::to_owned),
        )
    };
    assert_eq!(
        by(&excluded[0]),
        ("never-record:group".into(), Some(rules[0].0.clone()))
    );
    assert_eq!(
        by(&excluded[1]),
        (
            "never-record:number-prefix".into(),
            Some(rules[1].0.clone())
        )
    );
    assert_eq!(by(&not_included_id), ("include-only:no-match".into(), None));
    for e in &decisions {
        assert_eq!(e.actor, "gateway");
        let text = e.details.to_string();
        for value in ["works-council", "+4930", "alice", "carol"] {
            assert!(!text.contains(value), "{value} in {text}");
        }
    }
    // The policy changes made through the CLI are audited too.
    assert_eq!(t.audit(tenant, AuditAction::PolicyChange).await.len(), 4);
    let metrics = t.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "insights_gateway_policy_decisions_total",
            &[("by", "never-record"), ("decision", "not-recorded")]
        ),
        Some(2.0),
        "{metrics}"
    );
    t.ms.assert_no_problems();

    // The log names rules and calls by id, never a person or a number.
    let log = std::fs::read_to_string(&t.log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("call not recorded") && l.contains(&rules[0].0)),
        "{log}"
    );
    for secret in ["alice@", "carol@", "4930123", "2079460958", "works-council"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recording_failures_fail_closed_or_open_by_tenant_and_raise_the_alert() {
    let strict_dir = uuid::Uuid::new_v4();
    let lenient_dir = uuid::Uuid::new_v4();
    // Room for exactly one live call.
    let mut t = Teams::start(
        &[("strict", strict_dir), ("lenient", lenient_dir)],
        &[
            ("INSIGHTS_SPOOL__QUOTA_BYTES", "1048576"),
            ("INSIGHTS_SPOOL__CALL_RESERVE_BYTES", "1048576"),
        ],
    )
    .await;
    let strict = t.store.tenant_by_name("strict").await.unwrap().id;
    let lenient = t.store.tenant_by_name("lenient").await.unwrap().id;
    let shown = t.cli(&[
        "admin",
        "policy",
        "set",
        "--tenant",
        "lenient",
        "--failure-mode",
        "best-effort",
    ]);
    assert!(shown.contains("failure mode: best-effort"), "{shown}");
    let ann = t.user(strict, "ann@strict.example", &[]).await;
    let ben = t.user(lenient, "ben@lenient.example", &[]).await;
    const OTHER: &str = "+14255550123";

    // A long call of the strict tenant takes the spool's room.
    let long = t.call(strict_dir, (&ann, "ann@strict.example"), OTHER, 12, 1.0);
    let long_id = long.call_id.clone();
    let long_run = tokio::spawn(async move { long.run().await });
    assert_eq!(t.statuses(&long_id, 1).await, ["recording"]);

    // Spool full: the strict tenant's call is reported `failed` (Teams
    // blocks it), the lenient tenant's `notRecording` (it goes on).
    let blocked = t.call(strict_dir, (&ann, "ann@strict.example"), OTHER, 1, 0.0);
    let blocked_id = blocked.call_id.clone();
    let result = blocked.run().await;
    assert_eq!(
        refused(&result),
        Some(RefusalCode::SpoolFull),
        "{:?}",
        result.err()
    );
    assert!(t.answered(&blocked_id).await);
    assert_eq!(t.statuses(&blocked_id, 1).await, ["failed"]);

    let open = t.call(lenient_dir, (&ben, "ben@lenient.example"), OTHER, 1, 0.0);
    let open_id = open.call_id.clone();
    let result = open.run().await;
    assert_eq!(
        refused(&result),
        Some(RefusalCode::SpoolFull),
        "{:?}",
        result.err()
    );
    assert!(t.answered(&open_id).await);
    assert_eq!(t.statuses(&open_id, 1).await, ["notRecording"]);

    // Both keep a failed recording row (why: refused:spool-full).
    for (tenant, id) in [(strict, &blocked_id), (lenient, &open_id)] {
        let r = recording(&t.store, tenant, id, |r| r.ended_at.is_some()).await;
        assert_eq!(r.status, RecordingStatus::Failed);
        assert_eq!(r.result_code.as_deref(), Some("refused:spool-full"));
    }
    // The alert: one audit event per call, with mode and reason.
    for (tenant, id, mode, reported) in [
        (strict, &blocked_id, "required", "failed"),
        (lenient, &open_id, "best-effort", "notRecording"),
    ] {
        let events = t.audit(tenant, AuditAction::RecordingFailure).await;
        let e = events
            .iter()
            .find(|e| e.target.as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{id}: no recording-failure event in {events:?}"));
        assert_eq!(e.details["mode"], mode);
        assert_eq!(e.details["reason"], "spool-full");
        assert_eq!(e.details["reported"], reported);
    }
    let metrics = t.metrics().await;
    for mode in ["required", "best-effort"] {
        assert_eq!(
            metric(
                &metrics,
                "insights_recording_failures_total",
                &[("mode", mode), ("reason", "spool-full")]
            ),
            Some(1.0),
            "{mode}:\n{metrics}"
        );
    }

    // The long call was never disturbed.
    long_run.await.unwrap().unwrap();
    assert_eq!(t.statuses(&long_id, 2).await, ["recording", "notRecording"]);
    recording(&t.store, strict, &long_id, |r| {
        r.status == RecordingStatus::Stored
    })
    .await;

    // The node stops mid-call: Teams hears each tenant's failure mode
    // (reason `shutdown`).
    let live = t.call(lenient_dir, (&ben, "ben@lenient.example"), OTHER, 8, 1.0);
    let live_id = live.call_id.clone();
    let live_run = tokio::spawn(async move { live.run().await });
    assert_eq!(t.statuses(&live_id, 1).await, ["recording"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| t.terminate());
    let statuses = t.statuses(&live_id, 2).await;
    assert_eq!(statuses[..2], ["recording", "notRecording"], "{statuses:?}");
    let _ = live_run.await;
    let events = t.audit(lenient, AuditAction::RecordingFailure).await;
    assert!(
        events
            .iter()
            .any(|e| e.target.as_deref() == Some(live_id.as_str())
                && e.details["reason"] == "shutdown"
                && e.details["mode"] == "best-effort"),
        "{events:?}"
    );

    // The alert's log lines name ids, mode and reason only.
    let log = std::fs::read_to_string(&t.log).unwrap();
    let alerts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("recording-failure"))
        .collect();
    assert!(alerts.len() >= 3, "{log}");
    assert!(
        alerts
            .iter()
            .any(|l| l.contains("best-effort") && l.contains("spool-full"))
    );
    for secret in ["ann@", "ben@", "4255550123"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    t.ms.assert_no_problems();
}

/// The tenant's key-encryption key cannot be had (the `database` key
/// provider with the tenant's KEK rows gone, as when the key service
/// lost them): after `recording` was acknowledged, the spool refuses the
/// call before a byte is written; a `required` tenant's call is then
/// reported `failed`, a `best-effort` tenant's `notRecording`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_service_failures_fail_closed_or_open_by_tenant() {
    let root = tempfile::tempdir().unwrap();
    let root_key = root.path().join("root.key");
    let hex = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    std::fs::write(&root_key, format!("{hex}\n")).unwrap();
    std::fs::set_permissions(&root_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let t = Teams::start(
        &[],
        &[
            ("INSIGHTS_KEYS__PROVIDER", "database"),
            ("INSIGHTS_KEYS__ROOT_KEY_FILE", root_key.to_str().unwrap()),
        ],
    )
    .await;
    // Tenants added while the node runs (so it holds none of their keys).
    let (strict_dir, lenient_dir) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    for (name, dir) in [("strict", strict_dir), ("lenient", lenient_dir)] {
        t.cli(&[
            "admin",
            "tenant",
            "add",
            name,
            "--directory-tenant-id",
            &dir.to_string(),
        ]);
    }
    t.cli(&[
        "admin",
        "policy",
        "set",
        "--tenant",
        "lenient",
        "--failure-mode",
        "best-effort",
    ]);
    let mut tenants = Vec::new();
    for (name, dir, email, mode, reported) in [
        (
            "strict",
            strict_dir,
            "ann@strict.example",
            "required",
            "failed",
        ),
        (
            "lenient",
            lenient_dir,
            "ben@lenient.example",
            "best-effort",
            "notRecording",
        ),
    ] {
        let id = t.store.tenant_by_name(name).await.unwrap().id;
        assert_eq!(t.store.delete_keks_before(id, u32::MAX).await.unwrap(), 1);
        let oid = t.user(id, email, &[]).await;
        tenants.push((id, dir, email, oid, mode, reported));
    }
    let spool_before = files(&t.data.join("spool"));
    for (tenant, dir, email, oid, mode, reported) in &tenants {
        let call = t.call(*dir, (oid, email), "+14255550123", 1, 0.0);
        let id = call.call_id.clone();
        let result = call.run().await;
        assert_eq!(
            refused(&result),
            Some(RefusalCode::RecordingFailed),
            "{mode}: {:?}",
            result.err()
        );
        assert_eq!(t.statuses(&id, 2).await, ["recording", *reported], "{mode}");
        let r = recording(&t.store, *tenant, &id, |r| r.ended_at.is_some()).await;
        assert_eq!(r.status, RecordingStatus::Failed, "{mode}");
        let events = t.audit(*tenant, AuditAction::RecordingFailure).await;
        assert_eq!(events.len(), 1, "{mode}: {events:?}");
        assert_eq!(events[0].details["mode"], *mode);
        assert_eq!(events[0].details["reason"], "key-service");
        assert_eq!(events[0].recording_id, Some(r.id));
    }
    assert_eq!(
        files(&t.data.join("spool")),
        spool_before,
        "nothing was spooled"
    );
    let metrics = t.metrics().await;
    for mode in ["required", "best-effort"] {
        assert_eq!(
            metric(
                &metrics,
                "insights_recording_failures_total",
                &[("mode", mode), ("reason", "key-service")]
            ),
            Some(1.0),
            "{mode}:\n{metrics}"
        );
    }
    t.ms.assert_no_problems();
}
