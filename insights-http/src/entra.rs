//! App-only access tokens: the OAuth 2.0 client-credentials grant against
//! a token endpoint of Entra's `/{tenant}/oauth2/v2.0/token` shape. One
//! implementation for the gateway's Graph call control (tokens cached per
//! customer tenant until shortly before they expire, retried within a
//! deadline) and directory sync (a fresh token per run, one attempt).
//!
//! Nothing here logs or returns a token, a secret or a response body:
//! errors carry a status, the OAuth error code and transport kinds only.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::retry::{RetryPolicy, TransportError, retry_after, retryable};

/// The scope of app-only Microsoft Graph tokens.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// A cached token is renewed this long before it expires, so no request
/// goes out with a token that expires in flight.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Whom to ask for a token, as whom, for what.
#[derive(Clone)]
pub struct ClientCredentials {
    /// The token endpoint; `{tenant}` is replaced by the tenant a token is
    /// for.
    pub endpoint: String,
    /// The application (client) id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Zeroizing<String>,
    /// The requested scope, e.g. [`GRAPH_SCOPE`].
    pub scope: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("scope", &self.scope)
            .finish()
    }
}

/// Why a token answer cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    /// The body is not JSON.
    #[error("error decoding response body")]
    NotJson,
    /// No (non-empty) `access_token` string.
    #[error("no access_token")]
    NoAccessToken,
    /// A `token_type` other than `Bearer`.
    #[error("not a bearer token")]
    NotBearer,
    /// No `expires_in` (needed to cache the token).
    #[error("no expires_in")]
    NoExpiresIn,
}

/// The last failure of a retried token request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// A retryable status (408, 429, 5xx) and its OAuth error code
    /// (`unknown` when none).
    #[error("HTTP {status}")]
    Status { status: u16, code: String },
    /// No answer.
    #[error(transparent)]
    Transport(TransportError),
    /// The caller's deadline came before another attempt could start.
    #[error("deadline reached")]
    Deadline,
}

/// Why no token was obtained.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The endpoint refused the request (a status not worth retrying),
    /// typically the client credentials; `code` is the OAuth error code
    /// (`invalid_client`...) or `unknown`.
    #[error("token endpoint refused the client credentials (HTTP {status}, error `{code}`)")]
    Rejected { status: u16, code: String },
    /// A success status whose body is not a usable token.
    #[error("unusable token response: {0}")]
    Invalid(InvalidToken),
    /// A success status whose body could not be read.
    #[error("cannot read the token response: {0}")]
    Body(TransportError),
    /// Retryable failures until the attempts or the deadline ran out.
    #[error("token request failed after {attempts} attempt(s): {last}")]
    Exhausted { attempts: u32, last: Failure },
}

struct Cached {
    token: Zeroizing<String>,
    renew_at: Instant,
}

/// Client-credentials tokens, optionally cached per tenant.
pub struct TokenSource {
    http: reqwest::Client,
    credentials: ClientCredentials,
    retry: RetryPolicy,
    request_timeout: Duration,
    /// `Some`: tokens are cached until shortly before they expire. Held
    /// across a fetch: concurrent requests for a missing token wait for
    /// the one fetch instead of each asking the endpoint.
    cache: Option<Mutex<HashMap<String, Cached>>>,
}

impl TokenSource {
    /// A source asking `credentials.endpoint`, each attempt within
    /// `request_timeout`. One attempt and no cache: see
    /// [`retry`](Self::retry) and [`cached`](Self::cached).
    pub fn new(
        http: reqwest::Client,
        credentials: ClientCredentials,
        request_timeout: Duration,
    ) -> Self {
        Self {
            http,
            credentials,
            retry: RetryPolicy::once(),
            request_timeout,
            cache: None,
        }
    }

    /// Retries 408, 429, 5xx and transport errors by `policy`, honouring
    /// `Retry-After`.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Caches each tenant's token until shortly before it expires (the
    /// answer must then carry `expires_in`).
    #[must_use]
    pub fn cached(mut self) -> Self {
        self.cache = Some(Mutex::new(HashMap::new()));
        self
    }

    /// A valid token for `tenant`: the cached one, or a new one fetched
    /// (by `deadline`, if given).
    pub async fn token(
        &self,
        tenant: &str,
        deadline: Option<Instant>,
    ) -> Result<Zeroizing<String>, TokenError> {
        let Some(cache) = &self.cache else {
            return Ok(self.fetch(tenant, deadline).await?.0);
        };
        let mut cache = cache.lock().await;
        if let Some(c) = cache.get(tenant)
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = self.fetch(tenant, deadline).await?;
        let lifetime = lifetime.ok_or(TokenError::Invalid(InvalidToken::NoExpiresIn))?;
        let renew_in = if lifetime > RENEW_BEFORE * 2 {
            lifetime - RENEW_BEFORE
        } else {
            lifetime / 2
        };
        cache.insert(
            tenant.to_owned(),
            Cached {
                token: token.clone(),
                renew_at: Instant::now() + renew_in,
            },
        );
        Ok(token)
    }

    /// Forgets the cached token of `tenant` (the service said it is not
    /// valid).
    pub async fn invalidate(&self, tenant: &str) {
        if let Some(cache) = &self.cache {
            cache.lock().await.remove(tenant);
        }
    }

