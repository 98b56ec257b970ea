//! Is a directory user still allowed in? One Microsoft Graph read,
//! `GET /users/{id}?$select=id,accountEnabled`, with the directory
//! app's client-credentials token (cached per directory tenant by
//! `insights_http::entra`): the API asks it for an OIDC browser session
//! whose user was last confirmed active longer ago than
//! `[auth.oidc] active_check_max_age_secs`.
//!
//! The answer is one of three: enabled, disabled (`accountEnabled:
//! false`) or gone (`404`). Anything else (no token, throttling, a 5xx,
//! no answer, a body without `accountEnabled`) is an error, and the
//! caller fails closed. Nothing here logs a URL, an id, a token or a body.

use std::time::Duration;

use insights_core::config::DirectorySettings;
use insights_http::entra::{ClientCredentials, TokenSource};
use insights_http::{ClientOptions, TransportKind};
use reqwest::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use super::{DirectoryError, GraphConfig};

/// What Graph says about a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserState {
    /// The account exists and may sign in.
    Enabled,
    /// `accountEnabled` is false.
    Disabled,
    /// The user no longer exists (`404`).
    Gone,
}

#[derive(Deserialize)]
struct UserAnswer {
    #[serde(rename = "accountEnabled")]
    account_enabled: Option<bool>,
}

/// Reads users' `accountEnabled` from Graph; one per process.
pub struct ActiveCheck {
    http: reqwest::Client,
    tokens: TokenSource,
    graph_base_url: String,
}

impl std::fmt::Debug for ActiveCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveCheck")
            .field("graph_base_url", &self.graph_base_url)
            .finish_non_exhaustive()
    }
}

impl ActiveCheck {
    /// From `[directory]` (the client secret from the environment
    /// variable it names); `NotConfigured` without `client_id`.
    pub fn from_settings(s: &DirectorySettings) -> Result<Self, DirectoryError> {
        Self::new(GraphConfig::from_settings(s)?)
    }

    /// With an explicit configuration. Each request (token or user)
    /// takes at most `cfg.request_timeout`.
    pub fn new(cfg: GraphConfig) -> Result<Self, DirectoryError> {
        url::Url::parse(&cfg.graph_base_url)
            .map_err(|_| DirectoryError::Config("directory.graph_base_url is not a URL".into()))?;
        let http = ClientOptions::new(Duration::from_secs(10))
            .timeout(cfg.request_timeout)
            .build()
            .map_err(|e| DirectoryError::Config(format!("cannot build the HTTP client: {e}")))?;
        let tokens = TokenSource::new(
            http.clone(),
            ClientCredentials {
                endpoint: cfg.token_url.clone(),
                client_id: cfg.client_id.clone(),
                client_secret: cfg.client_secret.clone(),
                scope: cfg.scope.clone(),
            },
            cfg.request_timeout,
        )
        .cached();
        Ok(Self {
            http,
            tokens,
            graph_base_url: cfg.graph_base_url,
        })
    }

    /// Whether the user `object_id` of directory tenant `tid` is enabled,
    /// disabled or gone. A token Graph refuses (`401`) is dropped from the
    /// cache and the read tried once more with a fresh one.
    pub async fn user_state(
        &self,
        tid: Uuid,
        object_id: Uuid,
    ) -> Result<UserState, DirectoryError> {
        let tenant = tid.to_string();
        let url = format!(
            "{}/users/{}?$select=id,accountEnabled",
            self.graph_base_url,
            object_id.hyphenated()
        );
        for attempt in 0..2 {
            let token = self
                .tokens
                .token(&tenant, None)
                .await
                .map_err(|e| DirectoryError::Token(token_error(&e)))?;
            let res = self
                .http
                .get(&url)
                .bearer_auth(token.as_str())
                .header("accept", "application/json")
                .send()
                .await
                .map_err(|e| {
                    DirectoryError::Network(format!("Graph: {}", TransportKind::of(&e).as_str()))
                })?;
            match res.status() {
                StatusCode::NOT_FOUND => return Ok(UserState::Gone),
                StatusCode::UNAUTHORIZED if attempt == 0 => {
                    self.tokens.invalidate(&tenant).await;
                    continue;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(DirectoryError::Refused(res.status().as_u16()));
                }
                s if s.is_success() => {
                    let bytes = res.bytes().await.map_err(|e| {
                        DirectoryError::Network(format!(
                            "Graph: {}",
                            TransportKind::of(&e).as_str()
                        ))
                    })?;
                    let user: UserAnswer = serde_json::from_slice(&bytes).map_err(|_| {
                        DirectoryError::Protocol("a Graph user is not a user resource".into())
                    })?;
                    return match user.account_enabled {
                        Some(true) => Ok(UserState::Enabled),
                        Some(false) => Ok(UserState::Disabled),
                        None => Err(DirectoryError::Protocol(
                            "a Graph user without accountEnabled".into(),
                        )),
                    };
                }
                s => {
                    return Err(DirectoryError::Protocol(format!(
                        "Graph answered {}",
                        s.as_u16()
                    )));
                }
            }
        }
        Err(DirectoryError::Refused(StatusCode::UNAUTHORIZED.as_u16()))
    }
}

/// A token failure without anything secret (status and OAuth code only).
fn token_error(e: &insights_http::entra::TokenError) -> String {
    use insights_http::entra::{Failure, TokenError};
    match e {
        TokenError::Rejected { status, code }
        | TokenError::Exhausted {
            last: Failure::Status { status, code },
            ..
        } => format!("the token endpoint answered {status} ({code})"),
        TokenError::Invalid(_) => "the token endpoint's answer is not a token".into(),
        TokenError::Body(t)
        | TokenError::Exhausted {
            last: Failure::Transport(t),
            ..
        } => format!("token endpoint: {}", t.kind().as_str()),
        TokenError::Exhausted {
            last: Failure::Deadline,
            ..
        } => "token endpoint: deadline reached".into(),
    }
}
