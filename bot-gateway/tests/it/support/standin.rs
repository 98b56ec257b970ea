//! A local stand-in for the Microsoft endpoints the gateway talks to: the
//! OpenID configuration and JWKS of Graph Communications, the Entra token
//! endpoint and the Graph call-control API. Every handler checks the
//! request's path, headers and body shape and records the request; a
//! request that breaks the documented contract is recorded as a problem
//! (tests assert there are none).

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// Client credentials the stand-in accepts.
pub const CLIENT_ID: &str = "6c1f4b5a-1d0e-4a55-9a1b-0f3a8d2c7e11";
pub const CLIENT_SECRET: &str = "test-only-client-secret";

/// One request to the Graph call-control API.
#[derive(Clone, Debug)]
pub struct GraphCall {
    pub call_id: String,
    pub action: String,
    pub body: Value,
    pub at: Instant,
}

/// One request to the token endpoint.
#[derive(Clone, Debug)]
pub struct TokenCall {
    pub tenant: String,
}

/// A scripted Graph response (consumed in order; default is success).
#[derive(Clone, Debug)]
pub struct Scripted {
    pub status: u16,
    pub retry_after: Option<String>,
}

#[derive(Default)]
pub struct StandInState {
    pub base: Mutex<String>,
    pub keys: Mutex<Vec<Value>>,
    pub jwks_fetches: AtomicUsize,
    pub token_calls: Mutex<Vec<TokenCall>>,
    pub graph_calls: Mutex<Vec<GraphCall>>,
    pub problems: Mutex<Vec<String>>,
    pub script: Mutex<VecDeque<Scripted>>,
    issued: AtomicUsize,
}

impl StandInState {
    fn problem(&self, p: String) {
        if let Ok(mut v) = self.problems.lock() {
            v.push(p);
        }
    }
    fn current_token(&self) -> String {
        format!("graph-token-{}", self.issued.load(Ordering::SeqCst))
    }
}

/// The running stand-in.
pub struct StandIn {
    pub base: String,
    pub state: web::Data<StandInState>,
    handle: ServerHandle,
}

impl StandIn {
    pub async fn start() -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let base = format!("http://{addr}");
        let state = web::Data::new(StandInState::default());
        if let Ok(mut b) = state.base.lock() {
            *b = base.clone();
        }
        let data = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(dispatch))
        })
        .workers(1)
        .listen(listener)
        .unwrap_or_else(|e| panic!("{e}"))
        .disable_signals()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        StandIn {
            base,
            state,
            handle,
        }
    }

    pub fn openid_url(&self) -> String {
        format!("{}/common/discovery/openid-configuration", self.base)
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/{{tenant}}/oauth2/v2.0/token", self.base)
    }

    /// Publishes exactly these JWKs.
    pub fn publish(&self, keys: Vec<Value>) {
        if let Ok(mut k) = self.state.keys.lock() {
            *k = keys;
        }
    }

    pub fn script(&self, responses: Vec<Scripted>) {
        if let Ok(mut s) = self.state.script.lock() {
            s.extend(responses);
        }
    }

    pub fn graph_calls(&self) -> Vec<GraphCall> {
        self.state
            .graph_calls
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    pub fn token_calls(&self) -> Vec<TokenCall> {
        self.state
            .token_calls
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn assert_no_problems(&self) {
        let p = self
            .state
            .problems
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        assert!(p.is_empty(), "stand-in saw contract violations: {p:#?}");
    }

    /// Waits until `n` Graph calls matching `pred` were made.
    pub async fn wait_graph(
        &self,
        n: usize,
        pred: impl Fn(&GraphCall) -> bool,
        timeout: std::time::Duration,
    ) -> Vec<GraphCall> {
        let until = Instant::now() + timeout;
        loop {
            let got: Vec<GraphCall> = self.graph_calls().into_iter().filter(&pred).collect();
            if got.len() >= n || Instant::now() > until {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let h = self.handle.clone();
        // Stopping is async; fire and forget (the runtime may be gone).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { h.stop(false).await });
        }
    }
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn dispatch(req: HttpRequest, body: web::Bytes, st: web::Data<StandInState>) -> HttpResponse {
    let path = req.path().to_owned();
    let method = req.method().as_str().to_owned();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["common", "discovery", "openid-configuration"]) => {
            let base = st.base.lock().map(|b| b.clone()).unwrap_or_default();
            HttpResponse::Ok().json(json!({
                "issuer": "https://api.botframework.com",
                "authorization_endpoint": "https://invalid.example/authorize",
                "jwks_uri": format!("{base}/common/discovery/keys"),
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }))
        }
        ("GET", ["common", "discovery", "keys"]) => {
            st.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let keys = st.keys.lock().map(|k| k.clone()).unwrap_or_default();
            HttpResponse::Ok().json(json!({ "keys": keys }))
        }
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => token(&req, &body, &st, tenant),
        ("POST", ["v1.0", "communications", "calls", call_id, action]) => {
            graph(&req, &body, &st, call_id, action)
        }
        _ => {
            st.problem(format!("unexpected request {method} {path}"));
            HttpResponse::NotFound().finish()
        }
    }
}

fn token(req: &HttpRequest, body: &[u8], st: &StandInState, tenant: &str) -> HttpResponse {
    let ct = header_str(req, header::CONTENT_TYPE);
    if !ct.starts_with("application/x-www-form-urlencoded") {
        st.problem(format!("token request content-type `{ct}`"));
    }
    if uuid::Uuid::parse_str(tenant).is_err() {
        st.problem(format!(
            "token request for tenant `{tenant}`, not an Entra tenant id"
        ));
    }
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    let want = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    for (k, v) in want {
        if form.get(k).map(String::as_str) != Some(v) {
            st.problem(format!("token request field `{k}` = {:?}", form.get(k)));
            return HttpResponse::BadRequest().json(json!({"error": "invalid_request"}));
        }
    }
    if let Ok(mut v) = st.token_calls.lock() {
        v.push(TokenCall {
            tenant: tenant.to_owned(),
        });
    }
    let n = st.issued.fetch_add(1, Ordering::SeqCst) + 1;
    HttpResponse::Ok().json(json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": format!("graph-token-{n}"),
    }))
}

