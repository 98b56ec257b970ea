//! "Sign in with your organisation": the authorization code flow with
//! PKCE against a local stand-in OpenID provider (discovery document,
//! authorization endpoint, token endpoint that checks the PKCE verifier
//! against the challenge and refuses a code twice, JWKS; Entra-shaped id
//! tokens signed with a key generated per test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use insights_core::domain::*;
use insights_tests::standins::http::{Recorded, Reply, StandIn};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{AUDIENCE, TestApp, TestKey};

const CLIENT_ID: &str = "0c0c0c0c-1111-2222-3333-444444444444";
const SECRET: &str = "web-app-client-secret";
const REDIRECT: &str = "https://insights.test/api/auth/oidc/callback";
const OID: &str = "9f7e3c1a-0000-4000-8000-00000000beef";

// ---------------------------------------------------------------------
// the stand-in provider
// ---------------------------------------------------------------------

struct Grant {
    challenge: String,
    method: String,
    nonce: String,
    client_id: String,
    redirect_uri: String,
    used: bool,
}

#[derive(Default)]
struct IdpState {
    jwk: Mutex<Value>,
    key: Mutex<Option<TestKey>>,
    tid: Mutex<String>,
    roles: Mutex<Vec<String>>,
    wrong_nonce: Mutex<bool>,
    /// Sign-ins by password only (`amr` without a second factor).
    no_mfa: Mutex<bool>,
    grants: Mutex<HashMap<String, Grant>>,
    authorize_requests: Mutex<Vec<BTreeMap<String, String>>>,
    token_requests: Mutex<Vec<BTreeMap<String, String>>>,
}

/// The provider on the shared recording server
/// ([`insights_tests::standins::http`]).
struct Idp {
    base: String,
    state: Arc<IdpState>,
    _server: StandIn,
}

impl Idp {
    async fn start() -> Idp {
        let state: Arc<IdpState> = Arc::default();
        let key = TestKey::generate("login-key-1");
        *state.jwk.lock().unwrap() = key.jwk();
        *state.key.lock().unwrap() = Some(key);
        *state.roles.lock().unwrap() = vec!["Insights.ComplianceOfficer".into()];
        let st = state.clone();
        let server = StandIn::start(move |req, base| idp_dispatch(req, base, &st)).await;
        Idp {
            base: server.base.clone(),
            state,
            _server: server,
        }
    }

    fn discovery_url(&self) -> String {
        format!(
            "{}/organizations/v2.0/.well-known/openid-configuration",
            self.base
        )
    }
}

