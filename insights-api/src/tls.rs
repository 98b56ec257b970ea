//! HTTPS in process (`[http] tls_cert_file`, `tls_key_file`): a rustls
//! server configuration whose certificate is re-read on demand (SIGHUP in
//! `insights serve`) without restarting the listener.
//!
//! The certificate is chosen per handshake by [`ReloadingCert`], a
//! [`ResolvesServerCert`] that hands out the current `Arc<CertifiedKey>`;
//! [`ReloadingCert::reload`] swaps that `Arc`. Connections already open
//! keep the session they negotiated; every new handshake sees the new
//! certificate. A reload that fails (missing file, malformed PEM, key not
//! matching the certificate) keeps the previous certificate and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The `Strict-Transport-Security` value sent on every HTTPS response:
/// one year. No `includeSubDomains`: the platform cannot know what else
/// lives under its domain.
pub const HSTS: &str = "max-age=31536000";

/// Why a certificate could not be loaded. Names the file, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("{cert} and {key}: {problem}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        problem: String,
    },
}

fn file_err(path: &Path, problem: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// Reads a PEM certificate chain (leaf first) and its private key.
fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, format!("malformed PEM: {e}")))?;
    if chain.is_empty() {
        return Err(file_err(cert, "no certificate in the file"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|_| {
        file_err(
            key,
            "no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file",
        )
    })?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| TlsError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        problem: format!("unusable certificate and key: {e}"),
    })
}

/// The listener's certificate, swappable while serving.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    /// Loads the certificate and key; fails (start-up refuses) if they are
    /// missing, malformed or do not belong together. Blocking.
    pub fn open(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let loaded = load(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(loaded)),
        }))
    }

    /// Re-reads both files; on success new handshakes use them, on failure
    /// the previous certificate stays. Blocking.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = Arc::new(load(&self.cert, &self.key)?);
        match self.current.write() {
            Ok(mut g) => *g = loaded,
            // A poisoned lock only means a writer panicked mid-assignment
            // of an `Arc`; the value is whole either way.
            Err(p) => *p.into_inner() = loaded,
        }
        Ok(())
    }

    /// A rustls server configuration (TLS 1.2 and 1.3) that asks this
    /// resolver for the certificate at every handshake.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, TlsError> {
        let cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| file_err(&self.cert, e))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(cfg)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        })
    }
}
