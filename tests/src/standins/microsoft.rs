//! A stand-in for the Microsoft endpoints the gateway talks to: the
//! OpenID configuration and JWKS of Graph Communications (Bot Framework),
//! the Entra token endpoint (client credentials) and the Graph
//! call-control API, on the generic [`StandIn`]. Every handler checks the
//! request's path, headers and body shape and records the request; a
//! request that breaks the documented contract is recorded as a problem
//! (tests assert there are none with [`Microsoft::assert_no_problems`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::http::{Recorded, Reply, StandIn};

/// The client id the token endpoint accepts (also the bot's app id).
pub const CLIENT_ID: &str = "6c1f4b5a-1d0e-4a55-9a1b-0f3a8d2c7e11";
/// The client secret the token endpoint accepts.
pub const CLIENT_SECRET: &str = "test-only-client-secret";
/// The issuer of Graph Communications' callback tokens.
pub const BOT_ISSUER: &str = "https://api.botframework.com";

/// One request to the Graph call-control API.
#[derive(Clone, Debug)]
pub struct GraphCall {
    /// The call id of the path.
    pub call_id: String,
    /// `answer`, `updateRecordingStatus`...
    pub action: String,
    /// The JSON body.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

/// One request to the token endpoint.
#[derive(Clone, Debug)]
pub struct TokenCall {
    /// The tenant of the path.
    pub tenant: String,
}

/// A scripted Graph response (consumed in order; default is success).
#[derive(Clone, Debug)]
pub struct Scripted {
    /// Its status.
    pub status: u16,
    /// Its `Retry-After`, if any.
    pub retry_after: Option<String>,
}

#[derive(Default)]
struct State {
    keys: Mutex<Vec<Value>>,
    jwks_fetches: AtomicUsize,
    token_calls: Mutex<Vec<TokenCall>>,
    graph_calls: Mutex<Vec<GraphCall>>,
    problems: Mutex<Vec<String>>,
    script: Mutex<VecDeque<Scripted>>,
    issued: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    fn problem(&self, p: String) {
        lock(&self.problems).push(p);
    }
    /// Whether `auth` carries a token this endpoint issued (to any
    /// client: several gateway nodes each fetch their own).
    fn issued_token(&self, auth: &str) -> bool {
        let n = self.issued.load(Ordering::SeqCst);
        auth.strip_prefix("Bearer graph-token-")
            .and_then(|k| k.parse::<usize>().ok())
            .is_some_and(|k| (1..=n).contains(&k))
    }
}

/// The running stand-in.
pub struct Microsoft {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    state: Arc<State>,
    _server: StandIn,
}

impl Microsoft {
    /// Starts a stand-in that publishes no key yet.
    pub async fn start() -> Microsoft {
        let state: Arc<State> = Arc::default();
        let st = state.clone();
        let server = StandIn::start(move |req, base| dispatch(req, base, &st)).await;
        Microsoft {
            base: server.base.clone(),
            state,
            _server: server,
        }
    }

    /// The OpenID configuration URL of Graph Communications.
    pub fn openid_url(&self) -> String {
        format!("{}/common/discovery/openid-configuration", self.base)
    }

    /// The token endpoint, with the `{tenant}` placeholder.
    pub fn token_endpoint(&self) -> String {
        format!("{}/{{tenant}}/oauth2/v2.0/token", self.base)
    }

    /// Publishes exactly these JWKs.
    pub fn publish(&self, keys: Vec<Value>) {
        *lock(&self.state.keys) = keys;
    }

    /// Queues Graph responses (consumed in order).
    pub fn script(&self, responses: Vec<Scripted>) {
        lock(&self.state.script).extend(responses);
    }

    /// Every Graph call-control request so far.
    pub fn graph_calls(&self) -> Vec<GraphCall> {
        lock(&self.state.graph_calls).clone()
    }

    /// Every accepted token request so far.
    pub fn token_calls(&self) -> Vec<TokenCall> {
        lock(&self.state.token_calls).clone()
    }

    /// How often the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Panics with every contract violation seen, if any.
    pub fn assert_no_problems(&self) {
        let p = lock(&self.state.problems).clone();
        assert!(p.is_empty(), "stand-in saw contract violations: {p:#?}");
    }

