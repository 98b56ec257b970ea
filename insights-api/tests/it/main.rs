//! The integration tests of `insights-api` in one binary (test target
//! `insights_api_it`): each former test file is a module, so the dependency
//! tree is linked once instead of once per file. Test names carry the
//! module (`<file>::<test>`); filter with nextest, e.g.
//! `cargo nextest run -p insights-api -E 'test(/^<file>::/)'`.

mod support;

mod auth_local;
mod auth_oidc;
mod directory;
mod export;
mod gdpr;
mod governance;
mod oidc_login;
mod playback;
mod recordings;
