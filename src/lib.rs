//! The `insights` command: one binary, one subcommand per service or
//! operator task. `serve` runs every service in one process on embedded
//! defaults.
#![forbid(unsafe_code)]

pub mod cli;
pub mod platform;
