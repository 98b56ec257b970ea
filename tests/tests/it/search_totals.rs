//! Search totals on a large tenant: exact up to 10 000 matches, then
//! `10000` with `total_is_lower_bound`; the exact figure when
//! `exact_total` is asked for; and never a row of another tenant in either
//! count (on PostgreSQL under the store's row-level-security session).
//! 10 050 synthetic recordings are bulk-loaded with `insights_tests::synth`
//! (the search benchmark's generator) into each backend.

use std::str::FromStr;

use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::postgres::PgStore;
use insights_stores::metadata::sqlite::SqliteStore;
use insights_tests::synth::{self, Generator};
use sqlx::Connection;

/// More than the cap, so the default count stops.
const N: u64 = SEARCH_TOTAL_CAP + 50;
/// The other tenant's recordings: fewer, so its counts are exact.
const M: u64 = 120;

#[track_caller]
fn ok<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

async fn tenants(s: &dyn MetadataStore) -> (TenantId, TenantId) {
    let mut ids = Vec::new();
    for name in ["big", "small"] {
        let t = ok(
            s.create_tenant(NewTenant {
                name: name.into(),
                directory_tenant_id: None,
            })
            .await,
            "create tenant",
        );
        ids.push(t.id);
    }
    (ids[0], ids[1])
}

