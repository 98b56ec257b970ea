//! The metadata store contract suite against the PostgreSQL backend, one
//! fresh database per test (on the server named by `INSIGHTS_TEST_PG_URL`).

use insights_stores::metadata::postgres::PgStore;
use insights_tests::contract::store::StoreUnderTest;

async fn make() -> StoreUnderTest {
    let url = insights_tests::fresh_pg_database().await;
    let store = PgStore::connect(&url, 5)
        .await
        .unwrap_or_else(|e| panic!("cannot open the PostgreSQL store: {e:?}"));
    StoreUnderTest::new(store)
}

insights_tests::store_contract_tests!(make);
