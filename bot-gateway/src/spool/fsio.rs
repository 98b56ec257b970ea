//! The spool's crash-safe file steps are [`insights_core::fsio`]'s (the one
//! implementation every crate shares); re-exported here only for callers
//! not moved to it yet (the custody signing key). Remove once none are left.

pub(crate) use insights_core::fsio::{create_dir_private, sync_dir};