fn graph(
    req: &HttpRequest,
    body: &[u8],
    st: &StandInState,
    call_id: &str,
    action: &str,
) -> HttpResponse {
    let auth = header_str(req, header::AUTHORIZATION);
    if auth != format!("Bearer {}", st.current_token()) {
        st.problem(format!(
            "{action}: Authorization is not the issued bearer token"
        ));
        return HttpResponse::Unauthorized().finish();
    }
    let ct = header_str(req, header::CONTENT_TYPE);
    if !ct.starts_with("application/json") {
        st.problem(format!("{action}: content-type `{ct}`"));
    }
    let body: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            st.problem(format!("{action}: body is not JSON"));
            return HttpResponse::BadRequest().finish();
        }
    };
    match action {
        "answer" => check_answer(st, &body),
        "updateRecordingStatus" => check_status(st, &body),
        other => st.problem(format!("unexpected call action `{other}`")),
    }
    if let Ok(mut v) = st.graph_calls.lock() {
        v.push(GraphCall {
            call_id: call_id.to_owned(),
            action: action.to_owned(),
            body: body.clone(),
            at: Instant::now(),
        });
    }
    if let Some(s) = st.script.lock().ok().and_then(|mut q| q.pop_front()) {
        let status = actix_web::http::StatusCode::from_u16(s.status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = HttpResponse::build(status);
        if let Some(ra) = s.retry_after {
            r.insert_header((header::RETRY_AFTER, ra));
        }
        return r.json(json!({"error": {"code": "TooManyRequests", "message": "slow down"}}));
    }
    match action {
        "answer" => HttpResponse::Accepted().finish(),
        _ => HttpResponse::Ok().json(json!({
            "@odata.type": "#microsoft.graph.updateRecordingStatusOperation",
            "clientContext": body["clientContext"],
            "id": uuid::Uuid::new_v4().to_string(),
            "resultInfo": null,
            "status": "completed",
        })),
    }
}

fn check_answer(st: &StandInState, b: &Value) {
    let ok = b["acceptedModalities"] == json!(["audio"])
        && b["mediaConfig"]["@odata.type"] == "#microsoft.graph.appHostedMediaConfig"
        && b["mediaConfig"]["blob"].is_string()
        && b["participantCapacity"].as_u64().is_some_and(|n| n >= 1)
        && (b.get("callbackUri").is_none()
            || b["callbackUri"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://")));
    if !ok {
        st.problem(format!(
            "answer body does not have the documented shape: {b}"
        ));
    }
}

fn check_status(st: &StandInState, b: &Value) {
    let ctx_ok = b["clientContext"]
        .as_str()
        .is_some_and(|c| !c.is_empty() && c.len() <= 256);
    let status_ok = matches!(
        b["status"].as_str(),
        Some("recording" | "notRecording" | "failed")
    );
    if !(ctx_ok && status_ok) {
        st.problem(format!("updateRecordingStatus body: {b}"));
    }
}
