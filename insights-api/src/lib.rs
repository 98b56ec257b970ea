//! The Insights HTTP API (actix-web).
//!
//! Today: `GET /healthz` (per-component status) and `GET /metrics`
//! (Prometheus). Authentication, RBAC, search, playback, audit and export
//! arrive with the API issue; every handler will reach data only through
//! the tenant-scoped store traits in [`AppState`].
//!
//! Architecture invariant: this is the only crate that knows HTTP.
#![forbid(unsafe_code)]

mod metrics_setup;
pub mod playback;
mod routes;
mod startup;

pub use startup::{AppState, Application};
