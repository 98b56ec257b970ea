//! The Teams compliance-recording gateway: the bot webhook Microsoft Graph
//! Communications calls, media ingest, the encrypted local spool and the
//! uploader that moves finished recordings to the tenant's container.
//! It also hosts the SIPREC Session Recording Server ([`siprec`]) whose
//! SBC recordings take the same spool and uploader.
#![forbid(unsafe_code)]

pub mod auth;
pub mod calls;
pub mod custody;
pub mod graph;
pub mod ingest;
pub mod segments;
pub mod simulator;
pub mod siprec;
pub mod spool;
pub mod uploader;
pub mod webhook;
