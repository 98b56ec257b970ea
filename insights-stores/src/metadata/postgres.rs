//! PostgreSQL metadata store: the production and scale-out backend.
//!
//! Tenant isolation has two walls. The first is in this code: every table
//! carries `tenant_id` (part of every primary key) and every query filters
//! on it. The second is row-level security in the database: every tenant
//! table has a policy that only shows and accepts rows of the tenant named
//! by the transaction-local setting `app.tenant_id`, and tenant-scoped work
//! runs as the role [`APP_ROLE`], which has no `BYPASSRLS` and owns
//! nothing. [`PgStore::tenant_session`] opens such a transaction; every
//! tenant-scoped method of the store runs in one. Only platform-scope
//! operations (the `tenants` table) run as the connecting user.
//!
//! Architecture invariant: user input never becomes SQL text. Dynamic SQL
//! (search) is assembled from constant fragments; every value is bound.

// The two macros come before the area modules, which use them (macros
// are in scope from their definition on).

/// Runs `$body` (an expression using `$conn: &mut PgConnection`) in a
/// tenant session and commits it; the session is rolled back when the
/// body fails.
macro_rules! in_tenant {
    ($store:expr, $tenant:expr, |$conn:ident| $body:expr) => {{
        let mut tx = $store.tenant_session($tenant).await?;
        let out = {
            let $conn: &mut sqlx::PgConnection = &mut tx;
            $body.await?
        };
        $crate::metadata::postgres::commit(tx).await?;
        Ok(out)
    }};
}

/// Runs `$body` like [`in_tenant!`] for a tenant realm; for the platform
/// realm (operators, no tenant) in a transaction as the connecting user,
/// whose tables `insights_app` cannot reach.
macro_rules! in_realm {
    ($store:expr, $realm:expr, |$conn:ident| $body:expr) => {{
        match $realm {
            insights_core::domain::Realm::Tenant(t) => in_tenant!($store, t, |$conn| $body),
            insights_core::domain::Realm::Platform => {
                let mut tx =
                    $crate::metadata::postgres::error::DbResultExt::db($store.pool.begin().await)?;
                let out = {
                    let $conn: &mut sqlx::PgConnection = &mut tx;
                    $body.await?
                };
                $crate::metadata::postgres::commit(tx).await?;
                Ok(out)
            }
        }
    }};
}

mod accounts;
mod alerts;
mod approvals;
mod audit;
mod changes;
mod completeness;
mod directory;
mod entra;
mod error;
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

use insights_core::domain::TenantId;
use insights_core::store::{StoreError, StoreResult};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use self::error::DbResultExt;

/// The NOLOGIN role tenant-scoped transactions switch to. Created by the
/// first migration; subject to row-level security.
pub const APP_ROLE: &str = "insights_app";

/// Migrations under `insights-stores/migrations/pg`, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/pg");

/// The PostgreSQL implementation of
/// [`MetadataStore`](insights_core::store::MetadataStore): each area trait
/// is implemented in the submodule of its area, next to its SQL.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects a pool of at most `max_connections` and brings the schema
    /// up to date (migrations are append-only and run on every start).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect(url)
            .await
            .db()?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(PgStore { pool })
    }

    /// The connection pool (connections run as the connecting user, which
    /// bypasses row-level security: use [`PgStore::tenant_session`] for
    /// anything that touches tenant data).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Opens a transaction scoped to `tenant`: the role is switched to
    /// [`APP_ROLE`] and `app.tenant_id` is set, both transaction-local, so
    /// row-level security shows and accepts only this tenant's rows. Both
    /// settings end with the transaction (commit, rollback or drop).
    pub async fn tenant_session(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.db()?;
        // `set_config('role', ..., true)` is `SET LOCAL ROLE` with a bound
        // value; one round trip for both settings.
        sqlx::query("SELECT set_config('role', $1, true), set_config('app.tenant_id', $2, true)")
            .bind(APP_ROLE)
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await
            .db()?;
        Ok(tx)
    }
}

/// Commits a transaction.
async fn commit(tx: Transaction<'static, Postgres>) -> StoreResult<()> {
    tx.commit().await.db()
}
