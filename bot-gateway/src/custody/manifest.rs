//! The chain-of-custody manifest and its signature.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use insights_core::domain::{
    KeyId, ParticipantId, RecordingId, StreamId, TenantId, signing_key_id,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::signing::{InstallationKey, SigningKeyError, verifying_key_from_hex};

/// Value of [`Manifest::format`].
pub const MANIFEST_FORMAT: &str = "insights-custody-manifest/v1";
/// Prefix of the signed bytes (domain separation).
const SIGNING_CONTEXT: &[u8] = b"insights/custody-manifest/v1\n";
/// The only signature algorithm.
pub const ALGORITHM: &str = "ed25519";

/// What was captured and stored for one recording: everything needed to
/// check, offline, that the stored blobs hold exactly the audio the
/// gateway captured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The gateway installation that captured and signed.
    pub installation_id: Uuid,
    /// The registered id of the key that signed (set by
    /// [`SignedManifest::sign`]); absent in manifests written before
    /// signing keys were registered, which verify by their public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_id: Option<String>,
    pub tenant_id: TenantId,
    pub recording_id: RecordingId,
    /// Participant ids only (no names, numbers or addresses).
    pub participants: Vec<ParticipantId>,
    /// When the call started (as reported to the spool).
    pub started_at: DateTime<Utc>,
    /// When the spool entry was created (first audio could arrive).
    pub spooled_at: DateTime<Utc>,
    /// When capture ended.
    pub finished_at: DateTime<Utc>,
    /// When this manifest was made (upload).
    pub uploaded_at: DateTime<Utc>,
    /// Why the recording is partial (`recovered-after-restart`, ...), if it is.
    pub partial: Option<String>,
    /// The recording's data key (every stream, spool and blob).
    pub data_key_id: KeyId,
    /// The tenant's blob container.
    pub container: String,
    /// The spool media log's header, hex: with it and the plaintext, every
    /// record's bytes can be recomputed and checked against `records`.
    pub spool_header: String,
    /// Bytes after the last authentic record of the spool log (lost to a
    /// crash), 0 normally.
    pub spool_discarded_tail_bytes: u64,
    pub streams: Vec<ManifestStream>,
}

/// One stream in a [`Manifest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestStream {
    pub index: u16,
    pub stream_id: StreamId,
    pub participant_id: Option<ParticipantId>,
    pub content_type: String,
    /// The stream the recording's metadata (`media`) points to.
    pub primary: bool,
    /// The stream ended with its last record (not cut short).
    pub complete: bool,
    pub plaintext_size: u64,
    /// SHA-256 of the plaintext (the Ogg file), hex.
    pub plaintext_sha256: String,
    pub blob_key: String,
    pub blob_size: u64,
    /// SHA-256 of the stored (encrypted) blob, hex.
    pub blob_sha256: String,
    /// Every spool record of the stream, in order, as it was written.
    pub records: Vec<ManifestRecord>,
}

/// One spool record as written at capture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRecord {
    /// Record index in the spool log (all streams).
    pub index: u64,
    pub plaintext_len: u32,
    /// When it was sealed, µs since the Unix epoch.
    pub sealed_at: i64,
    pub last: bool,
    /// SHA-256 of the stored record bytes (header, ciphertext, tag), hex.
    pub sha256: String,
}

/// A manifest with its signature: the JSON stored next to the blobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    pub manifest: Manifest,
    pub signature: ManifestSignature,
}

/// Ed25519 signature over `"insights/custody-manifest/v1\n"` followed by
/// the manifest's canonical JSON (compact, fields in declaration order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSignature {
    /// `ed25519`.
    pub algorithm: String,
    /// The signer's public key, hex.
    pub public_key: String,
    /// The signature, hex.
    pub value: String,
}

/// Why a signature does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("unsupported signature algorithm `{0}`")]
    Algorithm(String),
    #[error("malformed public key or signature")]
    Malformed,
    #[error("signature does not match the manifest")]
    Invalid,
}

fn signed_bytes(m: &Manifest) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = SIGNING_CONTEXT.to_vec();
    serde_json::to_writer(&mut out, m)?;
    Ok(out)
}

/// Why a manifest could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignManifestError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Key(#[from] SigningKeyError),
}

impl SignedManifest {
    /// Signs `manifest` with the installation key's current version (read
    /// again if `insights keys rotate-signing` replaced it), naming its key
    /// id, and stamps `uploaded_at` with the signing time under the key
    /// file's lock: the manifest's time always lies within the validity
    /// of the key that signed it (see
    /// [`insights_core::crypto::installation_key`]).
    pub fn sign(mut manifest: Manifest, key: &InstallationKey) -> Result<Self, SignManifestError> {
        key.with_current(|signing| {
            let public = signing.verifying_key();
            manifest.uploaded_at = insights_core::domain::now();
            manifest.signing_key_id = Some(signing_key_id(public.as_bytes()));
            let sig = signing.sign(&signed_bytes(&manifest)?);
            Ok(Self {
                manifest,
                signature: ManifestSignature {
                    algorithm: ALGORITHM.into(),
                    public_key: hex::encode(public.as_bytes()),
                    value: hex::encode(sig.to_bytes()),
                },
            })
        })?
    }

    /// The stored form (pretty JSON).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec_pretty(self)
    }

    /// Parses the stored form.
    pub fn from_bytes(b: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(b)
    }

    /// Checks the signature against the public key it names; returns that
    /// key (the caller decides whether to trust it).
    pub fn verify_signature(&self) -> Result<VerifyingKey, SignatureError> {
        if self.signature.algorithm != ALGORITHM {
            return Err(SignatureError::Algorithm(self.signature.algorithm.clone()));
        }
        let key =
            verifying_key_from_hex(&self.signature.public_key).ok_or(SignatureError::Malformed)?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&self.signature.value, &mut sig)
            .map_err(|_| SignatureError::Malformed)?;
        let sig = Signature::from_bytes(&sig);
        let bytes = signed_bytes(&self.manifest).map_err(|_| SignatureError::Malformed)?;
        key.verify_strict(&bytes, &sig)
            .map_err(|_| SignatureError::Invalid)?;
        Ok(key)
    }
}
