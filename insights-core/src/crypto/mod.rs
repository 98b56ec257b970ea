//! Envelope encryption of media.
//!
//! * [`envelope`]: the streaming chunked AES-256-GCM object format, with
//!   random-access decryption of byte ranges.
//! * [`installation_key`]: the installation's identity and Ed25519 signing
//!   secret file, shared by custody manifests and erasure certificates.
//! * [`keys`]: per-object data keys, wrapped by a per-tenant
//!   key-encryption key (KEK) held by a [`KeyProvider`]; the default
//!   provider keeps KEKs in a local key file.
//!
//! Crypto-shredding = destroying the wrapped data key
//! ([`crate::store::DataKeyStore::shred_data_key`]) of one recording, or
//! a whole tenant's key-encryption key ([`LocalKeyFile::shred_kek`]).

pub mod envelope;
pub mod installation_key;
pub mod keys;
pub mod root;
pub mod sealed;

pub use envelope::{
    AsyncEnvelopeWriter, EnvelopeReader, EnvelopeWriter, ExpectedIds, Header, RangePlan,
    StreamOpener, decrypt_range, decrypt_to_vec, encrypt_to_vec,
};
pub use installation_key::{InstallationKeyError, InstallationKeyFile};
pub use keys::{DataKey, KeyProvider, LocalKeyFile, WrappedDataKey, WrappedKek, key_alarm};
pub use root::{DatabaseKeyProvider, RootKey};
pub use sealed::{PLATFORM_KEY_OWNER, SealedSecret, open_secret, seal_secret};

/// Errors of the crypto layer. Messages never contain key material.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CryptoError {
    /// Not an envelope object, or an unsupported format version.
    #[error("not an Insights envelope, or an unsupported one: {0}")]
    BadHeader(String),
    /// The header does not belong to the object/tenant/key expected.
    #[error("envelope header mismatch: {0}")]
    HeaderMismatch(String),
    /// A chunk failed authentication: tampered, reordered, spliced from
    /// another object, or decrypted with the wrong key.
    #[error("chunk {chunk} failed authentication (tampered, reordered, spliced or wrong key)")]
    ChunkAuth { chunk: u64 },
    /// The object ends before its final chunk.
    #[error("object is truncated: {0}")]
    Truncated(String),
    /// Data follows the final chunk.
    #[error("data after the final chunk")]
    TrailingData,
    /// A byte range outside the plaintext.
    #[error("range {start}..{end} outside plaintext of {len} bytes")]
    BadRange { start: u64, end: u64, len: u64 },
    /// A wrapped data key could not be unwrapped (wrong KEK or tampered).
    #[error("data key could not be unwrapped")]
    Unwrap,
    /// No key-encryption key exists for the tenant.
    #[error("no key-encryption key for tenant {0}")]
    NoKek(crate::domain::TenantId),
    /// The key service refuses the tenant's key-encryption key: it was
    /// disabled, deleted or access to it revoked (Key Vault answered
    /// 401, 403 or 404). Nothing may be recorded for the tenant until an
    /// operator restores it; a node never replaces it silently.
    #[error(
        "key-encryption key of tenant {tenant} is revoked, disabled or deleted (key service: {reason})"
    )]
    KekRevoked {
        tenant: crate::domain::TenantId,
        reason: String,
    },
    /// The key service did not answer usably (throttled beyond the retry
    /// budget, server errors, no token, no connection).
    #[error("key service unavailable: {0}")]
    KeyService(String),
    /// A stored wrapped data key is malformed: truncated, or bound to
    /// another tenant's key or another data key. Refused before (or
    /// instead of) asking the key service.
    #[error("wrapped data key {key} of tenant {tenant} refused: {reason}")]
    BadWrappedKey {
        tenant: crate::domain::TenantId,
        key: crate::domain::KeyId,
        reason: &'static str,
    },
    /// The data key is gone (crypto-shredded).
    #[error("data key {0} was destroyed (crypto-shredded)")]
    Shredded(crate::domain::KeyId),
    /// The root key of the `database` provider is not the one that
    /// wrapped the key-encryption keys in the database.
    #[error(
        "wrong root key: {count} key-encryption key(s) in the database were wrapped by the root \
         key with key check {stored}, this node's root key has key check {ours}; start every \
         node with the same root key"
    )]
    WrongRootKey {
        ours: String,
        stored: String,
        count: usize,
    },
    /// A stored (wrapped) key-encryption key is truncated, edited, or was
    /// wrapped for another tenant, version or root key.
    #[error("key-encryption key version {version} of tenant {tenant} is unusable: {problem}")]
    BadWrappedKek {
        tenant: crate::domain::TenantId,
        version: u32,
        problem: &'static str,
    },
    /// The root key could not be loaded.
    #[error("root key: {0}")]
    RootKey(String),
    /// The key provider cannot be reached or failed (store, vault).
    #[error("key provider unavailable: {0}")]
    Unavailable(String),
    /// The provider does not support the operation.
    #[error("not supported by the {provider} key provider: {what}")]
    Unsupported {
        provider: &'static str,
        what: &'static str,
    },
    /// Key file or other I/O failure.
    #[error("key store I/O: {0}")]
    Io(String),
    /// An argument violates an API contract (e.g. a buffer of the wrong
    /// length); a bug in the caller, not bad data.
    #[error("invalid argument to the crypto API: {0}")]
    InvalidInput(String),
    /// An object too large for the envelope format (more than 2^32 chunks)
    /// or for this platform's address space.
    #[error("object too large: {0}")]
    TooLarge(String),
}
