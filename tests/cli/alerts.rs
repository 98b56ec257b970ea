//! Issue 17 §4 through the real `insights serve`: alert channels of the
//! installation (a signed webhook, e-mail over SMTP with STARTTLS to a
//! real local server, a Teams incoming webhook) and of a tenant (a
//! signed webhook), configured through the API; alerts raised by the
//! gateway (`recording-failure`: the tenant's key-encryption key is
//! gone) and by the scheduler's rules (`unusual-access`: one user plays
//! more recordings in an hour than the threshold; `no-recordings`:
//! nothing recorded during business hours; `key-service`), each
//! delivered once however often its condition repeats within the
//! window, carrying ids and counts only, audited, and acknowledged
//! through the API.
//!
//! The SMTP server is aiosmtpd (PyPI, `tests/smtp/`), installed by
//! `scripts/test.sh` and named by `INSIGHTS_TEST_SMTP_PYTHON`; it
//! refuses mail before STARTTLS.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;
use insights_tests::standins::teams::Teams;
use insights_tests::standins::{Recorded, Reply, StandIn};
use serde_json::{Value, json};

use crate::accounts::{Api, Session, sign_in_new_user_with};
use crate::e2e_call::{add_tenant, simulate};
use crate::tls::TestCa;
use crate::{insights, serve_with_env};

const HOOK_SECRET: &str = "whsec-test-0123456789abcdef";
const TENANT_HOOK_SECRET: &str = "tenant-secret-0123456789";
/// Personal data the test puts into calls and accounts: never in an alert.
const PERSONAL: &[&str] = &[
    "Alice",
    "alice@",
    "Bob",
    "4255550100",
    "admin@contoso",
    "ops@insights",
];

/// The local SMTP server (aiosmtpd), STARTTLS required.
struct Smtp {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtp {
    fn start(dir: &Path, cert: &Path, key: &Path) -> Smtp {
        let python = std::env::var("INSIGHTS_TEST_SMTP_PYTHON").unwrap_or_else(|_| {
            panic!(
                "INSIGHTS_TEST_SMTP_PYTHON is not set: scripts/test.sh installs aiosmtpd \
                 (tests/smtp/requirements.txt) into tests/smtp/.venv and sets it"
            )
        });
        let out = dir.join("mail");
        std::fs::create_dir_all(&out).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(cert)
            .arg(key)
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("SMTP server: {line:?}"));
        Smtp { child, port, out }
    }

    /// Every message received: (raw message, metadata).
    fn messages(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for n in 1.. {
            let eml = self.out.join(format!("{n}.eml"));
            let Ok(text) = std::fs::read_to_string(&eml) else {
                break;
            };
            let meta = std::fs::read_to_string(self.out.join(format!("{n}.json"))).unwrap();
            out.push((text, serde_json::from_str(&meta).unwrap()));
        }
        out
    }
}

/// A 16 kHz mono WAV of a tone.
fn tone(dir: &Path, name: &str, hz: f64, seconds: usize) -> PathBuf {
    let samples: Vec<i16> = (0..seconds * 16_000)
        .map(|i| (3000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 16_000.0).sin()) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&16_000u32.to_le_bytes());
    wav.extend_from_slice(&32_000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    let path = dir.join(format!("{name}.wav"));
    std::fs::write(&path, wav).unwrap();
    path
}

/// The webhook request's signature, checked as the docs tell a receiver.
fn verify_signature(r: &Recorded, secret: &str) {
    let ts = r.header("x-insights-timestamp").expect("timestamp header");
    let sig = r.header("x-insights-signature").expect("signature header");
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    assert!((0..300).contains(&age), "signed {age} s ago");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        sig,
        want,
        "signature of {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.header("x-insights-alert-id"),
        r.json()["id"].as_str(),
        "alert id header"
    );
}

