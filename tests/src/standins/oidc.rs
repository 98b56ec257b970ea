//! A stand-in Entra ID OpenID provider for token validation: the
//! multi-tenant discovery document and the JWKS it points to, on the
//! generic [`StandIn`]. Keys are [`TestKey`]s published per test; the
//! issuer of tenant `tid` is `{base}/{tid}/v2.0`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};

use super::http::{Reply, StandIn};
use crate::keys::TestKey;

/// Path of the discovery document.
pub const DISCOVERY_PATH: &str = "/organizations/v2.0/.well-known/openid-configuration";
/// Path of the JWKS.
pub const JWKS_PATH: &str = "/organizations/discovery/v2.0/keys";

/// The running issuer.
pub struct Issuer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    keys: Arc<Mutex<Vec<Value>>>,
    jwks_fetches: Arc<AtomicUsize>,
    _server: StandIn,
}

impl Issuer {
    /// Starts an issuer that publishes no key yet.
    pub async fn start() -> Issuer {
        let keys: Arc<Mutex<Vec<Value>>> = Arc::default();
        let jwks_fetches: Arc<AtomicUsize> = Arc::default();
        let (k, n) = (keys.clone(), jwks_fetches.clone());
        let server = StandIn::start(move |req, base| match req.path.as_str() {
            DISCOVERY_PATH => Reply::json(
                200,
                json!({
                    "issuer": format!("{base}/{{tenantid}}/v2.0"),
                    "jwks_uri": format!("{base}{JWKS_PATH}"),
                    "id_token_signing_alg_values_supported": ["RS256"],
                }),
            ),
            JWKS_PATH => {
                n.fetch_add(1, Ordering::SeqCst);
                let keys = k.lock().unwrap_or_else(PoisonError::into_inner).clone();
                Reply::json(200, json!({ "keys": keys }))
            }
            _ => Reply::empty(404),
        })
        .await;
        Issuer {
            base: server.base.clone(),
            keys,
            jwks_fetches,
            _server: server,
        }
    }

    /// The discovery document's URL.
    pub fn discovery_url(&self) -> String {
        format!("{}{DISCOVERY_PATH}", self.base)
    }

    /// Replaces the published keys.
    pub fn publish(&self, keys: &[&TestKey]) {
        *self.keys.lock().unwrap_or_else(PoisonError::into_inner) =
            keys.iter().map(|k| k.jwk()).collect();
    }

    /// How often the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The issuer of tokens for directory tenant `tid`.
    pub fn iss(&self, tid: uuid::Uuid) -> String {
        format!("{}/{tid}/v2.0", self.base)
    }
}
