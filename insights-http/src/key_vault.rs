//! [`AzureKeyVaultProvider`]: a [`KeyProvider`] whose tenant
//! key-encryption keys are RSA keys in Azure Key Vault, one per tenant,
//! named `<key_prefix><tenant id>`. The private halves never leave the
//! vault: data keys are wrapped and unwrapped by its REST operations
//! (api-version 7.4):
//!
//! * `GET {vault}/keys/{name}`: the key's current version (`key.kid`);
//! * `POST {vault}/keys/{name}/create` `{"kty":"RSA","key_size":3072,
//!   "key_ops":["wrapKey","unwrapKey"]}`: a new tenant's key;
//! * `POST {vault}/keys/{name}/{version}/wrapkey` and `/unwrapkey`
//!   `{"alg":"RSA-OAEP-256","value":<base64url>}` → `{"kid":…,"value":…}`;
//! * rotation (`insights keys rotate`): `POST {vault}/keys/{name}/create`
//!   on an existing key makes a new version, current at once (older
//!   versions still unwrap); `GET {vault}/keys/{name}/versions` (pages
//!   followed through `nextLink`, only within the configured vault) lists
//!   them; at the end `PATCH {vault}/keys/{name}/{version}`
//!   `{"attributes":{"enabled":false}}` disables every older version.
//!   A rotation is under way while more than one version is enabled, so
//!   an interrupted one resumes without making a third version.
//!
//! What is wrapped is `tenant id (16) || data key id (16) || data key (32)`,
//! so an unwrapped value is checked against the tenant and data key it is
//! stored for (RSA-OAEP has no associated data). [`WrappedDataKey::kek_id`]
//! is the vault's key id (`kid`); requests always go to the configured
//! vault, never to a host read from stored data, and a `kid` naming
//! another tenant's key is refused before the vault is asked.
//!
//! Failures: 408/429/5xx and transport errors are retried (bounded),
//! waiting the `Retry-After` the vault asks for (capped); 401 (after one
//! fresh token), 403 and 404 mean the key was revoked, disabled or deleted:
//! [`CryptoError::KekRevoked`], an alarm in the log (event
//! `key_provider.kek_revoked`) and `insights_key_provider_errors_total`
//! with `kind="revoked"`. Nothing here logs a token, a key or a response
//! message (only the vault's error code).
//!
//! Unwrapped data keys are cached in memory for a bounded time, zeroised
//! when evicted, so a playback start with a warm cache costs no round
//! trip. Wrapping (a recording's start) always reads the key first: Key
//! Vault wraps even with a disabled key, so `attributes.enabled` is what
//! tells a revoked key.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use insights_core::config::{ConfigError, Settings};
use insights_core::crypto::{CryptoError, DataKey, KeyProvider, WrappedDataKey};
use insights_core::domain::{KeyId, TenantId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::ClientOptions;
use crate::entra::{ClientCredentials, TokenError, TokenSource, parse_token};
use crate::retry::{RetryPolicy, TransportError, retry_after, retryable};

/// The Key Vault REST API version spoken.
pub const API_VERSION: &str = "7.4";
/// The scope (v2 endpoints) of Key Vault tokens.
pub const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
/// The resource (managed identity, v1 endpoints) of Key Vault tokens.
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";
/// The wrapping algorithm.
pub const WRAP_ALG: &str = "RSA-OAEP-256";
/// Size of the tenants' RSA keys, bits.
pub const KEY_SIZE: u32 = 3072;
/// The stable event code of the revoked-key alarm in the log.
pub const EVENT_KEK_REVOKED: &str = "key_provider.kek_revoked";
/// The stable event code of other key-service failures in the log.
pub const EVENT_KEY_SERVICE: &str = "key_provider.unavailable";
/// The metric counting key-provider failures by `kind` (`revoked`,
/// `unavailable`, `bad_wrapped_key`).
pub const ERRORS_METRIC: &str = "insights_key_provider_errors_total";

/// Plaintext wrapped by the vault: tenant id, data key id, data key.
const PLAIN_LEN: usize = 16 + 16 + 32;
/// RSA ciphertext lengths accepted (2048-, 3072- and 4096-bit keys).
const CIPHER_LENS: [usize; 3] = [256, 384, 512];

/// How to talk to the vault.
#[derive(Clone, Debug)]
pub struct KeyVaultOptions {
    /// `https://<name>.vault.azure.net` (no trailing slash needed).
    pub vault_url: String,
    /// Key names are `<key_prefix><tenant id>`.
    pub key_prefix: String,
    /// How long unwrapped data keys are kept.
    pub cache_ttl: Duration,
    /// Most unwrapped data keys kept.
    pub cache_max_entries: usize,
    /// Attempts per request (throttling, server errors, transport).
    pub retry: RetryPolicy,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
}

/// Where tokens for the vault come from.
pub enum VaultAuth {
    /// Entra client credentials (scope [`VAULT_SCOPE`]) for `tenant_id`.
    ClientCredentials {
        tenant_id: String,
        source: TokenSource,
    },
    /// A managed-identity token endpoint of the IMDS shape.
    ManagedIdentity(ManagedIdentity),
}

/// Tokens from a managed-identity endpoint (`GET
/// {endpoint}?api-version=2018-02-01&resource=https://vault.azure.net`
/// with `Metadata: true`), cached until shortly before they expire.
pub struct ManagedIdentity {
    http: reqwest::Client,
    endpoint: String,
    client_id: Option<String>,
    timeout: Duration,
    cached: Mutex<Option<(Zeroizing<String>, Instant)>>,
}

impl ManagedIdentity {
    /// Tokens from `endpoint`, for the user-assigned identity `client_id`
    /// if given.
    pub fn new(
        http: reqwest::Client,
        endpoint: String,
        client_id: Option<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            http,
            endpoint,
            client_id,
            timeout,
            cached: Mutex::new(None),
        }
    }

    async fn token(&self) -> Result<Zeroizing<String>, VaultError> {
        let mut cached = self.cached.lock().await;
        if let Some((t, renew_at)) = &*cached
            && Instant::now() < *renew_at
        {
            return Ok(t.clone());
        }
        let mut url = url::Url::parse(&self.endpoint)
            .map_err(|_| VaultError::Token("managed identity endpoint is not a URL".into()))?;
        url.query_pairs_mut()
            .append_pair("api-version", "2018-02-01")
            .append_pair("resource", VAULT_RESOURCE);
        if let Some(c) = &self.client_id {
            url.query_pairs_mut().append_pair("client_id", c);
        }
        let req = self
            .http
            .get(url)
            .header("Metadata", "true")
            .timeout(self.timeout);
        let res = req.send().await.map_err(|e| {
            VaultError::Token(format!("managed identity: {}", TransportError::from(e)))
        })?;
        let status = res.status();
        if !status.is_success() {
            return Err(VaultError::Token(format!(
                "managed identity endpoint answered HTTP {}",
                status.as_u16()
            )));
        }
        let body = res.bytes().await.map_err(|e| {
            VaultError::Token(format!("managed identity: {}", TransportError::from(e)))
        })?;
        let (token, lifetime) =
            parse_token(&body).map_err(|e| VaultError::Token(format!("managed identity: {e}")))?;
        let lifetime = lifetime.unwrap_or(Duration::from_secs(300));
        let renew_at = Instant::now()
            + lifetime
                .saturating_sub(Duration::from_secs(300))
                .max(lifetime / 2);
        *cached = Some((token.clone(), renew_at));
        Ok(token)
    }

    async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

impl VaultAuth {
    async fn token(&self) -> Result<Zeroizing<String>, VaultError> {
        match self {
            Self::ClientCredentials { tenant_id, source } => {
                source.token(tenant_id, None).await.map_err(|e| match e {
                    TokenError::Rejected { status, code } => VaultError::Token(format!(
                        "token endpoint refused the client credentials (HTTP {status}, error `{code}`)"
                    )),
                    other => VaultError::Token(other.to_string()),
                })
            }
            Self::ManagedIdentity(mi) => mi.token().await,
        }
    }

    async fn invalidate(&self) {
        match self {
            Self::ClientCredentials { tenant_id, source } => source.invalidate(tenant_id).await,
            Self::ManagedIdentity(mi) => mi.invalidate().await,
        }
    }
}

/// A failed vault request.
#[derive(Debug, thiserror::Error)]
enum VaultError {
    /// 401/403/404: the key is disabled, deleted or access revoked.
    #[error("HTTP {status}, error `{code}`")]
    Refused { status: u16, code: String },
    /// 400: the vault refused the request (e.g. a value it cannot unwrap).
    #[error("HTTP 400, error `{code}`")]
    BadRequest { code: String },
    /// Retryable failures until the attempts ran out.
    #[error("{attempts} attempt(s), last: {last}")]
    Exhausted { attempts: u32, last: String },
    /// Any other status.
    #[error("unexpected HTTP {status}, error `{code}`")]
    Unexpected { status: u16, code: String },
    /// No token.
    #[error("no token for the vault: {0}")]
    Token(String),
    /// A success answer that is not what the API promises.
    #[error("unusable answer: {0}")]
    BadAnswer(&'static str),
}

struct CachedKey {
    key: Zeroizing<[u8; 32]>,
    at: Instant,
}

/// Data keys wrapped and unwrapped by Azure Key Vault (see the module
/// docs).
pub struct AzureKeyVaultProvider {
    http: reqwest::Client,
    vault: String,
    opts: KeyVaultOptions,
    auth: VaultAuth,
    /// Unwrapped data keys by their stored wrapped form.
    keys: Mutex<HashMap<Vec<u8>, CachedKey>>,
}

impl AzureKeyVaultProvider {
    /// A provider for the vault of `opts`, sending requests with `http`
    /// (built with [`crate::ClientOptions`]) and tokens from `auth`.
    pub fn new(http: reqwest::Client, opts: KeyVaultOptions, auth: VaultAuth) -> Self {
        let vault = opts.vault_url.trim_end_matches('/').to_owned();
        Self {
            http,
            vault,
            opts,
            auth,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The vault key name of `tenant`.
    pub fn key_name(&self, tenant: TenantId) -> String {
        format!("{}{}", self.opts.key_prefix, tenant.as_uuid())
    }

    /// Sends one vault request (retried as the module docs say) and
    /// returns its JSON answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, VaultError> {
        let url = format!("{}{path}?api-version={API_VERSION}", self.vault);
        self.call_url(method, &url, body).await
    }

    /// [`Self::call`] with the whole URL (a `nextLink`).
    async fn call_url(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, VaultError> {
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let token = self.auth.token().await?;
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token.as_str())
                .header("accept", "application/json")
                .timeout(self.opts.request_timeout);
            if let Some(b) = body {
                req = req.json(b);
            }
            let (last, wait) = match req.send().await {
                Ok(res) if res.status().is_success() => {
                    let bytes = res.bytes().await.map_err(|e| VaultError::Exhausted {
                        attempts: attempt,
                        last: TransportError::from(e).to_string(),
                    })?;
                    return serde_json::from_slice(&bytes)
                        .map_err(|_| VaultError::BadAnswer("not JSON"));
                }
                Ok(res) => {
                    let status = res.status();
                    let wait = retry_after(res.headers(), SystemTime::now())
                        .map(|w| w.min(self.opts.max_retry_after))
                        .unwrap_or_else(|| self.opts.retry.backoff(attempt));
                    let code = vault_error_code(&res.bytes().await.unwrap_or_default());
                    match status {
                        StatusCode::UNAUTHORIZED if !refreshed => {
                            // The token may have been revoked or expired
                            // early: one more try with a fresh one.
                            refreshed = true;
                            self.auth.invalidate().await;
                            attempt -= 1;
                            continue;
                        }
                        StatusCode::UNAUTHORIZED
                        | StatusCode::FORBIDDEN
                        | StatusCode::NOT_FOUND => {
                            return Err(VaultError::Refused {
                                status: status.as_u16(),
                                code,
                            });
                        }
                        StatusCode::BAD_REQUEST => return Err(VaultError::BadRequest { code }),
                        s if retryable(s) => (format!("HTTP {}, error `{code}`", s.as_u16()), wait),
                        s => {
                            return Err(VaultError::Unexpected {
                                status: s.as_u16(),
                                code,
                            });
                        }
                    }
                }
                Err(e) => (
                    TransportError::from(e).to_string(),
                    self.opts.retry.backoff(attempt),
                ),
            };
            if attempt >= self.opts.retry.max_attempts {
                return Err(VaultError::Exhausted {
                    attempts: attempt,
                    last,
                });
            }
            tracing::debug!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "key vault request retried"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Maps a vault failure for `tenant` to a crypto error, raising the
    /// alarm (log event and metric).
    fn fail(&self, tenant: TenantId, op: &'static str, e: VaultError) -> CryptoError {
        match e {
            VaultError::Refused { status, code } => {
                metrics::counter!(ERRORS_METRIC, "kind" => "revoked").increment(1);
                tracing::error!(
                    event = EVENT_KEK_REVOKED,
                    tenant = %tenant,
                    op,
                    status,
                    code = %code,
                    "ALARM: the key vault refuses the tenant's key-encryption key (revoked, disabled or deleted); recordings of this tenant are refused"
                );
                CryptoError::KekRevoked {
                    tenant,
                    reason: format!("HTTP {status}, error `{code}`"),
                }
            }
            VaultError::BadRequest { code } if op == "unwrapkey" => {
                metrics::counter!(ERRORS_METRIC, "kind" => "bad_wrapped_key").increment(1);
                tracing::warn!(event = "key_provider.unwrap_refused", tenant = %tenant, code = %code, "the key vault cannot unwrap a data key (edited or foreign)");
                CryptoError::Unwrap
            }
            other => {
                metrics::counter!(ERRORS_METRIC, "kind" => "unavailable").increment(1);
                tracing::error!(event = EVENT_KEY_SERVICE, tenant = %tenant, op, error = %other, "the key vault did not answer usably");
                CryptoError::KeyService(format!("azure key vault {op}: {other}"))
            }
        }
    }

    fn bad_wrapped(tenant: TenantId, key: KeyId, reason: &'static str) -> CryptoError {
        metrics::counter!(ERRORS_METRIC, "kind" => "bad_wrapped_key").increment(1);
        tracing::warn!(event = "key_provider.bad_wrapped_key", tenant = %tenant, data_key = %key, reason, "a wrapped data key was refused");
        CryptoError::BadWrappedKey {
            tenant,
            key,
            reason,
        }
    }

    /// The `(name, version)` of a key id of this vault's shape
    /// (`…/keys/{name}/{version}`).
    fn split_kid(kid: &str) -> Option<(&str, &str)> {
        let (_, path) = kid.rsplit_once("/keys/")?;
        let (name, version) = path.split_once('/')?;
        (!name.is_empty() && !version.is_empty() && !version.contains('/'))
            .then_some((name, version))
    }

    /// Reads the tenant's key (`GET {vault}/keys/{name}`): its current
    /// `kid`, or the refusal.
    async fn get_key(&self, tenant: TenantId) -> Result<String, VaultError> {
        let v = self
            .call(
                Method::GET,
                &format!("/keys/{}", self.key_name(tenant)),
                None,
            )
            .await?;
        if v.pointer("/attributes/enabled") == Some(&Value::Bool(false)) {
            return Err(VaultError::Refused {
                status: 403,
                code: "KeyDisabled".into(),
            });
        }
        kid_of(&v)
    }

    /// Every version of the tenant's key: `(version, enabled)`, following
    /// `nextLink` pages of this vault only.
    async fn versions(&self, tenant: TenantId) -> Result<Vec<(String, bool)>, VaultError> {
        let name = self.key_name(tenant);
        let mut out = Vec::new();
        let mut page = self
            .call(Method::GET, &format!("/keys/{name}/versions"), None)
            .await?;
        for _ in 0..10_000 {
            let items = page
                .get("value")
                .and_then(Value::as_array)
                .ok_or(VaultError::BadAnswer("no version list"))?;
            for item in items {
                let kid = item
                    .get("kid")
                    .and_then(Value::as_str)
                    .ok_or(VaultError::BadAnswer("a version without kid"))?;
                let Some((n, version)) = Self::split_kid(kid) else {
                    return Err(VaultError::BadAnswer("a version kid of another shape"));
                };
                if n != name {
                    return Err(VaultError::BadAnswer("a version of another key"));
                }
                let enabled = item.pointer("/attributes/enabled") != Some(&Value::Bool(false));
                out.push((version.to_owned(), enabled));
            }
            match page.get("nextLink").and_then(Value::as_str) {
                None | Some("") => return Ok(out),
                Some(next) => {
                    // Never a host read from an answer: only this vault.
                    if !next.starts_with(&format!("{}/", self.vault)) {
                        return Err(VaultError::BadAnswer("nextLink outside the vault"));
                    }
                    page = self.call_url(Method::GET, next, None).await?;
                }
            }
        }
        Err(VaultError::BadAnswer("endless version list"))
    }

    /// Creates a new version of the tenant's key (or its first one).
    async fn create_version(&self, tenant: TenantId) -> Result<String, VaultError> {
        let body = json!({
            "kty": "RSA",
            "key_size": KEY_SIZE,
            "key_ops": ["wrapKey", "unwrapKey"],
        });
        let v = self
            .call(
                Method::POST,
                &format!("/keys/{}/create", self.key_name(tenant)),
                Some(&body),
            )
            .await?;
        kid_of(&v)
    }

    /// Whether `w` is wrapped under a version of its tenant's key in this
    /// provider's naming (`insights keys migrate` tells keys already in
    /// the vault from those its source provider must unwrap).
    pub fn wraps(&self, w: &WrappedDataKey) -> bool {
        let name = self.key_name(w.tenant_id);
        Self::split_kid(&w.kek_id).is_some_and(|(n, _)| n == name)
    }

    fn cache_key(w: &WrappedDataKey) -> Vec<u8> {
        let mut k = Vec::with_capacity(32 + w.kek_id.len() + 1 + w.wrapped.len());
        k.extend_from_slice(w.tenant_id.as_uuid().as_bytes());
        k.extend_from_slice(w.id.as_uuid().as_bytes());
        k.extend_from_slice(w.kek_id.as_bytes());
        k.push(0);
        k.extend_from_slice(&w.wrapped);
        k
    }

    async fn remember(&self, w: &WrappedDataKey, key: &DataKey) {
        if self.opts.cache_ttl.is_zero() || self.opts.cache_max_entries == 0 {
            return;
        }
        let mut cache = self.keys.lock().await;
        if cache.len() >= self.opts.cache_max_entries {
            // Dropping an entry zeroises its key.
            let ttl = self.opts.cache_ttl;
            cache.retain(|_, c| c.at.elapsed() < ttl);
            if cache.len() >= self.opts.cache_max_entries
                && let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, c)| c.at)
                    .map(|(k, _)| k.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(
            Self::cache_key(w),
            CachedKey {
                key: Zeroizing::new(*key.bytes()),
                at: Instant::now(),
            },
        );
    }

    async fn recall(&self, w: &WrappedDataKey) -> Option<DataKey> {
        let mut cache = self.keys.lock().await;
        let k = Self::cache_key(w);
        match cache.get(&k) {
            Some(c) if c.at.elapsed() < self.opts.cache_ttl => {
                Some(DataKey::from_bytes(w.id, Zeroizing::new(*c.key)))
            }
            Some(_) => {
                cache.remove(&k);
                None
            }
            None => None,
        }
    }
}

/// `key.kid` of a key bundle, or `kid` of an operation result.
fn kid_of(v: &Value) -> Result<String, VaultError> {
    v.pointer("/key/kid")
        .or_else(|| v.get("kid"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(VaultError::BadAnswer("no kid"))
}

/// The vault's error code (`{"error":{"code":…}}`), or `unknown`; the
/// message is never kept (it may quote names).
fn vault_error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| {
            b.pointer("/error/code")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|c| {
            !c.is_empty()
                && c.len() <= 64
                && c.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        })
        .unwrap_or_else(|| "unknown".into())
}

fn plaintext(tenant: TenantId, key: &DataKey) -> Zeroizing<Vec<u8>> {
    let mut p = Zeroizing::new(Vec::with_capacity(PLAIN_LEN));
    p.extend_from_slice(tenant.as_uuid().as_bytes());
    p.extend_from_slice(key.id.as_uuid().as_bytes());
    p.extend_from_slice(key.bytes());
    p
}

#[async_trait]
impl KeyProvider for AzureKeyVaultProvider {
    fn backend(&self) -> &'static str {
        "azure-key-vault"
    }

    async fn health(&self) -> Result<(), CryptoError> {
        self.auth
            .token()
            .await
            .map(drop)
            .map_err(|e| CryptoError::KeyService(format!("azure key vault: {e}")))
    }

    /// Reads the tenant's key; creates it only if the vault says it does
    /// not exist (404 `KeyNotFound`). A disabled key (403) is an error:
    /// never a new version behind the operator's back.
    async fn ensure_kek(&self, tenant: TenantId) -> Result<String, CryptoError> {
        match self.get_key(tenant).await {
            Ok(kid) => return Ok(kid),
            Err(VaultError::Refused { status: 404, .. }) => {}
            Err(e) => return Err(self.fail(tenant, "get", e)),
        }
        let kid = self
            .create_version(tenant)
            .await
            .map_err(|e| self.fail(tenant, "create", e))?;
        tracing::info!(event = "key_provider.kek_created", tenant = %tenant, "tenant key-encryption key created in the key vault");
        Ok(kid)
    }

    /// The vault key's id; a key the vault does not have (404) is
    /// [`CryptoError::NoKek`] here only, so that start-up can create one
    /// for a tenant without data. A disabled key is refused as revoked.
    async fn current_kek(&self, tenant: TenantId) -> Result<String, CryptoError> {
        match self.get_key(tenant).await {
            Ok(kid) => Ok(kid),
            Err(VaultError::Refused { status: 404, .. }) => Err(CryptoError::NoKek(tenant)),
            Err(e) => Err(self.fail(tenant, "get", e)),
        }
    }

    /// Reads the key first, every time: Key Vault still wraps with a
    /// disabled key (only unwrapping is blocked), so a revoked key is
    /// recognised by its `enabled` attribute before anything is recorded.
    async fn wrap(&self, tenant: TenantId, key: &DataKey) -> Result<WrappedDataKey, CryptoError> {
        let kid = self
            .get_key(tenant)
            .await
            .map_err(|e| self.fail(tenant, "get", e))?;
        let name = self.key_name(tenant);
        let Some((_, version)) = Self::split_kid(&kid).filter(|(n, _)| *n == name) else {
            return Err(self.fail(
                tenant,
                "wrapkey",
                VaultError::BadAnswer("kid of another key"),
            ));
        };
        let plain = plaintext(tenant, key);
        let body = json!({ "alg": WRAP_ALG, "value": URL_SAFE_NO_PAD.encode(&plain[..]) });
        let v = match self
            .call(
                Method::POST,
                &format!("/keys/{name}/{version}/wrapkey"),
                Some(&body),
            )
            .await
        {
            Ok(v) => v,
            Err(e) => return Err(self.fail(tenant, "wrapkey", e)),
        };
        let wrapped = v
            .get("value")
            .and_then(Value::as_str)
            .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
            .filter(|w| CIPHER_LENS.contains(&w.len()))
            .ok_or_else(|| {
                self.fail(tenant, "wrapkey", VaultError::BadAnswer("no wrapped value"))
            })?;
        let kek_id = v
            .get("kid")
            .and_then(Value::as_str)
            .map_or(kid.clone(), str::to_owned);
        let w = WrappedDataKey {
            id: key.id,
            tenant_id: tenant,
            kek_id,
            wrapped,
            created_at: chrono::Utc::now(),
        };
        self.remember(&w, key).await;
        Ok(w)
    }

    async fn unwrap(&self, w: &WrappedDataKey) -> Result<DataKey, CryptoError> {
        let tenant = w.tenant_id;
        let name = self.key_name(tenant);
        let Some((_, version)) = Self::split_kid(&w.kek_id).filter(|(n, _)| *n == name) else {
            return Err(Self::bad_wrapped(
                tenant,
                w.id,
                "wrapped under a key that is not this tenant's",
            ));
        };
        if !CIPHER_LENS.contains(&w.wrapped.len()) {
            return Err(Self::bad_wrapped(
                tenant,
                w.id,
                "wrong length (truncated or padded)",
            ));
        }
        if let Some(k) = self.recall(w).await {
            return Ok(k);
        }
        let body = json!({ "alg": WRAP_ALG, "value": URL_SAFE_NO_PAD.encode(&w.wrapped) });
        let v = self
            .call(
                Method::POST,
                &format!("/keys/{name}/{version}/unwrapkey"),
                Some(&body),
            )
            .await
            .map_err(|e| self.fail(tenant, "unwrapkey", e))?;
        let plain = Zeroizing::new(
            v.get("value")
                .and_then(Value::as_str)
                .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
                .ok_or_else(|| self.fail(tenant, "unwrapkey", VaultError::BadAnswer("no value")))?,
        );
        if plain.len() != PLAIN_LEN
            || plain[..16] != tenant.as_uuid().as_bytes()[..]
            || plain[16..32] != w.id.as_uuid().as_bytes()[..]
        {
            return Err(Self::bad_wrapped(
                tenant,
                w.id,
                "bound to another tenant or data key",
            ));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain[32..]);
        let key = DataKey::from_bytes(w.id, key);
        self.remember(w, &key).await;
        Ok(key)
    }

    /// A new version of the tenant's vault key, current at once; the
    /// older ones still unwrap. With more than one version enabled a
    /// rotation is under way already: resumed, no new version. A key the
    /// vault does not have is [`CryptoError::NoKek`]; a disabled current
    /// version is refused as revoked (never rotated away silently).
    async fn begin_rotation(&self, tenant: TenantId) -> Result<String, CryptoError> {
        let current = match self.get_key(tenant).await {
            Ok(kid) => kid,
            Err(VaultError::Refused { status: 404, .. }) => return Err(CryptoError::NoKek(tenant)),
            Err(e) => return Err(self.fail(tenant, "get", e)),
        };
        let versions = self
            .versions(tenant)
            .await
            .map_err(|e| self.fail(tenant, "versions", e))?;
        if versions.iter().filter(|(_, enabled)| *enabled).count() > 1 {
            return Ok(current);
        }
        let kid = self
            .create_version(tenant)
            .await
            .map_err(|e| self.fail(tenant, "create", e))?;
        tracing::info!(event = "key_provider.rotation_begun", tenant = %tenant, "new version of the tenant key created in the key vault");
        Ok(kid)
    }

    /// Disables every enabled version but the current one
    /// (`PATCH …/keys/{name}/{version}` `{"attributes":{"enabled":false}}`):
    /// data keys wrapped under them no longer unwrap. Disabled, not
    /// deleted: Key Vault deletes whole keys only, and the vault's own
    /// soft-delete and purge protection govern that. Returns how many
    /// versions were disabled. Forgets every cached data key.
    async fn finish_rotation(&self, tenant: TenantId) -> Result<u64, CryptoError> {
        let current = self
            .get_key(tenant)
            .await
            .map_err(|e| self.fail(tenant, "get", e))?;
        let current = Self::split_kid(&current)
            .map(|(_, v)| v.to_owned())
            .ok_or_else(|| {
                self.fail(tenant, "get", VaultError::BadAnswer("kid of another shape"))
            })?;
        let versions = self
            .versions(tenant)
            .await
            .map_err(|e| self.fail(tenant, "versions", e))?;
        let name = self.key_name(tenant);
        let mut disabled = 0;
        for (version, enabled) in versions {
            if !enabled || version == current {
                continue;
            }
            self.call(
                Method::PATCH,
                &format!("/keys/{name}/{version}"),
                Some(&json!({ "attributes": { "enabled": false } })),
            )
            .await
            .map_err(|e| self.fail(tenant, "update", e))?;
            disabled += 1;
        }
        // Dropping the entries zeroises them.
        self.keys.lock().await.clear();
        tracing::info!(event = "key_provider.rotation_finished", tenant = %tenant, disabled, "older versions of the tenant key disabled in the key vault");
        Ok(disabled)
    }
}

/// The provider of `[keys.azure_key_vault]` (settings validated by
/// [`Settings::validate`]): a client with the request timeout, HTTPS only
/// unless `allow_insecure_http` (the managed-identity endpoint, IMDS, is
/// link-local plain HTTP), tokens by client credentials (secret read from
/// `client_secret_file`) or from `managed_identity_endpoint`, cached.
pub fn from_settings(settings: &Settings) -> Result<AzureKeyVaultProvider, ConfigError> {
    let kv = &settings.keys.azure_key_vault;
    let invalid = |key: &'static str, problem: String| ConfigError::Invalid { key, problem };
    let vault_url = kv
        .vault_url
        .clone()
        .ok_or_else(|| invalid("keys.azure_key_vault.vault_url", "is not set".into()))?;
    let timeout = Duration::from_millis(kv.request_timeout_ms);
    let https_only = !settings.allow_insecure_http && kv.managed_identity_endpoint.is_none();
    let http = ClientOptions::new(Duration::from_secs(5))
        .timeout(timeout)
        .https_only(https_only)
        .build()
        .map_err(|e| {
            invalid(
                "keys.azure_key_vault",
                format!("cannot build the HTTP client: {}", TransportError::from(e)),
            )
        })?;
    let retry = RetryPolicy::new(kv.max_retries.saturating_add(1));
    let auth = match &kv.managed_identity_endpoint {
        Some(endpoint) => VaultAuth::ManagedIdentity(ManagedIdentity::new(
            http.clone(),
            endpoint.clone(),
            kv.client_id.clone(),
            timeout,
        )),
        None => {
            let file = kv.client_secret_file.as_ref().ok_or_else(|| {
                invalid(
                    "keys.azure_key_vault.client_secret_file",
                    "is not set".into(),
                )
            })?;
            let secret = Zeroizing::new(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        invalid(
                            "keys.azure_key_vault.client_secret_file",
                            format!("{}: {e}", file.display()),
                        )
                    })?
                    .trim()
                    .to_owned(),
            );
            let credentials = ClientCredentials {
                endpoint: kv.token_endpoint.clone(),
                client_id: kv.client_id.clone().unwrap_or_default(),
                client_secret: secret,
                scope: VAULT_SCOPE.to_owned(),
            };
            VaultAuth::ClientCredentials {
                tenant_id: kv.tenant_id.clone().unwrap_or_default(),
                source: TokenSource::new(http.clone(), credentials, timeout)
                    .retry(retry)
                    .cached(),
            }
        }
    };
    Ok(AzureKeyVaultProvider::new(
        http,
        KeyVaultOptions {
            vault_url,
            key_prefix: kv.key_prefix.clone(),
            cache_ttl: Duration::from_secs(kv.cache_ttl_secs),
            cache_max_entries: kv.cache_max_entries,
            retry,
            max_retry_after: Duration::from_secs(kv.max_retry_after_secs),
            request_timeout: timeout,
        },
        auth,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kids_split_into_name_and_version() {
        assert_eq!(
            AzureKeyVaultProvider::split_kid(
                "https://v.vault.azure.net/keys/insights-kek-x/0123abcd"
            ),
            Some(("insights-kek-x", "0123abcd"))
        );
        assert_eq!(
            AzureKeyVaultProvider::split_kid("https://v/keys/name"),
            None
        );
        assert_eq!(
            AzureKeyVaultProvider::split_kid("https://v/keys/name/a/b"),
            None
        );
        assert_eq!(AzureKeyVaultProvider::split_kid("local:123"), None);
    }

    #[test]
    fn only_short_error_codes_are_kept() {
        assert_eq!(
            vault_error_code(br#"{"error":{"code":"KeyNotFound","message":"A key with (name/id) x was not found"}}"#),
            "KeyNotFound"
        );
        assert_eq!(
            vault_error_code(br#"{"error":{"code":"has space"}}"#),
            "unknown"
        );
        assert_eq!(vault_error_code(b"<html>"), "unknown");
    }
}
