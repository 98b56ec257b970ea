//! TLS everywhere (issue 14, part 3), through the real binary: the
//! listener of `insights serve` speaks HTTPS with a certificate made here
//! (and HSTS), re-reads it on SIGHUP without dropping open connections;
//! PostgreSQL over TLS with `sslmode=verify-full` against a throwaway
//! cluster with `ssl=on`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use crate::{insights, serve_with_env};

/// A certificate authority made for one test.
pub(crate) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses): its PEM
    /// chain, its PEM key and its DER.
    pub(crate) fn leaf(&self, names: &[&str]) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// Writes `body` to `path` by rename (as a certificate manager would).
fn replace(path: &Path, body: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn client(ca: &TestCa) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// GET /healthz: the peer certificate (DER) and the HSTS header.
fn healthz(c: &reqwest::blocking::Client, base: &str) -> (Vec<u8>, Option<String>) {
    let r = c.get(format!("{base}/healthz")).send().unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let cert = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .unwrap()
        .to_vec();
    let hsts = r
        .headers()
        .get("strict-transport-security")
        .map(|v| v.to_str().unwrap().to_owned());
    (cert, hsts)
}

#[test]
fn https_listener_sends_hsts_and_reloads_its_certificate_on_sighup() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let ca = TestCa::new("insights test CA");
    let (cert1, key1, der1) = ca.leaf(&["localhost", "127.0.0.1"]);
    let cert_file = cwd.path().join("cert.pem");
    let key_file = cwd.path().join("key.pem");
    std::fs::write(&cert_file, &cert1).unwrap();
    std::fs::write(&key_file, &key1).unwrap();
    let env = vec![
        (
            "INSIGHTS_HTTP__TLS_CERT_FILE".to_owned(),
            cert_file.display().to_string(),
        ),
        (
            "INSIGHTS_HTTP__TLS_KEY_FILE".to_owned(),
            key_file.display().to_string(),
        ),
    ];
    let server = serve_with_env(cwd.path(), &data, &env, &cwd.path().join("serve.log"));
    assert!(server.base.starts_with("https://"), "{}", server.base);

    // A client trusting the CA gets HTTPS and HSTS.
    let open = client(&ca);
    let (seen, hsts) = healthz(&open, &server.base);
    assert_eq!(seen, der1);
    assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
    // Plain HTTP on the same port gets nothing.
    let plain = server.base.replacen("https://", "http://", 1);
    assert!(
        reqwest::blocking::Client::new()
            .get(format!("{plain}/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .is_err(),
        "plain HTTP was answered"
    );
    // A client that does not trust the CA is refused.
    assert!(
        reqwest::blocking::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(
                TestCa::new("another CA").pem.as_bytes()
            )
            .unwrap()])
            .build()
            .unwrap()
            .get(format!("{}/healthz", server.base))
            .send()
            .is_err()
    );

    // New files, SIGHUP: new connections see the new certificate, the open
    // keep-alive connection keeps working (on the session it negotiated).
    let (cert2, key2, der2) = ca.leaf(&["localhost", "127.0.0.1"]);
    replace(&key_file, &key2);
    replace(&cert_file, &cert2);
    let hup = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // Keeps the open connection busy (and alive) meanwhile.
        let (old, _) = healthz(&open, &server.base);
        assert_eq!(old, der1, "the open connection was replaced");
        let (fresh, hsts) = healthz(&client(&ca), &server.base);
        if fresh == der2 {
            assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new connections still see the old certificate"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (old, _) = healthz(&open, &server.base);
    assert_eq!(old, der1, "the keep-alive connection survived the reload");

    // A broken replacement is refused and the current certificate stays.
    replace(&cert_file, "not a certificate");
    Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (fresh, _) = healthz(&client(&ca), &server.base);
    assert_eq!(fresh, der2);
}

/// The PostgreSQL server binaries (as scripts/test.sh finds them).
fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.pop()
        .filter(|d| d.join("initdb").exists())
        .expect("PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
}

/// Runs a PostgreSQL binary as the `postgres` user when we are root.
fn as_postgres(bin: &Path, args: &[&str]) -> Command {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

/// A throwaway PostgreSQL cluster, stopped on drop.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.dir.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
        .output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a cluster in `root/name` with password authentication over
/// host connections; `ssl` with the given certificate and key (PEM).
fn cluster(root: &Path, name: &str, tls: Option<(&str, &str)>) -> Cluster {
    let bin = pg_bin();
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let chown = |p: &Path| {
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(p)
            .status();
    };
    // The postgres user must reach the directory.
    let _ = Command::new("chmod").arg("755").arg(root).status();
    chown(&dir);
    let out = as_postgres(
        &bin.join("initdb"),
        &[
            "-D",
            dir.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conf = String::from("listen_addresses = '127.0.0.1'\n");
    if let Some((cert, key)) = tls {
        std::fs::write(dir.join("server.crt"), cert).unwrap();
        std::fs::write(dir.join("server.key"), key).unwrap();
        conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    } else {
        conf.push_str("ssl = off\n");
    }
    let mut pg_conf = std::fs::read_to_string(dir.join("postgresql.conf")).unwrap();
    pg_conf.push_str(&conf);
    std::fs::write(dir.join("postgresql.conf"), pg_conf).unwrap();
    chown(&dir);
    if tls.is_some() {
        let _ = Command::new("chmod")
            .arg("600")
            .arg(dir.join("server.key"))
            .status();
    }
    let port = free_port();
    let out = as_postgres(
        &bin.join("pg_ctl"),
        &[
            "-D",
            dir.to_str().unwrap(),
            "-l",
            dir.join("log").to_str().unwrap(),
            "-w",
            "-o",
            &format!("-p {port} -k {}", dir.display()),
            "start",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "pg_ctl start: {}{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("log")).unwrap_or_default()
    );
    Cluster { bin, dir, port }
}

/// `insights admin tenant list` against `url`: its output and success.
fn tenant_list(cwd: &Path, url: &str) -> (bool, String) {
    let out = insights(
        cwd,
        &[
            "admin",
            "tenant",
            "list",
            "--data-dir",
            cwd.join("data").to_str().unwrap(),
        ],
    )
    .env("INSIGHTS_DATABASE__URL", url)
    .output()
    .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn postgres_over_tls_verifies_the_server_and_never_falls_back_to_plaintext() {
    let root = tempfile::tempdir().unwrap();
    let cwd = root.path();
    let ca = TestCa::new("insights test PostgreSQL CA");
    let (cert, key, _) = ca.leaf(&["localhost", "127.0.0.1"]);
    let tls = cluster(cwd, "pg-tls", Some((&cert, &key)));
    let ca_file = cwd.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let wrong_ca_file = cwd.join("wrong-ca.pem");
    std::fs::write(&wrong_ca_file, TestCa::new("another CA").pem).unwrap();
    let url = |port: u16, host: &str, query: &str| {
        format!("postgres://postgres@{host}:{port}/postgres?{query}")
    };

    // verify-full with the right CA connects (migrations run, the CLI answers).
    let (ok, out) = tenant_list(
        cwd,
        &url(
            tls.port,
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", ca_file.display()),
        ),
    );
    assert!(ok, "verify-full with the right CA: {out}");

    // A wrong CA is refused.
    let (ok, out) = tenant_list(
        cwd,
        &url(
            tls.port,
            "localhost",
            &format!(
                "sslmode=verify-full&sslrootcert={}",
                wrong_ca_file.display()
            ),
        ),
    );
    assert!(!ok, "verify-full with a wrong CA connected: {out}");
    assert!(out.contains("UnknownIssuer"), "{out}");

    // A host name the certificate does not name is refused by verify-full.
    let (cert_other, key_other, _) = ca.leaf(&["db.example.test"]);
    let other = cluster(cwd, "pg-other-name", Some((&cert_other, &key_other)));
    let (ok, out) = tenant_list(
        cwd,
        &url(
            other.port,
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", ca_file.display()),
        ),
    );
    assert!(
        !ok,
        "verify-full accepted a certificate for another host: {out}"
    );
    assert!(out.contains("not valid for name"), "{out}");

    // sslmode=require against a server without TLS is refused, never
    // plaintext.
    let plain = cluster(cwd, "pg-plain", None);
    let (ok, out) = tenant_list(cwd, &url(plain.port, "127.0.0.1", "sslmode=require"));
    assert!(!ok, "sslmode=require fell back to plaintext: {out}");
    assert!(out.contains("server does not support TLS"), "{out}");
    // The same server without sslmode (the default, prefer) works: the
    // refusal above is about TLS, not the server.
    let (ok, out) = tenant_list(cwd, &url(plain.port, "127.0.0.1", "sslmode=disable"));
    assert!(ok, "{out}");
}

/// A private Azurite serving HTTPS with `cert`/`key`, stopped on drop.
struct HttpsAzurite {
    dir: PathBuf,
    endpoint: String,
}

impl HttpsAzurite {
    fn start(dir: &Path, cert: &Path, key: &Path) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("scripts/azurite.sh"))
            .args(["start", dir.to_str().unwrap()])
            .env("AZURITE_PORT", free_port().to_string())
            .env("AZURITE_CERT", cert)
            .env("AZURITE_KEY", key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "azurite.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let endpoint = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(endpoint.starts_with("https://"), "{endpoint}");
        Self {
            dir: dir.to_owned(),
            endpoint,
        }
    }
}

impl Drop for HttpsAzurite {
    fn drop(&mut self) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let _ = Command::new(root.join("scripts/azurite.sh"))
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
    }
}

#[test]
fn azure_blob_over_https_trusts_a_private_ca_from_ca_file() {
    let root = tempfile::tempdir().unwrap();
    let cwd = root.path();
    let ca = TestCa::new("insights test storage CA");
    let (cert, key, _) = ca.leaf(&["127.0.0.1", "localhost"]);
    std::fs::write(cwd.join("azurite.crt"), cert).unwrap();
    std::fs::write(cwd.join("azurite.key"), key).unwrap();
    let ca_file = cwd.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let wrong_ca = cwd.join("wrong-ca.pem");
    std::fs::write(&wrong_ca, TestCa::new("another CA").pem).unwrap();
    let azurite = HttpsAzurite::start(
        &cwd.join("azurite"),
        &cwd.join("azurite.crt"),
        &cwd.join("azurite.key"),
    );
    // `admin tenant add` creates the tenant's container over HTTPS.
    let add = |name: &str, ca: Option<&Path>| {
        let data = cwd.join(format!("data-{name}"));
        // A directory tenant id, so that a Teams call can be simulated.
        let directory_tenant = uuid::Uuid::new_v4().to_string();
        let mut c = insights(
            cwd,
            &[
                "admin",
                "tenant",
                "add",
                name,
                "--directory-tenant-id",
                &directory_tenant,
                "--data-dir",
                data.to_str().unwrap(),
            ],
        );
        c.env("INSIGHTS_BLOB__BACKEND", "azure")
            .env("INSIGHTS_BLOB__AZURE__USE_EMULATOR", "true")
            .env("INSIGHTS_BLOB__AZURE__ENDPOINT", &azurite.endpoint);
        if let Some(ca) = ca {
            c.env("INSIGHTS_BLOB__AZURE__CA_FILE", ca);
        }
        let out = c.output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = add("trusted", Some(&ca_file));
    assert!(ok, "with the private CA: {out}");
    record_and_play_over_https(cwd, &cwd.join("data-trusted"), &azurite.endpoint, &ca_file);
    let (ok, out) = add("untrusted", None);
    assert!(
        !ok,
        "without the private CA the endpoint was trusted: {out}"
    );
    // Refused when connecting (the TLS handshake), not by the settings.
    assert!(out.contains("creating the blob container"), "{out}");
    let (ok, out) = add("wrong", Some(&wrong_ca));
    assert!(!ok, "with another CA the endpoint was trusted: {out}");
    assert!(out.contains("creating the blob container"), "{out}");
}

/// A call recorded through `insights serve` on the HTTPS Azurite (custom
/// CA): the uploader puts its envelope and manifest over HTTPS, the
/// officer plays it back through the API (blob read over HTTPS), and
/// `verify-recording` checks the stored blobs.
fn record_and_play_over_https(cwd: &Path, data: &Path, endpoint: &str, ca: &Path) {
    let env: Vec<(String, String)> = vec![
        ("INSIGHTS_BLOB__BACKEND".into(), "azure".into()),
        ("INSIGHTS_BLOB__AZURE__USE_EMULATOR".into(), "true".into()),
        ("INSIGHTS_BLOB__AZURE__ENDPOINT".into(), endpoint.into()),
        (
            "INSIGHTS_BLOB__AZURE__CA_FILE".into(),
            ca.to_str().unwrap().into(),
        ),
    ];
    let d = data.to_str().unwrap();
    let server = crate::serve_with_env(cwd, data, &env, &cwd.join("serve.log"));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let officer = crate::accounts::sign_in_new_user_with(
        cwd,
        data,
        &env_ref,
        &server.base,
        Some("trusted"),
        "officer@trusted.example",
        "compliance-officer",
        &[],
    );
    let a = crate::e2e_call::speak(cwd, "a", "Stored over HTTPS with a private CA.", "en-us");
    let b = crate::e2e_call::speak(cwd, "b", "And played back the same way.", "en-gb");
    let id = crate::e2e_call::simulate(
        cwd,
        &env,
        &[
            "simulate-call",
            "--gateway",
            &server.base,
            "--tenant",
            "trusted",
            "--speed",
            "0",
            "--data-dir",
            d,
            "--participant",
            &format!("Agent:agent@trusted.example:{}", a.display()),
            "--participant",
            &format!("Other:+14255550199:{}", b.display()),
        ],
    );
    let http = reqwest::blocking::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let ogg = loop {
        let r = http
            .get(format!("{}/api/recordings/{id}/media", server.base))
            .bearer_auth(&officer.token)
            .header("x-access-reason", "TLS storage test")
            .send()
            .unwrap();
        let status = r.status();
        let body = r.bytes().unwrap();
        if status.is_success() {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not playable over HTTPS storage: {status} {}\n{}",
            String::from_utf8_lossy(&body),
            std::fs::read_to_string(cwd.join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert!(ogg.starts_with(b"OggS"), "not an Ogg file");
    let decoded = recorder::decode_ogg_opus(std::io::Cursor::new(&ogg[..]), 16_000).unwrap();
    assert_eq!(decoded.channels.len(), 2);
    assert!(
        decoded.channels[0].len() > 8_000,
        "too short to be the call"
    );
    drop(server);
    let mut verify = insights(cwd, &["verify-recording", &id.to_string(), "--data-dir", d]);
    let out = verify.envs(env.iter().cloned()).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
