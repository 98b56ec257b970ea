//! Fault injection for the metadata store: [`FaultyStore`] wraps a real
//! store and fails the methods a test names, or every method while the
//! "database" is down.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use insights_core::store::{MetadataStore, StoreError, StoreResult};

/// A metadata store whose named methods fail while listed in `failing`
/// (each failure consumes one of `fail_budget`), or all while `down`.
/// Every other call goes to `inner`.
pub struct FaultyStore {
    /// The store that answers when no fault is injected.
    pub inner: Arc<dyn MetadataStore>,
    /// Names of the methods that fail (`"set_recording_media"`...).
    pub failing: Mutex<HashSet<&'static str>>,
    /// Failures left to inject into the `failing` methods.
    pub fail_budget: AtomicUsize,
    /// While set, every method fails (as an unreachable database).
    pub down: AtomicBool,
}

impl FaultyStore {
    /// A wrapper of `inner` that injects nothing yet.
    pub fn new(inner: Arc<dyn MetadataStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            failing: Mutex::new(HashSet::new()),
            fail_budget: AtomicUsize::new(usize::MAX),
            down: AtomicBool::new(false),
        })
    }

    /// Makes `method` fail the next `times` calls.
    pub fn fail(&self, method: &'static str, times: usize) {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(method);
        self.fail_budget.store(times, Ordering::SeqCst);
    }

    /// The injected fault of a call to `method`, if any.
    fn check(&self, method: &'static str) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("injected: database down".into()));
        }
        let failing = self
            .failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(method);
        if failing
            && self
                .fail_budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(StoreError::Backend(
                format!("injected: {method} failed").into(),
            ));
        }
        Ok(())
    }
}

// Every method of every area: `check` first, then the inner store.
insights_core::delegate_store_areas!(FaultyStore => inner, before check);
