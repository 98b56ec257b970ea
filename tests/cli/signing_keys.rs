//! Signing keys every node can verify (issue 14, part 2), through the real
//! binary: two nodes (two data directories, each with its own signing
//! key) on one PostgreSQL database and one blob store. A recording made
//! through node A verifies with node B's configuration, a certificate
//! signed on B verifies on A, evidence signed before and after
//! `insights keys rotate-signing` verifies, and offline verification with
//! `--trusted-keys` (from `insights keys export-public`) passes with the
//! installation's key set and fails with a foreign one.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use insights_core::config::{Overrides, Secret, Settings};
use insights_core::domain::*;

use crate::e2e_call::{add_tenant, simulate};
use crate::{insights, serve_with_env};

/// Two seconds of a tone as a 16 kHz mono WAV file.
fn tone(dir: &Path, name: &str, hz: f64) -> PathBuf {
    let rate = 16_000u32;
    let samples: Vec<i16> = (0..rate * 2)
        .map(|i| ((i as f64 * hz * std::f64::consts::TAU / f64::from(rate)).sin() * 8000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    let path = dir.join(format!("{name}.wav"));
    std::fs::write(&path, b).unwrap();
    path
}

/// One node: its data directory and environment.
struct Node {
    data: PathBuf,
    env: Vec<(String, String)>,
}

impl Node {
    /// A node on the shared database, blob folder and KEK file (the KEK
    /// file stands in for a shared key provider), with its own signing key
    /// in its own data directory.
    fn new(root: &Path, name: &str, pg_url: &str) -> Self {
        let data = root.join(name);
        let shared = root.join("shared");
        let env = vec![
            ("INSIGHTS_DATABASE__URL".into(), pg_url.to_owned()),
            (
                "INSIGHTS_BLOB__LOCAL_DIR".into(),
                shared.join("blobs").display().to_string(),
            ),
            (
                "INSIGHTS_KEYS__KEY_FILE".into(),
                shared.join("keys/kek.json").display().to_string(),
            ),
            (
                "INSIGHTS_SPOOL__SIGNING_KEY_FILE".into(),
                data.join("keys/installation-signing-key.json")
                    .display()
                    .to_string(),
            ),
            ("INSIGHTS_NODE_NAME".into(), name.to_owned()),
        ];
        Self { data, env }
    }

    fn d(&self) -> &str {
        self.data.to_str().unwrap()
    }

    /// Runs `insights ARGS --data-dir <node>` with the node's environment.
    fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--data-dir", self.d()]);
        insights(cwd, &all)
            .envs(self.env.iter().cloned())
            .output()
            .unwrap()
    }

    fn settings(&self, root: &Path, pg_url: &str) -> Settings {
        let mut s = Settings::load(
            None,
            &Overrides {
                data_dir: Some(self.data.clone()),
                listen: None,
            },
        )
        .unwrap();
        s.database.url = Some(Secret::new(pg_url));
        s.blob.local_dir = Some(root.join("shared/blobs"));
        s.keys.key_file = Some(root.join("shared/keys/kek.json"));
        s
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
fn ok(o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "expected success: {t}");
    t
}

/// The standard output of a command that must succeed.
#[track_caller]
fn stdout(o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "expected success: {t}");
    String::from_utf8(o.stdout).unwrap()
}

#[track_caller]
fn fails(o: Output) -> String {
    let t = text(&o);
    assert!(!o.status.success(), "expected failure: {t}");
    t
}

/// Makes a call through node A's gateway and waits until it is uploaded.
fn record(
    cwd: &Path,
    a: &Node,
    base: &str,
    settings: &Settings,
    who: &[&str],
    log: &Path,
) -> RecordingId {
    let mut args = vec![
        "simulate-call".to_owned(),
        "--gateway".into(),
        base.to_owned(),
        "--tenant".into(),
        "contoso".into(),
        "--speed".into(),
        "0".into(),
        "--data-dir".into(),
        a.d().to_owned(),
    ];
    for (i, p) in who.iter().enumerate() {
        let wav = tone(cwd, p, 300.0 + 100.0 * i as f64);
        args.push("--participant".into());
        args.push(format!("{p}:{p}@contoso.com:{}", wav.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = simulate(cwd, &a.env, &args);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let platform = insights::platform::Platform::open(settings).await.unwrap();
        let tenant = platform.store.tenant_by_name("contoso").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = platform.store.get_recording(tenant.id, id).await.unwrap();
            // Uploaded: the media object is set. (Not the status alone: a
            // call-end callback arriving after a fast upload can set it
            // back to `spooled`, a race of its own.)
            if r.status == RecordingStatus::Stored || r.media.is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not stored in 60 s: {:?}; the node's log:\n{}",
                r.status,
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    id
}

/// The key id a passing `verify-recording` report names.
fn signer_key(report: &str) -> String {
    report
        .lines()
        .find_map(|l| l.split("manifest signer is trusted: key ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no trusted signer in: {report}"))
        .to_owned()
}

#[test]
fn evidence_signed_on_one_node_verifies_on_another_and_after_rotation() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pg = rt.block_on(insights_tests::fresh_pg_database());
    let root = tempfile::tempdir().unwrap();
    let cwd = root.path();
    let a = Node::new(cwd, "node-a", &pg);
    let b = Node::new(cwd, "node-b", &pg);
    let a_settings = a.settings(cwd, &pg);
    add_tenant(cwd, a.d(), &a.env, "contoso");

    // A recording through node A verifies with node B's configuration.
    let log = cwd.join("a1.log");
    let server = serve_with_env(cwd, &a.data, &a.env, &log);
    let rec1 = record(cwd, &a, &server.base, &a_settings, &["alice", "bob"], &log);
    drop(server);
    let r1_on_b = ok(b.run(cwd, &["verify-recording", &rec1.to_string()]));
    assert!(r1_on_b.contains("of node node-a"), "{r1_on_b}");
    let key_a1 = signer_key(&r1_on_b);
    assert!(key_a1.starts_with("ed25519:"), "{key_a1}");
    let old_key_file = std::fs::read(a.data.join("keys/installation-signing-key.json")).unwrap();

    // Rotation on A: a new key signs the next recording; both verify on
    // both nodes.
    let rotated = ok(a.run(cwd, &["keys", "rotate-signing"]));
    assert!(rotated.contains(&key_a1), "{rotated}");
    let log = cwd.join("a2.log");
    let server = serve_with_env(cwd, &a.data, &a.env, &log);
    let rec2 = record(
        cwd,
        &a,
        &server.base,
        &a_settings,
        &["alice", "carol"],
        &log,
    );
    drop(server);
    for node in [&a, &b] {
        let r1 = ok(node.run(cwd, &["verify-recording", &rec1.to_string()]));
        assert_eq!(signer_key(&r1), key_a1);
        let r2 = ok(node.run(cwd, &["verify-recording", &rec2.to_string()]));
        assert_ne!(signer_key(&r2), key_a1, "new evidence uses the new key");
    }

    // The exported set: A's two keys, the old one retired.
    let export = stdout(a.run(cwd, &["keys", "export-public"]));
    let set: serde_json::Value = serde_json::from_str(&export).unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{export}");
    let old = keys
        .iter()
        .find(|k| k["key_id"] == key_a1.as_str())
        .unwrap();
    assert_eq!(old["node_name"], "node-a");
    assert!(old["valid_until"].is_string(), "{export}");
    assert!(!export.contains("secret"), "{export}");
    let trusted = cwd.join("keys.json");
    std::fs::write(&trusted, &export).unwrap();

    // A foreign installation's key set (its own SQLite registry).
    let foreign_dir = cwd.join("foreign");
    let foreign = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", foreign_dir.to_str().unwrap()]);
        insights(cwd, &all).output().unwrap()
    };
    ok(foreign(&["keys", "rotate-signing"]));
    let foreign_set = stdout(foreign(&["keys", "export-public"]));
    let foreign_pk: serde_json::Value = serde_json::from_str(&foreign_set).unwrap();
    let foreign_pk = foreign_pk["keys"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign_file = cwd.join("foreign-keys.json");
    std::fs::write(&foreign_file, &foreign_set).unwrap();

    // Offline: the installation's set passes, the foreign one fails.
    for rec in [rec1, rec2] {
        let r = ok(b.run(
            cwd,
            &[
                "verify-recording",
                &rec.to_string(),
                "--trusted-keys",
                trusted.to_str().unwrap(),
            ],
        ));
        assert!(signer_key(&r).starts_with("ed25519:"), "{r}");
        let r = fails(b.run(
            cwd,
            &[
                "verify-recording",
                &rec.to_string(),
                "--trusted-keys",
                foreign_file.to_str().unwrap(),
            ],
        ));
        assert!(r.contains("untrusted key"), "{r}");
    }

    // An edited key set is refused rather than trusted.
    let edited = cwd.join("edited.json");
    let old_pk = old["public_key"].as_str().unwrap();
    std::fs::write(&edited, export.replace(old_pk, &foreign_pk)).unwrap();
    let r = fails(b.run(
        cwd,
        &[
            "verify-recording",
            &rec1.to_string(),
            "--trusted-keys",
            edited.to_str().unwrap(),
        ],
    ));
    assert!(r.contains("does not match its public key"), "{r}");

    // A certificate signed on B verifies on A (registry) and offline.
    let cert = cwd.join("certificate.json");
    ok(b.run(
        cwd,
        &[
            "gdpr",
            "erase",
            "--tenant",
            "contoso",
            "--email",
            "carol@contoso.com",
            "--reason",
            "Art. 17 request 7",
            "--certificate",
            cert.to_str().unwrap(),
        ],
    ));
    let c = ok(a.run(cwd, &["gdpr", "verify-certificate", cert.to_str().unwrap()]));
    assert!(c.contains("certificate OK"), "{c}");
    // The set exported before B ever signed does not know B's key.
    let c = fails(a.run(
        cwd,
        &[
            "gdpr",
            "verify-certificate",
            cert.to_str().unwrap(),
            "--trusted-keys",
            trusted.to_str().unwrap(),
        ],
    ));
    assert!(c.contains("not registered"), "{c}");
    let export = stdout(a.run(cwd, &["keys", "export-public"]));
    assert!(export.contains("\"node-b\""), "{export}");
    std::fs::write(&trusted, &export).unwrap();
    let c = ok(a.run(
        cwd,
        &[
            "gdpr",
            "verify-certificate",
            cert.to_str().unwrap(),
            "--trusted-keys",
            trusted.to_str().unwrap(),
        ],
    ));
    assert!(c.contains("certificate OK"), "{c}");
    let c = fails(a.run(
        cwd,
        &[
            "gdpr",
            "verify-certificate",
            cert.to_str().unwrap(),
            "--trusted-keys",
            foreign_file.to_str().unwrap(),
        ],
    ));
    assert!(c.contains("not registered"), "{c}");

    // A node whose key file holds a retired key refuses to sign with it.
    std::fs::write(
        a.data.join("keys/installation-signing-key.json"),
        old_key_file,
    )
    .unwrap();
    let out = a.run(
        cwd,
        &[
            "gdpr",
            "erase",
            "--tenant",
            "contoso",
            "--email",
            "bob@contoso.com",
            "--certificate",
            cwd.join("never.json").to_str().unwrap(),
        ],
    );
    let t = fails(out);
    assert!(t.contains("was retired"), "{t}");
    assert!(!cwd.join("never.json").exists());
}

/// The key id `insights keys rotate-signing` says signs from now on.
fn new_key(rotated: &str) -> String {
    rotated
        .split("), ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no new key in: {rotated}"))
        .to_owned()
}

/// Issue 14: `insights keys rotate-signing` takes effect on a running
/// `insights serve` without a restart (the node signs under the key
/// file's lock and reads the file again when it was replaced), and
/// evidence is checked against its key's validity: the manifest (or
/// certificate) dated after its key's retirement is refused by name,
/// while what the key signed before keeps verifying.
#[test]
fn rotate_signing_takes_effect_on_a_running_serve_and_retired_keys_vouch_only_for_older_evidence() {
    let root = tempfile::tempdir().unwrap();
    let cwd = root.path();
    let url = format!("sqlite://{}", cwd.join("shared/insights.db").display());
    let a = Node::new(cwd, "node-a", &url);
    let settings = a.settings(cwd, &url);
    add_tenant(cwd, a.d(), &a.env, "contoso");
    let key_file = a.data.join("keys/installation-signing-key.json");

    let log = cwd.join("serve.log");
    let server = serve_with_env(cwd, &a.data, &a.env, &log);
    let rec1 = record(cwd, &a, &server.base, &settings, &["alice", "bob"], &log);
    let key1 = signer_key(&ok(a.run(cwd, &["verify-recording", &rec1.to_string()])));
    let old_key = cwd.join("old-signing-key.json");
    std::fs::copy(&key_file, &old_key).unwrap();

    // Rotated while serve runs: its next manifest names the new key and
    // verifies, without a restart.
    let rotated = ok(a.run(cwd, &["keys", "rotate-signing"]));
    assert!(rotated.contains(&key1), "{rotated}");
    let key2 = new_key(&rotated);
    assert_ne!(key1, key2);
    let rec2 = record(cwd, &a, &server.base, &settings, &["alice", "carol"], &log);
    let r2 = ok(a.run(cwd, &["verify-recording", &rec2.to_string()]));
    assert_eq!(signer_key(&r2), key2, "{r2}");
    let r1 = ok(a.run(cwd, &["verify-recording", &rec1.to_string()]));
    assert_eq!(signer_key(&r1), key1, "evidence from before the rotation");
    drop(server);
    let served = std::fs::read_to_string(&log).unwrap();
    assert!(
        served.contains("the installation signing key was rotated"),
        "{served}"
    );

    // Evidence dated after the retirement, signed by the retired key (a
    // copy of its file): refused with a named error. The genuine manifest
    // verifies again once restored.
    let manifest = cwd
        .join("shared/blobs")
        .join(Tenant::container_name(tenant_of(&settings, "contoso")))
        .join(bot_gateway::custody::manifest_key(rec1));
    let genuine = std::fs::read(&manifest).unwrap();
    let signed = bot_gateway::custody::SignedManifest::from_bytes(&genuine).unwrap();
    let retired = bot_gateway::custody::InstallationKey::open_or_create(&old_key).unwrap();
    let forged =
        bot_gateway::custody::SignedManifest::sign(signed.manifest.clone(), &retired).unwrap();
    assert_eq!(
        forged.manifest.signing_key_id.as_deref(),
        Some(key1.as_str())
    );
    std::fs::write(&manifest, forged.to_bytes().unwrap()).unwrap();
    let r = fails(a.run(cwd, &["verify-recording", &rec1.to_string()]));
    assert!(r.contains("signing-key-retired"), "{r}");
    assert!(r.contains(&key1), "{r}");
    // Offline against the exported set: the same.
    let export = stdout(a.run(cwd, &["keys", "export-public"]));
    let trusted = cwd.join("keys.json");
    std::fs::write(&trusted, &export).unwrap();
    let r = fails(a.run(
        cwd,
        &[
            "verify-recording",
            &rec1.to_string(),
            "--trusted-keys",
            trusted.to_str().unwrap(),
        ],
    ));
    assert!(r.contains("signing-key-retired"), "{r}");
    std::fs::write(&manifest, &genuine).unwrap();
    ok(a.run(cwd, &["verify-recording", &rec1.to_string()]));

    // Certificates: the retired key vouches for one completed while it
    // was valid, not for one completed after its retirement, nor for one
    // dated before it existed.
    let set: serde_json::Value = serde_json::from_str(&export).unwrap();
    let old_entry = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key1.as_str())
        .unwrap_or_else(|| panic!("no {key1} in {export}"));
    let time = |field: &str| -> chrono::DateTime<chrono::Utc> {
        serde_json::from_value(old_entry[field].clone())
            .unwrap_or_else(|_| panic!("no {field} in {export}"))
    };
    let (valid_from, retired_at) = (time("valid_from"), time("valid_until"));
    assert!(valid_from < retired_at);
    let signer = gdpr_tools::certificate::CertificateSigner::open_or_create(&old_key).unwrap();
    for (name, at, good) in [
        (
            "before.json",
            valid_from + (retired_at - valid_from) / 2,
            true,
        ),
        (
            "after.json",
            retired_at + chrono::Duration::seconds(5),
            false,
        ),
        (
            "early.json",
            valid_from - chrono::Duration::seconds(5),
            false,
        ),
    ] {
        let cert = serde_json::json!({
            "type": "insights-gdpr-erasure-certificate",
            "version": 1,
            "completed_at": at,
        });
        let path = cwd.join(name);
        std::fs::write(&path, signer.sign(&cert).unwrap()).unwrap();
        for extra in [&[][..], &["--trusted-keys", trusted.to_str().unwrap()][..]] {
            let mut args = vec!["gdpr", "verify-certificate", path.to_str().unwrap()];
            args.extend_from_slice(extra);
            let out = a.run(cwd, &args);
            if good {
                let t = ok(out);
                assert!(t.contains("certificate OK"), "{t}");
            } else {
                let t = fails(out);
                let want = if name == "early.json" {
                    "signing-key-not-yet-valid"
                } else {
                    "signing-key-retired"
                };
                assert!(t.contains(want), "{t}");
            }
        }
    }
}

fn tenant_of(settings: &Settings, name: &str) -> TenantId {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = insights_stores::open_metadata(settings).await.unwrap();
        store.tenant_by_name(name).await.unwrap().id
    })
}
