//! Typed settings: defaults in code → optional TOML file → `INSIGHTS_*`
//! environment variables (nested keys joined with `__`, e.g.
//! `INSIGHTS_DATABASE__URL`) → command-line flags. Validated at start;
//! a bad value is an error naming the key, never a panic.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod ai;
mod alerts;
mod auth;
mod completeness;
mod directory;
mod endpoints;
mod gateway;
mod gdpr;
mod http;
mod key_vault;
mod metrics;
mod retention;
mod scheduler;
mod siprec;
mod spool;
mod stt;
mod uploader;
mod worker;

pub use ai::{
    AiSettings, AnthropicSettings, AzureOpenAiSettings, AzureSpeechSettings, CloudRecap, CloudStt,
    OpenAiSettings,
};
pub use alerts::{AlertSettings, BusinessHours, SmtpSettings};
pub use auth::{AuthSettings, Cidr, DEFAULT_ROLE_MAP, OidcProfileMapping, OidcSettings};
pub use completeness::CompletenessConfig;
pub use directory::DirectorySettings;
pub use gateway::GatewaySettings;
pub use gdpr::GdprSettings;
pub use http::HttpSettings;
pub use key_vault::{AzureKeyVaultSettings, IMDS_TOKEN_ENDPOINT};
pub use metrics::MetricsSettings;
pub use retention::RetentionSettings;
pub use scheduler::SchedulerSettings;
pub use siprec::{SipListen, SiprecSettings, SiprecTrunk, normalize_fingerprint};
pub use spool::SpoolSettings;
pub use stt::{SttBatching, SttSettings};
pub use uploader::UploaderSettings;
pub use worker::WorkerSettings;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Top-level keys, used to pick our variables out of the environment.
const TOP_LEVEL_KEYS: &[&str] = &[
    "data_dir",
    "node_name",
    "allow_insecure_http",
    "listen",
    "http",
    "database",
    "blob",
    "keys",
    "log",
    "gateway",
    "spool",
    "uploader",
    "auth",
    "ai",
    "stt",
    "worker",
    "retention",
    "scheduler",
    "directory",
    "metrics",
    "gdpr",
    "siprec",
    "completeness",
    "alerts",
];

/// Every setting of the platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the embedded defaults keep everything (SQLite file, blobs,
    /// key file). Default `./data`.
    pub data_dir: PathBuf,
    /// This node's name in the signing-key registry. Default: the host
    /// name.
    #[serde(default)]
    pub node_name: Option<String>,
    /// HTTP listen address. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `[http]`: HTTPS for the listener.
    #[serde(default)]
    pub http: HttpSettings,
    /// Allow plain-HTTP signing-key, token and provider endpoints. For
    /// tests with local stand-ins only; default false (see `endpoints`).
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub database: DatabaseSettings,
    pub blob: BlobSettings,
    pub keys: KeySettings,
    pub log: LogSettings,
    pub gateway: GatewaySettings,
    pub spool: SpoolSettings,
    /// `[uploader]`: segmented upload of live calls.
    #[serde(default)]
    pub uploader: UploaderSettings,
    pub auth: AuthSettings,
    pub ai: AiSettings,
    pub stt: SttSettings,
    pub worker: WorkerSettings,
    #[serde(default)]
    pub retention: RetentionSettings,
    /// `[scheduler]`: the lease of the periodic jobs' leader.
    #[serde(default)]
    pub scheduler: SchedulerSettings,
    pub directory: DirectorySettings,
    /// `[metrics]`: where and to whom `/metrics` is served.
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub gdpr: GdprSettings,
    /// `[siprec]`: the SIPREC recording server of a gateway node (off
    /// unless `listen` is set).
    #[serde(default)]
    pub siprec: SiprecSettings,
    /// `[completeness]`: the reconciliation of Microsoft's call records
    /// against the recordings (scheduler role; Graph through
    /// `[directory]`).
    #[serde(default)]
    pub completeness: CompletenessConfig,
    /// `[alerts]`: alert rules, deduplication, rate limit and SMTP.
    #[serde(default)]
    pub alerts: AlertSettings,
}

