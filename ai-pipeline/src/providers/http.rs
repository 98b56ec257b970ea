//! One way out to every AI provider: an HTTP client with timeouts,
//! retries and a processing record per request.
//!
//! * Each attempt is one request with the configured timeout; 429 (after
//!   `Retry-After`/`retry-after-ms`, if that fits within the backoff
//!   ceiling), 408, 5xx and network errors are retried with exponential
//!   backoff up to `max_attempts`, then end as [`CallError::Transient`]
//!   so the job queue retries the job later or dead-letters it.
//! * 401/403 are [`CallError::Unauthorized`], other 4xx
//!   [`CallError::Rejected`]: never retried.
//! * Every attempt is recorded ([`CallRecords`]): tenant, recording,
//!   provider, operation, bytes each way, status, outcome. A request whose
//!   record cannot be written fails (transiently): processing that is not
//!   on record must not look successful.
//! * Nothing personal is logged: no URL (SAS tokens, names in paths), no
//!   header value, no body; provider, operation, status, attempt and byte
//!   counts only. Redirects are not followed, so a key is only ever sent
//!   where it was configured to go.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use insights_core::backoff::Backoff;
use insights_core::domain::{
    ProviderCall, ProviderCallId, ProviderCallOutcome, RecordingId, TenantId, now,
};
use insights_core::store::MetadataStore;
use insights_http::ClientOptions;
use reqwest::Method;
use reqwest::header::HeaderMap;

/// Where the processing records of provider calls go.
#[async_trait]
pub trait CallRecords: Send + Sync {
    async fn record(&self, call: ProviderCall) -> Result<(), String>;
}

/// Processing records in the metadata store.
pub struct StoreRecords(pub Arc<dyn MetadataStore>);

#[async_trait]
impl CallRecords for StoreRecords {
    async fn record(&self, call: ProviderCall) -> Result<(), String> {
        self.0
            .record_provider_call(call.tenant_id, &call)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Whose data a provider call carries, and where its record goes.
#[derive(Clone)]
pub struct CallContext {
    pub tenant: TenantId,
    pub recording: Option<RecordingId>,
    pub records: Arc<dyn CallRecords>,
}

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// 401/403: the key is wrong or lacks the right.
    #[error("provider refused the credentials (HTTP {status})")]
    Unauthorized { status: u16 },
    /// Another 4xx (not 408/429): the request itself is refused.
    #[error("provider rejected the request (HTTP {status})")]
    Rejected { status: u16 },
    /// 429/408/5xx/network after the retries, a record that could not be
    /// written, or a job that ran out of time.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after_ms: Option<u64>,
    },
    /// The provider could not do the work (e.g. a batch job that failed).
    #[error("provider could not process the request: {0}")]
    Failed(String),
    /// The provider answered something we cannot use.
    #[error("provider answer unusable: {0}")]
    Invalid(String),
    /// The answer points somewhere we must not follow (a result link
    /// outside the configured origins): never retried, since asking again
    /// would send the audio again and get the same answer.
    #[error("provider answer refused: {0}")]
    Refused(String),
}

/// Retry and timeout settings.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1` (after `attempt` failures):
    /// `backoff_initial` doubling up to `backoff_max`, no jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        Backoff::new(self.backoff_initial, self.backoff_max).ceiling(attempt)
    }
}

/// One request, ready to be sent (again). Its `Debug` shows the method,
/// header names and body size only: the URL may carry a SAS token, header
/// values keys, the body transcript text.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    /// Header values may be secrets (keys): never logged.
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<(String, Bytes)>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field("body_bytes", &self.body.as_ref().map(|(_, b)| b.len()))
            .finish_non_exhaustive()
    }
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, content_type: impl Into<String>, body: impl Into<Bytes>) -> Self {
        self.body = Some((content_type.into(), body.into()));
        self
    }

    pub fn json(self, value: &serde_json::Value) -> Self {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.body("application/json", bytes)
    }
}

/// A successful (2xx) answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, CallError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            CallError::Invalid(format!(
                "unexpected JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }
}

/// The shared HTTP client of the providers.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
    policy: RetryPolicy,
}

/// Outcome of one attempt.
enum Attempt {
    Done(Reply),
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    Fail(CallError),
}

