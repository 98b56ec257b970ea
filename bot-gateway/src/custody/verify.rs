//! `verify_recording`: blob bytes against manifest and metadata, the
//! manifest's signature, decryptability, and the capture-time record
//! hashes.

use std::collections::BTreeSet;
use std::fmt;

use ed25519_dalek::VerifyingKey;
use futures::StreamExt;
use insights_core::blob::{BlobError, BlobStore};
use insights_core::crypto::{DataKey, ExpectedIds, KeyProvider, StreamOpener};
use insights_core::domain::{
    PublicKeySet, RecordingId, SigningKeyRecord, Tenant, TenantId, signing_key_id,
};
use insights_core::store::{MetadataStore, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::manifest::{MANIFEST_FORMAT, ManifestRecord, ManifestStream, SignedManifest};
use super::{envelope_object_id, manifest_key, recording_prefix};
use crate::spool::format::{FileHeader, RecordSealer};

/// Largest manifest read (a day-long meeting with many streams stays far
/// below).
const MAX_MANIFEST_BYTES: usize = 256 * 1024 * 1024;
/// Record mismatches reported one by one per stream; the rest are counted.
const MAX_RECORD_REPORTS: usize = 10;

/// One thing that does not agree, named precisely.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Mismatch {
    /// No recording with this id in this tenant's metadata.
    RecordingMissing,
    /// The metadata has no media object.
    MetadataHasNoMedia,
    ManifestMissing {
        key: String,
    },
    ManifestUnreadable {
        problem: String,
    },
    /// The signature does not verify over the manifest.
    BadSignature {
        problem: String,
    },
    /// Valid signature, but by a key that is not trusted.
    UntrustedSigner {
        public_key: String,
        /// Why (key id not registered, registered for another key...).
        problem: String,
    },
    /// A manifest field disagrees with what was asked or with itself.
    ManifestField {
        field: String,
        manifest: String,
        expected: String,
    },
    /// A metadata field disagrees with the manifest.
    MetadataField {
        field: String,
        metadata: String,
        manifest: String,
    },
    BlobMissing {
        key: String,
    },
    BlobSize {
        stream: u16,
        key: String,
        manifest: u64,
        actual: u64,
    },
    BlobSha256 {
        stream: u16,
        key: String,
        manifest: String,
        actual: String,
    },
    /// The data key cannot be had (missing, shredded, not unwrappable).
    DataKey {
        problem: String,
    },
    /// The blob does not decrypt (tampered, truncated, wrong key).
    Decrypt {
        stream: u16,
        key: String,
        problem: String,
    },
    PlaintextSize {
        stream: u16,
        manifest: u64,
        actual: u64,
    },
    PlaintextSha256 {
        stream: u16,
        manifest: String,
        actual: String,
    },
    /// The spool record list does not cover the plaintext exactly.
    SpoolRecords {
        stream: u16,
        problem: String,
    },
    /// The plaintext re-sealed as spool record `index` does not give the
    /// hash recorded at capture.
    SpoolRecord {
        stream: u16,
        index: u64,
    },
    /// A blob under the recording's prefix that the manifest does not list.
    UnlistedBlob {
        key: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RecordingMissing => write!(f, "metadata: no such recording in this tenant"),
            Self::MetadataHasNoMedia => write!(f, "metadata: the recording has no media object"),
            Self::ManifestMissing { key } => write!(f, "manifest {key} is missing"),
            Self::ManifestUnreadable { problem } => write!(f, "manifest unreadable: {problem}"),
            Self::BadSignature { problem } => write!(f, "manifest signature: {problem}"),
            Self::UntrustedSigner {
                public_key,
                problem,
            } => {
                write!(
                    f,
                    "manifest signed by an untrusted key {public_key}: {problem}"
                )
            }
            Self::ManifestField {
                field,
                manifest,
                expected,
            } => write!(f, "manifest {field} is {manifest}, expected {expected}"),
            Self::MetadataField {
                field,
                metadata,
                manifest,
            } => write!(
                f,
                "metadata {field} is {metadata}, the manifest says {manifest}"
            ),
            Self::BlobMissing { key } => write!(f, "blob {key} is missing"),
            Self::BlobSize {
                stream,
                key,
                manifest,
                actual,
            } => write!(
                f,
                "stream {stream}: blob {key} has {actual} bytes, the manifest says {manifest}"
            ),
            Self::BlobSha256 {
                stream,
                key,
                manifest,
                actual,
            } => write!(
                f,
                "stream {stream}: blob {key} has SHA-256 {actual}, the manifest says {manifest}"
            ),
            Self::DataKey { problem } => write!(f, "data key: {problem}"),
            Self::Decrypt {
                stream,
                key,
                problem,
            } => write!(f, "stream {stream}: blob {key} does not decrypt: {problem}"),
            Self::PlaintextSize {
                stream,
                manifest,
                actual,
            } => write!(
                f,
                "stream {stream}: plaintext has {actual} bytes, the manifest says {manifest}"
            ),
            Self::PlaintextSha256 {
                stream,
                manifest,
                actual,
            } => write!(
                f,
                "stream {stream}: plaintext SHA-256 is {actual}, the manifest says {manifest}"
            ),
            Self::SpoolRecords { stream, problem } => {
                write!(f, "stream {stream}: spool records: {problem}")
            }
            Self::SpoolRecord { stream, index } => write!(
                f,
                "stream {stream}: spool record {index} differs from what was captured"
            ),
            Self::UnlistedBlob { key } => write!(f, "blob {key} is not listed in the manifest"),
        }
    }
}

