//! Outbound HTTP plumbing shared by the Insights components that call
//! other services (`bot-gateway`, `insights-api`, `ai-pipeline`,
//! `gdpr-tools`):
//!
//! * [`client`]: one way to build a `reqwest` client (timeouts, redirect
//!   policy, optional HTTPS-only);
//! * [`retry`]: which statuses are retried, `Retry-After` parsing and the
//!   retry policy of Microsoft requests (the backoff arithmetic itself is
//!   [`insights_core::backoff`], shared with the job queue);
//! * [`jwks`]: the cached signing keys of an OpenID provider;
//! * [`entra`]: app-only tokens by the OAuth 2.0 client-credentials grant;
//! * [`key_vault`]: the Azure Key Vault key provider (tenant KEKs as vault
//!   RSA keys, data keys wrapped by `wrapkey`/`unwrapkey`).
//!
//! Architecture invariant: no SQL, no HTTP server and no feature crate of
//! the workspace: the media node links this crate, and it must not pull
//! the API's dependencies in with it (`scripts/check-boundaries.sh`).
#![forbid(unsafe_code)]

pub mod client;
pub mod entra;
pub mod jwks;
pub mod key_vault;
pub mod retry;

pub use client::ClientOptions;
pub use retry::{
    RetryPolicy, TransportError, TransportKind, retry_after, retry_after_ms, retryable,
};
