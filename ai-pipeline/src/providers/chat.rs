//! Chat models for recaps: OpenAI-compatible chat completions (OpenAI,
//! vLLM, llama.cpp server, Ollama), Azure OpenAI chat completions and the
//! Anthropic Messages API. Temperature 0 and, where the API has it, JSON
//! mode; the answer is validated by [`crate::recap::parse_answer`].

use std::sync::Arc;

use async_trait::async_trait;
use insights_core::config::Secret;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::http::{CallContext, CallError, Http, Request};
use crate::recap::{ChatModel, RecapError};

impl From<CallError> for RecapError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unauthorized { .. } => RecapError::Unavailable(e.to_string()),
            CallError::Rejected { .. } | CallError::Failed(_) | CallError::Refused(_) => {
                RecapError::Rejected(e.to_string())
            }
            CallError::Transient {
                message,
                retry_after_ms,
            } => RecapError::Transient {
                message,
                retry_after_ms,
            },
            CallError::Invalid(m) => RecapError::InvalidAnswer(m),
        }
    }
}

/// `{base}/{path…}` with the path segments percent-encoded.
pub(crate) fn join_url(base: &str, segments: &[&str]) -> Result<url::Url, CallError> {
    let mut url = url::Url::parse(base)
        .map_err(|_| CallError::Invalid("provider base URL does not parse".into()))?;
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|_| CallError::Invalid("provider base URL cannot take a path".into()))?;
        path.pop_if_empty();
        path.extend(segments);
    }
    Ok(url)
}

#[derive(Deserialize)]
struct ChatCompletion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

fn first_choice(c: ChatCompletion) -> Result<String, RecapError> {
    c.choices
        .into_iter()
        .next()
        .and_then(|c| c.message.content)
        .ok_or_else(|| RecapError::InvalidAnswer("the completion has no message content".into()))
}

fn messages(system: &str, user: &str) -> serde_json::Value {
    json!([
        {"role": "system", "content": system},
        {"role": "user", "content": user},
    ])
}

/// OpenAI-compatible `POST {base_url}/chat/completions` (Bearer key).
pub struct OpenAiChat {
    pub(crate) http: Arc<Http>,
    pub(crate) ctx: CallContext,
    pub(crate) base_url: String,
    pub(crate) key: Option<Secret>,
    pub(crate) model: String,
    pub(crate) json_mode: bool,
    pub(crate) id: String,
}

impl OpenAiChat {
    pub const PROVIDER: &'static str = "openai-compatible";

    pub fn new(
        http: Arc<Http>,
        ctx: CallContext,
        base_url: &str,
        key: Option<Secret>,
        model: &str,
        json_mode: bool,
    ) -> Self {
        Self {
            http,
            ctx,
            base_url: base_url.to_owned(),
            key,
            model: model.to_owned(),
            json_mode,
            id: format!("{}:{model}", Self::PROVIDER),
        }
    }
}

#[async_trait]
impl ChatModel for OpenAiChat {
    fn id(&self) -> &str {
        &self.id
    }

    async fn complete(&self, system: &str, user: &str) -> Result<String, RecapError> {
        let url = join_url(&self.base_url, &["chat", "completions"])?;
        let mut body = json!({
            "model": self.model,
            "messages": messages(system, user),
            "temperature": 0,
        });
        if self.json_mode {
            body["response_format"] = json!({"type": "json_object"});
        }
        let mut req = Request::new(Method::POST, url.as_str()).json(&body);
        if let Some(k) = &self.key {
            req = req.header("authorization", format!("Bearer {}", k.expose()));
        }
        let reply = self
            .http
            .send(&self.ctx, Self::PROVIDER, "chat-completions", &req)
            .await?;
        first_choice(reply.json()?)
    }
}

/// Azure OpenAI `POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…`
/// (`api-key` header).
pub struct AzureOpenAiChat {
    pub(crate) http: Arc<Http>,
    pub(crate) ctx: CallContext,
    pub(crate) endpoint: String,
    pub(crate) deployment: String,
    pub(crate) api_version: String,
    pub(crate) key: Secret,
    pub(crate) id: String,
}

impl AzureOpenAiChat {
    pub const PROVIDER: &'static str = "azure-openai";

    pub fn new(
        http: Arc<Http>,
        ctx: CallContext,
        endpoint: &str,
        deployment: &str,
        api_version: &str,
        key: Secret,
    ) -> Self {
        Self {
            http,
            ctx,
            endpoint: endpoint.to_owned(),
            deployment: deployment.to_owned(),
            api_version: api_version.to_owned(),
            key,
            id: format!("{}:{deployment}", Self::PROVIDER),
        }
    }
}

#[async_trait]
impl ChatModel for AzureOpenAiChat {
    fn id(&self) -> &str {
        &self.id
    }

    async fn complete(&self, system: &str, user: &str) -> Result<String, RecapError> {
        let mut url = join_url(
            &self.endpoint,
            &[
                "openai",
                "deployments",
                &self.deployment,
                "chat",
                "completions",
            ],
        )?;
        url.query_pairs_mut()
            .append_pair("api-version", &self.api_version);
        let body = json!({
            "messages": messages(system, user),
            "temperature": 0,
            "response_format": {"type": "json_object"},
        });
        let req = Request::new(Method::POST, url.as_str())
            .header("api-key", self.key.expose())
            .json(&body);
        let reply = self
            .http
            .send(&self.ctx, Self::PROVIDER, "chat-completions", &req)
            .await?;
        first_choice(reply.json()?)
    }
}

/// Anthropic `POST {base_url}/v1/messages` (`x-api-key`,
/// `anthropic-version`).
pub struct AnthropicChat {
    pub(crate) http: Arc<Http>,
    pub(crate) ctx: CallContext,
    pub(crate) base_url: String,
    pub(crate) model: String,
    pub(crate) version: String,
    pub(crate) max_tokens: u32,
    pub(crate) key: Secret,
    pub(crate) id: String,
}

impl AnthropicChat {
    pub const PROVIDER: &'static str = "anthropic";

    pub fn new(
        http: Arc<Http>,
        ctx: CallContext,
        base_url: &str,
        model: &str,
        version: &str,
        max_tokens: u32,
        key: Secret,
    ) -> Self {
        Self {
            http,
            ctx,
            base_url: base_url.to_owned(),
            model: model.to_owned(),
            version: version.to_owned(),
            max_tokens,
            key,
            id: format!("{}:{model}", Self::PROVIDER),
        }
    }
}

#[derive(Deserialize)]
struct Message {
    content: Vec<ContentBlock>,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[async_trait]
impl ChatModel for AnthropicChat {
    fn id(&self) -> &str {
        &self.id
    }

    async fn complete(&self, system: &str, user: &str) -> Result<String, RecapError> {
        let url = join_url(&self.base_url, &["v1", "messages"])?;
        let body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": system,
            "messages": [{"role": "user", "content": user}],
            "temperature": 0,
        });
        let req = Request::new(Method::POST, url.as_str())
            .header("x-api-key", self.key.expose())
            .header("anthropic-version", self.version.as_str())
            .json(&body);
        let reply = self
            .http
            .send(&self.ctx, Self::PROVIDER, "messages", &req)
            .await?;
        let msg: Message = reply.json()?;
        let text: String = msg
            .content
            .into_iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text)
            .collect();
        if text.is_empty() {
            return Err(RecapError::InvalidAnswer(
                "the message has no text content".into(),
            ));
        }
        Ok(text)
    }
}
