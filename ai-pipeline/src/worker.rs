//! Job workers: loops that claim durable jobs from the metadata store and
//! run them, for every tenant.
//!
//! A worker claims a job under a lease and renews it every third of the
//! lease while the job runs. If the renewal finds the lease gone (the
//! worker was paused past its expiry and another worker took the job),
//! the work is dropped unfinished; steps are idempotent, so whatever it
//! wrote is overwritten by the new owner. A killed worker simply stops
//! renewing: once its lease expires another worker claims the job (a new
//! attempt). Transient failures are retried with exponential backoff and
//! jitter; permanent ones, and the last attempt, dead-letter the job with
//! the reason. On shutdown a running job gets `shutdown_grace` to finish,
//! then it is released back to the queue without using up an attempt.
//!
//! Logs carry job ids, kinds, attempts, durations and counts: never text.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use insights_core::config::WorkerSettings;
use insights_core::domain::*;
use insights_core::store::{MetadataStore, StoreResult};
use tokio_util::sync::CancellationToken;

use crate::pipeline::{Pipeline, StepError};
use crate::providers::{CallContext, Engines, Providers, StoreRecords};
use crate::recap::{RecapError, RecapStepError, recap_recording};

/// One kind of job.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// The kind of job it runs.
    fn kind(&self) -> JobKind;
    /// Runs the job (idempotently: it may run again after a crash).
    /// Returns the kinds of job to enqueue next for the same recording.
    async fn run(&self, job: &Job) -> Result<Vec<JobKind>, StepError>;
}

/// The engines of a job: the tenant's settings are read afresh for every
/// job, so turning cloud AI off takes effect at once.
async fn engines_for(
    store: &Arc<dyn MetadataStore>,
    providers: &Providers,
    job: &Job,
) -> Result<Engines, StepError> {
    let tenant = store.get_tenant(job.tenant_id).await?;
    Ok(providers.for_job(
        &tenant.settings,
        CallContext {
            tenant: job.tenant_id,
            recording: Some(job.recording_id),
            records: Arc::new(StoreRecords(store.clone())),
        },
    ))
}

/// `transcribe`: the transcription pipeline with the tenant's engine; a
/// recap follows.
pub struct TranscribeHandler {
    pub pipeline: Pipeline,
    pub providers: Arc<Providers>,
}

#[async_trait]
impl JobHandler for TranscribeHandler {
    fn kind(&self) -> JobKind {
        JobKind::Transcribe
    }

    async fn run(&self, job: &Job) -> Result<Vec<JobKind>, StepError> {
        let engines = engines_for(&self.pipeline.store, &self.providers, job).await?;
        let mut pipeline = self.pipeline.clone();
        pipeline.stt = engines.stt;
        let report = pipeline.transcribe(job.tenant_id, job.recording_id).await?;
        tracing::info!(
            job_id = %job.id,
            media_bytes = report.media_bytes,
            audio_ms = report.audio_ms,
            segments = report.segments,
            cloud = engines.cloud,
            "transcription done"
        );
        Ok(vec![JobKind::Recap])
    }
}

/// `recap`: summary, key points, decisions, action items and topics, each
/// citing its transcript segments, with the tenant's recap engine.
pub struct RecapHandler {
    pub store: Arc<dyn MetadataStore>,
    pub providers: Arc<Providers>,
}

#[async_trait]
impl JobHandler for RecapHandler {
    fn kind(&self) -> JobKind {
        JobKind::Recap
    }

    async fn run(&self, job: &Job) -> Result<Vec<JobKind>, StepError> {
        let engines = engines_for(&self.store, &self.providers, job).await?;
        let items = recap_recording(
            self.store.as_ref(),
            engines.recap.as_ref(),
            job.tenant_id,
            job.recording_id,
        )
        .await
        .map_err(|e| match e {
            RecapStepError::Recap(RecapError::Transient {
                message,
                retry_after_ms,
            }) => StepError::Transient {
                message: format!("recap: {message}"),
                retry_after_ms,
            },
            RecapStepError::Store(e) => StepError::from(e),
            // Messages of these name the provider and the problem, never
            // transcript text.
            other => StepError::Permanent(format!("recap: {other}")),
        })?;
        tracing::info!(job_id = %job.id, items = items.len(), "recap done");
        Ok(Vec::new())
    }
}

