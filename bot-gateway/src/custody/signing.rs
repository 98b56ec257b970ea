//! The per-installation Ed25519 key that signs chain-of-custody manifests.
//!
//! Kept in its own JSON file (default `installation-signing-key.json`
//! beside the KEK file, so in the same 0700 key directory), mode 0600,
//! created on first start with the same crash-safe steps as the key file
//! (temporary file, fsync, then *link* to the final name so two processes
//! starting at once cannot both create one: the loser adopts the
//! winner's key), secret bytes zeroized in memory. A file of its own
//! rather than a field of the KEK file: the KEK file's format is strict
//! (`deny_unknown_fields`, version 1) and read by every process, while the
//! signing key belongs to the gateway; and the signing key must survive a
//! tenant's crypto-shredding, which rewrites the KEK file.
//!
//! Whoever can read the file can sign manifests as this installation: the
//! same care as the KEK file applies (off the media volume, out of
//! long-lived backups). A Key Vault signer replaces it in production
//! together with the KEK provider.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::spool::fsio;

const KEY_FILE_VERSION: u32 = 1;

/// Errors of the installation key.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("installation signing key {path}: {problem}")]
    File { path: PathBuf, problem: String },
}

fn file_err(path: &Path, problem: impl std::fmt::Display) -> SigningKeyError {
    SigningKeyError::File {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileIn {
    version: u32,
    installation_id: Uuid,
    created_at: DateTime<Utc>,
    #[serde(deserialize_with = "hex_secret")]
    secret_key: Zeroizing<[u8; 32]>,
}

#[derive(Serialize)]
struct KeyFileOut<'a> {
    version: u32,
    installation_id: Uuid,
    created_at: DateTime<Utc>,
    secret_key: &'a str,
}

fn hex_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Zeroizing<[u8; 32]>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Zeroizing<[u8; 32]>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a 256-bit key as 64 hex digits")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let mut key = Zeroizing::new([0u8; 32]);
            // Never echo the secret in the error.
            hex::decode_to_slice(v, &mut key[..])
                .map_err(|_| E::custom("the secret key is not 64 hex digits"))?;
            Ok(key)
        }
    }
    d.deserialize_str(V)
}

/// This installation's identity and manifest signing key.
pub struct InstallationKey {
    installation_id: Uuid,
    created_at: DateTime<Utc>,
    signing: SigningKey,
}

impl std::fmt::Debug for InstallationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallationKey")
            .field("installation_id", &self.installation_id)
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

impl InstallationKey {
    /// Opens the key file at `path`, creating it (and its directory, mode
    /// 0700) with a fresh key and installation id on first start. A file
    /// readable by group or others is tightened to 0600 with a warning.
    /// Blocking.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self, SigningKeyError> {
        let path = path.as_ref();
        match fs::metadata(path) {
            Ok(_) => Self::read(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Self::create(path)?;
                Self::read(path)
            }
            Err(e) => Err(file_err(path, e)),
        }
    }

    fn read(path: &Path) -> Result<Self, SigningKeyError> {
        let meta = fs::metadata(path).map_err(|e| file_err(path, e))?;
        if !meta.is_file() {
            return Err(file_err(path, "not a regular file"));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "installation signing key was accessible to group or others; setting mode 0600");
            fs::set_permissions(path, Permissions::from_mode(0o600))
                .map_err(|e| file_err(path, e))?;
        }
        let bytes = Zeroizing::new(fs::read(path).map_err(|e| file_err(path, e))?);
        let file: KeyFileIn = serde_json::from_slice(&bytes)
            .map_err(|e| file_err(path, format!("malformed: {e}")))?;
        if file.version != KEY_FILE_VERSION {
            return Err(file_err(
                path,
                format!("unsupported version {}", file.version),
            ));
        }
        Ok(Self {
            installation_id: file.installation_id,
            created_at: file.created_at,
            signing: SigningKey::from_bytes(&file.secret_key),
        })
    }

    fn create(path: &Path) -> Result<(), SigningKeyError> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        fsio::create_dir_private(dir).map_err(|e| file_err(dir, e))?;
        let mut secret = Zeroizing::new([0u8; 32]);
        OsRng
            .try_fill_bytes(&mut secret[..])
            .map_err(|e| file_err(path, format!("no randomness: {e}")))?;
        let hex_secret = Zeroizing::new(hex::encode(&secret[..]));
        let body = Zeroizing::new(
            serde_json::to_vec_pretty(&KeyFileOut {
                version: KEY_FILE_VERSION,
                installation_id: Uuid::new_v4(),
                created_at: insights_core::domain::now(),
                secret_key: &hex_secret,
            })
            .map_err(|e| file_err(path, e))?,
        );
        let tmp = dir.join(format!(".signing-key.tmp-{}", Uuid::new_v4().simple()));
        let written = (|| -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.set_permissions(Permissions::from_mode(0o600))?;
            f.write_all(&body)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(file_err(&tmp, e));
        }
        // Link, not rename: fails if another process created it meanwhile.
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                fsio::sync_dir(dir).map_err(|e| file_err(dir, e))?;
                tracing::info!(path = %path.display(), "created the installation signing key");
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(file_err(path, e)),
        }
    }

    /// The installation id (named in every manifest).
    pub fn installation_id(&self) -> Uuid {
        self.installation_id
    }

    /// When the key was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// The public key, to trust when verifying.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public key, lower-case hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.verifying_key().as_bytes())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
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
