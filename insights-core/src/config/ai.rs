//! `[ai]`: the cloud AI providers a tenant may opt into (its
//! `cloud_ai_enabled` setting). Without that opt-in, or with a provider
//! left at `local`, everything runs on the machine (offline Whisper, the
//! local extractive recap). Keys are never in this file: each provider
//! names the environment variable that holds its key.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Which speech-to-text engine tenants with cloud AI enabled get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloudStt {
    /// The offline engine, like every other tenant.
    Local,
    /// `POST {base_url}/audio/transcriptions` of `[ai.openai]`.
    OpenaiCompatible,
    /// Azure Speech batch transcription of `[ai.azure_speech]`.
    AzureSpeech,
}

/// Which recap engine tenants with cloud AI enabled get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloudRecap {
    /// The local extractive recap, like every other tenant.
    Local,
    /// Chat completions of `[ai.openai]` (OpenAI, vLLM, llama.cpp, Ollama).
    OpenaiCompatible,
    /// Azure OpenAI chat completions of `[ai.azure_openai]`.
    AzureOpenai,
    /// The Anthropic Messages API of `[ai.anthropic]`.
    Anthropic,
}

/// `[ai]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AiSettings {
    pub cloud_stt: CloudStt,
    pub cloud_recap: CloudRecap,
    /// Timeout of one HTTP request to a provider.
    pub request_timeout_ms: u64,
    /// Attempts per request on 429, 5xx and network errors (then the job
    /// is retried later by the queue).
    pub max_attempts: u32,
    /// Exponential backoff between attempts (a 429's Retry-After wins,
    /// up to `backoff_max_ms`).
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub openai: Option<OpenAiSettings>,
    pub azure_openai: Option<AzureOpenAiSettings>,
    pub anthropic: Option<AnthropicSettings>,
    pub azure_speech: Option<AzureSpeechSettings>,
}

/// `[ai.openai]`: any server speaking the OpenAI REST shapes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiSettings {
    /// Up to and including `/v1`, e.g. `https://api.openai.com/v1`,
    /// `http://127.0.0.1:11434/v1` (Ollama), `http://127.0.0.1:8000/v1` (vLLM).
    pub base_url: String,
    /// Environment variable holding the API key (sent as a Bearer token);
    /// unset: no Authorization header (local servers).
    pub api_key_env: Option<String>,
    /// Model for recaps (chat completions).
    pub chat_model: Option<String>,
    /// Model for speech-to-text, e.g. `whisper-1`.
    pub transcription_model: Option<String>,
    /// Ask for `response_format: {"type": "json_object"}`.
    pub json_mode: bool,
}

/// `[ai.azure_openai]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureOpenAiSettings {
    /// `https://{resource}.openai.azure.com`.
    pub endpoint: String,
    pub deployment: String,
    pub api_version: String,
    /// Environment variable holding the `api-key`.
    pub api_key_env: String,
}

/// `[ai.anthropic]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnthropicSettings {
    /// `https://api.anthropic.com` (the API path `/v1/messages` is added).
    pub base_url: String,
    pub model: String,
    /// The `anthropic-version` header.
    pub version: String,
    pub max_tokens: u32,
    /// Environment variable holding the `x-api-key`.
    pub api_key_env: String,
}

/// `[ai.azure_speech]`: batch transcription (REST v3.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureSpeechSettings {
    /// `https://{region}.api.cognitive.microsoft.com`.
    pub endpoint: String,
    pub api_version: String,
    pub locale: String,
    /// Environment variable holding the `Ocp-Apim-Subscription-Key`.
    pub api_key_env: String,
    /// Environment variable holding a SAS URL of a dedicated staging
    /// container (permissions: create, write, read, delete). Batch
    /// transcription only reads audio from URLs: each utterance is
    /// uploaded there as WAV for the duration of the job, then deleted.
    /// Never the tenant's evidence container, which holds ciphertext only.
    pub staging_sas_url_env: String,
    /// How often to poll a running transcription, and for how long.
    pub poll_interval_ms: u64,
    pub max_wait_secs: u64,
}

impl Default for AiSettings {
    fn default() -> Self {
        Self {
            cloud_stt: CloudStt::Local,
            cloud_recap: CloudRecap::Local,
            request_timeout_ms: 120_000,
            max_attempts: 4,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 30_000,
            openai: None,
            azure_openai: None,
            anthropic: None,
            azure_speech: None,
        }
    }
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            api_key_env: None,
            chat_model: None,
            transcription_model: None,
            json_mode: true,
        }
    }
}

impl Default for AzureOpenAiSettings {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            deployment: String::new(),
            api_version: "2024-10-21".into(),
            api_key_env: "AZURE_OPENAI_API_KEY".into(),
        }
    }
}

impl Default for AnthropicSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.anthropic.com".into(),
            model: String::new(),
            version: "2023-06-01".into(),
            max_tokens: 4096,
            api_key_env: "ANTHROPIC_API_KEY".into(),
        }
    }
}

impl Default for AzureSpeechSettings {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            api_version: "v3.2".into(),
            locale: "en-US".into(),
            api_key_env: "AZURE_SPEECH_KEY".into(),
            staging_sas_url_env: "AZURE_SPEECH_STAGING_SAS_URL".into(),
            poll_interval_ms: 5_000,
            max_wait_secs: 3_600,
        }
    }
}

fn invalid(key: &'static str, problem: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

fn check_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(invalid(key, "must be an http:// or https:// URL"))
    }
}

fn check_set(key: &'static str, v: &str) -> Result<(), ConfigError> {
    if v.trim().is_empty() {
        Err(invalid(key, "must be set"))
    } else {
        Ok(())
    }
}

