//! The metadata store contract suite against the SQLite backend (a fresh
//! database file in its own temp dir per test, and once more in memory),
//! plus what only SQLite can show: crypto-shredded key bytes leave the
//! files, the FTS5 indexes stay in step with their tables, reopening an
//! existing database works.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use insights_core::crypto::WrappedDataKey;
use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;
use insights_tests::contract::store::StoreUnderTest;
use tempfile::TempDir;

/// A fresh store on a file whose parent directory does not exist yet
/// (`connect` creates it).
async fn open_in(dir: &Path) -> (SqliteStore, String, PathBuf) {
    let file = dir.join("db").join("insights.db");
    let url = format!("sqlite://{}", file.display());
    let store = SqliteStore::connect(&url, 5)
        .await
        .unwrap_or_else(|e| panic!("cannot open the SQLite store: {e:?}"));
    (store, url, file)
}

fn temp_dir() -> TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}

async fn make() -> StoreUnderTest {
    let dir = temp_dir();
    let (store, _, _) = open_in(dir.path()).await;
    StoreUnderTest::with_guard(store, dir)
}

insights_tests::store_contract_tests!(make);

/// The whole contract again on `sqlite::memory:` (for tools and tests
/// that want no file).
mod in_memory {
    use super::*;

    async fn make() -> StoreUnderTest {
        let store = SqliteStore::connect("sqlite::memory:", 5)
            .await
            .unwrap_or_else(|e| panic!("cannot open an in-memory store: {e:?}"));
        StoreUnderTest::new(store)
    }

    insights_tests::store_contract_tests!(make);
}

// ---------------------------------------------------------------------
// SQLite-only checks
// ---------------------------------------------------------------------

#[track_caller]
fn ok<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

