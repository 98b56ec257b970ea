//! Blob store backends: [`local`] (the embedded default, a directory tree)
//! and [`azure`] (Azure Blob Storage through `object_store`). Both are
//! proven by the contract suite in `tests/src/contract/blob.rs`.
//!
//! Shared semantics both backends implement (beyond the trait docs):
//!
//! * `list(container, prefix)` treats `prefix` as a *path* prefix: `""`
//!   lists everything, `"a/b"` (or `"a/b/"`) lists the keys below the
//!   segment `a/b` (`a/b/x`, `a/b/y/z`) but neither `a/b` itself nor
//!   `a/bc/x`. Keys are ids, so a plain string prefix would let `rec-1`
//!   match `rec-10`.
//! * A range `start..end` with `start == end <= size` is empty and valid;
//!   `start > end` or `end > size` is `RangeNotSatisfiable`.
//! * Deleting from a container that does not exist is `ContainerNotFound`
//!   (a missing object in an existing container is fine).

pub mod azure;
pub mod local;

pub use azure::{AzureBlobConfig, AzureBlobStore};
pub use local::LocalBlobStore;

use insights_core::blob::{BlobError, BlobResult, validate_key};

/// Checks a `list` prefix and returns it without a trailing `/`
/// (`None` for the whole container).
pub(crate) fn normalize_prefix(prefix: &str) -> BlobResult<Option<&str>> {
    if prefix.is_empty() {
        return Ok(None);
    }
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    validate_key(trimmed).map_err(|_| BlobError::InvalidName(prefix.to_owned()))?;
    Ok(Some(trimmed))
}

/// Lower-case hex of a SHA-256 digest.
pub(crate) fn sha256_hex(hasher: sha2::Sha256) -> String {
    use sha2::Digest;
    hex::encode(hasher.finalize())
}

/// Wraps any error as [`BlobError::Io`].
pub(crate) fn io_err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BlobError {
    BlobError::Io(e.into())
}

#[cfg(test)]
mod tests {
    use super::normalize_prefix;

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix("").ok(), Some(None));
        assert_eq!(normalize_prefix("a/b").ok(), Some(Some("a/b")));
        assert_eq!(normalize_prefix("a/b/").ok(), Some(Some("a/b")));
        assert!(normalize_prefix("/").is_err());
        assert!(normalize_prefix("a//").is_err());
        assert!(normalize_prefix("../a").is_err());
    }
}
