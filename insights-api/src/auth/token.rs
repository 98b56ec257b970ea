//! Short-lived API tokens: JWTs (HS256) signed with a per-installation
//! key, `<data_dir>/keys/api-token.key` by default (32 random bytes, hex,
//! mode 0600, created on first start; directory 0700).
//!
//! A token names its account, its tenant (none for platform operators)
//! and the hash of the session it was issued with; the session is checked
//! on every use, so logging out revokes the token as well. Lifetime:
//! `auth.token_ttl_secs` (15 minutes by default).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use insights_core::fsio;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// `iss` of our API tokens.
pub const API_TOKEN_ISSUER: &str = "urn:insights:api";
/// `aud` of our API tokens.
pub const API_TOKEN_AUDIENCE: &str = "insights-api";

/// The claims of an API token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiClaims {
    pub iss: String,
    pub aud: String,
    /// Account id.
    pub sub: String,
    /// Our tenant id; absent for platform operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// SHA-256 (hex) of the session token the API token belongs to.
    pub sid: String,
    pub iat: u64,
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
}

/// Problems with the key file.
#[derive(Debug, thiserror::Error)]
pub enum TokenKeyError {
    #[error("API token key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("API token key {0} is not 64 hex digits")]
    Invalid(PathBuf),
}

/// Issues and verifies API tokens.
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer over raw key bytes.
    pub fn from_key(key: &[u8; 32]) -> Self {
        let kid = format!("insights-api-{}", &hex::encode(Sha256::digest(key))[..16]);
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            kid,
        }
    }

    /// Loads the key at `path`, creating it (0600, parent 0700) if
    /// missing. Two processes racing to create it end up with one key.
    pub fn open_or_create(path: &Path) -> Result<Self, TokenKeyError> {
        let io_err = |source| TokenKeyError::Io {
            path: path.to_owned(),
            source,
        };
        match fs::read_to_string(path) {
            Ok(text) => return Self::parse(path, &Zeroizing::new(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        fsio::create_dir_private(dir).map_err(io_err)?;
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::fill(&mut raw[..]);
        let text = Zeroizing::new(hex::encode(&raw[..]));
        // Linked into place only if still absent: if another process
        // created the key meanwhile, its key wins.
        fsio::create_new_atomic(path, text.as_bytes()).map_err(io_err)?;
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err)?);
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, TokenKeyError> {
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the API token key is readable by other users; it should be 0600");
        }
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), &mut key[..])
            .map_err(|_| TokenKeyError::Invalid(path.to_owned()))?;
        Ok(Self::from_key(&key))
    }

    /// The key id tokens carry (derived from the key, reveals nothing).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims`.
    pub fn issue(&self, claims: &ApiClaims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| TokenError::Invalid)
    }

    /// Verifies signature, algorithm, issuer, audience and expiry (no
    /// leeway: we issued it, on our clock).
    pub fn verify(&self, token: &str) -> Result<ApiClaims, TokenError> {
        self.verify_for(token, API_TOKEN_AUDIENCE)
    }

    /// [`TokenSigner::verify`] for another audience of ours (a first
    /// sign-in challenge is no API token, and the other way round).
    pub fn verify_for(&self, token: &str, audience: &str) -> Result<ApiClaims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[API_TOKEN_ISSUER]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 0;
        jsonwebtoken::decode::<ApiClaims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64) -> ApiClaims {
        let now = jsonwebtoken::get_current_timestamp();
        ApiClaims {
            iss: API_TOKEN_ISSUER.into(),
            aud: API_TOKEN_AUDIENCE.into(),
            sub: "acc".into(),
            tid: Some("t".into()),
            sid: "00".repeat(32),
            iat: now,
            exp: now.saturating_add_signed(exp_in),
        }
    }

    #[test]
    fn tokens_verify_expire_and_resist_tampering() {
        let s = TokenSigner::from_key(&[7; 32]);
        let t = s.issue(&claims(60)).unwrap_or_default();
        assert_eq!(
            s.verify(&t),
            Ok(claims(60)).map(|mut c| {
                c.iat = s.verify(&t).map(|x| x.iat).unwrap_or(0);
                c.exp = s.verify(&t).map(|x| x.exp).unwrap_or(0);
                c
            })
        );
        // Expired.
        let old = s.issue(&claims(-5)).unwrap_or_default();
        assert_eq!(s.verify(&old), Err(TokenError::Expired));
        // Another key.
        assert_eq!(
            TokenSigner::from_key(&[8; 32]).verify(&t),
            Err(TokenError::Invalid)
        );
        // A changed payload (another account) breaks the signature.
        let parts: Vec<&str> = t.split('.').collect();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut c: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap_or_default()).unwrap_or_default();
        c["sub"] = "someone-else".into();
        let forged = format!("{}.{}.{}", parts[0], b64.encode(c.to_string()), parts[2]);
        assert_eq!(s.verify(&forged), Err(TokenError::Invalid));
        // alg none.
        let none = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert_eq!(s.verify(&none), Err(TokenError::Invalid));
        // Wrong audience, same key.
        let mut other = claims(60);
        other.aud = "someone".into();
        let t2 = s.issue(&other).unwrap_or_default();
        assert_eq!(s.verify(&t2), Err(TokenError::Invalid));
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("keys").join("api-token.key");
        let a = TokenSigner::open_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let b = TokenSigner::open_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.kid(), b.kid());
        let mode = fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        let t = a.issue(&claims(60)).unwrap_or_default();
        assert!(b.verify(&t).is_ok());
        assert!(!format!("{a:?}").contains("encoding"));
    }
}