/// Whether `needle` occurs in the database file or its WAL.
fn files_contain(db_file: &Path, needle: &[u8]) -> bool {
    let mut wal = db_file.as_os_str().to_owned();
    wal.push("-wal");
    [db_file.to_path_buf(), PathBuf::from(wal)]
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

#[tokio::test]
async fn shredded_key_bytes_leave_the_database_files() {
    let dir = temp_dir();
    let (store, _, file) = open_in(dir.path()).await;
    let t = ok(
        store
            .create_tenant(NewTenant {
                name: "contoso".into(),
                directory_tenant_id: None,
            })
            .await,
        "tenant",
    )
    .id;
    let marker: Vec<u8> = b"WRAPPED-KEY-MATERIAL-7f3a9c-".repeat(3);
    let key = WrappedDataKey {
        id: KeyId::new(),
        tenant_id: t,
        kek_id: "kek-1".into(),
        wrapped: marker.clone(),
        created_at: now(),
    };
    ok(store.put_data_key(t, &key).await, "put");
    // Neighbours on the same page must survive the shred.
    let other = WrappedDataKey {
        id: KeyId::new(),
        wrapped: vec![42; 40],
        ..key.clone()
    };
    ok(store.put_data_key(t, &other).await, "put other");
    assert!(
        files_contain(&file, &marker),
        "the key is written to the files (else this test proves nothing)"
    );

    assert!(ok(store.shred_data_key(t, key.id).await, "shred"));
    assert!(
        !files_contain(&file, &marker),
        "the shredded key's bytes are overwritten in the database and WAL"
    );
    assert_eq!(ok(store.get_data_key(t, other.id).await, "other"), other);
    store.close().await;
}

#[tokio::test]
async fn fts_indexes_match_their_tables_after_churn() {
    let dir = temp_dir();
    let (store, url, _) = open_in(dir.path()).await;
    let t = ok(
        store
            .create_tenant(NewTenant {
                name: "contoso".into(),
                directory_tenant_id: None,
            })
            .await,
        "tenant",
    )
    .id;
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut r = Recording::new(t, RecordingKind::Call, Direction::Inbound, now());
        r.participants.push(Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Caller,
            display_name: Some(format!("Caller Number{i}")),
            phone_number: Some(format!("+1425555010{i}")),
            uri: Some(format!("sip:caller{i}@example.com")),
            email: None,
            directory_user_id: None,
            recorded_user: false,
            joined_ms: None,
            left_ms: None,
        });
        ok(store.insert_recording(t, &r).await, "insert");
        let seg = TranscriptSegment {
            id: SegmentId::new(),
            recording_id: r.id,
            participant_id: None,
            start_ms: 0,
            end_ms: 10,
            text: format!("first version {i}"),
            confidence: 1.0,
            language: None,
        };
        ok(
            store
                .put_transcript_segments(t, r.id, std::slice::from_ref(&seg))
                .await,
            "put",
        );
        let seg2 = TranscriptSegment {
            text: format!("second version {i}"),
            ..seg
        };
        ok(
            store.put_transcript_segments(t, r.id, &[seg2]).await,
            "replace",
        );
        ids.push(r.id);
    }
    for id in &ids[..3] {
        ok(store.delete_recording(t, *id).await, "delete");
    }

    // Inspect the file with a pool of our own, after the store let go of
    // it: the schema change below must not race the store's connections.
    store.close().await;
    // One connection, so every statement below sees the schema change
    // made by the previous one and no two of our own connections ever
    // contend for the write lock (a pool may open a second connection
    // while the first is still being handed back).
    let options = ok(
        sqlx::sqlite::SqliteConnectOptions::from_str(&url),
        "inspection options",
    )
    .busy_timeout(std::time::Duration::from_secs(30));
    let pool = ok(
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await,
        "second pool",
    );
    for table in [
        "participants_fts",
        "participant_digits_fts",
        "transcript_fts",
    ] {
        // rank = 1: FTS5 also checks the index against the external
        // content table (plain integrity-check only checks the index).
        ok(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} ({table}, rank) VALUES ('integrity-check', 1)"
            )))
            .execute(&pool)
            .await,
            table,
        );
    }
    // The check has teeth: a delete that bypasses the trigger is caught.
    ok(
        sqlx::query("DROP TRIGGER transcript_fts_delete")
            .execute(&pool)
            .await,
        "drop trigger",
    );
    ok(
        sqlx::query("DELETE FROM transcript_segments")
            .execute(&pool)
            .await,
        "raw delete",
    );
    let stale = sqlx::query(
        "INSERT INTO transcript_fts (transcript_fts, rank) VALUES ('integrity-check', 1)",
    )
    .execute(&pool)
    .await;
    assert!(stale.is_err(), "integrity-check detects a stale index");
    pool.close().await;
}

#[tokio::test]
async fn reopening_keeps_data_and_settings() {
    let dir = temp_dir();
    let (store, url, _) = open_in(dir.path()).await;
    let tenant = ok(
        store
            .create_tenant(NewTenant {
                name: "contoso".into(),
                directory_tenant_id: None,
            })
            .await,
        "tenant",
    );
    store.close().await;

    // Migrations run again on an up-to-date database: a no-op.
    let again = ok(SqliteStore::connect(&url, 2).await, "reopen");
    assert_eq!(ok(again.get_tenant(tenant.id).await, "get"), tenant);
    assert_eq!(again.backend(), "sqlite");
    again.close().await;

    let pool = ok(sqlx::SqlitePool::connect(&url).await, "plain pool");
    let mode: String = ok(
        sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await,
        "journal mode",
    );
    assert_eq!(mode, "wal", "WAL is a persistent property of the file");
    pool.close().await;
}

#[tokio::test]
async fn a_bad_url_is_invalid() {
    let r = SqliteStore::connect("sqlite://x.db?mode=nonsense", 1).await;
    assert!(
        matches!(r, Err(insights_core::store::StoreError::Invalid(_))),
        "{r:?}"
    );
}
