//! `insights simulate-call`: plays a whole Teams compliance call against a
//! running gateway (for tests and demos).

use anyhow::Context;
use clap::Args;
use insights_core::config::Settings;

use super::lookup::find_tenant;

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
    /// In a meeting, a participant (index in the `--participant` order,
    /// from 0) whose audio source Teams does not attribute: the gateway
    /// records their voice in the mix only, with no track of their own.
    /// Repeatable.
    #[arg(long = "mix-only", value_name = "INDEX", requires = "meeting")]
    pub mix_only: Vec<usize>,
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

/// Runs `insights simulate-call` and prints what was sent.
pub async fn run(settings: &Settings, args: SimulateCallArgs) -> anyhow::Result<()> {
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
            // Not a UUID, so looked up by name.
            let tenant = find_tenant(store.as_ref(), &args.tenant).await?;
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
    call.mix_only = args.mix_only;
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
