//! The Insights HTTP API (actix-web).
//!
//! Today: `GET /livez`, `/readyz` and `/healthz` (per-component status;
//! also served alone by nodes without the API role, [`Application::build_node`]), `GET /metrics`
//! (Prometheus), authentication (`/api/auth/login`, `/logout`, `/me`),
//! the Range-capable media streaming of [`playback`] and the Excel export
//! library ([`export`]) that the export endpoint and its background job
//! call. Handlers take a [`Principal`] (the authenticated caller, with
//! `require(Permission)` and `tenant()`) and return `Result<_, ApiError>`
//! (RFC 9457 problem+json with a stable `code`); they reach data only
//! through the tenant-scoped store traits in [`AppState`].
//!
//! Architecture invariant: this is the only crate that knows HTTP.
#![forbid(unsafe_code)]

pub mod auth;
pub mod client_addr;
pub mod error;
pub mod export;
mod metrics_setup;
pub use metrics_setup::configure as configure_metrics;
pub mod playback;
mod routes;
pub use routes::completeness::{CompletenessHandle, parse_time as completeness_time};
pub use routes::directory::DirectorySyncHandle;
mod startup;
pub mod tls;

pub use auth::{AuthMethod, Authenticator, Principal, Subject};
pub use error::ApiError;
pub use routes::gdpr::GdprContext;
pub use routes::health::{Readiness, ReadyCheck};
pub use routes::recording_policy::change_details as recording_policy_change_details;
pub use startup::{AppState, Application};
