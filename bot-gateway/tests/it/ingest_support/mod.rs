//! Harness of the ingest tests: the real webhook and media route on
//! 127.0.0.1:0 over SQLite in a temp dir, a real spool, a Graph probe that
//! records every request and what the spool held at that moment, and a
//! WebSocket client playing the media adapter.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use async_trait::async_trait;
use bot_gateway::graph::model::{AnswerRequest, RecordingStatusReport};
use bot_gateway::graph::{CallContext, CallControl, GraphError};
use bot_gateway::ingest::{IngestConfig, IngestState, SpoolAdmission};
use bot_gateway::spool::{Spool, SpoolConfig};
use bot_gateway::webhook::{CALLBACK_PATH, GatewayState};
use futures::{SinkExt, StreamExt};
use insights_core::blob::BlobStore;
use insights_core::config::{GatewaySettings, Secret};
use insights_core::crypto::KeyProvider;
use insights_core::domain::{NewTenant, RecordingId, Tenant};
use insights_core::store::MetadataStore;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::notify::{self, Invite, Person};
use crate::support::standin::{CLIENT_ID, CLIENT_SECRET, StandIn};
use crate::support::tokens::TestKey;

pub const MEDIA_TOKEN: &str = "test-media-adapter-token-0123456789";
pub const ISSUER: &str = "https://api.botframework.com";

/// One Graph request and what the spool held when it arrived.
#[derive(Clone, Debug)]
pub struct ProbeCall {
    pub call_id: String,
    pub status: Option<RecordingStatusReport>,
    /// (recording, media bytes) of every spool entry at that moment.
    pub spool: Vec<(RecordingId, u64)>,
}

/// Graph call control that succeeds and records.
pub struct Probe {
    spool: Spool,
    pub calls: Mutex<Vec<ProbeCall>>,
}

#[async_trait]
impl CallControl for Probe {
    async fn answer(
        &self,
        call: &CallContext,
        _body: &AnswerRequest,
        _deadline: tokio::time::Instant,
    ) -> Result<(), GraphError> {
        self.calls.lock().unwrap().push(ProbeCall {
            call_id: call.call_id.clone(),
            status: None,
            spool: Vec::new(),
        });
        Ok(())
    }

    async fn update_recording_status(
        &self,
        call: &CallContext,
        status: RecordingStatusReport,
        _deadline: tokio::time::Instant,
    ) -> Result<(), GraphError> {
        let spool = self
            .spool
            .entries()
            .iter()
            .map(|e| (e.journal.recording_id, e.media_bytes))
            .collect();
        self.calls.lock().unwrap().push(ProbeCall {
            call_id: call.call_id.clone(),
            status: Some(status),
            spool,
        });
        Ok(())
    }
}

pub struct World {
    pub ms: StandIn,
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn MetadataStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub keys: Arc<dyn KeyProvider>,
    pub spool: Spool,
    pub probe: Arc<Probe>,
    pub gateway: web::Data<GatewayState>,
    pub tenant: Tenant,
    pub tid: String,
    pub key: TestKey,
    pub base: String,
    handle: ServerHandle,
    http: reqwest::Client,
}

impl World {
    pub async fn start(tweak: impl FnOnce(&mut SpoolConfig)) -> World {
        Self::start_wrapped(tweak, |s| s).await
    }

