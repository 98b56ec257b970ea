//! Single-use recovery codes: ten are made at the end of a first sign-in
//! and shown once; only the SHA-256 of each is stored (a code has 50 bits
//! of randomness, so a fast hash is enough, and a login checks it without
//! a second argon2 run). A code stands in for a TOTP code once.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// How many codes a first sign-in hands out.
pub const RECOVERY_CODES: usize = 10;
/// Letters and digits without look-alikes (no 0/o, 1/l/i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Ten fresh codes (`xxxxx-xxxxx`) and their digests, in the same order.
pub fn generate() -> (Vec<Zeroizing<String>>, Vec<String>) {
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    let mut hashes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut raw = Zeroizing::new([0u8; 10]);
        rand::fill(&mut raw[..]);
        let mut code = Zeroizing::new(String::with_capacity(11));
        for (i, b) in raw.iter().enumerate() {
            if i == 5 {
                code.push('-');
            }
            let n = usize::from(*b) % ALPHABET.len();
            code.push(char::from(ALPHABET[n]));
        }
        hashes.push(digest(&code));
        codes.push(code);
    }
    (codes, hashes)
}

/// The stored form of a code as typed (case, spaces and dashes ignored).
pub fn digest(code: &str) -> String {
    let norm: Zeroizing<String> = Zeroizing::new(
        code.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    hex::encode(Sha256::digest(format!(
        "insights-recovery-code\u{0}{}",
        &*norm
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_digests_ignore_formatting() {
        let (codes, hashes) = generate();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut h = hashes.clone();
        h.sort();
        h.dedup();
        assert_eq!(h.len(), RECOVERY_CODES);
        let c = &codes[0];
        assert_eq!(c.len(), 11);
        assert_eq!(digest(&c.to_uppercase().replace('-', " ")), hashes[0]);
        assert_ne!(digest("abcde-fghjk"), digest("abcde-fghjm"));
    }
}
