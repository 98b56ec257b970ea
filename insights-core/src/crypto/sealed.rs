//! Small secrets sealed for storage (a TOTP seed, later API credentials
//! of cloud providers): never kept in clear in a database.
//!
//! Each secret gets its own random data key, wrapped by the owning
//! tenant's key-encryption key through the [`KeyProvider`] (so the same
//! root of trust as media, rotated and shredded with it), and is sealed
//! with AES-256-GCM under that data key with a random 96-bit nonce.
//! The associated data binds the tenant, the data key and a caller-chosen
//! context (e.g. `totp:<account id>`), so a sealed value copied to
//! another account or tenant does not open.
//!
//! Secrets of platform operators (no tenant) are sealed under the KEK of
//! [`PLATFORM_KEY_OWNER`], a reserved tenant id that no tenant ever has
//! (the nil UUID).

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::keys::fill_random;
use super::{CryptoError, DataKey, KeyProvider, WrappedDataKey};
use crate::domain::{KeyId, TenantId};

/// The key owner of secrets that belong to no tenant (platform operators).
pub const PLATFORM_KEY_OWNER: TenantId = TenantId(uuid::Uuid::nil());

const AAD_LABEL: &[u8] = b"insights/sealed-secret/v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Largest secret accepted (seeds and API keys are far smaller).
const MAX_SECRET: usize = 4096;

/// A secret as stored: its wrapped data key and `nonce || ciphertext || tag`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub key: WrappedDataKey,
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key.id)
            .field("kek_id", &self.key.kek_id)
            .finish_non_exhaustive()
    }
}

fn aad(owner: TenantId, key: KeyId, context: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_LABEL.len() + 32 + context.len());
    a.extend_from_slice(AAD_LABEL);
    a.extend_from_slice(owner.as_uuid().as_bytes());
    a.extend_from_slice(key.as_uuid().as_bytes());
    a.extend_from_slice(context.as_bytes());
    a
}

/// Seals `secret` for `owner` (a tenant, or [`PLATFORM_KEY_OWNER`]) and
/// `context`. Creates the KEK of [`PLATFORM_KEY_OWNER`] if it has none; a
/// tenant's KEK must exist (it is made when the tenant is added), so a
/// node never invents one for a tenant ([`CryptoError::NoKek`]).
pub async fn seal_secret(
    keys: &dyn KeyProvider,
    owner: TenantId,
    context: &str,
    secret: &[u8],
) -> Result<SealedSecret, CryptoError> {
    if secret.len() > MAX_SECRET {
        return Err(CryptoError::InvalidInput("secret too long".into()));
    }
    if owner == PLATFORM_KEY_OWNER {
        keys.ensure_kek(owner).await?;
    }
    let dk = DataKey::generate(KeyId::new());
    let wrapped = keys.wrap(owner, &dk).await?;
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut sealed = vec![0u8; NONCE_LEN + secret.len() + TAG_LEN];
    let (nonce_out, rest) = sealed.split_at_mut(NONCE_LEN);
    let (ct, tag_out) = rest.split_at_mut(secret.len());
    nonce_out.copy_from_slice(&nonce);
    let buf =
        InOutBuf::new(secret, ct).map_err(|_| CryptoError::InvalidInput("buffer length".into()))?;
    let tag = Aes256Gcm::new(dk.bytes().into())
        .encrypt_inout_detached(&nonce.into(), &aad(owner, dk.id, context), buf)
        .map_err(|_| CryptoError::InvalidInput("secret cannot be sealed".into()))?;
    tag_out.copy_from_slice(&tag);
    Ok(SealedSecret {
        key: wrapped,
        sealed,
    })
}

/// Opens a secret sealed by [`seal_secret`] for the same owner and
/// context. Fails with [`CryptoError::Unwrap`] if anything differs or
/// was tampered with.
pub async fn open_secret(
    keys: &dyn KeyProvider,
    owner: TenantId,
    context: &str,
    s: &SealedSecret,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if s.key.tenant_id != owner || s.sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Unwrap);
    }
    let dk = keys.unwrap(&s.key).await?;
    let (nonce, rest) = s.sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(nonce);
    let mut t = aes_gcm::aead::Tag::<Aes256Gcm>::default();
    t.copy_from_slice(tag);
    let mut out = Zeroizing::new(vec![0u8; ct.len()]);
    let buf = InOutBuf::new(ct, &mut out[..]).map_err(|_| CryptoError::Unwrap)?;
    Aes256Gcm::new(dk.bytes().into())
        .decrypt_inout_detached(&n.into(), &aad(owner, dk.id, context), buf, &t)
        .map_err(|_| CryptoError::Unwrap)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::crypto::LocalKeyFile;

    #[tokio::test]
    async fn seal_open_roundtrip_and_binding() {
        let dir = tempfile::tempdir().unwrap();
        let kf = LocalKeyFile::open(dir.path().join("kek.json")).unwrap();
        let t = TenantId::new();
        // A tenant's KEK is never made on the way.
        assert!(matches!(
            seal_secret(&kf, t, "totp:a", b"x").await,
            Err(CryptoError::NoKek(_))
        ));
        kf.ensure_kek(t).await.unwrap();
        let s = seal_secret(&kf, t, "totp:a", b"JBSWY3DPEHPK3PXP")
            .await
            .unwrap();
        assert!(!s.sealed.windows(16).any(|w| w == b"JBSWY3DPEHPK3PXP"));
        let back = open_secret(&kf, t, "totp:a", &s).await.unwrap();
        assert_eq!(&back[..], b"JBSWY3DPEHPK3PXP");
        // Another context, another owner, or a flipped bit: refused.
        assert!(open_secret(&kf, t, "totp:b", &s).await.is_err());
        assert!(
            open_secret(&kf, TenantId::new(), "totp:a", &s)
                .await
                .is_err()
        );
        let mut bad = s.clone();
        let last = bad.sealed.len() - 1;
        bad.sealed[last] ^= 1;
        assert!(open_secret(&kf, t, "totp:a", &bad).await.is_err());
        // Platform secrets work under the reserved owner.
        let p = seal_secret(&kf, PLATFORM_KEY_OWNER, "totp:op", b"x")
            .await
            .unwrap();
        assert_eq!(
            &open_secret(&kf, PLATFORM_KEY_OWNER, "totp:op", &p)
                .await
                .unwrap()[..],
            b"x"
        );
        assert!(!format!("{s:?}").contains("sealed: ["));
    }
}
