//! Directory sync (issue 7, part 7): users from Entra ID through Microsoft
//! Graph's delta query, on a schedule (`insights serve`), from the CLI
//! (`insights directory sync`) and the API (`POST /api/directory/sync`).
//!
//! One run for one tenant:
//!
//! 1. an app-only token (client credentials) for the tenant's directory;
//! 2. the stored `@odata.deltaLink` of the last complete run, else the
//!    first page of `/users/delta?$select=…` (a **full** run);
//! 3. every page, following `@odata.nextLink`, each user merged into its
//!    [`DirectoryUser`] (matched by Entra object id; a property the page
//!    does not carry keeps its stored value; phones normalised to E.164
//!    where possible; the SIP address from `proxyAddresses` `SIP:` or
//!    `imAddresses`); an item with `@removed` turns the user inactive;
//! 4. a full run also turns inactive every synchronised user it did not
//!    see (they left the directory while no delta link was kept);
//! 5. the new `@odata.deltaLink` is stored only now, so an interrupted
//!    run is simply repeated; writes are idempotent, one transaction per
//!    page (`upsert_directory_users`);
//! 6. recorded participants whose Entra object id (stored at capture) is
//!    a directory user's and who lack its e-mail/UPN, SIP URI or user id
//!    get them (`link_participants_to_directory`): a call captured
//!    before its user was synchronised is then found by a data-subject
//!    request by e-mail or UPN, like one linked at capture.
//!
//! One run per tenant at a time on every node: the run holds the
//! tenant's lease (see [`DirectorySync`]).
//!
//! A delta link the service no longer knows (`410 Gone`) starts a full
//! run. Inactive users stay (recordings may reference them) until an
//! admin deletes them; deleting an active user is refused by the store.
//! Only ids and counts are logged, never a name, address or number.
//!
//! [`Scheduler`] (`schedule.rs`) runs it periodically for `insights serve`.

mod active;
mod graph;
mod schedule;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use insights_core::config::DirectorySettings;
use insights_core::domain::{
    AuditAction, DirectorySyncState, DirectoryUser, LEASE_LOST, NewAuditEvent, Tenant, TenantId,
    UserId, normalize_phone, now,
};
use insights_core::store::{MetadataStore, StoreError};

use crate::leader::HeldLease;
use serde::Serialize;
use serde_json::Value;

pub use active::{ActiveCheck, UserState};
pub use graph::{DeltaPage, Fetched, GraphClient, GraphConfig, USER_SELECT, retry_after};
pub use schedule::{JOB, SCHEDULE_ACTOR, Scheduler};

/// Why a sync run failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("directory sync is not configured ([directory] client_id)")]
    NotConfigured,
    #[error("the environment variable {0} (directory.client_secret_env) is not set")]
    MissingSecret(String),
    #[error("directory sync configuration: {0}")]
    Config(String),
    #[error("tenant {0} has no directory tenant id")]
    NoDirectoryTenant(TenantId),
    #[error("cannot get a Graph token: {0}")]
    Token(String),
    #[error("Graph refused the request ({0}): check the app's User.Read.All consent")]
    Refused(u16),
    #[error("Graph kept throttling ({status}) after {retries} retries")]
    Throttled { retries: u32, status: u16 },
    #[error("network error: {0}")]
    Network(String),
    #[error("unexpected Graph answer: {0}")]
    Protocol(String),
    #[error("the delta link expired twice in one run")]
    DeltaExpiredAgain,
    /// Another run of the same tenant holds its lease (on this node or
    /// another): nothing was done.
    #[error("a directory sync of this tenant is already running")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one run did (the API's `SyncReport`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Users seen for the first time.
    pub added: u32,
    /// Known users whose data changed (reactivations included).
    pub updated: u32,
    /// Users turned inactive (removed from the directory).
    pub deactivated: u32,
    /// Graph pages fetched.
    pub pages: u32,
    /// Requests retried after throttling (429/503/504).
    pub throttled_retries: u32,
    /// Whether the run started from a stored delta link.
    pub delta: bool,
    /// Recorded participants linked to their directory user by this run
    /// (captured before the user was synchronised; matched by Entra
    /// object id): their e-mail or UPN, SIP URI and directory user id
    /// filled in, so search and data-subject requests find them.
    pub participants_linked: u64,
}

