//! Cloud AI providers, opt-in per tenant, and the choice between them and
//! the local engines.
//!
//! [`Providers`] is built once at start-up from `[ai]` (keys are read
//! from the environment variables the settings name; a missing key is a
//! start-up error, not a failure of the first job). Per job,
//! [`Providers::for_job`] returns the engines for the tenant: the local
//! ones (offline Whisper, [`Extractive`]) unless the tenant enabled cloud
//! AI **and** a cloud provider is configured. Cloud engines are bound to
//! the job's tenant and recording, so every request they make is
//! recorded in the tenant's processing records ([`http::CallRecords`]).

pub mod azure_speech;
pub mod chat;
pub mod http;
pub mod openai_stt;
pub mod wav;

use std::sync::Arc;
use std::time::Duration;

use insights_core::config::{AiSettings, CloudRecap, CloudStt, Secret};
use insights_core::domain::TenantSettings;

pub use self::azure_speech::AzureSpeechBatch;
pub use self::chat::{AnthropicChat, AzureOpenAiChat, OpenAiChat};
pub use self::http::{CallContext, CallError, CallRecords, Http, RetryPolicy, StoreRecords};
pub use self::openai_stt::OpenAiTranscription;
use crate::recap::{Extractive, LlmRecap, RecapEngine};
use crate::stt::SpeechToText;

/// Why the providers cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The environment variable named in the settings is not set.
    #[error("environment variable {0} (named in [ai]) is not set")]
    MissingKey(String),
    #[error("cannot set up the AI providers: {0}")]
    Http(#[from] CallError),
}

/// The engines one job uses.
#[derive(Clone)]
pub struct Engines {
    pub stt: Arc<dyn SpeechToText>,
    pub recap: Arc<dyn RecapEngine>,
    /// Whether either engine sends data to a cloud provider.
    pub cloud: bool,
}

/// Keys read at start-up.
#[derive(Clone, Default)]
struct Keys {
    openai: Option<Secret>,
    azure_openai: Option<Secret>,
    anthropic: Option<Secret>,
    azure_speech: Option<(Secret, Secret)>,
}

/// The configured providers and the local engines.
#[derive(Clone)]
pub struct Providers {
    settings: AiSettings,
    http: Arc<Http>,
    keys: Keys,
    local_stt: Arc<dyn SpeechToText>,
    local_recap: Arc<dyn RecapEngine>,
}

impl Providers {
    /// Providers from `[ai]`, keys from the process environment.
    /// `local_stt` is the offline engine every tenant gets by default.
    pub fn new(
        settings: &AiSettings,
        local_stt: Arc<dyn SpeechToText>,
    ) -> Result<Self, SetupError> {
        Self::with_env(settings, local_stt, |name| std::env::var(name).ok())
    }

