//! Microsoft Graph call records, read with the `[directory]` app
//! (application permissions `CallRecords.Read.All` and
//! `CallRecord-PstnCalls.Read.All`):
//!
//! * `GET /communications/callRecords?$filter=startDateTime ge … and
//!   startDateTime lt …` (List callRecords), following
//!   `@odata.nextLink`;
//! * `GET /communications/callRecords/{id}?$expand=sessions($expand=segments)`
//!   for each (sessions beyond the first page through
//!   `sessions@odata.nextLink`);
//! * `GET /communications/callRecords/getPstnCalls(fromDateTime=…,toDateTime=…)`
//!   and `getDirectRoutingCalls(…)` for PSTN legs, paged the same way.
//!
//! Throttling as Graph publishes it: `429`, `503` and `504` are retried
//! after `Retry-After` (seconds or an HTTP date, capped at
//! `[directory] max_retry_after_secs`; without it exponential backoff from
//! 1 s), at most `[directory] max_retries` times per request. A link
//! outside the configured service root is refused (the token goes nowhere
//! else). Nothing here logs a URL, a token or a body: call records name
//! people and numbers.

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::directory::{GraphClient, retry_after};

use super::CompletenessError;

/// A party of a call as the call record names it (identity set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordParty {
    /// Entra object id of a user (`identity.user.id`).
    pub object_id: Option<String>,
    /// The user's directory tenant (`identity.user.tenantId`).
    pub tenant_id: Option<String>,
    /// A phone number (`identity.phone.id`).
    pub phone: Option<String>,
}

/// One call record, reduced to what the reconciliation needs.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRecord {
    pub id: String,
    /// `groupCall`, `peerToPeer` or `unknown`.
    pub call_type: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// Organizer, participants and every session's caller and callee,
    /// deduplicated.
    pub parties: Vec<RecordParty>,
    /// Sessions read (with their segments).
    pub sessions: u32,
}

/// One row of `getPstnCalls` or `getDirectRoutingCalls`.
#[derive(Clone, Debug, PartialEq)]
pub struct PstnRow {
    /// The row's id (`id`).
    pub id: String,
    /// `pstn` or `directRouting`.
    pub source: &'static str,
    /// Entra object id of the Teams user of the leg.
    pub user_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub caller_number: Option<String>,
    pub callee_number: Option<String>,
}

/// A Graph collection page.
#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Value>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// Reads call records for one directory tenant with one token.
pub struct CallRecords<'a> {
    graph: &'a GraphClient,
    token: zeroize::Zeroizing<String>,
    /// Requests retried after throttling.
    pub throttled: u32,
}

