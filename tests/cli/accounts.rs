//! Accounts for CLI tests, through the real flow: `insights admin user
//! add` (initial password on stdin), then the first sign-in against
//! `insights serve` (`POST /api/auth/login` answers a challenge;
//! `POST /api/auth/first-sign-in` with a code of the self-enrolled TOTP
//! seed and the user's own password answers the session and ten
//! recovery codes).
//!
//! The one call most tests need:
//!
//! ```ignore
//! let s = accounts::sign_in_new_user(dir.path(), &data, &server.base,
//!     Some("contoso"), "officer@contoso.com", "compliance-officer");
//! http.get(url).bearer_auth(&s.token)...
//! ```
//!
//! `sign_in_new_user_with(..., &[("INSIGHTS_DATABASE__URL", url)], &["--security-profile", id])`
//! adds environment (e.g. a PostgreSQL store) and arguments.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};

use super::insights;

/// The password `admin user add` sets (it works for the first sign-in only).
pub const INITIAL_PASSWORD: &str = "initial password from the admin";
/// The password every test user chooses at the first sign-in.
pub const PASSWORD: &str = "the user's own long passphrase";

/// A signed-in session of a test account.
#[derive(Clone, Debug)]
pub struct Session {
    pub account_id: String,
    pub tenant: Option<String>,
    pub email: String,
    /// `Authorization: Bearer` token.
    pub token: String,
    /// The `insights_session` cookie value.
    pub cookie: String,
    /// For `X-CSRF-Token` with the cookie.
    pub csrf: String,
    /// The base32 TOTP seed the user enrolled (if the account needs one).
    pub totp_seed: Option<String>,
    /// Unused recovery codes.
    pub recovery_codes: Vec<String>,
}