impl AiSettings {
    /// Checks the provider sections, and that the chosen providers are
    /// configured.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(invalid("ai.max_attempts", "must be at least 1"));
        }
        if self.request_timeout_ms == 0 {
            return Err(invalid("ai.request_timeout_ms", "must be at least 1"));
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(invalid(
                "ai.backoff_max_ms",
                "must not be less than ai.backoff_initial_ms",
            ));
        }
        if let Some(o) = &self.openai {
            check_url("ai.openai.base_url", &o.base_url)?;
        }
        if let Some(a) = &self.azure_openai {
            check_url("ai.azure_openai.endpoint", &a.endpoint)?;
            check_set("ai.azure_openai.deployment", &a.deployment)?;
            check_set("ai.azure_openai.api_version", &a.api_version)?;
            check_set("ai.azure_openai.api_key_env", &a.api_key_env)?;
        }
        if let Some(a) = &self.anthropic {
            check_url("ai.anthropic.base_url", &a.base_url)?;
            check_set("ai.anthropic.model", &a.model)?;
            check_set("ai.anthropic.api_key_env", &a.api_key_env)?;
            if a.max_tokens == 0 {
                return Err(invalid("ai.anthropic.max_tokens", "must be at least 1"));
            }
        }
        if let Some(s) = &self.azure_speech {
            check_url("ai.azure_speech.endpoint", &s.endpoint)?;
            check_set("ai.azure_speech.locale", &s.locale)?;
            check_set("ai.azure_speech.api_key_env", &s.api_key_env)?;
            check_set(
                "ai.azure_speech.staging_sas_url_env",
                &s.staging_sas_url_env,
            )?;
            if s.poll_interval_ms == 0 {
                return Err(invalid(
                    "ai.azure_speech.poll_interval_ms",
                    "must be at least 1",
                ));
            }
        }
        match self.cloud_stt {
            CloudStt::Local => {}
            CloudStt::OpenaiCompatible => {
                let m = self
                    .openai
                    .as_ref()
                    .and_then(|o| o.transcription_model.as_deref());
                if m.is_none_or(|m| m.trim().is_empty()) {
                    return Err(invalid(
                        "ai.openai.transcription_model",
                        "required when ai.cloud_stt = \"openai-compatible\"",
                    ));
                }
            }
            CloudStt::AzureSpeech => {
                if self.azure_speech.is_none() {
                    return Err(invalid(
                        "ai.azure_speech",
                        "required when ai.cloud_stt = \"azure-speech\"",
                    ));
                }
            }
        }
        match self.cloud_recap {
            CloudRecap::Local => {}
            CloudRecap::OpenaiCompatible => {
                let m = self.openai.as_ref().and_then(|o| o.chat_model.as_deref());
                if m.is_none_or(|m| m.trim().is_empty()) {
                    return Err(invalid(
                        "ai.openai.chat_model",
                        "required when ai.cloud_recap = \"openai-compatible\"",
                    ));
                }
            }
            CloudRecap::AzureOpenai => {
                if self.azure_openai.is_none() {
                    return Err(invalid(
                        "ai.azure_openai",
                        "required when ai.cloud_recap = \"azure-openai\"",
                    ));
                }
            }
            CloudRecap::Anthropic => {
                if self.anthropic.is_none() {
                    return Err(invalid(
                        "ai.anthropic",
                        "required when ai.cloud_recap = \"anthropic\"",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Overrides, Settings};
    use super::*;

    fn load(toml: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("insights.toml");
        std::fs::write(&p, toml).unwrap_or_else(|e| panic!("{e}"));
        Settings::load_from(
            Some(&p),
            &Overrides::default(),
            figment::providers::Env::prefixed("INSIGHTS_UNIT_TEST_NOTHING_"),
        )
    }

    #[test]
    fn defaults_are_local() {
        let s = AiSettings::default();
        assert_eq!(
            (s.cloud_stt, s.cloud_recap),
            (CloudStt::Local, CloudRecap::Local)
        );
        assert!(s.validate().is_ok());
    }

    #[test]
    fn every_provider_section_parses() {
        let s = load(
            "[ai]\ncloud_stt = \"azure-speech\"\ncloud_recap = \"anthropic\"\n\
             [ai.openai]\nbase_url = \"http://127.0.0.1:11434/v1\"\nchat_model = \"llama3\"\n\
             [ai.azure_openai]\nendpoint = \"https://x.openai.azure.com\"\ndeployment = \"d\"\n\
             [ai.anthropic]\nmodel = \"claude-x\"\n\
             [ai.azure_speech]\nendpoint = \"https://westeurope.api.cognitive.microsoft.com\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.ai.cloud_stt, CloudStt::AzureSpeech);
        assert_eq!(s.ai.cloud_recap, CloudRecap::Anthropic);
        let a = s.ai.anthropic.unwrap_or_default();
        assert_eq!(
            (a.version.as_str(), a.api_key_env.as_str()),
            ("2023-06-01", "ANTHROPIC_API_KEY")
        );
        let sp = s.ai.azure_speech.unwrap_or_default();
        assert_eq!(sp.api_version, "v3.2");
        assert_eq!(s.ai.openai.and_then(|o| o.api_key_env), None);
    }

    #[test]
    fn a_chosen_provider_must_be_configured() {
        let err = load("[ai]\ncloud_recap = \"openai-compatible\"\n[ai.openai]\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ai.openai.chat_model"), "{err}");
        let err = load("[ai.anthropic]\nmodel = \"m\"\nbase_url = \"api.anthropic.com\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ai.anthropic.base_url"), "{err}");
        let err = load("[ai.openai]\napi_key = \"sk-in-the-file\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("api_key"),
            "keys have no place in the file: {err}"
        );
    }
}