/// Runs directory syncs. A tenant is synced by one run at a time across
/// every node and request: each run holds the tenant's lease
/// (`directory-sync:<tenant id>`, [`TENANT_LEASE`] long, renewed while it
/// runs), writes only while it holds it and appends its audit event
/// fenced by it; a run that finds the lease held ends at once with
/// [`DirectoryError::Busy`] (the API's `409 directory-sync-running`; the
/// schedule counts the tenant as synced by that other run).
pub struct DirectorySync {
    graph: GraphClient,
    store: Arc<dyn MetadataStore>,
    /// This runner's lease holder name (a per-instance suffix).
    holder: String,
}

/// How long a tenant's sync lease lasts without renewal.
pub const TENANT_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// The lease a run of `tenant` holds.
pub fn tenant_lease_job(tenant: TenantId) -> String {
    format!("directory-sync:{}", tenant.as_uuid())
}

impl DirectorySync {
    /// From `[directory]` (reads the client secret from the environment).
    pub fn from_settings(
        s: &DirectorySettings,
        store: Arc<dyn MetadataStore>,
    ) -> Result<Self, DirectoryError> {
        Self::new(GraphConfig::from_settings(s)?, store)
    }

    pub fn new(cfg: GraphConfig, store: Arc<dyn MetadataStore>) -> Result<Self, DirectoryError> {
        Ok(Self {
            graph: GraphClient::new(cfg)?,
            store,
            holder: format!(
                "directory-sync#{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
        })
    }

    /// Syncs every tenant that has a directory tenant id; one result per
    /// tenant (a failing tenant does not stop the others).
    pub async fn sync_all(
        &self,
        actor: &str,
    ) -> Vec<(TenantId, Result<SyncReport, DirectoryError>)> {
        let tenants = match self.store.list_tenants().await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "directory sync: cannot list tenants");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for t in tenants.iter().filter(|t| t.directory_tenant_id.is_some()) {
            let r = self.sync_tenant(t, actor).await;
            match &r {
                Ok(rep) => tracing::info!(
                    tenant = %t.id, added = rep.added, updated = rep.updated,
                    deactivated = rep.deactivated, pages = rep.pages,
                    participants_linked = rep.participants_linked,
                    throttled_retries = rep.throttled_retries, delta = rep.delta,
                    "directory sync done"
                ),
                Err(DirectoryError::Busy) => tracing::info!(
                    tenant = %t.id,
                    "directory sync skipped: another run of the tenant holds its lease"
                ),
                Err(e) => tracing::warn!(tenant = %t.id, error = %e, "directory sync failed"),
            }
            out.push((t.id, r));
        }
        out
    }

    /// One run for `tenant`, audited (counts only) as `actor` once it
    /// completed.
    pub async fn sync_tenant(
        &self,
        tenant: &Tenant,
        actor: &str,
    ) -> Result<SyncReport, DirectoryError> {
        let tid = tenant
            .directory_tenant_id
            .ok_or(DirectoryError::NoDirectoryTenant(tenant.id))?;
        let held = HeldLease::acquire(
            self.store.clone(),
            &tenant_lease_job(tenant.id),
            &self.holder,
            TENANT_LEASE,
        )
        .await?
        .ok_or(DirectoryError::Busy)?;
        let r = self.sync_held(tenant, tid, actor, &held).await;
        held.release().await;
        r
    }

