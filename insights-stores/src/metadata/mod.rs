//! Metadata store backends, selected by URL scheme.

pub mod postgres;
pub mod sqlite;
