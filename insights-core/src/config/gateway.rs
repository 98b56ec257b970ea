//! Settings of the Teams bot gateway (`[gateway]`).
//!
//! The gateway is the webhook Microsoft Graph Communications calls for a
//! policy-based (compliance) recording bot, and the Graph client that
//! answers those calls and reports the recording status. Every URL is
//! configuration, so tests and the simulator point it at local stand-ins.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

/// Where Graph Communications publishes the keys that sign its callbacks.
pub const DEFAULT_OPENID_CONFIGURATION_URL: &str =
    "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration";
/// Issuers Graph Communications puts in callback tokens.
pub const DEFAULT_ISSUERS: &[&str] = &[
    "https://graph.microsoft.com",
    "https://api.botframework.com",
];
/// Microsoft Graph.
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.microsoft.com";
/// Entra ID v2 token endpoint; `{tenant}` becomes the call's Entra tenant.
pub const DEFAULT_TOKEN_ENDPOINT: &str =
    "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
/// The audience of simulator tokens when no bot app id is configured.
pub const LOCAL_AUDIENCE: &str = "insights-local-bot";

/// `[gateway]`: the compliance-recording bot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// The bot's Entra application (client) id. Callback tokens must be
    /// issued for it (`aud`). Unset: only simulator tokens (audience
    /// [`LOCAL_AUDIENCE`]) can be accepted.
    pub app_id: Option<String>,
    /// Client id for the client-credentials flow (default: `app_id`).
    pub client_id: Option<String>,
    /// Client secret for the client-credentials flow.
    pub client_secret: Option<Secret>,
    /// File holding the client secret (alternative to `client_secret`).
    pub client_secret_file: Option<PathBuf>,
    /// OpenID configuration whose `jwks_uri` lists the callback signing keys.
    pub openid_configuration_url: String,
    /// Accepted `iss` values of callback tokens.
    pub issuers: Vec<String>,
    /// Clock skew allowed on `exp`/`nbf`, seconds.
    pub token_leeway_secs: u64,
    /// Signing keys are refetched at least this often (key rotation), seconds.
    pub jwks_refresh_secs: u64,
    /// A token with an unknown key id refetches the keys at most this often,
    /// seconds.
    pub jwks_min_refresh_secs: u64,
    /// Microsoft Graph base URL (without `/v1.0`).
    pub graph_base_url: String,
    /// OAuth 2.0 token endpoint; `{tenant}` is replaced by the call's Entra
    /// tenant id (app-only tokens are per customer tenant).
    pub token_endpoint: String,
    /// Public HTTPS URL of this gateway's callback route (`…/api/calls`),
    /// sent as `callbackUri` when answering. Unset: Graph uses the bot
    /// registration's calling webhook.
    pub callback_url: Option<String>,
    /// The whole answer, retries included, must be sent within this many
    /// milliseconds of the invite (Microsoft allows 5 s for compliance calls).
    pub answer_timeout_ms: u64,
    /// Timeout of any other Graph or token request, milliseconds.
    pub request_timeout_ms: u64,
    /// Attempts per Graph request on 429/5xx/transport errors.
    pub max_attempts: u32,
    /// `participantCapacity` in the answer: how many policy-recorded users
    /// one call instance takes (later ones arrive as participant-joining
    /// notifications instead of new invites).
    pub participant_capacity: u32,
    /// The app-hosted media configuration blob for the answer, when it is
    /// static. The media adapter normally provides one per call.
    pub media_config_blob: Option<String>,
    /// Trust callback tokens signed with the local simulator key (kept in
    /// the data dir), for `insights simulate-call`, tests and demos.
    /// Default false: anyone who can read the data dir could otherwise
    /// open calls. A configuration error together with `app_id` (a
    /// gateway registered with Microsoft never trusts the simulator).
    pub trust_simulator_key: bool,
    /// Simulator signing key file (default
    /// `<data_dir>/keys/simulator-signing.pem`).
    pub simulator_key_file: Option<PathBuf>,
    /// Bearer token the media adapter presents on the media WebSocket
    /// (`/media/v1/calls/{call_id}`). Unset (and no `media_token_file`):
    /// a random token is generated into
    /// `<data_dir>/keys/media-adapter.token` (mode 0600) on first start.
    pub media_token: Option<Secret>,
    /// File holding the media adapter token (alternative to `media_token`).
    pub media_token_file: Option<PathBuf>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            app_id: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            openid_configuration_url: DEFAULT_OPENID_CONFIGURATION_URL.to_owned(),
            issuers: DEFAULT_ISSUERS.iter().map(|s| (*s).to_owned()).collect(),
            token_leeway_secs: 60,
            jwks_refresh_secs: 3600,
            jwks_min_refresh_secs: 30,
            graph_base_url: DEFAULT_GRAPH_BASE_URL.to_owned(),
            token_endpoint: DEFAULT_TOKEN_ENDPOINT.to_owned(),
            callback_url: None,
            answer_timeout_ms: 4000,
            request_timeout_ms: 10_000,
            max_attempts: 4,
            participant_capacity: 10,
            media_config_blob: None,
            trust_simulator_key: false,
            simulator_key_file: None,
            media_token: None,
            media_token_file: None,
        }
    }
}