/// Metadata store settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://...`. Default: `insights.db` in the
    /// data directory.
    pub url: Option<Secret>,
    /// Connection pool size.
    pub max_connections: u32,
}

/// Which blob backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackend {
    Local,
    Azure,
}

/// Blob store settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobSettings {
    pub backend: BlobBackend,
    /// Root folder of the local backend. Default: `blobs` in the data dir.
    pub local_dir: Option<PathBuf>,
    pub azure: AzureSettings,
}

/// Azure Blob Storage settings (shared-key account).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureSettings {
    pub account: Option<String>,
    pub access_key: Option<Secret>,
    /// File holding the access key (alternative to `access_key`).
    pub access_key_file: Option<PathBuf>,
    /// Blob endpoint, e.g. `http://127.0.0.1:10000/devstoreaccount1`;
    /// default `https://{account}.blob.core.windows.net`.
    pub endpoint: Option<String>,
    /// Use the Azurite emulator's well-known account and key.
    pub use_emulator: bool,
    /// PEM file of CA certificates to trust for the `https` endpoint in
    /// addition to the public roots (private endpoints behind a private
    /// CA).
    pub ca_file: Option<PathBuf>,
}

/// Key provider settings (`[keys]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    /// Who holds the tenants' key-encryption keys: `local-file` (default),
    /// `database` or `azure-key-vault`.
    pub provider: KeyProviderKind,
    /// Path of the local key file (`local-file`). Default:
    /// `keys/kek.json` in the data dir.
    pub key_file: Option<PathBuf>,
    /// `database`: file holding the root key (64 hex digits, mode 0600).
    pub root_key_file: Option<PathBuf>,
    /// `database`: name of the environment variable holding the root key
    /// (64 hex digits); the alternative to `root_key_file`.
    pub root_key_env: Option<String>,
    /// How long an unwrapped key-encryption key stays in memory before it
    /// is zeroised and fetched again. Default 300.
    pub cache_ttl_secs: u64,
    /// `[keys.azure_key_vault]`, read when `provider = "azure-key-vault"`.
    pub azure_key_vault: AzureKeyVaultSettings,
}

/// Which key provider holds the key-encryption keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyProviderKind {
    /// A 0600 JSON key file on this machine (the embedded default).
    /// `local` is accepted for configurations written before 0.2.
    #[serde(alias = "local")]
    LocalFile,
    /// Tenant KEKs in the metadata store, wrapped by a root key from a
    /// file or an environment variable.
    Database,
    /// Tenant KEKs wrapped by Azure Key Vault.
    AzureKeyVault,
}

impl KeyProviderKind {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LocalFile => "local-file",
            Self::Database => "database",
            Self::AzureKeyVault => "azure-key-vault",
        }
    }
}

/// Log output settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `insights=debug,info`.
    pub level: String,
}

/// Human-readable text or one JSON object per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A secret string: never shown by `Debug`/`Display`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret value; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            node_name: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http: HttpSettings::default(),
            allow_insecure_http: false,
            database: DatabaseSettings::default(),
            blob: BlobSettings::default(),
            keys: KeySettings::default(),
            log: LogSettings::default(),
            gateway: GatewaySettings::default(),
            spool: SpoolSettings::default(),
            uploader: UploaderSettings::default(),
            auth: AuthSettings::default(),
            ai: AiSettings::default(),
            stt: SttSettings::default(),
            worker: WorkerSettings::default(),
            retention: RetentionSettings::default(),
            scheduler: SchedulerSettings::default(),
            directory: DirectorySettings::default(),
            metrics: MetricsSettings::default(),
            gdpr: GdprSettings::default(),
            siprec: SiprecSettings::default(),
            completeness: CompletenessConfig::default(),
            alerts: AlertSettings::default(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 8,
        }
    }
}