    /// Like [`Providers::new`] with the environment given as a function.
    pub fn with_env(
        settings: &AiSettings,
        local_stt: Arc<dyn SpeechToText>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SetupError> {
        let key = |name: &str| -> Result<Secret, SetupError> {
            env(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| Secret::new(v.trim()))
                .ok_or_else(|| SetupError::MissingKey(name.to_owned()))
        };
        // Only the chosen providers need their keys.
        let mut keys = Keys::default();
        let openai_used = settings.cloud_stt == CloudStt::OpenaiCompatible
            || settings.cloud_recap == CloudRecap::OpenaiCompatible;
        if openai_used
            && let Some(name) = settings
                .openai
                .as_ref()
                .and_then(|o| o.api_key_env.as_deref())
        {
            keys.openai = Some(key(name)?);
        }
        if settings.cloud_recap == CloudRecap::AzureOpenai
            && let Some(a) = &settings.azure_openai
        {
            keys.azure_openai = Some(key(&a.api_key_env)?);
        }
        if settings.cloud_recap == CloudRecap::Anthropic
            && let Some(a) = &settings.anthropic
        {
            keys.anthropic = Some(key(&a.api_key_env)?);
        }
        if settings.cloud_stt == CloudStt::AzureSpeech
            && let Some(s) = &settings.azure_speech
        {
            keys.azure_speech = Some((key(&s.api_key_env)?, key(&s.staging_sas_url_env)?));
        }
        let http = Http::new(RetryPolicy {
            timeout: Duration::from_millis(settings.request_timeout_ms),
            max_attempts: settings.max_attempts.max(1),
            backoff_initial: Duration::from_millis(settings.backoff_initial_ms),
            backoff_max: Duration::from_millis(settings.backoff_max_ms),
        })?;
        Ok(Self {
            settings: settings.clone(),
            http: Arc::new(http),
            keys,
            local_stt,
            local_recap: Arc::new(Extractive),
        })
    }

    /// The engines for one job of a tenant with `tenant` settings: local
    /// unless the tenant enabled cloud AI and a cloud provider is chosen.
    pub fn for_job(&self, tenant: &TenantSettings, ctx: CallContext) -> Engines {
        let local = Engines {
            stt: self.local_stt.clone(),
            recap: self.local_recap.clone(),
            cloud: false,
        };
        if !tenant.cloud_ai_enabled {
            return local;
        }
        let stt = self.cloud_stt(&ctx);
        let recap = self.cloud_recap(&ctx);
        Engines {
            cloud: stt.is_some() || recap.is_some(),
            stt: stt.unwrap_or(local.stt),
            recap: recap.unwrap_or(local.recap),
        }
    }

    fn cloud_stt(&self, ctx: &CallContext) -> Option<Arc<dyn SpeechToText>> {
        let s = &self.settings;
        match s.cloud_stt {
            CloudStt::Local => None,
            CloudStt::OpenaiCompatible => {
                let o = s.openai.as_ref()?;
                Some(Arc::new(OpenAiTranscription::new(
                    self.http.clone(),
                    ctx.clone(),
                    &o.base_url,
                    self.keys.openai.clone(),
                    o.transcription_model.as_deref()?,
                )))
            }
            CloudStt::AzureSpeech => {
                let a = s.azure_speech.as_ref()?;
                let (key, sas) = self.keys.azure_speech.clone()?;
                Some(Arc::new(AzureSpeechBatch::new(
                    self.http.clone(),
                    ctx.clone(),
                    &a.endpoint,
                    &a.api_version,
                    &a.locale,
                    key,
                    sas,
                    Duration::from_millis(a.poll_interval_ms),
                    Duration::from_secs(a.max_wait_secs),
                )))
            }
        }
    }

    fn cloud_recap(&self, ctx: &CallContext) -> Option<Arc<dyn RecapEngine>> {
        let s = &self.settings;
        match s.cloud_recap {
            CloudRecap::Local => None,
            CloudRecap::OpenaiCompatible => {
                let o = s.openai.as_ref()?;
                Some(Arc::new(LlmRecap::new(OpenAiChat::new(
                    self.http.clone(),
                    ctx.clone(),
                    &o.base_url,
                    self.keys.openai.clone(),
                    o.chat_model.as_deref()?,
                    o.json_mode,
                ))))
            }
            CloudRecap::AzureOpenai => {
                let a = s.azure_openai.as_ref()?;
                Some(Arc::new(LlmRecap::new(AzureOpenAiChat::new(
                    self.http.clone(),
                    ctx.clone(),
                    &a.endpoint,
                    &a.deployment,
                    &a.api_version,
                    self.keys.azure_openai.clone()?,
                ))))
            }
            CloudRecap::Anthropic => {
                let a = s.anthropic.as_ref()?;
                Some(Arc::new(LlmRecap::new(AnthropicChat::new(
                    self.http.clone(),
                    ctx.clone(),
                    &a.base_url,
                    &a.model,
                    &a.version,
                    a.max_tokens,
                    self.keys.anthropic.clone()?,
                ))))
            }
        }
    }
}
