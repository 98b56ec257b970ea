//! One leader per periodic job across every node: the lease of
//! [`LeaseStore`](insights_core::store::LeaseStore) (a row with holder,
//! expiry and fencing token; no consensus of our own), the interval runs
//! recorded once each, and the fence on the job's writes.
//!
//! A [`LeasedJob`] runs two tasks. The keeper takes the job's lease when
//! it is free or expired and renews it every third of `[scheduler]
//! lease_secs`; a leader that dies stops renewing, so another node takes
//! over within two lease periods (the lease runs out, then the next try
//! of a follower, at most a third of a period later, takes it). The
//! runner, on the leader, runs the job once per interval: intervals are
//! aligned on the Unix epoch, and each is claimed in the store
//! ([`RunClaim`]) before it runs and marked finished after, so an
//! interval runs once even across a leader change (a run the old leader
//! left unfinished is finished by the new one; the jobs are resumable).
//!
//! **The fence, exactly.** The job writes only through a [`FencedStore`]:
//!
//! * every store call first checks, on this process's monotonic clock,
//!   that the lease was renewed less than `lease - lease/4` ago (measured
//!   from before the renewal was sent, so never later than the store's
//!   own expiry); a leader whose renewals fail (lost, partitioned,
//!   paused) stops writing a quarter period before anyone may take over;
//! * audit events and the run records are fenced in the store: written in
//!   the transaction that checks the lease row still carries this
//!   holder's token unexpired (on PostgreSQL locked `FOR SHARE` until
//!   commit), so a leader whose lease was taken over writes none, and no
//!   audit event is written twice by concurrent runs.
//!
//! The one window left: a single store call issued under a valid lease
//! that takes longer than a quarter of the lease to land (7.5 s with the
//! default 30 s). Such a write is one of the job's idempotent steps
//! (shred a key, delete a blob or a recording, upsert a user), which the
//! new leader's run repeats or finds done; its audit event is refused.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use insights_core::config::SchedulerSettings;
use insights_core::domain::{
    AuditEvent, AuditQuery, LEASE_LOST, Lease, NewAuditEvent, RunClaim, TenantId, interval_start,
};
use insights_core::store::{AuditStore, MetadataStore, StoreError, StoreResult};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The gauge that is 1 on the node leading a job (label `job`).
pub const LEADER_METRIC: &str = "insights_scheduler_leader";
/// The counter of interval runs a node finished (label `job`).
pub const RUNS_METRIC: &str = "insights_scheduler_runs_total";

/// Who competes for the leases and for how long they are held.
#[derive(Clone, Debug)]
pub struct Leadership {
    /// This process: the node name and a per-process suffix, so that two
    /// processes on one host never take each other for the holder.
    pub holder: String,
    /// `[scheduler] lease_secs`.
    pub lease: Duration,
}

impl Leadership {
    /// From `[scheduler]` and the node's name.
    pub fn new(node_name: &str, settings: &SchedulerSettings) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            holder: format!("{node_name}#{}", &suffix[..12]),
            lease: settings.lease(),
        }
    }

    fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// How long before the lease's end this holder stops writing.
    fn margin(&self) -> Duration {
        self.lease / 4
    }
}

/// The lease as this process last saw it, with its local deadline.
#[derive(Clone, Debug)]
struct Held {
    lease: Lease,
    /// When the lease may end at the earliest, on the monotonic clock.
    until: Instant,
}

/// The keeper's view of the lease, watched by the runner (which wakes
/// as soon as this node becomes the leader) and by every fence.
type Shared = tokio::sync::watch::Sender<Option<Held>>;

fn current(shared: &Shared) -> Option<Held> {
    shared.borrow().clone()
}

fn set(shared: &Shared, v: Option<Held>) {
    shared.send_replace(v);
}

/// The right to write for one run: the lease (token) the run was claimed
/// under, valid while the keeper keeps renewing that very lease.
#[derive(Clone, Debug)]
pub struct Fence {
    shared: Shared,
    lease: Lease,
    margin: Duration,
}

impl Fence {
    /// The lease the run holds.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Whether this run may still write: same token, renewed recently
    /// enough.
    pub fn valid(&self) -> bool {
        current(&self.shared).is_some_and(|h| {
            h.lease.token == self.lease.token
                && h.lease.holder == self.lease.holder
                && Instant::now() + self.margin < h.until
        })
    }

    fn check(&self, _method: &'static str) -> StoreResult<()> {
        match self.valid() {
            true => Ok(()),
            false => Err(StoreError::Refused(LEASE_LOST.into())),
        }
    }
}

