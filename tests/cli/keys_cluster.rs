//! Key-encryption keys from the `database` key provider (issue 14 §1),
//! through the real binary: two `insights serve` processes on one
//! PostgreSQL database and one Azurite, each with its own data directory
//! and the same root key. A call recorded through one node plays through
//! the other; `insights keys rotate` while both run keeps every recording
//! playable on both; a node started with the wrong root key refuses to
//! start and writes nothing; a stored KEK that was edited is refused by
//! name; a tenant without a KEK has its calls refused (Teams is told
//! `failed`) and the alarm raised.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use insights_core::crypto::WrappedKek;
use insights_core::domain::{RecordingId, TenantId};
use insights_core::store::prelude::*;
use insights_stores::metadata::postgres::PgStore;

use crate::e2e_call::{add_tenant, simulate, speak};
use crate::{Server, insights, serve_with_env};

/// Writes a root key file (0600) holding `hex`.
fn root_key_file(dir: &Path, name: &str, hex: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{hex}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn random_hex() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{b}")
}

/// The environment of a node of the cluster.
fn node_env(pg: &str, azurite: &str, root: &Path, token_key: &Path) -> Vec<(String, String)> {
    vec![
        ("INSIGHTS_DATABASE__URL".into(), pg.into()),
        ("INSIGHTS_BLOB__BACKEND".into(), "azure".into()),
        ("INSIGHTS_BLOB__AZURE__USE_EMULATOR".into(), "true".into()),
        ("INSIGHTS_BLOB__AZURE__ENDPOINT".into(), azurite.into()),
        ("INSIGHTS_KEYS__PROVIDER".into(), "database".into()),
        (
            "INSIGHTS_KEYS__ROOT_KEY_FILE".into(),
            root.to_str().unwrap().into(),
        ),
        // Both nodes serve the API of one installation.
        (
            "INSIGHTS_AUTH__TOKEN_KEY_FILE".into(),
            token_key.to_str().unwrap().into(),
        ),
    ]
}

struct Node {
    server: Server,
    data: PathBuf,
    log: PathBuf,
    /// The cluster's environment plus this node's `node_name`.
    env: Vec<(String, String)>,
}

/// Starts node `name` (data directory `cwd/name`, `node_name` `node-<name>`).
fn start_node(cwd: &Path, name: &str, env: &[(String, String)]) -> Node {
    let data = cwd.join(name);
    let log = cwd.join(format!("{name}.log"));
    let mut env = env.to_vec();
    env.push(("INSIGHTS_NODE_NAME".into(), format!("node-{name}")));
    let server = serve_with_env(cwd, &data, &env, &log);
    Node {
        server,
        data,
        log,
        env,
    }
}

impl Node {
    /// `insights ARGS --data-dir <node>` with the node's environment.
    fn run(&self, cwd: &Path, args: &[&str]) -> (bool, String, String) {
        let mut all = args.to_vec();
        all.extend(["--data-dir", self.data.to_str().unwrap()]);
        run(cwd, &self.env, &all)
    }

    /// `insights verify-recording ID` with this node's configuration:
    /// must pass, signed by `signer` (a node name); returns the key id.
    #[track_caller]
    fn verify(&self, cwd: &Path, id: RecordingId, signer: &str) -> String {
        let (ok, out, err) = self.run(cwd, &["verify-recording", &id.to_string()]);
        assert!(
            ok,
            "verify-recording {id} failed with {}'s configuration: {out}{err}",
            self.data.display()
        );
        out.lines()
            .find_map(|l| l.split("manifest signer is trusted: key ").nth(1))
            .filter(|rest| rest.ends_with(&format!(" of node {signer}")))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("recording {id} not signed by {signer}: {out}"))
            .to_owned()
    }
}

/// A short simulated call of tenant `tenant` through `node`.
fn call(cwd: &Path, node: &Node, tenant: &str, n: u32) -> RecordingId {
    call_with(
        cwd,
        node,
        tenant,
        n,
        "Agent Example",
        &format!("agent@{tenant}.com"),
    )
}

