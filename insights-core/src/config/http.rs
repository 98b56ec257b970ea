//! `[http]`: the API/web/gateway listener's transport.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[http]`: HTTPS in process. With both files set the listener speaks
/// only HTTPS (rustls), sends HSTS, and re-reads both files on SIGHUP
/// without dropping connections; with neither it speaks plain HTTP (the
/// embedded default, `http://127.0.0.1:8080`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// PEM certificate chain (leaf first).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate.
    pub tls_key_file: Option<PathBuf>,
}

impl HttpSettings {
    /// Whether the listener speaks HTTPS.
    pub fn tls(&self) -> bool {
        self.tls_cert_file.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), Some(_)) | (None, None) => Ok(()),
            (Some(_), None) => Err(ConfigError::Invalid {
                key: "http.tls_key_file",
                problem: "must be set together with http.tls_cert_file".into(),
            }),
            (None, Some(_)) => Err(ConfigError::Invalid {
                key: "http.tls_cert_file",
                problem: "must be set together with http.tls_key_file".into(),
            }),
        }
    }
}
