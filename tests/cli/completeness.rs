//! Issue 17 §3 through the real `insights serve`: the completeness
//! reconciliation against a stand-in Microsoft Graph that serves the call
//! records of 200 calls (List callRecords in pages, one throttled with
//! `429 Retry-After`; each record with sessions and segments;
//! `getPstnCalls` and `getDirectRoutingCalls` in pages) and the Entra
//! token endpoint.
//!
//! Of every ten calls: one was never invited (no recording), one ended
//! with a crashed node (recording closed `gateway-node-lost` after 40 %),
//! one is out of policy (a never-record number prefix; for half of them
//! the number is only in the PSTN report), one was refused by the bot
//! (`refused:spool-full`), one had no recorded user (only outsiders), and
//! five were recorded (one of them matched by time and participant, its
//! recording lacking the call id). One direct-routing leg has no call
//! record. The recordings are seeded through the store, the way other
//! serve tests seed data; the reconciliation runs in the binary: the
//! daily run of the scheduler role, then on demand through the API and
//! the CLI. The report names each call correctly; the run is audited,
//! the coverage gauge set, the alert raised (coverage below the tenant's
//! threshold), the .xlsx exported; no log line names a number.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use insights_core::domain::*;
use insights_core::store::MetadataStore;
use insights_stores::metadata::postgres::PgStore;
use insights_stores::metadata::sqlite::SqliteStore;
use insights_tests::standins::http::{Recorded, Reply, StandIn};
use serde_json::{Value, json};

use crate::insights;

const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CALLS: usize = 200;
const TOKEN: &str = "call-records-token";

/// What call `i` is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    NeverInvited,
    NodeCrash,
    OutOfPolicy,
    BotRefused,
    Outsiders,
    Recorded,
    /// Recorded; the recording carries no call id.
    RecordedByTime,
}

fn kind(i: usize) -> Kind {
    match i % 10 {
        0 => Kind::NeverInvited,
        1 => Kind::NodeCrash,
        2 => Kind::OutOfPolicy,
        3 => Kind::BotRefused,
        4 => Kind::Outsiders,
        9 => Kind::RecordedByTime,
        _ => Kind::Recorded,
    }
}

/// The calls' common facts.
struct Plan {
    base: DateTime<Utc>,
}

impl Plan {
    fn new() -> Self {
        let now = Utc::now();
        Plan {
            base: now.duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(40),
        }
    }
    fn id(i: usize) -> String {
        format!("00000000-0000-4000-8000-{i:012}")
    }
    fn start(&self, i: usize) -> DateTime<Utc> {
        self.base + TimeDelta::minutes(10 * i as i64)
    }
    fn end(&self, i: usize) -> DateTime<Utc> {
        self.start(i) + TimeDelta::seconds(480)
    }
    fn user(i: usize) -> String {
        format!("00000000-0000-4000-9000-{:012}", i % 20)
    }
    fn number(i: usize) -> String {
        if kind(i) == Kind::OutOfPolicy {
            format!("+4930999{i:04}")
        } else {
            format!("+1425555{i:04}")
        }
    }
    /// Out-of-policy calls whose number only the PSTN report has.
    fn number_only_in_pstn(i: usize) -> bool {
        kind(i) == Kind::OutOfPolicy && i % 20 == 12
    }
    /// The direct-routing leg without a call record.
    fn lone_leg_start(&self) -> DateTime<Utc> {
        self.start(CALLS) + TimeDelta::minutes(5)
    }
}

