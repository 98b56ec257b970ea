//! Which engines a job gets, end to end: local unless the tenant opted
//! into cloud AI; an opted-in recap through a stand-in provider lands in
//! the store with its citations and a processing record; logs carry no
//! transcript text, prompt or key.

use crate::support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use ai_pipeline::providers::{CallContext, Providers, SetupError, StoreRecords};
use ai_pipeline::recap::RecapInput;
use ai_pipeline::stt::{Recognized, SpeechToText, SttError, Utterance};
use async_trait::async_trait;
use insights_core::config::{
    AiSettings, AzureOpenAiSettings, CloudRecap, CloudStt, OpenAiSettings,
};
use insights_core::domain::*;
use insights_core::store::MetadataStore;
use serde_json::json;
use support::{Reply, StandIn};

/// The offline engine's stand-in.
struct FakeLocal;

#[async_trait]
impl SpeechToText for FakeLocal {
    fn id(&self) -> &str {
        "local:fake-whisper"
    }
    async fn transcribe(&self, u: Vec<Utterance>) -> Result<Vec<Vec<Recognized>>, SttError> {
        Ok(vec![Vec::new(); u.len()])
    }
}

fn openai_settings(base: &str) -> AiSettings {
    AiSettings {
        cloud_stt: CloudStt::OpenaiCompatible,
        cloud_recap: CloudRecap::OpenaiCompatible,
        max_attempts: 3,
        backoff_initial_ms: 10,
        backoff_max_ms: 2_000,
        openai: Some(OpenAiSettings {
            base_url: format!("{base}/v1"),
            api_key_env: Some("TEST_OPENAI_KEY".into()),
            chat_model: Some("gpt-test".into()),
            transcription_model: Some("whisper-1".into()),
            json_mode: true,
        }),
        ..AiSettings::default()
    }
}

fn env(name: &str) -> Option<String> {
    (name == "TEST_OPENAI_KEY" || name == "TEST_AZURE_KEY").then(|| "sk-secret-777".to_owned())
}

fn ctx() -> CallContext {
    support::context().0
}

#[test]
fn local_engines_unless_the_tenant_opted_in() {
    let settings = openai_settings("http://127.0.0.1:9");
    settings.validate().unwrap_or_else(|e| panic!("{e}"));
    let p =
        Providers::with_env(&settings, Arc::new(FakeLocal), env).unwrap_or_else(|e| panic!("{e}"));

    let off = p.for_job(&TenantSettings::default(), ctx());
    assert!(!off.cloud);
    assert_eq!(off.stt.id(), "local:fake-whisper");
    assert_eq!(off.recap.id(), "local:extractive");

    let opted_in = TenantSettings {
        cloud_ai_enabled: true,
        ..TenantSettings::default()
    };
    let on = p.for_job(&opted_in, ctx());
    assert!(on.cloud);
    assert_eq!(on.stt.id(), "openai-compatible:whisper-1");
    assert_eq!(on.recap.id(), "openai-compatible:gpt-test");

    // An installation without cloud providers keeps opted-in tenants local.
    let p = Providers::with_env(&AiSettings::default(), Arc::new(FakeLocal), |_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let e = p.for_job(&opted_in, ctx());
    assert!(!e.cloud);
    assert_eq!(
        (e.stt.id(), e.recap.id()),
        ("local:fake-whisper", "local:extractive")
    );
}

#[test]
fn a_missing_key_fails_at_start_up() {
    let settings = AiSettings {
        cloud_recap: CloudRecap::AzureOpenai,
        azure_openai: Some(AzureOpenAiSettings {
            endpoint: "https://contoso.openai.azure.com".into(),
            deployment: "recap".into(),
            api_key_env: "TEST_AZURE_KEY".into(),
            ..AzureOpenAiSettings::default()
        }),
        ..AiSettings::default()
    };
    settings.validate().unwrap_or_else(|e| panic!("{e}"));
    let err = Providers::with_env(&settings, Arc::new(FakeLocal), |_| None).err();
    assert!(
        matches!(&err, Some(SetupError::MissingKey(name)) if name == "TEST_AZURE_KEY"),
        "{err:?}"
    );
    let p =
        Providers::with_env(&settings, Arc::new(FakeLocal), env).unwrap_or_else(|e| panic!("{e}"));
    let opted_in = TenantSettings {
        cloud_ai_enabled: true,
        ..TenantSettings::default()
    };
    let e = p.for_job(&opted_in, ctx());
    assert_eq!(e.recap.id(), "azure-openai:recap");
    assert_eq!(
        e.stt.id(),
        "local:fake-whisper",
        "speech-to-text stays local"
    );
}

#[test]
fn settings_refuse_a_chosen_provider_without_its_section() {
    let s = AiSettings {
        cloud_stt: CloudStt::AzureSpeech,
        ..AiSettings::default()
    };
    let err = s
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("ai.azure_speech"), "{err}");
}

