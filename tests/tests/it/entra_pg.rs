//! The Entra contract (directory sync state, OIDC sessions) on
//! PostgreSQL, one fresh database per test.

use insights_stores::metadata::postgres::PgStore;
use insights_tests::contract::store::StoreUnderTest;

async fn make() -> StoreUnderTest {
    let url = insights_tests::fresh_pg_database().await;
    let store = PgStore::connect(&url, 4)
        .await
        .unwrap_or_else(|e| panic!("cannot open the PostgreSQL store: {e:?}"));
    StoreUnderTest::new(store)
}

insights_tests::entra_contract_tests!(make);
