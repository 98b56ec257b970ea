//! Microsoft Graph Communications: the notification shapes we receive
//! ([`model`]) and call control we send: `answer` and
//! `updateRecordingStatus`, behind the [`CallControl`] trait.
//!
//! [`GraphClient`] is the real client: app-only tokens from the
//! client-credentials flow ([`AppTokenSource`], cached per customer
//! tenant until shortly before they expire) and retries with exponential
//! backoff and jitter on 429/5xx and transport errors, honouring
//! `Retry-After`, all within a deadline (token source, retry policy and
//! `Retry-After` parsing are the shared ones of `insights-http`) (an answer must reach Graph within
//! 5 s of the invite). [`SimulatedCallControl`] stands in for Graph for
//! calls signed by the local simulator, which Microsoft knows nothing of.

mod client;
pub mod model;
mod simulated;
mod token;

use async_trait::async_trait;
use tokio::time::Instant;

pub use client::GraphClient;
pub use model::{AnswerRequest, AppHostedMediaConfig, RecordingStatusReport};
pub use simulated::{SimulatedCallControl, SimulatedOperation};
pub use token::AppTokenSource;

/// Which call a control request is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallContext {
    /// The Graph call id.
    pub call_id: String,
    /// The customer's Entra tenant id (app-only tokens are per tenant).
    pub directory_tenant_id: String,
}

/// Why a call-control request failed. Messages hold ids and status codes
/// only, never personal data.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Something needed for Graph is missing from the configuration.
    #[error("Graph call control is not configured: {0}")]
    NotConfigured(&'static str),
    /// The token endpoint refused our client credentials.
    #[error("token endpoint refused the client credentials (HTTP {status}, error `{code}`)")]
    TokenRejected { status: u16, code: String },
    /// Graph refused the request (a 4xx other than 408/429).
    #[error("{operation} refused by Graph (HTTP {status}, code `{}`)", code.as_deref().unwrap_or("-"))]
    Rejected {
        operation: &'static str,
        status: u16,
        code: Option<String>,
    },
    /// Retryable failures until the attempts or the deadline ran out.
    #[error("{operation} failed after {attempts} attempt(s): {last}")]
    Exhausted {
        operation: &'static str,
        attempts: u32,
        last: String,
    },
    /// A response that does not have the documented shape.
    #[error("{operation}: unexpected response: {problem}")]
    BadResponse {
        operation: &'static str,
        problem: String,
    },
}

/// Call control: what the gateway asks of Graph for a call.
#[async_trait]
pub trait CallControl: Send + Sync + 'static {
    /// `POST /communications/calls/{id}/answer`, done by `deadline`.
    async fn answer(
        &self,
        call: &CallContext,
        body: &AnswerRequest,
        deadline: Instant,
    ) -> Result<(), GraphError>;

    /// `POST /communications/calls/{id}/updateRecordingStatus`, done by
    /// `deadline`. Success means Graph acknowledged the status.
    async fn update_recording_status(
        &self,
        call: &CallContext,
        status: RecordingStatusReport,
        deadline: Instant,
    ) -> Result<(), GraphError>;
}
