//! Directory sync against a local stand-in of Microsoft Graph and the
//! Entra token endpoint (published shapes: client-credentials token
//! response; `/users/delta` collections with `@odata.nextLink`,
//! `@odata.deltaLink` and `@removed`; 429 with `Retry-After`; 410 for an
//! expired delta token), through the real client code, the API
//! (`/api/directory/...`) and the SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::web;
use gdpr_tools::directory::{DirectoryError, DirectorySync, GraphConfig, SyncReport};
use insights_api::{AppState, Application, Authenticator, DirectorySyncHandle};
use insights_core::domain::*;
use insights_stores::blob::local::LocalBlobStore;
use insights_tests::standins::http::{Recorded, Reply, StandIn};
use serde_json::{Value, json};
use support::{Auth, TestApp};
use zeroize::Zeroizing;

const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const SECRET: &str = "stand-in-client-secret";

// ---------------------------------------------------------------------
// the stand-in Graph + token endpoint
// ---------------------------------------------------------------------

/// One scripted answer.
#[derive(Clone)]
enum Answer {
    Json(Value),
    Status(u16, Vec<(&'static str, String)>),
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    query: String,
    authorization: Option<String>,
    body: String,
    at: Instant,
}

#[derive(Default)]
struct GraphState {
    /// Answers per page key (the query's `$skiptoken`/`$deltatoken`, or
    /// `initial`), served in order; the last one repeats.
    script: Mutex<HashMap<String, Vec<Answer>>>,
    seen: Mutex<Vec<Seen>>,
    tokens_issued: Mutex<u32>,
}

/// The stand-in: Graph's `/users/delta` and the token endpoint on the
/// shared recording server ([`insights_tests::standins::http`]).
struct Graph {
    base: String,
    state: Arc<GraphState>,
    _server: StandIn,
}

impl Graph {
    async fn start() -> Graph {
        let state: Arc<GraphState> = Arc::default();
        let st = state.clone();
        let server = StandIn::start(move |req, _| graph_dispatch(req, &st)).await;
        Graph {
            base: server.base.clone(),
            state,
            _server: server,
        }
    }

    fn script(&self, key: &str, answers: Vec<Answer>) {
        self.state
            .script
            .lock()
            .unwrap()
            .insert(key.to_owned(), answers);
    }

    fn link(&self, param: &str, value: &str) -> String {
        format!("{}/v1.0/users/delta?{param}={value}", self.base)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn graph_requests(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path == "/v1.0/users/delta")
            .collect()
    }

    fn config(&self) -> GraphConfig {
        GraphConfig {
            graph_base_url: format!("{}/v1.0", self.base),
            token_url: format!("{}/{{tenant}}/oauth2/v2.0/token", self.base),
            scope: "https://graph.microsoft.com/.default".into(),
            client_id: CLIENT_ID.into(),
            client_secret: Zeroizing::new(SECRET.into()),
            max_retries: 3,
            max_retry_after: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

fn graph_dispatch(req: &Recorded, st: &GraphState) -> Reply {
    let seen = Seen {
        path: req.path.clone(),
        query: req.query.clone().unwrap_or_default(),
        authorization: req.header("authorization").map(str::to_owned),
        body: String::from_utf8_lossy(&req.body).to_string(),
        at: Instant::now(),
    };
    st.seen.lock().unwrap().push(seen.clone());
    if req.path.ends_with("/oauth2/v2.0/token") {
        let form = req.form();
        if form.get("grant_type").map(String::as_str) != Some("client_credentials")
            || form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
            || form.get("client_secret").map(String::as_str) != Some(SECRET)
        {
            return Reply::json(
                401,
                json!({
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided."
                }),
            );
        }
        let mut n = st.tokens_issued.lock().unwrap();
        *n += 1;
        return Reply::json(
            200,
            json!({
                "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                "access_token": format!("graph-token-{n}")
            }),
        );
    }
    if req.path != "/v1.0/users/delta" {
        return Reply::empty(404);
    }
    if seen
        .authorization
        .as_deref()
        .is_none_or(|a| !a.starts_with("Bearer graph-token-"))
    {
        return Reply::json(
            401,
            json!({"error": {"code": "InvalidAuthenticationToken"}}),
        );
    }
    let q: BTreeMap<String, String> = req.query_pairs();
    let key = q
        .get("$skiptoken")
        .or_else(|| q.get("$deltatoken"))
        .cloned()
        .unwrap_or_else(|| "initial".into());
    let answer = {
        let mut script = st.script.lock().unwrap();
        match script.get_mut(&key) {
            Some(list) if list.len() > 1 => Some(list.remove(0)),
            Some(list) => list.first().cloned(),
            None => None,
        }
    };
    match answer {
        Some(Answer::Json(v)) => Reply::json(200, v),
        Some(Answer::Status(code, headers)) => {
            let mut r = Reply::json(
                code,
                json!({"error": {"code": "TooManyRequests", "message": "scripted"}}),
            );
            for (k, v) in headers {
                r = r.header(k, &v);
            }
            r
        }
        None => Reply::json(400, json!({"error": {"code": "unscripted"}})),
    }
}

fn user(oid: &str, first: &str, last: &str, phone: &str) -> Value {
    let alias = first.to_lowercase();
    json!({
        "id": oid,
        "givenName": first,
        "surname": last,
        "displayName": format!("{first} {last}"),
        "mailNickname": alias,
        "mail": format!("{alias}@contoso.com"),
        "userPrincipalName": format!("{alias}@contoso.onmicrosoft.com"),
        "businessPhones": [phone],
        "mobilePhone": null,
        "imAddresses": [format!("{alias}@contoso.com")],
        "proxyAddresses": [format!("SMTP:{alias}@contoso.com"), format!("SIP:{alias}@contoso.com")]
    })
}

fn page(g: &Graph, users: Vec<Value>, next: Option<&str>, delta: Option<&str>) -> Answer {
    let mut v = json!({
        "@odata.context": format!("{}/v1.0/$metadata#users(givenName,surname)", g.base),
        "value": users,
    });
    if let Some(n) = next {
        v["@odata.nextLink"] = json!(g.link("$skiptoken", n));
    }
    if let Some(d) = delta {
        v["@odata.deltaLink"] = json!(g.link("$deltatoken", d));
    }
    Answer::Json(v)
}

// ---------------------------------------------------------------------
// an API with directory sync configured, beside the harness's own
// ---------------------------------------------------------------------

struct World {
    t: TestApp,
    graph: Graph,
    /// Base URL of the API with directory sync configured.
    base: String,
    admin: String,
    officer: String,
    _handle: ServerHandle,
}

impl World {
    async fn start() -> World {
        let t = TestApp::start_with(false, |s| s.mfa_roles.clear()).await;
        let graph = Graph::start().await;
        let sync = Arc::new(DirectorySync::new(graph.config(), t.store.clone()).unwrap());
        let auth =
            Authenticator::new(&t.settings, t.dir.path(), t.store.clone(), t.keys.clone()).unwrap();
        let state = AppState {
            store: t.store.clone(),
            blobs: Arc::new(LocalBlobStore::new(t.dir.path().join("blobs"))),
            keys: t.keys.clone(),
            auth: Arc::new(auth),
            retention_minimum_days: 0,
        };
        let handle = web::Data::new(DirectorySyncHandle(sync));
        let app = Application::build_with(
            state,
            support::test_gdpr_context(t.dir.path()),
            "127.0.0.1:0".parse().unwrap(),
            move |cfg| {
                cfg.app_data(handle.clone());
            },
        )
        .unwrap();
        let base = format!("http://{}", app.addr());
        let server = app.handle();
        tokio::spawn(app.run_until_stopped());
        let (_, admin_seed) = t.add_user("admin@contoso.com", Role::TenantAdmin).await;
        let (_, officer_seed) = t
            .add_user("officer@contoso.com", Role::ComplianceOfficer)
            .await;
        let (admin, _) = t
            .login_as(Some("contoso"), "admin@contoso.com", admin_seed.as_deref())
            .await;
        let (officer, _) = t
            .login_as(
                Some("contoso"),
                "officer@contoso.com",
                officer_seed.as_deref(),
            )
            .await;
        World {
            t,
            graph,
            base,
            admin,
            officer,
            _handle: server,
        }
    }

    async fn call(&self, token: &str, method: &str, path: &str) -> reqwest::Response {
        self.t
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn sync(&self) -> SyncReportJson {
        let res = self.call(&self.admin, "POST", "/api/directory/sync").await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    async fn users(&self) -> Vec<DirectoryUser> {
        let res = self.call(&self.admin, "GET", "/api/directory/users").await;
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        serde_json::from_value(v["items"].clone()).unwrap()
    }
}

#[derive(Debug, PartialEq, serde::Deserialize)]
struct SyncReportJson {
    added: u32,
    updated: u32,
    deactivated: u32,
    pages: u32,
    throttled_retries: u32,
    delta: bool,
}

fn by_oid<'a>(users: &'a [DirectoryUser], oid: &str) -> &'a DirectoryUser {
    users
        .iter()
        .find(|u| u.directory_object_id.as_deref() == Some(oid))
        .unwrap_or_else(|| panic!("no user {oid}"))
}

// ---------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------

/// Full sync over two pages (the second throttled once with
/// `Retry-After: 1`), then a delta run from the stored delta link with
/// an update, an addition and a removal; the removed user turns inactive
/// and stays until an admin deletes it (refused while active).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_pages_throttling_then_delta_with_removal_and_admin_delete() {
    let w = World::start().await;
    let g = &w.graph;
    g.script(
        "initial",
        vec![page(
            g,
            vec![
                user("oid-ann", "Ann", "Lee", "+1 (425) 555-0100"),
                user("oid-bob", "Bob", "Ray", "0049 30 1234567"),
            ],
            Some("page2"),
            None,
        )],
    );
    g.script(
        "page2",
        vec![
            Answer::Status(429, vec![("Retry-After", "1".into())]),
            page(
                g,
                vec![user("oid-cat", "Cat", "Poe", "+44 20 7946 0000")],
                None,
                Some("d1"),
            ),
        ],
    );

    let first = w.sync().await;
    assert_eq!(
        first,
        SyncReportJson {
            added: 3,
            updated: 0,
            deactivated: 0,
            pages: 2,
            throttled_retries: 1,
            delta: false
        }
    );
    // The token request: client credentials at the tenant's token endpoint.
    let seen = g.seen();
    let token_req = &seen[0];
    assert_eq!(token_req.path, format!("/{}/oauth2/v2.0/token", w.t.tid));
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(token_req.body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["scope"], "https://graph.microsoft.com/.default");
    // Every Graph request carries the bearer token; the first asks for
    // the fields we keep; Retry-After was honoured.
    let reqs = g.graph_requests();
    assert_eq!(reqs.len(), 3, "page 1, page 2 throttled, page 2 again");
    for r in &reqs {
        assert_eq!(r.authorization.as_deref(), Some("Bearer graph-token-1"));
    }
    let select: BTreeMap<String, String> = url::form_urlencoded::parse(reqs[0].query.as_bytes())
        .into_owned()
        .collect();
    for field in [
        "givenName",
        "surname",
        "displayName",
        "mailNickname",
        "mail",
        "userPrincipalName",
        "id",
        "businessPhones",
        "mobilePhone",
        "imAddresses",
        "proxyAddresses",
    ] {
        assert!(
            select["$select"].split(',').any(|f| f == field),
            "{field} not selected"
        );
    }
    assert!(reqs[1].query.contains("$skiptoken=page2"));
    let waited = reqs[2].at - reqs[1].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );

    let users = w.users().await;
    assert_eq!(users.len(), 3);
    let ann = by_oid(&users, "oid-ann");
    assert!(ann.active);
    assert_eq!(ann.first_name.as_deref(), Some("Ann"));
    assert_eq!(ann.last_name.as_deref(), Some("Lee"));
    assert_eq!(ann.display_name.as_deref(), Some("Ann Lee"));
    assert_eq!(ann.alias.as_deref(), Some("ann"));
    assert_eq!(ann.email.as_deref(), Some("ann@contoso.com"));
    assert_eq!(ann.upn.as_deref(), Some("ann@contoso.onmicrosoft.com"));
    assert_eq!(ann.phone_numbers, vec!["+14255550100"]);
    assert_eq!(ann.sip_uri.as_deref(), Some("sip:ann@contoso.com"));
    assert_eq!(
        by_oid(&users, "oid-bob").phone_numbers,
        vec!["+49301234567"]
    );
    let state =
        w.t.store
            .get_directory_sync_state(w.t.tenant.id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        state.delta_link.as_deref(),
        Some(g.link("$deltatoken", "d1").as_str())
    );
    assert!(state.last_full_sync_at.is_some());

    // Second run: from the delta link. Ann changed (only what changed is
    // sent), Dan is new, Bob left the directory.
    g.script(
        "d1",
        vec![page(
            g,
            vec![
                json!({"id": "oid-ann", "mobilePhone": "+1 425 555 0199", "surname": "Lee-Hart"}),
                user("oid-dan", "Dan", "Ito", "+81 3 1234 5678"),
                json!({"id": "oid-bob", "@removed": {"reason": "changed"}}),
            ],
            None,
            Some("d2"),
        )],
    );
    let second = w.sync().await;
    assert_eq!(
        second,
        SyncReportJson {
            added: 1,
            updated: 1,
            deactivated: 1,
            pages: 1,
            throttled_retries: 0,
            delta: true
        }
    );
    let reqs = g.graph_requests();
    let last = reqs.last().unwrap();
    assert!(last.query.contains("$deltatoken=d1"), "{}", last.query);
    assert_eq!(last.authorization.as_deref(), Some("Bearer graph-token-2"));
    let users = w.users().await;
    assert_eq!(users.len(), 4, "removed users stay");
    let ann = by_oid(&users, "oid-ann");
    assert_eq!(ann.last_name.as_deref(), Some("Lee-Hart"));
    assert_eq!(
        ann.first_name.as_deref(),
        Some("Ann"),
        "absent fields keep their value"
    );
    assert_eq!(ann.phone_numbers, vec!["+14255550100", "+14255550199"]);
    let bob = by_oid(&users, "oid-bob");
    assert!(!bob.active);
    assert_eq!(
        bob.first_name.as_deref(),
        Some("Bob"),
        "an inactive user keeps its data"
    );
    assert!(by_oid(&users, "oid-dan").active);
    let state =
        w.t.store
            .get_directory_sync_state(w.t.tenant.id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        state.delta_link.as_deref(),
        Some(g.link("$deltatoken", "d2").as_str())
    );

    // Only admins manage directory users; an active one cannot be
    // deleted; an inactive one can, once.
    let ann_id = ann.id;
    let bob_id = bob.id;
    for (m, p) in [
        ("GET", "/api/directory/users".to_owned()),
        ("POST", "/api/directory/sync".to_owned()),
        ("DELETE", format!("/api/directory/users/{bob_id}")),
    ] {
        assert_eq!(w.call(&w.officer, m, &p).await.status(), 403, "{m} {p}");
    }
    let res = w
        .call(
            &w.admin,
            "DELETE",
            &format!("/api/directory/users/{ann_id}"),
        )
        .await;
    assert_eq!(res.status(), 409);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "user-active");
    let res = w
        .call(
            &w.admin,
            "DELETE",
            &format!("/api/directory/users/{bob_id}"),
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = w
        .call(
            &w.admin,
            "DELETE",
            &format!("/api/directory/users/{bob_id}"),
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = w
        .call(&w.admin, "DELETE", "/api/directory/users/not-a-uuid")
        .await;
    assert_eq!(res.status(), 400);
    let users = w.users().await;
    assert_eq!(users.len(), 3);
    assert!(
        users
            .iter()
            .all(|u| u.directory_object_id.as_deref() != Some("oid-bob"))
    );

    // Audited with counts and ids only.
    let audit = w.t.audit().await;
    let syncs: Vec<&AuditEvent> = audit
        .iter()
        .filter(|e| {
            e.action == AuditAction::UserChange && e.details.get("directory_sync").is_some()
        })
        .collect();
    assert_eq!(syncs.len(), 2);
    assert_eq!(syncs[1].details["directory_sync"]["deactivated"], 1);
    assert!(
        audit
            .iter()
            .any(|e| e.details["directory_user_deleted"] == json!(bob_id))
    );
    let text = serde_json::to_string(&audit).unwrap();
    for personal in ["Ann", "ann@contoso.com", "+1425"] {
        assert!(!text.contains(personal), "{personal} in the audit trail");
    }
}

/// A delta link the service no longer knows (410) starts a full sync,
/// which turns inactive every synchronised user it does not list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_delta_link_falls_back_to_a_full_sync_that_deactivates_the_unseen() {
    let w = World::start().await;
    let g = &w.graph;
    g.script(
        "initial",
        vec![page(
            g,
            vec![
                user("oid-ann", "Ann", "Lee", "+14255550100"),
                user("oid-bob", "Bob", "Ray", "+14255550101"),
            ],
            None,
            Some("d1"),
        )],
    );
    assert_eq!(w.sync().await.added, 2);
    g.script("d1", vec![Answer::Status(410, vec![])]);
    g.script(
        "initial",
        vec![page(
            g,
            vec![user("oid-ann", "Ann", "Lee", "+14255550100")],
            None,
            Some("d9"),
        )],
    );
    let r = w.sync().await;
    assert_eq!(
        r,
        SyncReportJson {
            added: 0,
            updated: 0,
            deactivated: 1,
            pages: 1,
            throttled_retries: 0,
            delta: false
        }
    );
    let users = w.users().await;
    assert!(by_oid(&users, "oid-ann").active);
    assert!(!by_oid(&users, "oid-bob").active);
    let state =
        w.t.store
            .get_directory_sync_state(w.t.tenant.id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        state.delta_link.as_deref(),
        Some(g.link("$deltatoken", "d9").as_str())
    );
}

/// Throttled beyond the retry budget: the run fails, nothing of the
/// delta link is stored, and the next run starts over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_throttling_fails_the_run_without_storing_a_delta_link() {
    let w = World::start().await;
    let g = &w.graph;
    g.script(
        "initial",
        vec![page(
            g,
            vec![user("oid-ann", "Ann", "Lee", "+14255550100")],
            Some("p2"),
            None,
        )],
    );
    g.script(
        "p2",
        vec![Answer::Status(429, vec![("Retry-After", "0".into())])],
    );
    let sync = DirectorySync::new(g.config(), w.t.store.clone()).unwrap();
    let err = sync.sync_tenant(&w.t.tenant, "test").await.unwrap_err();
    assert!(
        matches!(
            err,
            DirectoryError::Throttled {
                retries: 3,
                status: 429
            }
        ),
        "{err:?}"
    );
    assert!(
        w.t.store
            .get_directory_sync_state(w.t.tenant.id)
            .await
            .unwrap()
            .is_none()
    );
    // Through the API the failure is a 503 problem, not a stack trace.
    let res = w.call(&w.admin, "POST", "/api/directory/sync").await;
    assert_eq!(res.status(), 503);
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["code"], "directory-sync-failed");
    // The service recovers: the next run is a full one.
    g.script("p2", vec![page(g, vec![], None, Some("d1"))]);
    let r: SyncReport = sync.sync_tenant(&w.t.tenant, "test").await.unwrap();
    assert!(!r.delta);
    assert_eq!(r.pages, 2);
}

/// The bearer token only ever goes to the configured Graph origin; a
/// wrong client secret is a clear error naming only the OAuth code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_off_the_graph_origin_and_bad_credentials_are_refused() {
    let w = World::start().await;
    let g = &w.graph;
    let elsewhere = Graph::start().await;
    g.script(
        "initial",
        vec![Answer::Json(json!({
            "value": [],
            "@odata.nextLink": elsewhere.link("$skiptoken", "steal"),
        }))],
    );
    let sync = DirectorySync::new(g.config(), w.t.store.clone()).unwrap();
    let err = sync.sync_tenant(&w.t.tenant, "test").await.unwrap_err();
    assert!(matches!(err, DirectoryError::Protocol(_)), "{err:?}");
    assert!(elsewhere.seen().is_empty(), "the token went elsewhere");