/// `insights admin user add` with [`INITIAL_PASSWORD`] on stdin; returns
/// the new account's id. `tenant: None` makes a platform operator.
pub fn add_user(
    cwd: &Path,
    data_dir: &Path,
    env: &[(&str, &str)],
    tenant: Option<&str>,
    email: &str,
    role: &str,
    extra: &[&str],
) -> String {
    let mut args = vec![
        "--data-dir",
        data_dir.to_str().unwrap(),
        "admin",
        "user",
        "add",
        "--email",
        email,
        "--role",
        role,
    ];
    if let Some(t) = tenant {
        args.extend(["--tenant", t]);
    }
    args.extend_from_slice(extra);
    let mut child = insights(cwd, &args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{INITIAL_PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "admin user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("otpauth://"),
        "the admin never sees a seed"
    );
    stdout
        .split_whitespace()
        .skip_while(|w| *w != "account")
        .nth(1)
        .unwrap_or_else(|| panic!("no account id in {stdout}"))
        .to_owned()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code of the previous 30 s step (accepted with one step of skew),
/// so that the current step's code is still unused afterwards.
pub fn previous_code(seed: &str) -> String {
    if unix_now() % 30 >= 27 {
        std::thread::sleep(std::time::Duration::from_secs(4));
    }
    insights_api::auth::totp::code_at(seed, unix_now() - 30).unwrap()
}

/// The current code of a seed.
pub fn code(seed: &str) -> String {
    insights_api::auth::totp::code_at(seed, unix_now()).unwrap()
}

fn login_body(tenant: Option<&str>, email: &str, password: &str) -> Value {
    let mut body = json!({ "email": email, "password": password });
    if let Some(t) = tenant {
        body["tenant"] = json!(t);
    }
    body
}

fn session_of(res: reqwest::blocking::Response) -> (String, String, Value) {
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("insights_session="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let v: Value = res.json().unwrap();
    let token = v["token"].as_str().unwrap_or_default().to_owned();
    (token, cookie, v)
}

/// The first sign-in of an account made by [`add_user`]: enrols TOTP (when
/// the account's permissions need it) and sets [`PASSWORD`].
pub fn first_sign_in(base_url: &str, tenant: Option<&str>, email: &str) -> Session {
    first_sign_in_with(base_url, tenant, email, INITIAL_PASSWORD)
}

/// [`first_sign_in`] of an account whose initial password is `initial`.
pub fn first_sign_in_with(
    base_url: &str,
    tenant: Option<&str>,
    email: &str,
    initial: &str,
) -> Session {
    let http = reqwest::blocking::Client::new();
    let res = http
        .post(format!("{base_url}/api/auth/login"))
        .json(&login_body(tenant, email, initial))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "first login refused");
    let c: Value = res.json().unwrap();
    assert_eq!(c["status"], "first-sign-in", "{c}");
    assert_eq!(c["password_change_required"], true);
    let seed = c["totp_uri"]
        .as_str()
        .and_then(insights_api::auth::totp::seed_of_uri);
    let mut body = json!({ "challenge": c["challenge"], "new_password": PASSWORD });
    if let Some(seed) = &seed {
        body["totp"] = json!(previous_code(seed));
    }
    let res = http
        .post(format!("{base_url}/api/auth/first-sign-in"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "first sign-in refused");
    let (token, cookie, v) = session_of(res);
    let recovery_codes: Vec<String> = v["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery_codes.len(), 10);
    let me: Value = http
        .get(format!("{base_url}/api/auth/me"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    Session {
        account_id: me["subject"]["id"].as_str().unwrap_or_default().to_owned(),
        tenant: tenant.map(str::to_owned),
        email: email.to_owned(),
        token,
        cookie,
        csrf: v["csrf_token"].as_str().unwrap_or_default().to_owned(),
        totp_seed: seed,
        recovery_codes,
    }
}

/// Creates an account with `insights admin user add` and signs it in for
/// the first time against the running `insights serve` at `base_url`.
pub fn sign_in_new_user(
    cwd: &Path,
    data_dir: &Path,
    base_url: &str,
    tenant: Option<&str>,
    email: &str,
    role: &str,
) -> Session {
    sign_in_new_user_with(cwd, data_dir, &[], base_url, tenant, email, role, &[])
}

/// [`sign_in_new_user`] with environment for the CLI (e.g. the database
/// URL) and extra `admin user add` arguments (e.g. `--security-profile`).
#[allow(clippy::too_many_arguments)]
pub fn sign_in_new_user_with(
    cwd: &Path,
    data_dir: &Path,
    env: &[(&str, &str)],
    base_url: &str,
    tenant: Option<&str>,
    email: &str,
    role: &str,
    extra: &[&str],
) -> Session {
    add_user(cwd, data_dir, env, tenant, email, role, extra);
    first_sign_in(base_url, tenant, email)
}

/// A later sign-in of a [`Session`]'s account with [`PASSWORD`] and a
/// fresh TOTP code (waiting for the next 30 s step if this one's code was
/// used already), or with one of its recovery codes when `recovery`.
pub fn sign_in(base_url: &str, s: &mut Session, recovery: bool) -> Session {
    let http = reqwest::blocking::Client::new();
    for attempt in 0..2 {
        let mut body = login_body(s.tenant.as_deref(), &s.email, PASSWORD);
        if recovery {
            body["recovery_code"] = json!(s.recovery_codes.pop().unwrap());
        } else if let Some(seed) = &s.totp_seed {
            body["totp"] = json!(code(seed));
        }
        let res = http
            .post(format!("{base_url}/api/auth/login"))
            .json(&body)
            .send()
            .unwrap();
        if res.status() == 401 && attempt == 0 && !recovery {
            // This step's code was used: wait for the next one.
            std::thread::sleep(std::time::Duration::from_secs(31 - unix_now() % 30));
            continue;
        }
        assert_eq!(res.status(), 200, "sign-in refused");
        let (token, cookie, v) = session_of(res);
        return Session {
            token,
            cookie,
            csrf: v["csrf_token"].as_str().unwrap_or_default().to_owned(),
            ..s.clone()
        };
    }
    panic!("sign-in refused twice")
}

/// Bearer-authenticated JSON calls to one `insights serve` (tests add
/// their own helpers in `impl Api` blocks of their modules).
pub struct Api {
    pub base: String,
    pub http: reqwest::blocking::Client,
}

impl Api {
    /// `method path` with `s`'s token and an optional JSON body: the
    /// status and the JSON answer (`Null` when there is none).
    pub fn call(
        &self,
        s: &Session,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(&s.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().unwrap();
        let status = res.status().as_u16();
        (status, res.json().unwrap_or(serde_json::Value::Null))
    }
}