fn query_map(q: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

fn idp_dispatch(req: &Recorded, base: &str, st: &IdpState) -> Reply {
    match req.path.as_str() {
        "/organizations/v2.0/.well-known/openid-configuration" => Reply::json(
            200,
            json!({
                "issuer": format!("{base}/{{tenantid}}/v2.0"),
                "authorization_endpoint": format!("{base}/organizations/oauth2/v2.0/authorize"),
                "token_endpoint": format!("{base}/organizations/oauth2/v2.0/token"),
                "jwks_uri": format!("{base}/organizations/discovery/v2.0/keys"),
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }),
        ),
        "/organizations/discovery/v2.0/keys" => {
            Reply::json(200, json!({ "keys": [st.jwk.lock().unwrap().clone()] }))
        }
        "/organizations/oauth2/v2.0/authorize" => {
            // The user signs in; the provider sends the browser back with
            // a fresh code.
            let q = req.query_pairs();
            st.authorize_requests.lock().unwrap().push(q.clone());
            let code = format!("code-{}", uuid::Uuid::new_v4().simple());
            st.grants.lock().unwrap().insert(
                code.clone(),
                Grant {
                    challenge: q.get("code_challenge").cloned().unwrap_or_default(),
                    method: q.get("code_challenge_method").cloned().unwrap_or_default(),
                    nonce: q.get("nonce").cloned().unwrap_or_default(),
                    client_id: q.get("client_id").cloned().unwrap_or_default(),
                    redirect_uri: q.get("redirect_uri").cloned().unwrap_or_default(),
                    used: false,
                },
            );
            let mut back = url::Url::parse(&q["redirect_uri"]).unwrap();
            back.query_pairs_mut()
                .append_pair("code", &code)
                .append_pair("state", q.get("state").map(String::as_str).unwrap_or(""));
            Reply::empty(302).header("location", back.as_str())
        }
        "/organizations/oauth2/v2.0/token" => {
            let form = req.form();
            st.token_requests.lock().unwrap().push(form.clone());
            let invalid_grant = |why: &str| {
                Reply::json(
                    400,
                    json!({"error": "invalid_grant", "error_description": why}),
                )
            };
            if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
                return invalid_grant("grant_type");
            }
            if form.get("client_secret").map(String::as_str) != Some(SECRET) {
                return Reply::json(401, json!({"error": "invalid_client"}));
            }
            let mut grants = st.grants.lock().unwrap();
            let Some(g) = form.get("code").and_then(|c| grants.get_mut(c)) else {
                return invalid_grant("unknown code");
            };
            if g.used {
                return invalid_grant("code already redeemed");
            }
            g.used = true;
            if form.get("client_id") != Some(&g.client_id)
                || form.get("redirect_uri") != Some(&g.redirect_uri)
            {
                return invalid_grant("client or redirect mismatch");
            }
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if g.method != "S256" || challenge != g.challenge {
                return invalid_grant("PKCE verification failed");
            }
            let tid = st.tid.lock().unwrap().clone();
            let now = chrono::Utc::now().timestamp();
            let nonce = if *st.wrong_nonce.lock().unwrap() {
                "not-the-nonce-you-sent".to_owned()
            } else {
                g.nonce.clone()
            };
            let claims = json!({
                "aud": g.client_id, "iss": format!("{base}/{tid}/v2.0"),
                "iat": now - 5, "nbf": now - 5, "exp": now + 3600,
                "tid": tid, "oid": OID, "sub": "pairwise-sub", "nonce": nonce,
                "roles": st.roles.lock().unwrap().clone(),
                "amr": if *st.no_mfa.lock().unwrap() { json!(["pwd"]) } else { json!(["pwd", "mfa"]) },
                "name": "Ann Lee", "preferred_username": "ann@contoso.com",
            });
            let id_token = st.key.lock().unwrap().as_ref().unwrap().token(&claims);
            Reply::json(
                200,
                json!({
                    "token_type": "Bearer", "scope": "openid profile", "expires_in": 3600,
                    "access_token": "opaque-access-token", "id_token": id_token,
                }),
            )
        }
        _ => Reply::empty(404),
    }
}

// ---------------------------------------------------------------------
// the world: API with sign-in configured, a synced directory user
// ---------------------------------------------------------------------

struct World {
    t: TestApp,
    idp: Idp,
    /// A client that does not follow redirects.
    http: reqwest::Client,
    user: UserId,
}