/// The result of [`verify_recording`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub tenant_id: TenantId,
    pub recording_id: RecordingId,
    /// From the manifest, if it could be read.
    pub installation_id: Option<Uuid>,
    pub signer_public_key: Option<String>,
    /// The signing key's registered id, if the manifest names one.
    pub signer_key_id: Option<String>,
    /// What was checked and agreed.
    pub passed: Vec<String>,
    /// What did not agree. Empty means the recording verified.
    pub mismatches: Vec<Mismatch>,
}

impl VerifyReport {
    /// Whether everything agreed.
    pub fn is_ok(&self) -> bool {
        self.mismatches.is_empty()
    }

    fn pass(&mut self, what: impl Into<String>) {
        self.passed.push(what.into());
    }

    fn fail(&mut self, m: Mismatch) {
        self.mismatches.push(m);
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "recording {} (tenant {}): {}",
            self.recording_id,
            self.tenant_id,
            if self.is_ok() { "VERIFIED" } else { "MISMATCH" }
        )?;
        for p in &self.passed {
            writeln!(f, "  ok       {p}")?;
        }
        for m in &self.mismatches {
            writeln!(f, "  MISMATCH {m}")?;
        }
        Ok(())
    }
}

/// Verification could not be carried out (a backend is unreachable);
/// distinct from a recording that fails verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
}

