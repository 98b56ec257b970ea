//! LLM recap providers against local stand-in servers that follow the
//! published shapes: OpenAI-compatible and Azure OpenAI chat completions,
//! the Anthropic Messages API. Checked: auth headers, paths, query
//! strings, request bodies, answer validation (citations), retries on
//! 429 (Retry-After) and 5xx, no retry on 401, processing records.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ai_pipeline::providers::{AnthropicChat, AzureOpenAiChat, OpenAiChat};
use ai_pipeline::recap::{LlmRecap, RecapEngine, RecapError, RecapInput};
use chrono::Utc;
use insights_core::config::Secret;
use insights_core::domain::*;
use serde_json::json;
use support::{Reply, StandIn, context, http};

struct Call {
    recording: RecordingId,
    people: Vec<Participant>,
    segments: Vec<TranscriptSegment>,
}

fn person(role: ParticipantRole, name: &str) -> Participant {
    Participant {
        id: ParticipantId::new(),
        role,
        display_name: Some(name.to_owned()),
        phone_number: None,
        uri: None,
        email: None,
        directory_user_id: None,
        recorded_user: false,
        joined_ms: Some(0),
        left_ms: None,
    }
}

fn call() -> Call {
    let recording = RecordingId::new();
    let people = vec![
        person(ParticipantRole::Caller, "Alice Martin"),
        person(ParticipantRole::Callee, "Bob Chen"),
    ];
    let lines = [
        (0, 0, "We need the revised quote for the fleet contract."),
        (1, 4_000, "I will send the revised quote by Thursday."),
        (0, 9_500, "Then we agreed to sign next week."),
    ];
    let segments = lines
        .iter()
        .map(|(who, start, text)| TranscriptSegment {
            id: SegmentId::new(),
            recording_id: recording,
            participant_id: Some(people[*who].id),
            start_ms: *start,
            end_ms: start + 3_000,
            text: (*text).to_owned(),
            confidence: 0.9,
            language: Some("en".into()),
        })
        .collect();
    Call {
        recording,
        people,
        segments,
    }
}

impl Call {
    fn input(&self) -> RecapInput<'_> {
        RecapInput {
            recording_id: self.recording,
            participants: &self.people,
            segments: &self.segments,
            at: now(),
        }
    }
}

/// The recap JSON a model answers: valid items and two that must be
/// dropped (an unknown segment number, no citation at all).
fn answer_json() -> String {
    json!({
        "summary": [{"text": "Bob will send a revised quote; signing next week.", "segments": [1, 2, 3]}],
        "key_points": [
            {"text": "The fleet contract needs a revised quote.", "segments": [1]},
            {"text": "Invented point.", "segments": [7]}
        ],
        "decisions": [{"text": "Sign next week.", "segments": [3]}],
        "action_items": [
            {"text": "Send the revised quote by Thursday.", "owner": "Bob Chen", "segments": [2]},
            {"text": "Uncited task.", "owner": null, "segments": []}
        ],
        "topics": [{"text": "fleet contract", "segments": [1]}]
    })
    .to_string()
}

fn chat_completion(content: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-test",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
        }),
    )
}

/// The items every provider must map `answer_json()` to.
fn assert_mapped(c: &Call, items: &[Insight], provider: &str) {
    let got: Vec<(InsightKind, &str, Vec<SegmentId>, Option<ParticipantId>)> = items
        .iter()
        .map(|i| {
            (
                i.kind,
                i.text.as_str(),
                i.citations.iter().map(|c| c.segment_id).collect(),
                i.owner_participant_id,
            )
        })
        .collect();
    let s = |i: usize| c.segments[i].id;
    assert_eq!(
        got,
        vec![
            (
                InsightKind::Summary,
                "Bob will send a revised quote; signing next week.",
                vec![s(0), s(1), s(2)],
                None
            ),
            (
                InsightKind::KeyPoint,
                "The fleet contract needs a revised quote.",
                vec![s(0)],
                None
            ),
            (InsightKind::Decision, "Sign next week.", vec![s(2)], None),
            (
                InsightKind::ActionItem,
                "Send the revised quote by Thursday.",
                vec![s(1)],
                Some(c.people[1].id)
            ),
            (InsightKind::Topic, "fleet contract", vec![s(0)], None),
        ],
        "invalid items dropped, the rest cited by segment"
    );
    for i in items {
        assert_eq!(i.provider, provider);
        assert!(!i.is_local());
        for cit in &i.citations {
            let seg = c
                .segments
                .iter()
                .find(|s| s.id == cit.segment_id)
                .unwrap_or_else(|| panic!("cited segment exists"));
            assert_eq!((cit.start_ms, cit.end_ms), (seg.start_ms, seg.end_ms));
        }
    }
}

