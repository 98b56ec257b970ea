//! `insights audit verify`: a tenant's chain is written through the store
//! API, then tampered with below the application, the way an attacker
//! with access to the database would (SQLite: drop the triggers that
//! refuse UPDATE/DELETE; PostgreSQL: the superuser, which the app role's
//! grants do not bind), and the command must say exactly where.

use std::path::Path;
use std::str::FromStr;

use insights_core::domain::*;
use insights_core::store::MetadataStore;
use insights_stores::metadata::postgres::PgStore;
use insights_stores::metadata::sqlite::SqliteStore;
use sqlx::Connection;
use tempfile::TempDir;

use crate::insights;

/// A tenant `acme` with `N` audit events in a fresh SQLite data dir.
const N: usize = 6;

struct Chain {
    tenant: Tenant,
    events: Vec<AuditEvent>,
}

impl Chain {
    fn head(&self) -> String {
        let last = self.events.last().unwrap();
        format!("head {} {}", last.seq, last.hash)
    }

    fn intact(&self) -> String {
        format!(
            "audit chain of tenant acme ({}): intact, {} events, {}\n",
            self.tenant.id,
            self.events.len(),
            self.head()
        )
    }

    /// The report's first line for `problems` problems in `events` rows.
    fn broken(&self, problems: usize, events: usize) -> String {
        format!(
            "audit chain of tenant acme ({}): BROKEN, {problems} problem{} in {events} events, recorded {}\n",
            self.tenant.id,
            if problems == 1 { "" } else { "s" },
            self.head()
        )
    }
}

async fn write_chain(store: &dyn MetadataStore) -> Chain {
    let tenant = store
        .create_tenant(NewTenant {
            name: "acme".into(),
            directory_tenant_id: None,
        })
        .await
        .unwrap();
    let rec = RecordingId::new();
    let actions = [
        AuditAction::TenantCreate,
        AuditAction::Login,
        AuditAction::Search,
        AuditAction::Play,
        AuditAction::Export,
        AuditAction::PolicyChange,
    ];
    let mut events = Vec::new();
    for (i, action) in actions.into_iter().enumerate() {
        let ev = store
            .append_audit(
                tenant.id,
                NewAuditEvent {
                    actor: format!("acc-{i}"),
                    action,
                    recording_id: (action == AuditAction::Play).then_some(rec),
                    target: None,
                    reason: Some(format!("case {i}")),
                    source: Some("127.0.0.1".into()),
                    details: serde_json::json!({ "i": i }),
                },
            )
            .await
            .unwrap();
        events.push(ev);
    }
    assert_eq!(events.len(), N);
    Chain { tenant, events }
}

/// A data dir whose default SQLite store holds the chain.
async fn sqlite_chain() -> (TempDir, Chain) {
    let data = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&sqlite_url(data.path()), 2)
        .await
        .unwrap();
    let chain = write_chain(&store).await;
    store.close().await;
    (data, chain)
}

fn sqlite_url(data: &Path) -> String {
    format!("sqlite://{}", data.join("insights.db").display())
}

/// Runs SQL on the SQLite file as an attacker would: first dropping the
/// triggers that keep `audit_events` append-only.
async fn tamper_sqlite(data: &Path, statements: &[&str]) {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&sqlite_url(data))
        .unwrap()
        .busy_timeout(std::time::Duration::from_secs(30));
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    // With the triggers in place the database itself refuses.
    let refused = sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
        .execute(&mut conn)
        .await;
    assert!(refused.is_err(), "the triggers refuse edits");
    for s in [
        "DROP TRIGGER audit_events_no_update",
        "DROP TRIGGER audit_events_no_delete",
    ]
    .iter()
    .chain(statements)
    {
        sqlx::query(sqlx::AssertSqlSafe(*s))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    conn.close().await.unwrap();
}

