//! App-only access tokens for Graph call control: the shared
//! client-credentials source of `insights-http` ([`TokenSource`]), cached
//! per customer tenant and retried within the caller's deadline, behind
//! the gateway's configuration checks and errors.

use std::time::Duration;

use insights_core::config::Secret;
use insights_http::RetryPolicy;
use insights_http::entra::{ClientCredentials, GRAPH_SCOPE, TokenError, TokenSource};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::GraphError;

const OPERATION: &str = "token request";

/// Client-credentials tokens, one per Entra tenant, cached until shortly
/// before they expire. The endpoint may contain `{tenant}`, replaced by
/// the tenant the token is for.
pub struct AppTokenSource {
    /// The source, or the setting that is missing for one.
    source: Result<TokenSource, &'static str>,
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
        let source = match (client_id, client_secret) {
            (None, _) => Err("gateway.client_id (or gateway.app_id)"),
            (Some(_), None) => Err("gateway.client_secret"),
            (Some(client_id), Some(secret)) => Ok(TokenSource::new(
                http,
                ClientCredentials {
                    endpoint,
                    client_id,
                    client_secret: Zeroizing::new(secret.expose().to_owned()),
                    scope: GRAPH_SCOPE.to_owned(),
                },
                request_timeout,
            )
            .retry(RetryPolicy::new(max_attempts))
            .cached()),
        };
        Self { source }
    }

    /// A valid token for `tenant`, fetched if none is cached, by `deadline`.
    pub async fn token(&self, tenant: &str, deadline: Instant) -> Result<Secret, GraphError> {
        let source = self
            .source
            .as_ref()
            .map_err(|m| GraphError::NotConfigured(m))?;
        match source.token(tenant, Some(deadline)).await {
            Ok(token) => Ok(Secret::new(token.as_str())),
            Err(TokenError::Rejected { status, code }) => {
                Err(GraphError::TokenRejected { status, code })
            }
            Err(TokenError::Invalid(problem)) => Err(GraphError::BadResponse {
                operation: OPERATION,
                problem: problem.to_string(),
            }),
            Err(TokenError::Body(e)) => Err(GraphError::BadResponse {
                operation: OPERATION,
                problem: e.to_string(),
            }),
            Err(TokenError::Exhausted { attempts, last }) => Err(GraphError::Exhausted {
                operation: OPERATION,
                attempts,
                last: last.to_string(),
            }),
        }
    }

    /// Forgets the cached token of `tenant` (Graph said it is not valid).
    pub async fn invalidate(&self, tenant: &str) {
        if let Ok(source) = &self.source {
            source.invalidate(tenant).await;
        }
    }
}
