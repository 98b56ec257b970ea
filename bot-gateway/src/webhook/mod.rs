//! The callback endpoint of the compliance-recording bot.
//!
//! Register `https://<public host>/api/calls` ([`CALLBACK_PATH`]) as the
//! bot's calling webhook in its Azure Bot registration (Teams channel →
//! calling); set the same URL as `gateway.callback_url` so answers name it.
//!
//! `POST /api/calls`:
//!
//! 1. `Authorization: Bearer <jwt>` is validated ([`crate::auth`]) before
//!    a byte of the body is read (the handler takes the raw payload, not a
//!    buffered body): missing or invalid → **401** (problem+json with a
//!    stable code, `WWW-Authenticate: Bearer`), nothing changes and nobody
//!    unauthenticated can make the gateway buffer a body; signing keys
//!    unreachable and none cached → **503**.
//! 2. The body is then read, at most 4 MiB (more → **413**), and must be a
//!    `commsNotifications` batch; a malformed batch → **400**, nothing
//!    changes.
//! 3. The batch is applied ([`crate::calls`]). **202** with no body; for a
//!    participant-joining notification **200** with the
//!    `participantJoiningResponse`. A store failure → **503**, so Graph
//!    retries the batch (applying it is idempotent).
//!
//! Mount it with [`mount`] (state included) or, with the state already in
//! the app data, with [`configure`].

mod errors;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use insights_core::config::{ConfigError, GatewaySettings};
use insights_core::store::MetadataStore;
use tokio::time::Instant;

use crate::auth::{SimulatorKey, SimulatorKeyError, TokenValidator, ValidatorSettings};
use crate::calls::events::decode_event;
use crate::calls::{
    AdmitAll, CallAdmission, CallRegistry, MediaConfigSource, RegistryConfig, StaticMediaConfig,
};
use crate::graph::model::CommsNotifications;
use crate::graph::{AppTokenSource, CallControl, GraphClient, GraphError, SimulatedCallControl};
pub use errors::WebhookError;

/// The route Graph Communications posts notifications to.
pub const CALLBACK_PATH: &str = "/api/calls";