    /// [`sync_tenant`](Self::sync_tenant) under the tenant's lease.
    async fn sync_held(
        &self,
        tenant: &Tenant,
        tid: uuid::Uuid,
        actor: &str,
        held: &HeldLease,
    ) -> Result<SyncReport, DirectoryError> {
        let token = self.graph.token(tid).await?;
        let stored = self.store.get_directory_sync_state(tenant.id).await?;
        let mut report = SyncReport::default();
        let mut link = stored.as_ref().and_then(|s| s.delta_link.clone());
        let mut restarted = false;
        loop {
            report.delta = link.is_some();
            let start = link
                .take()
                .unwrap_or_else(|| self.graph.config().initial_delta_url());
            match self
                .run_pages(tenant.id, &start, &token, &mut report, held)
                .await?
            {
                Some(delta_link) => {
                    let at = now();
                    let state = DirectorySyncState {
                        tenant_id: tenant.id,
                        delta_link: Some(delta_link),
                        last_sync_at: at,
                        last_full_sync_at: if report.delta {
                            stored.as_ref().and_then(|s| s.last_full_sync_at)
                        } else {
                            Some(at)
                        },
                    };
                    held.check()?;
                    self.store
                        .put_directory_sync_state(tenant.id, &state)
                        .await?;
                    break;
                }
                None if !restarted && report.delta => {
                    // 410 Gone: the service forgot our delta token.
                    tracing::info!(tenant = %tenant.id, "delta link expired; running a full sync");
                    restarted = true;
                    report = SyncReport {
                        throttled_retries: report.throttled_retries,
                        pages: report.pages,
                        ..SyncReport::default()
                    };
                }
                None => return Err(DirectoryError::DeltaExpiredAgain),
            }
        }
        // Participants recorded before their user was synchronised.
        held.check()?;
        report.participants_linked = self.store.link_participants_to_directory(tenant.id).await?;
        // Fenced in the store: a run whose lease was taken over writes no
        // audit event, so concurrent runs never log one sync twice.
        let lease = held
            .lease()
            .ok_or_else(|| StoreError::Refused(LEASE_LOST.into()))?;
        self.store
            .append_audit_fenced(
                tenant.id,
                &lease,
                NewAuditEvent {
                    actor: actor.to_owned(),
                    action: AuditAction::UserChange,
                    recording_id: None,
                    target: None,
                    reason: None,
                    source: None,
                    details: serde_json::json!({ "directory_sync": report }),
                },
            )
            .await?;
        Ok(report)
    }

    /// Follows the pages from `start`; `Some(delta link)` when complete,
    /// `None` when the link expired (410) before any change was applied.
    async fn run_pages(
        &self,
        tenant: TenantId,
        start: &str,
        token: &str,
        report: &mut SyncReport,
        held: &HeldLease,
    ) -> Result<Option<String>, DirectoryError> {
        let full = !report.delta;
        let mut by_oid: HashMap<String, DirectoryUser> = self
            .store
            .list_directory_users(tenant)
            .await?
            .into_iter()
            .filter_map(|u| u.directory_object_id.clone().map(|o| (o, u)))
            .collect();
        let mut seen: HashSet<String> = HashSet::new();
        let mut url = start.to_owned();
        loop {
            let page = match self
                .graph
                .page(&url, token, &mut report.throttled_retries)
                .await?
            {
                Fetched::Page(p) => p,
                Fetched::Gone if report.pages == 0 => return Ok(None),
                Fetched::Gone => {
                    return Err(DirectoryError::Protocol(
                        "a next link expired in the middle of a run".into(),
                    ));
                }
            };
            report.pages += 1;
            // One transaction per page: a page is stored whole or not at all.
            let mut writes = Vec::new();
            for item in &page.value {
                apply(tenant, item, &mut by_oid, &mut seen, report, &mut writes)?;
            }
            held.check()?;
            self.store.upsert_directory_users(tenant, &writes).await?;
            match (page.next_link, page.delta_link) {
                (Some(next), _) => url = next,
                (None, Some(delta)) => {
                    if full {
                        let writes = deactivate_unseen(&mut by_oid, &seen, report);
                        held.check()?;
                        self.store.upsert_directory_users(tenant, &writes).await?;
                    }
                    return Ok(Some(delta));
                }
                (None, None) => {
                    return Err(DirectoryError::Protocol(
                        "a delta page has neither a next link nor a delta link".into(),
                    ));
                }
            }
        }
    }
}

