//! The integration tests of `bot-gateway` in one binary (test target
//! `bot_gateway_it`): each former test file is a module, so the dependency
//! tree is linked once instead of once per file. Test names carry the
//! module (`<file>::<test>`); filter with nextest, e.g.
//! `cargo nextest run -p bot-gateway -E 'test(/^<file>::/)'`.

mod ingest_support;
mod support;
mod uploader_support;

mod ingest;
mod late_call_end;
mod segments;
mod simulator;
mod siprec;
mod spool;
mod spool_metrics;
mod uploader;
mod uploader_erasure;
mod uploader_pg_azure;
mod uploader_rewrap;
mod webhook_auth;
mod webhook_calls;
mod webhook_logs;
