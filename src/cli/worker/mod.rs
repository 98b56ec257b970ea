//! `insights worker` (the node with the worker role alone, see `serve`), `insights reprocess`
//! (run a recording's pipeline again) and the worker embedded in
//! `insights serve`. The job loop itself is `ai_pipeline::worker::Worker`;
//! this module wires it (handlers, providers, the speech-to-text engine
//! of this build from `engine`) and starts and stops it.

use std::sync::Arc;

use ai_pipeline::pipeline::Pipeline;
use ai_pipeline::providers::Providers;
use ai_pipeline::vad::VadOptions;
use ai_pipeline::worker::{RecapHandler, TranscribeHandler, Worker, WorkerOptions};
use anyhow::Context;
use clap::Args;
use insights_core::config::Settings;
use insights_core::domain::{
    AuditAction, AuditQuery, ErasureOutcome, JobKind, NewJob, RecordingId,
};
use insights_core::store::StoreError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::lookup::{find_tenant, tenant_holding};
use crate::platform::Platform;

pub(crate) mod engine;

/// `insights worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Jobs at a time in this process (default: `worker.concurrency`).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Address of the health and metrics listener (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Tests only: a stand-in engine that takes this long per batch and
    /// returns placeholder text, so queue behaviour can be tested without
    /// a speech model.
    #[arg(long, value_name = "MS", hide = true)]
    pub test_engine_delay_ms: Option<u64>,
}

/// `insights reprocess`.
#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// The recording id.
    #[arg(long)]
    pub recording: RecordingId,
    /// Tenant name or id (default: find the tenant that holds it).
    #[arg(long)]
    pub tenant: Option<String>,
}

fn build_worker(
    settings: &Settings,
    platform: &Platform,
    concurrency: Option<usize>,
    test_delay_ms: Option<u64>,
) -> anyhow::Result<Worker> {
    let mut opts = WorkerOptions::from_settings(&settings.worker);
    if let Some(n) = concurrency {
        opts.concurrency = n.clamp(1, 64);
    }
    let local_stt = engine::engine(settings, test_delay_ms);
    // Keys of the configured cloud providers are read now: a missing one
    // is a start-up error, not a dead job later.
    let providers = Arc::new(
        Providers::new(&settings.ai, local_stt.clone()).context("cloud AI providers ([ai])")?,
    );
    let pipeline = Pipeline {
        store: platform.store.clone(),
        blobs: platform.blobs.clone(),
        keys: platform.keys.clone(),
        stt: local_stt,
        vad: VadOptions::default(),
        max_media_duration: settings.worker.max_media_duration(),
    };
    Ok(Worker::new(platform.store.clone(), opts)
        .with_handler(Arc::new(TranscribeHandler {
            pipeline,
            providers: providers.clone(),
        }))
        .with_handler(Arc::new(RecapHandler {
            store: platform.store.clone(),
            providers,
        })))
}

/// `insights worker`: the node with the worker role alone (`serve
/// --roles worker`): the job workers, with `/livez`, `/readyz` and
/// `/metrics` on `listen`; runs until SIGTERM or ctrl-c, then lets
/// running jobs finish (up to `worker.shutdown_grace_secs`) or hands
/// them back.
pub async fn worker(settings: Settings, args: WorkerArgs) -> anyhow::Result<()> {
    crate::cli::serve::serve(
        settings,
        crate::cli::serve::Roles::of(&[crate::cli::serve::Role::Worker]),
        crate::cli::serve::WorkerOptions {
            concurrency: args.concurrency,
            test_engine_delay_ms: args.test_engine_delay_ms,
        },
    )
    .await
}

/// A worker started on purpose (not the embedded default) needs its
/// speech model: a missing one is a configuration error at start, not a
/// dead job later.
pub(crate) fn check_engine(
    settings: &Settings,
    test_engine_delay_ms: Option<u64>,
) -> anyhow::Result<()> {
    #[cfg(feature = "whisper")]
    if test_engine_delay_ms.is_none() {
        ai_pipeline::whisper::check_model_dir(&settings.stt.resolved_model_dir())?;
    }
    #[cfg(not(feature = "whisper"))]
    let _ = (settings, test_engine_delay_ms);
    Ok(())
}

/// The worker `insights serve` runs beside the API (`worker.embedded`).
pub struct Embedded {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Embedded {
    /// Starts it if `worker.embedded` is on.
    pub fn start(settings: &Settings, platform: &Platform) -> anyhow::Result<Option<Embedded>> {
        if !settings.worker.embedded {
            return Ok(None);
        }
        let worker = Arc::new(build_worker(settings, platform, None, None)?);
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        Ok(Some(Embedded { stop, task }))
    }

    /// Starts the worker role of a node (`insights worker`, `serve
    /// --roles ...,worker`), whatever `worker.embedded` says.
    pub fn start_dedicated(
        settings: &Settings,
        platform: &Platform,
        concurrency: Option<usize>,
        test_delay_ms: Option<u64>,
    ) -> anyhow::Result<Embedded> {
        let worker = Arc::new(build_worker(
            settings,
            platform,
            concurrency,
            test_delay_ms,
        )?);
        let stop = CancellationToken::new();
        println!("insights: worker running ({:?})", worker.kinds());
        let task = tokio::spawn(worker.run(stop.clone()));
        Ok(Embedded { stop, task })
    }

    /// Stops it (running jobs finish or are handed back).
    pub async fn stop(self) {
        self.stop.cancel();
        if self.task.await.is_err() {
            tracing::error!("embedded worker panicked");
        }
    }
}

/// `insights reprocess --recording ID`: enqueues the pipeline again (the
/// pending job is reused if there is one).
pub async fn reprocess(settings: &Settings, args: ReprocessArgs) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    let id = args.recording;
    let tenant = match args.tenant.as_deref() {
        Some(t) => find_tenant(platform.store.as_ref(), t).await?.id,
        None => tenant_holding(platform.store.as_ref(), id).await?.id,
    };
    let erasures = platform
        .store
        .list_audit(
            tenant,
            &AuditQuery {
                action: Some(AuditAction::GdprErasure),
                recording_id: Some(id),
                ..AuditQuery::default()
            },
        )
        .await?;
    if ErasureOutcome::from_events(&erasures).is_erased() {
        anyhow::bail!(
            "recording {id}: a data-subject erasure covers it; transcribing it again would bring back what the erasure removed"
        );
    }
    let job = NewJob {
        max_attempts: settings.worker.max_attempts,
        ..NewJob::now(id, JobKind::Transcribe)
    };
    let e = match platform.store.enqueue_job(tenant, &job).await {
        Ok(e) => e,
        Err(StoreError::NotFound) => anyhow::bail!("no recording {id} in that tenant"),
        Err(e) => return Err(e.into()),
    };
    if e.created {
        println!("job {} queued ({})", e.job.id, e.job.kind);
    } else {
        println!(
            "job {} is already {} ({}): not queued twice",
            e.job.id, e.job.state, e.job.kind
        );
    }
    Ok(())
}