fn assert_prompt(user: &str, c: &Call) {
    assert!(user.contains("- Alice Martin (caller)"), "{user}");
    assert!(
        user.contains(
            "[1] 00:00:00 Alice Martin: We need the revised quote for the fleet contract."
        ),
        "{user}"
    );
    assert!(
        user.contains("[2] 00:00:04 Bob Chen: I will send the revised quote by Thursday."),
        "{user}"
    );
    assert!(user.contains("[3] 00:00:09"), "{user}");
    assert_eq!(c.segments.len(), 3);
}

#[tokio::test]
async fn openai_compatible_chat_completions_shape() {
    let server =
        StandIn::start(|_, _| chat_completion(&format!("```json\n{}\n```", answer_json()))).await;
    let (ctx, records) = context();
    let model = OpenAiChat::new(
        http(),
        ctx.clone(),
        &format!("{}/v1", server.base),
        Some(Secret::new("sk-test-123")),
        "gpt-test",
        true,
    );
    let c = call();
    let items = LlmRecap::new(model)
        .recap(&c.input())
        .await
        .unwrap_or_else(|e| panic!("recap: {e}"));
    assert_mapped(&c, &items, "openai-compatible:gpt-test");

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(r.query, None);
    assert_eq!(r.header("authorization"), Some("Bearer sk-test-123"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["temperature"], 0);
    assert_eq!(body["response_format"]["type"], "json_object");
    assert_eq!(body["messages"][0]["role"], "system");
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("\"segments\"")
    );
    assert_eq!(body["messages"][1]["role"], "user");
    assert_prompt(
        body["messages"][1]["content"].as_str().unwrap_or_default(),
        &c,
    );

    let recs = records.all();
    assert_eq!(recs.len(), 1);
    let rec = &recs[0];
    assert_eq!(rec.tenant_id, ctx.tenant);
    assert_eq!(rec.recording_id, ctx.recording);
    assert_eq!(rec.provider, "openai-compatible");
    assert_eq!(rec.operation, "chat-completions");
    assert_eq!(rec.outcome, ProviderCallOutcome::Ok);
    assert_eq!(rec.http_status, Some(200));
    assert_eq!(rec.bytes_sent, r.body.len() as i64);
    assert!(rec.bytes_received > 200);
}

#[tokio::test]
async fn openai_compatible_without_key_sends_no_authorization() {
    let server = StandIn::start(|_, _| chat_completion(&answer_json())).await;
    let (ctx, _) = context();
    let model = OpenAiChat::new(
        http(),
        ctx,
        &format!("{}/v1/", server.base),
        None,
        "llama3",
        false,
    );
    let c = call();
    LlmRecap::new(model)
        .recap(&c.input())
        .await
        .unwrap_or_else(|e| panic!("recap: {e}"));
    let r = &server.requests()[0];
    assert_eq!(
        r.path, "/v1/chat/completions",
        "trailing slash of the base URL"
    );
    assert_eq!(r.header("authorization"), None);
    assert!(r.json().get("response_format").is_none());
}

