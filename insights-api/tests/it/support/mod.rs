//! Test harness: the real API on 127.0.0.1:0 over the shared test world
//! ([`insights_tests::world`]: a fresh SQLite store, local blob folder and
//! key file in a temp dir), plus the shared stand-in OIDC issuer
//! ([`insights_tests::standins::oidc`]: discovery + JWKS on 127.0.0.1:0,
//! RSA keys generated per test).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use insights_api::auth::accounts::{NewUser, add_user};
use insights_api::auth::totp;
use insights_api::{AppState, Application, Authenticator};
use insights_core::config::AuthSettings;
use insights_core::crypto::KeyProvider;
use insights_core::domain::*;
use insights_core::store::MetadataStore;
use insights_tests::world::World;
use serde_json::{Value, json};
use zeroize::Zeroizing;

pub const PASSWORD: &str = "correct horse battery staple";
/// The password an administrator gives a new account (replaced at the
/// first sign-in by [`PASSWORD`]).
pub const INITIAL_PASSWORD: &str = "initial password from the admin";
pub const AUDIENCE: &str = "api://insights-test";

/// The data-subject routes' state for a test server: a signing key in the
/// test's own temp dir, no spool (these servers run
/// no gateway). Test-only: `insights serve` builds the real one.
pub fn test_gdpr_context(dir: &std::path::Path) -> insights_api::GdprContext {
    let signer =
        gdpr_tools::certificate::CertificateSigner::open_or_create(dir.join("signing-key.json"))
            .unwrap();
    insights_api::GdprContext::new(
        signer,
        None,
        &insights_core::config::GdprSettings::default(),
    )
    .unwrap()
}

/// How a request authenticates.
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// The session cookie, with the session's CSRF header (as the web UI
    /// sends it).
    Cookie(&'a str),
    /// The session cookie and this `X-CSRF-Token` header (`None`: none).
    CookieCsrf(&'a str, Option<&'a str>),
}

