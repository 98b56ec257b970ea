//! Local accounts against the running API: login with password (and
//! TOTP for admins), identical refusals, lockout, address throttling,
//! logout, expired tokens, the platform operator, audit events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use insights_api::auth::token::{API_TOKEN_AUDIENCE, API_TOKEN_ISSUER, ApiClaims, TokenSigner};
use insights_core::domain::{AuditAction, Role};
use serde_json::{Value, json};
use support::{Auth, PASSWORD, TestApp, code, session_cookie, session_cookie_line, wrong_code};

fn creds(email: &str, password: &str) -> Value {
    json!({"tenant": "contoso", "email": email, "password": password})
}

async fn problem(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    (status, res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_login_gives_a_token_and_a_secure_cookie() {
    let app = TestApp::start().await;
    let (id, seed) = app
        .add_user("Ann@Contoso.com", Role::ComplianceOfficer)
        .await;
    let seed = seed.expect("permissions that reveal content need TOTP");

    let mut body = creds("ann@contoso.COM", PASSWORD);
    body["totp"] = json!(code(&seed));
    let res = app.login(body).await;
    assert_eq!(res.status(), 200);
    let line = session_cookie_line(&res);
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(line.contains(attr), "{line}");
    }
    let cookie = session_cookie(&res).unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["token"].as_str().unwrap();

    for auth in [Auth::Bearer(token), Auth::Cookie(&cookie)] {
        let (status, me) = app.me(auth).await;
        assert_eq!(status, 200);
        assert_eq!(me["tenant_id"], app.tenant.id.to_string());
        assert_eq!(
            me["subject"],
            json!({"type": "account", "id": id.to_string()})
        );
        assert_eq!(me["role"], "compliance-officer");
        assert_eq!(me["scope"], json!({"type": "all"}));
        assert!(
            me["permissions"]
                .as_array()
                .unwrap()
                .contains(&json!("play"))
        );
    }
    let (_, me) = app.me(Auth::Cookie(&cookie)).await;
    assert_eq!(me["auth_method"], "session-cookie");

    // Audited: who, what, from where; never the email or password.
    let events = app.audit().await;
    let login = events
        .iter()
        .find(|e| e.action == AuditAction::Login)
        .unwrap();
    assert_eq!(login.actor, id.to_string());
    assert_eq!(login.source.as_deref(), Some("127.0.0.1"));
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("ann@") && !all.contains(PASSWORD), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wrong_credential_gets_the_same_401() {
    let app = TestApp::start().await;
    let (id, _) = app.add_user("ann@contoso.com", Role::User).await;
    let attempts = [
        creds("ann@contoso.com", "wrong password here"),
        creds("nobody@contoso.com", PASSWORD),
        json!({"tenant": "nosuchtenant", "email": "ann@contoso.com", "password": PASSWORD}),
        json!({"email": "ann@contoso.com", "password": PASSWORD}),
    ];
    let mut bodies = Vec::new();
    for a in attempts {
        let res = app.login(a).await;
        assert!(session_cookie(&res).is_none());
        assert_eq!(
            res.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        bodies.push(problem(res).await);
    }
    for b in &bodies {
        assert_eq!(b, &bodies[0]);
    }
    assert_eq!(bodies[0].0, 401);
    assert_eq!(bodies[0].1["code"], "invalid-credentials");

    let failed: Vec<_> = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::LoginFailed)
        .collect();
    assert_eq!(
        failed.len(),
        2,
        "wrong password and unknown email in contoso"
    );
    assert_eq!(failed[0].actor, id.to_string());
    assert_eq!(failed[0].details["reason"], "wrong-password");
    assert_eq!(failed[1].actor, "unknown");
    assert_eq!(failed[1].source.as_deref(), Some("127.0.0.1"));

    // A malformed body is a 400 problem that echoes nothing.
    let res = app
        .http
        .post(format!("{}/api/auth/login", app.base))
        .header("content-type", "application/json")
        .body(r#"{"email": "secret@x", "password": 5}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = problem(res).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid-body")));
    assert!(!body.to_string().contains("secret@x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_need_a_fresh_totp_code() {
    let app = TestApp::start().await;
    let (_, seed) = app.add_user("admin@contoso.com", Role::TenantAdmin).await;
    let seed = seed.expect("tenant admins are enrolled");
    let no_code = creds("admin@contoso.com", PASSWORD);
    let (status, body) = problem(app.login(no_code.clone()).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid-credentials"))
    );

    let mut wrong = no_code.clone();
    let good = code(&seed);
    wrong["totp"] = json!(wrong_code(&seed));
    assert_eq!(app.login(wrong).await.status(), 401);
    // A right code with a wrong password is refused too.
    let mut bad_pw = creds("admin@contoso.com", "not the password");
    bad_pw["totp"] = json!(good);
    assert_eq!(app.login(bad_pw).await.status(), 401);

    let mut ok = no_code.clone();
    ok["totp"] = json!(good);
    let (token, _) = app.login_ok(ok.clone()).await;
    let (_, me) = app.me(Auth::Bearer(&token)).await;
    assert_eq!(me["role"], "tenant-admin");
    // The same code cannot be used twice.
    assert_eq!(app.login(ok).await.status(), 401);
    let reasons: Vec<String> = app
        .audit()
        .await
        .iter()
        .filter(|e| e.action == AuditAction::LoginFailed)
        .map(|e| e.details["reason"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        reasons,
        [
            "totp-missing",
            "totp-wrong",
            "wrong-password",
            "totp-replayed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_known_and_unknown_accounts_alike() {
    let app = TestApp::start_with(false, |a| {
        a.lockout_threshold = 3;
        a.lockout_secs = 600;
    })
    .await;
    app.add_user("ann@contoso.com", Role::User).await;
    for email in ["ann@contoso.com", "ghost@contoso.com"] {
        for _ in 0..3 {
            assert_eq!(
                app.login(creds(email, "wrong password!")).await.status(),
                401
            );
        }
        // Locked now: even the right password gets 423.
        let res = app.login(creds(email, PASSWORD)).await;
        let retry: u64 = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!((590..=600).contains(&retry), "{retry}");
        let (status, body) = problem(res).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (423, Some("account-locked"))
        );
    }
    let locked = app
        .audit()
        .await
        .iter()
        .filter(|e| e.details["reason"] == "account-locked")
        .count();
    assert_eq!(locked, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_429_after_its_budget() {
    let app = TestApp::start_with(false, |a| {
        a.address_max_failures = 4;
        a.address_window_secs = 300;
    })
    .await;
    app.add_user("ann@contoso.com", Role::User).await;
    for i in 0..4 {
        let email = format!("user{i}@contoso.com");
        assert_eq!(
            app.login(creds(&email, "wrong password!")).await.status(),
            401
        );
    }
    let res = app.login(creds("ann@contoso.com", PASSWORD)).await;
    assert!(res.headers().get("retry-after").is_some());
    let (status, body) = problem(res).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("too-many-attempts"))
    );
}

/// Browsers authenticated by the session cookie must echo the session's
/// CSRF token (login answer, readable `insights_csrf` cookie, `/me`) in
/// `X-CSRF-Token` on every unsafe method; bearer tokens need none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_sessions_need_the_csrf_header_on_unsafe_methods() {
    let app = TestApp::start().await;
    let (_, seed) = app.add_user("ann@contoso.com", Role::TenantAdmin).await;
    let mut body = creds("ann@contoso.com", PASSWORD);
    body["totp"] = json!(code(&seed.unwrap()));
    let res = app.login(body).await;
    assert_eq!(res.status(), 200);
    let cookie = session_cookie(&res).unwrap();
    let csrf_line = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("insights_csrf="))
        .unwrap_or_default()
        .to_owned();
    let body: Value = res.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(
        csrf_line.starts_with(&format!("insights_csrf={csrf};")),
        "{csrf_line}"
    );
    for attr in ["Secure", "SameSite=Strict", "Path=/"] {
        assert!(csrf_line.contains(attr), "{csrf_line}");
    }
    assert!(
        !csrf_line.contains("HttpOnly"),
        "the page reads it: {csrf_line}"
    );
    assert_ne!(csrf, cookie);

    // `/me` returns it to cookie callers only.
    let (_, me) = app.me(Auth::CookieCsrf(&cookie, None)).await;
    assert_eq!(me["csrf_token"], csrf.as_str());
    let (_, me) = app.me(Auth::Bearer(&token)).await;
    assert!(me.get("csrf_token").is_none(), "{me}");

    // A state change with the cookie but without (or with a wrong, or
    // another session's) token is refused before the handler runs.
    let settings = json!({"cloud_ai_enabled": false, "media_deletion_waiver": false,
        "require_access_reason": false, "four_eyes_playback": false});
    let other = insights_api::auth::session::csrf_token("v1.platform.x");
    for bad in [None, Some(""), Some("nonsense"), Some(other.as_str())] {
        let res = app
            .http
            .put(format!("{}/api/settings", app.base))
            .header("cookie", format!("insights_session={cookie}"))
            .json(&settings);
        let res = match bad {
            Some(t) => res.header("x-csrf-token", t),
            None => res,
        };
        let (status, p) = problem(res.send().await.unwrap()).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (403, Some("csrf-token-invalid")),
            "{bad:?}"
        );
    }
    let res = app
        .request("POST", "/api/auth/logout", Auth::CookieCsrf(&cookie, None))
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        app.me(Auth::CookieCsrf(&cookie, None)).await.0,
        200,
        "still signed in"
    );
    // With the token it goes through; a bearer token needs none.
    let res = app
        .http
        .put(format!("{}/api/settings", app.base))
        .header("cookie", format!("insights_session={cookie}"))
        .header("x-csrf-token", &csrf)
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .put(format!("{}/api/settings", app.base))
        .bearer_auth(&token)
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Logout clears both cookies.
    let res = app
        .request(
            "POST",
            "/api/auth/logout",
            Auth::CookieCsrf(&cookie, Some(&csrf)),
        )
        .await;
    assert_eq!(res.status(), 204);
    let cleared: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("insights_csrf=") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_cookie_and_the_token() {
    let app = TestApp::start().await;
    let (id, seed) = app.add_user("ann@contoso.com", Role::Supervisor).await;
    let (token, cookie) = app
        .login_as(Some("contoso"), "ann@contoso.com", seed.as_deref())
        .await;
    assert_eq!(app.me(Auth::Cookie(&cookie)).await.0, 200);

    let res = app
        .request("POST", "/api/auth/logout", Auth::Cookie(&cookie))
        .await;
    assert_eq!(res.status(), 204);
    assert!(session_cookie_line(&res).contains("Max-Age=0"));
    for auth in [Auth::Cookie(&cookie), Auth::Bearer(&token)] {
        let res = app.request("GET", "/api/auth/me", auth).await;
        let (status, body) = problem(res).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("session-expired"))
        );
    }
    let logout = app
        .audit()
        .await
        .into_iter()
        .find(|e| e.action == AuditAction::Logout)
        .unwrap();
    assert_eq!(logout.actor, id.to_string());

    // A second session (a recovery code instead of the TOTP code used
    // already in this time step) is unaffected by the first one's logout.
    let mut body = creds("ann@contoso.com", PASSWORD);
    body["recovery_code"] = json!(app.recovery_code("ann@contoso.com"));
    let (token2, _) = app.login_ok(body).await;
    assert_eq!(app.me(Auth::Bearer(&token2)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_forged_and_missing_credentials_are_401() {
    let app = TestApp::start().await;
    let (id, seed) = app.add_user("ann@contoso.com", Role::User).await;
    let (token, _) = app
        .login_as(Some("contoso"), "ann@contoso.com", seed.as_deref())
        .await;
    let signer = TokenSigner::open_or_create(&app.settings.token_key_path(app.dir.path())).unwrap();
    let claims: ApiClaims = signer.verify(&token).unwrap();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();

    let expired = signer
        .issue(&ApiClaims {
            iat: now - 1000,
            exp: now - 100,
            ..claims.clone()
        })
        .unwrap();
    let (status, body) = problem(
        app.request("GET", "/api/auth/me", Auth::Bearer(&expired))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token-expired"))
    );

    // Signed with another key (same kid): refused.
    let other = TokenSigner::from_key(&[1; 32]);
    let forged = other.issue(&claims).unwrap();
    assert_eq!(app.me(Auth::Bearer(&forged)).await.0, 401);
    // A token for a session that does not exist.
    let orphan = signer
        .issue(&ApiClaims {
            sid: "ab".repeat(32),
            ..claims.clone()
        })
        .unwrap();
    assert_eq!(app.me(Auth::Bearer(&orphan)).await.0, 401);
    assert_eq!(claims.iss, API_TOKEN_ISSUER);
    assert_eq!(claims.aud, API_TOKEN_AUDIENCE);
    assert_eq!(claims.sub, id.to_string());

    let (status, body) = problem(app.request("GET", "/api/auth/me", Auth::None).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("authentication-required"))
    );
    assert_eq!(app.me(Auth::Cookie("v1.platform.garbage")).await.0, 401);
    assert_eq!(app.me(Auth::Bearer("not-a-jwt")).await.0, 401);
    // Unknown routes are problems too.
    let (status, body) = problem(app.request("GET", "/api/nothing-here", Auth::None).await).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not-found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_operators_sign_in_without_tenant_and_see_no_content() {
    let app = TestApp::start().await;
    let (id, seed) = app
        .add_user("ops@vendor.example", Role::PlatformOperator)
        .await;
    let seed = seed.expect("operators are enrolled in TOTP");
    // Not a user of the tenant.
    assert_eq!(
        app.login(creds("ops@vendor.example", PASSWORD))
            .await
            .status(),
        401
    );
    let (token, cookie) = app
        .login_ok(json!({"email": "ops@vendor.example", "password": PASSWORD, "totp": code(&seed)}))
        .await;
    for auth in [Auth::Bearer(&token), Auth::Cookie(&cookie)] {
        let (status, me) = app.me(auth).await;
        assert_eq!(status, 200);
        assert_eq!(me["tenant_id"], Value::Null);
        assert_eq!(me["role"], "platform-operator");
        assert_eq!(me["permissions"], json!(["operate-platform"]));
        assert_eq!(me["scope"], json!({"type": "nothing"}));
        assert_eq!(me["subject"]["id"], id.to_string());
    }
    // Nothing of it lands in the tenant's audit chain.
    assert!(app.audit().await.iter().all(|e| e.actor != id.to_string()));
}

/// The address an audit event keeps comes from `X-Forwarded-For` only
/// behind a configured trusted proxy; otherwise a client could forge it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_behind_trusted_proxies() {
    for (trusted, want) in [
        (Vec::new(), "127.0.0.1"),
        (vec!["127.0.0.0/8".to_owned()], "198.51.100.23"),
    ] {
        let app = TestApp::start_with(false, |s| s.trusted_proxies = trusted.clone()).await;
        let (_, seed) = app
            .add_user("ann@contoso.com", Role::ComplianceOfficer)
            .await;
        let res = app
            .http
            .post(format!("{}/api/auth/login", app.base))
            .header("x-forwarded-for", "198.51.100.23")
            .json(&support::creds(
                Some("contoso"),
                "ann@contoso.com",
                seed.as_deref(),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        // The last login (the first was the account's first sign-in).
        let login = app
            .audit()
            .await
            .into_iter()
            .rfind(|e| e.action == AuditAction::Login)
            .unwrap();
        assert_eq!(login.source.as_deref(), Some(want), "trusted: {trusted:?}");
    }
}