fn t(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn lit(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn identity_user(oid: &str, tenant: &str) -> Value {
    json!({"user": {"id": oid, "displayName": null, "tenantId": tenant}})
}

/// The call record of call `i` as Graph publishes it.
fn record(plan: &Plan, i: usize) -> Value {
    let (me, tenant) = match kind(i) {
        Kind::Outsiders => (
            format!("00000000-0000-4000-a000-{i:012}"),
            "11111111-2222-3333-4444-555555555555",
        ),
        _ => (Plan::user(i), TID),
    };
    let caller = identity_user(&me, tenant);
    let callee = if Plan::number_only_in_pstn(i) {
        identity_user(
            &format!("00000000-0000-4000-b000-{i:012}"),
            "99999999-2222-3333-4444-555555555555",
        )
    } else {
        json!({"phone": {"id": Plan::number(i)}})
    };
    let (s, e) = (lit(plan.start(i)), lit(plan.end(i)));
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#communications/callRecords(sessions(segments()))/$entity",
        "version": 1,
        "type": "peerToPeer",
        "modalities": ["audio"],
        "lastModifiedDateTime": e,
        "startDateTime": s,
        "endDateTime": e,
        "id": Plan::id(i),
        "joinWebUrl": null,
        "organizer": caller,
        "participants": [caller, callee],
        "sessions@odata.context": "https://graph.microsoft.com/v1.0/$metadata#communications/callRecords('x')/sessions(segments())",
        "sessions": [{
            "modalities": ["audio"],
            "startDateTime": s,
            "endDateTime": e,
            "id": format!("session-{i}"),
            "caller": {"@odata.type": "#microsoft.graph.callRecords.participantEndpoint", "identity": caller,
                       "userAgent": {"@odata.type": "#microsoft.graph.callRecords.clientUserAgent", "platform": "windows"}},
            "callee": {"@odata.type": "#microsoft.graph.callRecords.participantEndpoint", "identity": callee},
            "segments": [{
                "startDateTime": s, "endDateTime": e, "id": format!("segment-{i}"),
                "caller": {"@odata.type": "#microsoft.graph.callRecords.participantEndpoint", "identity": caller},
                "callee": {"@odata.type": "#microsoft.graph.callRecords.participantEndpoint", "identity": callee},
                "media": []
            }]
        }]
    })
}

/// `fromDateTime=…,toDateTime=…` of a function call path.
fn function_window(path: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let args = path.split_once('(')?.1.strip_suffix(')')?;
    let mut from = None;
    let mut to = None;
    for kv in args.split(',') {
        match kv.split_once('=')? {
            ("fromDateTime", v) => from = t(v),
            ("toDateTime", v) => to = t(v),
            _ => {}
        }
    }
    Some((from?, to?))
}

/// The stand-in: Entra token endpoint and Graph call records.
fn graph(plan: Arc<Plan>) -> (tokio::runtime::Runtime, StandIn) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let throttled_once = Arc::new(AtomicBool::new(false));
    let standin = rt.block_on(StandIn::start(move |r: &Recorded, base: &str| {
        answer(&plan, &throttled_once, r, base)
    }));
    (rt, standin)
}