/// How workers behave.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerOptions {
    /// Prefix of the worker ids stored with claims (`host:pid`).
    pub id_prefix: String,
    pub concurrency: usize,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub shutdown_grace: Duration,
}

impl WorkerOptions {
    /// From `[worker]`, with this process's id prefix.
    pub fn from_settings(s: &WorkerSettings) -> Self {
        Self {
            id_prefix: default_id_prefix(),
            concurrency: s.concurrency,
            lease: s.lease(),
            poll_interval: s.poll_interval(),
            max_attempts: s.max_attempts,
            backoff: Backoff {
                base: Duration::from_secs(s.backoff_base_secs),
                max: Duration::from_secs(s.backoff_max_secs),
            },
            shutdown_grace: s.shutdown_grace(),
        }
    }
}

/// `hostname:pid`.
pub fn default_id_prefix() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}:{}", std::process::id())
}

/// How one claimed job ended.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOutcome {
    Succeeded,
    /// Failed; the state the store put it in (queued for a retry, dead).
    Failed(JobState),
    /// The lease was lost to another worker; nothing recorded.
    LeaseLost,
    /// Shut down before it finished; handed back to the queue.
    Released,
}

/// Workers over one metadata store.
pub struct Worker {
    store: Arc<dyn MetadataStore>,
    handlers: HashMap<JobKind, Arc<dyn JobHandler>>,
    opts: WorkerOptions,
}

enum Ended {
    Done(Result<Vec<JobKind>, StepError>),
    LeaseLost,
    Interrupted,
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Worker {
    pub fn new(store: Arc<dyn MetadataStore>, opts: WorkerOptions) -> Self {
        Self {
            store,
            handlers: HashMap::new(),
            opts,
        }
    }

    /// Adds (or replaces) the handler of its kind.
    pub fn with_handler(mut self, handler: Arc<dyn JobHandler>) -> Self {
        self.handlers.insert(handler.kind(), handler);
        self
    }

    /// The kinds this worker claims.
    pub fn kinds(&self) -> Vec<JobKind> {
        let mut k: Vec<JobKind> = self.handlers.keys().copied().collect();
        k.sort();
        k
    }

    /// Runs `concurrency` loops until `shutdown` is cancelled and every
    /// loop has finished or released its job.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut loops = Vec::new();
        for i in 0..self.opts.concurrency.max(1) {
            let me = Arc::clone(&self);
            let shutdown = shutdown.clone();
            let id = format!("{}:{i}", self.opts.id_prefix);
            loops.push(tokio::spawn(async move { me.run_loop(id, shutdown).await }));
        }
        tracing::info!(
            loops = loops.len(),
            kinds = ?self.kinds(),
            "job workers started"
        );
        for l in loops {
            if l.await.is_err() {
                tracing::error!("a worker loop panicked");
            }
        }
        tracing::info!("job workers stopped");
    }