/// Merges one delta item into the known users; the rows to write are
/// pushed to `writes`.
fn apply(
    tenant: TenantId,
    item: &Value,
    by_oid: &mut HashMap<String, DirectoryUser>,
    seen: &mut HashSet<String>,
    report: &mut SyncReport,
    writes: &mut Vec<DirectoryUser>,
) -> Result<(), DirectoryError> {
    let Some(oid) = item
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Err(DirectoryError::Protocol("a user without an id".into()));
    };
    seen.insert(oid.to_owned());
    if item.get("@removed").is_some() {
        if let Some(u) = by_oid.get_mut(oid).filter(|u| u.active) {
            u.active = false;
            u.updated_at = now();
            writes.push(u.clone());
            report.deactivated += 1;
        }
        return Ok(());
    }
    match by_oid.get_mut(oid) {
        Some(existing) => {
            let mut next = existing.clone();
            merge(&mut next, item);
            next.active = true;
            if !same_data(&next, existing) {
                next.updated_at = now();
                writes.push(next.clone());
                *existing = next;
                report.updated += 1;
            }
        }
        None => {
            let mut u = DirectoryUser {
                id: UserId::new(),
                tenant_id: tenant,
                directory_object_id: Some(oid.to_owned()),
                first_name: None,
                last_name: None,
                display_name: None,
                alias: None,
                email: None,
                upn: None,
                phone_numbers: Vec::new(),
                sip_uri: None,
                tel_uri: None,
                groups: Vec::new(),
                active: true,
                updated_at: now(),
            };
            merge(&mut u, item);
            writes.push(u.clone());
            by_oid.insert(oid.to_owned(), u);
            report.added += 1;
        }
    }
    Ok(())
}

/// After a full run: every active synchronised user it did not see
/// turns inactive; returns the rows to write.
fn deactivate_unseen(
    by_oid: &mut HashMap<String, DirectoryUser>,
    seen: &HashSet<String>,
    report: &mut SyncReport,
) -> Vec<DirectoryUser> {
    let mut writes = Vec::new();
    for (oid, u) in by_oid.iter_mut() {
        if u.active && !seen.contains(oid) {
            u.active = false;
            u.updated_at = now();
            writes.push(u.clone());
            report.deactivated += 1;
        }
    }
    writes
}

/// Whether two users carry the same data (ignoring `updated_at`).
fn same_data(a: &DirectoryUser, b: &DirectoryUser) -> bool {
    let mut b = b.clone();
    b.updated_at = a.updated_at;
    *a == b
}