impl Default for BlobSettings {
    fn default() -> Self {
        Self {
            backend: BlobBackend::Local,
            local_dir: None,
            azure: AzureSettings::default(),
        }
    }
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            provider: KeyProviderKind::LocalFile,
            key_file: None,
            root_key_file: None,
            root_key_env: None,
            cache_ttl_secs: 300,
            azure_key_vault: AzureKeyVaultSettings::default(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// A configuration problem, naming the key and where the value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(String),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
}

/// Values given on the command line; they win over everything else.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

impl Settings {
    /// Loads settings from defaults, the optional TOML file, the process
    /// environment and `overrides`, then validates them.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(file, overrides, Env::prefixed("INSIGHTS_"))
    }

    fn load_from(
        file: Option<&Path>,
        overrides: &Overrides,
        env: Env,
    ) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        let env = env
            .filter(|k| {
                let first = k.as_str().split("__").next().unwrap_or_default();
                TOP_LEVEL_KEYS.iter().any(|t| first.eq_ignore_ascii_case(t))
            })
            .split("__");
        fig = fig.merge(env);
        if let Some(d) = &overrides.data_dir {
            fig = fig.merge(Serialized::default("data_dir", d));
        }
        if let Some(l) = &overrides.listen {
            fig = fig.merge(Serialized::default("listen", l.to_string()));
        }
        let settings: Settings = fig
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "data_dir",
                problem: "must not be empty".into(),
            });
        }
        if let Some(n) = &self.node_name
            && (n.trim().is_empty() || n.len() > 255)
        {
            return Err(ConfigError::Invalid {
                key: "node_name",
                problem: "must be 1 to 255 characters".into(),
            });
        }
        self.http.validate()?;
        self.siprec.validate()?;
        self.alerts.validate()?;
        if self.database.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "database.max_connections",
                problem: "must be at least 1".into(),
            });
        }
        if let Some(url) = &self.database.url {
            let u = url.expose();
            if !(u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://"))
            {
                return Err(ConfigError::Invalid {
                    key: "database.url",
                    problem: "must start with sqlite:, postgres:// or postgresql://".into(),
                });
            }
        }
        if self.keys.provider == KeyProviderKind::Database {
            match (&self.keys.root_key_file, &self.keys.root_key_env) {
                (None, None) => {
                    return Err(ConfigError::Invalid {
                        key: "keys.root_key_file",
                        problem:
                            "required (or keys.root_key_env) when keys.provider = \"database\""
                                .into(),
                    });
                }
                (Some(_), Some(_)) => {
                    return Err(ConfigError::Invalid {
                        key: "keys.root_key_env",
                        problem: "set keys.root_key_file or keys.root_key_env, not both".into(),
                    });
                }
                _ => {}
            }
        }
        if self.keys.cache_ttl_secs == 0 || self.keys.cache_ttl_secs > 86_400 {
            return Err(ConfigError::Invalid {
                key: "keys.cache_ttl_secs",
                problem: "must be between 1 and 86400".into(),
            });
        }
        if self.blob.backend == BlobBackend::Azure && !self.blob.azure.use_emulator {
            if self.blob.azure.account.as_deref().unwrap_or("").is_empty() {
                return Err(ConfigError::Invalid {
                    key: "blob.azure.account",
                    problem: "required when blob.backend = \"azure\"".into(),
                });
            }
            if self.blob.azure.access_key.is_none() && self.blob.azure.access_key_file.is_none() {
                return Err(ConfigError::Invalid {
                    key: "blob.azure.access_key",
                    problem:
                        "required (or blob.azure.access_key_file) when blob.backend = \"azure\""
                            .into(),
                });
            }
        }
        if self.keys.provider == KeyProviderKind::AzureKeyVault {
            self.keys
                .azure_key_vault
                .validate(self.allow_insecure_http)?;
        }
        self.spool.validate()?;
        self.uploader.validate()?;
        self.gateway.validate()?;
        self.auth.validate()?;
        self.ai.validate()?;
        self.stt.validate()?;
        self.worker.validate()?;
        self.retention.validate()?;
        self.scheduler.validate()?;
        self.directory.validate()?;
        self.completeness.validate()?;
        self.metrics.validate(self.listen)?;
        endpoints::validate(self)?;
        self.gdpr.validate()?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::Invalid {
                key: "log.level",
                problem: e.to_string(),
            });
        }
        Ok(())
    }

    /// The metadata store URL (default: SQLite file in the data dir).
    pub fn database_url(&self) -> Secret {
        match &self.database.url {
            Some(u) => u.clone(),
            None => Secret::new(format!(
                "sqlite://{}",
                self.data_dir.join("insights.db").display()
            )),
        }
    }

    /// Root folder of the local blob backend.
    pub fn blob_dir(&self) -> PathBuf {
        self.blob
            .local_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("blobs"))
    }

    /// Path of the local key file.
    pub fn key_file(&self) -> PathBuf {
        self.keys
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("kek.json"))
    }

    /// The Azure access key, read from `access_key_file` if given.
    pub fn azure_access_key(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(k) = &self.blob.azure.access_key {
            return Ok(Some(k.clone()));
        }
        match &self.blob.azure.access_key_file {
            Some(p) => std::fs::read_to_string(p)
                .map(|s| Some(Secret::new(s.trim())))
                .map_err(|e| ConfigError::Invalid {
                    key: "blob.azure.access_key_file",
                    problem: format!("{}: {e}", p.display()),
                }),
            None => Ok(None),
        }
    }
}

