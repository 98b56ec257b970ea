//! Chain of custody: every uploaded recording gets a manifest, signed
//! with the installation's Ed25519 key, stored next to its blobs; and
//! [`verify_recording`] checks blobs, manifest and metadata against each
//! other offline, naming every mismatch.
//!
//! # Blob keys (deterministic, so re-uploads overwrite instead of duplicating)
//!
//! ```text
//! recordings/<recording id>/stream-<index>.<ext>.env   one envelope per stream
//! recordings/<recording id>/manifest.json              the signed manifest
//! ```
//!
//! `<ext>` follows the stream's content type (`ogg` for `audio/ogg`,
//! `wav`, else `bin`). Stream 0 is the primary stream, the one the
//! recording's `media` metadata points to.
//!
//! # What the manifest proves
//!
//! Per stream it lists the SHA-256 of every spool record *as written at
//! capture* (header, ciphertext and tag), with each record's index,
//! length, seal time and last flag, plus the spool log's header. Records
//! are deterministic given key, header, index, flags, time and plaintext,
//! so the verifier decrypts the blob, cuts the plaintext at the record
//! lengths, re-seals each piece and compares hashes: a match proves the
//! stored audio is bit for bit what the gateway sealed at capture, in
//! order, with nothing added or dropped. It further lists the blob's size
//! and SHA-256 (compared with the stored bytes and the metadata) and the
//! plaintext's size and SHA-256. The signature binds all of it to the
//! installation; the verifier must be told which public keys it trusts.

pub mod manifest;
pub mod signing;
mod verify;

pub use manifest::{
    MANIFEST_FORMAT, Manifest, ManifestRecord, ManifestSignature, ManifestStream,
    SignManifestError, SignedManifest,
};
pub use signing::{InstallationKey, SigningKeyError, verifying_key_from_hex};
pub use verify::{
    Mismatch, VerifyError, VerifyReport, verify_recording, verify_recording_trusting,
};

pub use insights_core::blob::layout::{
    envelope_object_id, manifest_key, recording_prefix, stream_blob_key,
};
