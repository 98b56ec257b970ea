//! The `insights` command: one binary, one subcommand per service or
//! operator task. `serve` runs every service in one process on embedded
//! defaults.
#![forbid(unsafe_code)]

pub mod cli;
pub mod cli_audit;
pub mod cli_directory;
pub mod cli_gdpr;
pub mod cli_gdpr_subject;
pub mod cli_retention;
pub mod cli_transcribe;
pub mod cli_users;
pub mod cli_worker;
pub mod platform;
