//! Contract suites: written once, generic over a store trait, run against
//! every backend by the `*_contract` test files.

pub mod ai_store;
pub mod blob;
pub mod entra;
pub mod governance;
pub mod jobs;
pub mod store;
pub mod subjects;