impl Http {
    pub fn new(policy: RetryPolicy) -> Result<Self, CallError> {
        let client = ClientOptions::new(policy.timeout.min(Duration::from_secs(10)))
            .timeout(policy.timeout)
            .build()
            .map_err(|_| CallError::Invalid("cannot build the HTTP client".into()))?;
        Ok(Self { client, policy })
    }

    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Sends `req` with retries; every attempt is recorded under
    /// `provider` and `operation`.
    pub async fn send(
        &self,
        ctx: &CallContext,
        provider: &str,
        operation: &str,
        req: &Request,
    ) -> Result<Reply, CallError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (message, retry_after) = match self.attempt(ctx, provider, operation, req).await? {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry {
                    message,
                    retry_after,
                } => (message, retry_after),
            };
            let wait = retry_after.unwrap_or_else(|| self.policy.backoff(attempt));
            if attempt >= self.policy.max_attempts || wait > self.policy.backoff_max {
                tracing::warn!(
                    provider,
                    operation,
                    attempts = attempt,
                    "provider call failed; giving up for now"
                );
                return Err(CallError::Transient {
                    message: format!("{provider} {operation}: {message} after {attempt} attempts"),
                    retry_after_ms: retry_after.map(|d| d.as_millis() as u64),
                });
            }
            tracing::info!(
                provider,
                operation,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "provider call failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        ctx: &CallContext,
        provider: &str,
        operation: &str,
        req: &Request,
    ) -> Result<Attempt, CallError> {
        let mut builder = self.client.request(req.method.clone(), &req.url);
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        let sent = match &req.body {
            Some((content_type, body)) => {
                builder = builder
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body.clone());
                body.len()
            }
            None => 0,
        };
        let at = now();
        let started = Instant::now();
        let result = match builder.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                match resp.bytes().await {
                    Ok(body) => Ok((status, headers, body)),
                    Err(e) => Err((Some(status), e)),
                }
            }
            Err(e) => Err((None, e)),
        };
        let duration_ms = started.elapsed().as_millis() as i64;
        let (status, received, outcome, attempt) = match result {
            Err((status, e)) => {
                // reqwest's message contains the URL: keep only the kind.
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                let attempt = Attempt::Retry {
                    message: kind.to_owned(),
                    retry_after: None,
                };
                (status, 0, ProviderCallOutcome::Unreachable, attempt)
            }
            Ok((status, headers, body)) => {
                let received = body.len();
                let (outcome, attempt) = classify(status, headers, body);
                (Some(status), received, outcome, attempt)
            }
        };
        let call = ProviderCall {
            id: ProviderCallId::new(),
            tenant_id: ctx.tenant,
            recording_id: ctx.recording,
            provider: provider.to_owned(),
            operation: operation.to_owned(),
            bytes_sent: sent as i64,
            bytes_received: received as i64,
            http_status: status.map(i32::from),
            outcome,
            at,
            duration_ms,
        };
        if let Err(e) = ctx.records.record(call).await {
            tracing::error!(provider, operation, error = %e, "cannot record a provider call");
            return Err(CallError::Transient {
                message: "the processing record of a provider call could not be written".into(),
                retry_after_ms: None,
            });
        }
        Ok(attempt)
    }
}

fn classify(status: u16, headers: HeaderMap, body: Bytes) -> (ProviderCallOutcome, Attempt) {
    match status {
        200..=299 => (
            ProviderCallOutcome::Ok,
            Attempt::Done(Reply {
                status,
                headers,
                body,
            }),
        ),
        429 => (
            ProviderCallOutcome::RateLimited,
            Attempt::Retry {
                message: "rate limited (HTTP 429)".into(),
                retry_after: retry_after(&headers),
            },
        ),
        408 => (
            ProviderCallOutcome::Failed,
            Attempt::Retry {
                message: "request timeout (HTTP 408)".into(),
                retry_after: retry_after(&headers),
            },
        ),
        401 | 403 => (
            ProviderCallOutcome::Rejected,
            Attempt::Fail(CallError::Unauthorized { status }),
        ),
        400..=499 => (
            ProviderCallOutcome::Rejected,
            Attempt::Fail(CallError::Rejected { status }),
        ),
        _ => (
            ProviderCallOutcome::Failed,
            Attempt::Retry {
                message: format!("provider error (HTTP {status})"),
                retry_after: retry_after(&headers),
            },
        ),
    }
}

/// `retry-after-ms` (Azure OpenAI) or `Retry-After` in seconds or as an
/// HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    insights_http::retry_after_ms(headers)
        .or_else(|| insights_http::retry_after(headers, SystemTime::now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn request_debug_shows_no_url_key_or_body() {
        let r = Request::new(
            Method::POST,
            "https://x.blob.core.windows.net/c/b?sig=SAS-SECRET",
        )
        .header("api-key", "KEY-SECRET")
        .body("text/plain", "TRANSCRIPT-TEXT");
        let d = format!("{r:?}");
        for secret in ["SAS-SECRET", "KEY-SECRET", "TRANSCRIPT-TEXT", "windows.net"] {
            assert!(!d.contains(secret), "{d}");
        }
        assert!(d.contains("api-key") && d.contains("15"), "{d}");
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let p = RetryPolicy {
            timeout: Duration::from_secs(1),
            max_attempts: 10,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
        };
        let waits: Vec<u128> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past");
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
