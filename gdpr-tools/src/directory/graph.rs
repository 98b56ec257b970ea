//! The Microsoft Graph side of directory sync: an app-only token by the
//! OAuth 2.0 client-credentials grant (Entra's
//! `/{tenant}/oauth2/v2.0/token` shape), and `GET`s of `/users/delta`
//! pages with throttling handled (`429`/`503`/`504` with `Retry-After`,
//! seconds or an HTTP date, capped; without the header, exponential
//! backoff from 1 s).
//!
//! Written on `reqwest` rather than `graph-rs-sdk` (see ARCHITECTURE.md,
//! "Why not a crate for …"); the token request, `Retry-After` parsing and
//! the client settings are the shared ones of `insights-http`. Nothing here logs a URL, a token or a body:
//! delta and next links carry opaque tokens, and bodies carry people.

use std::time::{Duration, SystemTime};

use insights_core::backoff::Backoff;
use insights_core::config::DirectorySettings;
use insights_http::entra::{ClientCredentials, Failure, InvalidToken, TokenError, TokenSource};
use insights_http::{ClientOptions, TransportKind};
use reqwest::StatusCode;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::DirectoryError;

/// The `$select` of every full sync: the profile fields we keep.
pub const USER_SELECT: &str = "id,givenName,surname,displayName,mailNickname,mail,\
userPrincipalName,businessPhones,mobilePhone,imAddresses,proxyAddresses";

/// Everything needed to talk to Graph, secrets included.
#[derive(Clone)]
pub struct GraphConfig {
    /// Service root, e.g. `https://graph.microsoft.com/v1.0` (no trailing `/`).
    pub graph_base_url: String,
    /// Token endpoint; `{tenant}` is replaced by the directory tenant id.
    pub token_url: String,
    pub scope: String,
    pub client_id: String,
    pub client_secret: Zeroizing<String>,
    pub max_retries: u32,
    pub max_retry_after: Duration,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for GraphConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphConfig")
            .field("graph_base_url", &self.graph_base_url)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .finish_non_exhaustive()
    }
}

impl GraphConfig {
    /// From `[directory]`, reading the secret from the environment
    /// variable it names. `NotConfigured` when `client_id` is unset.
    pub fn from_settings(s: &DirectorySettings) -> Result<Self, DirectoryError> {
        let client_id = s
            .client_id
            .clone()
            .filter(|c| !c.trim().is_empty())
            .ok_or(DirectoryError::NotConfigured)?;
        let secret = std::env::var(&s.client_secret_env)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| DirectoryError::MissingSecret(s.client_secret_env.clone()))?;
        Ok(Self {
            graph_base_url: s.graph_base_url.trim_end_matches('/').to_owned(),
            token_url: s.token_url.clone(),
            scope: s.scope.clone(),
            client_id,
            client_secret: Zeroizing::new(secret),
            max_retries: s.max_retries,
            max_retry_after: Duration::from_secs(s.max_retry_after_secs),
            request_timeout: Duration::from_millis(s.request_timeout_ms),
        })
    }

    /// The first URL of a full sync.
    pub fn initial_delta_url(&self) -> String {
        format!("{}/users/delta?$select={USER_SELECT}", self.graph_base_url)
    }
}

/// One page of a delta query.
#[derive(Debug, Deserialize)]
pub struct DeltaPage {
    #[serde(default)]
    pub value: Vec<serde_json::Value>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
}

/// A page fetch outcome the caller must react to.
pub enum Fetched {
    Page(DeltaPage),
    /// `410 Gone`: the delta link expired; start over with a full sync.
    Gone,
}

/// The HTTP side of one sync run.
pub struct GraphClient {
    http: reqwest::Client,
    /// A fresh token per run (not cached), one attempt.
    tokens: TokenSource,
    cfg: GraphConfig,
    /// Origin (scheme, host, port) every followed link must keep, so the
    /// bearer token never goes anywhere else.
    origin: url::Origin,
}

impl GraphClient {
    pub fn new(cfg: GraphConfig) -> Result<Self, DirectoryError> {
        let base = url::Url::parse(&cfg.graph_base_url)
            .map_err(|_| DirectoryError::Config("directory.graph_base_url is not a URL".into()))?;
        let http = ClientOptions::new(Duration::from_secs(10))
            .timeout(cfg.request_timeout)
            .build()
            .map_err(|e| DirectoryError::Config(format!("cannot build the HTTP client: {e}")))?;
        let tokens = TokenSource::new(
            http.clone(),
            ClientCredentials {
                endpoint: cfg.token_url.clone(),
                client_id: cfg.client_id.clone(),
                client_secret: cfg.client_secret.clone(),
                scope: cfg.scope.clone(),
            },
            cfg.request_timeout,
        );
        Ok(Self {
            http,
            tokens,
            origin: base.origin(),
            cfg,
        })
    }

    pub fn config(&self) -> &GraphConfig {
        &self.cfg
    }

    /// The HTTP client (timeouts, no redirects), for other Graph readers
    /// of the same app (the completeness reconciliation's call records).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether `url` keeps the configured service root's origin, so the
    /// bearer token goes nowhere else.
    pub fn same_origin(&self, url: &url::Url) -> bool {
        url.origin() == self.origin
    }

