//! Local stand-ins for the cloud services the crates talk to, each on
//! 127.0.0.1:0 and started per test: [`http`] is the recording server they
//! are built on (and what the provider tests script directly: Azure
//! Speech, Azure OpenAI, OpenAI, Anthropic); [`oidc`] an Entra ID issuer
//! (discovery + JWKS); [`microsoft`] the Bot Framework keys, the Entra
//! token endpoint and Graph call control the gateway uses; [`teams`] a
//! Teams incoming webhook (Adaptive Card messages).

pub mod http;
pub mod microsoft;
pub mod oidc;
pub mod teams;

pub use http::{Recorded, Reply, StandIn};
