//! The signing keys an OpenID provider publishes: OpenID configuration →
//! `jwks_uri` → JWKS, cached. Used for Entra ID bearer tokens and OIDC
//! sign-in by `insights-api` and for Graph Communications callback tokens
//! by `bot-gateway` (one copy).
//!
//! Refresh policy:
//! * the first token fetches the keys (start-up never depends on Microsoft
//!   being reachable);
//! * keys older than the refresh interval are refetched in the background
//!   while the current ones keep serving (rotation without latency);
//! * a token signed with an unknown key id refetches at once, but at most
//!   once per minimum interval, so a flood of forged key ids cannot turn
//!   the gateway into a load generator against Microsoft;
//! * a failed refetch keeps the previous keys.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Where a key is found by: `kid`, or the certificate thumbprint `x5t`.
#[derive(Clone, Copy, Debug)]
pub struct KeyRef<'a> {
    /// The `kid` header.
    pub kid: Option<&'a str>,
    /// The `x5t` header (certificate SHA-1 thumbprint).
    pub x5t: Option<&'a str>,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    by_x5t: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

impl Keys {
    fn find(&self, r: KeyRef<'_>) -> Option<DecodingKey> {
        r.kid
            .and_then(|k| self.by_kid.get(k))
            .or_else(|| r.x5t.and_then(|t| self.by_x5t.get(t)))
            .cloned()
    }
}

/// Why no key could be found.
#[derive(Debug)]
pub enum KeyLookupError {
    /// The keys are known, this one is not among them.
    Unknown,
    /// No keys could be fetched at all.
    Unavailable(String),
}

/// The cached JWKS of one OpenID configuration.
pub struct JwksCache {
    http: reqwest::Client,
    openid_configuration_url: String,
    refresh_every: Duration,
    min_refresh: Duration,
    request_timeout: Duration,
    keys: RwLock<Keys>,
    /// Time of the last fetch attempt; held while fetching (single flight).
    fetch: Mutex<Option<Instant>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl JwksCache {
    /// A cache of the keys published at `openid_configuration_url`:
    /// refreshed in the background when older than `refresh_every`,
    /// refetched for an unknown key at most once per `min_refresh`.
    /// Fetches nothing yet.
    pub fn new(
        http: reqwest::Client,
        openid_configuration_url: String,
        refresh_every: Duration,
        min_refresh: Duration,
        request_timeout: Duration,
    ) -> Self {
        Self {
            http,
            openid_configuration_url,
            refresh_every,
            min_refresh,
            request_timeout,
            keys: RwLock::new(Keys::default()),
            fetch: Mutex::new(None),
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many times the keys were fetched (successfully or not).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lookup(&self, r: KeyRef<'_>) -> (Option<DecodingKey>, bool, bool) {
        match self.keys.read() {
            Ok(k) => {
                let stale = k
                    .fetched_at
                    .is_none_or(|t| t.elapsed() >= self.refresh_every);
                (k.find(r), stale, k.fetched_at.is_some())
            }
            Err(_) => (None, true, false),
        }
    }

    /// The key a token refers to.
    pub async fn key(self: &Arc<Self>, r: KeyRef<'_>) -> Result<DecodingKey, KeyLookupError> {
        let (found, stale, _) = self.lookup(r);
        if let Some(key) = found {
            if stale {
                let me = Arc::clone(self);
                tokio::spawn(async move {
                    let _ = me.refresh(false).await;
                });
            }
            return Ok(key);
        }
        let outcome = self.refresh(true).await;
        match self.lookup(r) {
            (Some(key), _, _) => Ok(key),
            (None, _, true) => Err(KeyLookupError::Unknown),
            (None, _, false) => Err(KeyLookupError::Unavailable(
                outcome.err().unwrap_or_else(|| "no keys published".into()),
            )),
        }
    }

    /// Refetches unless another fetch is running or one was attempted
    /// within the minimum interval. `wait`: wait for a running fetch
    /// instead of skipping.
    async fn refresh(&self, wait: bool) -> Result<(), String> {
        let mut last = if wait {
            self.fetch.lock().await
        } else {
            match self.fetch.try_lock() {
                Ok(g) => g,
                Err(_) => return Ok(()),
            }
        };
        if last.is_some_and(|t| t.elapsed() < self.min_refresh) {
            return Ok(());
        }
        *last = Some(Instant::now());
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.fetch_keys().await {
            Ok(keys) => {
                tracing::info!(
                    keys = keys.by_kid.len() + keys.by_x5t.len(),
                    "fetched token signing keys"
                );
                if let Ok(mut k) = self.keys.write() {
                    *k = keys;
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch token signing keys; keeping the previous ones");
                Err(e)
            }
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let res = self
            .http
            .get(url)
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !res.status().is_success() {
            return Err(format!("HTTP {}", res.status().as_u16()));
        }
        res.json().await.map_err(|e| e.without_url().to_string())
    }

    async fn fetch_keys(&self) -> Result<Keys, String> {
        let config = self.get_json(&self.openid_configuration_url).await?;
        // A configuration fetched over HTTPS cannot send us to plain HTTP
        // for the keys (plain HTTP only where the configuration itself is,
        // which settings allow only with `allow_insecure_http`).
        let secure = self.openid_configuration_url.starts_with("https://");
        let jwks_uri = config
            .get("jwks_uri")
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("https://") || (!secure && u.starts_with("http://")))
            .ok_or(if secure {
                "OpenID configuration has no https jwks_uri"
            } else {
                "OpenID configuration has no jwks_uri"
            })?
            .to_owned();
        let jwks = self.get_json(&jwks_uri).await?;
        let list = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("JWKS has no keys")?;
        let mut keys = Keys {
            fetched_at: Some(Instant::now()),
            ..Keys::default()
        };
        for raw in list {
            // One odd key must not hide the others.
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
                continue;
            };
            if !usable_rs256(&jwk) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            if let Some(kid) = &jwk.common.key_id {
                keys.by_kid.insert(kid.clone(), key.clone());
            }
            if let Some(x5t) = &jwk.common.x509_sha1_fingerprint {
                keys.by_x5t.insert(x5t.clone(), key);
            }
        }
        if keys.by_kid.is_empty() && keys.by_x5t.is_empty() {
            return Err("JWKS has no usable RS256 signing key".into());
        }
        Ok(keys)
    }
}

/// An RSA signing key that may be used with RS256.
fn usable_rs256(jwk: &Jwk) -> bool {
    matches!(jwk.algorithm, AlgorithmParameters::RSA(_))
        && matches!(
            jwk.common.public_key_use,
            None | Some(PublicKeyUse::Signature)
        )
        && matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256))
}
