//! Shared core of Insights: the domain model, configuration, envelope
//! encryption, log redaction and the traits every backend implements.
//!
//! Architecture invariant: this crate knows nothing of HTTP, SQL or any
//! cloud SDK. Dependencies point inward, to here.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod backoff;
pub mod blob;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod fsio;
pub mod problem;
pub mod spool;
pub mod store;
pub mod telemetry;
