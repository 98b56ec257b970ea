//! The `azure-key-vault` key provider through the real binary, against
//! the Key Vault stand-in (`insights_tests::key_vault`: real RSA-OAEP-256,
//! api-version and bearer token checked) and its client-credentials token
//! endpoint: `admin tenant add` creates the tenant's key in the vault; a
//! simulated call is recorded through a 429 with `Retry-After` and plays
//! back; truncated, edited, foreign and spliced wrapped data keys are
//! refused with named errors; after the key is disabled in the vault a new
//! call is refused (recording `failed`), an alarm is logged and
//! `insights_key_provider_errors_total{kind="revoked"}` counts it.

use std::path::Path;
use std::time::{Duration, Instant};

use insights_core::config::{KeyProviderKind, Overrides, Settings};
use insights_core::crypto::envelope::{self, ExpectedIds};
use insights_core::domain::*;
use insights_core::store::GovernanceQuery;
use insights_tests::key_vault::{CLIENT_ID, CLIENT_SECRET, KeyVaultStandIn};

use crate::e2e_call::{add_tenant, simulate, speak};
use crate::{insights, serve_with_env};

/// The Entra tenant of the test app registration.
const ENTRA_TENANT: &str = "0b8c4f2e-5d1a-4c3b-9e7f-2a6d8c1b3e50";

/// The environment selecting the vault provider against `kv`.
pub(crate) fn vault_env(kv: &KeyVaultStandIn, dir: &Path) -> Vec<(String, String)> {
    let secret = dir.join("vault-client-secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    let p = "INSIGHTS_KEYS__AZURE_KEY_VAULT__";
    vec![
        ("INSIGHTS_ALLOW_INSECURE_HTTP".into(), "true".into()),
        ("INSIGHTS_KEYS__PROVIDER".into(), "azure-key-vault".into()),
        (format!("{p}VAULT_URL"), kv.vault_url()),
        (format!("{p}TENANT_ID"), ENTRA_TENANT.into()),
        (format!("{p}CLIENT_ID"), CLIENT_ID.into()),
        (
            format!("{p}CLIENT_SECRET_FILE"),
            secret.to_str().unwrap().into(),
        ),
        (format!("{p}TOKEN_ENDPOINT"), kv.token_endpoint()),
    ]
}

/// The same settings for the test's own `Platform::open`.
fn vault_settings(kv: &KeyVaultStandIn, data: &Path, dir: &Path) -> Settings {
    let mut s = Settings::load(
        None,
        &Overrides {
            data_dir: Some(data.to_owned()),
            listen: None,
        },
    )
    .unwrap();
    s.allow_insecure_http = true;
    s.keys.provider = KeyProviderKind::AzureKeyVault;
    let v = &mut s.keys.azure_key_vault;
    v.vault_url = Some(kv.vault_url());
    v.tenant_id = Some(ENTRA_TENANT.into());
    v.client_id = Some(CLIENT_ID.into());
    v.client_secret_file = Some(dir.join("vault-client-secret"));
    v.token_endpoint = kv.token_endpoint();
    s.validate().unwrap();
    s
}

pub(crate) fn tenant_id(cwd: &Path, d: &str, env: &[(String, String)], name: &str) -> TenantId {
    let out = insights(cwd, &["--data-dir", d, "admin", "tenant", "list", "--json"])
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|t| t["name"] == name)
        .and_then(|t| t["id"].as_str().map(|s| s.parse().unwrap()))
        .unwrap()
}

/// `insights verify-recording ID`: (success, stdout + stderr).
fn verify(cwd: &Path, d: &str, env: &[(String, String)], id: RecordingId) -> (bool, String) {
    let out = insights(cwd, &["verify-recording", &id.to_string(), "--data-dir", d])
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Replaces the stored wrapped data key `key` (SQLite).
async fn set_wrapped(data: &Path, key: KeyId, kek_id: &str, wrapped: &[u8]) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", data.join("insights.db").display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let n = sqlx::query("UPDATE data_keys SET kek_id = ?, wrapped = ? WHERE id = ?")
        .bind(kek_id)
        .bind(wrapped)
        .bind(key.as_uuid())
        .execute(&mut c)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 1);
}

