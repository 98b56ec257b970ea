//! Command-line interface: the `clap` command tree, settings and logging
//! set-up, dispatch, and exit codes (0 success, 1 failure at run time,
//! 2 bad usage or bad configuration).
//!
//! One module per command group of the tree: `serve` (`serve` and its
//! role shorthands `api`, `gateway`, `worker`, `scheduler`), `admin` (`admin tenant`, `admin user`), `keys`,
//! `verify_recording`, `audit`, `directory`, `config`, `transcribe`,
//! `simulate_call`, `worker` (`worker`, `reprocess`) and `gdpr`
//! (`retention`, and the data-subject requests in `gdpr::subject`).
//! Tenant look-ups shared by the commands are in `lookup`, the shutdown
//! signal of the long-running ones in `signal`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use insights_core::config::{ConfigError, Overrides, Settings};
use insights_core::domain::RecordingId;

pub mod admin;
pub mod audit;
pub mod config;
pub mod directory;
pub mod gdpr;
pub mod keys;
mod lookup;
pub mod serve;
mod signal;
pub mod signing;
pub mod simulate_call;
pub mod transcribe;
pub mod verify_recording;
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
    /// Run a node: every role in one process by default (HTTP API and
    /// web UI, Teams gateway, AI worker, periodic jobs), or the roles
    /// named. Every node serves /livez, /readyz and /metrics.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// The roles to run, comma-separated (default: all).
        #[arg(long, value_name = "ROLES", value_delimiter = ',', num_args = 1..)]
        roles: Option<Vec<serve::Role>>,
    },
    /// The API role alone (`serve --roles api`): the HTTP API and web UI.
    Api {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// The gateway role alone (`serve --roles gateway`): the Teams bot
    /// webhook, the media WebSocket, the spool and the uploader, with
    /// health and metrics (no API).
    Gateway {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// The scheduler role alone (`serve --roles scheduler`): retention and
    /// directory sync, each on the one node that holds its lease.
    Scheduler {
        /// Address of the health and metrics listener (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Administration: tenants and local accounts.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Check a recording's chain of custody offline: blobs, signed
    /// manifest and metadata; names every mismatch (exit code 1 if any).
    VerifyRecording {
        /// The recording id.
        id: RecordingId,
        /// Tenant name or id (default: find the tenant that holds it).
        #[arg(long)]
        tenant: Option<String>,
        /// Trust the signing keys in this file (`insights keys
        /// export-public`) instead of the metadata store's registry.
        #[arg(long, value_name = "FILE")]
        trusted_keys: Option<std::path::PathBuf>,
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
    SimulateCall(simulate_call::SimulateCallArgs),
    /// The worker role alone (`serve --roles worker`): the AI pipeline's
    /// job workers (transcription, recaps) for every tenant until SIGTERM
    /// or ctrl-c, with health and metrics on `--listen`.
    Worker(worker::WorkerArgs),
    /// Run a recording's AI pipeline again (queues a transcription job).
    Reprocess(worker::ReprocessArgs),
    /// Data protection (DPO): data-subject requests and retention.
    Gdpr {
        #[command(subcommand)]
        command: gdpr::GdprCommand,
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
        Command::Serve { listen, .. }
        | Command::Api { listen }
        | Command::Gateway { listen }
        | Command::Scheduler { listen } => *listen,
        Command::Worker(args) => args.listen,
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
    // `[metrics]` (listener, token, tenant labels) before any server is built.
    if matches!(
        cli.command,
        Command::Serve { .. }
            | Command::Api { .. }
            | Command::Gateway { .. }
            | Command::Scheduler { .. }
            | Command::Worker(_)
    ) && let Err(e) = insights_api::configure_metrics(&settings.metrics)
    {
        return config_error(&e);
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

/// A shorthand: `serve` with one role.
async fn node(settings: Settings, role: serve::Role) -> anyhow::Result<()> {
    serve::serve(
        settings,
        serve::Roles::of(&[role]),
        serve::WorkerOptions::default(),
    )
    .await
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("insights: {e}");
    ExitCode::from(2)
}

async fn dispatch(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { roles, .. } => {
            let roles = match roles {
                Some(list) => serve::Roles::of(&list),
                None => serve::Roles::all(),
            };
            serve::serve(settings, roles, serve::WorkerOptions::default()).await
        }
        Command::Api { .. } => node(settings, serve::Role::Api).await,
        Command::Gateway { .. } => node(settings, serve::Role::Gateway).await,
        Command::Scheduler { .. } => node(settings, serve::Role::Scheduler).await,
        Command::Worker(args) => worker::worker(settings, args).await,
        Command::Reprocess(args) => worker::reprocess(&settings, args).await,
        Command::Admin { command } => admin::run(command, &settings).await,
        Command::Keys { command } => keys::run(command, &settings).await,
        Command::VerifyRecording {
            id,
            tenant,
            trusted_keys,
        } => verify_recording::run(&settings, id, tenant.as_deref(), trusted_keys.as_deref()).await,
        Command::SimulateCall(args) => simulate_call::run(&settings, args).await,
        Command::Audit { command } => audit::run(command, &settings).await,
        Command::Gdpr { command } => gdpr::run(command, &settings).await,
        Command::Directory { command } => directory::run(command, &settings).await,
        Command::Transcribe(args) => transcribe::run(args, &settings).await,
        Command::Config => config::run(&settings),
    }
}
