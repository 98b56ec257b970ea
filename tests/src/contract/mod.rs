//! Contract suites: written once, generic over a store trait, run against
//! every backend by the test files under `tests/tests`.
//!
//! A case is a `pub async fn` of a suite's module taking the store; that
//! is all there is to declaring one. `build.rs` collects the cases of every
//! suite into its `*_contract_tests!` macro (one `#[tokio::test]` per case
//! on a fresh fixture), which each backend's test file invokes once: a new
//! case runs on every backend, and cannot be left out of a list.

pub mod ai_store;
pub mod blob;
pub mod entra;
pub mod governance;
pub mod jobs;
pub mod store;
pub mod subjects;

// The generated `*_contract_tests!` macros (see build.rs).
include!(concat!(env!("OUT_DIR"), "/contract_cases.rs"));
