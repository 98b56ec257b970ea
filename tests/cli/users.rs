//! `insights admin user add|list` through the real binary, and a login
//! with the account against `insights serve`.

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use super::{insights, serve};

/// Runs `insights --data-dir D ARGS` with `stdin` piped in.
fn run(cwd: &Path, data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut full = vec!["--data-dir", data.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut child = insights(cwd, &full)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that refuses its arguments exits without reading stdin;
    // on a busy machine it is gone before we write, which is not an error.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("writing to the command's stdin: {e}"),
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const PW: &str = "a long enough passphrase";
const NEW_PW: &str = "my very own passphrase";

#[test]
fn admin_user_add_then_the_user_enrols_totp_and_chooses_a_password_at_first_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = run(
        dir.path(),
        &data,
        &["admin", "tenant", "add", "contoso"],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let o = run(
        dir.path(),
        &data,
        &[
            "admin",
            "user",
            "add",
            "--tenant",
            "contoso",
            "--email",
            "Admin@Contoso.com",
            "--role",
            "tenant-admin",
        ],
        &format!("{PW}\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("(tenant-admin) in tenant contoso"), "{out}");
    assert!(out.contains("first sign-in"), "{out}");
    assert!(
        !out.contains("otpauth://"),
        "whoever creates the account never sees a seed"
    );

    let o = run(
        dir.path(),
        &data,
        &["admin", "user", "list", "--tenant", "contoso", "--json"],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let row: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(row["email"], "admin@contoso.com");
    assert_eq!(row["role"], "tenant-admin");
    assert_eq!(row["totp"], false);
    assert_eq!(row["first_sign_in_pending"], true);

    let server = serve(dir.path(), &data);
    let http = reqwest::blocking::Client::new();
    let login = |body: serde_json::Value| {
        http.post(format!("{}/api/auth/login", server.base))
            .json(&body)
            .send()
            .unwrap()
    };
    // The initial password opens no session: it answers a challenge with
    // a TOTP seed for the user's own app.
    let res = login(serde_json::json!({
        "tenant": "contoso", "email": "admin@contoso.com", "password": PW,
    }));
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_none(), "no session yet");
    let c: serde_json::Value = res.json().unwrap();
    assert_eq!(c["status"], "first-sign-in");
    assert_eq!(c["totp_enrolment_required"], true);
    assert_eq!(c["password_change_required"], true);
    assert!(c.get("token").is_none());
    let seed = insights_api::auth::totp::seed_of_uri(c["totp_uri"].as_str().unwrap()).unwrap();
    assert_eq!(c["totp_secret"], seed.as_str());
    let first = |body: serde_json::Value| {
        http.post(format!("{}/api/auth/first-sign-in", server.base))
            .json(&body)
            .send()
            .unwrap()
    };
    let code = super::accounts::previous_code(&seed);
    // The old password again, a short one, or a wrong code: refused.
    let r =
        first(serde_json::json!({"challenge": c["challenge"], "new_password": PW, "totp": code}));
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["code"],
        "password-reused"
    );
    let r = first(
        serde_json::json!({"challenge": c["challenge"], "new_password": "short", "totp": code}),
    );
    assert_eq!(r.status(), 400);
    let r = first(serde_json::json!({"challenge": "forged", "new_password": NEW_PW, "totp": code}));
    assert_eq!(r.status(), 401);
    let res = first(
        serde_json::json!({"challenge": c["challenge"], "new_password": NEW_PW, "totp": code}),
    );
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_some());
    let v: serde_json::Value = res.json().unwrap();
    let codes: Vec<String> = v["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let token = v["token"].as_str().unwrap().to_owned();
    let me: serde_json::Value = http
        .get(format!("{}/api/auth/me", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["role"], "tenant-admin");
    // The challenge is spent.
    let r = first(
        serde_json::json!({"challenge": c["challenge"], "new_password": "yet another passphrase", "totp": code}),
    );
    assert_eq!(r.status(), 401);

    // From now on: the user's own password and a code; the initial
    // password no longer works.
    let r = login(serde_json::json!({
        "tenant": "contoso", "email": "admin@contoso.com", "password": PW,
        "totp": super::accounts::code(&seed),
    }));
    assert_eq!(r.status(), 401);
    let r = login(serde_json::json!({
        "tenant": "contoso", "email": "admin@contoso.com", "password": NEW_PW,
    }));
    assert_eq!(r.status(), 401, "a code is required");
    let r = login(serde_json::json!({
        "tenant": "contoso", "email": "admin@contoso.com", "password": NEW_PW,
        "totp": super::accounts::code(&seed),
    }));
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["status"],
        "signed-in"
    );
    // A recovery code works once, in place of a code.
    let with_recovery = serde_json::json!({
        "tenant": "contoso", "email": "admin@contoso.com", "password": NEW_PW,
        "recovery_code": codes[3].to_uppercase(),
    });
    assert_eq!(login(with_recovery.clone()).status(), 200);
    assert_eq!(login(with_recovery).status(), 401);

    // Neither password, the seed nor a recovery code is anywhere in the
    // database files.
    drop(server);
    let mut secrets: Vec<&str> = vec![PW, NEW_PW, seed.as_str()];
    secrets.extend(codes.iter().map(String::as_str));
    for entry in std::fs::read_dir(&data).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            for secret in &secrets {
                let secret = secret.as_bytes();
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret),
                    "a secret is in {}",
                    p.display()
                );
            }
        }
    }
    let o = run(
        dir.path(),
        &data,
        &["admin", "user", "list", "--tenant", "contoso", "--json"],
        "",
    );
    let row: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(row["totp"], true);
    assert_eq!(row["first_sign_in_pending"], false);
    // The API token key was created private.
    let key = data.join("keys").join("api-token.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn admin_user_add_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(
        run(
            dir.path(),
            &data,
            &["admin", "tenant", "add", "contoso"],
            ""
        )
        .status
        .success()
    );
    let add = |args: &[&str], stdin: &str| {
        let mut full = vec!["admin", "user", "add"];
        full.extend_from_slice(args);
        run(dir.path(), &data, &full, stdin)
    };
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &[
                "--tenant",
                "contoso",
                "--email",
                "a@contoso.com",
                "--role",
                "user",
            ],
            "",
            "no password",
        ),
        (
            &[
                "--tenant",
                "contoso",
                "--email",
                "a@contoso.com",
                "--role",
                "user",
            ],
            "short\n",
            "12 to 1024",
        ),
        (
            &[
                "--tenant",
                "contoso",
                "--email",
                "not-an-email",
                "--role",
                "user",
            ],
            "a long enough passphrase\n",
            "email",
        ),
        (
            &[
                "--tenant",
                "contoso",
                "--email",
                "o@x.com",
                "--role",
                "platform-operator",
            ],
            "a long enough passphrase\n",
            "no tenant",
        ),
        (
            &["--email", "u@x.com", "--role", "user"],
            "a long enough passphrase\n",
            "no tenant",
        ),
        (
            &["--tenant", "nope", "--email", "u@x.com", "--role", "user"],
            "a long enough passphrase\n",
            "no tenant `nope`",
        ),
        (
            &[
                "--tenant", "contoso", "--email", "u@x.com", "--role", "boss",
            ],
            "a long enough passphrase\n",
            "unknown role",
        ),
    ];
    for (args, stdin, want) in cases {
        let o = add(args, stdin);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(
            !stderr(&o).contains("passphrase"),
            "the password is never echoed"
        );
    }
    let ok = [
        "--tenant",
        "contoso",
        "--email",
        "a@contoso.com",
        "--role",
        "user",
    ];
    assert!(add(&ok, "a long enough passphrase\n").status.success());
    let o = add(
        &[
            "--tenant",
            "contoso",
            "--email",
            "A@CONTOSO.com",
            "--role",
            "dpo",
        ],
        "a long enough passphrase\n",
    );
    assert!(stderr(&o).contains("exists already"), "{}", stderr(&o));

    // Platform operators: no tenant, listed apart (TOTP at first sign-in).
    let o = add(
        &[
            "--email",
            "ops@vendor.example",
            "--role",
            "platform-operator",
        ],
        "a long enough passphrase\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("otpauth://"));
    let o = run(dir.path(), &data, &["admin", "user", "list", "--json"], "");
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("ops@vendor.example") && out.contains("\"tenant_id\":null"));
}
