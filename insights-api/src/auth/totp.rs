//! TOTP multi-factor (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step of
//! clock skew) for local accounts, with the `totp-rs` crate.
//!
//! The 160-bit seed exists in clear only in memory: at enrolment (to
//! print the `otpauth://` URI once) and while a code is checked. It is
//! stored sealed under the owner's key-encryption key
//! ([`insights_core::crypto::seal_secret`], context `totp:<account id>`).
//! A code is accepted once: the caller records the matched step
//! ([`AccountStore::record_login_success`](insights_core::store::AccountStore::record_login_success)).

use insights_core::crypto::{CryptoError, KeyProvider, SealedSecret, open_secret, seal_secret};
use insights_core::domain::{AccountId, TenantId};
use totp_rs::{Algorithm, Builder, Secret, Totp};
use zeroize::Zeroizing;

/// Issuer shown by authenticator apps.
pub const TOTP_ISSUER: &str = "Insights";
const SEED_LEN: usize = 20;

/// Problems with TOTP.
#[derive(Debug, thiserror::Error)]
pub enum TotpFailure {
    #[error("the TOTP secret cannot be sealed or opened: {0}")]
    Crypto(#[from] CryptoError),
    #[error("the TOTP parameters are invalid")]
    Invalid,
}

/// A new enrolment: what to store, and the URI to show the user once.
pub struct TotpEnrolment {
    pub sealed: SealedSecret,
    /// `otpauth://totp/...`: contains the seed; show once, never log.
    pub uri: Zeroizing<String>,
}

fn context(account: AccountId) -> String {
    format!("totp:{account}")
}

fn totp(seed: &[u8], account_name: &str) -> Result<Totp, TotpFailure> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(Secret::from(seed))
        .with_issuer(Some(TOTP_ISSUER))
        .with_account_name(account_name.replace(':', "_"))
        .build()
        .map_err(|_| TotpFailure::Invalid)
}

/// Creates a fresh seed for `account` of `owner` (a tenant, or
/// [`insights_core::crypto::PLATFORM_KEY_OWNER`]), sealed for storage.
pub async fn enrol(
    keys: &dyn KeyProvider,
    owner: TenantId,
    account: AccountId,
    account_name: &str,
) -> Result<TotpEnrolment, TotpFailure> {
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    rand::fill(&mut seed[..]);
    let t = totp(&seed[..], account_name)?;
    let uri = Zeroizing::new(t.to_url().map_err(|_| TotpFailure::Invalid)?);
    let sealed = seal_secret(keys, owner, &context(account), &seed[..]).await?;
    Ok(TotpEnrolment { sealed, uri })
}

/// Checks `code` at unix time `now`; returns the matched step.
pub async fn check(
    keys: &dyn KeyProvider,
    owner: TenantId,
    account: AccountId,
    sealed: &SealedSecret,
    code: &str,
    now: u64,
) -> Result<Option<i64>, TotpFailure> {
    let seed = open_secret(keys, owner, &context(account), sealed).await?;
    let t = totp(&seed, "")?;
    let code = digits_of(code);
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    Ok(t.check(&code, now).and_then(|s| i64::try_from(s).ok()))
}

/// A code as typed, without the spaces (or dashes) apps show in it:
/// `123 456` is `123456`.
pub fn digits_of(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect()
}

/// The code of `seed` at unix time `at` (for tests and the CLI tests).
pub fn code_at(seed_base32: &str, at: u64) -> Option<String> {
    let seed = Secret::try_from_base32(seed_base32).ok()?;
    let t = Builder::new().with_secret(seed).build().ok()?;
    Some(t.generate(at).to_string())
}

/// The base32 seed inside an `otpauth://` URI (for tests and the CLI tests).
pub fn seed_of_uri(uri: &str) -> Option<String> {
    uri.split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use insights_core::crypto::LocalKeyFile;

    #[tokio::test]
    async fn enrolment_uri_codes_and_steps() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let keys =
            LocalKeyFile::open(dir.path().join("kek.json")).unwrap_or_else(|e| panic!("{e}"));
        let t = TenantId::new();
        let a = AccountId::new();
        // The tenant's KEK comes from provisioning, never from enrolment.
        assert!(enrol(&keys, t, a, "ann@contoso.com").await.is_err());
        keys.ensure_kek(t).await.unwrap_or_else(|e| panic!("{e}"));
        let e = enrol(&keys, t, a, "ann@contoso.com")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            e.uri
                .starts_with("otpauth://totp/Insights:ann%40contoso.com?"),
            "{}",
            &*e.uri
        );
        let seed = seed_of_uri(&e.uri).unwrap_or_default();
        let now = 1_700_000_000;
        let code = code_at(&seed, now).unwrap_or_default();
        let step = check(&keys, t, a, &e.sealed, &code, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(step, Some(i64::try_from(now / 30).unwrap_or(0)));
        // One step of skew either way, not two.
        assert!(
            check(&keys, t, a, &e.sealed, &code, now + 30)
                .await
                .ok()
                .flatten()
                .is_some()
        );
        assert!(
            check(&keys, t, a, &e.sealed, &code, now + 90)
                .await
                .ok()
                .flatten()
                .is_none()
        );
        // Wrong code, wrong shape, another account: no.
        let near: Vec<String> = [now - 30, now, now + 30]
            .iter()
            .filter_map(|t| code_at(&seed, *t))
            .collect();
        let wrong = (0..1_000_000u32)
            .map(|n| format!("{n:06}"))
            .find(|c| !near.contains(c))
            .unwrap_or_default();
        assert!(
            check(&keys, t, a, &e.sealed, &wrong, now)
                .await
                .ok()
                .flatten()
                .is_none()
        );
        // As apps show it: with a space in the middle.
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(
            check(&keys, t, a, &e.sealed, &spaced, now)
                .await
                .ok()
                .flatten()
                .is_some()
        );
        assert!(
            check(&keys, t, a, &e.sealed, "12345", now)
                .await
                .ok()
                .flatten()
                .is_none()
        );
        assert!(
            check(&keys, t, AccountId::new(), &e.sealed, &code, now)
                .await
                .is_err()
        );
    }
}
