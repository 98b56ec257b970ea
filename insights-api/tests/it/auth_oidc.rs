//! OIDC bearer tokens against the running API and a local issuer
//! (discovery + JWKS): tenant and role mapping, key rotation, and every
//! kind of bad token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use insights_core::domain::{DirectoryUser, UserId, now};
use serde_json::{Value, json};
use support::{Auth, TestApp, TestKey, b64, oidc_claims};

async fn started() -> (TestApp, TestKey) {
    let app = TestApp::start_with(true, |_| {}).await;
    let key = TestKey::generate("key-1");
    app.issuer.as_ref().unwrap().publish(&[&key]);
    (app, key)
}

fn iss(app: &TestApp) -> String {
    app.issuer.as_ref().unwrap().iss(app.tid)
}

async fn code_of(app: &TestApp, token: &str) -> (u16, String) {
    let res = app
        .request("GET", "/api/auth/me", Auth::Bearer(token))
        .await;
    let status = res.status().as_u16();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    (status, v["code"].as_str().unwrap_or("").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_tokens_map_tenant_role_and_directory_user() {
    let (app, key) = started().await;
    let oid = uuid::Uuid::new_v4().to_string();
    let user = DirectoryUser {
        id: UserId::new(),
        tenant_id: app.tenant.id,
        directory_object_id: Some(oid.clone()),
        first_name: None,
        last_name: None,
        display_name: None,
        alias: None,
        email: None,
        upn: None,
        phone_numbers: vec![],
        sip_uri: None,
        tel_uri: None,
        groups: vec![],
        active: true,
        updated_at: now(),
    };
    app.store
        .upsert_directory_user(app.tenant.id, &user)
        .await
        .unwrap();

    let t = key.token(&oidc_claims(&iss(&app), app.tid, &["Insights.User"], &oid));
    let (status, me) = app.me(Auth::Bearer(&t)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["tenant_id"], app.tenant.id.to_string());
    assert_eq!(me["role"], "user");
    assert_eq!(me["scope"], json!({"type": "own-recordings"}));
    assert_eq!(me["directory_user_id"], user.id.to_string());
    assert_eq!(me["subject"], json!({"type": "oidc", "id": oid}));
    assert_eq!(me["auth_method"], "oidc");

    // Several roles: the strongest wins; unmapped ones are ignored.
    let t = key.token(&oidc_claims(
        &iss(&app),
        app.tid,
        &["Insights.User", "Insights.Dpo", "Something.Else"],
        &oid,
    ));
    assert_eq!(app.me(Auth::Bearer(&t)).await.1["role"], "dpo");
    // No mapped role: authenticated, but not allowed in.
    let t = key.token(&oidc_claims(&iss(&app), app.tid, &["Something.Else"], &oid));
    assert_eq!(code_of(&app, &t).await, (403, "no-role".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_oidc_tokens_are_refused() {
    let (app, key) = started().await;
    let good = oidc_claims(&iss(&app), app.tid, &["Insights.TenantAdmin"], "oid-1");
    assert_eq!(app.me(Auth::Bearer(&key.token(&good))).await.0, 200);

    let mut c = good.clone();
    c["aud"] = json!("api://someone-else");
    assert_eq!(
        code_of(&app, &key.token(&c)).await,
        (401, "token-invalid".into())
    );

    let mut c = good.clone();
    c["iss"] = json!("https://evil.example/v2.0");
    assert_eq!(
        code_of(&app, &key.token(&c)).await,
        (401, "token-invalid".into())
    );
    // The issuer of another directory tenant than the token's tid.
    let mut c = good.clone();
    c["iss"] = json!(app.issuer.as_ref().unwrap().iss(uuid::Uuid::new_v4()));
    assert_eq!(code_of(&app, &key.token(&c)).await.0, 401);

    let mut c = good.clone();
    let past = chrono::Utc::now().timestamp() - 3600;
    c["exp"] = json!(past);
    c["nbf"] = json!(past - 60);
    assert_eq!(
        code_of(&app, &key.token(&c)).await,
        (401, "token-expired".into())
    );

    // Unsigned (alg none), and HS256 "signed" with the public key.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    assert_eq!(code_of(&app, &none).await.0, 401);
    let hs = format!(
        "{}.{}.AAAA",
        b64(&json!({"alg": "HS256", "typ": "JWT", "kid": "key-1"})),
        b64(&good)
    );
    assert_eq!(code_of(&app, &hs).await.0, 401);
    // A key nobody published, and a tampered payload.
    let stranger = TestKey::generate("key-1");
    assert_eq!(code_of(&app, &stranger.token(&good)).await.0, 401);
    let signed = key.token(&good);
    let parts: Vec<&str> = signed.split('.').collect();
    let mut c = good.clone();
    c["roles"] = json!(["Insights.TenantAdmin", "Insights.Dpo"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(&c), parts[2]);
    assert_eq!(code_of(&app, &tampered).await.0, 401);

    // A directory tenant that is no tenant here.
    let other_tid = uuid::Uuid::new_v4();
    let c = oidc_claims(
        &app.issuer.as_ref().unwrap().iss(other_tid),
        other_tid,
        &["Insights.TenantAdmin"],
        "oid-1",
    );
    assert_eq!(
        code_of(&app, &key.token(&c)).await,
        (401, "unknown-tenant".into())
    );
    let mut c = good.clone();
    c.as_object_mut().unwrap().remove("tid");
    assert_eq!(code_of(&app, &key.token(&c)).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_are_fetched_on_first_use() {
    let (app, key1) = started().await;
    let issuer = app.issuer.as_ref().unwrap();
    let claims = oidc_claims(&iss(&app), app.tid, &["Insights.Supervisor"], "oid-2");
    assert_eq!(app.me(Auth::Bearer(&key1.token(&claims))).await.0, 200);
    assert_eq!(issuer.jwks_fetches(), 1);
    assert_eq!(app.me(Auth::Bearer(&key1.token(&claims))).await.0, 200);
    assert_eq!(issuer.jwks_fetches(), 1, "keys are cached");

    // The provider rotates: key-2 is published, key-1 withdrawn.
    let key2 = TestKey::generate("key-2");
    issuer.publish(&[&key2]);
    assert_eq!(app.me(Auth::Bearer(&key2.token(&claims))).await.0, 200);
    assert_eq!(issuer.jwks_fetches(), 2, "an unknown kid refetches");
    // The withdrawn key no longer works once the new set is loaded.
    assert_eq!(app.me(Auth::Bearer(&key1.token(&claims))).await.0, 401);
}

/// `[auth.oidc] require_mfa` (the default) refuses tokens whose `amr`
/// proves no second factor; `profile_map` gives a directory group the
/// permissions and scope of a security profile instead of the role's
/// defaults; a deactivated directory user's token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_need_mfa_map_groups_to_profiles_and_stop_for_inactive_users() {
    let app = TestApp::start_with(true, |s| {
        s.oidc.profile_map = vec![insights_core::config::OidcProfileMapping {
            tenant: "contoso".into(),
            claim: "groups".into(),
            value: "grp-traders".into(),
            profile: "Traders desk".into(),
        }];
    })
    .await;
    let key = TestKey::generate("key-1");
    app.issuer.as_ref().unwrap().publish(&[&key]);
    let profile = insights_core::domain::SecurityProfile {
        id: insights_core::domain::SecurityProfileId::new(),
        tenant_id: app.tenant.id,
        name: "Traders desk".into(),
        role: insights_core::domain::Role::Supervisor,
        permissions: vec![insights_core::domain::Permission::Search],
        scope: insights_core::domain::VisibilityScope::OwnRecordings,
    };
    app.store
        .upsert_security_profile(app.tenant.id, &profile)
        .await
        .unwrap();
    let oid = uuid::Uuid::new_v4().to_string();
    let mut user = DirectoryUser {
        id: UserId::new(),
        tenant_id: app.tenant.id,
        directory_object_id: Some(oid.clone()),
        first_name: None,
        last_name: None,
        display_name: None,
        alias: None,
        email: None,
        upn: None,
        phone_numbers: vec![],
        sip_uri: None,
        tel_uri: None,
        groups: vec![],
        active: true,
        updated_at: now(),
    };
    app.store
        .upsert_directory_user(app.tenant.id, &user)
        .await
        .unwrap();
    let claims = |groups: &[&str], amr: &[&str]| {
        let mut c = oidc_claims(&iss(&app), app.tid, &["Insights.Supervisor"], &oid);
        c["groups"] = json!(groups);
        c["amr"] = json!(amr);
        c
    };

    // Password only: refused.
    let t = key.token(&claims(&[], &["pwd"]));
    assert_eq!(code_of(&app, &t).await, (401, "mfa-required".into()));
    // A supervisor outside the mapped group: the role's defaults.
    let t = key.token(&claims(&["grp-other"], &["pwd", "otp"]));
    let (status, me) = app.me(Auth::Bearer(&t)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["scope"], json!({"type": "all"}));
    // In the mapped group: the profile's permissions and scope only.
    let t = key.token(&claims(&["grp-traders"], &["pwd", "mfa"]));
    let (status, me) = app.me(Auth::Bearer(&t)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["permissions"], json!(["search"]));
    assert_eq!(me["scope"], json!({"type": "own-recordings"}));
    assert_eq!(me["security_profile_id"], profile.id.to_string());
    // Deactivated in the directory: refused.
    user.active = false;
    app.store
        .upsert_directory_user(app.tenant.id, &user)
        .await
        .unwrap();
    assert_eq!(
        code_of(&app, &t).await,
        (401, "directory-user-inactive".into())
    );
}