fn answer(plan: &Plan, throttled_once: &AtomicBool, r: &Recorded, base: &str) -> Reply {
    if r.method == "POST" && r.path == format!("/{TID}/oauth2/v2.0/token") {
        let form = r.form();
        if form.get("grant_type").map(String::as_str) != Some("client_credentials")
            || form.get("client_secret").map(String::as_str) != Some("s3cret")
        {
            return Reply::json(401, json!({"error": "invalid_client"}));
        }
        return Reply::json(
            200,
            json!({"token_type": "Bearer", "expires_in": 3599, "access_token": TOKEN}),
        );
    }
    if r.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return Reply::json(
            401,
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}}),
        );
    }
    let q = r.query_pairs();
    let root = "/v1.0/communications/callRecords";
    if r.method != "GET" {
        return Reply::json(405, json!({"error": {"code": "MethodNotAllowed"}}));
    }
    if r.path == root {
        // List callRecords: `$filter` on startDateTime, pages of 50
        // (`$skiptoken` carries the offset and the window).
        let (offset, from, to) = if let Some(tok) = q.get("$skiptoken") {
            let parts: Vec<&str> = tok.split('~').collect();
            if parts.len() != 3 {
                return Reply::json(400, json!({"error": {"code": "BadRequest"}}));
            }
            // The second page is throttled once, as Graph does.
            if parts[0] == "50" && !throttled_once.swap(true, Ordering::SeqCst) {
                return Reply::json(
                    429,
                    json!({"error": {"code": "TooManyRequests", "message": "Too many requests"}}),
                )
                .header("Retry-After", "1");
            }
            (
                parts[0].parse::<usize>().unwrap(),
                t(parts[1]).unwrap(),
                t(parts[2]).unwrap(),
            )
        } else {
            let filter = q.get("$filter").cloned().unwrap_or_default();
            let w: Vec<&str> = filter.split(' ').collect();
            // startDateTime ge X and startDateTime lt Y
            if w.len() != 7
                || w[0] != "startDateTime"
                || w[1] != "ge"
                || w[4] != "startDateTime"
                || w[5] != "lt"
            {
                return Reply::json(
                    400,
                    json!({"error": {"code": "BadRequest", "message": "unsupported filter"}}),
                );
            }
            (0, t(w[2]).unwrap(), t(w[6]).unwrap())
        };
        let ids: Vec<usize> = (0..CALLS)
            .filter(|i| plan.start(*i) >= from && plan.start(*i) < to)
            .collect();
        let page: Vec<Value> = ids
            .iter()
            .skip(offset)
            .take(50)
            .map(|i| {
                let mut r = record(plan, *i);
                let o = r.as_object_mut().unwrap();
                o.remove("sessions");
                o.remove("sessions@odata.context");
                r
            })
            .collect();
        let mut body = json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#communications/callRecords",
            "value": page,
        });
        if offset + 50 < ids.len() {
            body["@odata.nextLink"] = json!(format!(
                "{base}{root}?$skiptoken={}~{}~{}",
                offset + 50,
                lit(from),
                lit(to)
            ));
        }
        return Reply::json(200, body);
    }
    if let Some(rest) = r.path.strip_prefix(&format!("{root}/")) {
        if rest.starts_with("getPstnCalls(") || rest.starts_with("getDirectRoutingCalls(") {
            let Some((from, to)) = function_window(rest) else {
                return Reply::json(400, json!({"error": {"code": "BadRequest"}}));
            };
            let pstn = rest.starts_with("getPstnCalls(");
            let mut rows: Vec<Value> = Vec::new();
            if pstn {
                for i in (0..CALLS).filter(|i| Plan::number_only_in_pstn(*i)) {
                    if plan.start(i) >= from && plan.start(i) < to {
                        rows.push(json!({
                            "id": format!("pstn-{i}"), "callId": format!("pstn-call-{i}"),
                            "userId": Plan::user(i), "userPrincipalName": "u@contoso.com",
                            "userDisplayName": "U", "startDateTime": lit(plan.start(i) + TimeDelta::seconds(1)),
                            "endDateTime": lit(plan.end(i)), "duration": 479, "charge": 0.0,
                            "callType": "user_out", "currency": "USD",
                            "calleeNumber": Plan::number(i), "usageCountryCode": "DE",
                            "tenantCountryCode": "DE", "connectionCharge": 0.0,
                            "callerNumber": "+14255550000", "destinationContext": null,
                            "destinationName": "Germany", "conferenceId": null,
                            "licenseCapability": "MCOPSTNU", "inventoryType": "Subscriber"
                        }));
                    }
                }
            } else if plan.lone_leg_start() >= from && plan.lone_leg_start() < to {
                rows.push(json!({
                    "id": "dr-1", "correlationId": "corr-1", "userId": Plan::user(0),
                    "userPrincipalName": "u@contoso.com", "userDisplayName": "U",
                    "startDateTime": lit(plan.lone_leg_start()),
                    "inviteDateTime": lit(plan.lone_leg_start()), "failureDateTime": null,
                    "endDateTime": lit(plan.lone_leg_start() + TimeDelta::seconds(300)),
                    "duration": 300, "callType": "ByotIn", "successfulCall": true,
                    "callerNumber": "+14255551111", "calleeNumber": "+14255550000",
                    "mediaPathLocation": "", "signalingLocation": "", "finalSipCode": 0,
                    "callEndSubReason": 0, "finalSipCodePhrase": "BYE", "trunkFullyQualifiedDomainName": "sbc.contoso.com",
                    "mediaBypassEnabled": false
                }));
            }
            // Two pages: the first row, then the rest through the next link.
            let skip: usize = q.get("$skip").and_then(|s| s.parse().ok()).unwrap_or(0);
            let mut body = json!({"value": rows.iter().skip(skip).take(if skip == 0 { 1 } else { usize::MAX }).cloned().collect::<Vec<_>>()});
            if skip == 0 && rows.len() > 1 {
                body["@odata.nextLink"] = json!(format!("{base}{}?$skip=1", r.path));
            }
            return Reply::json(200, body);
        }
        // GET callRecords/{id}?$expand=sessions($expand=segments)
        if q.get("$expand").map(String::as_str) != Some("sessions($expand=segments)") {
            return Reply::json(
                400,
                json!({"error": {"code": "BadRequest", "message": "expand"}}),
            );
        }
        return match (0..CALLS).find(|i| Plan::id(*i) == rest) {
            Some(i) => Reply::json(200, record(plan, i)),
            None => Reply::json(404, json!({"error": {"code": "NotFound"}})),
        };
    }
    Reply::json(404, json!({"error": {"code": "NotFound"}}))
}

