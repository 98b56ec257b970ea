//! The local simulator's signing key.
//!
//! So that `insights simulate-call` works against a local gateway with no
//! Microsoft tenant, a gateway started with
//! `gateway.trust_simulator_key = true` also trusts tokens signed with an
//! Ed25519 key kept in the data dir (`<data_dir>/keys/simulator-signing.pem`,
//! PKCS#8, mode 0600, created on first use). The default is false (the key
//! is then neither created nor accepted), and a gateway with
//! `gateway.app_id` set refuses to start with it on.
//!
//! Simulator tokens carry `iss` = [`SIMULATOR_ISSUER`] (never a Microsoft
//! issuer) and are only ever verified with EdDSA against this one key, so
//! they cannot be confused with Graph's RS256 tokens.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use insights_core::fsio;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

/// `iss` of simulator tokens.
pub const SIMULATOR_ISSUER: &str = "urn:insights:simulator";

/// Lifetime of tokens minted by [`mint_simulator_token`].
pub const SIMULATOR_TOKEN_TTL: Duration = Duration::from_secs(600);

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// Problems with the simulator key.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorKeyError {
    #[error("simulator key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("simulator key {0} is not a PKCS#8 Ed25519 PEM key")]
    Invalid(PathBuf),
    #[error("cannot generate or use the simulator key")]
    Crypto,
}

/// The simulator signing key pair.
pub struct SimulatorKey {
    pkcs8: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
    kid: String,
}

impl std::fmt::Debug for SimulatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct SimulatorClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    tid: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// The default key path under a data dir.
pub fn default_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("simulator-signing.pem")
}

/// Mints a callback token as the simulator: signed with the key in
/// `<data_dir>/keys/simulator-signing.pem` (created if missing), for
/// `audience` (the gateway's `gateway.app_id`, or `insights-local-bot`
/// when none is set) and the Entra tenant `directory_tenant_id`, valid for
/// [`SIMULATOR_TOKEN_TTL`].
pub fn mint_simulator_token(
    data_dir: &Path,
    audience: &str,
    directory_tenant_id: Uuid,
) -> Result<String, SimulatorKeyError> {
    SimulatorKey::load_or_create(&default_key_path(data_dir))?.mint(
        audience,
        directory_tenant_id,
        SIMULATOR_TOKEN_TTL,
    )
}

impl SimulatorKey {
    /// Loads the key at `path`, creating it (0600, parent dir 0700) if it
    /// does not exist. Two processes racing to create it end up with the
    /// same key: the file is linked into place only if still absent.
    pub fn load_or_create(path: &Path) -> Result<Self, SimulatorKeyError> {
        match Self::load(path) {
            Err(SimulatorKeyError::Io { source, .. })
                if source.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let io_err = |source| SimulatorKeyError::Io {
            path: path.to_owned(),
            source,
        };
        let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|_| SimulatorKeyError::Crypto)?;
        let pem = Zeroizing::new(to_pem(doc.as_ref()));
        let dir = path.parent().unwrap_or(Path::new("."));
        fsio::create_dir_private(dir).map_err(io_err)?;
        // Linked into place only if still absent: if the key appeared
        // meanwhile, the other writer's key wins and ours is dropped.
        if fsio::create_new_atomic(path, pem.as_bytes()).map_err(io_err)? {
            tracing::info!(kid = %Self::load(path)?.kid, "created the simulator signing key");
        }
        Self::load(path)
    }

    /// Loads an existing key.
    pub fn load(path: &Path) -> Result<Self, SimulatorKeyError> {
        let io_err = |source| SimulatorKeyError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = fs::metadata(path).map_err(io_err)?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "the simulator signing key is readable by other users; it should be 0600"
            );
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err)?);
        let pkcs8 = from_pem(&text).ok_or_else(|| SimulatorKeyError::Invalid(path.to_owned()))?;
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| SimulatorKeyError::Invalid(path.to_owned()))?;
        let public = pair.public_key().as_ref().to_vec();
        let digest = Sha256::digest(&public);
        let kid = format!("insights-simulator-{}", &hex::encode(digest)[..16]);
        Ok(Self { pkcs8, public, kid })
    }

    /// The key id simulator tokens carry in their header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a verifier.
    pub fn decoding_key(&self) -> Result<DecodingKey, SimulatorKeyError> {
        DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(&self.public))
            .map_err(|_| SimulatorKeyError::Crypto)
    }

    /// A token for `audience` and tenant, valid for `ttl` from now.
    pub fn mint(
        &self,
        audience: &str,
        directory_tenant_id: Uuid,
        ttl: Duration,
    ) -> Result<String, SimulatorKeyError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = SimulatorClaims {
            iss: SIMULATOR_ISSUER,
            aud: audience,
            tid: directory_tenant_id.to_string(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&self.pkcs8))
            .map_err(|_| SimulatorKeyError::Crypto)
    }
}

fn to_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + 80);
    out.push_str(PEM_BEGIN);
    out.push('\n');
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(PEM_END);
    out.push('\n');
    out
}

fn from_pem(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let start = text.find(PEM_BEGIN)? + PEM_BEGIN.len();
    let end = text.find(PEM_END)?;
    let body: Zeroizing<String> = Zeroizing::new(
        text.get(start..end)?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    );
    STANDARD.decode(body.as_bytes()).ok().map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = default_key_path(dir.path());
        let a = SimulatorKey::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let b = SimulatorKey::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.kid(), b.kid());
        let mode = fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap_or(Path::new("/")))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(dir_mode, 0o700);
        assert!(!format!("{a:?}").contains("pkcs8"));
    }

    #[test]
    fn minted_tokens_verify_with_the_public_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let tid = Uuid::new_v4();
        let token =
            mint_simulator_token(dir.path(), "aud-1", tid).unwrap_or_else(|e| panic!("{e}"));
        let key =
            SimulatorKey::load(&default_key_path(dir.path())).unwrap_or_else(|e| panic!("{e}"));
        let mut v = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        v.set_audience(&["aud-1"]);
        v.set_issuer(&[SIMULATOR_ISSUER]);
        let dk = key.decoding_key().unwrap_or_else(|e| panic!("{e}"));
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &dk, &v)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(data.claims["tid"], tid.to_string());
        assert_eq!(data.header.kid.as_deref(), Some(key.kid()));
    }

    #[test]
    fn garbage_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("k.pem");
        fs::write(&path, "not a key").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            SimulatorKey::load_or_create(&path),
            Err(SimulatorKeyError::Invalid(_))
        ));
    }
}
