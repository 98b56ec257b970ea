//! Erasure certificates: a signed JSON document a DPO can hand to the data
//! subject or a regulator, checked by `insights gdpr verify-certificate`.
//!
//! # Format
//!
//! One line of canonical JSON (object keys sorted, no insignificant
//! white space) followed by `\n`:
//!
//! ```text
//! {"certificate":{…},"signature":"<128 hex digits>","signer":{"algorithm":"Ed25519","installation_id":"…","key_id":"ed25519:…","public_key":"<64 hex digits>"}}
//! ```
//!
//! `signer.key_id` names the key in the signing-key registry
//! ([`insights_core::domain::SigningKeyRecord`]); certificates written
//! before it existed lack it and verify by their public key.
//!
//! The Ed25519 signature covers the canonical JSON of
//! `{"certificate":…,"signer":…}`, so the signer's identity is signed too.
//! Verification re-serialises what it parsed and requires the file to be
//! byte-for-byte that canonical form: any edited byte — content, white
//! space, the case of a hex digit, the signature — fails.
//!
//! # Key
//!
//! The installation's Ed25519 key, the same file and format as the
//! chain-of-custody key of `bot-gateway` (`spool.signing_key_file`,
//! default `installation-signing-key.json` beside the KEK file, 0600):
//! one identity signs both manifests and certificates. The file is read
//! and, when missing, created by
//! [`insights_core::crypto::installation_key`] (not through `bot-gateway`,
//! which `gdpr-tools` must not depend on).

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use insights_core::crypto::installation_key::{FollowedKeyFile, InstallationKeyError};
use insights_core::domain::{PublicKeySet, SignerTrustError, signing_key_id};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Errors of signing keys and certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("signing key {path}: {problem}")]
    Key { path: PathBuf, problem: String },
    #[error("the certificate is malformed: {0}")]
    Malformed(String),
    #[error("the certificate is not in canonical form (it was edited)")]
    NotCanonical,
    #[error("the signature does not verify (the certificate was edited or signed by another key)")]
    BadSignature,
    #[error("the certificate was signed by key {found}, not by the trusted key {trusted}")]
    UntrustedSigner { found: String, trusted: String },
    #[error("the certificate's signer is not trusted: {0}")]
    UnregisteredSigner(#[from] SignerTrustError),
}

impl From<InstallationKeyError> for CertificateError {
    fn from(e: InstallationKeyError) -> Self {
        Self::Key {
            path: e.path,
            problem: e.problem,
        }
    }
}

/// The installation key that signs certificates. Opened from the key
/// file, it follows a rotation made by another process (`insights keys
/// rotate-signing` while `insights serve` runs): each certificate is
/// signed by the key current at that moment (see
/// [`insights_core::crypto::installation_key`]).
pub struct CertificateSigner {
    installation_id: Uuid,
    signing: SigningKey,
    /// The key file, followed across rotations (`None`: a fixed key).
    file: Option<FollowedKeyFile>,
}

impl std::fmt::Debug for CertificateSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateSigner")
            .field("installation_id", &self.installation_id())
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

impl CertificateSigner {
    /// Opens the installation key file, creating it (0600, in a 0700
    /// directory) when missing. Blocking.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self, CertificateError> {
        let file = FollowedKeyFile::open_or_create(path)?;
        let last = file.last();
        Ok(Self {
            installation_id: last.installation_id(),
            signing: SigningKey::from_bytes(last.secret_key()),
            file: Some(file),
        })
    }

    /// A signer from raw parts (tests).
    pub fn from_secret(installation_id: Uuid, secret: &[u8; 32]) -> Self {
        Self {
            installation_id,
            signing: SigningKey::from_bytes(secret),
            file: None,
        }
    }

    /// The key as last read (the fixed one without a file).
    fn current(&self) -> (Uuid, SigningKey) {
        match &self.file {
            Some(f) => {
                let last = f.last();
                (
                    last.installation_id(),
                    SigningKey::from_bytes(last.secret_key()),
                )
            }
            None => (self.installation_id, self.signing.clone()),
        }
    }

    pub fn installation_id(&self) -> Uuid {
        self.current().0
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.current().1.verifying_key()
    }

    /// The public key, lower-case hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.verifying_key().as_bytes())
    }

    /// The key's registered id.
    pub fn key_id(&self) -> String {
        signing_key_id(self.verifying_key().as_bytes())
    }

    /// Signs `certificate` and returns the file contents (canonical JSON
    /// and a newline), with the key current now.
    pub fn sign(&self, certificate: &Value) -> Result<String, CertificateError> {
        match &self.file {
            Some(f) => f.with_current(|k| {
                sign_with(
                    k.installation_id(),
                    &SigningKey::from_bytes(k.secret_key()),
                    certificate,
                )
            })?,
            None => sign_with(self.installation_id, &self.signing, certificate),
        }
    }
}