/// Largest accepted notification batch (large meeting rosters).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Everything the webhook needs; share it as `web::Data<GatewayState>`.
pub struct GatewayState {
    /// Live calls; the media side calls `begin_recording` and `call_info`.
    pub registry: Arc<CallRegistry>,
    /// Callback token validation.
    pub validator: Arc<TokenValidator>,
    /// The in-process call control of simulator calls (inspectable).
    pub simulated: Arc<SimulatedCallControl>,
}

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    SimulatorKey(#[from] SimulatorKeyError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Builds a [`GatewayState`] from settings, with hooks for the media side.
pub struct GatewayBuilder {
    settings: GatewaySettings,
    data_dir: std::path::PathBuf,
    store: Arc<dyn MetadataStore>,
    media: Option<Arc<dyn MediaConfigSource>>,
    admission: Arc<dyn CallAdmission>,
    graph: Option<Arc<dyn CallControl>>,
}

impl GatewayState {
    /// Starts building the gateway from `[gateway]` and the data dir (where
    /// the simulator key lives).
    pub fn builder(
        settings: &GatewaySettings,
        data_dir: &Path,
        store: Arc<dyn MetadataStore>,
    ) -> GatewayBuilder {
        GatewayBuilder {
            settings: settings.clone(),
            data_dir: data_dir.to_owned(),
            store,
            media: None,
            admission: Arc::new(AdmitAll),
            graph: None,
        }
    }
}

impl GatewayBuilder {
    /// Where answers get their media configuration (default: the static
    /// `gateway.media_config_blob`, empty if unset).
    pub fn media_config(mut self, source: Arc<dyn MediaConfigSource>) -> Self {
        self.media = Some(source);
        self
    }

    /// Admission control for new calls (default: admit all).
    pub fn admission(mut self, admission: Arc<dyn CallAdmission>) -> Self {
        self.admission = admission;
        self
    }

    /// Replaces the Graph client (default: [`GraphClient`] from settings).
    pub fn graph_control(mut self, control: Arc<dyn CallControl>) -> Self {
        self.graph = Some(control);
        self
    }

    /// Validates the settings, loads (or creates) the simulator key when it
    /// is trusted, and builds the state. Fetches nothing yet: signing keys
    /// are fetched with the first callback.
    pub fn build(self) -> Result<GatewayState, GatewayError> {
        let g = &self.settings;
        g.validate()?;
        let request_timeout = Duration::from_millis(g.request_timeout_ms);
        // Configured over HTTPS (settings require it unless
        // `allow_insecure_http`): then no redirect or discovered URL may
        // lead to plain HTTP.
        let https_only = [
            &g.openid_configuration_url,
            &g.graph_base_url,
            &g.token_endpoint,
        ]
        .iter()
        .all(|u| u.starts_with("https://"));
        let http = insights_http::ClientOptions::new(Duration::from_secs(5))
            .follow_redirects()
            .https_only(https_only)
            .build()
            .map_err(|e| GatewayError::Http(e.to_string()))?;
        let simulator_key = if g.trust_simulator_key {
            Some(SimulatorKey::load_or_create(
                &g.simulator_key_path(&self.data_dir),
            )?)
        } else {
            None
        };
        let validator = TokenValidator::new(
            http.clone(),
            ValidatorSettings {
                audience: g.audience().to_owned(),
                issuers: g
                    .issuers
                    .iter()
                    .filter(|i| !i.trim().is_empty())
                    .cloned()
                    .collect(),
                leeway: Duration::from_secs(g.token_leeway_secs),
                openid_configuration_url: g.openid_configuration_url.clone(),
                jwks_refresh: Duration::from_secs(g.jwks_refresh_secs),
                jwks_min_refresh: Duration::from_secs(g.jwks_min_refresh_secs),
                request_timeout,
            },
            simulator_key.as_ref(),
        )?;
        let graph: Arc<dyn CallControl> = match self.graph {
            Some(g) => g,
            None => {
                let tokens = AppTokenSource::new(
                    http.clone(),
                    g.token_endpoint.clone(),
                    g.effective_client_id().map(str::to_owned),
                    g.client_secret()?,
                    g.max_attempts,
                    request_timeout,
                );
                Arc::new(GraphClient::new(
                    http,
                    &g.graph_base_url,
                    tokens,
                    g.max_attempts,
                    request_timeout,
                )?)
            }
        };
        let simulated = Arc::new(SimulatedCallControl::default());
        let media = self.media.unwrap_or_else(|| {
            Arc::new(StaticMediaConfig(
                g.media_config_blob.clone().unwrap_or_default(),
            ))
        });
        let registry = CallRegistry::new(
            RegistryConfig {
                callback_url: g.callback_url.clone(),
                participant_capacity: g.participant_capacity,
                answer_timeout: Duration::from_millis(g.answer_timeout_ms),
                status_timeout: request_timeout,
            },
            self.store,
            graph,
            simulated.clone(),
            media,
            self.admission,
        );
        tracing::info!(
            simulator_trusted = validator.trusts_simulator(),
            "bot gateway ready at {CALLBACK_PATH}"
        );
        Ok(GatewayState {
            registry: Arc::new(registry),
            validator: Arc::new(validator),
            simulated,
        })
    }
}

/// Registers the callback route; `web::Data<GatewayState>` must be in the
/// app data.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(CALLBACK_PATH).route(web::post().to(callback)));
}

/// Registers the state and the callback route, e.g.
/// `App::new().configure(bot_gateway::webhook::mount(state.clone()))`.
pub fn mount(state: web::Data<GatewayState>) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        cfg.app_data(state.clone());
        configure(cfg);
    }
}

#[tracing::instrument(name = "graph_callback", skip_all)]
async fn callback(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, WebhookError> {
    let received = Instant::now();
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = state
        .validator
        .validate_header(authorization)
        .await
        .map_err(|e| {
            metrics::counter!("insights_gateway_auth_failures_total", "code" => e.code())
                .increment(1);
            tracing::warn!(code = e.code(), "callback refused: {e}");
            WebhookError::from(e)
        })?;
    // Only now, with the caller authenticated, is the body read.
    let body = read_body(&req, payload).await?;
    let batch: CommsNotifications = serde_json::from_slice(&body).map_err(|e| {
        tracing::warn!(
            line = e.line(),
            column = e.column(),
            "malformed notification batch"
        );
        WebhookError::BadRequest("the body is not a commsNotifications batch".into())
    })?;
    let events = batch
        .value
        .into_iter()
        .map(decode_event)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|problem| {
            tracing::warn!(%problem, "malformed notification");
            WebhookError::BadRequest(problem)
        })?;
    let outcome = state
        .registry
        .apply(&token, events, received)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot apply notifications; Graph will retry");
            WebhookError::Unavailable("store-unavailable")
        })?;
    state.registry.spawn_answers(outcome.answers);
    Ok(match outcome.joining {
        Some(r) => HttpResponse::Ok().json(r),
        None => HttpResponse::Accepted().finish(),
    })
}

/// Reads the body of an authenticated callback, at most [`MAX_BODY`] bytes.
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<Vec<u8>, WebhookError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(WebhookError::TooLarge(MAX_BODY));
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(MAX_BODY));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::warn!(error = %e, "cannot read the notification batch");
            WebhookError::BadRequest("the body could not be read".into())
        })?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(WebhookError::TooLarge(MAX_BODY));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
