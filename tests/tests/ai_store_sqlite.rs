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
