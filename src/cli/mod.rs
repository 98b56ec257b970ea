//! Command-line interface. Exit codes: 0 success, 1 failure at run time,
//! 2 bad usage or bad configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use actix_web::web;
use anyhow::Context;
use bot_gateway::custody::{self, InstallationKey};
use bot_gateway::spool::{Spool, SpoolConfig};
use bot_gateway::uploader::{Uploader, UploaderConfig};
use bot_gateway::webhook::{GatewayState, mount};
use clap::{Args, Parser, Subcommand};
use insights_core::config::{ConfigError, Overrides, Settings};
use insights_core::domain::{
    AuditAction, KeyId, NewAuditEvent, NewTenant, RecordingId, Tenant, TenantId,
};
use insights_core::store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::platform::Platform;

pub mod admin;
pub mod audit;
pub mod directory;
pub mod gdpr;
pub mod transcribe;
pub mod worker;

/// Insights: compliance recording of calls and meetings.
#[derive(Debug, Parser)]
#[command(name = "insights", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (optional; defaults work without one).
    #[arg(long, global = true, env = "INSIGHTS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded defaults (SQLite file, blobs, key file).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in one process (HTTP API, health, metrics).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Run the Teams recording gateway alone: the bot webhook, the
    /// spool and the uploader, with health and metrics.
    Gateway {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Administration: tenants and local accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check a recording's chain of custody offline: blobs, signed
    /// manifest and metadata; names every mismatch (exit code 1 if any).
    VerifyRecording {
        /// The recording id.
        id: RecordingId,
        /// Tenant name or id (default: find the tenant that holds it).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// The audit trail: verify a tenant's hash chain.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Directory sync: users from Entra ID through Microsoft Graph.
    Directory {
        #[command(subcommand)]
        command: directory::DirectoryCommand,
    },
    /// Check the configuration and print where data lives.
    Config,
    /// Print the transcript of an audio file (offline engine, `[stt]`).
    Transcribe(transcribe::TranscribeArgs),
    /// Play a whole Teams compliance call against a running gateway: signed
    /// notifications, media frames over `insights-media/1`, roster changes
    /// and hang-up (for tests and demos).
    SimulateCall(SimulateCallArgs),
    /// Run the AI pipeline's job workers (transcription, recaps) for
    /// every tenant until SIGTERM or ctrl-c.
    Worker(worker::WorkerArgs),
    /// Run a recording's AI pipeline again (queues a transcription job).
    Reprocess(worker::ReprocessArgs),
    /// Data protection (DPO): data-subject requests and retention.
    Gdpr {
        #[command(subcommand)]
        command: gdpr::GdprCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tenants (customer organisations).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Local accounts (tenant users, platform operators).
    User {
        #[command(subcommand)]
        command: admin::users::UserCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with its blob container and key-encryption key.
    Add {
        /// Short unique name (a-z, 0-9, '-', '_').
        name: String,
        /// Entra ID tenant id that Teams notifications carry.
        #[arg(long, value_name = "GUID")]
        directory_tenant_id: Option<uuid::Uuid>,
    },
    /// List tenants.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Crypto-shred a data key: every copy of the media encrypted with it
    /// (backups included) becomes unreadable. Irreversible.
    Shred {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// The data key id (a recording's `data_key_id`).
        #[arg(long, value_name = "UUID")]
        key_id: KeyId,
    },
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    run(cli)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let listen = match &cli.command {
        Command::Serve { listen } | Command::Gateway { listen } => *listen,
        _ => None,
    };
    let overrides = Overrides {
        data_dir: cli.global.data_dir.clone(),
        listen,
    };
    let settings = match Settings::load(cli.global.config.as_deref(), &overrides) {
        Ok(s) => s,
        Err(e) => return config_error(&e),
    };
    if let Err(e) = insights_core::telemetry::init(&settings.log) {
        eprintln!("insights: cannot set up logging: {e}");
        return ExitCode::from(1);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("insights: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(dispatch(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain of contexts is ours and free of personal data.
            eprintln!("insights: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("insights: {e}");
    ExitCode::from(2)
}

async fn dispatch(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => serve(settings, true).await,
        Command::Gateway { .. } => serve(settings, false).await,
        Command::Worker(args) => worker::worker(&settings, args).await,
        Command::Reprocess(args) => worker::reprocess(&settings, args).await,
        Command::Admin {
            command: AdminCommand::Tenant { command },
        } => tenant(command, &settings).await,
        Command::Admin {
            command: AdminCommand::User { command },
        } => admin::users::run(command, &settings).await,
        Command::Keys {
            command: KeysCommand::Shred { tenant, key_id },
        } => shred(&settings, &tenant, key_id).await,
        Command::VerifyRecording { id, tenant } => {
            verify_recording(&settings, id, tenant.as_deref()).await
        }
        Command::SimulateCall(args) => simulate_call(&settings, args).await,
        Command::Audit { command } => audit::run(command, &settings).await,
        Command::Gdpr { command } => gdpr::run(command, &settings).await,
        Command::Directory { command } => directory::run(command, &settings).await,
        Command::Transcribe(args) => transcribe::run(args, &settings).await,
        Command::Config => {
            println!("configuration OK");
            println!("data_dir      {}", settings.data_dir.display());
            println!("listen        {}", settings.listen);
            let db = settings.database_url();
            let scheme = db.expose().split(':').next().unwrap_or_default();
            println!("database      {scheme} (url hidden)");
            println!("blob backend  {:?}", settings.blob.backend);
            println!("key file      {}", settings.key_file().display());
            Ok(())
        }
    }
}

async fn serve(settings: Settings, with_worker: bool) -> anyhow::Result<()> {
    let platform = Platform::open(&settings).await?;
    platform.reconcile_tenants().await?;
    // The spool recovers every call a previous run left behind before
    // anything else starts; the uploader then moves finished ones out.
    let spool = Spool::open(
        SpoolConfig::from_settings(&settings)?,
        platform.keys.clone(),
    )
    .await
    .context("opening the spool")?;
    let signer = Arc::new(
        InstallationKey::open_or_create(settings.spool.signing_key_file(&settings.key_file()))
            .context("opening the installation signing key")?,
    );
    let uploader = Uploader::new(
        spool.clone(),
        platform.store.clone(),
        platform.blobs.clone(),
        signer,
        UploaderConfig::from_settings(&settings.spool),
    );
    let stop_uploader = CancellationToken::new();
    let uploader = tokio::spawn(uploader.run(stop_uploader.clone()));

    let auth = insights_api::Authenticator::new(
        &settings.auth,
        &settings.data_dir,
        platform.store.clone(),
        platform.keys.clone(),
    )
    .context("starting authentication")?;
    let state = insights_api::AppState {
        store: platform.store.clone(),
        blobs: platform.blobs.clone(),
        keys: platform.keys.clone(),
        auth: Arc::new(auth),
    };
    let gateway = web::Data::new(
        GatewayState::builder(
            &settings.gateway,
            &settings.data_dir,
            platform.store.clone(),
        )
        // A full spool refuses new calls at the webhook already.
        .admission(Arc::new(bot_gateway::ingest::SpoolAdmission::new(
            spool.clone(),
        )))
        .build()
        .context("starting the Teams gateway")?,
    );
    let media_token = settings
        .gateway
        .media_token(&settings.data_dir)
        .context("the media adapter token")?;
    let ingest = web::Data::new(bot_gateway::ingest::IngestState::new(
        gateway.registry.clone(),
        spool.clone(),
        platform.store.clone(),
        &media_token,
        bot_gateway::ingest::IngestConfig::default(),
    ));
    let webhook = mount(gateway);
    let media = bot_gateway::ingest::mount(ingest);
    let directory =
        directory::Scheduled::start(&settings, platform.store.clone(), with_worker)?;
    let directory_handle = directory
        .as_ref()
        .map(|d| web::Data::new(insights_api::DirectorySyncHandle(d.sync.clone())));
    let routes = move |cfg: &mut web::ServiceConfig| {
        webhook(cfg);
        media(cfg);
        if let Some(h) = &directory_handle {
            cfg.app_data(h.clone());
        }
        // The web UI, same origin as the API.
        ::web::configure(cfg);
    };
    let app = insights_api::Application::build_with(state, settings.listen, routes)?;
    let addr = app.addr();
    let handle = app.handle();
    tracing::info!(%addr, data_dir = %settings.data_dir.display(), "insights serving");
    println!("insights: listening on http://{addr}");
    let server = tokio::spawn(app.run_until_stopped());
    let worker = match with_worker {
        true => worker::Embedded::start(&settings, &platform)?,
        false => None,
    };
    let retention = match with_worker {
        true => gdpr::retention::Scheduler::start(
            &settings.retention,
            platform.store.clone(),
            platform.blobs.clone(),
        ),
        false => None,
    };
    shutdown_signal().await;
    tracing::info!("shutting down");
    if let Some(r) = retention {
        r.stop().await;
    }
    handle.stop(true).await;
    if let Some(d) = directory {
        d.stop().await;
    }
    if let Some(w) = worker {
        w.stop().await;
    }
    stop_uploader.cancel();
    uploader.await.context("uploader task")?;
    spool.shutdown();
    server.await.context("server task")?.context("server")?;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn tenant(command: TenantCommand, settings: &Settings) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    match command {
        TenantCommand::Add {
            name,
            directory_tenant_id,
        } => {
            let t = match platform
                .add_tenant(
                    NewTenant {
                        name: name.clone(),
                        directory_tenant_id,
                    },
                    "cli",
                )
                .await
            {
                Ok(t) => t,
                Err(e)
                    if matches!(
                        e.downcast_ref::<StoreError>(),
                        Some(StoreError::Conflict(_))
                    ) =>
                {
                    anyhow::bail!(
                        "a tenant named `{name}` or with that directory tenant id already exists"
                    )
                }
                Err(e) => return Err(e),
            };
            println!(
                "created tenant {} ({}), container {}",
                t.name,
                t.id,
                Tenant::container_name(t.id)
            );
        }
        TenantCommand::List { json } => {
            let tenants = platform.store.list_tenants().await?;
            if json {
                for t in &tenants {
                    println!("{}", serde_json::to_string(t)?);
                }
            } else {
                println!(
                    "{:<24} {:<36} {:<36} CREATED",
                    "NAME", "ID", "DIRECTORY TENANT"
                );
                for t in &tenants {
                    let dir = t
                        .directory_tenant_id
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{:<24} {:<36} {:<36} {}",
                        t.name,
                        t.id,
                        dir,
                        t.created_at.format("%Y-%m-%d %H:%M:%SZ")
                    );
                }
            }
        }
    }
    Ok(())
}

/// Finds a tenant by id or by name.
pub(crate) async fn find_tenant(platform: &Platform, name_or_id: &str) -> anyhow::Result<Tenant> {
    let found = match name_or_id.parse::<TenantId>() {
        Ok(id) => platform.store.get_tenant(id).await,
        Err(_) => platform.store.tenant_by_name(name_or_id).await,
    };
    match found {
        Ok(t) => Ok(t),
        Err(StoreError::NotFound) => anyhow::bail!("no tenant `{name_or_id}`"),
        Err(e) => Err(e.into()),
    }
}

async fn shred(settings: &Settings, tenant: &str, key_id: KeyId) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    let t = find_tenant(&platform, tenant).await?;
    let destroyed = platform.store.shred_data_key(t.id, key_id).await?;
    platform
        .store
        .append_audit(
            t.id,
            NewAuditEvent {
                actor: "cli".into(),
                action: AuditAction::KeyShred,
                recording_id: None,
                target: Some(key_id.to_string()),
                reason: None,
                source: None,
                details: serde_json::json!({ "destroyed": destroyed }),
            },
        )
        .await?;
    if destroyed {
        println!("data key {key_id} destroyed: media encrypted with it can no longer be read");
    } else {
        println!(
            "data key {key_id} was already destroyed (or never existed in tenant {})",
            t.name
        );
    }
    Ok(())
}

async fn verify_recording(
    settings: &Settings,
    id: RecordingId,
    tenant: Option<&str>,
) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    let tenant = match tenant {
        Some(t) => find_tenant(&platform, t).await?,
        None => {
            let mut found = None;
            for t in platform.store.list_tenants().await? {
                match platform.store.get_recording(t.id, id).await {
                    Ok(_) => {
                        found = Some(t);
                        break;
                    }
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            found.ok_or_else(|| anyhow::anyhow!("no recording {id} in any tenant"))?
        }
    };
    let signer =
        InstallationKey::open_or_create(settings.spool.signing_key_file(&settings.key_file()))
            .context("opening the installation signing key")?;
    let report = custody::verify_recording(
        platform.store.as_ref(),
        platform.blobs.as_ref(),
        platform.keys.as_ref(),
        &[signer.verifying_key()],
        tenant.id,
        id,
    )
    .await?;
    print!("{report}");
    if report.is_ok() {
        Ok(())
    } else {
        anyhow::bail!(
            "recording {id} failed verification ({} mismatches)",
            report.mismatches.len()
        )
    }
}

/// `insights simulate-call`.
#[derive(Debug, Args)]
pub struct SimulateCallArgs {
    /// Base URL of the gateway, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub gateway: String,
    /// Our tenant name (its directory tenant id is read from the store) or
    /// the directory (Entra) tenant GUID itself.
    #[arg(long, value_name = "NAME_OR_GUID")]
    pub tenant: String,
    /// A meeting (unmixed audio, meetingInfo) instead of a 1:1 call.
    #[arg(long)]
    pub meeting: bool,
    /// NAME:NUMBER_OR_UPN:FILE (WAV, FLAC, MP3, Ogg); repeat for each
    /// participant, the recorded user first. E.164 numbers are PSTN
    /// parties, UPNs Teams users.
    #[arg(
        long = "participant",
        value_name = "NAME:NUMBER_OR_UPN:FILE",
        required = true
    )]
    pub participants: Vec<String>,
    /// 1 = real time, 2 = twice as fast, 0 = as fast as possible.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// How the simulated media adapter sends audio: `pcm16` (PCM s16le
    /// 16 kHz) or `opus` (20 ms Opus packets, stored without re-encoding
    /// in calls).
    #[arg(long, value_enum, default_value_t = MediaEncoding::Pcm16)]
    pub encoding: MediaEncoding,
    /// Audience of the simulator tokens (default: the configured
    /// `gateway.app_id`, else the local default).
    #[arg(long)]
    pub audience: Option<String>,
    /// Bearer token of the media WebSocket (default: the data dir's
    /// keys/media-adapter.token).
    #[arg(long, env = "INSIGHTS_MEDIA_TOKEN", hide_env_values = true)]
    pub media_token: Option<String>,
}

/// `--encoding` of `simulate-call`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MediaEncoding {
    Pcm16,
    Opus,
}

async fn simulate_call(settings: &Settings, args: SimulateCallArgs) -> anyhow::Result<()> {
    use bot_gateway::simulator::{
        self, MEDIA_TOKEN_FILE, SimParticipant, SimulatedCall, TokenSource,
    };

    let mut participants = Vec::with_capacity(args.participants.len());
    for spec in &args.participants {
        let (name, identity, file) = simulator::parse_participant_spec(spec)?;
        let pcm = simulator::load_audio(&file)?;
        participants.push(SimParticipant {
            name,
            identity,
            object_id: None,
            pcm,
        });
    }
    // A GUID is the directory tenant itself; a name is looked up, and the
    // tenant's directory then gives Teams users their real object ids.
    let directory_tenant_id = match args.tenant.parse::<uuid::Uuid>() {
        Ok(guid) => guid,
        Err(_) => {
            let store = insights_stores::open_metadata(settings)
                .await
                .context("opening the metadata store to look up the tenant")?;
            let tenant = match store.tenant_by_name(&args.tenant).await {
                Ok(t) => t,
                Err(StoreError::NotFound) => anyhow::bail!("no tenant `{}`", args.tenant),
                Err(e) => return Err(e.into()),
            };
            let users = store.list_directory_users(tenant.id).await?;
            for p in &mut participants {
                let upn = p.identity.trim();
                p.object_id = users
                    .iter()
                    .find(|u| {
                        [u.upn.as_deref(), u.email.as_deref()]
                            .into_iter()
                            .flatten()
                            .any(|x| x.eq_ignore_ascii_case(upn))
                    })
                    .and_then(|u| u.directory_object_id.clone());
            }
            tenant.directory_tenant_id.ok_or_else(|| {
                anyhow::anyhow!(
                    "tenant `{}` has no directory tenant id; pass the Entra tenant GUID as --tenant",
                    args.tenant
                )
            })?
        }
    };
    let configured =
        settings.gateway.media_token.is_some() || settings.gateway.media_token_file.is_some();
    let media_token = match args.media_token {
        Some(t) => t,
        // A token set in the configuration (value or file) wins.
        None if configured => settings
            .gateway
            .media_token(&settings.data_dir)?
            .expose()
            .to_owned(),
        // Otherwise read the embedded default's file, never create one: a
        // fresh token would not be the gateway's.
        None => {
            let path = settings.data_dir.join(MEDIA_TOKEN_FILE);
            std::fs::read_to_string(&path)
                .map(|t| t.trim().to_owned())
                .with_context(|| {
                    format!(
                        "no media adapter token: pass --media-token or point --data-dir at the gateway's data dir ({} missing)",
                        path.display()
                    )
                })?
        }
    };
    let mut call = SimulatedCall::new(
        args.gateway,
        directory_tenant_id,
        participants,
        TokenSource::SimulatorKey {
            key_path: settings.gateway.simulator_key_path(&settings.data_dir),
            audience: args
                .audience
                .unwrap_or_else(|| settings.gateway.audience().to_owned()),
        },
        media_token,
    );
    call.meeting = args.meeting;
    call.speed = args.speed;
    call.encoding = match args.encoding {
        MediaEncoding::Pcm16 => bot_gateway::ingest::protocol::Encoding::Pcm16,
        MediaEncoding::Opus => bot_gateway::ingest::protocol::Encoding::Opus,
    };
    let report = call.run().await?;
    println!("call          {}", report.call_id);
    println!("recording     {}", report.recording_id);
    println!(
        "frames        {} (20 ms) in {} messages",
        report.frames_sent, report.messages_sent
    );
    println!(
        "duration      {:.2} s of audio, streamed in {:.2} s",
        report.audio_duration.as_secs_f64(),
        report.streaming_time.as_secs_f64()
    );
    Ok(())
}
