//! Test harness of the webhook tests: a real gateway on 127.0.0.1:0 over
//! the shared test world (a fresh SQLite store in a temp dir), talking to
//! the shared Microsoft stand-in.
// Each test binary uses a different part of the support code.
#![allow(dead_code)]

pub mod notify;
pub mod standin;
pub mod tokens;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use bot_gateway::webhook::{CALLBACK_PATH, GatewayState, mount};
use insights_core::config::{GatewaySettings, Secret};
use insights_core::domain::{DirectoryUser, NewTenant, Recording, RecordingQuery, Tenant, UserId};
use insights_core::store::MetadataStore;
use serde_json::Value;

use notify::Person;
use standin::{CLIENT_ID, CLIENT_SECRET, StandIn};
use tokens::TestKey;

/// The bot's app id: the audience of callback tokens.
pub const APP_ID: &str = CLIENT_ID;
pub const ISSUER: &str = "https://api.botframework.com";
pub const MEDIA_BLOB: &str = "<media session configuration blob>";
pub const CALLBACK_URL: &str = "https://recorder.example.com/api/calls";

pub struct Harness {
    pub ms: StandIn,
    pub store: Arc<dyn MetadataStore>,
    pub state: web::Data<GatewayState>,
    pub url: String,
    pub key: TestKey,
    pub tenant: Tenant,
    /// The tenant's Entra id.
    pub tid: String,
    pub data_dir: tempfile::TempDir,
    pub settings: GatewaySettings,
    http: reqwest::Client,
    handle: ServerHandle,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(|_| {}).await
    }

    /// Starts with settings adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut GatewaySettings)) -> Harness {
        let ms = StandIn::start().await;
        let key = TestKey::generate("key-1");
        ms.publish(vec![key.jwk()]);
        let insights_tests::world::World {
            dir: data_dir,
            store,
            ..
        } = insights_tests::world::World::sqlite().await;
        let tid = uuid::Uuid::new_v4();
        let tenant = store
            .create_tenant(NewTenant {
                name: "contoso".into(),
                directory_tenant_id: Some(tid),
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut settings = GatewaySettings {
            app_id: Some(APP_ID.into()),
            client_secret: Some(Secret::new(CLIENT_SECRET)),
            openid_configuration_url: ms.openid_url(),
            graph_base_url: ms.base.clone(),
            token_endpoint: ms.token_endpoint(),
            callback_url: Some(CALLBACK_URL.into()),
            media_config_blob: Some(MEDIA_BLOB.into()),
            participant_capacity: 5,
            ..GatewaySettings::default()
        };
        tweak(&mut settings);
        let (state, url, handle) = serve(&settings, data_dir.path(), store.clone());
        Harness {
            ms,
            store,
            state,
            url,
            key,
            tenant,
            tid: tid.to_string(),
            data_dir,
            settings,
            http: reqwest::Client::new(),
            handle,
        }
    }

    /// Stops the gateway and starts a new one (a new process, as far as
    /// the gateway knows) over the same store, data dir and stand-in.
    pub async fn restart_gateway(&mut self) {
        self.handle.stop(true).await;
        let (state, url, handle) = serve(&self.settings, self.data_dir.path(), self.store.clone());
        self.state = state;
        self.url = url;
        self.handle = handle;
    }

    /// A valid Microsoft callback token.
    pub fn token(&self) -> String {
        self.key.token(APP_ID, ISSUER, &self.tid)
    }

    /// Posts a raw body with an optional `Authorization` value.
    pub async fn post_raw(&self, authorization: Option<&str>, body: Vec<u8>) -> reqwest::Response {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        req.send().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Posts notifications with a valid token; returns status and body.
    pub async fn notify(&self, items: Vec<Value>) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token());
        self.notify_with(&auth, items).await
    }

    pub async fn notify_with(&self, authorization: &str, items: Vec<Value>) -> (u16, Value) {
        let body = notify::batch(items).to_string().into_bytes();
        let res = self.post_raw(Some(authorization), body).await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A directory user of the tenant for `p`.
    pub async fn add_directory_user(&self, p: &Person) -> UserId {
        let id = UserId::new();
        let mut parts = p.name.split(' ');
        let user = DirectoryUser {
            id,
            tenant_id: self.tenant.id,
            directory_object_id: Some(p.oid.clone()),
            first_name: parts.next().map(str::to_owned),
            last_name: parts.next().map(str::to_owned),
            display_name: Some(p.name.clone()),
            alias: None,
            email: Some(p.upn.clone()),
            upn: Some(p.upn.clone()),
            phone_numbers: Vec::new(),
            sip_uri: Some(format!("sip:{}", p.upn)),
            tel_uri: None,
            groups: Vec::new(),
            active: true,
            updated_at: insights_core::domain::now(),
        };
        self.store
            .upsert_directory_user(self.tenant.id, &user)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        id
    }

    /// Every recording of the tenant, with participants.
    pub async fn recordings(&self) -> Vec<Recording> {
        let page = self
            .store
            .search_recordings(
                self.tenant.id,
                &RecordingQuery {
                    limit: 500,
                    ..RecordingQuery::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        for item in page.items {
            out.push(
                self.store
                    .get_recording(self.tenant.id, item.recording.id)
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        out
    }

    /// The one recording of a call.
    pub async fn recording(&self, call_id: &str) -> Recording {
        self.store
            .recording_by_external_call_id(self.tenant.id, call_id)
            .await
            .unwrap_or_else(|e| panic!("recording of {call_id}: {e}"))
    }

    /// A comparable picture of everything the webhook may write.
    pub async fn snapshot(&self) -> String {
        serde_json::to_string(&self.recordings().await).unwrap_or_default()
    }

    /// Waits for a condition on the gateway's view of a call.
    pub async fn wait_until<F, Fut>(&self, what: &str, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !f().await {
            assert!(
                std::time::Instant::now() < until,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the call is answered (as the gateway sees it).
    pub async fn wait_answered(&self, call_id: &str) {
        let reg = self.state.registry.clone();
        let id = call_id.to_owned();
        self.wait_until("the answer", || {
            let reg = reg.clone();
            let id = id.clone();
            async move { reg.call_info(&id).await.is_some_and(|c| c.answered) }
        })
        .await;
    }
}

/// Builds a gateway and serves it on 127.0.0.1:0.
fn serve(
    settings: &GatewaySettings,
    data_dir: &std::path::Path,
    store: Arc<dyn MetadataStore>,
) -> (web::Data<GatewayState>, String, ServerHandle) {
    let state = web::Data::new(
        GatewayState::builder(settings, data_dir, store)
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "http://{}{CALLBACK_PATH}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let mounted = mount(state.clone());
    let server = HttpServer::new(move || App::new().configure(mounted.clone()))
        .workers(2)
        .listen(listener)
        .unwrap_or_else(|e| panic!("{e}"))
        .disable_signals()
        .run();
    let handle = server.handle();
    tokio::spawn(server);
    (state, url, handle)
}

impl Drop for Harness {
    fn drop(&mut self) {
        let h = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { h.stop(false).await });
        }
    }
}