/// The directory users and recordings of the plan, written through the
/// store (as the gateway would have).
async fn seed(store: &dyn MetadataStore, tenant: TenantId, plan: &Plan) -> BTreeMap<usize, UserId> {
    let mut users = BTreeMap::new();
    for k in 0..20 {
        let u = DirectoryUser {
            id: UserId(uuid::Uuid::new_v4()),
            tenant_id: tenant,
            directory_object_id: Some(Plan::user(k)),
            first_name: None,
            last_name: None,
            display_name: None,
            alias: None,
            email: Some(format!("user{k}@contoso.com")),
            upn: Some(format!("user{k}@contoso.com")),
            phone_numbers: vec![],
            sip_uri: None,
            tel_uri: None,
            groups: vec![],
            active: true,
            updated_at: now(),
        };
        store.upsert_directory_user(tenant, &u).await.unwrap();
        users.insert(k, u.id);
    }
    for i in 0..CALLS {
        let (from, to, status, code) = match kind(i) {
            Kind::NeverInvited | Kind::OutOfPolicy | Kind::Outsiders => continue,
            Kind::NodeCrash => (
                plan.start(i) + TimeDelta::seconds(2),
                plan.start(i) + TimeDelta::seconds(192),
                RecordingStatus::Stored,
                Some(PARTIAL_GATEWAY_NODE_LOST),
            ),
            Kind::BotRefused => (
                plan.start(i) + TimeDelta::seconds(1),
                plan.start(i) + TimeDelta::seconds(1),
                RecordingStatus::Failed,
                Some("refused:spool-full"),
            ),
            Kind::Recorded | Kind::RecordedByTime => (
                plan.start(i) + TimeDelta::seconds(2),
                plan.end(i),
                RecordingStatus::Stored,
                None,
            ),
        };
        let mut r = Recording::new(tenant, RecordingKind::Call, Direction::Outbound, from);
        if kind(i) != Kind::RecordedByTime {
            r.call_chain_id = Some(Plan::id(i));
            r.external_call_id = Some(format!("leg-{i}"));
        }
        r.ended_at = Some(to);
        r.duration_ms = Some((to - from).num_milliseconds());
        r.status = status;
        r.result_code = code.map(str::to_owned);
        r.participants.push(Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Caller,
            display_name: None,
            phone_number: None,
            uri: None,
            email: None,
            directory_user_id: Some(users[&(i % 20)]),
            recorded_user: true,
            joined_ms: Some(0),
            left_ms: None,
        });
        store.insert_recording(tenant, &r).await.unwrap();
    }
    users
}

