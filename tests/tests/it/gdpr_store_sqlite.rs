//! The data-subject store contract (GDPR) against SQLite, one fresh
//! database file per test.

use insights_stores::metadata::sqlite::SqliteStore;
use insights_tests::contract::store::StoreUnderTest;

async fn make() -> StoreUnderTest {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let url = format!("sqlite://{}", dir.path().join("insights.db").display());
    let store = SqliteStore::connect(&url, 4)
        .await
        .unwrap_or_else(|e| panic!("cannot open the SQLite store: {e:?}"));
    StoreUnderTest::with_guard(store, dir)
}

insights_tests::subject_contract_tests!(make);