/// The metadata store as a scheduled run sees it: every call checks the
/// [`Fence`] first, and audit events are appended fenced in the store.
pub struct FencedStore {
    inner: Arc<dyn MetadataStore>,
    fence: Fence,
}

impl FencedStore {
    /// Wraps `inner` for one run under `fence`.
    pub fn wrap(inner: Arc<dyn MetadataStore>, fence: Fence) -> Arc<dyn MetadataStore> {
        Arc::new(FencedStore { inner, fence })
    }

    fn check(&self, method: &'static str) -> StoreResult<()> {
        self.fence.check(method)
    }
}

insights_core::delegate_store_areas!(FencedStore => inner, before check; except AuditStore);

#[insights_core::store::__async_trait]
impl AuditStore for FencedStore {
    async fn append_audit(
        &self,
        tenant: TenantId,
        event: NewAuditEvent,
    ) -> StoreResult<AuditEvent> {
        self.check("append_audit")?;
        self.inner
            .append_audit_fenced(tenant, &self.fence.lease, event)
            .await
    }

    async fn list_audit(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEvent>> {
        self.check("list_audit")?;
        self.inner.list_audit(tenant, query).await
    }

    async fn audit_head(&self, tenant: TenantId) -> StoreResult<Option<(i64, String)>> {
        self.check("audit_head")?;
        self.inner.audit_head(tenant).await
    }
}

/// When a job runs.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// The interval (runs at its multiples since the epoch).
    pub every: Duration,
    /// Nothing runs before this long after start.
    pub first_after: Duration,
}

/// A periodic job under its lease; [`LeasedJob::stop`] ends it (and gives
/// the lease up).
pub struct LeasedJob {
    stop: CancellationToken,
    keeper: JoinHandle<()>,
    runner: JoinHandle<()>,
}

impl LeasedJob {
    /// Starts competing for `job`'s lease and, while leading, runs `body`
    /// once per interval with a [`FencedStore`]. `body` returns `Err` when
    /// the run did not complete (it is then not marked finished and the
    /// next leader, or this one at its next tick, resumes it).
    pub fn start<F, Fut>(
        job: &'static str,
        schedule: Schedule,
        leadership: &Leadership,
        store: Arc<dyn MetadataStore>,
        body: F,
    ) -> LeasedJob
    where
        F: Fn(Arc<dyn MetadataStore>, Fence) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let (shared, _) = tokio::sync::watch::channel(None);
        let keeper = tokio::spawn(keep(
            job,
            leadership.clone(),
            store.clone(),
            shared.clone(),
            stop.clone(),
        ));
        let runner = tokio::spawn(run(
            job,
            schedule,
            leadership.clone(),
            store,
            shared,
            stop.clone(),
            body,
        ));
        LeasedJob {
            stop,
            keeper,
            runner,
        }
    }

    /// Stops running (a run in progress is abandoned between two store
    /// calls) and releases the lease, so another node takes over at once.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.runner.await;
        let _ = self.keeper.await;
    }
}

/// A lease held for one piece of work started on demand (not a
/// schedule), which any node may start but only one may do at a time —
/// a tenant's directory sync, say. [`HeldLease::acquire`] takes it once
/// (`None` while someone else holds it), a task renews it every third of
/// its length while the work runs, and [`HeldLease::release`] gives it
/// up. The work checks [`HeldLease::valid`] before each write (the same
/// local deadline as a [`Fence`]) and appends its audit event fenced with
/// [`HeldLease::lease`].
pub struct HeldLease {
    shared: Shared,
    stop: CancellationToken,
    keeper: JoinHandle<()>,
    margin: Duration,
}