/// The assertions, the same on both backends.
async fn check(s: &dyn MetadataStore, big: TenantId, small: TenantId) {
    let all = RecordingQuery::default();
    let page = ok(s.search_recordings(big, &all).await, "search big");
    assert_eq!(
        (page.total, page.total_is_lower_bound),
        (SEARCH_TOTAL_CAP, true),
        "{N} matches: the default count stops at the cap"
    );
    assert_eq!(page.items.len(), 50);
    assert!(page.next_cursor.is_some());

    let exact = RecordingQuery {
        exact_total: true,
        ..RecordingQuery::default()
    };
    let page = ok(s.search_recordings(big, &exact).await, "exact search big");
    assert_eq!((page.total, page.total_is_lower_bound), (N, false));

    // The other tenant sees its own rows only, in both counts.
    for q in [&all, &exact] {
        let page = ok(s.search_recordings(small, q).await, "search small");
        assert_eq!((page.total, page.total_is_lower_bound), (M, false));
        assert!(page.items.iter().all(|i| i.recording.tenant_id == small));
    }

    // A narrow filter under the cap is exact without asking.
    let g = Generator::new(big, 7, N);
    let day = g.recording(0).recording.started_at;
    let narrow = RecordingQuery {
        from: Some(day - chrono::Duration::hours(1)),
        to: Some(day + chrono::Duration::hours(1)),
        ..RecordingQuery::default()
    };
    let capped = ok(s.search_recordings(big, &narrow).await, "narrow");
    let counted = ok(
        s.search_recordings(
            big,
            &RecordingQuery {
                exact_total: true,
                ..narrow.clone()
            },
        )
        .await,
        "narrow exact",
    );
    assert!(capped.total >= 1 && capped.total < SEARCH_TOTAL_CAP);
    assert_eq!(capped.total, counted.total);
    assert!(!capped.total_is_lower_bound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_totals_stop_at_the_cap_unless_exact_on_sqlite() {
    let dir = ok(tempfile::tempdir(), "tempdir");
    let url = format!("sqlite://{}", dir.path().join("m.sqlite").display());
    let store = ok(SqliteStore::connect(&url, 2).await, "open sqlite");
    let (big, small) = tenants(&store).await;
    let opts = ok(sqlx::sqlite::SqliteConnectOptions::from_str(&url), "url");
    let mut conn = ok(
        sqlx::SqliteConnection::connect_with(&opts).await,
        "raw connection",
    );
    ok(
        synth::sqlite::load(&mut conn, &Generator::new(big, 7, N), 0..N).await,
        "load big",
    );
    ok(
        synth::sqlite::load(&mut conn, &Generator::new(small, 8, M), 0..M).await,
        "load small",
    );
    ok(conn.close().await, "close");
    check(&store, big, small).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_totals_stop_at_the_cap_unless_exact_on_postgres_under_rls() {
    let url = insights_tests::fresh_pg_database().await;
    let store = ok(PgStore::connect(&url, 2).await, "open postgres");
    let (big, small) = tenants(&store).await;
    let mut conn = ok(sqlx::PgConnection::connect(&url).await, "raw connection");
    ok(
        synth::postgres::load(&mut conn, &Generator::new(big, 7, N), 0..N).await,
        "load big",
    );
    ok(
        synth::postgres::load(&mut conn, &Generator::new(small, 8, M), 0..M).await,
        "load small",
    );
    ok(sqlx::query("ANALYZE").execute(&mut conn).await, "analyze");
    check(&store, big, small).await;
    plans(&store, &mut conn, big).await;
    ok(conn.close().await, "close");
}

/// Why the text lookups of migration 0033 exist, and that they work: with
/// sequential scans disabled, a text predicate written on the table itself
/// in a tenant session still cannot use its index (RLS keeps it off),
/// while the lookup's own statement, run as the owner as SECURITY DEFINER
/// does, uses it; and the store's search calls the lookups.
async fn plans(store: &PgStore, owner: &mut sqlx::PgConnection, t: TenantId) {
    let cases = [
        (
            "p.search @@ to_tsquery('simple', 'Alice:* & Kowal:*')",
            "participants p",
            "participants_search_idx",
        ),
        (
            "p.phone_digits LIKE '%5550123%'",
            "participants p",
            "participants_phone_trgm_idx",
        ),
    ];
    let explain = |sql: String| format!("EXPLAIN (COSTS OFF) {sql}");
    for (cond, table, index) in cases {
        let alias = table.split(' ').nth(1).unwrap_or_default();
        let mut tx = ok(store.tenant_session(t).await, "session");
        ok(
            sqlx::query("SET LOCAL enable_seqscan = off")
                .execute(&mut *tx)
                .await,
            "seqscan off",
        );
        let rows: Vec<String> = ok(
            sqlx::query_scalar(sqlx::AssertSqlSafe(explain(format!(
                "SELECT 1 FROM {table} WHERE {cond}"
            ))))
            .fetch_all(&mut *tx)
            .await,
            "explain under RLS",
        );
        let plan = rows.join("\n");
        assert!(
            !plan.contains(index),
            "under RLS the planner was expected to be kept off {index}: {plan}"
        );
        ok(tx.rollback().await, "rollback");

        // Same cost settings as above: the index is usable here.
        let mut tx = ok(sqlx::Connection::begin(&mut *owner).await, "begin");
        ok(
            sqlx::query("SET LOCAL enable_seqscan = off")
                .execute(&mut *tx)
                .await,
            "seqscan off",
        );
        let rows: Vec<String> = ok(
            sqlx::query_scalar(sqlx::AssertSqlSafe(explain(format!(
                "SELECT DISTINCT {alias}.recording_id FROM {table} \
                 WHERE {alias}.tenant_id = '{}' AND {cond}",
                t.0
            ))))
            .fetch_all(&mut *tx)
            .await,
            "explain as owner",
        );
        ok(tx.rollback().await, "rollback");
        let plan = rows.join("\n");
        assert!(
            plan.contains(index),
            "the lookup's statement must use {index}: {plan}"
        );
    }
    let mut tx = ok(store.tenant_session(t).await, "session");
    let rows: Vec<String> = ok(
        sqlx::query_scalar(sqlx::AssertSqlSafe(explain(
            "SELECT r.id FROM recordings r WHERE r.id IN \
             (SELECT search_participant_words(to_tsquery('simple', 'kowal:*'))) \
             AND r.id IN (SELECT search_participant_digits('%0123%'))"
                .into(),
        )))
        .fetch_all(&mut *tx)
        .await,
        "explain search",
    );
    let plan = rows.join("\n");
    assert!(
        plan.contains("search_participant_words") && plan.contains("search_participant_digits"),
        "{plan}"
    );
    ok(tx.rollback().await, "rollback");
    // The lookups and the store find exactly what the owner's SQL finds.
    let want: i64 = ok(
        sqlx::query_scalar(
            "SELECT count(DISTINCT p.recording_id) FROM participants p \
             WHERE p.tenant_id = $1 AND p.phone_digits LIKE '%0123%'",
        )
        .bind(t.0)
        .fetch_one(&mut *owner)
        .await,
        "owner count",
    );
    let page = ok(
        store
            .search_recordings(
                t,
                &RecordingQuery {
                    participant: Some("0123".into()),
                    ..RecordingQuery::default()
                },
            )
            .await,
        "digits search",
    );
    assert!(want > 0, "the synthetic data has numbers with 0123");
    assert_eq!(page.total, u64::try_from(want).unwrap_or_default());
}