fn cli(
    cwd: &Path,
    data: &Path,
    db: Option<&str>,
    env: &[(String, String)],
    args: &[&str],
) -> std::process::Output {
    let mut full = vec!["--data-dir", data.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut c = insights(cwd, &full);
    if let Some(u) = db {
        c.env("INSIGHTS_DATABASE__URL", u);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Checks one call of the report against the plan.
fn check_call(c: &Value, i: usize, crash_label: &str) {
    let status = c["status"].as_str().unwrap();
    let cov = c["coverage_permille"].as_u64().unwrap();
    let id = Plan::id(i);
    match kind(i) {
        Kind::NeverInvited => {
            assert_eq!(
                (status, c["reason"].as_str()),
                ("not-recorded", Some("not-invited")),
                "{id}: {c}"
            );
            assert_eq!(cov, 0);
        }
        Kind::NodeCrash => {
            assert_eq!(status, "partial", "{id}: {c}");
            assert_eq!(cov, 400, "{crash_label} {id}: {c}");
            let gaps = c["gaps"].as_array().unwrap();
            assert_eq!(gaps.len(), 1, "{c}");
            assert_eq!(gaps[0]["reason"], "node-crash", "{c}");
        }
        Kind::OutOfPolicy => {
            assert_eq!(status, "out-of-scope", "{id}: {c}");
            assert_eq!(c["rule"], "never-record:number-prefix", "{id}: {c}");
            assert!(c["rule_id"].is_string(), "{c}");
        }
        Kind::BotRefused => {
            assert_eq!(
                (status, c["reason"].as_str()),
                ("not-recorded", Some("bot-refused")),
                "{id}: {c}"
            );
            assert_eq!(c["result_code"], "refused:spool-full");
        }
        Kind::Outsiders => {
            assert_eq!(
                (status, c["rule"].as_str()),
                ("out-of-scope", Some("no-recorded-user")),
                "{id}: {c}"
            );
        }
        Kind::Recorded | Kind::RecordedByTime => {
            assert_eq!(status, "recorded", "{id}: {c}");
            assert_eq!(cov, 1000);
            assert_eq!(c["recording_ids"].as_array().unwrap().len(), 1, "{c}");
        }
    }
}

fn reconcile(db: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let plan = Arc::new(Plan::new());
    let (rt, standin) = graph(plan.clone());
    let env: Vec<(String, String)> = [
        ("INSIGHTS_ALLOW_INSECURE_HTTP", "true".to_owned()),
        (
            "INSIGHTS_DIRECTORY__CLIENT_ID",
            "completeness-test-client".to_owned(),
        ),
        (
            "INSIGHTS_DIRECTORY__GRAPH_BASE_URL",
            format!("{}/v1.0", standin.base),
        ),
        (
            "INSIGHTS_DIRECTORY__TOKEN_URL",
            format!("{}/{{tenant}}/oauth2/v2.0/token", standin.base),
        ),
        ("INSIGHTS_DIRECTORY__INTERVAL_SECS", "0".to_owned()),
        ("INSIGHTS_GRAPH_CLIENT_SECRET", "s3cret".to_owned()),
        ("INSIGHTS_COMPLETENESS__INITIAL_DELAY_SECS", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(db.map(|u| ("INSIGHTS_DATABASE__URL".to_owned(), u.to_owned())))
    .collect();
    let none: Vec<(String, String)> = Vec::new();
    cli(
        dir.path(),
        &data,
        db,
        &none,
        &[
            "admin",
            "tenant",
            "add",
            "contoso",
            "--directory-tenant-id",
            TID,
        ],
    );
    cli(
        dir.path(),
        &data,
        db,
        &none,
        &[
            "admin",
            "policy",
            "add",
            "--tenant",
            "contoso",
            "--list",
            "never-record",
            "--kind",
            "number-prefix",
            "--label",
            "doctor's line",
            "+4930999",
        ],
    );
    let db_env: Vec<(String, String)> = db
        .map(|u| vec![("INSIGHTS_DATABASE__URL".to_owned(), u.to_owned())])
        .unwrap_or_default();
    let tenant =
        super::key_vault::tenant_id(dir.path(), data.to_str().unwrap(), &db_env, "contoso");
    rt.block_on(async {
        let store: Arc<dyn MetadataStore> = match db {
            Some(u) => Arc::new(PgStore::connect(u, 2).await.unwrap()),
            None => Arc::new(
                SqliteStore::connect(
                    &format!("sqlite://{}", data.join("insights.db").display()),
                    1,
                )
                .await
                .unwrap(),
            ),
        };
        seed(store.as_ref(), tenant, &plan).await;
    });

    let log = dir.path().join("serve.log");
    let server = super::serve_with_env(dir.path(), &data, &env, &log);
    let http = reqwest::blocking::Client::new();
    let admin = super::accounts::sign_in_new_user_with(
        dir.path(),
        &data,
        &db.map(|u| vec![("INSIGHTS_DATABASE__URL", u)])
            .unwrap_or_default(),
        &server.base,
        Some("contoso"),
        "admin@contoso.com",
        "tenant-admin",
        &[],
    );
    let from = plan.base.date_naive().to_string();
    let to = (plan.end(CALLS) + TimeDelta::days(1))
        .date_naive()
        .to_string();
    let get = |token: &str, path: &str| {
        http.get(format!("{}{path}", server.base))
            .bearer_auth(token)
            .send()
            .unwrap()
    };

    // The daily run of the scheduler role (first shortly after start).
    let deadline = Instant::now() + Duration::from_secs(90);
    let report: Value = loop {
        let res = get(
            &admin.token,
            &format!("/api/completeness?from={from}&to={to}"),
        );
        assert_eq!(res.status(), 200);
        let v: Value = res.json().unwrap();
        if v["totals"]["calls"].as_u64() == Some(CALLS as u64 + 1) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled reconciliation: {v}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(report["configured"], true);
    let calls = report["calls"].as_array().unwrap();
    let by_id: BTreeMap<&str, &Value> = calls
        .iter()
        .map(|c| (c["call_id"].as_str().unwrap(), c))
        .collect();
    for i in 0..CALLS {
        let c = by_id
            .get(Plan::id(i).as_str())
            .unwrap_or_else(|| panic!("call {i} missing"));
        check_call(c, i, "scheduled");
    }
    let lone = by_id["pstn:dr-1"];
    assert_eq!(
        (
            lone["status"].as_str(),
            lone["reason"].as_str(),
            lone["call_type"].as_str()
        ),
        (
            Some("not-recorded"),
            Some("not-invited"),
            Some("directRouting")
        ),
        "{lone}"
    );
    let totals = &report["totals"];
    assert_eq!(
        [
            totals["in_scope"].as_u64(),
            totals["recorded"].as_u64(),
            totals["partial"].as_u64(),
            totals["not_recorded"].as_u64(),
            totals["out_of_scope"].as_u64()
        ],
        [Some(161), Some(100), Some(20), Some(41), Some(40)],
        "{totals}"
    );
    // (100 × 480 s × 100 % + 20 × 480 s × 40 % + 41 calls × 0) / (160 × 480 s + 300 s)
    assert_eq!(totals["coverage_permille"], 672, "{totals}");
    assert_eq!(report["threshold_permille"], 990);
    let run = &report["runs"][0];
    assert_eq!(run["trigger"], "scheduled", "{run}");
    assert_eq!(run["below_threshold"], true);
    assert_eq!(run["call_records"], CALLS as u64);
    assert_eq!(run["pstn_rows"], 11);
    assert_eq!(run["throttled_retries"], 1, "{run}");
    let took = |r: &Value| {
        let t = |k: &str| DateTime::parse_from_rfc3339(r[k].as_str().unwrap()).unwrap();
        (t("finished_at") - t("started_at")).num_milliseconds()
    };
    // Includes the one throttled page's Retry-After of 1 s.
    eprintln!(
        "completeness: the scheduled run reconciled {} call records in {} ms",
        CALLS,
        took(run)
    );
    let days = report["days"].as_array().unwrap();
    assert!(days.len() >= 2, "{days:?}");
    assert_eq!(
        days.iter()
            .map(|d| d["totals"]["calls"].as_u64().unwrap())
            .sum::<u64>(),
        CALLS as u64 + 1
    );

    // What Graph was asked: every record with sessions and segments, the
    // PSTN reports, one throttled page retried.
    let reqs = standin.requests();
    let graph_gets = |p: &str| reqs.iter().filter(|r| r.path.contains(p)).count();
    assert!(graph_gets("/getPstnCalls(fromDateTime=") >= 2);
    assert!(graph_gets("/getDirectRoutingCalls(fromDateTime=") >= 1);
    assert!(
        reqs.iter()
            .filter(|r| r.path.starts_with("/v1.0/communications/callRecords/0000"))
            .all(|r| r.query_pairs().get("$expand").map(String::as_str)
                == Some("sessions($expand=segments)"))
    );

    // The alert: audited, logged with ids only; the gauge.
    let audit: Value = get(
        &admin.token,
        "/api/audit?action=completeness-alert&limit=10",
    )
    .json()
    .unwrap();
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["details"]["coverage_permille"], 672);
    // ... and raised through the alert channels' entry point: one open
    // `reconciliation-gap` alert, ids and counts only.
    let alerts: Value = get(&admin.token, "/api/admin/alerts?open=true")
        .json()
        .unwrap();
    let gaps: Vec<&Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "reconciliation-gap")
        .collect();
    assert_eq!(gaps.len(), 1, "{alerts}");
    assert_eq!(gaps[0]["details"]["coverage_permille"], 672, "{alerts}");
    assert_eq!(
        gaps[0]["details"]["not_recorded"], totals["not_recorded"],
        "{alerts}"
    );
    let audit: Value = get(&admin.token, "/api/audit?action=completeness-run&limit=10")
        .json()
        .unwrap();
    assert_eq!(
        audit["events"][0]["actor"], "system:completeness",
        "{audit}"
    );
    let metrics = get(&admin.token, "/metrics").text().unwrap();
    assert!(
        metrics.contains("insights_completeness_coverage_ratio 0.672"),
        "{metrics}"
    );
    assert!(
        metrics.contains("insights_completeness_alerts_total 1"),
        "{metrics}"
    );

    // The .xlsx export.
    let res = get(
        &admin.token,
        &format!("/api/completeness/export.xlsx?from={from}&to={to}"),
    );
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let bytes = res.bytes().unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut sheet = String::new();
    for k in 0..zip.len() {
        std::io::Read::read_to_string(&mut zip.by_index(k).unwrap(), &mut sheet).unwrap();
    }
    assert!(
        sheet.contains(&Plan::id(1))
            && sheet.contains("node-crash")
            && sheet.contains("never-record:number-prefix")
    );

    // Roles: a compliance officer reads and runs; a user may not.
    let officer = super::accounts::sign_in_new_user_with(
        dir.path(),
        &data,
        &db.map(|u| vec![("INSIGHTS_DATABASE__URL", u)])
            .unwrap_or_default(),
        &server.base,
        Some("contoso"),
        "officer@contoso.com",
        "compliance-officer",
        &[],
    );
    let user = super::accounts::sign_in_new_user_with(
        dir.path(),
        &data,
        &db.map(|u| vec![("INSIGHTS_DATABASE__URL", u)])
            .unwrap_or_default(),
        &server.base,
        Some("contoso"),
        "user@contoso.com",
        "user",
        &[],
    );
    assert_eq!(get(&user.token, "/api/completeness").status(), 403);
    // On demand for the first 20 calls' period, by the officer.
    let (f, t2) = (lit(plan.start(0)), lit(plan.start(20)));
    let res = http
        .post(format!("{}/api/completeness/runs", server.base))
        .bearer_auth(&officer.token)
        .json(&json!({"from": f, "to": t2}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let r: Value = res.json().unwrap();
    assert_eq!(r["trigger"], "on-demand");
    assert_eq!(r["totals"]["calls"], 20, "{r}");
    assert_eq!(r["totals"]["recorded"], 10, "{r}");
    let res = http
        .post(format!("{}/api/completeness/runs", server.base))
        .bearer_auth(&user.token)
        .json(&json!({"from": f, "to": t2}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 403);
    let audit: Value = get(&admin.token, "/api/audit?action=completeness-view&limit=50")
        .json()
        .unwrap();
    assert!(audit["events"].as_array().unwrap().len() >= 2, "{audit}");

    // The CLI: a run of a period and the stored outcome.
    let o = cli(
        dir.path(),
        &data,
        db,
        &env,
        &[
            "admin",
            "completeness",
            "run",
            "--tenant",
            "contoso",
            "--from",
            &f,
            "--to",
            &t2,
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(
            "20 calls, 16 in scope: 10 recorded, 2 partial, 4 not recorded; 4 out of scope"
        ),
        "{out}"
    );
    let o = cli(
        dir.path(),
        &data,
        db,
        &none,
        &[
            "admin",
            "completeness",
            "show",
            "--tenant",
            "contoso",
            "--from",
            &f,
            "--to",
            &t2,
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("{} ", Plan::id(0))) && out.contains("not-recorded 0.0% not-invited"),
        "{out}"
    );
    assert!(out.contains("partial 40.0% node-crash"), "{out}");

    if db.is_none() {
        browser(dir.path(), &server.base, &officer, &plan);
    }

    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log.contains("completeness-below-threshold"), "{log}");
    assert!(
        !log.contains("+4930999") && !log.contains("+1425555") && !log.contains("s3cret"),
        "{log}"
    );
    drop(server);
}

#[test]
fn completeness_reconciles_200_call_records_through_serve_on_sqlite() {
    reconcile(None);
}

#[test]
fn completeness_reconciles_200_call_records_through_serve_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(insights_tests::fresh_pg_database());
    reconcile(Some(&url));
}

/// The completeness page in Chromium (`tests/browser/completeness.js`):
/// totals, the per-day chart drawn by the page, gaps, drill-down, .xlsx.
fn browser(cwd: &Path, base: &str, officer: &super::accounts::Session, plan: &Plan) {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("browser");
    let modules = browser_dir.join("node_modules");
    assert!(
        modules.join("playwright-core").is_dir(),
        "run `npm ci --prefix tests/browser` (scripts/test.sh does)"
    );
    let shots = std::env::var_os("INSIGHTS_UPDATE_SCREENSHOTS").map(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join("screenshots")
    });
    let spec = json!({
        "base": base,
        "tenant": "contoso",
        "password": crate::accounts::PASSWORD,
        "officer": { "email": officer.email, "seed": officer.totp_seed },
        "from": plan.base.date_naive().to_string(),
        "to": plan.end(CALLS).date_naive().to_string(),
        "crash_call": Plan::id(1),
        "screenshots": shots,
    });
    let spec_path = cwd.join("completeness-spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let out = std::process::Command::new("node")
        .arg(browser_dir.join("completeness.js"))
        .arg(&spec_path)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("completeness.js printed no report ({e}): {stdout}\n{stderr}"));
    let failed: Vec<&Value> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] != true)
        .collect();
    assert!(failed.is_empty(), "browser steps failed: {failed:#?}");
    assert_eq!(report["csp"], json!([]), "{report}");
    assert!(out.status.success(), "{stderr}");
}
