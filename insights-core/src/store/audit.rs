//! The audit hash chain, and the check that diagnoses it.

use async_trait::async_trait;

use super::{MetadataStore, StoreError, StoreResult};
use crate::domain::*;

/// The tenant's tamper-evident audit chain (checked by
/// [`check_audit_chain`]).
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends to the tenant's hash chain atomically (no gaps or forks
    /// under concurrent appends) and returns the stored event.
    async fn append_audit(&self, tenant: TenantId, event: NewAuditEvent)
    -> StoreResult<AuditEvent>;
    /// Events matching the filters, ordered by `seq`.
    async fn list_audit(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// The recorded head of the chain: last `seq` and hash.
    async fn audit_head(&self, tenant: TenantId) -> StoreResult<Option<(i64, String)>>;
    /// Events matching the filters, newest first (descending `seq`): only
    /// those with `seq < before_seq` when given (the previous page's
    /// last), at most `query.limit` (0 = all); `query.after_seq` bounds
    /// from below as in [`Self::list_audit`]. The default reads the
    /// matching events in order; the stores answer it with one query.
    async fn list_audit_newest_first(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
        before_seq: Option<i64>,
    ) -> StoreResult<Vec<AuditEvent>> {
        let all = AuditQuery {
            limit: 0,
            ..query.clone()
        };
        let mut events: Vec<AuditEvent> = self
            .list_audit(tenant, &all)
            .await?
            .into_iter()
            .filter(|e| before_seq.is_none_or(|b| e.seq < b))
            .collect();
        events.reverse();
        if query.limit > 0 {
            events.truncate(query.limit as usize);
        }
        Ok(events)
    }
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`AuditStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_audit_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            AuditStore for $ty => $inner, $hook;
            fn append_audit(&self, tenant: TenantId, event: NewAuditEvent) -> StoreResult<AuditEvent>;
            fn list_audit(&self, tenant: TenantId, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>>;
            fn audit_head(&self, tenant: TenantId) -> StoreResult<Option<(i64, String)>>;
            fn list_audit_newest_first(&self, tenant: TenantId, query: &AuditQuery, before_seq: Option<i64>) -> StoreResult<Vec<AuditEvent>>;
        }
    };
}

/// Events read per page by [`check_audit_chain`].
const AUDIT_CHECK_PAGE: u32 = 5_000;

/// Reads a tenant's whole audit chain page by page (memory: two digests
/// per event) and its recorded head, and diagnoses it: which events were
/// edited, deleted, reordered or truncated ([`ChainReport`]).
///
/// An event that cannot even be read back as an [`AuditEvent`] (a stored
/// field made unparsable) does not stop the check: it is located by
/// paging past it one seq at a time and reported as
/// [`ChainProblem::Unreadable`]. Any other store error is returned.
pub async fn check_audit_chain(
    store: &dyn MetadataStore,
    tenant: TenantId,
) -> StoreResult<ChainReport> {
    // The head is read after the events: an event appended while we read
    // then lies within the head instead of beyond it.
    let mut checker = ChainChecker::new();
    let mut after = 0i64;
    loop {
        let query = AuditQuery {
            after_seq: Some(after),
            limit: AUDIT_CHECK_PAGE,
            ..AuditQuery::default()
        };
        match store.list_audit(tenant, &query).await {
            Ok(page) => {
                let Some(last) = page.last().map(|e| e.seq) else {
                    break;
                };
                for ev in &page {
                    checker.push(ev);
                }
                after = last;
            }
            Err(StoreError::Corrupt(_)) => {
                // Somewhere in this page: read on one event at a time up
                // to the unreadable one, then page on after it.
                loop {
                    let one = AuditQuery {
                        after_seq: Some(after),
                        limit: 1,
                        ..AuditQuery::default()
                    };
                    match store.list_audit(tenant, &one).await {
                        Ok(page) => match page.first() {
                            Some(ev) => {
                                checker.push(ev);
                                after = ev.seq;
                            }
                            None => break,
                        },
                        Err(StoreError::Corrupt(_)) => {
                            after = locate_unreadable(store, tenant, after).await?;
                            checker.push_unreadable(after);
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    let head = store.audit_head(tenant).await?;
    Ok(checker.finish(head.as_ref().map(|(s, h)| (*s, h.as_str()))))
}

/// Probes made to locate one unreadable event.
const MAX_UNREADABLE_PROBES: i64 = 100_000;

/// The seq of the first event after `after` that cannot be read: the
/// smallest `k > after` from which reading on succeeds. (Events between
/// `after` and `k` are unreadable too or missing; they are reported as
/// missing.)
async fn locate_unreadable(
    store: &dyn MetadataStore,
    tenant: TenantId,
    after: i64,
) -> StoreResult<i64> {
    let mut k = after;
    loop {
        k = k
            .checked_add(1)
            .filter(|k| *k - after <= MAX_UNREADABLE_PROBES)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "an audit event after seq {after} cannot be read and cannot be located"
                ))
            })?;
        let query = AuditQuery {
            after_seq: Some(k),
            limit: 1,
            ..AuditQuery::default()
        };
        match store.list_audit(tenant, &query).await {
            Ok(_) => return Ok(k),
            Err(StoreError::Corrupt(_)) => {}
            Err(e) => return Err(e),
        }
    }
}
