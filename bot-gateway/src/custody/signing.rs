//! The per-installation Ed25519 key that signs chain-of-custody manifests.
//!
//! The key file (format, first-start creation, permission checks) is
//! [`insights_core::crypto::installation_key`], shared with `gdpr-tools`,
//! which signs erasure certificates with the same identity; this module
//! adds the Ed25519 signer on top.
//!
//! Whoever can read the file can sign manifests as this installation: the
//! same care as the KEK file applies (off the media volume, out of
//! long-lived backups). A Key Vault signer replaces it in production
//! together with the KEK provider.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use insights_core::crypto::installation_key::{
    FollowedKeyFile, InstallationKeyError, InstallationKeyFile,
};
use insights_core::domain::{SigningKeyRecord, signing_key_id};
use uuid::Uuid;

/// Errors of the installation key.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("installation signing key {path}: {problem}")]
    File { path: PathBuf, problem: String },
}

impl From<InstallationKeyError> for SigningKeyError {
    fn from(e: InstallationKeyError) -> Self {
        Self::File {
            path: e.path,
            problem: e.problem,
        }
    }
}

/// This installation's identity and manifest signing key. It follows a
/// rotation of the key file made by another process (`insights keys
/// rotate-signing` while `insights serve` runs): see
/// [`insights_core::crypto::installation_key`].
pub struct InstallationKey {
    file: FollowedKeyFile,
}

impl std::fmt::Debug for InstallationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallationKey")
            .field("installation_id", &self.installation_id())
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

fn signing_key(file: &InstallationKeyFile) -> SigningKey {
    SigningKey::from_bytes(file.secret_key())
}

impl InstallationKey {
    /// Opens the key file at `path`, creating it (and its directory, mode
    /// 0700) with a fresh key and installation id on first start. A file
    /// readable by group or others is tightened to 0600 with a warning.
    /// Blocking.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self, SigningKeyError> {
        Ok(Self {
            file: FollowedKeyFile::open_or_create(path)?,
        })
    }

    /// The installation id (named in every manifest; a rotation keeps it).
    pub fn installation_id(&self) -> Uuid {
        self.file.last().installation_id()
    }

    /// When the key (as last read) was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.file.last().created_at()
    }

    /// The public key (as last read), to trust when verifying.
    pub fn verifying_key(&self) -> VerifyingKey {
        signing_key(&self.file.last()).verifying_key()
    }

    /// The public key, lower-case hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.verifying_key().as_bytes())
    }

    /// The key's registered id ([`signing_key_id`]).
    pub fn key_id(&self) -> String {
        signing_key_id(self.verifying_key().as_bytes())
    }

    /// This key's entry for the signing-key registry, valid from the key
    /// file's creation.
    pub fn record(&self, node_name: &str) -> SigningKeyRecord {
        let file = self.file.last();
        let key = signing_key(&file).verifying_key();
        SigningKeyRecord {
            key_id: signing_key_id(key.as_bytes()),
            public_key: hex::encode(key.as_bytes()),
            node_name: node_name.to_owned(),
            installation_id: file.installation_id(),
            valid_from: file.created_at(),
            valid_until: None,
        }
    }

    /// Signs `message` with the key as last read.
    pub fn sign(&self, message: &[u8]) -> Signature {
        signing_key(&self.file.last()).sign(message)
    }

    /// Runs `f` with the current signing key under the key file's shared
    /// lock, having read the file again if it was rotated meanwhile: `f`
    /// stamps the evidence with the time and signs it, so the time lies
    /// within the validity of the key that signs. Blocking (a `stat`; a
    /// wait only while a rotation holds the lock).
    pub fn with_current<T>(&self, f: impl FnOnce(&SigningKey) -> T) -> Result<T, SigningKeyError> {
        Ok(self.file.with_current(|file| f(&signing_key(file)))?)
    }
}

/// Parses a public key from hex.
pub fn verifying_key_from_hex(s: &str) -> Option<VerifyingKey> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(s, &mut b).ok()?;
    VerifyingKey::from_bytes(&b).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::fs::{self, Permissions};
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/installation-signing-key.json");
        let a = InstallationKey::open_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = InstallationKey::open_or_create(&path).unwrap();
        assert_eq!(a.installation_id(), b.installation_id());
        assert_eq!(a.public_key_hex(), b.public_key_hex());
        let sig = a.sign(b"m");
        assert!(b.verifying_key().verify_strict(b"m", &sig).is_ok());
        assert!(!format!("{a:?}").contains("secret"));
        // No temporary files left.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn malformed_file_does_not_echo_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let secret = "zz".repeat(32);
        fs::write(
            &path,
            format!(
                "{{\"version\":1,\"installation_id\":\"{}\",\"created_at\":\"2024-01-01T00:00:00Z\",\"secret_key\":\"{secret}\"}}",
                Uuid::new_v4()
            ),
        )
        .unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        let e = InstallationKey::open_or_create(&path)
            .unwrap_err()
            .to_string();
        assert!(!e.contains(&secret), "{e}");
    }
}