impl HeldLease {
    /// Takes `job`'s lease for `holder` for `ttl`, or `None` while another
    /// holder's lease runs.
    pub async fn acquire(
        store: Arc<dyn MetadataStore>,
        job: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<Option<HeldLease>> {
        let sent = Instant::now();
        let Some(lease) = store.acquire_lease(job, holder, ttl).await? else {
            return Ok(None);
        };
        let (shared, _) = tokio::sync::watch::channel(Some(Held {
            lease,
            until: sent + ttl,
        }));
        let stop = CancellationToken::new();
        let keeper = tokio::spawn(renew_held(store, shared.clone(), stop.clone(), ttl));
        Ok(Some(HeldLease {
            shared,
            stop,
            keeper,
            margin: ttl / 4,
        }))
    }

    /// Whether the work may still write: the lease was renewed recently
    /// enough (a quarter of its length before anyone may take it over).
    pub fn valid(&self) -> bool {
        current(&self.shared).is_some_and(|h| Instant::now() + self.margin < h.until)
    }

    /// [`valid`](Self::valid) as a store result: refused with
    /// [`LEASE_LOST`] once the lease is lost.
    pub fn check(&self) -> StoreResult<()> {
        match self.valid() {
            true => Ok(()),
            false => Err(StoreError::Refused(LEASE_LOST.into())),
        }
    }

    /// The lease as last renewed (holder and token do not change while
    /// it is held); `None` once it was lost.
    pub fn lease(&self) -> Option<Lease> {
        current(&self.shared).map(|h| h.lease)
    }

    /// Stops renewing and gives the lease up, so the next one need not
    /// wait for the expiry.
    pub async fn release(self) {
        self.stop.cancel();
        let _ = self.keeper.await;
    }
}

/// The renewal task of a [`HeldLease`]; releases the lease when stopped.
async fn renew_held(
    store: Arc<dyn MetadataStore>,
    shared: Shared,
    stop: CancellationToken,
    ttl: Duration,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(ttl / 3) => {}
        }
        let Some(was) = current(&shared) else { return };
        let sent = Instant::now();
        match store.renew_lease(&was.lease, ttl).await {
            Ok(Some(lease)) => set(
                &shared,
                Some(Held {
                    lease,
                    until: sent + ttl,
                }),
            ),
            Ok(None) => {
                tracing::warn!(job = %was.lease.job, "lease lost while its work ran");
                set(&shared, None);
                return;
            }
            // Kept as it is: the local deadline stops the writes in time.
            Err(e) => tracing::warn!(job = %was.lease.job, error = %e, "lease: store unreachable"),
        }
    }
    if let Some(h) = current(&shared) {
        set(&shared, None);
        if let Err(e) = store.release_lease(&h.lease).await {
            tracing::warn!(job = %h.lease.job, error = %e, "lease not released; it expires by itself");
        }
    }
}

/// The keeper: takes, renews and finally releases the lease.
async fn keep(
    job: &'static str,
    who: Leadership,
    store: Arc<dyn MetadataStore>,
    shared: Shared,
    stop: CancellationToken,
) {
    let gauge = metrics::gauge!(LEADER_METRIC, "job" => job);
    loop {
        let sent = Instant::now();
        let was = current(&shared);
        let got = match &was {
            Some(h) => store.renew_lease(&h.lease, who.lease).await,
            None => store.acquire_lease(job, &who.holder, who.lease).await,
        };
        match got {
            Ok(Some(lease)) => {
                if was.as_ref().is_none_or(|h| h.lease.token != lease.token) {
                    tracing::info!(job, token = lease.token, "scheduler lease taken: leading");
                }
                set(
                    &shared,
                    Some(Held {
                        lease,
                        until: sent + who.lease,
                    }),
                );
                gauge.set(1.0);
            }
            Ok(None) => {
                if was.is_some() {
                    tracing::warn!(job, "scheduler lease lost: no longer leading");
                    set(&shared, None);
                }
                gauge.set(0.0);
            }
            // Kept as it is: the local deadline stops the writes in time
            // if the store stays unreachable.
            Err(e) => tracing::warn!(job, error = %e, "scheduler lease: store unreachable"),
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(who.renew_every()) => {}
        }
    }
    if let Some(h) = current(&shared) {
        set(&shared, None);
        if let Err(e) = store.release_lease(&h.lease).await {
            tracing::warn!(job, error = %e, "scheduler lease not released; it expires by itself");
        }
    }
    gauge.set(0.0);
}