#[tokio::test]
async fn azure_openai_chat_completions_shape() {
    let server = StandIn::start(|_, _| chat_completion(&answer_json())).await;
    let (ctx, records) = context();
    let model = AzureOpenAiChat::new(
        http(),
        ctx,
        &server.base,
        "recap-gpt4o",
        "2024-10-21",
        Secret::new("azure-key-456"),
    );
    let c = call();
    let items = LlmRecap::new(model)
        .recap(&c.input())
        .await
        .unwrap_or_else(|e| panic!("recap: {e}"));
    assert_mapped(&c, &items, "azure-openai:recap-gpt4o");
    let r = &server.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/openai/deployments/recap-gpt4o/chat/completions");
    assert_eq!(r.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(r.header("api-key"), Some("azure-key-456"));
    assert_eq!(r.header("authorization"), None);
    let body = r.json();
    assert!(
        body.get("model").is_none(),
        "the deployment names the model"
    );
    assert_eq!(body["messages"][0]["role"], "system");
    assert_prompt(
        body["messages"][1]["content"].as_str().unwrap_or_default(),
        &c,
    );
    assert_eq!(records.all()[0].provider, "azure-openai");
}

#[tokio::test]
async fn anthropic_messages_shape() {
    let answer = answer_json();
    let server = StandIn::start(move |_, _| {
        Reply::json(
            200,
            json!({
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "model": "claude-test",
                "content": [{"type": "text", "text": answer}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 100, "output_tokens": 60}
            }),
        )
    })
    .await;
    let (ctx, records) = context();
    let model = AnthropicChat::new(
        http(),
        ctx,
        &server.base,
        "claude-test",
        "2023-06-01",
        2048,
        Secret::new("ant-key-789"),
    );
    let c = call();
    let items = LlmRecap::new(model)
        .recap(&c.input())
        .await
        .unwrap_or_else(|e| panic!("recap: {e}"));
    assert_mapped(&c, &items, "anthropic:claude-test");
    let r = &server.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(r.header("x-api-key"), Some("ant-key-789"));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("authorization"), None);
    let body = r.json();
    assert_eq!(body["model"], "claude-test");
    assert_eq!(body["max_tokens"], 2048);
    assert!(body["system"].as_str().unwrap_or_default().contains("JSON"));
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["messages"][0]["role"], "user");
    assert_prompt(
        body["messages"][0]["content"].as_str().unwrap_or_default(),
        &c,
    );
    assert_eq!(records.all()[0].operation, "messages");
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_honoured_then_succeeds() {
    let n = Arc::new(AtomicUsize::new(0));
    let server = {
        let n = n.clone();
        StandIn::start(move |_, _| {
            if n.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::json(
                    429,
                    json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
                )
                .header("retry-after", "1")
            } else {
                chat_completion(&answer_json())
            }
        })
        .await
    };
    let (ctx, records) = context();
    let model = OpenAiChat::new(http(), ctx, &server.base, Some(Secret::new("k")), "m", true);
    let c = call();
    let started = Instant::now();
    let items = LlmRecap::new(model)
        .recap(&c.input())
        .await
        .unwrap_or_else(|e| panic!("recap after a 429: {e}"));
    assert!(
        started.elapsed().as_millis() >= 950,
        "waited for Retry-After"
    );
    assert_eq!(items.len(), 5);
    assert_eq!(server.requests().len(), 2);
    let outcomes: Vec<_> = records
        .all()
        .iter()
        .map(|r| (r.outcome, r.http_status))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (ProviderCallOutcome::RateLimited, Some(429)),
            (ProviderCallOutcome::Ok, Some(200))
        ]
    );
    // The request was sent twice: both count as data sent.
    assert!(records.all().iter().all(|r| r.bytes_sent > 0));
}

#[tokio::test]
async fn persistent_server_errors_end_transient_after_the_retry_limit() {
    let server =
        StandIn::start(|_, _| Reply::json(500, json!({"error": {"message": "boom"}}))).await;
    let (ctx, records) = context();
    let model = AzureOpenAiChat::new(
        http(),
        ctx,
        &server.base,
        "d",
        "2024-10-21",
        Secret::new("k"),
    );
    let c = call();
    let err = LlmRecap::new(model)
        .recap(&c.input())
        .await
        .err()
        .unwrap_or_else(|| panic!("a failing provider must fail"));
    assert!(err.is_transient(), "{err}");
    assert!(matches!(err, RecapError::Transient { .. }), "{err:?}");
    assert_eq!(server.requests().len(), 3, "max_attempts = 3");
    assert!(
        records
            .all()
            .iter()
            .all(|r| r.outcome == ProviderCallOutcome::Failed)
    );
    assert_eq!(records.all().len(), 3);
}

