//! Registered signing keys: the public half of every node's Ed25519 key
//! that ever signed custody manifests or erasure certificates, so that
//! evidence signed on one node verifies on any other, and after the key
//! that signed it was rotated.
//!
//! The registry lives in the metadata store (platform scope, no tenant);
//! [`PublicKeySet`] is the same list exported as a file
//! (`insights keys export-public`) for offline verification
//! (`--trusted-keys`).
//!
//! A key id is derived from the public key ([`signing_key_id`]), so a
//! node registers its key idempotently and evidence written before key
//! ids existed (it names only the public key) maps to the same entry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Value of [`PublicKeySet::format`].
pub const PUBLIC_KEY_SET_FORMAT: &str = "insights-signing-keys/v1";

/// The key id of an Ed25519 public key: `ed25519:` and the first 16 bytes
/// of the SHA-256 of the raw 32-byte key, lower-case hex.
pub fn signing_key_id(public_key: &[u8; 32]) -> String {
    let digest = Sha256::digest(public_key);
    format!("ed25519:{}", hex::encode(&digest[..16]))
}

/// One registered signing key (public half only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyRecord {
    /// [`signing_key_id`] of `public_key`.
    pub key_id: String,
    /// The Ed25519 public key, 64 lower-case hex digits.
    pub public_key: String,
    /// The node that signs with it (`node_name` setting).
    pub node_name: String,
    /// The installation (key file) it belongs to.
    pub installation_id: Uuid,
    /// From when it signs.
    pub valid_from: DateTime<Utc>,
    /// Set when the key was rotated out: it signs nothing new after this,
    /// but evidence it signed keeps verifying.
    pub valid_until: Option<DateTime<Utc>>,
}

impl SigningKeyRecord {
    /// Whether the key was retired at or before `at`.
    pub fn retired_at(&self, at: DateTime<Utc>) -> bool {
        self.valid_until.is_some_and(|u| u <= at)
    }

    /// Whether evidence dated `at` lies within the key's validity:
    /// `valid_from <= at < valid_until`.
    pub fn valid_at(&self, at: DateTime<Utc>) -> Result<(), SignerTrustError> {
        if let Some(until) = self.valid_until
            && until <= at
        {
            return Err(SignerTrustError::RetiredBefore {
                key_id: self.key_id.clone(),
                retired_at: until,
                evidence_at: at,
            });
        }
        if at < self.valid_from {
            return Err(SignerTrustError::NotYetValid {
                key_id: self.key_id.clone(),
                valid_from: self.valid_from,
                evidence_at: at,
            });
        }
        Ok(())
    }
}

/// Why a signer is not trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignerTrustError {
    /// The evidence names a key id the trusted set does not hold.
    #[error("signing key {key_id} is not registered (not in the trusted key set)")]
    UnknownKeyId { key_id: String },
    /// The key id is known but stands for another public key.
    #[error("signing key {key_id} is registered with another public key than {public_key}")]
    KeyMismatch { key_id: String, public_key: String },
    /// Evidence without key id, signed by a key the set does not hold.
    #[error("public key {public_key} is not registered (not in the trusted key set)")]
    UnknownPublicKey { public_key: String },
    /// The key was retired (rotated out) at or before the evidence's time:
    /// it vouches only for evidence dated before its retirement.
    #[error(
        "signing-key-retired: signing key {key_id} was retired at {retired_at}, before the \
         evidence's time {evidence_at}; it does not vouch for evidence dated after its retirement"
    )]
    RetiredBefore {
        key_id: String,
        retired_at: DateTime<Utc>,
        evidence_at: DateTime<Utc>,
    },
    /// The evidence is dated before the key existed.
    #[error(
        "signing-key-not-yet-valid: signing key {key_id} is valid from {valid_from}, after the \
         evidence's time {evidence_at}"
    )]
    NotYetValid {
        key_id: String,
        valid_from: DateTime<Utc>,
        evidence_at: DateTime<Utc>,
    },
}

/// A set of trusted signing keys: the registry's content, or its export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeySet {
    /// [`PUBLIC_KEY_SET_FORMAT`].
    pub format: String,
    pub keys: Vec<SigningKeyRecord>,
}

impl PublicKeySet {
    /// A set of these keys.
    pub fn new(keys: Vec<SigningKeyRecord>) -> Self {
        Self {
            format: PUBLIC_KEY_SET_FORMAT.into(),
            keys,
        }
    }

