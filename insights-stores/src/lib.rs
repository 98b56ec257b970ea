//! Backends for the store traits of `insights-core`, chosen at start-up
//! from configuration:
//!
//! * metadata: [`metadata::sqlite`] (embedded default) and
//!   [`metadata::postgres`], selected by URL scheme;
//! * blobs: [`blob::local`] (embedded default) and [`blob::azure`].
//!
//! Architecture invariant: only this crate knows SQL or a storage SDK.
#![forbid(unsafe_code)]

pub mod blob;
pub mod metadata;
mod open;

pub use open::{OpenError, open_blobs, open_metadata};