    async fn fetch(
        &self,
        tenant: &str,
        deadline: Option<Instant>,
    ) -> Result<(Zeroizing<String>, Option<Duration>), TokenError> {
        let c = &self.credentials;
        let url = c.endpoint.replace("{tenant}", tenant);
        let form = Zeroizing::new(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &c.client_id)
                .append_pair("client_secret", &c.client_secret)
                .append_pair("scope", &c.scope)
                .finish(),
        );
        let mut attempt = 0;
        loop {
            attempt += 1;
            let timeout = match deadline {
                Some(deadline) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Err(TokenError::Exhausted {
                            attempts: attempt - 1,
                            last: Failure::Deadline,
                        });
                    }
                    remaining.min(self.request_timeout)
                }
                None => self.request_timeout,
            };
            let sent = self
                .http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "application/json")
                .body(form.as_bytes().to_vec())
                .timeout(timeout)
                .send()
                .await;
            let (last, wait) = match sent {
                Ok(res) if res.status().is_success() => {
                    let body = res.bytes().await.map_err(|e| TokenError::Body(e.into()))?;
                    return parse_token(&body).map_err(TokenError::Invalid);
                }
                Ok(res) => {
                    let status = res.status();
                    let wait = retry_after(res.headers(), SystemTime::now())
                        .unwrap_or_else(|| self.retry.backoff(attempt));
                    let code = oauth_error_code(&res.bytes().await.unwrap_or_default());
                    if !retryable(status) {
                        return Err(TokenError::Rejected {
                            status: status.as_u16(),
                            code,
                        });
                    }
                    let status = status.as_u16();
                    (Failure::Status { status, code }, wait)
                }
                Err(e) => (Failure::Transport(e.into()), self.retry.backoff(attempt)),
            };
            if attempt >= self.retry.max_attempts
                || deadline.is_some_and(|d| Instant::now() + wait >= d)
            {
                return Err(TokenError::Exhausted {
                    attempts: attempt,
                    last,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// The OAuth error code of an error answer (`invalid_client`...), or
/// `unknown`. Only a short printable code is kept: the description may
/// quote identifiers.
fn oauth_error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| b.get("error").and_then(Value::as_str).map(str::to_owned))
        .filter(|c| c.len() <= 64 && c.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "unknown".into())
}

/// The token and its lifetime, if the answer gives one.
pub(crate) fn parse_token(
    body: &[u8],
) -> Result<(Zeroizing<String>, Option<Duration>), InvalidToken> {
    let body: Value = serde_json::from_slice(body).map_err(|_| InvalidToken::NotJson)?;
    let token = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(InvalidToken::NoAccessToken)?;
    match body.get("token_type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(_) => return Err(InvalidToken::NotBearer),
    }
    // v2 endpoints send a number, v1 endpoints a string.
    let expires_in = match body.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok((
        Zeroizing::new(token.to_owned()),
        expires_in.map(Duration::from_secs),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(v: Value) -> Result<(String, Option<Duration>), InvalidToken> {
        parse_token(v.to_string().as_bytes()).map(|(t, d)| (t.to_string(), d))
    }

    #[test]
    fn token_responses_parse_in_both_forms() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(
            parsed(serde_json::json!({"access_token": "x", "expires_in": 3599})),
            Ok(("x".into(), secs(3599)))
        );
        assert_eq!(
            parsed(
                serde_json::json!({"access_token": "x", "expires_in": "60", "token_type": "Bearer"})
            ),
            Ok(("x".into(), secs(60)))
        );
        assert_eq!(
            parsed(serde_json::json!({"access_token": "x", "token_type": "bearer"})),
            Ok(("x".into(), None))
        );
        assert_eq!(
            parsed(serde_json::json!({"expires_in": 1})),
            Err(InvalidToken::NoAccessToken)
        );
        assert_eq!(
            parsed(serde_json::json!({"access_token": "", "expires_in": 1})),
            Err(InvalidToken::NoAccessToken)
        );
        assert_eq!(
            parsed(serde_json::json!({"access_token": "x", "token_type": "pop"})),
            Err(InvalidToken::NotBearer)
        );
        assert_eq!(parse_token(b"<html>").err(), Some(InvalidToken::NotJson));
    }

    #[test]
    fn only_short_printable_error_codes_are_kept() {
        let code = |v: Value| oauth_error_code(v.to_string().as_bytes());
        assert_eq!(
            code(
                serde_json::json!({"error": "invalid_client", "error_description": "AADSTS… for user x"})
            ),
            "invalid_client"
        );
        assert_eq!(code(serde_json::json!({"error": "has space"})), "unknown");
        assert_eq!(
            code(serde_json::json!({"error": "x".repeat(65)})),
            "unknown"
        );
        assert_eq!(code(serde_json::json!({})), "unknown");
        assert_eq!(oauth_error_code(b"not json"), "unknown");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = ClientCredentials {
            endpoint: "https://login.example/{tenant}/oauth2/v2.0/token".into(),
            client_id: "app".into(),
            client_secret: Zeroizing::new("SECRET-VALUE".into()),
            scope: GRAPH_SCOPE.into(),
        };
        let d = format!("{c:?}");
        assert!(!d.contains("SECRET-VALUE") && d.contains("app"), "{d}");
    }
}