#[tokio::test]
async fn unauthorized_is_not_retried_and_not_transient() {
    let server = StandIn::start(|_, _| {
        Reply::json(401, json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}))
    })
    .await;
    let (ctx, records) = context();
    let model = AnthropicChat::new(
        http(),
        ctx,
        &server.base,
        "m",
        "2023-06-01",
        100,
        Secret::new("bad"),
    );
    let c = call();
    let err = LlmRecap::new(model)
        .recap(&c.input())
        .await
        .err()
        .unwrap_or_else(|| panic!("401 must fail"));
    assert!(!err.is_transient());
    assert!(matches!(err, RecapError::Unavailable(_)), "{err:?}");
    assert!(
        !err.to_string().contains("bad"),
        "the key is not in the error"
    );
    assert_eq!(server.requests().len(), 1);
    assert_eq!(records.all()[0].outcome, ProviderCallOutcome::Rejected);
}

#[tokio::test]
async fn other_client_errors_are_rejected_without_retry() {
    let server =
        StandIn::start(|_, _| Reply::json(400, json!({"error": {"message": "bad"}}))).await;
    let (ctx, _) = context();
    let model = OpenAiChat::new(http(), ctx, &server.base, None, "m", true);
    let c = call();
    let err = LlmRecap::new(model).recap(&c.input()).await.err();
    assert!(matches!(err, Some(RecapError::Rejected(_))), "{err:?}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn malformed_answers_are_errors() {
    for content in [
        "Sure! Here is your recap: summary: it went well.",
        "{\"summary\": [{\"text\": 1",
    ] {
        let content = content.to_owned();
        let server = StandIn::start(move |_, _| chat_completion(&content)).await;
        let (ctx, _) = context();
        let model = OpenAiChat::new(http(), ctx, &server.base, None, "m", true);
        let c = call();
        let err = LlmRecap::new(model).recap(&c.input()).await.err();
        assert!(matches!(err, Some(RecapError::InvalidAnswer(_))), "{err:?}");
    }
}

#[tokio::test]
async fn an_empty_transcript_calls_no_provider() {
    let server = StandIn::start(|_, _| chat_completion(&answer_json())).await;
    let (ctx, records) = context();
    let model = OpenAiChat::new(http(), ctx, &server.base, None, "m", true);
    let input = RecapInput {
        recording_id: RecordingId::new(),
        participants: &[],
        segments: &[],
        at: Utc::now(),
    };
    let items = LlmRecap::new(model)
        .recap(&input)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(items.is_empty());
    assert!(server.requests().is_empty() && records.all().is_empty());
}

#[tokio::test]
async fn a_retry_after_beyond_the_backoff_ceiling_goes_back_to_the_queue() {
    let server = StandIn::start(|_, _| {
        Reply::json(429, json!({"error": {"message": "quota"}})).header("retry-after", "3600")
    })
    .await;
    let (ctx, records) = context();
    let model = OpenAiChat::new(http(), ctx, &server.base, None, "m", true);
    let c = call();
    let started = Instant::now();
    let err = LlmRecap::new(model).recap(&c.input()).await.err();
    assert!(
        started.elapsed().as_secs() < 5,
        "no hour-long sleep in the worker"
    );
    match err {
        Some(RecapError::Transient { retry_after_ms, .. }) => {
            assert_eq!(
                retry_after_ms,
                Some(3_600_000),
                "the queue learns when to retry"
            )
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 1);
    assert_eq!(records.all()[0].outcome, ProviderCallOutcome::RateLimited);
}

#[tokio::test]
async fn an_unreachable_provider_is_transient_and_recorded() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
    };
    let (ctx, records) = context();
    let model = OpenAiChat::new(
        http(),
        ctx,
        &format!("http://127.0.0.1:{port}/v1"),
        None,
        "m",
        true,
    );
    let c = call();
    let err = LlmRecap::new(model).recap(&c.input()).await.err();
    assert!(
        err.as_ref().is_some_and(RecapError::is_transient),
        "{err:?}"
    );
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(!msg.contains("127.0.0.1"), "no URL in the error: {msg}");
    let recs = records.all();
    assert_eq!(recs.len(), 3);
    assert!(
        recs.iter()
            .all(|r| r.outcome == ProviderCallOutcome::Unreachable && r.http_status.is_none())
    );
}