/// [`call`] with the first participant's name and e-mail address given.
fn call_with(
    cwd: &Path,
    node: &Node,
    tenant: &str,
    n: u32,
    name: &str,
    email: &str,
) -> RecordingId {
    let a = speak(
        cwd,
        &format!("a{n}"),
        "Good morning, this is the trading desk about the settlement.",
        "en-us",
    );
    let b = speak(cwd, &format!("b{n}"), "Confirmed, thank you.", "en-gb");
    simulate(
        cwd,
        &node.env,
        &[
            "simulate-call",
            "--gateway",
            &node.server.base,
            "--tenant",
            tenant,
            "--speed",
            "0",
            "--data-dir",
            node.data.to_str().unwrap(),
            "--participant",
            &format!("{name}:{email}:{}", a.display()),
            "--participant",
            &format!("Other Party:+14255550123:{}", b.display()),
        ],
    )
}

/// The recording's media through `node`'s API, once it is stored (waits
/// up to 90 s for the uploader).
fn play(http: &reqwest::blocking::Client, node: &Node, token: &str, id: RecordingId) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = http
            .get(format!("{}/api/recordings/{id}/media", node.server.base))
            .bearer_auth(token)
            .header("x-access-reason", "key provider test")
            .send()
            .unwrap();
        let status = r.status();
        let body = r.bytes().unwrap().to_vec();
        if status.is_success() {
            assert!(body.starts_with(b"OggS"), "not Ogg media");
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "recording {id} not playable through {}: {status} {}",
            node.server.base,
            String::from_utf8_lossy(&body)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `insights ARGS` with `env`; returns (success, stdout, stderr).
fn run(cwd: &Path, env: &[(String, String)], args: &[&str]) -> (bool, String, String) {
    let out = insights(cwd, args)
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `insights serve` expecting it to refuse to start: returns its
/// stderr (fails if it is still running after 60 s).
fn serve_refused(cwd: &Path, data: &Path, env: &[(String, String)]) -> String {
    let mut child = insights(
        cwd,
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    )
    .envs(env.iter().cloned())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(!status.success(), "serve started");
            return String::from_utf8_lossy(&out.stderr).into_owned();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not refuse to start within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            }
            out.push(p);
        }
    }
    out
}

async fn keks(pg: &str, tenant: TenantId) -> Vec<WrappedKek> {
    let store = PgStore::connect(pg, 2).await.unwrap();
    store.list_keks(tenant).await.unwrap()
}