/// The runner: on the leader, each interval once.
async fn run<F, Fut>(
    job: &'static str,
    schedule: Schedule,
    who: Leadership,
    store: Arc<dyn MetadataStore>,
    shared: Shared,
    stop: CancellationToken,
    body: F,
) where
    F: Fn(Arc<dyn MetadataStore>, Fence) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let runs = metrics::counter!(RUNS_METRIC, "job" => job);
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = tokio::time::sleep(schedule.first_after) => {}
    }
    // How often a node looks: often enough to start an interval promptly
    // and to notice a new lease soon after taking it.
    let poll = who
        .renew_every()
        .min(schedule.every)
        .max(Duration::from_millis(200));
    let mut done = None;
    loop {
        let at = interval_start(Utc::now(), schedule.every);
        let fence = current(&shared).map(|h| Fence {
            shared: shared.clone(),
            lease: h.lease,
            margin: who.margin(),
        });
        if let Some(fence) = fence.filter(|f| f.valid() && done != Some(at)) {
            match store.claim_scheduled_run(fence.lease(), at).await {
                Ok(RunClaim::Done) => done = Some(at),
                Ok(claim) => {
                    tracing::info!(job, interval_start = %at, ?claim, "scheduled run starting");
                    let fenced = FencedStore::wrap(store.clone(), fence.clone());
                    let outcome = tokio::select! {
                        _ = stop.cancelled() => return,
                        r = body(fenced, fence.clone()) => r,
                    };
                    match outcome {
                        Ok(()) => match store.finish_scheduled_run(fence.lease(), at).await {
                            Ok(()) => {
                                done = Some(at);
                                runs.increment(1);
                                tracing::info!(job, interval_start = %at, "scheduled run finished");
                            }
                            Err(e) => {
                                tracing::warn!(job, error = %e, "scheduled run not recorded as finished")
                            }
                        },
                        Err(e) => {
                            tracing::warn!(job, error = %e, "scheduled run incomplete; resumed later")
                        }
                    }
                }
                Err(e) => tracing::warn!(job, error = %e, "scheduled run not claimed"),
            }
        }
        // Until the next interval or the next look, whichever is first.
        let next = at + chrono::Duration::from_std(schedule.every).unwrap_or_default();
        let to_next = (next - Utc::now()).to_std().unwrap_or_default();
        let wait = match done == Some(at) {
            true => to_next,
            false => poll,
        }
        .max(Duration::from_millis(50));
        let mut changed = shared.subscribe();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            // Leadership gained (or renewed, or lost): look again.
            _ = changed.changed(), if done != Some(at) => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use insights_stores::metadata::sqlite::SqliteStore;

    use super::*;

    async fn store() -> (tempfile::TempDir, Arc<dyn MetadataStore>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("insights.db").display());
        let store = SqliteStore::connect(&url, 2).await.unwrap();
        (dir, Arc::new(store))
    }

    /// One holder at a time; renewed while held (it outlives its first
    /// expiry); released at the end for the next one at once.
    #[tokio::test]
    async fn a_held_lease_excludes_others_is_renewed_and_released() {
        let (_dir, store) = store().await;
        let ttl = Duration::from_millis(600);
        let a = HeldLease::acquire(store.clone(), "work:t1", "a", ttl)
            .await
            .unwrap()
            .expect("free");
        assert!(a.valid() && a.check().is_ok());
        let token = a.lease().unwrap().token;
        assert!(
            HeldLease::acquire(store.clone(), "work:t1", "b", ttl)
                .await
                .unwrap()
                .is_none(),
            "held by a"
        );
        // Other work is independent.
        let other = HeldLease::acquire(store.clone(), "work:t2", "b", ttl)
            .await
            .unwrap()
            .expect("another job");
        tokio::time::sleep(ttl * 2).await;
        assert!(a.valid(), "renewed past its first expiry");
        assert_eq!(a.lease().unwrap().token, token, "same token while held");
        assert!(
            HeldLease::acquire(store.clone(), "work:t1", "b", ttl)
                .await
                .unwrap()
                .is_none(),
            "still held by a"
        );
        a.release().await;
        other.release().await;
        let b = HeldLease::acquire(store.clone(), "work:t1", "b", ttl)
            .await
            .unwrap()
            .expect("free after release");
        assert!(b.lease().unwrap().token > token, "a new fencing token");
        b.release().await;
    }

    /// A lease taken over (its holder stopped renewing long enough) is
    /// lost: the old holder may not write any more.
    #[tokio::test]
    async fn a_lost_lease_refuses_writes() {
        let (_dir, store) = store().await;
        let ttl = Duration::from_millis(300);
        let a = HeldLease::acquire(store.clone(), "work:t1", "a", ttl)
            .await
            .unwrap()
            .unwrap();
        // Someone breaks the lease in the store (as an expiry + takeover
        // would), then the renewal finds it gone.
        let lease = a.lease().unwrap();
        store.release_lease(&lease).await.unwrap();
        let b = store
            .acquire_lease("work:t1", "b", Duration::from_secs(30))
            .await
            .unwrap()
            .expect("taken over");
        tokio::time::sleep(ttl).await;
        assert!(!a.valid());
        assert!(matches!(a.check(), Err(StoreError::Refused(_))));
        assert!(a.lease().is_none());
        a.release().await;
        assert_eq!(
            store.get_lease("work:t1").await.unwrap().unwrap().holder,
            b.holder,
            "the old holder's release leaves the new lease alone"
        );
    }
}
