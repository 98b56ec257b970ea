//! Test signing keys standing in for Microsoft's: the shared
//! [`insights_tests::keys::TestKey`] (generated per test run, never checked
//! in; JWTs built by hand, so tests can also build the malformed ones) with
//! the fields Graph Communications puts in its JWKs and token headers.

use std::ops::Deref;

use serde_json::{Value, json};

pub use insights_tests::keys::b64;

/// An RSA signing key standing in for one of Microsoft's.
pub struct TestKey(insights_tests::keys::TestKey);

impl Deref for TestKey {
    type Target = insights_tests::keys::TestKey;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl TestKey {
    pub fn generate(kid: &str) -> TestKey {
        TestKey(insights_tests::keys::TestKey::generate(kid))
    }

    /// The public key as published in a JWKS (the shape Microsoft uses).
    pub fn jwk(&self) -> Value {
        let mut jwk = self.0.jwk();
        jwk["x5t"] = json!(self.kid);
        jwk["issuer"] = json!("https://api.botframework.com");
        jwk
    }

    /// A token as Graph Communications sends it.
    pub fn token(&self, audience: &str, issuer: &str, tid: &str) -> String {
        self.sign(&self.header(), &claims(audience, issuer, tid))
    }

    pub fn header(&self) -> Value {
        json!({"alg": "RS256", "typ": "JWT", "kid": self.kid, "x5t": self.kid})
    }
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
