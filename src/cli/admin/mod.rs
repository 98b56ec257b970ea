//! `insights admin ...`: tenants and local accounts.

pub mod users;
