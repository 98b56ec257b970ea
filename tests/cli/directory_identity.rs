//! Issue 13 §1 and §8 through the real binary: who a recorded Teams user
//! is comes from the directory, at capture or at a later directory sync,
//! so that a data-subject request by UPN finds them; and a directory user
//! signed in through the browser (OIDC) gets the security profile their
//! groups map to and is refused once Microsoft Graph says they were
//! disabled (re-checked at most `active_check_max_age_secs` stale).
//!
//! One stand-in plays Entra and Graph (blocking, a thread per
//! connection): the client-credentials token endpoint, `/users/delta`,
//! `/users/{id}?$select=id,accountEnabled`, and an OpenID provider
//! (discovery, JWKS, the authorization-code token endpoint answering an
//! RS256 id token the test signs with a key made per run).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Server, insights, serve_with_env};

pub(crate) const TID: &str = "3c1a7e52-8d4b-4f0a-9e61-2b7d5c9a0f13";
const GRAPH_TOKEN: &str = "graph-app-token";
pub(crate) const LOGIN_CLIENT: &str = "web-client";

/// What the stand-in serves; the test changes it as it goes.
#[derive(Default)]
pub(crate) struct World {
    /// Graph user resources (`id`, `userPrincipalName`, `mail`,
    /// `accountEnabled`...).
    users: Vec<Value>,
    /// Graph's user reads answer 503 while set.
    graph_down: bool,
    /// The id token the OIDC token endpoint hands out next.
    pub(crate) id_token: Option<String>,
    /// "METHOD target" of every request.
    seen: Vec<String>,
}

pub(crate) struct StandIn {
    pub(crate) base: String,
    pub(crate) world: Arc<Mutex<World>>,
    key: RsaKeyPair,
}

