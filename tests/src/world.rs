//! The world of a test: a fresh metadata store (SQLite in the test's temp
//! dir, or a fresh PostgreSQL database), a blob store (a folder in the
//! temp dir, or a fresh Azurite container per tenant) and a local key
//! file, all owned by the test and gone with it. Every crate's tests build
//! their world here, then add what their crate needs on top (a spool, a
//! gateway, the API server).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use insights_core::blob::BlobStore;
use insights_core::crypto::{KeyProvider, LocalKeyFile};
use insights_core::domain::{NewTenant, Tenant};
use insights_core::store::MetadataStore;
use insights_stores::blob::{AzureBlobConfig, AzureBlobStore, LocalBlobStore};
use insights_stores::metadata::postgres::PgStore;
use insights_stores::metadata::sqlite::SqliteStore;
use tempfile::TempDir;

/// Which metadata backend a world runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metadata {
    /// `insights.db` in the world's temp dir.
    Sqlite,
    /// A fresh database on `INSIGHTS_TEST_PG_URL` ([`crate::fresh_pg_database`]).
    Postgres,
}

/// Which blob backend a world runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blobs {
    /// `blobs/` in the world's temp dir.
    Local,
    /// The Azurite emulator at `INSIGHTS_TEST_AZURITE`.
    Azurite,
}

/// Where the metadata of a world lives (for tests that look at it raw).
#[derive(Clone, Debug)]
pub enum Db {
    /// The SQLite database file.
    Sqlite(PathBuf),
    /// The PostgreSQL database URL.
    Pg(String),
}

/// A test's own stores and keys.
pub struct World {
    /// The temp dir everything local lives in (`insights.db`, `blobs/`,
    /// `keys/kek.json`); removed when the world is dropped.
    pub dir: TempDir,
    /// The metadata store.
    pub store: Arc<dyn MetadataStore>,
    /// The blob store.
    pub blobs: Arc<dyn BlobStore>,
    /// The local key file `keys/kek.json`.
    pub keys: Arc<LocalKeyFile>,
    /// The metadata store's URL.
    pub db_url: String,
    /// Where the metadata lives.
    pub db: Db,
}

impl World {
    /// SQLite and a local blob folder: the default world.
    pub async fn sqlite() -> World {
        Self::new(Metadata::Sqlite, Blobs::Local).await
    }

    /// A fresh PostgreSQL database and a local blob folder.
    pub async fn postgres() -> World {
        Self::new(Metadata::Postgres, Blobs::Local).await
    }

    /// A world on the given backends (pool of 4 connections).
    pub async fn new(metadata: Metadata, blobs: Blobs) -> World {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let (store, db_url, db): (Arc<dyn MetadataStore>, String, Db) = match metadata {
            Metadata::Sqlite => {
                let path = dir.path().join("insights.db");
                let url = format!("sqlite://{}", path.display());
                (
                    Arc::new(sqlite_store(dir.path()).await),
                    url,
                    Db::Sqlite(path),
                )
            }
            Metadata::Postgres => {
                let url = crate::fresh_pg_database().await;
                let store = PgStore::connect(&url, 4)
                    .await
                    .unwrap_or_else(|e| panic!("cannot open the PostgreSQL store: {e:?}"));
                (Arc::new(store), url.clone(), Db::Pg(url))
            }
        };
        let blobs: Arc<dyn BlobStore> = match blobs {
            Blobs::Local => Arc::new(local_blobs(dir.path())),
            Blobs::Azurite => Arc::new(
                AzureBlobStore::new(AzureBlobConfig::emulator(Some(crate::azurite_endpoint())))
                    .unwrap_or_else(|e| panic!("cannot open Azurite: {e:?}")),
            ),
        };
        let keys = Arc::new(key_file(dir.path()));
        World {
            dir,
            store,
            blobs,
            keys,
            db_url,
            db,
        }
    }

    /// The temp dir's path.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The key file as a [`KeyProvider`].
    pub fn key_provider(&self) -> Arc<dyn KeyProvider> {
        self.keys.clone()
    }

    /// Creates tenant `name` (with directory tenant id `directory`), its
    /// key-encryption key and its blob container.
    pub async fn tenant_with(&self, name: &str, directory: Option<uuid::Uuid>) -> Tenant {
        let tenant = self
            .store
            .create_tenant(NewTenant {
                name: name.into(),
                directory_tenant_id: directory,
            })
            .await
            .unwrap_or_else(|e| panic!("cannot create tenant: {e:?}"));
        self.keys
            .ensure_kek(tenant.id)
            .await
            .unwrap_or_else(|e| panic!("cannot create the tenant's KEK: {e:?}"));
        self.blobs
            .ensure_container(&Tenant::container_name(tenant.id))
            .await
            .unwrap_or_else(|e| panic!("cannot create the tenant's container: {e:?}"));
        tenant
    }

    /// [`World::tenant_with`] without a directory tenant.
    pub async fn tenant(&self, name: &str) -> Tenant {
        self.tenant_with(name, None).await
    }
}

/// The SQLite store of a world rooted at `dir` (`dir/insights.db`,
/// created or opened again; pool of 4 connections).
pub async fn sqlite_store(dir: &Path) -> SqliteStore {
    let url = format!("sqlite://{}", dir.join("insights.db").display());
    SqliteStore::connect(&url, 4)
        .await
        .unwrap_or_else(|e| panic!("cannot open the SQLite store: {e:?}"))
}

/// The local blob folder of a world rooted at `dir` (`dir/blobs`).
pub fn local_blobs(dir: &Path) -> LocalBlobStore {
    LocalBlobStore::new(dir.join("blobs"))
}

/// The local key file of a world rooted at `dir` (`dir/keys/kek.json`).
pub fn key_file(dir: &Path) -> LocalKeyFile {
    LocalKeyFile::open(dir.join("keys").join("kek.json"))
        .unwrap_or_else(|e| panic!("cannot open the test key file: {e:?}"))
}