fn sign_with(
    installation_id: Uuid,
    signing: &SigningKey,
    certificate: &Value,
) -> Result<String, CertificateError> {
    let public = signing.verifying_key();
    let signer = serde_json::json!({
        "algorithm": "Ed25519",
        "installation_id": installation_id,
        "key_id": signing_key_id(public.as_bytes()),
        "public_key": hex::encode(public.as_bytes()),
    });
    let message = signed_message(certificate, &signer)?;
    let sig: Signature = signing.sign(&message);
    let doc = serde_json::json!({
        "certificate": certificate,
        "signature": hex::encode(sig.to_bytes()),
        "signer": signer,
    });
    Ok(format!("{}\n", canonical(&doc)?))
}

/// Canonical JSON: serde_json's map keeps keys sorted (no
/// `preserve_order`), compact output.
fn canonical(v: &Value) -> Result<String, CertificateError> {
    serde_json::to_string(v).map_err(|e| CertificateError::Malformed(e.to_string()))
}

fn signed_message(certificate: &Value, signer: &Value) -> Result<Vec<u8>, CertificateError> {
    Ok(canonical(&serde_json::json!({
        "certificate": certificate,
        "signer": signer,
    }))?
    .into_bytes())
}

/// A verified certificate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verified {
    pub certificate: Value,
    pub installation_id: String,
    pub public_key: String,
    /// The signer's key id (absent in certificates written before keys
    /// were registered).
    pub key_id: Option<String>,
}

/// Verifies certificate file contents against a set of trusted keys (the
/// signing-key registry or its export): the key id the certificate names
/// must be registered for the public key that signed; a certificate
/// without key id must be signed by a key in the set.
///
/// The certificate's time (`completed_at`, when the erasure finished and
/// the certificate was signed) must lie within the key's validity: a key
/// retired before that time does not vouch for it
/// ([`SignerTrustError::RetiredBefore`]).
pub fn verify_trusting(bytes: &[u8], trusted: &PublicKeySet) -> Result<Verified, CertificateError> {
    let v = verify(bytes, None)?;
    let at = match v.certificate.get("completed_at") {
        None | Some(Value::Null) => None,
        Some(t) => Some(
            serde_json::from_value::<chrono::DateTime<chrono::Utc>>(t.clone())
                .map_err(|_| CertificateError::Malformed("`completed_at` is not a time".into()))?,
        ),
    };
    match at {
        Some(at) => trusted.check_at(v.key_id.as_deref(), &v.public_key, at)?,
        None => trusted.check(v.key_id.as_deref(), &v.public_key)?,
    };
    Ok(v)
}