/// The value of `insights_key_provider_errors_total{kind="revoked"}`.
fn revoked_count(base: &str) -> f64 {
    let text = reqwest::blocking::get(format!("{base}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("insights_key_provider_errors_total") && l.contains("kind=\"revoked\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn key_vault_provider_records_survives_429_refuses_bad_wrapped_keys_and_revoked_keys() {
    let kv = KeyVaultStandIn::start();
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let env = vault_env(&kv, cwd.path());

    // `admin tenant add` creates the tenant's key in the vault.
    add_tenant(cwd.path(), &d, &env, "contoso");
    let tenant = tenant_id(cwd.path(), &d, &env, "contoso");
    let name = format!("insights-kek-{}", tenant.as_uuid());
    assert_eq!(kv.key_names(), vec![name.clone()]);
    assert_eq!(kv.count("create"), 1);
    assert!(
        !data.join("keys").join("kek.json").exists(),
        "the vault provider must not keep a local key file"
    );

    let alice = speak(
        cwd.path(),
        "alice",
        "Good morning, this call is encrypted under a key held by the vault.",
        "en-us",
    );
    let bob = speak(
        cwd.path(),
        "bob",
        "Hello, I hear you, and the recording should play back.",
        "en-gb",
    );
    let call = |server: &crate::Server| {
        vec![
            "simulate-call".to_owned(),
            "--gateway".into(),
            server.base.clone(),
            "--tenant".into(),
            "contoso".into(),
            "--speed".into(),
            "0".into(),
            "--data-dir".into(),
            d.clone(),
            "--participant".into(),
            format!("Alice Example:alice@contoso.com:{}", alice.display()),
            "--participant".into(),
            format!("Bob Example:+14255550100:{}", bob.display()),
        ]
    };

    let logs = cwd.path().join("serve.log");
    let server = serve_with_env(cwd.path(), &data, &env, &logs);

    // A call recorded through a 429 with Retry-After.
    kv.throttle_once(1);
    let started = Instant::now();
    let args = call(&server);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = simulate(cwd.path(), &env, &args);
    assert_eq!(kv.count("throttled"), 1, "the 429 was not served");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After not honoured"
    );
    assert!(kv.count("wrapkey") >= 1);

    let settings = vault_settings(&kv, &data, cwd.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let platform = rt
        .block_on(insights::platform::Platform::open(&settings))
        .unwrap();
    assert_eq!(platform.keys.backend(), "azure-key-vault");
    let rec = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = platform.store.get_recording(tenant, id).await.unwrap();
            if r.status == RecordingStatus::Stored {
                break r;
            }
            assert!(Instant::now() < deadline, "not stored: {:?}", r.status);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let media = rec.media.clone().unwrap();
    let wrapped = rt
        .block_on(platform.store.get_data_key(tenant, media.data_key_id))
        .unwrap();
    assert!(
        wrapped
            .kek_id
            .starts_with(&format!("{}/keys/{name}/", kv.vault_url()))
    );
    assert_eq!(wrapped.wrapped.len(), 384, "RSA-3072 ciphertext");

    // Playback: the data key unwrapped by the vault opens the stored media.
    let unwraps = kv.count("unwrapkey");
    let ogg = rt.block_on(async {
        let key = platform.keys.unwrap(&wrapped).await.unwrap();
        let mut s = platform
            .blobs
            .get_stream(&media.container, &media.key)
            .await
            .unwrap();
        let mut cipher = Vec::new();
        use futures::StreamExt;
        while let Some(c) = s.next().await {
            cipher.extend_from_slice(&c.unwrap());
        }
        let expected = ExpectedIds::new(tenant, rec.id.as_uuid(), media.data_key_id);
        envelope::decrypt_to_vec(&key, &cipher, &expected).unwrap()
    });
    assert_eq!(kv.count("unwrapkey"), unwraps + 1);
    let decoded = recorder::decode_ogg_opus(std::io::Cursor::new(&ogg), 16_000).unwrap();
    assert_eq!(decoded.channels.len(), 2);
    assert!(
        decoded.channels[0].len() > 16_000,
        "too short to be the call"
    );
    // Warm cache: the second unwrap asks the vault nothing.
    rt.block_on(platform.keys.unwrap(&wrapped)).unwrap();
    assert_eq!(kv.count("unwrapkey"), unwraps + 1);
    // And the chain of custody verifies in a fresh process.
    let (ok, text) = verify(cwd.path(), &d, &env, id);
    assert!(ok, "{text}");

    // Bad wrapped keys are refused with named errors.
    add_tenant(cwd.path(), &d, &env, "fabrikam");
    let other = tenant_id(cwd.path(), &d, &env, "fabrikam");
    let other_name = format!("insights-kek-{}", other.as_uuid());
    let plain = |t: TenantId, k: KeyId| {
        let mut p = Vec::new();
        p.extend_from_slice(t.as_uuid().as_bytes());
        p.extend_from_slice(k.as_uuid().as_bytes());
        p.extend_from_slice(&[7u8; 32]);
        p
    };
    let (foreign_kid, foreign) = kv
        .encrypt_with(&other_name, &plain(other, media.data_key_id))
        .unwrap();
    let (own_kid, spliced) = kv
        .encrypt_with(&name, &plain(tenant, KeyId::new()))
        .unwrap();
    let mut edited = wrapped.wrapped.clone();
    edited[200] ^= 0x01;
    let cases: [(&str, &str, Vec<u8>, &str); 5] = [
        (
            "truncated",
            &wrapped.kek_id,
            wrapped.wrapped[..383].to_vec(),
            "wrong length (truncated or padded)",
        ),
        (
            "edited",
            &wrapped.kek_id,
            edited,
            "data key could not be unwrapped",
        ),
        (
            "foreign key id",
            &foreign_kid,
            foreign.clone(),
            "wrapped under a key that is not this tenant's",
        ),
        (
            "foreign value under our key id",
            &wrapped.kek_id,
            foreign,
            "data key could not be unwrapped",
        ),
        (
            "spliced from another data key",
            &own_kid,
            spliced,
            "bound to another tenant or data key",
        ),
    ];
    for (what, kek_id, value, expect) in cases {
        rt.block_on(set_wrapped(&data, media.data_key_id, kek_id, &value));
        let (ok, text) = verify(cwd.path(), &d, &env, id);
        assert!(!ok, "{what}: accepted\n{text}");
        assert!(
            text.contains(expect),
            "{what}: expected `{expect}` in\n{text}"
        );
    }
    rt.block_on(set_wrapped(
        &data,
        media.data_key_id,
        &wrapped.kek_id,
        &wrapped.wrapped,
    ));
    let (ok, text) = verify(cwd.path(), &d, &env, id);
    assert!(ok, "restored key: {text}");

    // Revoked: the key is disabled in the vault; a new call is refused.
    let before = revoked_count(&server.base);
    assert!(kv.disable(&name));
    let args = call(&server);
    let out = insights(
        cwd.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .envs(env.iter().cloned())
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a call was recorded under a disabled key"
    );
    assert!(stderr.contains("recording-failed"), "{stderr}");
    let failed = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all = platform
                .store
                .list_recordings_for_governance(
                    tenant,
                    &GovernanceQuery {
                        limit: 100,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let statuses: Vec<_> = all.iter().map(|r| r.status).collect();
            let failed: Vec<_> = all
                .into_iter()
                .filter(|r| r.id != id && r.status == RecordingStatus::Failed)
                .collect();
            if !failed.is_empty() || Instant::now() > deadline {
                break (failed, statuses);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (failed, statuses) = failed;
    assert_eq!(
        failed.len(),
        1,
        "the refused call is not recorded as failed: {statuses:?}"
    );
    assert!(failed[0].media.is_none());
    assert!(
        revoked_count(&server.base) >= before + 1.0,
        "the alarm metric did not count the revoked key"
    );
    // The old recording no longer opens in a fresh process (no cache).
    let (ok, text) = verify(cwd.path(), &d, &env, id);
    assert!(
        !ok && text.contains("revoked, disabled or deleted"),
        "{text}"
    );
    drop(server);

    let log = std::fs::read_to_string(&logs).unwrap();
    assert!(
        log.contains("key_provider.kek_revoked"),
        "no alarm in the log"
    );
    for secret in [
        "Alice",
        "Bob",
        "alice@contoso.com",
        "4255550100",
        CLIENT_SECRET,
        "vault-token-",
    ] {
        assert!(!log.contains(secret), "serve log contains `{secret}`");
    }
}

#[test]
fn key_vault_provider_with_a_managed_identity_creates_the_tenant_key() {
    let kv = KeyVaultStandIn::start();
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let p = "INSIGHTS_KEYS__AZURE_KEY_VAULT__";
    let env: Vec<(String, String)> = vec![
        ("INSIGHTS_ALLOW_INSECURE_HTTP".into(), "true".into()),
        ("INSIGHTS_KEYS__PROVIDER".into(), "azure-key-vault".into()),
        (format!("{p}VAULT_URL"), kv.vault_url()),
        (
            format!("{p}MANAGED_IDENTITY_ENDPOINT"),
            kv.managed_identity_endpoint(),
        ),
        (format!("{p}KEY_PREFIX"), "kek-".into()),
    ];
    add_tenant(cwd.path(), &d, &env, "contoso");
    let tenant = tenant_id(cwd.path(), &d, &env, "contoso");
    assert_eq!(kv.key_names(), vec![format!("kek-{}", tenant.as_uuid())]);
    assert!(
        kv.count("token") >= 1,
        "no managed-identity token was asked for"
    );
    assert_eq!(kv.count("unauthorized"), 0);
}

#[test]
fn key_vault_settings_are_checked_at_start_naming_the_key() {
    let kv = KeyVaultStandIn::start();
    let cwd = tempfile::tempdir().unwrap();
    let d = cwd.path().join("data");
    let run = |env: &[(&str, String)]| {
        let out = insights(
            cwd.path(),
            &[
                "admin",
                "tenant",
                "add",
                "contoso",
                "--data-dir",
                d.to_str().unwrap(),
            ],
        )
        .env("INSIGHTS_KEYS__PROVIDER", "azure-key-vault")
        .envs(env.iter().map(|(k, v)| (*k, v.clone())))
        .output()
        .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // No vault.
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("keys.azure_key_vault.vault_url"), "{err}");
    // Plain HTTP without allow_insecure_http.
    let (code, err) = run(&[
        ("INSIGHTS_KEYS__AZURE_KEY_VAULT__VAULT_URL", kv.vault_url()),
        (
            "INSIGHTS_KEYS__AZURE_KEY_VAULT__MANAGED_IDENTITY_ENDPOINT",
            kv.managed_identity_endpoint(),
        ),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("keys.azure_key_vault.vault_url") && err.contains("https"),
        "{err}"
    );
    // Neither client credentials nor a managed identity.
    let (code, err) = run(&[(
        "INSIGHTS_KEYS__AZURE_KEY_VAULT__VAULT_URL",
        "https://contoso.vault.azure.net".into(),
    )]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("keys.azure_key_vault.tenant_id"), "{err}");
    assert!(kv.key_names().is_empty());
}
