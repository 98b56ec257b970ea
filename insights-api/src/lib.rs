//! The Insights HTTP API (actix-web).
//!
//! Today: `GET /healthz` (per-component status) and `GET /metrics`
//! (Prometheus), and the Excel export library ([`export`]) that the
//! export endpoint and its background job will call. Authentication, RBAC, search, playback, audit and export
//! arrive with the API issue; every handler will reach data only through
//! the tenant-scoped store traits in [`AppState`].
//!
//! Architecture invariant: this is the only crate that knows HTTP.
#![forbid(unsafe_code)]

pub mod export;
mod metrics_setup;
mod routes;
mod startup;

pub use startup::{AppState, Application};