    let mut cfg = g.config();
    cfg.client_secret = Zeroizing::new("wrong".into());
    let err = DirectorySync::new(cfg, w.t.store.clone())
        .unwrap()
        .sync_tenant(&w.t.tenant, "test")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("invalid_client"), "{msg}");
    assert!(!msg.contains("AADSTS"), "{msg}");
}

/// Without `[directory]` the sync endpoint says so; listing still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_without_configuration_is_a_clear_conflict() {
    let t = TestApp::start_with(false, |s| s.mfa_roles.clear()).await;
    let (_, seed) = t.add_user("admin@contoso.com", Role::TenantAdmin).await;
    let (token, _) = t
        .login_as(Some("contoso"), "admin@contoso.com", seed.as_deref())
        .await;
    let res = t
        .request("POST", "/api/directory/sync", Auth::Bearer(&token))
        .await;
    assert_eq!(res.status(), 409);
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["code"], "directory-sync-not-configured");
    let res = t
        .request("GET", "/api/directory/users", Auth::Bearer(&token))
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["items"], json!([]));
    // A platform operator has no tenant: 403.
    let res = t.request("GET", "/api/directory/users", Auth::None).await;
    assert_eq!(res.status(), 401);
}

/// Who may reach the directory routes: tenant admins of the tenant only;
/// other roles and platform operators 403, another tenant's admin sees
/// none of this tenant's users (404 on delete), no credentials 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_routes_by_role_and_tenant() {
    let t = TestApp::start_with(false, |s| s.mfa_roles.clear()).await;
    let inactive = DirectoryUser {
        id: UserId::new(),
        tenant_id: t.tenant.id,
        directory_object_id: Some("oid-gone".into()),
        first_name: Some("Gone".into()),
        last_name: None,
        display_name: None,
        alias: None,
        email: None,
        upn: None,
        phone_numbers: Vec::new(),
        sip_uri: None,
        tel_uri: None,
        groups: Vec::new(),
        active: false,
        updated_at: now(),
    };
    t.store
        .upsert_directory_user(t.tenant.id, &inactive)
        .await
        .unwrap();
    let fabrikam = t
        .store
        .create_tenant(NewTenant {
            name: "fabrikam".into(),
            directory_tenant_id: Some(uuid::Uuid::new_v4()),
        })
        .await
        .unwrap();
    t.keys.ensure_kek(fabrikam.id).await.unwrap();
    let (_, fab_seed) = t
        .add_account(
            Some(&fabrikam),
            "admin@fabrikam.com",
            Role::TenantAdmin,
            None,
            None,
        )
        .await;
    let mut tokens = Vec::new();
    for (email, role) in [
        ("admin@contoso.com", Role::TenantAdmin),
        ("officer@contoso.com", Role::ComplianceOfficer),
        ("supervisor@contoso.com", Role::Supervisor),
        ("user@contoso.com", Role::User),
        ("dpo@contoso.com", Role::Dpo),
        ("ops@insights.example", Role::PlatformOperator),
    ] {
        let (_, seed) = t.add_user(email, role).await;
        let tenant = (role != Role::PlatformOperator).then_some("contoso");
        tokens.push((
            role.to_string(),
            t.login_as(tenant, email, seed.as_deref()).await.0,
        ));
    }
    let fab = t
        .login_as(Some("fabrikam"), "admin@fabrikam.com", fab_seed.as_deref())
        .await
        .0;
    tokens.push(("fabrikam-admin".into(), fab));
    let gone = inactive.id;
    // (list, sync, delete) per caller.
    let expect: BTreeMap<&str, [u16; 3]> = [
        ("tenant-admin", [200, 409, 204]),
        ("compliance-officer", [403, 403, 403]),
        ("supervisor", [403, 403, 403]),
        ("user", [403, 403, 403]),
        ("dpo", [403, 403, 403]),
        ("platform-operator", [403, 403, 403]),
        ("fabrikam-admin", [200, 409, 404]),
    ]
    .into_iter()
    .collect();
    let mut failures = Vec::new();
    // The deleting admin goes last, so every other caller sees the user.
    tokens.sort_by_key(|(r, _)| r == "tenant-admin");
    for (role, token) in &tokens {
        let want = expect[role.as_str()];
        let calls = [
            ("GET", "/api/directory/users".to_owned()),
            ("POST", "/api/directory/sync".to_owned()),
            ("DELETE", format!("/api/directory/users/{gone}")),
        ];
        for ((m, p), w) in calls.iter().zip(want) {
            let res = t.request(m, p, Auth::Bearer(token)).await;
            let got = res.status().as_u16();
            if got != w {
                failures.push(format!("{role} {m} {p}: got {got}, want {w}"));
            }
            if m == &"GET" && got == 200 {
                let v: Value = res.json().await.unwrap();
                let n = v["items"].as_array().map(Vec::len).unwrap_or(0);
                let want_n = usize::from(role == "tenant-admin");
                if n != want_n {
                    failures.push(format!("{role} sees {n} users, want {want_n}"));
                }
            }
        }
    }
    for (m, p) in [
        ("GET", "/api/directory/users".to_owned()),
        ("POST", "/api/directory/sync".to_owned()),
        ("DELETE", format!("/api/directory/users/{gone}")),
    ] {
        assert_eq!(t.request(m, &p, Auth::None).await.status(), 401);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