/// The documented example configuration (also at `insights.example.toml`).
pub const EXAMPLE: &str = include_str!("../../../insights.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment provider that sees no variable, so tests do not
    /// depend on the caller's environment.
    fn no_env() -> Env {
        Env::prefixed("INSIGHTS_UNIT_TEST_NOTHING_")
    }

    #[test]
    fn defaults_need_no_file() {
        let s = Settings::load_from(None, &Overrides::default(), no_env())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert!(s.database_url().expose().starts_with("sqlite://./data"));
    }

    #[test]
    fn example_config_parses() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("insights.toml");
        std::fs::write(&p, EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
        Settings::load_from(Some(&p), &Overrides::default(), no_env())
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn bad_value_names_the_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("insights.toml");
        std::fs::write(&p, "[database]\nmax_connections = \"many\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let err = Settings::load_from(Some(&p), &Overrides::default(), no_env())
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("database.max_connections"), "{err}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("insights.toml");
        std::fs::write(&p, "[blob]\nbackedn = \"local\"\n").unwrap_or_else(|e| panic!("{e}"));
        let err = Settings::load_from(Some(&p), &Overrides::default(), no_env())
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("backedn"));
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail fixes the closure's error type"
    )]
    fn env_and_flags_override_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "insights.toml",
                "listen = \"127.0.0.1:9000\"\n[log]\nformat = \"text\"\n",
            )?;
            jail.set_env("INSIGHTS_LOG__FORMAT", "json");
            jail.set_env("INSIGHTS_TEST_UNRELATED", "ignored");
            let s = Settings::load(Some(Path::new("insights.toml")), &Overrides::default())
                .map_err(|e| e.to_string())?;
            assert_eq!(s.log.format, LogFormat::Json);
            assert_eq!(s.listen.to_string(), "127.0.0.1:9000");
            let o = Overrides {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 7000))),
                data_dir: Some("/tmp/x".into()),
            };
            let s =
                Settings::load(Some(Path::new("insights.toml")), &o).map_err(|e| e.to_string())?;
            assert_eq!(s.listen.to_string(), "127.0.0.1:7000");
            assert_eq!(s.key_file(), PathBuf::from("/tmp/x/keys/kek.json"));
            Ok(())
        });
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