/// Graph's date-time literal (UTC, seconds).
fn literal(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl<'a> CallRecords<'a> {
    /// With an app-only token for the directory tenant `tid`.
    pub async fn open(graph: &'a GraphClient, tid: uuid::Uuid) -> Result<Self, CompletenessError> {
        let token = graph.token(tid).await.map_err(CompletenessError::Graph)?;
        Ok(Self {
            graph,
            token,
            throttled: 0,
        })
    }

    fn base(&self) -> &str {
        &self.graph.config().graph_base_url
    }

    /// The ids of the call records that started in `[from, to)`.
    pub async fn list(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<String>, CompletenessError> {
        let mut url = url::Url::parse(&format!("{}/communications/callRecords", self.base()))
            .map_err(|_| CompletenessError::Protocol("graph_base_url is not a URL".into()))?;
        url.query_pairs_mut().append_pair(
            "$filter",
            &format!(
                "startDateTime ge {} and startDateTime lt {}",
                literal(from),
                literal(to)
            ),
        );
        let mut ids = Vec::new();
        for item in self.collection(url.to_string()).await? {
            if let Some(id) = item.get("id").and_then(Value::as_str) {
                ids.push(id.to_owned());
            }
        }
        Ok(ids)
    }

    /// One call record with its sessions and segments.
    pub async fn get(&mut self, id: &str) -> Result<CallRecord, CompletenessError> {
        let mut url = url::Url::parse(&format!("{}/communications/callRecords", self.base()))
            .map_err(|_| CompletenessError::Protocol("graph_base_url is not a URL".into()))?;
        url.path_segments_mut()
            .map_err(|_| CompletenessError::Protocol("graph_base_url is not a URL".into()))?
            .push(id);
        url.query_pairs_mut()
            .append_pair("$expand", "sessions($expand=segments)");
        let mut body = self.get_json(url.as_str()).await?;
        let mut sessions: Vec<Value> = match body.get_mut("sessions").map(Value::take) {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        if let Some(next) = body
            .get("sessions@odata.nextLink")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            sessions.extend(self.collection(next).await?);
        }
        parse_record(&body, &sessions)
    }

    /// PSTN (Calling Plan) and direct-routing legs in `[from, to)`.
    pub async fn pstn(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PstnRow>, CompletenessError> {
        let mut out = Vec::new();
        for (function, source) in [
            ("getPstnCalls", "pstn"),
            ("getDirectRoutingCalls", "directRouting"),
        ] {
            let url = format!(
                "{}/communications/callRecords/{function}(fromDateTime={},toDateTime={})",
                self.base(),
                literal(from),
                literal(to)
            );
            for row in self.collection(url).await? {
                if let Some(r) = parse_pstn(&row, source) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Every item of a collection, following `@odata.nextLink`.
    async fn collection(&mut self, first: String) -> Result<Vec<Value>, CompletenessError> {
        let mut items = Vec::new();
        let mut next = Some(first);
        let mut pages = 0u32;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(CompletenessError::Protocol(
                    "more than 10 000 pages: the next links loop".into(),
                ));
            }
            let body = self.get_json(&url).await?;
            let page: Page = serde_json::from_value(body)
                .map_err(|_| CompletenessError::Protocol("a page is not a collection".into()))?;
            items.extend(page.value);
            next = page.next_link;
        }
        Ok(items)
    }

    /// One `GET`, waiting out throttling.
    async fn get_json(&mut self, url: &str) -> Result<Value, CompletenessError> {
        let parsed = url::Url::parse(url)
            .map_err(|_| CompletenessError::Protocol("a link is not a URL".into()))?;
        if !self.graph.same_origin(&parsed) {
            return Err(CompletenessError::Protocol(
                "a link points outside the configured Graph service root".into(),
            ));
        }
        let cfg = self.graph.config();
        let mut attempt: u32 = 0;
        loop {
            let res = self
                .graph
                .http()
                .get(parsed.clone())
                .bearer_auth(self.token.as_str())
                .header("accept", "application/json")
                .send()
                .await
                .map_err(|e| {
                    CompletenessError::Network(insights_http::TransportKind::of(&e).as_str())
                })?;
            let status = res.status();
            if matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ) {
                if attempt >= cfg.max_retries {
                    return Err(CompletenessError::Throttled {
                        retries: attempt,
                        status: status.as_u16(),
                    });
                }
                let wait = retry_after(res.headers(), attempt, cfg.max_retry_after);
                tracing::info!(
                    status = status.as_u16(),
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    attempt,
                    "Graph throttled the completeness reconciliation; waiting"
                );
                attempt += 1;
                self.throttled += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(CompletenessError::Refused(status.as_u16()));
            }
            if !status.is_success() {
                return Err(CompletenessError::Protocol(format!(
                    "Graph answered {}",
                    status.as_u16()
                )));
            }
            let bytes = res.bytes().await.map_err(|e| {
                CompletenessError::Network(insights_http::TransportKind::of(&e).as_str())
            })?;
            return serde_json::from_slice(&bytes)
                .map_err(|_| CompletenessError::Protocol("a Graph answer is not JSON".into()));
        }
    }
}

fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    v.get(key)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for k in path {
        cur = cur.get(*k)?;
    }
    cur.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The party an identity set names (`user`, `phone`; other identities,
/// e.g. applications, are no party of ours).
fn party(identity: &Value) -> Option<RecordParty> {
    let p = RecordParty {
        object_id: text(identity, &["user", "id"]),
        tenant_id: text(identity, &["user", "tenantId"]),
        phone: text(identity, &["phone", "id"]),
    };
    (p.object_id.is_some() || p.phone.is_some()).then_some(p)
}

/// A call record and its sessions, reduced.
pub fn parse_record(body: &Value, sessions: &[Value]) -> Result<CallRecord, CompletenessError> {
    let bad = |what: &str| CompletenessError::Protocol(format!("a call record lacks {what}"));
    let id = text(body, &["id"]).ok_or_else(|| bad("its id"))?;
    let started_at = time(body, "startDateTime").ok_or_else(|| bad("startDateTime"))?;
    let ended_at = time(body, "endDateTime").unwrap_or(started_at);
    let mut parties: Vec<RecordParty> = Vec::new();
    let mut add = |p: Option<RecordParty>| {
        if let Some(p) = p
            && !parties.contains(&p)
        {
            parties.push(p);
        }
    };
    add(body.get("organizer").and_then(party));
    for p in body
        .get("participants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(party(p));
    }
    for s in sessions {
        for side in ["caller", "callee"] {
            add(s.get(side).and_then(|e| e.get("identity")).and_then(party));
        }
        for seg in s
            .get("segments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for side in ["caller", "callee"] {
                add(seg
                    .get(side)
                    .and_then(|e| e.get("identity"))
                    .and_then(party));
            }
        }
    }
    Ok(CallRecord {
        id,
        call_type: text(body, &["type"]).unwrap_or_else(|| "unknown".into()),
        started_at,
        ended_at: ended_at.max(started_at),
        parties,
        sessions: u32::try_from(sessions.len()).unwrap_or(u32::MAX),
    })
}

/// A PSTN or direct-routing row, reduced (`None` without id or times).
pub fn parse_pstn(row: &Value, source: &'static str) -> Option<PstnRow> {
    let started_at = time(row, "startDateTime")?;
    Some(PstnRow {
        id: text(row, &["id"])?,
        source,
        user_id: text(row, &["userId"]),
        started_at,
        ended_at: time(row, "endDateTime")
            .unwrap_or(started_at)
            .max(started_at),
        caller_number: text(row, &["callerNumber"]),
        callee_number: text(row, &["calleeNumber"]),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use insights_tests::standins::http::{Recorded, Reply, StandIn};
    use serde_json::json;

    fn client(base: &str, max_retries: u32) -> GraphClient {
        GraphClient::new(crate::directory::GraphConfig {
            graph_base_url: format!("{base}/v1.0"),
            token_url: format!("{base}/{{tenant}}/token"),
            scope: "https://graph.microsoft.com/.default".into(),
            client_id: "app".into(),
            client_secret: zeroize::Zeroizing::new("s".into()),
            max_retries,
            max_retry_after: std::time::Duration::from_secs(1),
            request_timeout: std::time::Duration::from_secs(5),
        })
        .unwrap()
    }

    fn token(r: &Recorded) -> Option<Reply> {
        r.path.ends_with("/token").then(|| {
            Reply::json(
                200,
                json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "t"}),
            )
        })
    }

    /// Graph's failure answers become errors naming status codes only; a
    /// next link to another origin is refused before any request.
    #[tokio::test]
    async fn refusals_exhausted_throttling_and_foreign_links_are_errors() {
        let tid = uuid::Uuid::new_v4();
        let forbidden = StandIn::start(|r: &Recorded, _: &str| {
            token(r).unwrap_or_else(|| Reply::json(403, json!({"error": {"code": "Forbidden"}})))
        })
        .await;
        let g = client(&forbidden.base, 2);
        let mut c = CallRecords::open(&g, tid).await.unwrap();
        let (from, to) = (Utc::now() - chrono::Duration::days(1), Utc::now());
        assert!(matches!(
            c.list(from, to).await,
            Err(CompletenessError::Refused(403))
        ));

        let throttling = StandIn::start(|r: &Recorded, _: &str| {
            token(r).unwrap_or_else(|| {
                Reply::json(429, json!({"error": {"code": "TooManyRequests"}}))
                    .header("Retry-After", "0")
            })
        })
        .await;
        let g = client(&throttling.base, 2);
        let mut c = CallRecords::open(&g, tid).await.unwrap();
        assert!(matches!(
            c.get("x").await,
            Err(CompletenessError::Throttled {
                retries: 2,
                status: 429
            })
        ));
        assert_eq!(c.throttled, 2);
        assert_eq!(
            throttling
                .requests()
                .iter()
                .filter(|r| r.path == "/v1.0/communications/callRecords/x")
                .count(),
            3
        );

        let elsewhere = StandIn::start(|r: &Recorded, _: &str| {
            token(r).unwrap_or_else(|| {
                Reply::json(
                    200,
                    json!({"value": [{"id": "a"}], "@odata.nextLink": "http://127.0.0.1:9/v1.0/steal"}),
                )
            })
        })
        .await;
        let g = client(&elsewhere.base, 2);
        let mut c = CallRecords::open(&g, tid).await.unwrap();
        match c.list(from, to).await {
            Err(CompletenessError::Protocol(m)) => assert!(m.contains("outside"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_call_record_names_every_party_once_from_the_published_shape() {
        let body = json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#communications/callRecords(sessions(segments()))/$entity",
            "version": 1, "type": "peerToPeer", "modalities": ["audio"],
            "lastModifiedDateTime": "2026-12-01T10:05:00Z",
            "startDateTime": "2026-12-01T10:00:00Z", "endDateTime": "2026-12-01T10:04:00Z",
            "id": "e523d2ed-2966-4b6b-925b-754a88034cc5",
            "organizer": {"user": {"id": "oid-a", "displayName": "A", "tenantId": "t1"}},
            "participants": [
                {"user": {"id": "oid-a", "displayName": "A", "tenantId": "t1"}},
                {"phone": {"id": "+12345678901"}}
            ]
        });
        let sessions = vec![json!({
            "id": "s1", "startDateTime": "2026-12-01T10:00:00Z", "endDateTime": "2026-12-01T10:04:00Z",
            "caller": {"@odata.type": "#microsoft.graph.callRecords.participantEndpoint",
                       "identity": {"user": {"id": "oid-a", "tenantId": "t1"}}},
            "callee": {"@odata.type": "#microsoft.graph.callRecords.participantEndpoint",
                       "identity": {"phone": {"id": "+12345678901"}}},
            "segments": [{"id": "g1", "caller": {"identity": {"user": {"id": "oid-b", "tenantId": "t1"}}},
                          "callee": {"identity": {"phone": {"id": "+12345678901"}}}}]
        })];
        let r = parse_record(&body, &sessions).unwrap();
        assert_eq!(r.call_type, "peerToPeer");
        assert_eq!(r.sessions, 1);
        assert_eq!(
            r.parties
                .iter()
                .map(|p| (p.object_id.as_deref(), p.phone.as_deref()))
                .collect::<Vec<_>>(),
            vec![
                (Some("oid-a"), None),
                (None, Some("+12345678901")),
                (Some("oid-b"), None)
            ]
        );
        assert!(parse_record(&json!({"id": "x"}), &[]).is_err());
        let row = json!({"id": "p1", "callId": "c", "userId": "oid-a",
            "startDateTime": "2026-12-01T10:00:00Z", "endDateTime": "2026-12-01T10:04:00Z",
            "callerNumber": "+4930123", "calleeNumber": "+4930999", "callType": "user_out"});
        let p = parse_pstn(&row, "pstn").unwrap();
        assert_eq!(p.user_id.as_deref(), Some("oid-a"));
        assert_eq!(p.callee_number.as_deref(), Some("+4930999"));
    }
}