/// A string property: `Some(Some(v))` present, `Some(None)` present and
/// null or blank, `None` absent from the page.
fn prop(item: &Value, key: &str) -> Option<Option<String>> {
    item.get(key).map(|v| {
        v.as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

fn strings(item: &Value, key: &str) -> Option<Vec<String>> {
    item.get(key).map(|v| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Merges a Graph user resource into `u`: every property the item
/// carries replaces the stored value (null clears it); absent ones keep
/// theirs (delta pages may carry only what changed). `tel_uri` and
/// `groups` are not Graph user properties and are left alone.
pub fn merge(u: &mut DirectoryUser, item: &Value) {
    let set = |field: &mut Option<String>, key: &str| {
        if let Some(v) = prop(item, key) {
            *field = v;
        }
    };
    set(&mut u.first_name, "givenName");
    set(&mut u.last_name, "surname");
    set(&mut u.display_name, "displayName");
    set(&mut u.alias, "mailNickname");
    set(&mut u.email, "mail");
    set(&mut u.upn, "userPrincipalName");

    let business = strings(item, "businessPhones");
    let mobile = prop(item, "mobilePhone");
    if business.is_some() || mobile.is_some() {
        // Without `businessPhones` in the page we cannot tell the stored
        // business numbers from the old mobile one: keep them all.
        let mut phones: Vec<String> = match &business {
            Some(b) => b.iter().filter_map(|p| normalize_phone(p)).collect(),
            None => u.phone_numbers.clone(),
        };
        if let Some(Some(m)) = &mobile
            && let Some(n) = normalize_phone(m)
        {
            phones.push(n);
        }
        let mut uniq = HashSet::new();
        phones.retain(|p| uniq.insert(p.clone()));
        u.phone_numbers = phones;
    }

    let proxy = strings(item, "proxyAddresses");
    let im = strings(item, "imAddresses");
    if proxy.is_some() || im.is_some() {
        let from_proxy = proxy.as_deref().and_then(|p| {
            p.iter().find_map(|a| {
                a.get(..4)
                    .filter(|s| s.eq_ignore_ascii_case("sip:"))
                    .and_then(|_| a.get(4..))
                    .filter(|rest| !rest.trim().is_empty())
                    .map(|rest| format!("sip:{}", rest.trim()))
            })
        });
        let from_im = im.as_deref().and_then(|i| {
            i.iter()
                .map(|a| a.trim())
                .find(|a| !a.is_empty())
                .map(|a| match a.get(..4) {
                    Some(p) if p.eq_ignore_ascii_case("sip:") => format!("sip:{}", &a[4..]),
                    _ => format!("sip:{a}"),
                })
        });
        match (from_proxy, from_im) {
            (Some(s), _) | (None, Some(s)) => u.sip_uri = Some(s),
            // Both present and without a SIP address: it is gone.
            (None, None) if proxy.is_some() && im.is_some() => u.sip_uri = None,
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn blank() -> DirectoryUser {
        DirectoryUser {
            id: UserId::new(),
            tenant_id: TenantId::new(),
            directory_object_id: Some("oid".into()),
            first_name: None,
            last_name: None,
            display_name: None,
            alias: None,
            email: None,
            upn: None,
            phone_numbers: Vec::new(),
            sip_uri: None,
            tel_uri: Some("tel:+1".into()),
            groups: vec!["g".into()],
            active: true,
            updated_at: now(),
        }
    }

    #[test]
    fn merge_maps_graph_properties() {
        let mut u = blank();
        merge(
            &mut u,
            &json!({
                "id": "oid", "givenName": "Ann", "surname": "Lee", "displayName": "Ann Lee",
                "mailNickname": "ann", "mail": "ann@contoso.com",
                "userPrincipalName": "ann@contoso.onmicrosoft.com",
                "businessPhones": ["+1 (425) 555-0100", "0049 30 123456"],
                "mobilePhone": "+1 425 555 0199",
                "imAddresses": ["ann@contoso.com"],
                "proxyAddresses": ["SMTP:ann@contoso.com", "SIP:ann@contoso.com"]
            }),
        );
        assert_eq!(u.first_name.as_deref(), Some("Ann"));
        assert_eq!(u.last_name.as_deref(), Some("Lee"));
        assert_eq!(u.display_name.as_deref(), Some("Ann Lee"));
        assert_eq!(u.alias.as_deref(), Some("ann"));
        assert_eq!(u.email.as_deref(), Some("ann@contoso.com"));
        assert_eq!(u.upn.as_deref(), Some("ann@contoso.onmicrosoft.com"));
        assert_eq!(
            u.phone_numbers,
            vec!["+14255550100", "+4930123456", "+14255550199"]
        );
        assert_eq!(u.sip_uri.as_deref(), Some("sip:ann@contoso.com"));
        assert_eq!(u.tel_uri.as_deref(), Some("tel:+1"), "not a Graph property");
        assert_eq!(u.groups, vec!["g"]);
    }

    #[test]
    fn merge_keeps_absent_and_clears_null() {
        let mut u = blank();
        merge(
            &mut u,
            &json!({"id": "oid", "givenName": "Ann", "mail": "a@x", "imAddresses": ["sip:a@x"]}),
        );
        merge(
            &mut u,
            &json!({"id": "oid", "mail": null, "surname": "Lee"}),
        );
        assert_eq!(u.first_name.as_deref(), Some("Ann"));
        assert_eq!(u.last_name.as_deref(), Some("Lee"));
        assert_eq!(u.email, None);
        assert_eq!(u.sip_uri.as_deref(), Some("sip:a@x"));
        merge(
            &mut u,
            &json!({"id": "oid", "mobilePhone": "+44 20 7946 0000"}),
        );
        assert_eq!(u.phone_numbers, vec!["+442079460000"]);
        merge(
            &mut u,
            &json!({"id": "oid", "businessPhones": [], "mobilePhone": null}),
        );
        assert!(u.phone_numbers.is_empty());
        merge(
            &mut u,
            &json!({"id": "oid", "imAddresses": [], "proxyAddresses": []}),
        );
        assert_eq!(u.sip_uri, None);
    }
}