impl StandIn {
    pub(crate) fn start(users: Vec<Value>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let world = Arc::new(Mutex::new(World {
            users,
            ..World::default()
        }));
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let c: PublicKeyComponents<Vec<u8>> = key.public_key().into();
        let jwk = json!({"keys": [{
            "kty": "RSA", "use": "sig", "kid": "k1",
            "n": URL_SAFE_NO_PAD.encode(&c.n), "e": URL_SAFE_NO_PAD.encode(&c.e),
        }]});
        let (b, w) = (base.clone(), world.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (b, w, jwk) = (b.clone(), w.clone(), jwk.clone());
                std::thread::spawn(move || answer(stream, &b, &w, &jwk));
            }
        });
        StandIn { base, world, key }
    }

    fn set_user(&self, id: &str, patch: Value) {
        let mut w = self.world.lock().unwrap();
        match w.users.iter_mut().find(|u| u["id"] == id) {
            Some(u) => {
                for (k, v) in patch.as_object().unwrap() {
                    u[k] = v.clone();
                }
            }
            None => {
                let mut u = patch;
                u["id"] = json!(id);
                w.users.push(u);
            }
        }
    }

    fn seen(&self, needle: &str) -> usize {
        let w = self.world.lock().unwrap();
        w.seen.iter().filter(|s| s.contains(needle)).count()
    }

    /// An Entra-shaped id token for `oid` with `nonce`, signed RS256.
    pub(crate) fn id_token(
        &self,
        oid: &str,
        nonce: &str,
        roles: &[&str],
        groups: &[&str],
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": "k1"});
        let claims = json!({
            "iss": format!("{}/{TID}/v2.0", self.base),
            "aud": LOGIN_CLIENT,
            "tid": TID,
            "oid": oid,
            "sub": "pairwise-subject",
            "nonce": nonce,
            "roles": roles,
            "groups": groups,
            "amr": ["pwd", "mfa"],
            "iat": now, "nbf": now - 5, "exp": now + 3600,
        });
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let msg = format!("{}.{}", b64(&header), b64(&claims));
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                msg.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// `[directory]` pointed at the stand-in (schedule off: syncs run when
    /// the test says).
    pub(crate) fn directory_env(&self) -> Vec<(String, String)> {
        [
            ("INSIGHTS_ALLOW_INSECURE_HTTP", "true".to_owned()),
            ("INSIGHTS_DIRECTORY__CLIENT_ID", "directory-app".to_owned()),
            (
                "INSIGHTS_DIRECTORY__GRAPH_BASE_URL",
                format!("{}/v1.0", self.base),
            ),
            (
                "INSIGHTS_DIRECTORY__TOKEN_URL",
                format!("{}/{{tenant}}/oauth2/v2.0/token", self.base),
            ),
            ("INSIGHTS_DIRECTORY__INTERVAL_SECS", "0".to_owned()),
            ("INSIGHTS_GRAPH_CLIENT_SECRET", "graph-s3cret".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

fn answer(mut stream: std::net::TcpStream, base: &str, world: &Mutex<World>, jwks: &Value) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let (mut len, mut auth) = (0usize, String::new());
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if let Some(v) = lower.strip_prefix("authorization:") {
            auth = v.trim().to_owned();
        }
    }
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let path = target.split('?').next().unwrap_or("").to_owned();
    let mut w = world.lock().unwrap();
    w.seen.push(format!("{method} {target}"));
    let graph_auth = auth == format!("bearer {}", GRAPH_TOKEN.to_ascii_lowercase());
    let (status, json) = if path == "/organizations/v2.0/.well-known/openid-configuration" {
        (
            200,
            json!({
                "issuer": format!("{base}/{{tenantid}}/v2.0"),
                "authorization_endpoint": format!("{base}/organizations/oauth2/v2.0/authorize"),
                "token_endpoint": format!("{base}/organizations/oauth2/v2.0/token"),
                "jwks_uri": format!("{base}/organizations/discovery/v2.0/keys"),
            }),
        )
    } else if path == "/organizations/discovery/v2.0/keys" {
        (200, jwks.clone())
    } else if path.ends_with("/oauth2/v2.0/token") {
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials")
                if form.get("client_secret").map(String::as_str) == Some("graph-s3cret") =>
            {
                (
                    200,
                    json!({"token_type": "Bearer", "expires_in": 3599, "access_token": GRAPH_TOKEN}),
                )
            }
            Some("authorization_code") => match w.id_token.take() {
                Some(t) => (200, json!({"token_type": "Bearer", "id_token": t})),
                None => (400, json!({"error": "invalid_grant"})),
            },
            _ => (401, json!({"error": "invalid_client"})),
        }
    } else if !graph_auth {
        (
            401,
            json!({"error": {"code": "InvalidAuthenticationToken"}}),
        )
    } else if path == "/v1.0/users/delta" {
        (
            200,
            json!({"value": w.users, "@odata.deltaLink": format!("{base}/v1.0/users/delta?$deltatoken=next")}),
        )
    } else if let Some(id) = path.strip_prefix("/v1.0/users/") {
        if w.graph_down {
            (503, json!({"error": {"code": "serviceNotAvailable"}}))
        } else {
            match w.users.iter().find(|u| u["id"] == id) {
                Some(u) => (
                    200,
                    json!({"id": id, "accountEnabled": u["accountEnabled"]}),
                ),
                None => (404, json!({"error": {"code": "Request_ResourceNotFound"}})),
            }
        }
    } else {
        (404, json!({}))
    };
    drop(w);
    let text = json.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// A second of a 440 Hz tone, 16 kHz mono WAV: what a party "says".
fn tone(dir: &Path, name: &str) -> PathBuf {
    let samples: Vec<i16> = (0..16_000)
        .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / 16_000.0).sin() * 8000.0) as i16)
        .collect();
    let data_len = u32::try_from(samples.len() * 2).unwrap();
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&16_000u32.to_le_bytes());
    b.extend_from_slice(&32_000u32.to_le_bytes());
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

