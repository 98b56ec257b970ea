//! A local stand-in for Azure Key Vault (keys, api-version 7.4) and the
//! token endpoints that authenticate to it, for tests and benchmarks of
//! the `azure-key-vault` key provider. It follows the published request
//! and response shapes:
//!
//! * `GET /keys/{name}` → the key bundle
//!   `{"key":{"kid","kty","key_ops","n","e"},"attributes":{"enabled",…}}`
//!   (a disabled key is still readable, as in Azure);
//! * `POST /keys/{name}/create` `{"kty":"RSA","key_size":…,"key_ops":[…]}`
//!   → the key bundle of a new version;
//! * `POST /keys/{name}/{version}/wrapkey` and `/unwrapkey`
//!   `{"alg":"RSA-OAEP-256","value":<base64url>}` → `{"kid","value"}`,
//!   real RSA-OAEP with SHA-256 (the `rsa` crate); unwrapping with a
//!   disabled key is refused (403 `Forbidden`, inner `KeyDisabled`),
//!   wrapping is not (as in Azure);
//! * `POST /keys/{name}/create` on an existing key adds a version, which
//!   becomes the current one; `GET /keys/{name}/{version}` reads one
//!   version; `GET /keys/{name}/versions` lists them as `{"value":[{"kid",
//!   "attributes"}…],"nextLink"}` (pages of `maxresults`, default 25,
//!   continued by a `nextLink` carrying `$skiptoken`);
//!   `PATCH /keys/{name}/{version}` `{"attributes":{"enabled":false}}`
//!   updates a version's attributes. Attributes are per version, as in
//!   Azure;
//! * every vault request needs `?api-version=7.4` (else 400
//!   `BadParameter`) and `Authorization: Bearer <token>` (else 401
//!   `Unauthorized` with a `WWW-Authenticate` challenge);
//! * errors are `{"error":{"code":…,"message":…}}`;
//! * tokens: `POST /{tenant}/oauth2/v2.0/token` (client credentials,
//!   scope `https://vault.azure.net/.default`) and `GET
//!   /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net`
//!   with `Metadata: true` (managed identity).
//!
//! The test can make the vault answer 429 with `Retry-After` once
//! ([`KeyVaultStandIn::throttle_once`]), disable a key
//! ([`KeyVaultStandIn::disable`]) or delete it
//! ([`KeyVaultStandIn::delete`]), and count requests.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey};
use serde_json::{Value, json};

/// The client id the token stand-in accepts.
pub const CLIENT_ID: &str = "insights-test-app";
/// The client secret the token stand-in accepts.
pub const CLIENT_SECRET: &str = "vault-test-secret";
/// The only api-version the vault accepts.
pub const API_VERSION: &str = "7.4";

struct KeyVersion {
    version: String,
    private: RsaPrivateKey,
    key_ops: Vec<String>,
    created: i64,
    updated: i64,
    enabled: bool,
}

struct Key {
    versions: Vec<KeyVersion>,
}

#[derive(Default)]
struct State {
    keys: BTreeMap<String, Key>,
    tokens: Vec<String>,
    throttle: Option<u64>,
    requests: HashMap<String, u64>,
    page_size: Option<usize>,
}

