//! Issue 19 §4 through `insights serve`: administrators reset a password
//! or a second factor (audited, the account signed out everywhere; an
//! administrator's account only with a second administrator's approval,
//! whose pending change never shows the password); TOTP codes typed with
//! a space; a reused code answered as such; the organisation's name in
//! any case; a partial settings update naming the missing field.

use serde_json::{Value, json};

use super::accounts::{self, Api, PASSWORD};
use super::serve;

impl Api {
    fn login(&self, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/api/auth/login", self.base))
            .json(&body)
            .send()
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().unwrap_or(Value::Null))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits for the next 30 s step (the current one's code was used).
fn next_step() {
    std::thread::sleep(std::time::Duration::from_secs(31 - unix_now() % 30));
}

/// Waits until the 30 s step has at least 10 s left.
fn fresh_step() {
    let into = unix_now() % 30;
    if into >= 20 {
        std::thread::sleep(std::time::Duration::from_secs(31 - into));
    }
}

#[test]
fn admins_reset_passwords_and_second_factors_and_sign_in_is_forgiving_but_exact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = super::insights(
        dir.path(),
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "admin",
            "tenant",
            "add",
            "contoso",
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success());
    let server = serve(dir.path(), &data);
    let api = Api {
        base: server.base.clone(),
        http: reqwest::blocking::Client::new(),
    };
    let new = |email: &str, role: &str| {
        accounts::sign_in_new_user(
            dir.path(),
            &data,
            &server.base,
            Some("contoso"),
            email,
            role,
        )
    };
    let admin = new("admin@contoso.com", "tenant-admin");
    let admin2 = new("admin2@contoso.com", "tenant-admin");
    let admin3 = new("admin3@contoso.com", "tenant-admin");
    let officer = new("officer@contoso.com", "compliance-officer");

    // The organisation in capitals, the code with a space: signed in. The
    // same code again: refused as reused (not as wrong credentials).
    fresh_step();
    let seed = officer.totp_seed.clone().unwrap();
    let code = accounts::code(&seed);
    let body = json!({"tenant": " CONTOSO ", "email": "Officer@Contoso.com",
        "password": PASSWORD, "totp": format!("{} {}", &code[..3], &code[3..])});
    let (s, v) = api.login(body.clone());
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "signed-in", "{v}");
    let (s, v) = api.login(body);
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("totp-code-reused")),
        "{v}"
    );
    assert!(v["detail"].as_str().unwrap().contains("next code"), "{v}");
    let (s, v) = api.login(json!({"tenant": "contoso", "email": "officer@contoso.com",
        "password": "not the password at all", "totp": code}));
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("invalid-credentials")),
        "{v}"
    );

    // A partial settings update names what is missing.
    let (s, v) = api.call(
        &admin,
        "PUT",
        "/api/settings",
        Some(
            json!({"cloud_ai_enabled": false, "media_deletion_waiver": false,
            "require_access_reason": false}),
        ),
    );
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid-body")), "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("`four_eyes_playback`"),
        "{v}"
    );

    // Who may reset whom.
    let (s, v) = api.call(
        &officer,
        "POST",
        &format!("/api/users/{}/reset-second-factor", admin2.account_id),
        None,
    );
    assert_eq!(s, 403, "{v}");
    let (s, v) = api.call(
        &admin,
        "POST",
        &format!("/api/users/{}/reset-second-factor", admin.account_id),
        None,
    );
    assert_eq!((s, v["code"].as_str()), (409, Some("own-account")), "{v}");
    let (s, v) = api.call(
        &admin,
        "POST",
        &format!("/api/users/{}/reset-password", officer.account_id),
        Some(json!({"password": "short"})),
    );
    assert_eq!((s, v["code"].as_str()), (400, Some("bad-password")), "{v}");

    // An officer's password: at once; the officer is signed out and
    // chooses a new password at the next sign-in (the TOTP stays).
    let reset_pw = "a reset password from the admin";
    let (s, v) = api.call(
        &admin,
        "POST",
        &format!("/api/users/{}/reset-password", officer.account_id),
        Some(json!({"password": reset_pw})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, _) = api.call(&officer, "GET", "/api/auth/me", None);
    assert_eq!(s, 401, "the officer's session ended");
    let (s, v) = api.login(json!({"tenant": "contoso", "email": "officer@contoso.com",
        "password": PASSWORD, "totp": accounts::code(&seed)}));
    assert_eq!(s, 401, "the old password is gone: {v}");
    next_step();
    let (s, v) = api.login(json!({"tenant": "contoso", "email": "officer@contoso.com",
        "password": reset_pw, "totp": accounts::code(&seed)}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "first-sign-in", "{v}");
    assert_eq!(v["password_change_required"], true, "{v}");
    assert_eq!(v["totp_enrolment_required"], false, "{v}");

    // Its second factor: enrolled again at the next sign-in.
    let (s, v) = api.call(
        &admin,
        "POST",
        &format!("/api/users/{}/reset-second-factor", officer.account_id),
        None,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["totp_enrolled"], false, "{v}");
    let (s, v) = api.login(json!({"tenant": "contoso", "email": "officer@contoso.com",
        "password": reset_pw}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["totp_enrolment_required"], true, "{v}");
    assert!(v["totp_uri"].as_str().unwrap().starts_with("otpauth://"));

    // An administrator's password: only asked for; the change never
    // shows the password; neither the requester nor the account's owner
    // decides it; a third administrator approves and it applies.
    let (s, change) = api.call(
        &admin,
        "POST",
        &format!("/api/users/{}/reset-password", admin2.account_id),
        Some(json!({"password": reset_pw})),
    );
    assert_eq!(s, 202, "{change}");
    assert_eq!(change["kind"], "account-password-reset", "{change}");
    assert_eq!(change["payload"], json!({}), "{change}");
    let (s, list) = api.call(
        &admin3,
        "GET",
        "/api/governance-changes?status=pending",
        None,
    );
    assert_eq!(s, 200);
    assert!(!list.to_string().contains("argon2"), "{list}");
    let id = change["id"].as_str().unwrap();
    let (s, v) = api.call(&admin2, "GET", "/api/auth/me", None);
    assert_eq!(s, 200, "nothing happened yet: {v}");
    let (s, v) = api.call(
        &admin,
        "POST",
        &format!("/api/governance-changes/{id}/approve"),
        None,
    );
    assert_eq!((s, v["code"].as_str()), (403, Some("own-change")), "{v}");
    let (s, v) = api.call(
        &admin2,
        "POST",
        &format!("/api/governance-changes/{id}/approve"),
        None,
    );
    assert_eq!((s, v["code"].as_str()), (409, Some("own-account")), "{v}");
    let (s, v) = api.call(
        &admin3,
        "POST",
        &format!("/api/governance-changes/{id}/approve"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["payload"], json!({}), "{v}");
    let (s, _) = api.call(&admin2, "GET", "/api/auth/me", None);
    assert_eq!(s, 401, "the administrator's session ended");
    fresh_step();
    let seed2 = admin2.totp_seed.clone().unwrap();
    let (s, v) = api.login(json!({"tenant": "contoso", "email": "admin2@contoso.com",
        "password": reset_pw, "totp": accounts::code(&seed2)}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["password_change_required"], true, "{v}");

    // The same for a second factor; rejected, nothing changes.
    let (s, change) = api.call(
        &admin3,
        "POST",
        &format!("/api/users/{}/reset-second-factor", admin.account_id),
        None,
    );
    assert_eq!(s, 202, "{change}");
    let id = change["id"].as_str().unwrap();
    let (s, v) = api.call(
        &admin,
        "POST",
        &format!("/api/governance-changes/{id}/reject"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = api.call(&admin, "GET", "/api/auth/me", None);
    assert_eq!(s, 200, "{v}");

    // A DPO (gdpr-actions, which administrators do not hold): asked for
    // by one administrator, created when a second approves; its owner's
    // first sign-in then works with the initial password.
    let initial = "the DPO's initial password";
    let (s, change) = api.call(
        &admin,
        "POST",
        "/api/users",
        Some(json!({"email": "Zoë.DPO@contoso.com", "password": initial, "role": "dpo"})),
    );
    assert_eq!(s, 202, "{change}");
    assert_eq!(change["kind"], "account-create", "{change}");
    assert_eq!(
        change["payload"]["email"], "zoë.dpo@contoso.com",
        "{change}"
    );
    assert_eq!(change["payload"]["role"], "dpo", "{change}");
    assert!(change["payload"].get("password_hash").is_none(), "{change}");
    let (s, v) = api.login(json!({"tenant": "contoso", "email": "zoë.dpo@contoso.com",
        "password": initial}));
    assert_eq!(s, 401, "no account before the approval: {v}");
    let (s, v) = api.call(
        &admin3,
        "POST",
        &format!(
            "/api/governance-changes/{}/approve",
            change["id"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(s, 200, "{v}");
    let dpo = accounts::first_sign_in_with(
        &server.base,
        Some("Contoso"),
        "zoë.dpo@contoso.com",
        initial,
    );
    let (s, me) = api.call(&dpo, "GET", "/api/auth/me", None);
    assert_eq!((s, me["role"].as_str()), (200, Some("dpo")), "{me}");

    // Everything is in the audit trail, by account id, never a password.
    let (s, audit) = api.call(
        &admin3,
        "GET",
        "/api/audit?action=user-change&limit=200",
        None,
    );
    assert_eq!(s, 200, "{audit}");
    let text = audit.to_string();
    assert!(text.contains("password-reset"), "{text}");
    assert!(text.contains("second-factor-reset"), "{text}");
    assert!(
        !text.contains(reset_pw) && !text.contains("argon2"),
        "{text}"
    );
    assert!(!text.contains(initial), "{text}");
    drop(server);
}
