//! Metadata store contract suite: the behaviour every
//! [`MetadataStore`] backend must show, written once and run against each
//! backend (SQLite, PostgreSQL).
//!
//! # Running it against a backend
//!
//! A backend's test file defines one `async fn` returning a fresh,
//! empty store wrapped in a [`StoreUnderTest`], and invokes the macro:
//!
//! ```text
//! use insights_tests::contract::store::StoreUnderTest;
//!
//! async fn make() -> StoreUnderTest {
//!     let store = PgStore::connect(&insights_tests::fresh_pg_database().await, 5)
//!         .await
//!         .unwrap_or_else(|e| panic!("cannot open the store: {e}"));
//!     StoreUnderTest::new(store)
//! }
//!
//! insights_tests::store_contract_tests!(make);
//! ```
//!
//! The macro expands to one `#[tokio::test]` per contract function (multi
//! thread runtime, 2 workers), each on its own fresh store. Use
//! [`StoreUnderTest::with_guard`] to keep something alive for the test's
//! duration (e.g. the `TempDir` holding a SQLite file).
//!
//! # Readings of the trait docs pinned by this suite
//!
//! Where the trait docs leave a choice, the suite pins one reading so that
//! every backend behaves the same:
//!
//! * "ordered by (kind, created_at, id)" and the like use the Rust `Ord` of
//!   the domain types: [`InsightKind`](insights_core::domain::InsightKind) in declaration order (summary,
//!   decision, action-item, topic), ids in UUID (byte) order.
//! * Search duration bounds are inclusive (`min <= duration <= max`);
//!   recordings without a duration never match a duration bound.
//! * Participant words must all match the *same* participant (name, email
//!   or URI; prefix match per word, case-insensitive). Emails and URIs are
//!   matched word by word as well as whole: `partner` and `bob jon` find
//!   `frank@partner.example` and `sip:bob.jones@contoso.com`, and so does
//!   the whole address. Digits (with phone punctuation, `+`, `00`
//!   prefixes, `tel:`) are matched as a substring of the participants'
//!   normalised numbers (`425 555 0100` finds `+14255550100`).
//! * Transcript text: every word must occur in one segment, in any order;
//!   case-insensitive. The suite only uses content words (no stopwords),
//!   and does not test stemming, so an English stemmer with a stopword
//!   list (PostgreSQL `english`) and porter (SQLite FTS5) agree.
//! * Snippets are only returned when `transcript_text` is set; each marks
//!   the matched words, one by one, as `[[word]]`.
//! * A participant query with no word or digit in it (`%`, `*`, `"`) matches
//!   nothing (it must not turn into a wildcard).
//! * Sorting is total and deterministic (ties broken by id), so pages of
//!   any size concatenate to the same order as a single page. Where
//!   recordings without a duration go in a duration sort is not pinned.
//! * Listing the transcript or insights of a recording that does not exist
//!   (or exists in another tenant) is `NotFound` or an empty list.
//! * Adding to, or putting a transcript/insights on, a recording that does
//!   not exist (in this tenant) is `NotFound`.
//!
//! # Layout
//!
//! One module per area of the store (`tenants`, `directory`, `recordings`,
//! `search`, `transcripts`, `audit`, `governance`, `accounts`,
//! `approvals`, `keys`, `transient`), shared helpers in `fixtures`. Every `pub async fn`
//! of an area module is a case: `build.rs` lists them into
//! [`store_contract_tests!`](crate::store_contract_tests), so a new case
//! runs on every backend without being listed anywhere.

use std::any::Any;
use std::sync::Arc;

use insights_core::store::MetadataStore;

mod fixtures;

pub mod accounts;
pub mod alerts;
pub mod approvals;
pub mod audit;
pub mod directory;
pub mod governance;
pub mod keys;
pub mod leases;
pub mod meeting_claims;
pub mod recording_gaps;
pub mod recordings;
pub mod search;
pub mod segment_uploads;
pub mod tenants;
pub mod transcripts;
pub mod transient;

/// A store under test, plus whatever must outlive it (a temp dir...).
pub struct StoreUnderTest {
    store: Arc<dyn MetadataStore>,
    // Dropped after `store` (fields drop in declaration order).
    _keep_alive: Option<Box<dyn Any + Send + Sync>>,
}

impl StoreUnderTest {
    /// A store that needs nothing else kept alive.
    pub fn new(store: impl MetadataStore) -> Self {
        Self {
            store: Arc::new(store),
            _keep_alive: None,
        }
    }

    /// A store plus a guard dropped after it (e.g. its `TempDir`).
    pub fn with_guard(store: impl MetadataStore, guard: impl Any + Send + Sync) -> Self {
        Self {
            store: Arc::new(store),
            _keep_alive: Some(Box::new(guard)),
        }
    }

    /// The store, shareable across tasks.
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }
}

/// The handle every contract function takes.
pub type Store = Arc<dyn MetadataStore>;
