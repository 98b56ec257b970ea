//! First run through `insights serve`: with no tenant, serve prints a
//! one-time setup link whose page creates the first tenant and its
//! administrator, who then enrols TOTP at the first sign-in. With a
//! tenant, no link.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Server, insights};

/// `insights serve` on a fresh port; returns the server and the setup
/// link it printed, if any.
fn serve_first_run(cwd: &std::path::Path, data: &std::path::Path) -> (Server, Option<String>) {
    let mut child = insights(
        cwd,
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut base = None;
    let mut link = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(if base.is_some() { 2 } else { 30 })) {
        if let Some(url) = line.strip_prefix("insights: listening on ") {
            base = Some(url.to_owned());
        } else if line.starts_with("insights: no tenant yet") {
            link = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(str::to_owned);
            break;
        }
    }
    let base = base.expect("server did not report its address");
    (Server { child, base }, link)
}

#[test]
fn a_fresh_installation_prints_a_one_time_setup_link_for_the_first_tenant_and_admin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, link) = serve_first_run(dir.path(), &data);
    let link = link.expect("a setup link on a fresh installation");
    let (page, token) = link.split_once('#').unwrap();
    assert_eq!(page, format!("{}/setup", server.base));
    let http = reqwest::blocking::Client::new();
    let res = http.get(page).send().unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().unwrap().contains("setup.js"));

    let setup = |body: Value| {
        let res = http
            .post(format!("{}/api/setup", server.base))
            .json(&body)
            .send()
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json::<Value>().unwrap_or(Value::Null))
    };
    let body = |token: &str| {
        json!({"token": token, "tenant": "contoso", "email": "Boss@Contoso.com",
            "password": "the first admin's passphrase"})
    };
    assert_eq!(setup(body("not-the-token")).0, 404);
    // A bad password does not spend the token.
    let mut short = body(token);
    short["password"] = json!("short");
    assert_eq!(setup(short).0, 400);
    let (s, v) = setup(body(token));
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["tenant"], "contoso");
    // Once only.
    assert_eq!(setup(body(token)).0, 404);

    // The administrator signs in: TOTP enrolment, no password change.
    let res = http
        .post(format!("{}/api/auth/login", server.base))
        .json(&json!({"tenant": "contoso", "email": "boss@contoso.com",
            "password": "the first admin's passphrase"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let c: Value = res.json().unwrap();
    assert_eq!(c["status"], "first-sign-in");
    assert_eq!(c["totp_enrolment_required"], true);
    assert_eq!(c["password_change_required"], false);
    let seed = insights_api::auth::totp::seed_of_uri(c["totp_uri"].as_str().unwrap()).unwrap();
    let res = http
        .post(format!("{}/api/auth/first-sign-in", server.base))
        .json(&json!({"challenge": c["challenge"], "totp": super::accounts::previous_code(&seed)}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().unwrap();
    let me: Value = http
        .get(format!("{}/api/auth/me", server.base))
        .bearer_auth(v["token"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["role"], "tenant-admin");
    drop(server);

    // The tenant is provisioned like `admin tenant add` does it.
    let o = insights(
        dir.path(),
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "admin",
            "tenant",
            "list",
        ],
    )
    .output()
    .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("contoso"));
    // With a tenant, serve prints no link, and the endpoint is closed.
    let (server, link) = serve_first_run(dir.path(), &data);
    assert!(link.is_none());
    assert_eq!(
        http.post(format!("{}/api/setup", server.base))
            .json(&body(token))
            .send()
            .unwrap()
            .status(),
        404
    );
}