    /// Waits until `n` Graph calls matching `pred` were made (or
    /// `timeout` passed) and returns those made.
    pub async fn wait_graph(
        &self,
        n: usize,
        pred: impl Fn(&GraphCall) -> bool,
        timeout: Duration,
    ) -> Vec<GraphCall> {
        let until = Instant::now() + timeout;
        loop {
            let got: Vec<GraphCall> = self.graph_calls().into_iter().filter(&pred).collect();
            if got.len() >= n || Instant::now() > until {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn dispatch(req: &Recorded, base: &str, st: &State) -> Reply {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["common", "discovery", "openid-configuration"]) => Reply::json(
            200,
            json!({
                "issuer": BOT_ISSUER,
                "authorization_endpoint": "https://invalid.example/authorize",
                "jwks_uri": format!("{base}/common/discovery/keys"),
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }),
        ),
        ("GET", ["common", "discovery", "keys"]) => {
            st.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let keys = lock(&st.keys).clone();
            Reply::json(200, json!({ "keys": keys }))
        }
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => token(req, st, tenant),
        ("POST", ["v1.0", "communications", "calls", call_id, action]) => {
            graph(req, st, call_id, action)
        }
        _ => {
            st.problem(format!("unexpected request {} {}", req.method, req.path));
            Reply::empty(404)
        }
    }
}

fn token(req: &Recorded, st: &State, tenant: &str) -> Reply {
    let ct = req.header("content-type").unwrap_or_default();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        st.problem(format!("token request content-type `{ct}`"));
    }
    if uuid::Uuid::parse_str(tenant).is_err() {
        st.problem(format!(
            "token request for tenant `{tenant}`, not an Entra tenant id"
        ));
    }
    let form = req.form();
    let want = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    for (k, v) in want {
        if form.get(k).map(String::as_str) != Some(v) {
            st.problem(format!("token request field `{k}` = {:?}", form.get(k)));
            return Reply::json(400, json!({"error": "invalid_request"}));
        }
    }
    lock(&st.token_calls).push(TokenCall {
        tenant: tenant.to_owned(),
    });
    let n = st.issued.fetch_add(1, Ordering::SeqCst) + 1;
    Reply::json(
        200,
        json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": format!("graph-token-{n}"),
        }),
    )
}

fn graph(req: &Recorded, st: &State, call_id: &str, action: &str) -> Reply {
    let auth = req.header("authorization").unwrap_or_default();
    if !st.issued_token(auth) {
        st.problem(format!(
            "{action}: Authorization is not the issued bearer token"
        ));
        return Reply::empty(401);
    }
    let ct = req.header("content-type").unwrap_or_default();
    if !ct.starts_with("application/json") {
        st.problem(format!("{action}: content-type `{ct}`"));
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => {
            st.problem(format!("{action}: body is not JSON"));
            return Reply::empty(400);
        }
    };
    match action {
        "answer" => check_answer(st, &body),
        "updateRecordingStatus" => check_status(st, &body),
        other => st.problem(format!("unexpected call action `{other}`")),
    }
    lock(&st.graph_calls).push(GraphCall {
        call_id: call_id.to_owned(),
        action: action.to_owned(),
        body: body.clone(),
        at: Instant::now(),
    });
    if let Some(s) = lock(&st.script).pop_front() {
        let mut r = Reply::json(
            s.status,
            json!({"error": {"code": "TooManyRequests", "message": "slow down"}}),
        );
        if let Some(ra) = s.retry_after {
            r = r.header("retry-after", &ra);
        }
        return r;
    }
    match action {
        "answer" => Reply::empty(202),
        _ => Reply::json(
            200,
            json!({
                "@odata.type": "#microsoft.graph.updateRecordingStatusOperation",
                "clientContext": body["clientContext"],
                "id": uuid::Uuid::new_v4().to_string(),
                "resultInfo": null,
                "status": "completed",
            }),
        ),
    }
}

fn check_answer(st: &State, b: &Value) {
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

fn check_status(st: &State, b: &Value) {
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