    async fn run_loop(&self, worker_id: String, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.run_one(&worker_id, &shutdown).await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "claiming a job failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.opts.poll_interval) => {}
            }
        }
    }

    /// Claims one due job and runs it; `None` if there was none.
    pub async fn run_one(
        &self,
        worker_id: &str,
        shutdown: &CancellationToken,
    ) -> StoreResult<Option<(Job, JobOutcome)>> {
        let now = now();
        let req = ClaimRequest {
            worker_id: worker_id.to_owned(),
            kinds: self.kinds(),
            now,
            lease_until: now + chrono_dur(self.opts.lease),
        };
        let Some(claimed) = self.store.claim_job(&req).await? else {
            return Ok(None);
        };
        let outcome = self.execute(&claimed, shutdown).await?;
        Ok(Some((claimed.job, outcome)))
    }

    async fn execute(
        &self,
        claimed: &ClaimedJob,
        shutdown: &CancellationToken,
    ) -> StoreResult<JobOutcome> {
        let job = &claimed.job;
        let lease = &claimed.lease;
        let started = Instant::now();
        tracing::info!(
            job_id = %job.id,
            kind = %job.kind,
            tenant = %job.tenant_id,
            recording = %job.recording_id,
            attempt = job.attempts,
            "job claimed"
        );
        let Some(handler) = self.handlers.get(&job.kind).cloned() else {
            // Claimed only kinds we handle; a race with a reconfiguration
            // at most: give it back.
            self.store.release_job(lease, now()).await?;
            return Ok(JobOutcome::Released);
        };

        let work = handler.run(job);
        tokio::pin!(work);
        let period = (self.opts.lease / 3).max(Duration::from_millis(100));
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let far = tokio::time::Instant::now() + Duration::from_secs(10 * 365 * 86_400);
        let grace = tokio::time::sleep_until(far);
        tokio::pin!(grace);
        let mut stopping = false;
        let ended = loop {
            tokio::select! {
                r = &mut work => break Ended::Done(r),
                _ = renew.tick() => {
                    let until = now() + chrono_dur(self.opts.lease);
                    match self.store.renew_job_lease(lease, until).await {
                        Ok(true) => {}
                        Ok(false) => break Ended::LeaseLost,
                        // Keep working: the next renewal may get through
                        // before the lease runs out.
                        Err(e) => tracing::warn!(job_id = %job.id, error = %e, "lease renewal failed"),
                    }
                }
                _ = shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    grace.as_mut().reset(tokio::time::Instant::now() + self.opts.shutdown_grace);
                }
                _ = &mut grace => break Ended::Interrupted,
            }
        };
        let took_ms = started.elapsed().as_millis() as u64;
        let outcome = match ended {
            Ended::Done(Ok(next)) => {
                if !self.store.complete_job(lease, now()).await? {
                    tracing::warn!(job_id = %job.id, took_ms, "job finished after its lease was lost");
                    return Ok(JobOutcome::LeaseLost);
                }
                for kind in next {
                    if !self.handlers.contains_key(&kind) {
                        continue;
                    }
                    let new = NewJob {
                        max_attempts: self.opts.max_attempts,
                        ..NewJob::now(job.recording_id, kind)
                    };
                    match self.store.enqueue_job(job.tenant_id, &new).await {
                        Ok(e) => {
                            tracing::info!(job_id = %e.job.id, kind = %kind, "follow-up job enqueued")
                        }
                        Err(e) => {
                            tracing::warn!(job_id = %job.id, error = %e, "follow-up job not enqueued")
                        }
                    }
                }
                JobOutcome::Succeeded
            }
            Ended::Done(Err(e)) => {
                let now = now();
                let (retry_at, reason) = match &e {
                    StepError::Transient { retry_after_ms, .. } => {
                        let delay = self.opts.backoff.delay(
                            job.attempts,
                            rand::random::<f64>(),
                            retry_after_ms.map(Duration::from_millis),
                        );
                        (Some(now + chrono_dur(delay)), e.to_string())
                    }
                    StepError::Permanent(_) => (None, e.to_string()),
                };
                let failure = JobFailure {
                    reason,
                    retry_at,
                    now,
                };
                match self.store.fail_job(lease, &failure).await? {
                    Some(state) => {
                        tracing::warn!(job_id = %job.id, kind = %job.kind, attempt = job.attempts, took_ms, state = %state, error = %e, "job failed");
                        JobOutcome::Failed(state)
                    }
                    None => JobOutcome::LeaseLost,
                }
            }
            Ended::LeaseLost => JobOutcome::LeaseLost,
            Ended::Interrupted => {
                if self.store.release_job(lease, now()).await? {
                    JobOutcome::Released
                } else {
                    JobOutcome::LeaseLost
                }
            }
        };
        match &outcome {
            JobOutcome::Succeeded => {
                tracing::info!(job_id = %job.id, kind = %job.kind, took_ms, "job succeeded")
            }
            JobOutcome::LeaseLost => {
                tracing::warn!(job_id = %job.id, kind = %job.kind, took_ms, "job lease lost to another worker; work dropped")
            }
            JobOutcome::Released => {
                tracing::info!(job_id = %job.id, kind = %job.kind, took_ms, "job released at shutdown")
            }
            JobOutcome::Failed(_) => {}
        }
        Ok(outcome)
    }
}
