//! The local stand-in for the Microsoft endpoints the gateway talks to
//! (Graph Communications' OpenID configuration and JWKS, the Entra token
//! endpoint, Graph call control): the shared
//! [`insights_tests::standins::microsoft`].

#[allow(unused_imports)]
pub use insights_tests::standins::microsoft::{
    CLIENT_ID, CLIENT_SECRET, GraphCall, Microsoft as StandIn, Scripted, TokenCall,
};