/// A running stand-in (vault and token endpoints on one port); serves
/// until the process ends.
#[derive(Clone)]
pub struct KeyVaultStandIn {
    base: String,
    state: Arc<Mutex<State>>,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl KeyVaultStandIn {
    /// Starts the stand-in on a free loopback port.
    ///
    /// # Panics
    /// If no port can be bound.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        let s = Self {
            base: format!("http://{addr}"),
            state: Arc::new(Mutex::new(State::default())),
        };
        let server = s.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let server = server.clone();
                std::thread::spawn(move || server.connection(stream));
            }
        });
        s
    }

    /// The vault URL (`vault_url`).
    pub fn vault_url(&self) -> String {
        self.base.clone()
    }

    /// The client-credentials token endpoint (`{tenant}` left in).
    pub fn token_endpoint(&self) -> String {
        format!("{}/{{tenant}}/oauth2/v2.0/token", self.base)
    }

    /// The managed-identity (IMDS-shaped) token endpoint.
    pub fn managed_identity_endpoint(&self) -> String {
        format!("{}/metadata/identity/oauth2/token", self.base)
    }

    /// The next vault request is answered 429 with `Retry-After: secs`.
    pub fn throttle_once(&self, secs: u64) {
        lock(&self.state).throttle = Some(secs);
    }

    /// Disables key `name` (all versions), as `az keyvault key set-attributes
    /// --enabled false` on each does. Returns whether it existed.
    pub fn disable(&self, name: &str) -> bool {
        lock(&self.state)
            .keys
            .get_mut(name)
            .map(|k| k.versions.iter_mut().for_each(|v| v.enabled = false))
            .is_some()
    }

    /// The versions of key `name`, oldest first: `(version, enabled)`.
    pub fn versions(&self, name: &str) -> Vec<(String, bool)> {
        lock(&self.state)
            .keys
            .get(name)
            .map(|k| {
                k.versions
                    .iter()
                    .map(|v| (v.version.clone(), v.enabled))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Lists versions `n` per page when the client asks for no
    /// `maxresults` (default 25), so that paging is exercised.
    pub fn page_size(&self, n: usize) {
        lock(&self.state).page_size = Some(n.max(1));
    }

    /// Deletes key `name`. Returns whether it existed.
    pub fn delete(&self, name: &str) -> bool {
        lock(&self.state).keys.remove(name).is_some()
    }

    /// The names of the keys held.
    pub fn key_names(&self) -> Vec<String> {
        lock(&self.state).keys.keys().cloned().collect()
    }

    /// How many requests of `kind` were answered (`token`, `get`,
    /// `create`, `versions`, `update`, `wrapkey`, `unwrapkey`,
    /// `throttled`, `unauthorized`).
    pub fn count(&self, kind: &str) -> u64 {
        lock(&self.state).requests.get(kind).copied().unwrap_or(0)
    }

    /// Encrypts `plain` with the public half of the current version of
    /// `name`, as any holder of the public key could (RSA-OAEP-256):
    /// the key id and the ciphertext, or `None` if there is no such key.
    /// For tests that forge wrapped values.
    pub fn encrypt_with(&self, name: &str, plain: &[u8]) -> Option<(String, Vec<u8>)> {
        let st = lock(&self.state);
        let v = st.keys.get(name)?.versions.last()?;
        let out = v
            .private
            .to_public_key()
            .encrypt(&mut rand_core_06(), Oaep::new::<rsa::sha2::Sha256>(), plain)
            .ok()?;
        Some((format!("{}/keys/{name}/{}", self.base, v.version), out))
    }

    fn connection(&self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let Ok(read) = stream.try_clone() else { return };
        let mut reader = BufReader::new(read);
        let mut stream = stream;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_owned();
            let target = parts.next().unwrap_or("").to_owned();
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let (status, extra, json) = self.answer(&method, &target, &headers, &body);
            let reason = match status {
                200 => "OK",
                400 => "Bad Request",
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "Not Found",
                429 => "Too Many Requests",
                _ => "Error",
            };
            let body = json.to_string();
            let mut head = format!(
                "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\n",
                body.len()
            );
            for (k, v) in extra {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            // One write per answer, without Nagle's delay: a split write
            // would wait for the client's delayed ACK (tens of ms).
            let mut out = head.into_bytes();
            out.extend_from_slice(body.as_bytes());
            if stream.write_all(&out).is_err() || stream.flush().is_err() {
                return;
            }
        }
    }

    fn answer(
        &self,
        method: &str,
        target: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Value) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let query: HashMap<String, String> = url_decode(query);
        let mut st = lock(&self.state);
        let count = |st: &mut State, k: &str| *st.requests.entry(k.to_owned()).or_default() += 1;

        // Token endpoints.
        if method == "POST" && path.ends_with("/oauth2/v2.0/token") {
            let form = url_decode(&String::from_utf8_lossy(body));
            let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
                && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
                && form.get("scope").map(String::as_str)
                    == Some("https://vault.azure.net/.default");
            if !ok {
                return (
                    401,
                    vec![],
                    json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
                );
            }
            count(&mut st, "token");
            let token = format!("vault-token-{}", uuid::Uuid::new_v4().simple());
            st.tokens.push(token.clone());
            return (
                200,
                vec![],
                json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
            );
        }
        if method == "GET" && path == "/metadata/identity/oauth2/token" {
            if headers.get("metadata").map(String::as_str) != Some("true")
                || query.get("api-version").map(String::as_str) != Some("2018-02-01")
                || query.get("resource").map(String::as_str) != Some("https://vault.azure.net")
            {
                return (
                    400,
                    vec![],
                    json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
                );
            }
            count(&mut st, "token");
            let token = format!("vault-mi-token-{}", uuid::Uuid::new_v4().simple());
            st.tokens.push(token.clone());
            let now = chrono::Utc::now().timestamp();
            return (
                200,
                vec![],
                json!({"access_token": token, "expires_in": "3599", "expires_on": (now + 3599).to_string(),
                       "not_before": now.to_string(), "resource": "https://vault.azure.net", "token_type": "Bearer"}),
            );
        }

        // The vault.
        let err = |code: &str, message: &str| json!({"error": {"code": code, "message": message}});
        let authorized = headers
            .get("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| st.tokens.iter().any(|k| k == t));
        if !authorized {
            count(&mut st, "unauthorized");
            return (
                401,
                vec![(
                    "www-authenticate".into(),
                    "Bearer authorization=\"https://login.microsoftonline.com/common\", resource=\"https://vault.azure.net\"".into(),
                )],
                err("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
            );
        }
        match query.get("api-version") {
            Some(v) if v == API_VERSION => {}
            Some(v) => {
                return (
                    400,
                    vec![],
                    err(
                        "BadParameter",
                        &format!(
                            "The specified version ({v}) is not recognized. Consider using the latest supported version ({API_VERSION})."
                        ),
                    ),
                );
            }
            None => {
                return (
                    400,
                    vec![],
                    err(
                        "BadParameter",
                        "The 'api-version' query parameter is missing.",
                    ),
                );
            }
        }
        if let Some(secs) = st.throttle.take() {
            count(&mut st, "throttled");
            return (
                429,
                vec![("retry-after".into(), secs.to_string())],
                err(
                    "Throttled",
                    "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                ),
            );
        }
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => {
                    return (
                        400,
                        vec![],
                        err("BadParameter", "The request body is not valid JSON."),
                    );
                }
            }
        };
        let base = self.base.clone();
        let not_found = |name: &str| {
            (
                404,
                vec![],
                err(
                    "KeyNotFound",
                    &format!(
                        "A key with (name/id) {name} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command."
                    ),
                ),
            )
        };
        match (method, segs.as_slice()) {
            ("GET", ["keys", name]) => {
                count(&mut st, "get");
                match st.keys.get(*name).and_then(|k| k.versions.last()) {
                    Some(v) => (200, vec![], bundle(&base, name, v)),
                    None => not_found(name),
                }
            }
            ("GET", ["keys", name, "versions"]) => {
                count(&mut st, "versions");
                let Some(key) = st.keys.get(*name) else {
                    return not_found(name);
                };
                let per_page = query
                    .get("maxresults")
                    .and_then(|m| m.parse::<usize>().ok())
                    .filter(|m| (1..=25).contains(m))
                    .or(st.page_size)
                    .unwrap_or(25);
                let skip = query
                    .get("$skiptoken")
                    .and_then(|t| t.parse::<usize>().ok())
                    .unwrap_or(0);
                let value: Vec<Value> = key
                    .versions
                    .iter()
                    .skip(skip)
                    .take(per_page)
                    .map(|v| {
                        json!({
                            "kid": format!("{base}/keys/{name}/{}", v.version),
                            "attributes": attributes(v),
                            "tags": {},
                        })
                    })
                    .collect();
                let next = (skip + per_page < key.versions.len()).then(|| {
                    format!(
                        "{base}/keys/{name}/versions?api-version={API_VERSION}&$skiptoken={}&maxresults={per_page}",
                        skip + per_page
                    )
                });
                (200, vec![], json!({ "value": value, "nextLink": next }))
            }
            ("GET", ["keys", name, version]) => {
                count(&mut st, "get");
                match st
                    .keys
                    .get(*name)
                    .and_then(|k| k.versions.iter().find(|v| v.version == *version))
                {
                    Some(v) => (200, vec![], bundle(&base, name, v)),
                    None => not_found(&format!("{name}/{version}")),
                }
            }
            ("PATCH", ["keys", name, version]) => {
                count(&mut st, "update");
                let Some(v) = st
                    .keys
                    .get_mut(*name)
                    .and_then(|k| k.versions.iter_mut().find(|v| v.version == *version))
                else {
                    return not_found(&format!("{name}/{version}"));
                };
                if let Some(attrs) = body.get("attributes") {
                    match attrs.get("enabled") {
                        Some(Value::Bool(e)) => v.enabled = *e,
                        None => {}
                        Some(_) => {
                            return (
                                400,
                                vec![],
                                err("BadParameter", "attributes.enabled must be a boolean."),
                            );
                        }
                    }
                }
                v.updated = chrono::Utc::now().timestamp();
                (200, vec![], bundle(&base, name, v))
            }
            ("POST", ["keys", name, "create"]) => {
                count(&mut st, "create");
                if body.get("kty").and_then(Value::as_str) != Some("RSA") {
                    return (
                        400,
                        vec![],
                        err(
                            "BadParameter",
                            "Property kty is required and must be RSA here.",
                        ),
                    );
                }
                let size = body.get("key_size").and_then(Value::as_u64).unwrap_or(2048);
                if ![2048, 3072, 4096].contains(&size) {
                    return (400, vec![], err("BadParameter", "Invalid key size."));
                }
                let key_ops: Vec<String> = body
                    .get("key_ops")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_else(|| {
                        vec![
                            "wrapKey".into(),
                            "unwrapKey".into(),
                            "encrypt".into(),
                            "decrypt".into(),
                        ]
                    });
                // Key generation is slow: not under the lock.
                drop(st);
                let private = RsaPrivateKey::new(&mut rand_core_06(), size as usize)
                    .unwrap_or_else(|e| panic!("RSA key generation: {e}"));
                let mut st = lock(&self.state);
                let key = st.keys.entry((*name).to_owned()).or_insert_with(|| Key {
                    versions: Vec::new(),
                });
                let now = chrono::Utc::now().timestamp();
                key.versions.push(KeyVersion {
                    version: uuid::Uuid::new_v4().simple().to_string(),
                    private,
                    key_ops,
                    created: now,
                    updated: now,
                    enabled: true,
                });
                match key.versions.last() {
                    Some(v) => (200, vec![], bundle(&base, name, v)),
                    None => not_found(name),
                }
            }
            ("POST", ["keys", name, version, op @ ("wrapkey" | "unwrapkey")]) => {
                count(&mut st, op);
                let Some(key) = st.keys.get(*name) else {
                    return not_found(name);
                };
                let Some(v) = key.versions.iter().find(|v| v.version == *version) else {
                    return not_found(&format!("{name}/{version}"));
                };
                let op_name = if *op == "wrapkey" {
                    "wrapKey"
                } else {
                    "unwrapKey"
                };
                if !v.key_ops.iter().any(|o| o == op_name) {
                    return (
                        403,
                        vec![],
                        json!({"error": {"code": "Forbidden", "message": format!("Operation {op_name} is not allowed on this key."), "innererror": {"code": "OperationNotAllowed"}}}),
                    );
                }
                if *op == "unwrapkey" && !v.enabled {
                    return (
                        403,
                        vec![],
                        json!({"error": {"code": "Forbidden", "message": "Operation unwrapKey is not allowed on a disabled key.", "innererror": {"code": "KeyDisabled"}}}),
                    );
                }
                if body.get("alg").and_then(Value::as_str) != Some("RSA-OAEP-256") {
                    return (
                        400,
                        vec![],
                        err(
                            "BadParameter",
                            "Invalid algorithm; this stand-in knows RSA-OAEP-256 only.",
                        ),
                    );
                }
                let Some(value) = body
                    .get("value")
                    .and_then(Value::as_str)
                    .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
                else {
                    return (
                        400,
                        vec![],
                        err(
                            "BadParameter",
                            "Property value is required and must be base64url.",
                        ),
                    );
                };
                let kid = format!("{base}/keys/{name}/{}", v.version);
                let out = if *op == "wrapkey" {
                    v.private
                        .to_public_key()
                        .encrypt(
                            &mut rand_core_06(),
                            Oaep::new::<rsa::sha2::Sha256>(),
                            &value,
                        )
                        .map_err(|e| e.to_string())
                } else {
                    v.private
                        .decrypt(Oaep::new::<rsa::sha2::Sha256>(), &value)
                        .map_err(|e| e.to_string())
                };
                match out {
                    Ok(out) => (
                        200,
                        vec![],
                        json!({"kid": kid, "value": URL_SAFE_NO_PAD.encode(out)}),
                    ),
                    Err(_) => (
                        400,
                        vec![],
                        err("BadParameter", "The parameter is incorrect."),
                    ),
                }
            }
            _ => (
                404,
                vec![],
                err("NotFound", "The requested resource was not found."),
            ),
        }
    }
}

/// The random generator the `rsa` crate takes.
fn rand_core_06() -> rsa::rand_core::OsRng {
    rsa::rand_core::OsRng
}

fn attributes(v: &KeyVersion) -> Value {
    json!({
        "enabled": v.enabled,
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    })
}

fn bundle(base: &str, name: &str, v: &KeyVersion) -> Value {
    let public = v.private.to_public_key();
    json!({
        "key": {
            "kid": format!("{base}/keys/{name}/{}", v.version),
            "kty": "RSA",
            "key_ops": v.key_ops,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        },
        "attributes": attributes(v),
        "tags": {},
    })
}

fn url_decode(s: &str) -> HashMap<String, String> {
    fn dec(s: &str) -> String {
        let s = s.replace('+', " ");
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && i + 2 < b.len()
                && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}
