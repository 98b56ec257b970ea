//! SQLite metadata store: the embedded default. One database file in WAL
//! mode; FTS5 indexes for participant and transcript search.
//!
//! Layout: this module opens the database; each area trait of
//! [`insights_core::store`] is implemented in the submodule of its area
//! (`TenantStore` in `tenants`, `RecordingStore` in `recordings`, ...),
//! next to its SQL; `entra` holds the SQL of the directory batch upsert,
//! sync state and OIDC sessions, and `util` error mapping and conversions.
//! The schema is in `migrations/sqlite`.
//!
//! Every query of tenant data binds and filters on `tenant_id`; user input
//! is only ever bound, never interpolated into SQL.

mod accounts;
mod alerts;
mod approvals;
mod audit;
mod changes;
mod completeness;
mod directory;
mod entra;
mod governance;
mod jobs;
mod keys;
mod leases;
mod meeting_claims;
mod processing;
mod recording_gaps;
mod recordings;
mod search;
mod segment_uploads;
mod signing_keys;
mod subjects;
mod tenants;
mod transcripts;
mod transient;
mod util;

use std::str::FromStr;
use std::time::Duration;

use insights_core::store::{StoreError, StoreResult};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use util::db;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite metadata store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directory) the database
    /// at `url` (`sqlite:///path/insights.db`, `sqlite:data/insights.db`
    /// or `sqlite::memory:`) and brings its schema up to date.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Invalid("not a valid SQLite URL".into()))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let parent = options
            .get_filename()
            .parent()
            .filter(|d| !in_memory && !d.as_os_str().is_empty());
        if let Some(dir) = parent {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| StoreError::Backend(Box::new(e)))?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL, not NORMAL: in WAL mode NORMAL only syncs at
            // checkpoints, so a power loss can roll back the last
            // acknowledged commits. Here a commit can be an audit event,
            // a legal hold or a crypto-shred that must not come back; FULL
            // costs one WAL fsync per transaction, which our write rate
            // (metadata, not media) easily affords.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // Deleted content (shredded data keys, erased personal data) is
            // overwritten with zeros instead of lingering in free pages.
            .pragma("secure_delete", "ON");
        let mut pool = SqlitePoolOptions::new().max_connections(max_connections.max(1));
        if in_memory {
            // An in-memory database lives only while a connection is open.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool.connect_with(options).await.map_err(db)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(SqliteStore { pool })
    }

    /// Closes every connection (waits for in-flight queries).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
