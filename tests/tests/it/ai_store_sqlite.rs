//! The AI store contract (recap citations, provider-call records) against
//! SQLite, plus the upgrade check: insights stored before migration 0004
//! stay readable (with no citations).

use insights_stores::metadata::sqlite::SqliteStore;
use insights_tests::contract::store::StoreUnderTest;

async fn make() -> StoreUnderTest {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let url = format!("sqlite://{}", dir.path().join("insights.db").display());
    let store = SqliteStore::connect(&url, 5)
        .await
        .unwrap_or_else(|e| panic!("cannot open the SQLite store: {e:?}"));
    StoreUnderTest::with_guard(store, dir)
}

insights_tests::ai_store_contract_tests!(make);

/// A database at the schema before migration 0004 (every earlier
/// migration applied), with an insight stored the old way; then the store
/// opens it (running 0004): the insight reads back with no citations.
#[tokio::test]
async fn insights_stored_before_0004_stay_valid() {
    use std::str::FromStr;

    use insights_core::domain::{InsightKind, RecordingId, TenantId};
    use insights_core::store::prelude::*;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let url = format!("sqlite://{}", dir.path().join("insights.db").display());
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap_or_else(|e| panic!("url: {e}"))
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("pool: {e}"));
    let dir_of_migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../insights-stores/migrations/sqlite");
    let mut old = sqlx::migrate::Migrator::new(dir_of_migrations)
        .await
        .unwrap_or_else(|e| panic!("migrations: {e}"));
    old.migrations = old
        .migrations
        .iter()
        .filter(|m| m.version < 4)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    old.run(&pool)
        .await
        .unwrap_or_else(|e| panic!("old schema: {e}"));

    let (t, r, i) = (TenantId::new(), RecordingId::new(), uuid::Uuid::now_v7());
    for (sql, binds) in [
        (
            "INSERT INTO tenants (id, name, settings, created_at) VALUES (?, 'contoso', '{}', 0)",
            vec![t.0],
        ),
        (
            "INSERT INTO recordings (tenant_id, id, kind, direction, started_at, status, \
             retention_class, legal_hold, has_transcript, created_at) \
             VALUES (?, ?, 'meeting', 'internal', 0, 'stored', 'default', 0, 0, 0)",
            vec![t.0, r.0],
        ),
        (
            "INSERT INTO insights (tenant_id, recording_id, id, kind, text, \
             owner_participant_id, provider, created_at) \
             VALUES (?, ?, ?, 'summary', 'an old summary', NULL, 'local:test', 0)",
            vec![t.0, r.0, i],
        ),
    ] {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(b);
        }
        q.execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("old row: {e}"));
    }
    pool.close().await;

    let store = SqliteStore::connect(&url, 2)
        .await
        .unwrap_or_else(|e| panic!("upgrade: {e:?}"));
    let got = store
        .list_insights(t, r)
        .await
        .unwrap_or_else(|e| panic!("list: {e:?}"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id.0, i);
    assert_eq!(got[0].kind, InsightKind::Summary);
    assert_eq!(got[0].text, "an old summary");
    assert!(got[0].citations.is_empty());
    store.close().await;
}