fn kinds(reqs: &[Recorded]) -> Vec<String> {
    reqs.iter()
        .map(|r| r.json()["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn count(v: &[String], kind: &str) -> usize {
    v.iter().filter(|k| *k == kind).count()
}

/// Waits up to `secs` for `ok`.
async fn eventually(secs: u64, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn call(api: &Api, s: &Session, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    tokio::task::block_in_place(|| api.call(s, method, path, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerts_reach_a_signed_webhook_starttls_mail_and_teams_once_without_personal_data() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let d = data.to_str().unwrap().to_owned();

    // The channels' far ends.
    let hook = StandIn::start(|_, _| Reply::empty(204)).await;
    let tenant_hook = StandIn::start(|_, _| Reply::empty(200)).await;
    let teams = Teams::start().await;
    let ca = TestCa::new("alerts smtp test ca");
    let (cert, key, _) = ca.leaf(&["127.0.0.1"]);
    let (cert_file, key_file, ca_file) = (
        cwd.path().join("smtp.crt"),
        cwd.path().join("smtp.key"),
        cwd.path().join("ca.pem"),
    );
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let smtp = Smtp::start(cwd.path(), &cert_file, &key_file);

    // The `database` key provider, so a tenant's KEK can be lost.
    let root_key = cwd.path().join("root.key");
    std::fs::write(
        &root_key,
        format!(
            "{}{}\n",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&root_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = |v: &str| v.to_owned();
    let env: Vec<(String, String)> = vec![
        (s("INSIGHTS_ALLOW_INSECURE_HTTP"), s("true")),
        (s("INSIGHTS_KEYS__PROVIDER"), s("database")),
        (
            s("INSIGHTS_KEYS__ROOT_KEY_FILE"),
            s(root_key.to_str().unwrap()),
        ),
        (s("INSIGHTS_ALERTS__INTERVAL_SECS"), s("1")),
        (s("INSIGHTS_ALERTS__INITIAL_DELAY_SECS"), s("0")),
        (s("INSIGHTS_ALERTS__NO_RECORDINGS_MINUTES"), s("1")),
        (s("INSIGHTS_ALERTS__BUSINESS_DAYS"), s("daily")),
        (s("INSIGHTS_ALERTS__BUSINESS_HOURS"), s("00:00-24:00")),
        (s("INSIGHTS_ALERTS__UNUSUAL_ACCESS_PER_HOUR"), s("2")),
        (s("INSIGHTS_ALERTS__KEY_CHECK_SECS"), s("1")),
        (s("INSIGHTS_ALERTS__AUDIT_CHECK_SECS"), s("1")),
        (s("INSIGHTS_ALERTS__SMTP__HOST"), s("127.0.0.1")),
        (s("INSIGHTS_ALERTS__SMTP__PORT"), smtp.port.to_string()),
        (s("INSIGHTS_ALERTS__SMTP__FROM"), s("alerts@insights.test")),
        (
            s("INSIGHTS_ALERTS__SMTP__CA_FILE"),
            s(ca_file.to_str().unwrap()),
        ),
    ];
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    add_tenant(cwd.path(), &d, &env, "contoso");
    let log = cwd.path().join("serve.log");
    let server = serve_with_env(cwd.path(), &data, &env, &log);
    let base = server.base.clone();
    let store = SqliteStore::connect(
        &format!("sqlite://{}", data.join("insights.db").display()),
        2,
    )
    .await
    .unwrap();
    let contoso = store.tenant_by_name("contoso").await.unwrap().id;

    let (admin, operator) = tokio::task::block_in_place(|| {
        (
            sign_in_new_user_with(
                cwd.path(),
                &data,
                &env_ref,
                &base,
                Some("contoso"),
                "admin@contoso.example",
                "tenant-admin",
                &[],
            ),
            sign_in_new_user_with(
                cwd.path(),
                &data,
                &env_ref,
                &base,
                None,
                "ops@insights.example",
                "platform-operator",
                &[],
            ),
        )
    });
    // A blocking client is made and dropped outside the async context.
    let api = tokio::task::block_in_place(|| Api {
        base: base.clone(),
        http: reqwest::blocking::Client::new(),
    });

    // Installation channels (the operator), one of each kind.
    let path = "/api/admin/alert-channels";
    for body in [
        json!({"kind": "webhook", "name": "SOC", "url": format!("{}/alerts", hook.base), "secret": HOOK_SECRET}),
        json!({"kind": "email", "name": "On call", "recipients": ["oncall@insights.test"]}),
        json!({"kind": "teams", "name": "Ops channel", "url": teams.url()}),
    ] {
        let (st, v) = call(&api, &operator, "POST", path, Some(body.clone()));
        assert_eq!(st, 201, "{body}: {v}");
        assert!(v.get("secret").is_none() && v.get("url").is_none(), "{v}");
    }
    let (st, v) = call(&api, &operator, "GET", path, None);
    assert_eq!(st, 200);
    let listed = v.to_string();
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");
    for secret in [HOOK_SECRET, insights_tests::standins::teams::PATH] {
        assert!(!listed.contains(secret), "a secret is shown: {listed}");
    }
    // A bad channel is refused.
    let (st, v) = call(
        &api,
        &operator,
        "POST",
        path,
        Some(json!({"kind": "webhook", "name": "weak", "url": hook.base, "secret": "short"})),
    );
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("invalid-channel")),
        "{v}"
    );
    // The tenant's own channel; it sees only its own.
    let (st, v) = call(
        &api,
        &admin,
        "POST",
        path,
        Some(
            json!({"kind": "webhook", "name": "Contoso SOC", "url": format!("{}/t", tenant_hook.base), "secret": TENANT_HOOK_SECRET}),
        ),
    );
    assert_eq!(st, 201, "{v}");
    let (_, v) = call(&api, &admin, "GET", path, None);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");

    // Two gateway nodes as their heartbeats tell: one silent for ten
    // minutes, one whose spool is full with a recording waiting two
    // hours for upload (this node's own heartbeat is there too).
    let gone = now() - chrono::Duration::minutes(10);
    for hb in [
        NodeHeartbeat {
            node: "gw-lost".into(),
            roles: "gateway".into(),
            at: gone,
            spool_used: Some(0),
            spool_quota: Some(100),
            oldest_pending_at: None,
        },
        NodeHeartbeat {
            node: "gw-full".into(),
            roles: "gateway".into(),
            at: now() + chrono::Duration::minutes(5),
            spool_used: Some(100),
            spool_quota: Some(100),
            oldest_pending_at: Some(now() - chrono::Duration::hours(2)),
        },
    ] {
        store.put_node_heartbeat(&hb).await.unwrap();
    }
    let own = store.node_heartbeats().await.unwrap();
    assert!(
        own.iter().any(|h| h.roles.contains("gateway")
            && h.roles.contains("scheduler")
            && h.spool_quota.is_some()),
        "this node's heartbeat: {own:?}"
    );

    // A tenant whose key-encryption key is lost (as when the key service
    // lost it): its calls cannot be recorded.
    add_tenant(cwd.path(), &d, &env, "fabrikam");
    let fabrikam = store.tenant_by_name("fabrikam").await.unwrap().id;
    assert_eq!(
        store.delete_keks_before(fabrikam, u32::MAX).await.unwrap(),
        1
    );
    let alice = tone(cwd.path(), "alice", 220.0, 2);
    let bob = tone(cwd.path(), "bob", 330.0, 2);
    let participants = [
        format!("Alice Example:alice@contoso.com:{}", alice.display()),
        format!("Bob Example:+14255550100:{}", bob.display()),
    ];
    let sim_args = |tenant: &'static str| -> Vec<String> {
        let mut a: Vec<String> = [
            "simulate-call",
            "--gateway",
            &base,
            "--tenant",
            tenant,
            "--speed",
            "0",
            "--data-dir",
            &d,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for p in &participants {
            a.extend(["--participant".to_owned(), p.clone()]);
        }
        a
    };
    let fail_call = || {
        let args = sim_args("fabrikam");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = insights(cwd.path(), &args)
            .envs(env.iter().cloned())
            .output()
            .unwrap();
    };
    tokio::task::block_in_place(|| {
        fail_call();
        fail_call();
    });

    // Three recordings of contoso, each played by the same admin: over
    // the threshold of two in an hour.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let args = sim_args("contoso");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ids.push(tokio::task::block_in_place(|| {
            simulate(cwd.path(), &env, &args)
        }));
    }
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = store.get_recording(contoso, *id).await.unwrap();
            if r.status == RecordingStatus::Stored {
                break;
            }
            assert!(Instant::now() < deadline, "{id} not stored: {:?}", r.status);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let play = |id: &RecordingId| {
        tokio::task::block_in_place(|| {
            let res = api
                .http
                .get(format!("{base}/api/recordings/{id}/media"))
                .bearer_auth(&admin.token)
                .send()
                .unwrap();
            assert!(res.status().is_success(), "play {id}: {}", res.status());
            let _ = res.bytes().unwrap();
        })
    };
    for id in &ids {
        play(id);
    }

    // Every kind reaches the installation's webhook, signed.
    let wanted = [
        "recording-failure",
        "unusual-access",
        "no-recordings",
        "key-service",
        "node-down",
        "spool-full",
        "upload-backlog",
    ];
    eventually(180, "the alerts on the webhook", || {
        let k = kinds(&hook.requests());
        wanted.iter().all(|w| count(&k, w) >= 1)
    })
    .await;
    for r in hook.requests() {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/alerts"));
        verify_signature(&r, HOOK_SECRET);
    }
    // Teams got the cards, in the published shape.
    eventually(60, "the Teams cards", || {
        let texts: Vec<String> = teams.cards().iter().map(|c| c.to_string()).collect();
        wanted.iter().all(|w| {
            texts
                .iter()
                .any(|t| t.contains(&format!("Insights alert: {w}")))
        })
    })
    .await;
    assert_eq!(teams.problems(), Vec::<String>::new());
    // The mail arrived over STARTTLS.
    eventually(60, "the e-mails", || {
        let m = smtp.messages();
        wanted.iter().all(|w| {
            m.iter()
                .any(|(text, _)| text.contains(&format!("alert: {w}")))
        })
    })
    .await;
    for (text, meta) in smtp.messages() {
        assert_eq!(meta["tls"], true, "mail without TLS: {meta}");
        assert_eq!(meta["mail_from"], "alerts@insights.test");
        assert_eq!(meta["rcpt_tos"], json!(["oncall@insights.test"]));
        assert!(text.contains("Alert id: "), "{text}");
    }
    // The tenant's channel got the tenant's alerts raised after it was
    // added, never another tenant's.
    eventually(60, "the tenant's webhook", || {
        let k = kinds(&tenant_hook.requests());
        count(&k, "unusual-access") == 1
    })
    .await;
    for r in tenant_hook.requests() {
        verify_signature(&r, TENANT_HOOK_SECRET);
        assert_eq!(r.json()["tenant_id"], contoso.to_string());
    }

    // The payloads: ids and counts.
    let unusual: Vec<Value> = hook
        .requests()
        .iter()
        .map(Recorded::json)
        .filter(|v| v["kind"] == "unusual-access")
        .collect();
    assert_eq!(unusual[0]["details"]["actor_id"], admin.account_id);
    assert_eq!(unusual[0]["details"]["recordings"], 3);
    assert_eq!(unusual[0]["tenant_id"], contoso.to_string());
    let failure: Vec<Value> = hook
        .requests()
        .iter()
        .map(Recorded::json)
        .filter(|v| v["kind"] == "recording-failure")
        .collect();
    assert_eq!(failure[0]["details"]["reason"], "key-service");
    assert_eq!(failure[0]["details"]["mode"], "required");
    assert_eq!(failure[0]["tenant_id"], fabrikam.to_string());

    // The same conditions again: counted, not resent.
    tokio::task::block_in_place(fail_call);
    play(&ids[0]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let k = kinds(&hook.requests());
    for w in wanted {
        assert_eq!(count(&k, w), 1, "{w} sent once: {k:?}");
    }
    let stored = store
        .alerts(Realm::Tenant(fabrikam), false, 100)
        .await
        .unwrap();
    let rf: Vec<&Alert> = stored
        .iter()
        .filter(|a| a.kind == AlertKind::RecordingFailure)
        .collect();
    assert_eq!(rf.len(), 1, "{stored:?}");
    assert_eq!(rf[0].occurrences, 3, "three failed calls, one alert");
    assert_eq!(rf[0].delivery, "delivered");
    assert_eq!(
        rf[0].deliveries.len(),
        3,
        "the installation's three channels"
    );

    // No personal data anywhere an alert went.
    let mut everything = String::new();
    for r in hook
        .requests()
        .iter()
        .chain(tenant_hook.requests().iter())
        .chain(teams.requests().iter())
    {
        everything.push_str(&String::from_utf8_lossy(&r.body));
    }
    for (text, _) in smtp.messages() {
        everything.push_str(&text);
    }
    for p in PERSONAL {
        assert!(!everything.contains(p), "{p} in an alert");
    }

    // The tenant admin sees and acknowledges the tenant's alerts.
    let (st, v) = call(&api, &admin, "GET", "/api/admin/alerts?open=true", None);
    assert_eq!(st, 200, "{v}");
    let seen = v.as_array().unwrap();
    assert!(
        seen.iter().all(|a| a["tenant_id"] == contoso.to_string()),
        "{v}"
    );
    let ua = seen
        .iter()
        .find(|a| a["kind"] == "unusual-access")
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        ua["occurrences"].as_i64().unwrap() >= 2,
        "played again: {ua}"
    );
    let ack = format!("/api/admin/alerts/{}/ack", ua["id"].as_str().unwrap());
    let (st, v) = call(&api, &admin, "POST", &ack, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["acknowledged_by"], admin.account_id);
    let (st, v) = call(&api, &admin, "POST", &ack, None);
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("already-acknowledged"))
    );
    let (_, v) = call(&api, &admin, "GET", "/api/admin/alerts?open=true", None);
    assert!(
        !v.as_array().unwrap().iter().any(|a| a["id"] == ua["id"]),
        "acknowledged alerts are not open: {v}"
    );
    // Another tenant's alert is not there for this admin.
    let other = format!("/api/admin/alerts/{}/ack", rf[0].id);
    assert_eq!(call(&api, &admin, "POST", &other, None).0, 404);
    // The operator sees the installation's alerts, never a tenant's, and
    // acknowledges one.
    let (st, v) = call(&api, &operator, "GET", "/api/admin/alerts", None);
    assert_eq!(st, 200);
    let installation = v.as_array().unwrap();
    assert!(installation.iter().all(|a| a["tenant_id"].is_null()), "{v}");
    let down = installation
        .iter()
        .find(|a| a["kind"] == "node-down")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(down["details"]["node"], "gw-lost");
    let full = installation
        .iter()
        .find(|a| a["kind"] == "spool-full")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(full["details"]["node"], "gw-full");
    assert_eq!(full["details"]["percent"], 100);
    let ack_down = format!("/api/admin/alerts/{}/ack", down["id"].as_str().unwrap());
    assert_eq!(call(&api, &operator, "POST", &ack_down, None).0, 200);
    assert_eq!(
        call(&api, &admin, "POST", &ack_down, None).0,
        404,
        "not the tenant's"
    );

    // Audited: raised (once per alert) and acknowledged.
    let audit = |t: TenantId, action: AuditAction| {
        let store = &store;
        async move {
            store
                .list_audit(
                    t,
                    &AuditQuery {
                        action: Some(action),
                        ..AuditQuery::default()
                    },
                )
                .await
                .unwrap()
        }
    };
    let raised = audit(fabrikam, AuditAction::AlertRaised).await;
    assert_eq!(
        raised
            .iter()
            .filter(|e| e.details["kind"] == "recording-failure")
            .count(),
        1,
        "{raised:?}"
    );
    let raised = audit(contoso, AuditAction::AlertRaised).await;
    assert!(
        raised
            .iter()
            .any(|e| e.details["kind"] == "unusual-access"
                && e.target.as_deref() == ua["id"].as_str())
    );
    let acked = audit(contoso, AuditAction::AlertAcknowledged).await;
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0].actor, admin.account_id);
    assert_eq!(acked[0].details["alert_id"], ua["id"]);
    let changes = audit(contoso, AuditAction::AlertChannelChange).await;
    assert_eq!(changes.len(), 1);
    assert!(!changes[0].details.to_string().contains(TENANT_HOOK_SECRET));

    // The log names no one either.
    let text = std::fs::read_to_string(&log).unwrap();
    for p in ["alice@", "4255550100", HOOK_SECRET, TENANT_HOOK_SECRET] {
        assert!(!text.contains(p), "{p} in the log");
    }
    tokio::task::block_in_place(move || drop(api));
    drop(server);
}
