//! The integration tests of `insights-tests` in one binary (`it`): each
//! former test file is a module, so the dependency tree is linked once
//! instead of once per file. Test names carry the module
//! (`store_pg::search_sort_orders`); filter with nextest, e.g.
//! `cargo nextest run -p insights-tests -E 'test(/^store_pg::/)'`.

mod ai_store_pg;
mod ai_store_sqlite;
mod blob_azure;
mod blob_local;
mod browser_playback;
mod entra_pg;
mod entra_sqlite;
mod gdpr_store_pg;
mod gdpr_store_sqlite;
mod gdpr_subject;
mod governance_pg;
mod governance_sqlite;
mod jobs_pg;
mod jobs_sqlite;
mod media_envelope;
mod pg_rls;
mod search_totals;
mod store_pg;
mod store_sqlite;