    /// As [`World::start`], the gateway's metadata store wrapped by `wrap`
    /// (a test double that injects an interleaving); `store` is the wrapper.
    pub async fn start_wrapped(
        tweak: impl FnOnce(&mut SpoolConfig),
        wrap: impl FnOnce(Arc<dyn MetadataStore>) -> Arc<dyn MetadataStore>,
    ) -> World {
        let ms = StandIn::start().await;
        let key = TestKey::generate("key-1");
        ms.publish(vec![key.jwk()]);
        let insights_tests::world::World {
            dir,
            store,
            blobs,
            keys,
            ..
        } = insights_tests::world::World::sqlite().await;
        let tid = uuid::Uuid::new_v4();
        let tenant = store
            .create_tenant(NewTenant {
                name: "contoso".into(),
                directory_tenant_id: Some(tid),
            })
            .await
            .unwrap();
        let store = wrap(store);
        let keys: Arc<dyn KeyProvider> = keys;
        // As `admin tenant add` does: recording never creates a KEK.
        keys.ensure_kek(tenant.id).await.unwrap();
        let mut cfg = SpoolConfig::in_dir(dir.path().join("spool"));
        cfg.fsync_interval = Duration::from_millis(50);
        tweak(&mut cfg);
        let spool = Spool::open(cfg, keys.clone()).await.unwrap();
        let probe = Arc::new(Probe {
            spool: spool.clone(),
            calls: Mutex::new(Vec::new()),
        });
        let settings = GatewaySettings {
            app_id: Some(CLIENT_ID.into()),
            client_secret: Some(Secret::new(CLIENT_SECRET)),
            openid_configuration_url: ms.openid_url(),
            graph_base_url: ms.base.clone(),
            token_endpoint: ms.token_endpoint(),
            media_config_blob: Some("blob".into()),
            participant_capacity: 5,
            ..GatewaySettings::default()
        };
        let gateway = web::Data::new(
            GatewayState::builder(&settings, dir.path(), store.clone())
                .graph_control(probe.clone())
                .admission(Arc::new(SpoolAdmission::new(spool.clone())))
                .build()
                .unwrap(),
        );
        let ingest = web::Data::new(IngestState::new(
            gateway.registry.clone(),
            spool.clone(),
            store.clone(),
            &Secret::new(MEDIA_TOKEN),
            IngestConfig::default(),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (g, i) = (gateway.clone(), ingest.clone());
        let server = HttpServer::new(move || {
            App::new()
                .configure(bot_gateway::webhook::mount(g.clone()))
                .configure(bot_gateway::ingest::mount(i.clone()))
        })
        .workers(2)
        .listen(listener)
        .unwrap()
        .disable_signals()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        World {
            ms,
            dir,
            store,
            blobs,
            keys,
            spool,
            probe,
            gateway,
            tenant,
            tid: tid.to_string(),
            key,
            base,
            handle,
            http: reqwest::Client::new(),
        }
    }

    pub async fn notify(&self, items: Vec<Value>) -> u16 {
        let token = self.key.token(CLIENT_ID, ISSUER, &self.tid);
        self.http
            .post(format!("http://{}{CALLBACK_PATH}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(notify::batch(items).to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// A two-party call through the webhook: the recorded callee (audio
    /// source 10) and a PSTN caller (source 11), established.
    pub async fn two_party_call(&self, call_id: &str) -> RecordingId {
        let alice = Person::new("Alice Keller", "alice.keller@contoso.example");
        let caller_pid = uuid::Uuid::new_v4().to_string();
        let mut invite = Invite::new(call_id, &self.tid, &alice, "callee");
        invite.other_side = Some(notify::other_participant(&caller_pid, "caller"));
        assert_eq!(self.notify(vec![invite.notification()]).await, 202);
        self.wait_answered(call_id).await;
        assert_eq!(
            self.notify(vec![notify::state(call_id, "established")])
                .await,
            202
        );
        assert_eq!(
            self.notify(vec![notify::roster(
                call_id,
                vec![
                    notify::bot_participant(),
                    notify::participant(&alice.participant_id, alice.identity(&self.tid), "10"),
                    notify::participant(
                        &caller_pid,
                        notify::phone_identity("+44 20 7946 0958"),
                        "11",
                    ),
                ],
            )])
            .await,
            202
        );
        self.gateway
            .registry
            .call_info(call_id)
            .await
            .unwrap()
            .recording_id
    }

    pub async fn wait_answered(&self, call_id: &str) {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self
                .gateway
                .registry
                .call_info(call_id)
                .await
                .is_some_and(|c| c.answered)
            {
                return;
            }
            assert!(std::time::Instant::now() < until, "not answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens the media socket; `Err(status)` when the upgrade is refused.
    pub async fn connect(&self, call_id: &str, token: Option<&str>) -> Result<Adapter, u16> {
        let mut req = format!("ws://{}/media/v1/calls/{call_id}", self.base)
            .into_client_request()
            .unwrap();
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(Adapter { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("connect: {e}"),
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let h = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { h.stop(false).await });
        }
    }
}

pub struct Adapter {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Adapter {
    pub async fn text(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn binary(&mut self, b: Vec<u8>) {
        self.ws.send(Message::binary(b)).await.unwrap();
    }

    /// The next control message from the gateway (`Null` when closed).
    pub async fn recv(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .expect("gateway answers in time");
            match m {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Value::Null,
                Some(Ok(_)) => {}
            }
        }
    }

    pub async fn hello(&mut self) -> Value {
        self.text(serde_json::json!({
            "type": "hello", "protocol": "insights-media/1",
            "encoding": "pcm16", "mode": "unmixed"
        }))
        .await;
        self.recv().await
    }
}

/// Whether any regular file below `dir` contains `needle`.
pub fn tree_contains(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            hits.extend(tree_contains(&p, needle));
        } else if let Ok(b) = std::fs::read(&p)
            && b.windows(needle.len()).any(|w| w == needle)
        {
            hits.push(p);
        }
    }
    hits
}