    /// Parses an exported key set, refusing another format.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let set: Self = serde_json::from_slice(bytes).map_err(|e| format!("malformed: {e}"))?;
        if set.format != PUBLIC_KEY_SET_FORMAT {
            return Err(format!(
                "unsupported format `{}` (expected {PUBLIC_KEY_SET_FORMAT})",
                set.format
            ));
        }
        for k in &set.keys {
            let mut raw = [0u8; 32];
            if hex::decode_to_slice(&k.public_key, &mut raw).is_err()
                || signing_key_id(&raw) != k.key_id
            {
                return Err(format!(
                    "key {} does not match its public key (edited file?)",
                    k.key_id
                ));
            }
        }
        Ok(set)
    }

    /// The export form (pretty JSON and a newline).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        Ok(format!("{}\n", serde_json::to_string_pretty(self)?))
    }

    /// Adds `key` unless the set holds its id already.
    pub fn add(&mut self, key: SigningKeyRecord) {
        if !self.keys.iter().any(|k| k.key_id == key.key_id) {
            self.keys.push(key);
        }
    }

    /// Decides whether evidence signed by `public_key` (hex, as the
    /// evidence names it) and naming `key_id` (absent in evidence written
    /// before key ids) comes from a trusted key. The caller still checks
    /// the signature itself with `public_key`.
    pub fn check(
        &self,
        key_id: Option<&str>,
        public_key: &str,
    ) -> Result<&SigningKeyRecord, SignerTrustError> {
        match key_id {
            Some(id) => {
                let k = self.keys.iter().find(|k| k.key_id == id).ok_or_else(|| {
                    SignerTrustError::UnknownKeyId {
                        key_id: id.to_owned(),
                    }
                })?;
                if k.public_key.eq_ignore_ascii_case(public_key) {
                    Ok(k)
                } else {
                    Err(SignerTrustError::KeyMismatch {
                        key_id: id.to_owned(),
                        public_key: public_key.to_owned(),
                    })
                }
            }
            None => self
                .keys
                .iter()
                .find(|k| k.public_key.eq_ignore_ascii_case(public_key))
                .ok_or_else(|| SignerTrustError::UnknownPublicKey {
                    public_key: public_key.to_owned(),
                }),
        }
    }

    /// [`Self::check`], and that the evidence's time `at` (a manifest's
    /// `uploaded_at`, a certificate's `completed_at`: when it was signed)
    /// lies within the key's validity ([`SigningKeyRecord::valid_at`]).
    pub fn check_at(
        &self,
        key_id: Option<&str>,
        public_key: &str,
        at: DateTime<Utc>,
    ) -> Result<&SigningKeyRecord, SignerTrustError> {
        let k = self.check(key_id, public_key)?;
        k.valid_at(at)?;
        Ok(k)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(pk: [u8; 32]) -> SigningKeyRecord {
        SigningKeyRecord {
            key_id: signing_key_id(&pk),
            public_key: hex::encode(pk),
            node_name: "a".into(),
            installation_id: Uuid::nil(),
            valid_from: crate::domain::now(),
            valid_until: None,
        }
    }

    #[test]
    fn key_ids_bind_public_keys_and_old_evidence_matches_by_key() {
        let a = record([1; 32]);
        let b = record([2; 32]);
        assert_ne!(a.key_id, b.key_id);
        assert!(a.key_id.starts_with("ed25519:") && a.key_id.len() == 8 + 32);
        let set = PublicKeySet::new(vec![a.clone()]);
        assert_eq!(set.check(Some(&a.key_id), &a.public_key), Ok(&a));
        assert_eq!(set.check(None, &a.public_key), Ok(&a));
        assert!(matches!(
            set.check(Some(&a.key_id), &b.public_key),
            Err(SignerTrustError::KeyMismatch { .. })
        ));
        assert!(matches!(
            set.check(Some(&b.key_id), &b.public_key),
            Err(SignerTrustError::UnknownKeyId { .. })
        ));
        assert!(matches!(
            set.check(None, &b.public_key),
            Err(SignerTrustError::UnknownPublicKey { .. })
        ));
        let json = set.to_json().unwrap();
        assert_eq!(PublicKeySet::from_json(json.as_bytes()).unwrap(), set);
        let edited = json.replace(&a.public_key, &b.public_key);
        assert!(PublicKeySet::from_json(edited.as_bytes()).is_err());
    }

    #[test]
    fn evidence_must_be_dated_within_the_keys_validity() {
        let t = crate::domain::now();
        let mut a = record([1; 32]);
        a.valid_from = t - chrono::Duration::hours(2);
        a.valid_until = Some(t);
        let set = PublicKeySet::new(vec![a.clone()]);
        let before = t - chrono::Duration::minutes(1);
        assert_eq!(set.check_at(Some(&a.key_id), &a.public_key, before), Ok(&a));
        for after in [t, t + chrono::Duration::seconds(1)] {
            let e = set
                .check_at(Some(&a.key_id), &a.public_key, after)
                .unwrap_err();
            assert!(matches!(e, SignerTrustError::RetiredBefore { .. }), "{e}");
            assert!(e.to_string().starts_with("signing-key-retired"), "{e}");
        }
        let early = t - chrono::Duration::hours(3);
        let e = set.check_at(None, &a.public_key, early).unwrap_err();
        assert!(matches!(e, SignerTrustError::NotYetValid { .. }), "{e}");
        // Still the registry first: an unknown key is that, whatever the time.
        assert!(matches!(
            set.check_at(Some("ed25519:00"), &a.public_key, before),
            Err(SignerTrustError::UnknownKeyId { .. })
        ));
    }
}
