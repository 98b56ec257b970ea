//! The job queue contract on SQLite: a database file per test, and once
//! more in memory.

use insights_stores::metadata::sqlite::SqliteStore;
use insights_tests::contract::store::StoreUnderTest;

async fn make() -> StoreUnderTest {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let url = format!("sqlite://{}", dir.path().join("insights.db").display());
    let store = SqliteStore::connect(&url, 8)
        .await
        .unwrap_or_else(|e| panic!("cannot open the SQLite store: {e:?}"));
    StoreUnderTest::with_guard(store, dir)
}

insights_tests::jobs_contract_tests!(make);

mod in_memory {
    use super::*;

    async fn make() -> StoreUnderTest {
        let store = SqliteStore::connect("sqlite::memory:", 5)
            .await
            .unwrap_or_else(|e| panic!("cannot open an in-memory store: {e:?}"));
        StoreUnderTest::new(store)
    }

    insights_tests::jobs_contract_tests!(make);
}
