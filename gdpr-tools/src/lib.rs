//! Data-protection tools built on the store, blob and key traits of
//! `insights-core` (no SQL here; HTTP only for Microsoft Graph in `directory`): finding a data subject, access
//! and portability bundles, erasure with signed certificates, retention
//! enforcement, legal holds, directory sync, and the completeness
//! reconciliation against Microsoft's call records.

pub mod access;
pub mod alerts;
pub mod bundles;
pub mod certificate;
pub mod completeness;
pub mod directory;
pub mod erasure;
pub mod holds;
pub mod leader;
mod media_mask;
pub mod retention;
pub mod subject;