/// `insights ARGS` with `env` to completion: (exit code, stdout, stderr).
fn run(cwd: &Path, env: &[(String, String)], args: &[&str]) -> (i32, String, String) {
    let out = insights(cwd, args)
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(cwd: &Path, env: &[(String, String)], args: &[&str]) -> String {
    let (code, out, err) = run(cwd, env, args);
    assert_eq!(code, 0, "insights {args:?}: {out}{err}");
    out
}

/// The recording ids `insights gdpr find --upn` reports.
fn find_by_upn(cwd: &Path, env: &[(String, String)], data: &str, upn: &str) -> Vec<String> {
    let out = ok(
        cwd,
        env,
        &[
            "--data-dir",
            data,
            "gdpr",
            "find",
            "--tenant",
            "contoso",
            "--upn",
            upn,
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "recording")
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A simulated 1:1 call of the recorded Teams user `upn` with a PSTN
/// party; returns the recording id.
fn call(cwd: &Path, env: &[(String, String)], data: &str, server: &Server, upn: &str) -> String {
    let user = tone(cwd, "user");
    let other = tone(cwd, "other");
    let id = super::e2e_call::simulate(
        cwd,
        env,
        &[
            "simulate-call",
            "--gateway",
            &server.base,
            "--tenant",
            "contoso",
            "--speed",
            "0",
            "--data-dir",
            data,
            "--participant",
            &format!("Recorded User:{upn}:{}", user.display()),
            "--participant",
            &format!("Caller:+14255550142:{}", other.display()),
        ],
    );
    id.to_string()
}

/// §1: the recorded Teams user is found by UPN, whether their directory
/// user was synchronised before the call (linked at capture) or only
/// after it (linked by the next directory sync, by Entra object id).
fn participants_found_by_upn(pg_url: Option<&str>) {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let ann_oid = "5b0c8e1f-7a3d-4c26-9f84-1e2d3c4b5a60";
    let graph = StandIn::start(vec![json!({
        "id": ann_oid, "displayName": "Ann Early", "userPrincipalName": "ann@contoso.com",
        "mail": "ann.early@contoso.com", "accountEnabled": true,
    })]);
    let mut env = graph.directory_env();
    if let Some(u) = pg_url {
        env.push(("INSIGHTS_DATABASE__URL".into(), u.to_owned()));
    }
    ok(
        cwd.path(),
        &env,
        &[
            "--data-dir",
            &d,
            "admin",
            "tenant",
            "add",
            "contoso",
            "--directory-tenant-id",
            TID,
        ],
    );
    let out = ok(cwd.path(), &env, &["--data-dir", &d, "directory", "sync"]);
    assert!(out.contains("1 added"), "{out}");

    let log = cwd.path().join("serve.log");
    let server = serve_with_env(cwd.path(), &data, &env, &log);
    // Ann is in the directory at capture; Bea joins the directory later.
    let ann_call = call(cwd.path(), &env, &d, &server, "ann@contoso.com");
    let bea_call = call(cwd.path(), &env, &d, &server, "bea@contoso.com");

    assert_eq!(
        find_by_upn(cwd.path(), &env, &d, "ann@contoso.com"),
        vec![ann_call.clone()],
        "linked at capture"
    );
    assert!(
        find_by_upn(cwd.path(), &env, &d, "bea@contoso.com").is_empty(),
        "nobody knows Bea's UPN before the directory does"
    );

    // Bea's directory user appears (the object id Teams gave her call).
    let bea_oid = bot_gateway::simulator::object_id_for_upn("bea@contoso.com");
    graph.set_user(
        &bea_oid,
        json!({"displayName": "Bea Late", "userPrincipalName": "bea@contoso.com",
               "mail": "bea.late@contoso.com", "accountEnabled": true,
               "imAddresses": ["bea@contoso.com"]}),
    );
    let out = ok(cwd.path(), &env, &["--data-dir", &d, "directory", "sync"]);
    assert!(
        out.contains("1 added") && out.contains("1 participant linked"),
        "{out}"
    );
    assert_eq!(
        find_by_upn(cwd.path(), &env, &d, "bea@contoso.com"),
        vec![bea_call.clone()],
        "linked by the directory sync"
    );
    // Her e-mail alone finds her too (stored with the participant), and a
    // second sync links nothing more.
    let out = ok(
        cwd.path(),
        &env,
        &[
            "--data-dir",
            &d,
            "gdpr",
            "find",
            "--tenant",
            "contoso",
            "--email",
            "BEA.LATE@contoso.com",
            "--json",
        ],
    );
    assert!(out.contains(&bea_call), "{out}");
    let out = ok(cwd.path(), &env, &["--data-dir", &d, "directory", "sync"]);
    assert!(out.contains("0 participants linked"), "{out}");
    drop(server);
    let log = std::fs::read_to_string(&log).unwrap();
    for secret in [
        "bea@contoso.com",
        "ann@contoso.com",
        "Bea Late",
        "graph-s3cret",
    ] {
        assert!(!log.contains(secret), "serve log contains `{secret}`");
    }
}

#[test]
fn recorded_teams_users_are_found_by_upn_on_sqlite() {
    participants_found_by_upn(None);
}

#[test]
fn recorded_teams_users_are_found_by_upn_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    participants_found_by_upn(Some(&url));
}

/// A browser (cookie) session signed in through the OIDC flow.
struct Browser {
    http: reqwest::blocking::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Browser {
    /// Signs in through `/api/auth/oidc/login` and `/callback` as `oid`.
    fn sign_in(server: &Server, idp: &StandIn, oid: &str, groups: &[&str]) -> Browser {
        let http = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let res = http
            .get(format!("{}/api/auth/oidc/login?return_to=/", server.base))
            .send()
            .unwrap();
        assert_eq!(res.status(), 302);
        let state_cookie = cookie(&res, "insights_oidc_state");
        let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        let q: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
        let token = idp.id_token(oid, &q["nonce"], &["Insights.ComplianceOfficer"], groups);
        idp.world.lock().unwrap().id_token = Some(token);
        let res = http
            .get(format!(
                "{}/api/auth/oidc/callback?code=c0de&state={}",
                server.base, q["state"]
            ))
            .header("cookie", format!("insights_oidc_state={state_cookie}"))
            .send()
            .unwrap();
        assert_eq!(res.status(), 302, "{}", res.text().unwrap_or_default());
        Browser {
            cookie: cookie(&res, "insights_session"),
            csrf: cookie(&res, "insights_csrf"),
            http,
            base: server.base.clone(),
        }
    }

    fn get(&self, path: &str) -> (u16, String, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    /// `POST /api/recordings/search` for everything the session may see.
    fn search(&self) -> (u16, String, Value) {
        self.send(
            self.http
                .post(format!("{}/api/recordings/search", self.base))
                .header("x-csrf-token", &self.csrf)
                .json(&json!({"limit": 100})),
        )
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> (u16, String, Value) {
        let res = req
            .header(
                "cookie",
                format!(
                    "insights_session={}; insights_csrf={}",
                    self.cookie, self.csrf
                ),
            )
            .send()
            .unwrap();
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = res.text().unwrap();
        (
            status,
            ct,
            serde_json::from_str(&body).unwrap_or(Value::Null),
        )
    }
}

pub(crate) fn cookie(res: &reqwest::blocking::Response, name: &str) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

/// §8: a session of an Entra user whose group maps to a profile scoped to
/// one colleague sees only that colleague's recording (the role's
/// defaults would show the whole tenant); once Graph cannot answer, the
/// due re-check fails closed (503, problem+json); once Graph says the
/// user is disabled, the next due request is refused and the session is
/// revoked and audited.
fn session_scope_and_active_check(pg_url: Option<&str>) {
    use insights_core::domain::*;

    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let (ann, bob, sup) = (
        "0a6f3b2c-1111-4e8d-9c7b-5d4e3f2a1b01",
        "0a6f3b2c-2222-4e8d-9c7b-5d4e3f2a1b02",
        "0a6f3b2c-3333-4e8d-9c7b-5d4e3f2a1b03",
    );
    let user =
        |oid: &str, upn: &str| json!({"id": oid, "userPrincipalName": upn, "accountEnabled": true});
    let idp = StandIn::start(vec![
        user(ann, "ann@contoso.com"),
        user(bob, "bob@contoso.com"),
        user(sup, "sup@contoso.com"),
    ]);
    let config = cwd.path().join("insights.toml");
    std::fs::write(
        &config,
        "[[auth.oidc.profile_map]]\ntenant = \"contoso\"\nclaim = \"groups\"\n\
         value = \"grp-ann-desk\"\nprofile = \"Ann's desk\"\n",
    )
    .unwrap();
    let mut env = idp.directory_env();
    env.extend(
        [
            ("INSIGHTS_CONFIG", config.to_str().unwrap().to_owned()),
            (
                "INSIGHTS_AUTH__OIDC__DISCOVERY_URL",
                format!(
                    "{}/organizations/v2.0/.well-known/openid-configuration",
                    idp.base
                ),
            ),
            (
                "INSIGHTS_AUTH__OIDC__ISSUER",
                format!("{}/{{tenantid}}/v2.0", idp.base),
            ),
            ("INSIGHTS_AUTH__OIDC__AUDIENCE", "api://insights".to_owned()),
            (
                "INSIGHTS_AUTH__OIDC__LOGIN_CLIENT_ID",
                LOGIN_CLIENT.to_owned(),
            ),
            (
                "INSIGHTS_AUTH__OIDC__LOGIN_REDIRECT_URI",
                "https://insights.example.com/api/auth/oidc/callback".to_owned(),
            ),
            (
                "INSIGHTS_AUTH__OIDC__ACTIVE_CHECK_MAX_AGE_SECS",
                "2".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v)),
    );
    if let Some(u) = pg_url {
        env.push(("INSIGHTS_DATABASE__URL".into(), u.to_owned()));
    }
    ok(
        cwd.path(),
        &env,
        &[
            "--data-dir",
            &d,
            "admin",
            "tenant",
            "add",
            "contoso",
            "--directory-tenant-id",
            TID,
        ],
    );
    ok(cwd.path(), &env, &["--data-dir", &d, "directory", "sync"]);

    // The profile "Ann's desk": search and play, Ann's recordings only.
    let mut settings = insights_core::config::Settings::load(
        None,
        &insights_core::config::Overrides {
            data_dir: Some(data.clone()),
            listen: None,
        },
    )
    .unwrap();
    if let Some(u) = pg_url {
        settings.database.url = Some(insights_core::config::Secret::new(u));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tenant = rt.block_on(async {
        let p = insights::platform::Platform::open(&settings).await.unwrap();
        let t = p.store.tenant_by_name("contoso").await.unwrap();
        let ann_user = p
            .store
            .directory_user_by_object_id(t.id, ann)
            .await
            .unwrap();
        p.store
            .upsert_security_profile(
                t.id,
                &SecurityProfile {
                    id: SecurityProfileId::new(),
                    tenant_id: t.id,
                    name: "Ann's desk".into(),
                    role: Role::Supervisor,
                    permissions: vec![Permission::Search, Permission::Play],
                    scope: VisibilityScope::Users(vec![ann_user.id]),
                },
            )
            .await
            .unwrap();
        t.id
    });

    let log = cwd.path().join("serve.log");
    let server = serve_with_env(cwd.path(), &data, &env, &log);
    let ann_call = call(cwd.path(), &env, &d, &server, "ann@contoso.com");
    let bob_call = call(cwd.path(), &env, &d, &server, "bob@contoso.com");

    // Without the group: the role's defaults (the whole tenant).
    let wide = Browser::sign_in(&server, &idp, bob, &[]);
    let (st, _, body) = wide.search();
    assert_eq!(st, 200, "{body}");
    let ids = |b: &Value| -> Vec<String> {
        b["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{b}"))
            .iter()
            .map(|r| {
                r["recording"]["id"]
                    .as_str()
                    .or(r["id"].as_str())
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let mut all = ids(&body);
    all.sort();
    let mut both = vec![ann_call.clone(), bob_call.clone()];
    both.sort();
    assert_eq!(all, both);

    // With the group: the mapped profile, Ann's recording only.
    let desk = Browser::sign_in(&server, &idp, sup, &["grp-ann-desk"]);
    let (st, _, me) = desk.get("/api/auth/me");
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["permissions"], json!(["search", "play"]), "{me}");
    assert_eq!(me["scope"]["type"], "users", "{me}");
    let (st, _, body) = desk.search();
    assert_eq!(st, 200, "{body}");
    assert_eq!(ids(&body), vec![ann_call.clone()]);
    let (st, _, _) = desk.get(&format!("/api/recordings/{bob_call}"));
    assert_eq!(st, 404, "a recording outside the scope is not there");
    // Just signed in: confirmed by the provider, Graph not asked yet.
    assert_eq!(idp.seen("$select=id,accountEnabled"), 0);

    // Graph down when the confirmation is due: refused, never let through.
    idp.world.lock().unwrap().graph_down = true;
    std::thread::sleep(Duration::from_millis(2200));
    let (st, ct, problem) = desk.search();
    assert_eq!(st, 503, "{problem}");
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    assert_eq!(problem["code"], "directory-unavailable", "{problem}");
    idp.world.lock().unwrap().graph_down = false;
    let (st, _, body) = desk.search();
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        idp.seen(&format!("GET /v1.0/users/{sup}?$select=id,accountEnabled")),
        2
    );
    // Confirmed: the next requests within the max age ask nobody.
    let (st, _, _) = desk.get("/api/auth/me");
    assert_eq!(st, 200);
    assert_eq!(idp.seen("$select=id,accountEnabled"), 2);

    // Disabled in the directory: the next due request ends the session.
    idp.set_user(sup, json!({"accountEnabled": false}));
    let (st, _, _) = desk.get("/api/auth/me");
    assert_eq!(st, 200, "still within the max age");
    std::thread::sleep(Duration::from_millis(2200));
    let (st, ct, problem) = desk.search();
    assert_eq!(st, 401, "{problem}");
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    assert_eq!(problem["code"], "directory-user-inactive", "{problem}");
    let (st, _, problem) = desk.get("/api/auth/me");
    assert_eq!(
        (st, problem["code"].as_str()),
        (401, Some("session-expired"))
    );
    // The other session's user is still enabled.
    let (st, _, _) = wide.get("/api/auth/me");
    assert_eq!(st, 200);
    drop(server);

    let events = rt.block_on(async {
        let p = insights::platform::Platform::open(&settings).await.unwrap();
        p.store
            .list_audit(tenant, &AuditQuery::default())
            .await
            .unwrap()
    });
    let revoked: Vec<_> = events
        .iter()
        .filter(|e| e.action == AuditAction::Logout && e.details["revoked"] == true)
        .collect();
    assert_eq!(revoked.len(), 1, "{events:?}");
    assert_eq!(revoked[0].actor, format!("oidc:{sup}"));
    assert_eq!(revoked[0].details["reason"], "directory-user-disabled");
}

#[test]
fn oidc_sessions_get_the_mapped_profile_and_end_when_graph_disables_the_user_on_sqlite() {
    session_scope_and_active_check(None);
}

#[test]
fn oidc_sessions_get_the_mapped_profile_and_end_when_graph_disables_the_user_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    session_scope_and_active_check(Some(&url));
}

/// `insights serve` with sign-in on and no `[directory]` credentials to
/// re-check users with does not start (no session on stale data).
#[test]
fn serve_refuses_oidc_sign_in_without_directory_credentials() {
    let cwd = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        cwd.path(),
        &[
            ("INSIGHTS_ALLOW_INSECURE_HTTP", "true"),
            (
                "INSIGHTS_AUTH__OIDC__DISCOVERY_URL",
                "http://127.0.0.1:9/.well-known/openid-configuration",
            ),
            ("INSIGHTS_AUTH__OIDC__AUDIENCE", "api://insights"),
            ("INSIGHTS_AUTH__OIDC__LOGIN_CLIENT_ID", LOGIN_CLIENT),
            (
                "INSIGHTS_AUTH__OIDC__LOGIN_REDIRECT_URI",
                "https://insights.example.com/api/auth/oidc/callback",
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
        &[
            "serve",
            "--data-dir",
            cwd.path().join("d").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("[directory] client_id") && !out.contains("listening"),
        "{err}"
    );
    // More than five minutes stale is a configuration error.
    let (code, _, err) = run(
        cwd.path(),
        &[(
            "INSIGHTS_AUTH__OIDC__ACTIVE_CHECK_MAX_AGE_SECS".to_owned(),
            "301".to_owned(),
        )],
        &["config"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("auth.oidc.active_check_max_age_secs"), "{err}");
}