impl GatewaySettings {
    /// The audience callback tokens must carry: the bot app id, or
    /// [`LOCAL_AUDIENCE`] when none is configured.
    pub fn audience(&self) -> &str {
        self.app_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(LOCAL_AUDIENCE)
    }

    /// The client id of the client-credentials flow.
    pub fn effective_client_id(&self) -> Option<&str> {
        self.client_id
            .as_deref()
            .or(self.app_id.as_deref())
            .filter(|s| !s.is_empty())
    }

    /// The client secret, read from `client_secret_file` if given.
    pub fn client_secret(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(s) = &self.client_secret {
            return Ok(Some(s.clone()));
        }
        match &self.client_secret_file {
            Some(p) => std::fs::read_to_string(p)
                .map(|s| Some(Secret::new(s.trim())))
                .map_err(|e| ConfigError::Invalid {
                    key: "gateway.client_secret_file",
                    problem: format!("{}: {e}", p.display()),
                }),
            None => Ok(None),
        }
    }

    /// Path of the simulator signing key.
    pub fn simulator_key_path(&self, data_dir: &Path) -> PathBuf {
        self.simulator_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("keys").join("simulator-signing.pem"))
    }

    /// Where the generated media adapter token lives when neither
    /// `media_token` nor `media_token_file` is set.
    pub fn default_media_token_path(data_dir: &Path) -> PathBuf {
        data_dir.join("keys").join("media-adapter.token")
    }

    /// The media adapter token: `media_token`, else the content of
    /// `media_token_file`, else the generated token in the data dir
    /// (created with 32 random bytes, hex, mode 0600, if missing).
    pub fn media_token(&self, data_dir: &Path) -> Result<Secret, ConfigError> {
        if let Some(s) = &self.media_token {
            return Ok(s.clone());
        }
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid { key, problem };
        if let Some(p) = &self.media_token_file {
            let s = std::fs::read_to_string(p).map_err(|e| {
                invalid("gateway.media_token_file", format!("{}: {e}", p.display()))
            })?;
            let s = s.trim();
            if s.is_empty() {
                return Err(invalid(
                    "gateway.media_token_file",
                    format!("{} is empty", p.display()),
                ));
            }
            return Ok(Secret::new(s));
        }
        let path = Self::default_media_token_path(data_dir);
        let key = "gateway.media_token_file";
        match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => return Ok(Secret::new(s.trim())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(invalid(key, format!("{}: {e}", path.display()))),
        }
        let mut raw = [0u8; 32];
        crate::crypto::keys::fill_random(&mut raw);
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, &token)
            .map_err(|e| invalid(key, format!("{}: {e}", path.display())))?;
        Ok(Secret::new(token))
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        for (key, url) in [
            (
                "gateway.openid_configuration_url",
                &self.openid_configuration_url,
            ),
            ("gateway.graph_base_url", &self.graph_base_url),
            ("gateway.token_endpoint", &self.token_endpoint),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(invalid(key, "must be an http(s) URL"));
            }
        }
        if let Some(cb) = &self.callback_url
            && !(cb.starts_with("https://") || cb.starts_with("http://"))
        {
            return Err(invalid("gateway.callback_url", "must be an http(s) URL"));
        }
        if self.trust_simulator_key && self.app_id.as_deref().is_some_and(|a| !a.trim().is_empty())
        {
            return Err(invalid(
                "gateway.trust_simulator_key",
                "must be false when gateway.app_id is set (a gateway registered with Microsoft never trusts the local simulator key)",
            ));
        }
        if self.issuers.iter().all(|i| i.trim().is_empty()) {
            return Err(invalid("gateway.issuers", "must name at least one issuer"));
        }
        if !(500..=5000).contains(&self.answer_timeout_ms) {
            return Err(invalid(
                "gateway.answer_timeout_ms",
                "must be between 500 and 5000 (Microsoft allows 5 s)",
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(invalid("gateway.request_timeout_ms", "must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(invalid("gateway.max_attempts", "must be at least 1"));
        }
        if self.participant_capacity == 0 {
            return Err(invalid(
                "gateway.participant_capacity",
                "must be at least 1",
            ));
        }
        if self.jwks_refresh_secs == 0 {
            return Err(invalid("gateway.jwks_refresh_secs", "must be at least 1"));
        }
        if self.media_token.is_some() && self.media_token_file.is_some() {
            return Err(invalid(
                "gateway.media_token",
                "give media_token or media_token_file, not both",
            ));
        }
        if self
            .media_token
            .as_ref()
            .is_some_and(|t| t.expose().trim().len() < 16)
        {
            return Err(invalid(
                "gateway.media_token",
                "must be at least 16 characters",
            ));
        }
        if self.client_secret.is_some() && self.client_secret_file.is_some() {
            return Err(invalid(
                "gateway.client_secret",
                "give client_secret or client_secret_file, not both",
            ));
        }
        Ok(())
    }
}

/// Writes `content` to a file readable by the owner only, crash-safely
/// ([`crate::fsio::write_atomic`]: temporary file, fsync, rename, fsync of
/// the directory), so a crash leaves no half-written token. The keys
/// directory is created with mode 0700, as the simulator key's is.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        crate::fsio::create_dir_private(dir)?;
    }
    crate::fsio::write_atomic(path, content.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_do_not_trust_the_simulator() {
        let g = GatewaySettings::default();
        g.validate().unwrap_or_else(|e| panic!("{e}"));
        assert!(!g.trust_simulator_key);
        assert_eq!(g.audience(), LOCAL_AUDIENCE);
        assert_eq!(
            g.simulator_key_path(Path::new("/d")),
            PathBuf::from("/d/keys/simulator-signing.pem")
        );
    }

    #[test]
    fn trusting_the_simulator_with_an_app_id_is_refused() {
        let g = GatewaySettings {
            app_id: Some("abc".into()),
            trust_simulator_key: true,
            ..GatewaySettings::default()
        };
        let e = g
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("gateway.trust_simulator_key"), "{e}");
        let g = GatewaySettings {
            trust_simulator_key: true,
            ..GatewaySettings::default()
        };
        g.validate().unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn app_id_is_the_audience_and_default_client_id() {
        let g = GatewaySettings {
            app_id: Some("abc".into()),
            ..GatewaySettings::default()
        };
        assert_eq!(g.audience(), "abc");
        assert_eq!(g.effective_client_id(), Some("abc"));
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("secret");
        std::fs::write(&p, "s3cr3t\n").unwrap_or_else(|e| panic!("{e}"));
        let g = GatewaySettings {
            client_secret_file: Some(p),
            ..GatewaySettings::default()
        };
        let s = g.client_secret().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.as_ref().map(Secret::expose), Some("s3cr3t"));
        assert!(!format!("{g:?}").contains("s3cr3t"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let g = GatewaySettings {
            answer_timeout_ms: 9000,
            ..GatewaySettings::default()
        };
        let e = g
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("gateway.answer_timeout_ms"), "{e}");
        let g = GatewaySettings {
            graph_base_url: "graph.microsoft.com".into(),
            ..GatewaySettings::default()
        };
        let e = g
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("gateway.graph_base_url"), "{e}");
    }
}