pub fn two_nodes_share_keks_and_rotate(pg: &str, azurite: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let root_hex = random_hex();
    let root = root_key_file(cwd, "root.key", &root_hex);
    let env = node_env(pg, azurite, &root, &cwd.join("api-token.key"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    // The tenant's KEK is made once, by `admin tenant add`, in the database.
    add_tenant(cwd, cwd.join("a").to_str().unwrap(), &env, "contoso");
    let tenant = rt.block_on(async {
        PgStore::connect(pg, 2)
            .await
            .unwrap()
            .tenant_by_name("contoso")
            .await
            .unwrap()
            .id
    });
    let before = rt.block_on(keks(pg, tenant));
    assert_eq!(before.len(), 1, "one KEK version after tenant add");
    assert_eq!(before[0].version, 1);
    assert!(before[0].kek_id.starts_with("db:"));
    assert_eq!(before[0].wrapped.len(), 60, "nonce, key, tag");
    assert!(
        !cwd.join("a/keys/kek.json").exists(),
        "no local key file with the database provider"
    );

    let a = start_node(cwd, "a", &env);
    let b = start_node(cwd, "b", &env);
    let officer = crate::accounts::sign_in_new_user_with(
        cwd,
        &a.data,
        &env.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        &a.server.base,
        Some("contoso"),
        "officer@contoso.com",
        "compliance-officer",
        &[],
    );
    let token = officer.token;

    // Recorded through A, played through B; recorded through B, played
    // through A: the same bytes either way.
    let r1 = call(cwd, &a, "contoso", 1);
    let r2 = call(cwd, &b, "contoso", 2);
    let r1_on_b = play(&http, &b, &token, r1);
    assert_eq!(play(&http, &a, &token, r1), r1_on_b);
    let r2_on_a = play(&http, &a, &token, r2);
    assert_eq!(play(&http, &b, &token, r2), r2_on_a);
    // Both nodes started without making another KEK.
    assert_eq!(rt.block_on(keks(pg, tenant)), before);
    // Each recording's chain of custody verifies with either node's
    // configuration, signed by the node that recorded it (its key found
    // in the registry, not in the verifying node's own key file).
    let key_a = a.verify(cwd, r1, "node-a");
    assert_eq!(b.verify(cwd, r1, "node-a"), key_a);
    let key_b = b.verify(cwd, r2, "node-b");
    assert_eq!(a.verify(cwd, r2, "node-b"), key_b);
    assert_ne!(key_a, key_b, "each node signs with its own key");

    // Rotation while both nodes run: new version, every data key
    // rewrapped, the old version destroyed, no media re-encrypted.
    let (ok, out, err) = run(
        cwd,
        &env,
        &[
            "keys",
            "rotate",
            "--tenant",
            "contoso",
            "--batch",
            "1",
            "--data-dir",
            a.data.to_str().unwrap(),
        ],
    );
    assert!(ok, "keys rotate: {out}{err}");
    assert!(out.contains("2 data keys rewrapped"), "{out}");
    assert!(out.contains("1 old version(s) destroyed"), "{out}");
    assert!(
        out.contains("rewrapped 2/2 data keys"),
        "plain progress lines: {out}"
    );
    let after = rt.block_on(keks(pg, tenant));
    assert_eq!(after.len(), 1, "only the new version is left");
    assert_eq!(after[0].version, 2);
    assert_ne!(after[0].kek_id, before[0].kek_id);

    // Every recording still plays on both nodes, byte for byte (B had
    // the old version cached).
    assert_eq!(play(&http, &b, &token, r1), r1_on_b);
    assert_eq!(play(&http, &a, &token, r2), r2_on_a);
    assert_eq!(play(&http, &a, &token, r1), r1_on_b);
    assert_eq!(play(&http, &b, &token, r2), r2_on_a);
    // ... and verifies on both nodes.
    for node in [&a, &b] {
        assert_eq!(node.verify(cwd, r1, "node-a"), key_a);
        assert_eq!(node.verify(cwd, r2, "node-b"), key_b);
    }
    // New calls use the new version on both nodes.
    let r3 = call(cwd, &b, "contoso", 3);
    let r3_on_a = play(&http, &a, &token, r3);
    assert_eq!(play(&http, &b, &token, r3), r3_on_a);
    let (ok, out, _) = run(
        cwd,
        &env,
        &[
            "keys",
            "rotate",
            "--tenant",
            "contoso",
            "--data-dir",
            a.data.to_str().unwrap(),
        ],
    );
    assert!(ok && out.contains("3 data keys rewrapped"), "{out}");
    for (r, bytes) in [(r1, &r1_on_b), (r2, &r2_on_a), (r3, &r3_on_a)] {
        assert_eq!(&play(&http, &a, &token, r), bytes);
        assert_eq!(&play(&http, &b, &token, r), bytes);
    }
    for node in [&a, &b] {
        assert_eq!(node.verify(cwd, r1, "node-a"), key_a);
        assert_eq!(node.verify(cwd, r2, "node-b"), key_b);
        assert_eq!(node.verify(cwd, r3, "node-b"), key_b);
    }
    let current = rt.block_on(keks(pg, tenant));

    // An erasure executed through node B's CLI: its certificate, signed
    // with B's key, verifies on node A (through the registry).
    let r4 = call_with(cwd, &a, "contoso", 4, "Erin Example", "erin@contoso.com");
    play(&http, &b, &token, r4);
    let cert = cwd.join("certificate.json");
    let (ok, out, err) = b.run(
        cwd,
        &[
            "gdpr",
            "erase",
            "--tenant",
            "contoso",
            "--name",
            "Erin Example",
            "--reason",
            "Art. 17 request 7",
            "--certificate",
            cert.to_str().unwrap(),
        ],
    );
    assert!(ok, "gdpr erase on B: {out}{err}");
    assert!(out.contains(&r4.to_string()), "{out}");
    let (ok, out, err) = a.run(cwd, &["gdpr", "verify-certificate", cert.to_str().unwrap()]);
    assert!(ok, "certificate refused on A: {out}{err}");
    assert!(out.contains("certificate OK"), "{out}");
    assert!(
        out.contains(&format!("(key {key_b},")),
        "not B's key: {out}"
    );
    // An edited certificate is refused on A.
    let edited = cwd.join("edited-certificate.json");
    let text = std::fs::read_to_string(&cert).unwrap();
    assert!(text.contains("Art. 17 request 7"), "{text}");
    std::fs::write(
        &edited,
        text.replace("Art. 17 request 7", "Art. 17 request 8"),
    )
    .unwrap();
    let (ok, out, err) = a.run(
        cwd,
        &["gdpr", "verify-certificate", edited.to_str().unwrap()],
    );
    assert!(!ok, "edited certificate accepted: {out}");
    assert!(!out.contains("certificate OK"), "{out}{err}");
    // The other recordings are untouched by the erasure.
    for (r, bytes) in [(r1, &r1_on_b), (r2, &r2_on_a), (r3, &r3_on_a)] {
        assert_eq!(&play(&http, &a, &token, r), bytes);
    }

    // A node with the wrong root key refuses to start, clearly, and
    // writes nothing: no file in its data directory, no KEK changed.
    let wrong = root_key_file(cwd, "wrong.key", &random_hex());
    let wrong_env = node_env(pg, azurite, &wrong, &cwd.join("api-token.key"));
    let c_data = cwd.join("c");
    let err = serve_refused(cwd, &c_data, &wrong_env);
    assert!(err.contains("wrong root key"), "{err}");
    assert!(err.contains("same root key"), "{err}");
    assert!(!err.contains(&root_hex), "the error shows no key");
    assert!(
        files_under(&c_data).is_empty(),
        "wrote {:?}",
        files_under(&c_data)
    );
    assert_eq!(rt.block_on(keks(pg, tenant)), current);
    // A root key that is no key at all is refused by name too.
    let bad = root_key_file(cwd, "bad.key", "not-hex");
    let err = serve_refused(
        cwd,
        &c_data,
        &node_env(pg, azurite, &bad, &cwd.join("api-token.key")),
    );
    assert!(err.contains("not 64 hex digits"), "{err}");

    // A tenant whose KEK is gone: its call is refused, Teams is told
    // `failed`, and the alarm is raised; nothing is stored for it.
    add_tenant(cwd, a.data.to_str().unwrap(), &env, "fabrikam");
    let fabrikam = rt.block_on(async {
        let store = PgStore::connect(pg, 2).await.unwrap();
        let t = store.tenant_by_name("fabrikam").await.unwrap().id;
        assert_eq!(store.delete_keks_before(t, u32::MAX).await.unwrap(), 1);
        t
    });
    let (ok, out, err) = {
        let w = speak(cwd, "f", "Hello there.", "en-us");
        run(
            cwd,
            &env,
            &[
                "simulate-call",
                "--gateway",
                &a.server.base,
                "--tenant",
                "fabrikam",
                "--speed",
                "0",
                "--data-dir",
                a.data.to_str().unwrap(),
                "--participant",
                &format!("Agent Example:agent@fabrikam.com:{}", w.display()),
                "--participant",
                &format!("Other Party:+14255550124:{}", w.display()),
            ],
        )
    };
    assert!(!ok, "the call was recorded: {out}");
    assert!(err.contains("recording-failed"), "{out}{err}");
    let log = std::fs::read_to_string(&a.log).unwrap();
    let refused = log
        .lines()
        .filter(|l| l.contains("key-provider-error") && l.contains(&fabrikam.to_string()))
        .collect::<Vec<_>>();
    assert!(
        refused.iter().any(|l| l.contains("missing-kek")),
        "no alarm naming the tenant: {log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("recording status reported") && l.contains("failed")),
        "Teams was not told `failed`"
    );
    let metrics = http
        .get(format!("{}/metrics", a.server.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("insights_key_provider_errors_total{kind=\"missing-kek\"}")),
        "{metrics}"
    );
    let recorded = rt.block_on(async {
        let store = PgStore::connect(pg, 2).await.unwrap();
        store
            .data_keys_not_under(fabrikam, "", 10)
            .await
            .unwrap()
            .len()
    });
    assert_eq!(recorded, 0, "a data key was stored for the refused call");
    // A node never made a KEK for it on the way.
    assert!(rt.block_on(keks(pg, fabrikam)).is_empty());

    // An edited KEK row: contoso's calls are refused by name, nothing
    // is written, and the node says which tenant and version.
    rt.block_on(async {
        let store = PgStore::connect(pg, 2).await.unwrap();
        let mut edited = current[0].clone();
        edited.wrapped[20] ^= 1;
        edited.version += 1;
        edited.kek_id = format!("{}-edited", edited.kek_id);
        assert!(store.put_kek(tenant, &edited).await.unwrap());
    });
    let w = speak(cwd, "g", "Hello again.", "en-us");
    let (ok, out, err) = run(
        cwd,
        &env,
        &[
            "simulate-call",
            "--gateway",
            &b.server.base,
            "--tenant",
            "contoso",
            "--speed",
            "0",
            "--data-dir",
            b.data.to_str().unwrap(),
            "--participant",
            &format!("Agent Example:agent@contoso.com:{}", w.display()),
            "--participant",
            &format!("Other Party:+14255550125:{}", w.display()),
        ],
    );
    assert!(!ok, "recorded under an edited KEK: {out}");
    assert!(err.contains("recording-failed"), "{out}{err}");
    let log = std::fs::read_to_string(&b.log).unwrap();
    assert!(
        log.lines().any(|l| l.contains("key-provider-error")
            && l.contains("bad-wrapped-kek")
            && l.contains(&tenant.to_string())
            && l.contains("edited")),
        "no named alarm for the edited KEK: {log}"
    );
    // Privacy: no log line of either node names a participant.
    for log in [&a.log, &b.log] {
        let text = std::fs::read_to_string(log).unwrap();
        for secret in [
            "Agent Example",
            "agent@contoso.com",
            "4255550123",
            "Erin Example",
            "erin@contoso.com",
            &root_hex,
        ] {
            assert!(!text.contains(secret), "log contains `{secret}`");
        }
    }
}

/// `insights keys rotate --tenant T --batch 1` is killed (SIGKILL) after
/// its first progress line, while it has batches left; the old version
/// stays readable meanwhile; run again, it carries on with the version
/// the killed run made, rewraps the rest, destroys the old version, and
/// every recording plays as before. The kill lands mid-run for certain:
/// the test holds a row lock on the second data key (as a concurrent
/// writer would), so the rewrap of batch 2 waits on it.
pub fn killed_rotation_resumes(pg: &str, azurite: &str) {
    use sqlx::Connection;
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;

    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let root = root_key_file(cwd, "root.key", &random_hex());
    let env = node_env(pg, azurite, &root, &cwd.join("api-token.key"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    add_tenant(cwd, cwd.join("a").to_str().unwrap(), &env, "contoso");
    let tenant = rt.block_on(async {
        PgStore::connect(pg, 2)
            .await
            .unwrap()
            .tenant_by_name("contoso")
            .await
            .unwrap()
            .id
    });
    let a = start_node(cwd, "a", &env);
    let mut officer = crate::accounts::sign_in_new_user_with(
        cwd,
        &a.data,
        &env.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        &a.server.base,
        Some("contoso"),
        "officer@contoso.com",
        "compliance-officer",
        &[],
    );
    let token = officer.token.clone();
    assert!(officer.totp_seed.is_some(), "the officer has a TOTP seed");
    // Four recordings: four data keys, four batches of one.
    let recs: Vec<(RecordingId, Vec<u8>)> = (1..=4)
        .map(|n| {
            let r = call(cwd, &a, "contoso", n);
            (r, play(&http, &a, &token, r))
        })
        .collect();
    let v1 = rt.block_on(keks(pg, tenant));
    assert_eq!(v1.len(), 1);

    // A concurrent writer holds the second data key (in rewrap order).
    let mut lock = rt.block_on(sqlx::PgConnection::connect(pg)).unwrap();
    rt.block_on(async {
        sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
        // (Two statements: FOR UPDATE with OFFSET locks the skipped
        // rows too.)
        let second: uuid::Uuid = sqlx::query_scalar(
            "SELECT id FROM data_keys WHERE tenant_id = $1 \
             ORDER BY created_at, id OFFSET 1 LIMIT 1",
        )
        .bind(tenant.0)
        .fetch_one(&mut lock)
        .await
        .unwrap();
        sqlx::query("SELECT id FROM data_keys WHERE id = $1 FOR UPDATE")
            .bind(second)
            .execute(&mut lock)
            .await
            .unwrap();
    });

    let rotate_args = [
        "keys",
        "rotate",
        "--tenant",
        "contoso",
        "--batch",
        "1",
        "--data-dir",
        a.data.to_str().unwrap(),
    ];
    let mut child = insights(cwd, &rotate_args)
        .envs(env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(cwd.join("rotate-1.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "no progress line in 60 s: {}",
                std::fs::read_to_string(cwd.join("rotate-1.log")).unwrap_or_default()
            )
        });
    assert_eq!(first, "rewrapped 1/4 data keys");
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "rotate ended by itself: {status}");
    assert!(rx.try_recv().is_err(), "more progress after the kill");

    // Interrupted: both versions there, one data key under the new one,
    // three under the old; everything plays meanwhile.
    let mid = rt.block_on(keks(pg, tenant));
    assert_eq!(mid.len(), 2, "{mid:?}");
    assert_eq!(mid[0], v1[0], "the old version is kept until the end");
    assert_eq!(mid[1].version, 2);
    let new_kek = mid[1].kek_id.clone();
    let left = rt.block_on(async {
        PgStore::connect(pg, 2)
            .await
            .unwrap()
            .count_data_keys_not_under(tenant, &new_kek)
            .await
            .unwrap()
    });
    assert_eq!(left, 3);
    rt.block_on(async { sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap() });
    for (r, bytes) in &recs {
        assert_eq!(&play(&http, &a, &token, *r), bytes);
    }
    // A call recorded mid-rotation is wrapped under the new version.
    let r5 = call(cwd, &a, "contoso", 5);
    let r5_bytes = play(&http, &a, &token, r5);

    // Run again: it resumes with the killed run's version.
    let (ok, out, err) = run(cwd, &env, &rotate_args);
    assert!(ok, "keys rotate (resumed): {out}{err}");
    assert!(out.contains(&format!("rotated to {new_kek};")), "{out}");
    assert!(out.contains("rewrapped 3/3 data keys"), "{out}");
    assert!(out.contains("3 data keys rewrapped"), "{out}");
    assert!(out.contains("1 old version(s) destroyed"), "{out}");
    let after = rt.block_on(keks(pg, tenant));
    assert_eq!(after, vec![mid[1].clone()], "only the new version is left");
    for (r, bytes) in recs.iter().chain([&(r5, r5_bytes)]) {
        assert_eq!(&play(&http, &a, &token, *r), bytes);
    }
    // The officer's TOTP seed (a sealed secret of the tenant) was
    // rewrapped too: signing in still works with the old version gone.
    crate::accounts::sign_in(&a.server.base, &mut officer, false);
}

/// A call still in a node's spool when `insights keys rotate` runs (its
/// data key was wrapped when the call began and reaches the store only at
/// upload): the rotation keeps the old KEK version and says why; once the
/// call is stored, rotating again destroys it, and the recording plays on
/// a node started afterwards. Runs its own Azurite, stopped while the
/// call is recorded so that the call stays spooled.
pub fn spooled_call_survives_rotation(pg: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/azurite.sh");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let az_dir = cwd.join("azurite");
    let azurite = |cmd: &str| {
        let st = std::process::Command::new(&scripts)
            .args([cmd, az_dir.to_str().unwrap()])
            .env("AZURITE_PORT", port.to_string())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "azurite.sh {cmd} failed");
    };
    azurite("start");
    // Stops this test's Azurite however the test ends.
    struct StopAzurite<F: Fn(&str)>(F);
    impl<F: Fn(&str)> Drop for StopAzurite<F> {
        fn drop(&mut self) {
            (self.0)("stop");
        }
    }
    let azurite = StopAzurite(azurite);
    let endpoint = format!("http://127.0.0.1:{port}/devstoreaccount1");
    let root = root_key_file(cwd, "root.key", &random_hex());
    let mut env = node_env(pg, &endpoint, &root, &cwd.join("api-token.key"));
    env.push(("INSIGHTS_SPOOL__BACKOFF_MAX_MS".into(), "2000".into()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    add_tenant(cwd, cwd.join("a").to_str().unwrap(), &env, "contoso");
    let store = rt.block_on(PgStore::connect(pg, 2)).unwrap();
    let tenant = rt.block_on(store.tenant_by_name("contoso")).unwrap().id;
    let a = start_node(cwd, "a", &env);
    let officer = crate::accounts::sign_in_new_user_with(
        cwd,
        &a.data,
        &env.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        &a.server.base,
        Some("contoso"),
        "officer@contoso.com",
        "compliance-officer",
        &[],
    );
    let stored = call(cwd, &a, "contoso", 1);
    let stored_media = play(&http, &a, &officer.token, stored);

    // Blob storage down: the next call stays in node A's spool.
    (azurite.0)("stop");
    let spooled = call(cwd, &a, "contoso", 2);
    let status = rt
        .block_on(store.get_recording(tenant, spooled))
        .unwrap()
        .status;
    assert_ne!(
        status,
        insights_core::domain::RecordingStatus::Stored,
        "the call was not spooled"
    );
    let rotate = ["keys", "rotate", "--tenant", "contoso"];
    let (ok, out, err) = a.run(cwd, &rotate);
    assert!(ok, "keys rotate failed: {out}{err}");
    assert!(
        out.contains(
            "1 recordings not yet stored and 0 export or access-bundle jobs still running may use \
             the old key-encryption key; run `insights keys rotate` again once they are stored and \
             finished"
        ),
        "{out}"
    );
    assert!(out.contains(" data keys rewrapped"), "{out}");
    assert_eq!(
        rt.block_on(keks(pg, tenant)).len(),
        2,
        "the old version was kept"
    );

    // Blob storage back: the upload completes with the kept version.
    (azurite.0)("start");
    let spooled_media = play(&http, &a, &officer.token, spooled);
    let (ok, out, err) = a.run(cwd, &rotate);
    assert!(ok, "keys rotate failed: {out}{err}");
    assert!(out.contains("1 old version(s) destroyed"), "{out}");
    assert_eq!(rt.block_on(keks(pg, tenant)).len(), 1);

    // A node that never cached the old version plays both.
    let b = start_node(cwd, "b", &env);
    assert_eq!(play(&http, &b, &officer.token, spooled), spooled_media);
    assert_eq!(play(&http, &b, &officer.token, stored), stored_media);
    drop(azurite);
}