async fn read_all(
    blobs: &dyn BlobStore,
    container: &str,
    key: &str,
    limit: usize,
) -> Result<Option<Vec<u8>>, VerifyError> {
    let mut s = match blobs.get_stream(container, key).await {
        Ok(s) => s,
        Err(BlobError::NotFound | BlobError::ContainerNotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > limit {
            break;
        }
    }
    Ok(Some(out))
}

/// [`verify_recording_trusting`] with a plain list of trusted public keys
/// (whatever key id the manifest names, a key in `trusted` is trusted).
pub async fn verify_recording(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    keys: &dyn KeyProvider,
    trusted: &[VerifyingKey],
    tenant: TenantId,
    recording_id: RecordingId,
) -> Result<VerifyReport, VerifyError> {
    let set = PublicKeySet::new(
        trusted
            .iter()
            .map(|k| SigningKeyRecord {
                key_id: signing_key_id(k.as_bytes()),
                public_key: hex::encode(k.as_bytes()),
                node_name: String::new(),
                installation_id: Uuid::nil(),
                valid_from: chrono::DateTime::UNIX_EPOCH,
                valid_until: None,
            })
            .collect(),
    );
    verify_recording_trusting(store, blobs, keys, &set, tenant, recording_id).await
}

/// Checks a stored recording offline: the manifest's signature (and that
/// its signer is in `trusted`: the key id the manifest names stands for
/// the public key that signed, or, in a manifest without key id, that
/// public key is in the set), manifest against metadata, every blob's
/// size and SHA-256 against the manifest, that every blob decrypts, the
/// plaintext's size and SHA-256, and every spool record hash recorded at
/// capture. Every disagreement is named in the report.
pub async fn verify_recording_trusting(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    keys: &dyn KeyProvider,
    trusted: &PublicKeySet,
    tenant: TenantId,
    recording_id: RecordingId,
) -> Result<VerifyReport, VerifyError> {
    let mut r = VerifyReport {
        tenant_id: tenant,
        recording_id,
        installation_id: None,
        signer_public_key: None,
        signer_key_id: None,
        passed: Vec::new(),
        mismatches: Vec::new(),
    };
    let rec = match store.get_recording(tenant, recording_id).await {
        Ok(rec) => Some(rec),
        Err(StoreError::NotFound) => {
            r.fail(Mismatch::RecordingMissing);
            None
        }
        Err(e) => return Err(e.into()),
    };
    let container = Tenant::container_name(tenant);
    let mkey = manifest_key(recording_id);
    let signed = match read_all(blobs, &container, &mkey, MAX_MANIFEST_BYTES).await? {
        None => {
            r.fail(Mismatch::ManifestMissing { key: mkey.clone() });
            None
        }
        Some(bytes) => match SignedManifest::from_bytes(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                r.fail(Mismatch::ManifestUnreadable {
                    problem: e.to_string(),
                });
                None
            }
        },
    };
    let Some(signed) = signed else {
        return Ok(r);
    };
    r.installation_id = Some(signed.manifest.installation_id);
    r.signer_public_key = Some(signed.signature.public_key.clone());
    r.signer_key_id = signed.manifest.signing_key_id.clone();
    match signed.verify_signature() {
        Ok(key) => {
            r.pass("manifest signature");
            // The manifest's time (when it was signed) must lie within
            // the key's validity: a retired key vouches only for what it
            // signed before its retirement.
            match trusted.check_at(
                signed.manifest.signing_key_id.as_deref(),
                &hex::encode(key.as_bytes()),
                signed.manifest.uploaded_at,
            ) {
                Ok(k) => r.pass(format!(
                    "manifest signer is trusted: key {} of node {}",
                    k.key_id,
                    if k.node_name.is_empty() {
                        "(given)"
                    } else {
                        &k.node_name
                    }
                )),
                Err(e) => r.fail(Mismatch::UntrustedSigner {
                    public_key: signed.signature.public_key.clone(),
                    problem: e.to_string(),
                }),
            }
        }
        Err(e) => r.fail(Mismatch::BadSignature {
            problem: e.to_string(),
        }),
    }
    let m = &signed.manifest;
    let field = |r: &mut VerifyReport, name: &str, got: String, want: String| {
        if got == want {
            true
        } else {
            r.fail(Mismatch::ManifestField {
                field: name.into(),
                manifest: got,
                expected: want,
            });
            false
        }
    };
    let ids_ok = [
        field(&mut r, "format", m.format.clone(), MANIFEST_FORMAT.into()),
        field(
            &mut r,
            "tenant_id",
            m.tenant_id.to_string(),
            tenant.to_string(),
        ),
        field(
            &mut r,
            "recording_id",
            m.recording_id.to_string(),
            recording_id.to_string(),
        ),
        field(&mut r, "container", m.container.clone(), container.clone()),
    ];
    if ids_ok.iter().all(|&ok| ok) {
        r.pass("manifest names this tenant, recording and container");
    }
    let header = match hex::decode(&m.spool_header)
        .ok()
        .and_then(|b| FileHeader::decode(&b).ok())
    {
        Some(h) => {
            let stream_ids: Vec<_> = m.streams.iter().map(|s| s.stream_id).collect();
            let positions_ok = m
                .streams
                .iter()
                .enumerate()
                .all(|(i, s)| usize::from(s.index) == i);
            if h.check(m.tenant_id, m.recording_id, m.data_key_id, &stream_ids)
                .is_ok()
                && positions_ok
            {
                r.pass("spool header matches the manifest's ids and streams");
                Some(h)
            } else {
                r.fail(Mismatch::ManifestField {
                    field: "spool_header".into(),
                    manifest: "ids or streams differ from the manifest".into(),
                    expected: "the manifest's tenant, recording, data key and streams".into(),
                });
                None
            }
        }
        None => {
            r.fail(Mismatch::ManifestField {
                field: "spool_header".into(),
                manifest: "not a spool header".into(),
                expected: "a spool media log header".into(),
            });
            None
        }
    };

    // Metadata against the manifest's primary stream.
    if let Some(rec) = &rec {
        match (&rec.media, m.streams.iter().find(|s| s.primary)) {
            (None, _) => r.fail(Mismatch::MetadataHasNoMedia),
            (Some(_), None) => r.fail(Mismatch::ManifestField {
                field: "streams".into(),
                manifest: "no primary stream".into(),
                expected: "one primary stream".into(),
            }),
            (Some(media), Some(p)) => {
                let before = r.mismatches.len();
                let checks: [(&str, String, String); 7] = [
                    (
                        "media.container",
                        media.container.clone(),
                        m.container.clone(),
                    ),
                    ("media.key", media.key.clone(), p.blob_key.clone()),
                    (
                        "media.byte_size",
                        media.byte_size.to_string(),
                        p.blob_size.to_string(),
                    ),
                    ("media.sha256", media.sha256.clone(), p.blob_sha256.clone()),
                    (
                        "media.data_key_id",
                        media.data_key_id.to_string(),
                        m.data_key_id.to_string(),
                    ),
                    (
                        "media.content_type",
                        media.content_type.clone(),
                        p.content_type.clone(),
                    ),
                    (
                        "media.plaintext_size",
                        media.plaintext_size.to_string(),
                        p.plaintext_size.to_string(),
                    ),
                ];
                for (name, md, mf) in checks {
                    if md != mf {
                        r.fail(Mismatch::MetadataField {
                            field: name.into(),
                            metadata: md,
                            manifest: mf,
                        });
                    }
                }
                if r.mismatches.len() == before {
                    r.pass("metadata media object matches the manifest");
                }
            }
        }
    }

    // The data key.
    let key = match store.get_data_key(tenant, m.data_key_id).await {
        Ok(w) => match keys.unwrap(&w).await {
            Ok(k) => Some(k),
            Err(e) => {
                r.fail(Mismatch::DataKey {
                    problem: e.to_string(),
                });
                None
            }
        },
        Err(StoreError::NotFound) => {
            r.fail(Mismatch::DataKey {
                problem: "not in the metadata store (missing or shredded)".into(),
            });
            None
        }
        Err(e) => return Err(e.into()),
    };

    for s in &m.streams {
        verify_stream(
            &mut r,
            blobs,
            tenant,
            &container,
            m.recording_id,
            m.data_key_id,
            s,
            key.as_ref(),
            header.as_ref(),
        )
        .await?;
    }

    // Nothing stored under the recording that the manifest does not list.
    let listed: BTreeSet<String> = m
        .streams
        .iter()
        .map(|s| s.blob_key.clone())
        .chain([mkey])
        .collect();
    match blobs
        .list(&container, &recording_prefix(recording_id))
        .await
    {
        Ok(keys) => {
            let before = r.mismatches.len();
            for k in keys.into_iter().filter(|k| !listed.contains(k)) {
                r.fail(Mismatch::UnlistedBlob { key: k });
            }
            if r.mismatches.len() == before {
                r.pass("no unlisted blobs under the recording");
            }
        }
        Err(BlobError::ContainerNotFound) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
async fn verify_stream(
    r: &mut VerifyReport,
    blobs: &dyn BlobStore,
    tenant: TenantId,
    container: &str,
    recording_id: RecordingId,
    key_id: insights_core::domain::KeyId,
    s: &ManifestStream,
    key: Option<&DataKey>,
    header: Option<&FileHeader>,
) -> Result<(), VerifyError> {
    let before = r.mismatches.len();
    let mut stream = match blobs.get_stream(container, &s.blob_key).await {
        Ok(st) => st,
        Err(BlobError::NotFound | BlobError::ContainerNotFound) => {
            r.fail(Mismatch::BlobMissing {
                key: s.blob_key.clone(),
            });
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let expected = ExpectedIds::new(
        tenant,
        envelope_object_id(recording_id, s.index, s.stream_id),
        key_id,
    );
    let mut opener = key.map(|k| StreamOpener::new(k, &expected));
    let mut checker = match (key, header) {
        (Some(k), Some(h)) => Some(RecordChecker::new(k, h, s)),
        _ => None,
    };
    let mut blob_sha = Sha256::new();
    let mut blob_size = 0u64;
    let mut plain_sha = Sha256::new();
    let mut plain_size = 0u64;
    let mut plain = Zeroizing::new(Vec::new());
    let mut decrypt_error: Option<String> = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        blob_sha.update(&chunk);
        blob_size += chunk.len() as u64;
        if let (Some(o), None) = (opener.as_mut(), &decrypt_error) {
            plain.clear();
            match o.update(&chunk, &mut plain) {
                Ok(()) => {
                    plain_sha.update(&plain[..]);
                    plain_size += plain.len() as u64;
                    if let Some(c) = checker.as_mut() {
                        c.feed(&plain);
                    }
                }
                Err(e) => decrypt_error = Some(e.to_string()),
            }
        }
    }
    if let (Some(o), None) = (opener.take(), &decrypt_error) {
        plain.clear();
        match o.finish(&mut plain) {
            Ok(()) => {
                plain_sha.update(&plain[..]);
                plain_size += plain.len() as u64;
                if let Some(c) = checker.as_mut() {
                    c.feed(&plain);
                }
            }
            Err(e) => decrypt_error = Some(e.to_string()),
        }
    }
    let blob_sha = hex::encode(blob_sha.finalize());
    if blob_size != s.blob_size {
        r.fail(Mismatch::BlobSize {
            stream: s.index,
            key: s.blob_key.clone(),
            manifest: s.blob_size,
            actual: blob_size,
        });
    }
    if blob_sha != s.blob_sha256 {
        r.fail(Mismatch::BlobSha256 {
            stream: s.index,
            key: s.blob_key.clone(),
            manifest: s.blob_sha256.clone(),
            actual: blob_sha,
        });
    }
    if key.is_some() {
        if let Some(problem) = decrypt_error {
            r.fail(Mismatch::Decrypt {
                stream: s.index,
                key: s.blob_key.clone(),
                problem,
            });
        } else {
            let plain_sha = hex::encode(plain_sha.finalize());
            if plain_size != s.plaintext_size {
                r.fail(Mismatch::PlaintextSize {
                    stream: s.index,
                    manifest: s.plaintext_size,
                    actual: plain_size,
                });
            }
            if plain_sha != s.plaintext_sha256 {
                r.fail(Mismatch::PlaintextSha256 {
                    stream: s.index,
                    manifest: s.plaintext_sha256.clone(),
                    actual: plain_sha,
                });
            }
            if let Some(c) = checker {
                for m in c.finish() {
                    r.fail(m);
                }
            }
        }
    }
    if r.mismatches.len() == before {
        r.pass(format!(
            "stream {}: blob size and SHA-256, decryption, plaintext SHA-256 and {} capture records",
            s.index,
            s.records.len()
        ));
    }
    Ok(())
}

/// Cuts a stream's plaintext at the manifest's record lengths and re-seals
/// each piece as the spool did, comparing record hashes.
struct RecordChecker<'a> {
    key: &'a DataKey,
    header: &'a FileHeader,
    stream: u16,
    records: &'a [ManifestRecord],
    next: usize,
    buf: Zeroizing<Vec<u8>>,
    bad: Vec<u64>,
    problem: Option<String>,
}

impl<'a> RecordChecker<'a> {
    fn new(key: &'a DataKey, header: &'a FileHeader, s: &'a ManifestStream) -> Self {
        Self {
            key,
            header,
            stream: s.index,
            records: &s.records,
            next: 0,
            buf: Zeroizing::new(Vec::new()),
            bad: Vec::new(),
            problem: None,
        }
    }

    fn feed(&mut self, plain: &[u8]) {
        self.buf.extend_from_slice(plain);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(rec) = self.records.get(self.next) {
            let need = rec.plaintext_len as usize;
            if self.buf.len() < need {
                return;
            }
            let ok = RecordSealer::starting_at(self.key, self.header.clone(), rec.index)
                .and_then(|mut sealer| {
                    let mut out = Vec::new();
                    sealer.seal(
                        self.stream,
                        rec.last,
                        rec.sealed_at,
                        &self.buf[..need],
                        &mut out,
                    )?;
                    Ok(hex::encode(Sha256::digest(&out)) == rec.sha256)
                })
                .unwrap_or(false);
            if !ok {
                self.bad.push(rec.index);
            }
            self.buf.drain(..need);
            self.next += 1;
        }
    }

    fn finish(mut self) -> Vec<Mismatch> {
        self.drain();
        if self.next < self.records.len() || !self.buf.is_empty() {
            self.problem = Some(format!(
                "{} of {} records matched to the plaintext, {} plaintext bytes left over",
                self.next,
                self.records.len(),
                self.buf.len()
            ));
        }
        let mut out: Vec<Mismatch> = self
            .bad
            .iter()
            .take(MAX_RECORD_REPORTS)
            .map(|&index| Mismatch::SpoolRecord {
                stream: self.stream,
                index,
            })
            .collect();
        if self.bad.len() > MAX_RECORD_REPORTS {
            out.push(Mismatch::SpoolRecords {
                stream: self.stream,
                problem: format!("{} records differ in all", self.bad.len()),
            });
        }
        if let Some(problem) = self.problem {
            out.push(Mismatch::SpoolRecords {
                stream: self.stream,
                problem,
            });
        }
        out
    }
}
