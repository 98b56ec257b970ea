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
    MANIFEST_FORMAT, Manifest, ManifestRecord, ManifestSignature, ManifestStream, SignedManifest,
};
pub use signing::{InstallationKey, SigningKeyError, verifying_key_from_hex};
pub use verify::{Mismatch, VerifyError, VerifyReport, verify_recording};

use insights_core::domain::{RecordingId, StreamId};
use uuid::Uuid;

/// The blob key prefix of a recording (a "folder").
pub fn recording_prefix(id: RecordingId) -> String {
    format!("recordings/{id}")
}

/// The blob key of stream `index`.
pub fn stream_blob_key(id: RecordingId, index: u16, content_type: &str) -> String {
    let ext = match content_type {
        "audio/ogg" | "audio/opus" => "ogg",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        _ => "bin",
    };
    format!("recordings/{id}/stream-{index}.{ext}.env")
}

/// The blob key of the manifest.
pub fn manifest_key(id: RecordingId) -> String {
    format!("recordings/{id}/manifest.json")
}

/// The envelope object id of a stream: the recording id for the primary
/// stream (what readers of `Recording::media` expect), the stream id for
/// the others, so one stream's blob can never pass for another's.
pub fn envelope_object_id(recording: RecordingId, index: u16, stream: StreamId) -> Uuid {
    if index == 0 {
        recording.as_uuid()
    } else {
        stream.as_uuid()
    }
}
