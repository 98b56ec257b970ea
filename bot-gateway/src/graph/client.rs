//! The HTTP client of Graph call control.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::model::{AnswerRequest, RecordingStatusReport, UpdateRecordingStatusRequest};
use super::{AppTokenSource, CallContext, CallControl, GraphError};
use insights_http::{RetryPolicy, retry_after, retryable};

/// Microsoft Graph call control over HTTPS with app-only tokens.
pub struct GraphClient {
    http: reqwest::Client,
    base: Url,
    tokens: AppTokenSource,
    retry: RetryPolicy,
    request_timeout: Duration,
}

impl GraphClient {
    /// A client for `graph_base_url` (e.g. `https://graph.microsoft.com`).
    pub fn new(
        http: reqwest::Client,
        graph_base_url: &str,
        tokens: AppTokenSource,
        max_attempts: u32,
        request_timeout: Duration,
    ) -> Result<Self, GraphError> {
        let mut base = Url::parse(graph_base_url)
            .map_err(|_| GraphError::NotConfigured("gateway.graph_base_url is not a URL"))?;
        if base.cannot_be_a_base() {
            return Err(GraphError::NotConfigured(
                "gateway.graph_base_url is not a base URL",
            ));
        }
        // Keep any path prefix of the base (stand-ins may mount Graph below one).
        let trimmed = base.path().trim_end_matches('/').to_owned();
        base.set_path(&trimmed);
        Ok(Self {
            http,
            base,
            tokens,
            retry: RetryPolicy::new(max_attempts),
            request_timeout,
        })
    }

    /// `{base}/v1.0/communications/calls/{id}/{action}`, the id encoded as
    /// one path segment whatever it contains.
    fn call_url(&self, call_id: &str, action: &str) -> Result<Url, GraphError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| GraphError::NotConfigured("gateway.graph_base_url is not a base URL"))?
            .pop_if_empty()
            .extend(["v1.0", "communications", "calls", call_id, action]);
        Ok(url)
    }

    async fn post<B: Serialize + Sync>(
        &self,
        operation: &'static str,
        call: &CallContext,
        action: &str,
        body: &B,
        deadline: Instant,
    ) -> Result<(), GraphError> {
        let url = self.call_url(&call.call_id, action)?;
        let tenant = call.directory_tenant_id.as_str();
        let mut attempt = 0;
        let mut renewed_token = false;
        loop {
            attempt += 1;
            let token = self.tokens.token(tenant, deadline).await?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(GraphError::Exhausted {
                    operation,
                    attempts: attempt - 1,
                    last: "deadline reached".into(),
                });
            }
            let sent = self
                .http
                .post(url.clone())
                .bearer_auth(token.expose())
                .json(body)
                .timeout(remaining.min(self.request_timeout))
                .send()
                .await;
            let (last, wait) = match sent {
                Ok(res) if res.status().is_success() => return Ok(()),
                Ok(res) if res.status() == reqwest::StatusCode::UNAUTHORIZED && !renewed_token => {
                    // The cached token may have been revoked: renew once.
                    self.tokens.invalidate(tenant).await;
                    renewed_token = true;
                    ("HTTP 401".to_owned(), Duration::ZERO)
                }
                Ok(res) if retryable(res.status()) => {
                    let wait = retry_after(res.headers(), SystemTime::now())
                        .unwrap_or_else(|| self.retry.backoff(attempt));
                    (format!("HTTP {}", res.status().as_u16()), wait)
                }
                Ok(res) => {
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap_or(Value::Null);
                    // Graph errors: {"error": {"code": "...", "message": "..."}};
                    // only the code is kept, the message may quote input.
                    let code = body
                        .pointer("/error/code")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    return Err(GraphError::Rejected {
                        operation,
                        status,
                        code,
                    });
                }
                Err(e) => (e.without_url().to_string(), self.retry.backoff(attempt)),
            };
            if attempt >= self.retry.max_attempts {
                return Err(GraphError::Exhausted {
                    operation,
                    attempts: attempt,
                    last,
                });
            }
            // A Retry-After beyond the deadline cannot be honoured: give up
            // now rather than retry early against the server's wish.
            if Instant::now() + wait >= deadline {
                return Err(GraphError::Exhausted {
                    operation,
                    attempts: attempt,
                    last: format!("{last}; next attempt would pass the deadline"),
                });
            }
            tracing::debug!(
                call_id = %call.call_id,
                operation,
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "retrying Graph request"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait]
impl CallControl for GraphClient {
    async fn answer(
        &self,
        call: &CallContext,
        body: &AnswerRequest,
        deadline: Instant,
    ) -> Result<(), GraphError> {
        self.post("answer", call, "answer", body, deadline).await
    }

    async fn update_recording_status(
        &self,
        call: &CallContext,
        status: RecordingStatusReport,
        deadline: Instant,
    ) -> Result<(), GraphError> {
        let body = UpdateRecordingStatusRequest {
            client_context: uuid::Uuid::new_v4().to_string(),
            status,
        };
        self.post(
            "updateRecordingStatus",
            call,
            "updateRecordingStatus",
            &body,
            deadline,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Result<GraphClient, GraphError> {
        let http = reqwest::Client::new();
        let tokens = AppTokenSource::new(
            http.clone(),
            "http://127.0.0.1:1/token".into(),
            None,
            None,
            1,
            Duration::from_secs(1),
        );
        GraphClient::new(http, base, tokens, 1, Duration::from_secs(1))
    }

    #[test]
    fn call_urls_encode_the_id_as_one_segment() {
        let c = client("https://graph.microsoft.com/").unwrap_or_else(|e| panic!("{e}"));
        let u = c.call_url("a/b c", "answer").map(|u| u.to_string());
        assert_eq!(
            u.ok().as_deref(),
            Some("https://graph.microsoft.com/v1.0/communications/calls/a%2Fb%20c/answer")
        );
        let c = client("http://127.0.0.1:9/graph").unwrap_or_else(|e| panic!("{e}"));
        let u = c
            .call_url("x", "updateRecordingStatus")
            .map(|u| u.to_string());
        assert_eq!(
            u.ok().as_deref(),
            Some("http://127.0.0.1:9/graph/v1.0/communications/calls/x/updateRecordingStatus")
        );
        assert!(client("not a url").is_err());
    }
}
