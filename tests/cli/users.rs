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

#[test]
fn admin_user_add_enrols_totp_and_the_account_can_log_in() {
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
    let uri = out
        .lines()
        .find(|l| l.starts_with("otpauth://totp/"))
        .unwrap_or_else(|| panic!("no otpauth URI in {out}"));
    let seed = insights_api::auth::totp::seed_of_uri(uri).unwrap();
    // Neither the password nor the seed is anywhere in the database files.
    for entry in std::fs::read_dir(&data).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            for secret in [PW.as_bytes(), seed.as_bytes()] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret),
                    "a secret is in {}",
                    p.display()
                );
            }
        }
    }

    // A user: no TOTP; and the list shows both.
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
            "ann@contoso.com",
            "--role",
            "user",
        ],
        &format!("{PW}\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("otpauth://"));
    let o = run(
        dir.path(),
        &data,
        &["admin", "user", "list", "--tenant", "contoso", "--json"],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["email"], "admin@contoso.com");
    assert_eq!(rows[0]["role"], "tenant-admin");
    assert_eq!(rows[0]["totp"], true);
    assert_eq!(rows[1]["role"], "user");
    assert_eq!(rows[1]["totp"], false);
    let o = run(
        dir.path(),
        &data,
        &["admin", "user", "list", "--tenant", "contoso"],
        "",
    );
    assert!(stdout(&o).contains("admin@contoso.com"));

    // Log in against the real server with password and TOTP code.
    let server = serve(dir.path(), &data);
    let now = u64::try_from(chrono_now()).unwrap();
    let code = insights_api::auth::totp::code_at(&seed, now).unwrap();
    let http = reqwest::blocking::Client::new();
    let res = http
        .post(format!("{}/api/auth/login", server.base))
        .json(&serde_json::json!({
            "tenant": "contoso", "email": "admin@contoso.com", "password": PW, "totp": code,
        }))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<serde_json::Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me: serde_json::Value = http
        .get(format!("{}/api/auth/me", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["role"], "tenant-admin");
    // The API token key was created private.
    let key = data.join("keys").join("api-token.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap())
        .unwrap()
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

    // Platform operators: no tenant, TOTP enrolled, listed apart.
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
    assert!(stdout(&o).contains("otpauth://totp/"));
    let o = run(dir.path(), &data, &["admin", "user", "list", "--json"], "");
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("ops@vendor.example") && out.contains("\"tenant_id\":null"));
}
