//! Test signing keys (RSA 2048, generated per test, never checked in) and
//! JWTs built by hand, so tests can also build the malformed ones. The
//! stand-in identity providers publish [`TestKey::jwk`].

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// An RSA signing key of a stand-in identity provider.
pub struct TestKey {
    /// The key id (`kid`) of its JWK and of the tokens it signs.
    pub kid: String,
    pair: RsaKeyPair,
}

impl TestKey {
    /// A fresh key with id `kid`.
    pub fn generate(kid: &str) -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .unwrap_or_else(|e| panic!("cannot generate an RSA test key: {e}"));
        TestKey {
            kid: kid.to_owned(),
            pair,
        }
    }

    /// The public key as a JWKS entry (`kty`, `use`, `kid`, `n`, `e`).
    pub fn jwk(&self) -> Value {
        let c: PublicKeyComponents<Vec<u8>> = self.pair.public_key().into();
        json!({
            "kty": "RSA", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&c.n), "e": URL_SAFE_NO_PAD.encode(&c.e),
        })
    }

    /// A JOSE header naming this key.
    pub fn header(&self) -> Value {
        json!({"alg": "RS256", "typ": "JWT", "kid": self.kid})
    }

    /// Signs `header.claims` with RS256.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let msg = format!("{}.{}", b64(header), b64(claims));
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                msg.as_bytes(),
                &mut sig,
            )
            .unwrap_or_else(|e| panic!("cannot sign with the test key: {e}"));
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// `claims` signed under [`Self::header`].
    pub fn token(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }
}

/// Base64url (no padding) of a JSON value, as in a JWT.
pub fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}
