//! Test signing keys (generated per test run, never checked in) and JWTs
//! built by hand, so tests can also build the malformed ones.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// An RSA signing key standing in for one of Microsoft's.
pub struct TestKey {
    pub kid: String,
    pair: RsaKeyPair,
}

impl TestKey {
    pub fn generate(kid: &str) -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap_or_else(|e| panic!("{e}"));
        TestKey {
            kid: kid.to_owned(),
            pair,
        }
    }

    /// The public key as published in a JWKS (the shape Microsoft uses).
    pub fn jwk(&self) -> Value {
        let c: PublicKeyComponents<Vec<u8>> = self.pair.public_key().into();
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&c.n),
            "e": URL_SAFE_NO_PAD.encode(&c.e),
            "issuer": "https://api.botframework.com",
        })
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
            .unwrap_or_else(|e| panic!("{e}"));
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// A token as Graph Communications sends it.
    pub fn token(&self, audience: &str, issuer: &str, tid: &str) -> String {
        self.sign(&self.header(), &claims(audience, issuer, tid))
    }

    pub fn header(&self) -> Value {
        json!({"alg": "RS256", "typ": "JWT", "kid": self.kid, "x5t": self.kid})
    }
}

pub fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims as Graph Communications sends them.
pub fn claims(audience: &str, issuer: &str, tid: &str) -> Value {
    let now = now();
    json!({
        "aud": audience,
        "iss": issuer,
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + 3600,
        "tid": tid,
    })
}