/// `insights audit verify --tenant acme` on `data` (plus `env`): exit
/// code and stdout.
fn verify(data: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let cwd = tempfile::tempdir().unwrap();
    let out = insights(
        cwd.path(),
        &[
            "audit",
            "verify",
            "--tenant",
            "acme",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    )
    .envs(env.iter().map(|(k, v)| (*k, *v)))
    .output()
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Tampers with a fresh chain and checks the exact report and exit code.
async fn sqlite_case(statements: &[&str], events_left: usize, problems: &[String]) {
    let (data, chain) = sqlite_chain().await;
    let (code, out, err) = verify(data.path(), &[]);
    assert_eq!((code, out.as_str()), (0, chain.intact().as_str()), "{err}");

    tamper_sqlite(data.path(), statements).await;
    let (code, out, err) = verify(data.path(), &[]);
    let mut want = chain.broken(problems.len(), events_left);
    for p in problems {
        want.push_str(p);
        want.push('\n');
    }
    assert_eq!(out, want, "stderr: {err}");
    assert_eq!(code, 1, "a broken chain fails the command");
    assert!(
        err.contains("the audit chain of tenant acme is broken"),
        "{err}"
    );
}

#[tokio::test]
async fn audit_verify_reports_an_edited_event() {
    sqlite_case(
        &["UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"],
        N,
        &["seq 3: edited: the stored event no longer matches its hash".into()],
    )
    .await;
}

#[tokio::test]
async fn audit_verify_reports_a_deleted_event() {
    sqlite_case(
        &["DELETE FROM audit_events WHERE seq = 4"],
        N - 1,
        &["seq 4: deleted: event 4 missing".into()],
    )
    .await;
}

#[tokio::test]
async fn audit_verify_reports_swapped_events() {
    // Swap the sequence numbers of events 2 and 5 (through a free number:
    // the primary key is (tenant_id, seq)).
    sqlite_case(
        &[
            "UPDATE audit_events SET seq = -1 WHERE seq = 2",
            "UPDATE audit_events SET seq = 2 WHERE seq = 5",
            "UPDATE audit_events SET seq = 5 WHERE seq = -1",
        ],
        N,
        &[
            "seq 2: reordered: the event stored here is event 5 of the chain".into(),
            "seq 5: reordered: the event stored here is event 2 of the chain".into(),
        ],
    )
    .await;
}

#[tokio::test]
async fn audit_verify_reports_a_truncated_chain() {
    sqlite_case(
        &["DELETE FROM audit_events WHERE seq >= 5"],
        N - 2,
        &["seq 5: truncated: events 5-6 missing at the end (the recorded head is event 6)".into()],
    )
    .await;
}

#[tokio::test]
async fn audit_verify_reports_an_edit_with_a_recomputed_hash() {
    let (data, chain) = sqlite_chain().await;
    let mut forged = chain.events[2].clone();
    forged.actor = "mallory".into();
    let hash = forged.compute_hash();
    let update =
        format!("UPDATE audit_events SET actor = 'mallory', hash = '{hash}' WHERE seq = 3");
    tamper_sqlite(data.path(), &[&update]).await;
    let (code, out, _) = verify(data.path(), &[]);
    assert_eq!(
        out,
        chain.broken(1, N)
            + "seq 3: edited and re-hashed: the next event or the head links to the original\n"
    );
    assert_eq!(code, 1);
}

#[tokio::test]
async fn audit_verify_reports_an_unreadable_event_and_goes_on() {
    sqlite_case(
        &[
            "UPDATE audit_events SET details = 'not json' WHERE seq = 2",
            "DELETE FROM audit_events WHERE seq = 5",
        ],
        N - 1,
        &[
            "seq 2: edited: the stored event cannot be read back (a field is invalid)".into(),
            "seq 5: deleted: event 5 missing".into(),
        ],
    )
    .await;
}

#[tokio::test]
async fn audit_verify_json_and_unknown_tenant() {
    let (data, chain) = sqlite_chain().await;
    let cwd = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let out = insights(
        cwd.path(),
        &[
            "audit",
            "verify",
            "--tenant",
            &chain.tenant.id.to_string(),
            "--json",
            "--data-dir",
            data_dir,
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    let report: ChainReport = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.is_intact());
    assert_eq!(report.events, N as u64);

    let out = insights(
        cwd.path(),
        &[
            "audit",
            "verify",
            "--tenant",
            "nobody",
            "--data-dir",
            data_dir,
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tenant `nobody`"));
}

/// PostgreSQL: the app role may only SELECT and INSERT audit events; the
/// superuser is not bound by that and edits and deletes rows.
#[tokio::test]
async fn audit_verify_on_postgres_reports_superuser_tampering() {
    let url = insights_tests::fresh_pg_database().await;
    let store = PgStore::connect(&url, 2).await.unwrap();
    let chain = write_chain(&store).await;
    store.pool().close().await;

    let data = tempfile::tempdir().unwrap();
    let env = [("INSIGHTS_DATABASE__URL", url.as_str())];
    let (code, out, err) = verify(data.path(), &env);
    assert_eq!((code, out.as_str()), (0, chain.intact().as_str()), "{err}");

    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for s in [
        "UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 4",
        "UPDATE audit_events SET seq = 40 WHERE seq = 6",
    ] {
        sqlx::query(s).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let (code, out, _) = verify(data.path(), &env);
    assert_eq!(
        out,
        chain.broken(3, N - 1)
            + "seq 2: edited: the stored event no longer matches its hash\n"
            + "seq 4: deleted: event 4 missing\n"
            + "seq 40: reordered: the event stored here is event 6 of the chain\n"
    );
    assert_eq!(code, 1);
}