/// Verifies certificate file contents. With `trusted`, the signer must be
/// that key (hex); without, the key named in the file is used (which
/// proves integrity, not origin: pass the installation's key for that).
pub fn verify(bytes: &[u8], trusted: Option<&str>) -> Result<Verified, CertificateError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| CertificateError::Malformed("not UTF-8".into()))?;
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| CertificateError::Malformed(format!("not JSON: {e}")))?;
    if format!("{}\n", canonical(&doc)?) != text {
        return Err(CertificateError::NotCanonical);
    }
    let obj = doc
        .as_object()
        .ok_or_else(|| CertificateError::Malformed("not an object".into()))?;
    if obj.len() != 3 {
        return Err(CertificateError::Malformed(
            "expected exactly certificate, signature and signer".into(),
        ));
    }
    let field = |k: &str| {
        obj.get(k)
            .ok_or_else(|| CertificateError::Malformed(format!("`{k}` is missing")))
    };
    let certificate = field("certificate")?;
    let signer = field("signer")?;
    let sig_hex = field("signature")?
        .as_str()
        .ok_or_else(|| CertificateError::Malformed("`signature` is not a string".into()))?;
    let public_key = signer
        .get("public_key")
        .and_then(Value::as_str)
        .ok_or_else(|| CertificateError::Malformed("`signer.public_key` is missing".into()))?;
    if signer.get("algorithm").and_then(Value::as_str) != Some("Ed25519") {
        return Err(CertificateError::Malformed("unsupported algorithm".into()));
    }
    if let Some(t) = trusted
        && !t.trim().eq_ignore_ascii_case(public_key)
    {
        return Err(CertificateError::UntrustedSigner {
            found: public_key.to_owned(),
            trusted: t.trim().to_owned(),
        });
    }
    // Only the lower-case hex we write is accepted, so no two spellings
    // of one key or signature exist.
    let strict_hex = |s: &str, n: usize| -> Option<Vec<u8>> {
        let b = hex::decode(s).ok()?;
        (b.len() == n && hex::encode(&b) == s).then_some(b)
    };
    let key_bytes =
        strict_hex(public_key, 32).ok_or(CertificateError::Malformed("bad public key".into()))?;
    let mut kb = [0u8; 32];
    kb.copy_from_slice(&key_bytes);
    let key = VerifyingKey::from_bytes(&kb).map_err(|_| CertificateError::BadSignature)?;
    let sig_bytes = strict_hex(sig_hex, 64).ok_or(CertificateError::BadSignature)?;
    let mut sb = [0u8; 64];
    sb.copy_from_slice(&sig_bytes);
    let sig = Signature::from_bytes(&sb);
    let message = signed_message(certificate, signer)?;
    key.verify_strict(&message, &sig)
        .map_err(|_| CertificateError::BadSignature)?;
    Ok(Verified {
        certificate: certificate.clone(),
        installation_id: signer
            .get("installation_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        public_key: public_key.to_owned(),
        key_id: match signer.get("key_id") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => {
                return Err(CertificateError::Malformed(
                    "`signer.key_id` is not a string".into(),
                ));
            }
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn every_single_byte_edit_fails_verification() {
        let signer = CertificateSigner::from_secret(Uuid::nil(), &[7u8; 32]);
        let cert =
            serde_json::json!({"request_id": "r", "erased": [{"id": "a", "sha256": "00ff"}]});
        let file = signer.sign(&cert).unwrap();
        let ok = verify(file.as_bytes(), Some(&signer.public_key_hex())).unwrap();
        assert_eq!(ok.certificate, cert);
        let bytes = file.as_bytes();
        for i in 0..bytes.len() {
            for delta in [1u8, 0x20] {
                let mut edited = bytes.to_vec();
                edited[i] ^= delta;
                assert!(
                    verify(&edited, None).is_err(),
                    "edit at byte {i} (^{delta:#x}) verified"
                );
            }
        }
        let other = CertificateSigner::from_secret(Uuid::nil(), &[8u8; 32]);
        assert!(matches!(
            verify(bytes, Some(&other.public_key_hex())),
            Err(CertificateError::UntrustedSigner { .. })
        ));
    }

    /// New certificates name their key id and verify against a key set
    /// holding it; a certificate without key id (written before keys were
    /// registered) verifies by its public key; a foreign set refuses both.
    #[test]
    fn certificates_verify_against_registered_keys() {
        use insights_core::domain::SigningKeyRecord;
        let signer = CertificateSigner::from_secret(Uuid::nil(), &[7u8; 32]);
        let record = |s: &CertificateSigner| SigningKeyRecord {
            key_id: s.key_id(),
            public_key: s.public_key_hex(),
            node_name: "a".into(),
            installation_id: Uuid::nil(),
            valid_from: insights_core::domain::now(),
            valid_until: None,
        };
        let cert = serde_json::json!({"request_id": "r"});
        let file = signer.sign(&cert).unwrap();
        let set = PublicKeySet::new(vec![record(&signer)]);
        let v = verify_trusting(file.as_bytes(), &set).unwrap();
        assert_eq!(v.key_id, Some(signer.key_id()));

        // As written before key ids: the signer without `key_id`.
        let old_signer = serde_json::json!({
            "algorithm": "Ed25519",
            "installation_id": Uuid::nil(),
            "public_key": signer.public_key_hex(),
        });
        let sig = signer
            .signing
            .sign(&signed_message(&cert, &old_signer).unwrap());
        let old = format!(
            "{}\n",
            canonical(&serde_json::json!({
                "certificate": cert,
                "signature": hex::encode(sig.to_bytes()),
                "signer": old_signer,
            }))
            .unwrap()
        );
        let v = verify_trusting(old.as_bytes(), &set).unwrap();
        assert_eq!(v.key_id, None);

        let other = CertificateSigner::from_secret(Uuid::nil(), &[8u8; 32]);
        let foreign = PublicKeySet::new(vec![record(&other)]);
        for f in [&file, &old] {
            assert!(matches!(
                verify_trusting(f.as_bytes(), &foreign),
                Err(CertificateError::UnregisteredSigner(_))
            ));
        }
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/installation-signing-key.json");
        let a = CertificateSigner::open_or_create(&path).unwrap();
        let b = CertificateSigner::open_or_create(&path).unwrap();
        assert_eq!(a.public_key_hex(), b.public_key_hex());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    /// A key file as `bot-gateway` has always written it (pretty JSON,
    /// version 1) signs as the same key.
    #[test]
    fn an_existing_installation_key_file_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("installation-signing-key.json");
        let id = Uuid::new_v4();
        fs::write(
            &path,
            format!(
                "{{\n  \"version\": 1,\n  \"installation_id\": \"{id}\",\n  \"created_at\": \"2024-01-01T00:00:00Z\",\n  \"secret_key\": \"{}\"\n}}",
                "07".repeat(32)
            ),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let signer = CertificateSigner::open_or_create(&path).unwrap();
        assert_eq!(signer.installation_id(), id);
        assert_eq!(
            signer.public_key_hex(),
            CertificateSigner::from_secret(id, &[7u8; 32]).public_key_hex()
        );
    }
}