pub struct TestApp {
    pub base: String,
    pub store: Arc<dyn MetadataStore>,
    pub keys: Arc<dyn KeyProvider>,
    pub tenant: Tenant,
    /// The tenant's Entra id.
    pub tid: uuid::Uuid,
    pub settings: AuthSettings,
    pub dir: tempfile::TempDir,
    pub issuer: Option<Issuer>,
    pub http: reqwest::Client,
    /// Unused recovery codes per email, from the first sign-ins.
    pub recovery: Mutex<std::collections::HashMap<String, Vec<String>>>,
    handle: ServerHandle,
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(false, |_| {}).await
    }

    /// Starts the API (with a local OIDC issuer when `oidc`), with
    /// `[auth]` adjusted by `tweak`.
    pub async fn start_with(oidc: bool, tweak: impl FnOnce(&mut AuthSettings)) -> TestApp {
        let World {
            dir,
            store,
            blobs,
            keys,
            ..
        } = World::sqlite().await;
        let keys: Arc<dyn KeyProvider> = keys;
        let tid = uuid::Uuid::new_v4();
        let tenant = store
            .create_tenant(NewTenant {
                name: "contoso".into(),
                directory_tenant_id: Some(tid),
            })
            .await
            .unwrap();
        keys.ensure_kek(tenant.id).await.unwrap();
        // Its container, as `insights serve` provisions it: exports and
        // access bundles are kept there.
        blobs
            .ensure_container(&Tenant::container_name(tenant.id))
            .await
            .unwrap();
        let mut settings = AuthSettings::default();
        let issuer = if oidc {
            let i = Issuer::start().await;
            settings.oidc.discovery_url = Some(i.discovery_url());
            settings.oidc.issuer = format!("{}/{{tenantid}}/v2.0", i.base);
            settings.oidc.audience = Some(AUDIENCE.into());
            settings.oidc.jwks_min_refresh_secs = 0;
            Some(i)
        } else {
            None
        };
        tweak(&mut settings);
        settings.validate().unwrap();
        let auth = Authenticator::new(&settings, dir.path(), store.clone(), keys.clone()).unwrap();
        let state = AppState {
            store: store.clone(),
            blobs,
            keys: keys.clone(),
            auth: Arc::new(auth),
            retention_minimum_days: 0,
        };
        let app = Application::build(
            state,
            test_gdpr_context(dir.path()),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let base = format!("http://{}", app.addr());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            base,
            store,
            keys,
            tenant,
            tid,
            settings,
            dir,
            issuer,
            http: reqwest::Client::new(),
            recovery: Mutex::new(std::collections::HashMap::new()),
            handle,
        }
    }

    /// Creates an account of the tenant (or an operator for
    /// `PlatformOperator`) and completes its first sign-in through the
    /// API (TOTP enrolled with a code of the previous time step, so a
    /// login with the current code works at once; password set to
    /// [`PASSWORD`]); returns its id and TOTP seed (base32) if enrolled.
    pub async fn add_user(&self, email: &str, role: Role) -> (AccountId, Option<String>) {
        self.add_user_with(email, role, None).await
    }

    pub async fn add_user_with(
        &self,
        email: &str,
        role: Role,
        directory_user_id: Option<UserId>,
    ) -> (AccountId, Option<String>) {
        let tenant = (role != Role::PlatformOperator).then_some(self.tenant.id);
        self.add_account(
            tenant.map(|_| &self.tenant),
            email,
            role,
            directory_user_id,
            None,
        )
        .await
    }

    /// [`TestApp::add_user_with`] in any tenant (`None`: an operator).
    pub async fn add_account(
        &self,
        tenant_of: Option<&Tenant>,
        email: &str,
        role: Role,
        directory_user_id: Option<UserId>,
        security_profile_id: Option<SecurityProfileId>,
    ) -> (AccountId, Option<String>) {
        let tenant = tenant_of.map(|t| t.id);
        let created = add_user(
            &self.store,
            NewUser {
                tenant,
                email: email.into(),
                role,
                security_profile_id,
                directory_user_id,
            },
            &Zeroizing::new(INITIAL_PASSWORD.to_owned()),
            "test",
        )
        .await
        .unwrap();
        let seed = self
            .first_sign_in(tenant_of.map(|t| t.name.clone()), email)
            .await;
        (created.account.id, seed)
    }

    /// The first sign-in of an account created with [`INITIAL_PASSWORD`]:
    /// returns the enrolled TOTP seed, if any.
    pub async fn first_sign_in(&self, tenant: Option<String>, email: &str) -> Option<String> {
        let mut body = json!({ "email": email, "password": INITIAL_PASSWORD });
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        let res = self.login(body).await;
        assert_eq!(res.status(), 200, "first login refused");
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["status"], "first-sign-in", "{c}");
        let seed = c["totp_uri"].as_str().and_then(totp::seed_of_uri);
        let mut body = json!({ "challenge": c["challenge"], "new_password": PASSWORD });
        if let Some(seed) = &seed {
            body["totp"] = json!(previous_code(seed));
        }
        let res = self
            .http
            .post(format!("{}/api/auth/first-sign-in", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "first sign-in refused");
        let v: Value = res.json().await.unwrap();
        let codes: Vec<String> = v["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(codes.len(), 10);
        self.recovery
            .lock()
            .unwrap()
            .insert(email.to_lowercase(), codes);
        seed
    }

    /// An unused recovery code of the account (each works once).
    pub fn recovery_code(&self, email: &str) -> String {
        self.recovery
            .lock()
            .unwrap()
            .get_mut(&email.to_lowercase())
            .and_then(Vec::pop)
            .unwrap()
    }

    pub async fn login(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/api/auth/login", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Logs in with [`PASSWORD`] and the current code of `seed` (if any);
    /// returns (API token, session cookie value).
    pub async fn login_as(
        &self,
        tenant: Option<&str>,
        email: &str,
        seed: Option<&str>,
    ) -> (String, String) {
        self.login_ok(creds(tenant, email, seed)).await
    }

    /// Logs in (expects success); returns (API token, session cookie value).
    pub async fn login_ok(&self, body: Value) -> (String, String) {
        let res = self.login(body).await;
        assert_eq!(res.status(), 200, "login refused");
        let cookie = session_cookie(&res).expect("a session cookie");
        let v: Value = res.json().await.unwrap();
        (v["token"].as_str().unwrap().to_owned(), cookie)
    }

    pub async fn request(&self, method: &str, path: &str, auth: Auth<'_>) -> reqwest::Response {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => r = r.bearer_auth(t),
            Auth::Cookie(c) => {
                r = r
                    .header("cookie", format!("insights_session={c}"))
                    .header("x-csrf-token", insights_api::auth::session::csrf_token(c))
            }
            Auth::CookieCsrf(c, csrf) => {
                r = r.header("cookie", format!("insights_session={c}"));
                if let Some(t) = csrf {
                    r = r.header("x-csrf-token", t);
                }
            }
        }
        r.send().await.unwrap()
    }

    pub async fn me(&self, auth: Auth<'_>) -> (u16, Value) {
        let res = self.request("GET", "/api/auth/me", auth).await;
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn audit(&self) -> Vec<AuditEvent> {
        self.store
            .list_audit(self.tenant.id, &AuditQuery::default())
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let h = self.handle.clone();
        tokio::spawn(async move { h.stop(false).await });
    }
}

/// The current TOTP code of a base32 seed.
pub fn code(seed: &str) -> String {
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    totp::code_at(seed, now).unwrap()
}

/// A login body with [`PASSWORD`] and the current code of `seed`.
pub fn creds(tenant: Option<&str>, email: &str, seed: Option<&str>) -> Value {
    let mut body = json!({ "email": email, "password": PASSWORD });
    if let Some(t) = tenant {
        body["tenant"] = json!(t);
    }
    if let Some(seed) = seed {
        body["totp"] = json!(code(seed));
    }
    body
}

/// The code of the previous time step (the server accepts one step of
/// skew), so that the current one is still unused afterwards. Waits out
/// the last seconds of a step so the server sees the same step.
pub fn previous_code(seed: &str) -> String {
    let mut now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    if now % 30 >= 27 {
        std::thread::sleep(std::time::Duration::from_secs(30 - now % 30));
        now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    }
    totp::code_at(seed, now - 30).unwrap()
}

/// A well-formed code that is wrong for every step the server may accept
/// around now (so the test cannot hit a valid one by chance).
pub fn wrong_code(seed: &str) -> String {
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let valid: Vec<String> = [now - 60, now - 30, now, now + 30, now + 60]
        .iter()
        .map(|t| totp::code_at(seed, *t).unwrap())
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap()
}

/// The value of the `insights_session` cookie a response sets.
pub fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("insights_session="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// The whole `Set-Cookie` line of the session cookie.
pub fn session_cookie_line(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("insights_session="))
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------------
// local OIDC issuer and its keys: the shared stand-in
// ---------------------------------------------------------------------

pub use insights_tests::keys::{TestKey, b64};
pub use insights_tests::standins::oidc::Issuer;

/// Entra-shaped access token claims.
pub fn oidc_claims(iss: &str, tid: uuid::Uuid, roles: &[&str], oid: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "aud": AUDIENCE, "iss": iss, "iat": now - 10, "nbf": now - 10, "exp": now + 3600,
        "tid": tid.to_string(), "oid": oid, "sub": "pairwise-subject", "roles": roles,
        "amr": ["pwd", "mfa"],
    })
}
