//! App-only access tokens: the OAuth 2.0 client-credentials flow against a
//! configurable token endpoint, cached per customer tenant.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use insights_core::config::Secret;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::GraphError;
use super::retry::{RetryPolicy, retry_after, retryable};

/// The scope of app-only Graph tokens.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// A token is renewed this long before it expires, so no request goes out
/// with a token that expires in flight.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

const OPERATION: &str = "token request";

struct Cached {
    token: Secret,
    renew_at: Instant,
}

/// Client-credentials tokens, one per Entra tenant, cached until shortly
/// before they expire. The endpoint may contain `{tenant}`, replaced by
/// the tenant the token is for.
pub struct AppTokenSource {
    http: reqwest::Client,
    endpoint: String,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    retry: RetryPolicy,
    request_timeout: Duration,
    // Held across a fetch: concurrent requests for a missing token wait
    // for the one fetch instead of each asking the endpoint.
    cache: Mutex<HashMap<String, Cached>>,
}

impl AppTokenSource {
    pub(crate) fn new(
        http: reqwest::Client,
        endpoint: String,
        client_id: Option<String>,
        client_secret: Option<Secret>,
        max_attempts: u32,
        request_timeout: Duration,
    ) -> Self {
        Self {
            http,
            endpoint,
            client_id,
            client_secret,
            retry: RetryPolicy::new(max_attempts),
            request_timeout,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A valid token for `tenant`, fetched if none is cached, by `deadline`.
    pub async fn token(&self, tenant: &str, deadline: Instant) -> Result<Secret, GraphError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(tenant)
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = self.fetch(tenant, deadline).await?;
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

    /// Forgets the cached token of `tenant` (Graph said it is not valid).
    pub async fn invalidate(&self, tenant: &str) {
        self.cache.lock().await.remove(tenant);
    }

    async fn fetch(
        &self,
        tenant: &str,
        deadline: Instant,
    ) -> Result<(Secret, Duration), GraphError> {
        let client_id = self.client_id.as_deref().ok_or(GraphError::NotConfigured(
            "gateway.client_id (or gateway.app_id)",
        ))?;
        let secret = self
            .client_secret
            .as_ref()
            .ok_or(GraphError::NotConfigured("gateway.client_secret"))?;
        let url = self.endpoint.replace("{tenant}", tenant);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret.expose()),
            ("scope", GRAPH_SCOPE),
        ];
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(GraphError::Exhausted {
                    operation: OPERATION,
                    attempts: attempt - 1,
                    last: "deadline reached".into(),
                });
            }
            let sent = self
                .http
                .post(&url)
                .form(&form)
                .timeout(remaining.min(self.request_timeout))
                .send()
                .await;
            let (last, wait) = match sent {
                Ok(res) if res.status().is_success() => {
                    let body: Value = res.json().await.map_err(|e| GraphError::BadResponse {
                        operation: OPERATION,
                        problem: e.without_url().to_string(),
                    })?;
                    return parse_token(&body);
                }
                Ok(res) if retryable(res.status()) => {
                    let wait = retry_after(res.headers(), SystemTime::now())
                        .unwrap_or_else(|| self.retry.backoff(attempt));
                    (format!("HTTP {}", res.status().as_u16()), wait)
                }
                Ok(res) => {
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap_or(Value::Null);
                    let code = body
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                        .to_owned();
                    return Err(GraphError::TokenRejected { status, code });
                }
                Err(e) => (e.without_url().to_string(), self.retry.backoff(attempt)),
            };
            if attempt >= self.retry.max_attempts || Instant::now() + wait >= deadline {
                return Err(GraphError::Exhausted {
                    operation: OPERATION,
                    attempts: attempt,
                    last,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }
}

fn parse_token(body: &Value) -> Result<(Secret, Duration), GraphError> {
    let bad = |problem: &str| GraphError::BadResponse {
        operation: OPERATION,
        problem: problem.to_owned(),
    };
    let token = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no access_token"))?;
    // v2 endpoints send a number, v1 endpoints a string.
    let expires_in = match body.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| bad("no expires_in"))?;
    Ok((Secret::new(token), Duration::from_secs(expires_in)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses_parse_in_both_forms() {
        let (t, d) = parse_token(&serde_json::json!({"access_token": "x", "expires_in": 3599}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.expose(), d), ("x", Duration::from_secs(3599)));
        let (_, d) = parse_token(&serde_json::json!({"access_token": "x", "expires_in": "60"}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d, Duration::from_secs(60));
        assert!(parse_token(&serde_json::json!({"expires_in": 1})).is_err());
    }
}