/// Log lines captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn opted_in_recap_is_stored_with_citations_and_a_processing_record() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        // Our crate at every level (HTTP internals log hosts at TRACE; the
        // platform's redacting writer masks those).
        .with_env_filter("ai_pipeline=trace")
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let world = insights_tests::world::World::sqlite().await;
    let store: Arc<dyn MetadataStore> = world.store.clone();
    let tenant = world.tenant("contoso").await;
    let settings = TenantSettings {
        cloud_ai_enabled: true,
        ..TenantSettings::default()
    };
    store
        .update_tenant_settings(tenant.id, &settings)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut rec = Recording::new(tenant.id, RecordingKind::Call, Direction::Inbound, now());
    for (role, name) in [
        (ParticipantRole::Caller, "Zelda Quux"),
        (ParticipantRole::Callee, "Bob Chen"),
    ] {
        rec.participants.push(Participant {
            id: ParticipantId::new(),
            role,
            display_name: Some(name.into()),
            phone_number: None,
            uri: None,
            email: None,
            directory_user_id: None,
            recorded_user: false,
            joined_ms: Some(0),
            left_ms: None,
        });
    }
    store
        .insert_recording(tenant.id, &rec)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let segments: Vec<TranscriptSegment> = [
        "The confidential merger with Globex closes on Friday.",
        "I will wire the escrow funds tomorrow.",
    ]
    .iter()
    .enumerate()
    .map(|(i, text)| TranscriptSegment {
        id: SegmentId::new(),
        recording_id: rec.id,
        participant_id: Some(rec.participants[i].id),
        start_ms: i as i64 * 5_000,
        end_ms: i as i64 * 5_000 + 4_000,
        text: (*text).into(),
        confidence: 0.9,
        language: Some("en".into()),
    })
    .collect();
    store
        .put_transcript_segments(tenant.id, rec.id, &segments)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    // The provider first rate-limits, then answers with one valid and one
    // hallucinated citation.
    let hits = Arc::new(Mutex::new(0));
    let server = {
        let hits = hits.clone();
        StandIn::start(move |_, _| {
            let mut n = hits.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            if *n == 1 {
                return Reply::json(429, json!({"error": {"message": "slow down"}}))
                    .header("retry-after-ms", "30");
            }
            let content = json!({
                "summary": [{"text": "Merger closes Friday; escrow wired tomorrow.", "segments": [1, 2]}],
                "action_items": [
                    {"text": "Wire the escrow funds.", "owner": "Bob Chen", "segments": [2]},
                    {"text": "Hallucinated task.", "owner": null, "segments": [9]}
                ]
            })
            .to_string();
            Reply::json(200, json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}))
        })
        .await
    };

    let providers = Providers::with_env(&openai_settings(&server.base), Arc::new(FakeLocal), env)
        .unwrap_or_else(|e| panic!("{e}"));
    let tenant = store
        .get_tenant(tenant.id)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let engines = providers.for_job(
        &tenant.settings,
        CallContext {
            tenant: tenant.id,
            recording: Some(rec.id),
            records: Arc::new(StoreRecords(store.clone())),
        },
    );
    let stored = store
        .list_transcript(tenant.id, rec.id)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let items = engines
        .recap
        .recap(&RecapInput {
            recording_id: rec.id,
            participants: &rec.participants,
            segments: &stored,
            at: now(),
        })
        .await
        .unwrap_or_else(|e| panic!("recap: {e}"));
    store
        .put_insights(tenant.id, rec.id, &items)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    let back = store
        .list_insights(tenant.id, rec.id)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(back.len(), 2, "the hallucinated item is dropped");
    assert_eq!(back[0].kind, InsightKind::Summary);
    assert_eq!(
        back[0].citations,
        vec![Citation::of(&segments[0]), Citation::of(&segments[1])]
    );
    assert_eq!(back[1].kind, InsightKind::ActionItem);
    assert_eq!(back[1].owner_participant_id, Some(rec.participants[1].id));
    assert_eq!(back[1].citations, vec![Citation::of(&segments[1])]);
    assert!(
        back.iter()
            .all(|i| i.provider == "openai-compatible:gpt-test")
    );

    let calls = store
        .list_provider_calls(
            tenant.id,
            &ProviderCallQuery {
                recording_id: Some(rec.id),
                ..ProviderCallQuery::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let outcomes: Vec<_> = calls
        .iter()
        .map(|c| (c.provider.as_str(), c.operation.as_str(), c.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (
                "openai-compatible",
                "chat-completions",
                ProviderCallOutcome::RateLimited
            ),
            (
                "openai-compatible",
                "chat-completions",
                ProviderCallOutcome::Ok
            ),
        ]
    );
    let sent: i64 = server.requests().iter().map(|r| r.body.len() as i64).sum();
    assert_eq!(calls.iter().map(|c| c.bytes_sent).sum::<i64>(), sent);

    let logs =
        String::from_utf8_lossy(&logs.0.lock().unwrap_or_else(|e| e.into_inner())).to_string();
    assert!(logs.contains("retrying"), "the retry is logged: {logs}");
    assert!(logs.contains("dropped"), "dropped items are logged: {logs}");
    for secret in [
        "sk-secret-777",
        "merger",
        "Globex",
        "escrow",
        "Zelda",
        "Hallucinated",
        "127.0.0.1",
    ] {
        assert!(!logs.contains(secret), "logs contain {secret:?}: {logs}");
    }
}
