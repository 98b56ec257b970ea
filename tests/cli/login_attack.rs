//! Logins under parallel attack, through `insights serve`: attempts are
//! counted before any password is checked, so of 50 parallel wrong
//! guesses exactly the lockout threshold (5) are evaluated and a correct
//! password is refused while locked; unknown emails answer exactly like
//! real accounts, across several `serve` processes on one PostgreSQL;
//! argon2 work is bounded (429 with Retry-After when every permit is busy).

use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};

use super::accounts::{self, INITIAL_PASSWORD, PASSWORD};
use super::{Server, insights, start_serve};

fn serve_env(cwd: &Path, data: &Path, env: &[(&str, &str)]) -> Server {
    start_serve(
        insights(
            cwd,
            &[
                "serve",
                "--data-dir",
                data.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
        )
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stderr(Stdio::inherit()),
    )
}

fn tenant_add(cwd: &Path, data: &Path, env: &[(&str, &str)]) {
    let o = insights(
        cwd,
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "admin",
            "tenant",
            "add",
            "contoso",
        ],
    )
    .envs(env.iter().map(|(k, v)| (*k, *v)))
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// What one login answered: status, `Retry-After`, problem code and detail.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    code: String,
    detail: String,
}

fn login(base: &str, body: &Value) -> Answer {
    let res = reqwest::blocking::Client::new()
        .post(format!("{base}/api/auth/login"))
        .json(body)
        .send()
        .unwrap();
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let v: Value = res.json().unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        code: v["code"].as_str().unwrap_or_default().to_owned(),
        detail: v["detail"].as_str().unwrap_or_default().to_owned(),
    }
}

/// `n` logins at once, spread over `bases` in turn.
fn parallel(bases: &[&str], n: usize, body: &Value) -> Vec<Answer> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let base = bases[i % bases.len()].to_owned();
            let body = body.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                login(&base, &body)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn count(answers: &[Answer], status: u16) -> usize {
    answers.iter().filter(|a| a.status == status).count()
}

fn creds(email: &str, password: &str) -> Value {
    json!({"tenant": "contoso", "email": email, "password": password})
}

/// Ample password-check permits, so only the lockout decides.
const AMPLE: &[(&str, &str)] = &[("INSIGHTS_AUTH__MAX_CONCURRENT_PASSWORD_CHECKS", "64")];

#[test]
fn fifty_parallel_wrong_guesses_evaluate_five_and_lock_out_the_right_password() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tenant_add(dir.path(), &data, &[]);
    let server = serve_env(dir.path(), &data, AMPLE);
    let base = server.base.as_str();
    let admin = accounts::sign_in_new_user(
        dir.path(),
        &data,
        base,
        Some("contoso"),
        "admin@contoso.com",
        "tenant-admin",
    );
    let victim = accounts::sign_in_new_user(
        dir.path(),
        &data,
        base,
        Some("contoso"),
        "victim@contoso.com",
        "supervisor",
    );

    let answers = parallel(
        &[base],
        50,
        &creds("victim@contoso.com", "wrong guess number one"),
    );
    assert_eq!(count(&answers, 401), 5, "{answers:?}");
    assert_eq!(count(&answers, 423), 45, "{answers:?}");
    // The right password and a right code: still locked.
    let mut right = creds("victim@contoso.com", PASSWORD);
    right["totp"] = json!(accounts::code(victim.totp_seed.as_deref().unwrap()));
    let locked = login(base, &right);
    assert_eq!(
        (locked.status, locked.code.as_str()),
        (423, "account-locked")
    );
    assert!(
        (890..=900).contains(&locked.retry_after.unwrap()),
        "{locked:?}"
    );

    // An email without an account: the very same answers.
    let ghost = parallel(
        &[base],
        50,
        &creds("ghost@contoso.com", "wrong guess number one"),
    );
    assert_eq!(count(&ghost, 401), 5, "{ghost:?}");
    assert_eq!(count(&ghost, 423), 45, "{ghost:?}");
    let ghost_locked = login(base, &creds("ghost@contoso.com", PASSWORD));
    assert_eq!(
        (
            ghost_locked.status,
            &ghost_locked.code,
            &ghost_locked.detail
        ),
        (locked.status, &locked.code, &locked.detail)
    );

    // The audit trail shows exactly five evaluated guesses per email.
    let events: Value = reqwest::blocking::Client::new()
        .get(format!("{base}/api/audit?limit=1000"))
        .bearer_auth(&admin.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let failed = |actor: &str, reason: &str| {
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["action"] == "login-failed"
                    && e["actor"] == actor
                    && e["details"]["reason"] == reason
            })
            .count()
    };
    assert_eq!(failed(&victim.account_id, "wrong-password"), 5);
    assert_eq!(failed("unknown", "unknown-account"), 5);
    assert_eq!(failed(&victim.account_id, "account-locked"), 46);
}

#[test]
fn busy_password_checks_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tenant_add(dir.path(), &data, &[]);
    let server = serve_env(
        dir.path(),
        &data,
        &[
            ("INSIGHTS_AUTH__MAX_CONCURRENT_PASSWORD_CHECKS", "1"),
            ("INSIGHTS_AUTH__ADDRESS_MAX_FAILURES", "1000"),
        ],
    );
    let n = 40;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let base = server.base.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                login(
                    &base,
                    &creds(&format!("nobody{i}@contoso.com"), "wrong password!"),
                )
            })
        })
        .collect();
    let answers: Vec<Answer> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let busy: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(!busy.is_empty(), "{answers:?}");
    assert!(
        busy.iter()
            .all(|a| a.retry_after == Some(1) && a.code == "too-many-attempts")
    );
    assert_eq!(busy.len() + count(&answers, 401), n, "{answers:?}");
}

#[test]
fn lockout_holds_across_serve_processes_on_one_postgres_for_real_and_unknown_emails() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    let db: &[(&str, &str)] = &[("INSIGHTS_DATABASE__URL", url.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    tenant_add(dir.path(), &a, db);
    accounts::add_user(
        dir.path(),
        &a,
        db,
        Some("contoso"),
        "victim@contoso.com",
        "supervisor",
        &[],
    );
    let mut env = db.to_vec();
    env.extend_from_slice(AMPLE);
    let one = serve_env(dir.path(), &a, &env);
    let two = serve_env(dir.path(), &b, &env);
    let bases = [one.base.as_str(), two.base.as_str()];

    let mut last = Vec::new();
    for email in ["victim@contoso.com", "ghost@contoso.com"] {
        let answers = parallel(&bases, 50, &creds(email, "wrong guess number one"));
        assert_eq!(count(&answers, 401), 5, "{email}: {answers:?}");
        assert_eq!(count(&answers, 423), 45, "{email}: {answers:?}");
        // Locked on both processes, even for the right password.
        for base in bases {
            let a = login(base, &creds(email, INITIAL_PASSWORD));
            assert_eq!(a.status, 423, "{email}: {a:?}");
            last.push(a);
        }
    }
    for a in &last[1..] {
        assert_eq!(
            (a.status, &a.code, &a.detail),
            (last[0].status, &last[0].code, &last[0].detail)
        );
        assert!(
            a.retry_after
                .unwrap()
                .abs_diff(last[0].retry_after.unwrap())
                <= 5
        );
    }
}
