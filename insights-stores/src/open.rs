//! Choosing backends from settings at start-up.

use std::sync::Arc;

use insights_core::blob::{BlobError, BlobStore};
use insights_core::config::{BlobBackend, ConfigError, Settings};
use insights_core::store::{MetadataStore, StoreError};

use crate::blob::azure::{AzureBlobConfig, AzureBlobStore};
use crate::blob::local::LocalBlobStore;
use crate::metadata::postgres::PgStore;
use crate::metadata::sqlite::SqliteStore;

/// Why a backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
}

/// Opens the metadata store named by `database.url` (scheme `sqlite:` or
/// `postgres://`), creating and migrating it as needed.
pub async fn open_metadata(settings: &Settings) -> Result<Arc<dyn MetadataStore>, OpenError> {
    let url = settings.database_url();
    let url = url.expose();
    let max = settings.database.max_connections;
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, max).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, max).await?))
    } else {
        Err(ConfigError::Invalid {
            key: "database.url",
            problem: "unsupported scheme (use sqlite: or postgres://)".into(),
        }
        .into())
    }
}

/// Opens the blob store chosen by `blob.backend`.
pub fn open_blobs(settings: &Settings) -> Result<Arc<dyn BlobStore>, OpenError> {
    match settings.blob.backend {
        BlobBackend::Local => Ok(Arc::new(LocalBlobStore::new(settings.blob_dir()))),
        BlobBackend::Azure => Ok(Arc::new(AzureBlobStore::new(
            AzureBlobConfig::from_settings(settings)?,
        )?)),
    }
}