    /// An app-only access token for the directory tenant `tid`.
    pub async fn token(&self, tid: uuid::Uuid) -> Result<Zeroizing<String>, DirectoryError> {
        self.tokens
            .token(&tid.to_string(), None)
            .await
            .map_err(|e| match e {
                // The OAuth error code (`invalid_client`...) is ours to
                // show; the description may quote identifiers, so the
                // token source drops it.
                TokenError::Rejected { status, code }
                | TokenError::Exhausted {
                    last: Failure::Status { status, code },
                    ..
                } => {
                    DirectoryError::Token(format!("the token endpoint answered {status} ({code})"))
                }
                TokenError::Invalid(InvalidToken::NotBearer) => {
                    DirectoryError::Token("the token endpoint did not issue a bearer token".into())
                }
                TokenError::Invalid(_) => {
                    DirectoryError::Token("the token endpoint's answer is not a token".into())
                }
                TokenError::Body(e)
                | TokenError::Exhausted {
                    last: Failure::Transport(e),
                    ..
                } => DirectoryError::Network(format!("token endpoint: {}", e.kind().as_str())),
                TokenError::Exhausted {
                    last: Failure::Deadline,
                    ..
                } => DirectoryError::Network(format!(
                    "token endpoint: {}",
                    TransportKind::TimedOut.as_str()
                )),
            })
    }

    /// Fetches one delta page (the first URL, a next link or a delta
    /// link), waiting out throttling. `throttled` counts the retries.
    pub async fn page(
        &self,
        url: &str,
        token: &str,
        throttled: &mut u32,
    ) -> Result<Fetched, DirectoryError> {
        let parsed = url::Url::parse(url)
            .map_err(|_| DirectoryError::Protocol("a link is not a URL".into()))?;
        if parsed.origin() != self.origin {
            return Err(DirectoryError::Protocol(
                "a link points outside the configured Graph service root".into(),
            ));
        }
        let mut attempt: u32 = 0;
        loop {
            let res = self
                .http
                .get(parsed.clone())
                .bearer_auth(token)
                .header("accept", "application/json")
                .send()
                .await
                .map_err(|e| DirectoryError::Network(format!("Graph: {}", kind(&e))))?;
            let status = res.status();
            if matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ) {
                if attempt >= self.cfg.max_retries {
                    return Err(DirectoryError::Throttled {
                        retries: attempt,
                        status: status.as_u16(),
                    });
                }
                let wait = retry_after(res.headers(), attempt, self.cfg.max_retry_after);
                tracing::info!(
                    status = status.as_u16(),
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    attempt,
                    "Graph throttled the directory sync; waiting"
                );
                attempt += 1;
                *throttled += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == StatusCode::GONE {
                return Ok(Fetched::Gone);
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(DirectoryError::Refused(status.as_u16()));
            }
            if !status.is_success() {
                return Err(DirectoryError::Protocol(format!(
                    "Graph answered {}",
                    status.as_u16()
                )));
            }
            let bytes = res
                .bytes()
                .await
                .map_err(|e| DirectoryError::Network(format!("Graph: {}", kind(&e))))?;
            let page: DeltaPage = serde_json::from_slice(&bytes).map_err(|_| {
                DirectoryError::Protocol("a Graph page is not a delta collection".into())
            })?;
            return Ok(Fetched::Page(page));
        }
    }
}

/// How long to wait before retrying: the `Retry-After` header (delay in
/// seconds or an HTTP date), else 1 s doubled per attempt up to 256 s;
/// at most `max`.
pub fn retry_after(headers: &reqwest::header::HeaderMap, attempt: u32, max: Duration) -> Duration {
    insights_http::retry_after(headers, SystemTime::now())
        .unwrap_or_else(|| {
            Backoff::new(Duration::from_secs(1), Duration::from_secs(256))
                .ceiling(attempt.saturating_add(1))
        })
        .min(max)
}

/// A reqwest error reduced to its kind (its text may hold the URL).
fn kind(e: &reqwest::Error) -> &'static str {
    TransportKind::of(e).as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_seconds_date_default_and_cap() {
        let max = Duration::from_secs(30);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, 0, max), Duration::from_secs(1));
        assert_eq!(retry_after(&h, 3, max), Duration::from_secs(8));
        assert_eq!(retry_after(&h, 20, max), max);
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h, 5, max), Duration::from_secs(2));
        h.insert(RETRY_AFTER, HeaderValue::from_static("9999"));
        assert_eq!(retry_after(&h, 0, max), max);
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(10)).to_rfc2822();
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&soon).unwrap_or_else(|e| panic!("{e}")),
        );
        let d = retry_after(&h, 0, max);
        assert!(
            d <= Duration::from_secs(10) && d >= Duration::from_secs(8),
            "{d:?}"
        );
        let past = (chrono::Utc::now() - chrono::Duration::seconds(10)).to_rfc2822();
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&past).unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(retry_after(&h, 0, max), Duration::ZERO);
    }
}
