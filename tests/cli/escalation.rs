//! Tenant roles cannot escalate (no own profile change, no editing the
//! profile one holds, no granting what one does not hold), and TOTP
//! follows what an account can see, not its role's name: both through
//! `insights serve`.

use serde_json::{Value, json};

use super::accounts::{self, Api, PASSWORD, Session};
use super::serve;

impl Api {
    fn profile(&self, admin: &Session, name: &str, permissions: &[&str]) -> String {
        let (s, v) = self.call(
            admin,
            "POST",
            "/api/security-profiles",
            Some(
                json!({"name": name, "role": "supervisor", "permissions": permissions,
                "scope": {"type": "all"}}),
            ),
        );
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, super::Server) {
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
    (dir, data, server)
}

#[test]
fn user_managers_cannot_escalate_their_own_or_anyone_elses_permissions() {
    let (dir, data, server) = setup();
    let api = Api {
        base: server.base.clone(),
        http: reqwest::blocking::Client::new(),
    };
    let admin = accounts::sign_in_new_user(
        dir.path(),
        &data,
        &server.base,
        Some("contoso"),
        "admin@contoso.com",
        "tenant-admin",
    );
    let managers = api.profile(&admin, "User managers", &["manage-users", "search"]);
    let everything = api.profile(&admin, "Everything", &["manage-users", "search", "play"]);
    let manager = accounts::sign_in_new_user_with(
        dir.path(),
        &data,
        &[],
        &server.base,
        Some("contoso"),
        "manager@contoso.com",
        "supervisor",
        &["--security-profile", &managers],
    );
    let other = accounts::sign_in_new_user(
        dir.path(),
        &data,
        &server.base,
        Some("contoso"),
        "other@contoso.com",
        "user",
    );
    let denied = |(s, v): (u16, Value), want: (u16, &str)| {
        assert_eq!((s, v["code"].as_str().unwrap_or_default()), want, "{v}");
    };

    // Accounts with permissions the manager lacks: refused.
    for role in ["tenant-admin", "supervisor", "dpo"] {
        denied(
            api.call(
                &manager,
                "POST",
                "/api/users",
                Some(json!({"email": format!("{role}@contoso.com"),
                    "password": "a long enough passphrase", "role": role})),
            ),
            (403, "permission-not-held"),
        );
    }
    // ... but within what it holds, fine.
    let (s, v) = api.call(
        &manager,
        "POST",
        "/api/users",
        Some(
            json!({"email": "helper@contoso.com", "password": "a long enough passphrase",
            "role": "supervisor", "security_profile_id": managers}),
        ),
    );
    assert_eq!(s, 201, "{v}");
    // Profiles granting more than the manager holds: refused.
    denied(
        api.call(
            &manager,
            "POST",
            "/api/security-profiles",
            Some(
                json!({"name": "Listeners", "role": "supervisor", "permissions": ["play"],
                "scope": {"type": "all"}}),
            ),
        ),
        (403, "permission-not-held"),
    );
    // Its own profile cannot be edited, not even to the same permissions.
    denied(
        api.call(
            &manager,
            "PUT",
            &format!("/api/security-profiles/{managers}"),
            Some(json!({"name": "User managers", "role": "supervisor",
                "permissions": ["manage-users", "search"], "scope": {"type": "all"}})),
        ),
        (409, "own-profile"),
    );
    // Nor its own account's profile.
    denied(
        api.call(
            &manager,
            "PUT",
            &format!("/api/users/{}", manager.account_id),
            Some(json!({"security_profile_id": everything})),
        ),
        (409, "own-account"),
    );
    // Nor can it hand another account more than it holds.
    denied(
        api.call(
            &manager,
            "PUT",
            &format!("/api/users/{}", other.account_id),
            Some(json!({"security_profile_id": everything})),
        ),
        (403, "permission-not-held"),
    );
    denied(
        api.call(
            &manager,
            "PUT",
            &format!("/api/users/{}", other.account_id),
            Some(json!({"role": "tenant-admin"})),
        ),
        (403, "permission-not-held"),
    );
    // The manager's permissions are unchanged.
    let (_, me) = api.call(&manager, "GET", "/api/auth/me", None);
    assert_eq!(me["permissions"], json!(["search", "manage-users"]));
    // The admin holds all of them and may.
    let (s, v) = api.call(
        &admin,
        "PUT",
        &format!("/api/users/{}", other.account_id),
        Some(json!({"security_profile_id": everything})),
    );
    assert_eq!(s, 200, "{v}");
}

#[test]
fn totp_follows_what_an_account_can_see_not_its_role_name() {
    let (dir, data, server) = setup();
    let api = Api {
        base: server.base.clone(),
        http: reqwest::blocking::Client::new(),
    };
    let admin = accounts::sign_in_new_user(
        dir.path(),
        &data,
        &server.base,
        Some("contoso"),
        "admin@contoso.com",
        "tenant-admin",
    );
    let settings_only = api.profile(&admin, "Audit readers", &["view-audit"]);
    let listeners = api.profile(&admin, "Listeners", &["play"]);
    // A supervisor (not in `auth.mfa_roles`) whose profile reveals no
    // content: no TOTP to enrol.
    let reader = accounts::sign_in_new_user_with(
        dir.path(),
        &data,
        &[],
        &server.base,
        Some("contoso"),
        "reader@contoso.com",
        "supervisor",
        &["--security-profile", &settings_only],
    );
    assert!(reader.totp_seed.is_none());
    let login = |body: Value| {
        api.http
            .post(format!("{}/api/auth/login", server.base))
            .json(&body)
            .send()
            .unwrap()
    };
    let creds = json!({"tenant": "contoso", "email": "reader@contoso.com", "password": PASSWORD});
    assert_eq!(login(creds.clone()).status(), 200);

    // Given a permission that plays media, the account's session ends,
    // and the next sign-in enrols TOTP first.
    let (s, _) = api.call(
        &admin,
        "PUT",
        &format!("/api/users/{}", reader.account_id),
        Some(json!({"security_profile_id": listeners})),
    );
    assert_eq!(s, 200);
    let (s, v) = api.call(&reader, "GET", "/api/auth/me", None);
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("mfa-enrolment-required"))
    );
    let res = login(creds.clone());
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_none());
    let c: Value = res.json().unwrap();
    assert_eq!(c["status"], "first-sign-in");
    assert_eq!(c["totp_enrolment_required"], true);
    assert_eq!(c["password_change_required"], false);
    let seed = insights_api::auth::totp::seed_of_uri(c["totp_uri"].as_str().unwrap()).unwrap();
    let res = api
        .http
        .post(format!("{}/api/auth/first-sign-in", server.base))
        .json(&json!({"challenge": c["challenge"], "totp": accounts::previous_code(&seed)}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().unwrap();
    let me: Value = api
        .http
        .get(format!("{}/api/auth/me", server.base))
        .bearer_auth(v["token"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["permissions"], json!(["play"]));
    // From now on the code is required.
    assert_eq!(login(creds.clone()).status(), 401);
    let mut with_code = creds;
    with_code["totp"] = json!(accounts::code(&seed));
    assert_eq!(login(with_code).status(), 200);
}
