//! A Microsoft Teams incoming webhook (a channel's "Incoming Webhook"
//! connector, or a Workflows "post to a channel when a webhook request
//! is received" trigger): `POST` of a JSON message whose attachments are
//! Adaptive Cards. Each request is checked against the published shape
//! (<https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#send-adaptive-cards-using-an-incoming-webhook>):
//! `type` `message`; `attachments` a non-empty array of
//! `{contentType: "application/vnd.microsoft.card.adaptive", content}`;
//! `content.type` `AdaptiveCard`, `content.version` 1.0-1.5, `content.body`
//! an array of elements with a known `type` (a `FactSet`'s facts with
//! string `title` and `value`). A good message is answered `200` with the
//! body `1`, as Teams does; a bad one `400` and noted in
//! [`Teams::problems`].

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::http::{Recorded, Reply, StandIn};

/// The webhook's path (the part of a real URL after the host).
pub const PATH: &str = "/webhookb2/insights-test/IncomingWebhook/0123/abcd";

/// A running Teams incoming-webhook stand-in.
pub struct Teams {
    server: StandIn,
    problems: Arc<Mutex<Vec<String>>>,
}

const ELEMENTS: &[&str] = &[
    "TextBlock",
    "FactSet",
    "Container",
    "ColumnSet",
    "Image",
    "ActionSet",
    "RichTextBlock",
];

/// What is wrong with a message, if anything.
pub fn check(req: &Recorded) -> Result<Vec<Value>, String> {
    if req.method != "POST" || req.path != PATH {
        return Err(format!("{} {}: not the webhook", req.method, req.path));
    }
    if !req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return Err("content-type is not application/json".into());
    }
    let v: Value = serde_json::from_slice(&req.body).map_err(|_| "body is not JSON".to_owned())?;
    if v["type"] != "message" {
        return Err("type is not \"message\"".into());
    }
    let atts = v["attachments"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or("attachments must be a non-empty array")?;
    let mut cards = Vec::new();
    for a in atts {
        if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
            return Err("attachment contentType is not an Adaptive Card".into());
        }
        let c = &a["content"];
        if c["type"] != "AdaptiveCard" {
            return Err("content.type is not AdaptiveCard".into());
        }
        let version = c["version"].as_str().ok_or("content.version missing")?;
        if !["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"].contains(&version) {
            return Err(format!(
                "content.version {version} is not supported by Teams"
            ));
        }
        let body = c["body"]
            .as_array()
            .ok_or("content.body must be an array")?;
        for e in body {
            let t = e["type"].as_str().unwrap_or_default();
            if !ELEMENTS.contains(&t) {
                return Err(format!("unknown element type {t:?}"));
            }
            if t == "TextBlock" && !e["text"].is_string() {
                return Err("a TextBlock without text".into());
            }
            if t == "FactSet" {
                let facts = e["facts"].as_array().ok_or("a FactSet without facts")?;
                if facts
                    .iter()
                    .any(|f| !f["title"].is_string() || !f["value"].is_string())
                {
                    return Err("a fact needs string title and value".into());
                }
            }
        }
        cards.push(c.clone());
    }
    Ok(cards)
}

impl Teams {
    /// Starts the stand-in.
    pub async fn start() -> Teams {
        let problems: Arc<Mutex<Vec<String>>> = Arc::default();
        let p = problems.clone();
        let server = StandIn::start(move |req, _| match check(req) {
            Ok(_) => Reply {
                status: 200,
                headers: vec![("content-type".into(), "text/plain".into())],
                body: b"1".to_vec(),
            },
            Err(e) => {
                p.lock().unwrap_or_else(|e| e.into_inner()).push(e.clone());
                Reply::json(400, serde_json::json!({ "error": e }))
            }
        })
        .await;
        Teams { server, problems }
    }

    /// The incoming-webhook URL to configure.
    pub fn url(&self) -> String {
        format!("{}{PATH}", self.server.base)
    }

    /// Every well-formed card received, in order.
    pub fn cards(&self) -> Vec<Value> {
        self.server
            .requests()
            .iter()
            .filter_map(|r| check(r).ok())
            .flatten()
            .collect()
    }

    /// Every request received, raw.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    /// What was wrong with the requests that were refused.
    pub fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