impl World {
    async fn start() -> World {
        let idp = Idp::start().await;
        let secret_dir = tempfile::tempdir().unwrap();
        let secret_file = secret_dir.path().join("client-secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        let (discovery, base) = (idp.discovery_url(), idp.base.clone());
        let t = TestApp::start_with(false, move |s| {
            s.oidc.discovery_url = Some(discovery);
            s.oidc.issuer = format!("{base}/{{tenantid}}/v2.0");
            s.oidc.audience = Some(AUDIENCE.into());
            s.oidc.jwks_min_refresh_secs = 0;
            s.oidc.login_client_id = Some(CLIENT_ID.into());
            s.oidc.login_redirect_uri = Some(REDIRECT.into());
            s.oidc.login_client_secret_file = Some(secret_file);
            s.oidc.login_label = "Sign in with Contoso".into();
            s.oidc.profile_map = vec![insights_core::config::OidcProfileMapping {
                tenant: "contoso".into(),
                claim: "groups".into(),
                value: "grp-traders".into(),
                profile: "Traders desk".into(),
            }];
        })
        .await;
        drop(secret_dir);
        *idp.state.tid.lock().unwrap() = t.tid.to_string();
        let user = DirectoryUser {
            id: UserId::new(),
            tenant_id: t.tenant.id,
            directory_object_id: Some(OID.into()),
            first_name: Some("Ann".into()),
            last_name: Some("Lee".into()),
            display_name: None,
            alias: None,
            email: None,
            upn: None,
            phone_numbers: Vec::new(),
            sip_uri: None,
            tel_uri: None,
            groups: Vec::new(),
            active: true,
            updated_at: now(),
        };
        t.store
            .upsert_directory_user(t.tenant.id, &user)
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        World {
            t,
            idp,
            http,
            user: user.id,
        }
    }

    async fn get(&self, url: &str, cookies: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self.http.get(url);
        if !cookies.is_empty() {
            let c: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            r = r.header("cookie", c.join("; "));
        }
        r.send().await.unwrap()
    }

    /// Starts a sign-in: (authorize URL, state cookie value).
    async fn start_login(&self, return_to: &str) -> (url::Url, String) {
        let mut u = url::Url::parse(&format!("{}/api/auth/oidc/login", self.t.base)).unwrap();
        u.query_pairs_mut().append_pair("return_to", return_to);
        let res = self.get(u.as_str(), &[]).await;
        assert_eq!(res.status(), 302);
        let state_cookie = cookie_line(&res, "insights_oidc_state");
        let value = cookie_value(&state_cookie);
        let loc = url::Url::parse(location(&res)).unwrap();
        (loc, value)
    }

    /// The provider's side: the user signs in; returns (code, state) of
    /// the redirect back.
    async fn authorize(&self, at: &url::Url) -> (String, String) {
        let res = self.get(at.as_str(), &[]).await;
        assert_eq!(res.status(), 302);
        let back = url::Url::parse(location(&res)).unwrap();
        assert_eq!(back.path(), "/api/auth/oidc/callback");
        let q = query_map(back.query().unwrap_or(""));
        (q["code"].clone(), q["state"].clone())
    }

    async fn callback(&self, code: &str, state: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut u = url::Url::parse(&format!("{}/api/auth/oidc/callback", self.t.base)).unwrap();
        u.query_pairs_mut()
            .append_pair("code", code)
            .append_pair("state", state);
        match cookie {
            Some(c) => self.get(u.as_str(), &[("insights_oidc_state", c)]).await,
            None => self.get(u.as_str(), &[]).await,
        }
    }
}

fn location(res: &reqwest::Response) -> &str {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn cookie_line(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

fn cookie_value(line: &str) -> String {
    line.split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

async fn problem(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    (status, v["code"].as_str().unwrap_or_default().to_owned())
}

// ---------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_signs_in_with_pkce_maps_the_principal_and_signs_out() {
    let w = World::start().await;
    let res = w
        .get(&format!("{}/api/auth/providers", w.t.base), &[])
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        v,
        json!({"local": true, "oidc": {"enabled": true, "label": "Sign in with Contoso"}})
    );

    let (authorize, state_cookie) = w.start_login("/recordings?q=1").await;
    // The authorization request carries everything the flow needs.
    assert_eq!(
        authorize.as_str().split('?').next().unwrap(),
        format!("{}/organizations/oauth2/v2.0/authorize", w.idp.base)
    );
    let q = query_map(authorize.query().unwrap());
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert!(q["scope"].split(' ').any(|s| s == "openid"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    assert_ne!(q["state"], q["nonce"]);
    assert_eq!(state_cookie, q["state"]);

    let (code, state) = w.authorize(&authorize).await;
    let res = w.callback(&code, &state, Some(&state_cookie)).await;
    assert_eq!(res.status(), 302, "{:?}", res.headers());
    assert_eq!(location(&res), "/recordings?q=1");
    let session_line = cookie_line(&res, "insights_session");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(session_line.contains(attr), "{session_line}");
    }
    let csrf_line = cookie_line(&res, "insights_csrf");
    assert!(
        !csrf_line.contains("HttpOnly"),
        "the CSRF cookie is readable"
    );
    assert!(cookie_value(&csrf_line).len() >= 32);
    let session = cookie_value(&session_line);

    // The token request redeemed the code with the verifier and secret.
    let token_reqs = w.idp.state.token_requests.lock().unwrap().clone();
    assert_eq!(token_reqs.len(), 1);
    assert_eq!(token_reqs[0]["grant_type"], "authorization_code");
    assert_eq!(token_reqs[0]["code"], code);
    assert_eq!(token_reqs[0]["redirect_uri"], REDIRECT);
    assert_eq!(token_reqs[0]["code_verifier"].len(), 43);

    // The session is the principal the id token describes.
    let (status, me) = w.t.me(support::Auth::Cookie(&session)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["subject"], json!({"type": "oidc", "id": OID}));
    assert_eq!(me["role"], "compliance-officer");
    assert_eq!(me["tenant_id"], json!(w.t.tenant.id));
    assert_eq!(me["directory_user_id"], json!(w.user));
    assert_eq!(me["auth_method"], "session-cookie");

    // Audited in the tenant's chain, without personal data.
    let audit = w.t.audit().await;
    let login = audit
        .iter()
        .find(|e| e.action == AuditAction::Login)
        .expect("a login event");
    assert_eq!(login.actor, format!("oidc:{OID}"));
    assert_eq!(login.details["method"], "oidc");
    assert_eq!(login.target, Some(w.user.to_string()));
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains("ann@contoso.com") && !text.contains(&code));

    // Logout ends the session.
    let csrf = cookie_value(&csrf_line);
    let res =
        w.t.http
            .post(format!("{}/api/auth/logout", w.t.base))
            .header(
                "cookie",
                format!("insights_session={session}; insights_csrf={csrf}"),
            )
            .header("X-CSRF-Token", &csrf)
            .send()
            .await
            .unwrap();
    assert_eq!(res.status(), 204);
    let (status, _) = w.t.me(support::Auth::Cookie(&session)).await;
    assert_eq!(status, 401);
    assert!(
        w.t.audit()
            .await
            .iter()
            .any(|e| e.action == AuditAction::Logout && e.actor == format!("oidc:{OID}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_foreign_state_is_refused() {
    let w = World::start().await;
    let (authorize, cookie) = w.start_login("/").await;
    let (code, state) = w.authorize(&authorize).await;
    // A state we never issued.
    let res = w
        .callback(&code, "made-up-state", Some("made-up-state"))
        .await;
    assert_eq!(problem(res).await, (400, "invalid-state".into()));
    // A real state without the browser's cookie (someone else's flow).
    let res = w.callback(&code, &state, None).await;
    assert_eq!(problem(res).await, (400, "invalid-state".into()));
    // ... which also used it up: not even its own browser gets in now.
    let res = w.callback(&code, &state, Some(&cookie)).await;
    assert_eq!(problem(res).await, (400, "invalid-state".into()));
    assert!(
        w.idp.state.token_requests.lock().unwrap().is_empty(),
        "no code was redeemed"
    );
    assert!(
        !w.t.audit()
            .await
            .iter()
            .any(|e| e.action == AuditAction::Login)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_callback_or_code_is_refused() {
    let w = World::start().await;
    let (authorize, cookie) = w.start_login("/").await;
    let (code, state) = w.authorize(&authorize).await;
    let res = w.callback(&code, &state, Some(&cookie)).await;
    assert_eq!(res.status(), 302);
    // The same callback again: the state is single use.
    let res = w.callback(&code, &state, Some(&cookie)).await;
    assert_eq!(problem(res).await, (400, "invalid-state".into()));
    // The old code under a fresh state: the provider refuses it, so do we.
    let (_, cookie2) = w.start_login("/").await;
    let res = w.callback(&code, &cookie2, Some(&cookie2)).await;
    assert!(res.headers().get_all("set-cookie").iter().all(|c| {
        !c.to_str()
            .unwrap_or_default()
            .starts_with("insights_session=")
    }));
    assert_eq!(problem(res).await, (401, "oidc-code-refused".into()));
    let logins =
        w.t.audit()
            .await
            .iter()
            .filter(|e| e.action == AuditAction::Login)
            .count();
    assert_eq!(logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_with_another_nonce_is_refused_and_audited() {
    let w = World::start().await;
    *w.idp.state.wrong_nonce.lock().unwrap() = true;
    let (authorize, cookie) = w.start_login("/").await;
    let (code, state) = w.authorize(&authorize).await;
    let res = w.callback(&code, &state, Some(&cookie)).await;
    assert!(res.headers().get_all("set-cookie").iter().all(|c| {
        !c.to_str()
            .unwrap_or_default()
            .starts_with("insights_session=")
    }));
    assert_eq!(problem(res).await, (401, "invalid-id-token".into()));
    let audit = w.t.audit().await;
    let failed = audit
        .iter()
        .find(|e| e.action == AuditAction::LoginFailed)
        .expect("a login-failed event");
    assert_eq!(failed.details["method"], "oidc");
    assert_eq!(failed.details["reason"], "nonce-mismatch");
    assert!(!audit.iter().any(|e| e.action == AuditAction::Login));
}

/// A session of a directory principal: the security profile its
/// synchronised groups map to (`[auth.oidc] profile_map`) replaces the
/// role's defaults, and it ends as soon as the directory user is
/// inactive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_get_the_mapped_profile_and_end_for_inactive_directory_users() {
    let w = World::start().await;
    let profile = insights_core::domain::SecurityProfile {
        id: insights_core::domain::SecurityProfileId::new(),
        tenant_id: w.t.tenant.id,
        name: "Traders desk".into(),
        role: insights_core::domain::Role::Supervisor,
        permissions: vec![insights_core::domain::Permission::Search],
        scope: insights_core::domain::VisibilityScope::OwnRecordings,
    };
    w.t.store
        .upsert_security_profile(w.t.tenant.id, &profile)
        .await
        .unwrap();
    let mut user =
        w.t.store
            .get_directory_user(w.t.tenant.id, w.user)
            .await
            .unwrap();
    user.groups = vec!["grp-traders".into()];
    w.t.store
        .upsert_directory_user(w.t.tenant.id, &user)
        .await
        .unwrap();
    let (authorize, cookie) = w.start_login("/").await;
    let (code, state) = w.authorize(&authorize).await;
    let res = w.callback(&code, &state, Some(&cookie)).await;
    assert_eq!(res.status(), 302);
    let session = cookie_value(&cookie_line(&res, "insights_session"));
    let (status, me) = w.t.me(support::Auth::Cookie(&session)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["role"], "compliance-officer");
    assert_eq!(me["permissions"], json!(["search"]));
    assert_eq!(me["scope"], json!({"type": "own-recordings"}));
    user.active = false;
    w.t.store
        .upsert_directory_user(w.t.tenant.id, &user)
        .await
        .unwrap();
    let res =
        w.t.request("GET", "/api/auth/me", support::Auth::Cookie(&session))
            .await;
    assert_eq!(problem(res).await, (401, "directory-user-inactive".into()));
}

/// `[auth.oidc] require_mfa` (the default): a sign-in whose `amr` does
/// not prove a second factor opens no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_without_mfa_in_amr_is_refused_and_audited() {
    let w = World::start().await;
    *w.idp.state.no_mfa.lock().unwrap() = true;
    let (authorize, cookie) = w.start_login("/").await;
    let (code, state) = w.authorize(&authorize).await;
    let res = w.callback(&code, &state, Some(&cookie)).await;
    assert!(res.headers().get_all("set-cookie").iter().all(|c| {
        !c.to_str()
            .unwrap_or_default()
            .starts_with("insights_session=")
    }));
    assert_eq!(problem(res).await, (401, "mfa-required".into()));
    let audit = w.t.audit().await;
    let failed = audit
        .iter()
        .find(|e| e.action == AuditAction::LoginFailed)
        .expect("a login-failed event");
    assert_eq!(failed.details["reason"], "mfa-not-proven");
    assert!(!audit.iter().any(|e| e.action == AuditAction::Login));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_one_of_our_roles_gets_no_session() {
    let w = World::start().await;
    *w.idp.state.roles.lock().unwrap() = vec!["Some.OtherApp".into()];
    let (authorize, cookie) = w.start_login("/").await;
    let (code, state) = w.authorize(&authorize).await;
    let res = w.callback(&code, &state, Some(&cookie)).await;
    assert_eq!(problem(res).await, (403, "no-role".into()));
    let audit = w.t.audit().await;
    assert!(
        audit
            .iter()
            .any(|e| e.action == AuditAction::LoginFailed && e.details["reason"] == "no-role")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_to_must_stay_on_this_site() {
    let w = World::start().await;
    for bad in [
        "https://evil.example/",
        "//evil.example/path",
        "/\\evil.example",
        "evil.example",
        "javascript:alert(1)",
    ] {
        let mut u = url::Url::parse(&format!("{}/api/auth/oidc/login", w.t.base)).unwrap();
        u.query_pairs_mut().append_pair("return_to", bad);
        let res = w.get(u.as_str(), &[]).await;
        assert!(res.headers().get("location").is_none(), "{bad}");
        assert_eq!(
            problem(res).await,
            (400, "invalid-return-to".into()),
            "{bad}"
        );
    }
    assert!(w.idp.state.authorize_requests.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configuration_only_local_sign_in_is_offered() {
    let t = TestApp::start().await;
    let res = t
        .request("GET", "/api/auth/providers", support::Auth::None)
        .await;
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        v,
        json!({"local": true, "oidc": {"enabled": false, "label": null}})
    );
    let res = t
        .request("GET", "/api/auth/oidc/login", support::Auth::None)
        .await;
    assert_eq!(res.status(), 404);
    let res = t
        .request(
            "GET",
            "/api/auth/oidc/callback?code=x&state=y",
            support::Auth::None,
        )
        .await;
    assert_eq!(res.status(), 404);
}
