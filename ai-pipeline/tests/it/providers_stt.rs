//! Cloud speech-to-text against local stand-in servers that follow the
//! published shapes: OpenAI-compatible `/v1/audio/transcriptions`
//! (multipart) and Azure Speech batch transcription v3.2 (staged blobs,
//! create, poll, files, results, clean-up).

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_pipeline::providers::{AzureSpeechBatch, OpenAiTranscription};
use ai_pipeline::stt::{SpeechToText, SttError, Utterance};
use insights_core::config::Secret;
use insights_core::domain::ProviderCallOutcome;
use serde_json::json;
use support::{Reply, StandIn, context, http};

/// `ms` of a 440 Hz tone at 16 kHz.
fn tone(start_ms: i64, ms: usize) -> Utterance {
    let n = ms * 16;
    Utterance {
        start_ms,
        samples: (0..n)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin() * 0.3)
            .collect(),
    }
}

fn verbose(text_a: &str, text_b: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "task": "transcribe",
            "language": "english",
            "duration": 2.0,
            "text": format!("{text_a} {text_b}"),
            "segments": [
                {"id": 0, "seek": 0, "start": 0.0, "end": 0.84, "text": format!(" {text_a}"),
                 "tokens": [1, 2], "temperature": 0.0, "avg_logprob": -0.105,
                 "compression_ratio": 1.1, "no_speech_prob": 0.01},
                {"id": 1, "seek": 0, "start": 0.9, "end": 1.96, "text": format!(" {text_b}"),
                 "tokens": [3], "temperature": 0.0, "avg_logprob": -0.3,
                 "compression_ratio": 1.1, "no_speech_prob": 0.02}
            ]
        }),
    )
}

#[tokio::test]
async fn openai_transcriptions_multipart_shape_and_times() {
    let server = StandIn::start(|_, _| verbose("Hello there.", "How are you?")).await;
    let (ctx, records) = context();
    let stt = OpenAiTranscription::new(
        http(),
        ctx.clone(),
        &format!("{}/v1", server.base),
        Some(Secret::new("sk-stt")),
        "whisper-1",
    );
    let out = stt
        .transcribe(vec![tone(10_000, 2_000), tone(60_500, 1_000)])
        .await
        .unwrap_or_else(|e| panic!("transcribe: {e}"));
    assert_eq!(stt.id(), "openai-compatible:whisper-1");
    assert_eq!(out.len(), 2, "one result per utterance");
    let first: Vec<(i64, i64, &str, Option<&str>)> = out[0]
        .iter()
        .map(|r| (r.start_ms, r.end_ms, r.text.as_str(), r.language.as_deref()))
        .collect();
    assert_eq!(
        first,
        vec![
            (10_000, 10_840, "Hello there.", Some("en")),
            (10_900, 11_960, "How are you?", Some("en")),
        ],
        "segment times are relative to the recording, not the utterance"
    );
    assert!((out[0][0].confidence - (-0.105f32).exp()).abs() < 1e-4);
    assert_eq!(out[1][0].start_ms, 60_500);

    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "one request per utterance");
    for (r, ms) in reqs.iter().zip([2_000usize, 1_000]) {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/v1/audio/transcriptions")
        );
        assert_eq!(r.header("authorization"), Some("Bearer sk-stt"));
        assert!(
            r.header("content-type")
                .unwrap_or_default()
                .starts_with("multipart/form-data; boundary=")
        );
        let parts = r.multipart();
        let names: Vec<&str> = parts.keys().map(String::as_str).collect();
        assert_eq!(names, ["file", "model", "response_format", "temperature"]);
        let (filename, ctype, wav) = &parts["file"];
        assert_eq!(filename.as_deref(), Some("utterance.wav"));
        assert_eq!(ctype.as_deref(), Some("audio/wav"));
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(&wav[8..12], b"WAVE");
        assert_eq!(
            u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
            16_000
        );
        assert_eq!(
            wav.len(),
            44 + ms * 16 * 2,
            "16-bit mono PCM of the utterance"
        );
        assert_eq!(parts["model"].2, b"whisper-1");
        assert_eq!(parts["response_format"].2, b"verbose_json");
    }
    let recs = records.all();
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r.operation == "audio-transcriptions"
        && r.provider == "openai-compatible"
        && r.outcome == ProviderCallOutcome::Ok
        && r.recording_id == ctx.recording));
    assert_eq!(recs[0].bytes_sent, reqs[0].body.len() as i64);
    assert!(recs[0].bytes_sent > 64_000, "the audio is counted");
}

#[tokio::test]
async fn openai_transcriptions_retry_429_then_succeed() {
    let n = Arc::new(AtomicUsize::new(0));
    let server = {
        let n = n.clone();
        StandIn::start(move |_, _| {
            if n.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::json(
                    429,
                    json!({"error": {"message": "Rate limit", "type": "requests"}}),
                )
                .header("retry-after", "1")
            } else {
                verbose("One.", "Two.")
            }
        })
        .await
    };
    let (ctx, records) = context();
    let stt = OpenAiTranscription::new(http(), ctx, &server.base, None, "whisper-1");
    let started = std::time::Instant::now();
    let out = stt
        .transcribe(vec![tone(0, 500)])
        .await
        .unwrap_or_else(|e| panic!("after 429: {e}"));
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(out[0].len(), 2);
    assert_eq!(server.requests().len(), 2);
    assert_eq!(records.all()[0].outcome, ProviderCallOutcome::RateLimited);
}

#[tokio::test]
async fn openai_transcriptions_persistent_500_is_transient() {
    let server =
        StandIn::start(|_, _| Reply::json(503, json!({"error": {"message": "overloaded"}}))).await;
    let (ctx, records) = context();
    let stt = OpenAiTranscription::new(http(), ctx, &server.base, None, "whisper-1");
    let err = stt
        .transcribe(vec![tone(0, 300)])
        .await
        .err()
        .unwrap_or_else(|| panic!("must fail"));
    assert!(err.is_transient(), "{err}");
    assert_eq!(server.requests().len(), 3);
    assert_eq!(records.all().len(), 3);
}

#[tokio::test]
async fn openai_transcriptions_401_is_not_transient() {
    let server = StandIn::start(|_, _| {
        Reply::json(401, json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}))
    })
    .await;
    let (ctx, _) = context();
    let stt = OpenAiTranscription::new(
        http(),
        ctx,
        &server.base,
        Some(Secret::new("wrong")),
        "whisper-1",
    );
    let err = stt.transcribe(vec![tone(0, 300)]).await.err();
    assert!(matches!(err, Some(SttError::Unavailable(_))), "{err:?}");
    assert!(!err.is_some_and(|e| e.is_transient()));
    assert_eq!(server.requests().len(), 1);
}

/// A stand-in for Azure Speech batch transcription v3.2 and the staging
/// container, with what it saw.
#[derive(Default)]
struct AzureState {
    content_urls: Vec<String>,
    polls: usize,
}

fn azure_handler(state: Arc<Mutex<AzureState>>) -> impl Fn(&support::Recorded, &str) -> Reply {
    move |r, base| {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        let t = format!("{base}/speechtotext/v3.2/transcriptions/7f1c");
        match (r.method.as_str(), r.path.as_str()) {
            ("PUT", p) if p.starts_with("/staging/") => Reply::empty(201),
            ("DELETE", p) if p.starts_with("/staging/") => Reply::empty(202),
            ("POST", "/speechtotext/v3.2/transcriptions") => {
                let body = r.json();
                st.content_urls = body["contentUrls"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                Reply::json(
                    201,
                    json!({"self": t, "status": "NotStarted", "locale": "en-US",
                           "createdDateTime": "2026-11-23T02:00:00Z",
                           "links": {"files": format!("{t}/files")}}),
                )
                .header("location", &t)
            }
            ("GET", "/speechtotext/v3.2/transcriptions/7f1c") => {
                st.polls += 1;
                let status = if st.polls < 2 { "Running" } else { "Succeeded" };
                Reply::json(
                    200,
                    json!({"self": t, "status": status, "links": {"files": format!("{t}/files")}}),
                )
            }
            ("GET", "/speechtotext/v3.2/transcriptions/7f1c/files") => Reply::json(
                200,
                json!({"values": [
                    {"self": format!("{t}/files/1"), "name": "contenturl_1.json", "kind": "Transcription",
                     "links": {"contentUrl": format!("{base}/results/1.json?skoid=x&sig=abc")}},
                    {"self": format!("{t}/files/0"), "name": "contenturl_0.json", "kind": "Transcription",
                     "links": {"contentUrl": format!("{base}/results/0.json?skoid=x&sig=abc")}},
                    {"self": format!("{t}/files/r"), "name": "report.json", "kind": "TranscriptionReport",
                     "links": {"contentUrl": format!("{base}/results/report.json")}}
                ]}),
            ),
            ("GET", p) if p.starts_with("/results/") => {
                let i: usize = p
                    .trim_start_matches("/results/")
                    .trim_end_matches(".json")
                    .parse()
                    .unwrap_or(0);
                // Azure reports the source without its SAS.
                let source = st
                    .content_urls
                    .get(i)
                    .map(|u| u.split('?').next().unwrap_or("").to_owned());
                let phrase = |offset: i64, dur: i64, text: &str| {
                    json!({
                        "recognitionStatus": "Success", "channel": 0, "offset": "PT0S",
                        "duration": "PT1S", "offsetInTicks": offset, "durationInTicks": dur,
                        "nBest": [{"confidence": 0.93, "lexical": text.to_lowercase(), "itn": text,
                                   "maskedITN": text, "display": text}]
                    })
                };
                Reply::json(
                    200,
                    json!({
                        "source": source,
                        "timestamp": "2026-11-23T02:00:05Z",
                        "durationInTicks": 20_000_000,
                        "duration": "PT2S",
                        "combinedRecognizedPhrases": [],
                        "recognizedPhrases": if i == 0 {
                            vec![phrase(2_000_000, 6_000_000, "Good morning."),
                                 json!({"recognitionStatus": "NoMatch", "channel": 0,
                                        "offsetInTicks": 9_000_000, "durationInTicks": 1_000_000})]
                        } else {
                            vec![phrase(0, 5_000_000, "Thanks, bye.")]
                        }
                    }),
                )
            }
            ("DELETE", "/speechtotext/v3.2/transcriptions/7f1c") => Reply::empty(204),
            _ => Reply::json(404, json!({"code": "NotFound"})),
        }
    }
}

#[tokio::test]
async fn azure_batch_transcription_flow() {
    let state = Arc::new(Mutex::new(AzureState::default()));
    let server = StandIn::start(azure_handler(state.clone())).await;
    let (ctx, records) = context();
    let stt = AzureSpeechBatch::new(
        http(),
        ctx,
        &server.base,
        "v3.2",
        "en-US",
        Secret::new("speech-key-1"),
        Secret::new(format!(
            "{}/staging?sv=2022-11-02&sp=cwrd&sig=s1g",
            server.base
        )),
        Duration::from_millis(20),
        Duration::from_secs(10),
    );
    let out = stt
        .transcribe(vec![tone(5_000, 1_000), tone(42_000, 500)])
        .await
        .unwrap_or_else(|e| panic!("batch: {e}"));
    let got: Vec<Vec<(i64, i64, String)>> = out
        .iter()
        .map(|rs| {
            rs.iter()
                .map(|r| (r.start_ms, r.end_ms, r.text.clone()))
                .collect()
        })
        .collect();
    assert_eq!(
        got,
        vec![
            vec![(5_200, 5_800, "Good morning.".to_owned())],
            vec![(42_000, 42_500, "Thanks, bye.".to_owned())],
        ],
        "phrases mapped to their utterance by source, ticks to ms, NoMatch skipped"
    );
    assert!((out[0][0].confidence - 0.93).abs() < 1e-6);
    assert_eq!(out[0][0].language.as_deref(), Some("en-US"));

    let reqs = server.requests();
    let seen: Vec<(String, String)> = reqs
        .iter()
        .map(|r| {
            (
                r.method.clone(),
                r.path.split('/').take(3).collect::<Vec<_>>().join("/"),
            )
        })
        .collect();
    let methods: Vec<&str> = seen.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        methods,
        [
            "PUT", "PUT", "POST", "GET", "GET", "GET", "GET", "GET", "DELETE", "DELETE", "DELETE"
        ],
        "{seen:?}"
    );
    // Staging: Put Blob with the container SAS, WAV body, no speech key.
    for r in &reqs[..2] {
        assert!(r.path.starts_with("/staging/") && r.path.ends_with(".wav"));
        assert_eq!(r.query.as_deref(), Some("sv=2022-11-02&sp=cwrd&sig=s1g"));
        assert_eq!(r.header("x-ms-blob-type"), Some("BlockBlob"));
        assert_eq!(r.header("content-type"), Some("audio/wav"));
        assert_eq!(&r.body[..4], b"RIFF");
        assert_eq!(r.header("ocp-apim-subscription-key"), None);
    }
    // Create: the staged URLs (with SAS) as contentUrls, locale, key.
    let create = &reqs[2];
    assert_eq!(create.path, "/speechtotext/v3.2/transcriptions");
    assert_eq!(
        create.header("ocp-apim-subscription-key"),
        Some("speech-key-1")
    );
    let body = create.json();
    assert_eq!(body["locale"], "en-US");
    assert_eq!(body["properties"]["timeToLive"], "PT12H");
    let urls = state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .content_urls
        .clone();
    assert_eq!(urls.len(), 2);
    for (u, put) in urls.iter().zip(&reqs[..2]) {
        assert_eq!(
            u,
            &format!(
                "{}{}?{}",
                server.base,
                put.path,
                put.query.as_deref().unwrap_or("")
            )
        );
    }
    // Two polls (Running, Succeeded), the file list, two result files.
    // Polls and file listing carry the key; result files (SAS URLs) not.
    for r in &reqs[3..8] {
        let is_result = r.path.starts_with("/results/");
        assert_eq!(
            r.header("ocp-apim-subscription-key").is_some(),
            !is_result,
            "{}",
            r.path
        );
    }
    assert!(
        !reqs.iter().any(|r| r.path.contains("report")),
        "reports are not fetched"
    );
    // Clean-up: the transcription and both blobs are deleted.
    assert_eq!(reqs[8].path, "/speechtotext/v3.2/transcriptions/7f1c");
    assert!(reqs[9..].iter().all(|r| r.path.starts_with("/staging/")));
    let deleted: Vec<&str> = reqs[9..].iter().map(|r| r.path.as_str()).collect();
    let staged: Vec<&str> = reqs[..2].iter().map(|r| r.path.as_str()).collect();
    assert_eq!(deleted, staged);

    let ops: Vec<String> = records.all().iter().map(|r| r.operation.clone()).collect();
    assert_eq!(
        ops,
        [
            "stage-audio",
            "stage-audio",
            "create-transcription",
            "get-transcription",
            "get-transcription",
            "list-files",
            "get-result",
            "get-result",
            "delete-transcription",
            "delete-audio",
            "delete-audio"
        ]
    );
    assert!(records.all().iter().all(|r| r.provider == "azure-speech"));
}

#[tokio::test]
async fn azure_failed_transcription_is_rejected_and_cleaned_up() {
    let server = StandIn::start(|r, base| {
        let t = format!("{base}/speechtotext/v3.2/transcriptions/9");
        match (r.method.as_str(), r.path.as_str()) {
            ("PUT", _) => Reply::empty(201),
            ("POST", _) => Reply::json(201, json!({"self": t, "status": "NotStarted"})),
            ("GET", _) => Reply::json(
                200,
                json!({"self": t, "status": "Failed",
                       "properties": {"error": {"code": "InvalidData", "message": "bad audio"}}}),
            ),
            _ => Reply::empty(204),
        }
    })
    .await;
    let (ctx, _) = context();
    let stt = AzureSpeechBatch::new(
        http(),
        ctx,
        &server.base,
        "v3.2",
        "en-US",
        Secret::new("k"),
        Secret::new(format!("{}/staging?sig=x", server.base)),
        Duration::from_millis(10),
        Duration::from_secs(5),
    );
    let err = stt.transcribe(vec![tone(0, 200)]).await.err();
    assert!(matches!(err, Some(SttError::Rejected(_))), "{err:?}");
    let deletes = server
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(
        deletes, 2,
        "transcription and staged blob deleted after a failure"
    );
}

#[tokio::test]
async fn azure_links_to_another_host_never_get_the_key() {
    let server = StandIn::start(|r, _| match r.method.as_str() {
        "PUT" => Reply::empty(201),
        "POST" => Reply::json(
            201,
            json!({"self": "http://169.254.169.254/speechtotext/v3.2/transcriptions/1", "status": "Running"}),
        ),
        _ => Reply::empty(204),
    })
    .await;
    let (ctx, _) = context();
    let stt = AzureSpeechBatch::new(
        http(),
        ctx,
        &server.base,
        "v3.2",
        "en-US",
        Secret::new("k"),
        Secret::new(format!("{}/staging?sig=x", server.base)),
        Duration::from_millis(10),
        Duration::from_secs(5),
    );
    let err = stt.transcribe(vec![tone(0, 200)]).await.err();
    assert!(matches!(err, Some(SttError::Unavailable(_))), "{err:?}");
    assert!(!err.is_some_and(|e| e.is_transient()));
}

/// A stand-in whose file list names `result` (relative to the stand-in's
/// base when it starts with `/`) as the one result file.
fn azure_with_result(result: &'static str) -> impl Fn(&support::Recorded, &str) -> Reply {
    move |r, base| {
        let t = format!("{base}/speechtotext/v3.2/transcriptions/5");
        let link = if result.starts_with('/') {
            format!("{base}{result}")
        } else {
            result.to_owned()
        };
        match (r.method.as_str(), r.path.as_str()) {
            ("PUT", _) => Reply::empty(201),
            ("DELETE", _) => Reply::empty(202),
            ("POST", _) => Reply::json(
                201,
                json!({"self": t, "status": "Succeeded", "links": {"files": format!("{t}/files")}}),
            ),
            ("GET", "/speechtotext/v3.2/transcriptions/5/files") => Reply::json(
                200,
                json!({"values": [{"kind": "Transcription", "links": {"contentUrl": link}}]}),
            ),
            ("GET", _) => Reply::json(
                200,
                json!({"source": "nothing-we-sent", "recognizedPhrases": []}),
            ),
            _ => Reply::empty(404),
        }
    }
}

fn azure_stt(base: &str) -> AzureSpeechBatch {
    let (ctx, _) = context();
    AzureSpeechBatch::new(
        http(),
        ctx,
        base,
        "v3.2",
        "en-US",
        Secret::new("speech-key-2"),
        Secret::new(format!("{base}/staging?sv=1&sig=s2g")),
        Duration::from_millis(10),
        Duration::from_secs(5),
    )
}

/// Results are asked into the staging container; a result file there is
/// fetched with the container's SAS (never the key) and deleted with the
/// staged audio.
#[tokio::test]
async fn azure_results_in_the_staging_container_are_read_and_deleted() {
    let server = StandIn::start(azure_with_result("/staging/out/contenturl_0.json")).await;
    let stt = azure_stt(&server.base);
    // The stand-in's result names audio we did not send: refused, but
    // only after it was fetched from the staging container.
    let err = stt.transcribe(vec![tone(0, 200)]).await.err();
    assert!(err.is_some());
    let reqs = server.requests();
    let create = reqs
        .iter()
        .find(|r| r.method == "POST")
        .map(|r| r.json())
        .unwrap_or_default();
    assert_eq!(
        create["properties"]["destinationContainerUrl"],
        format!("{}/staging?sv=1&sig=s2g", server.base)
    );
    let fetched: Vec<_> = reqs
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/staging/out/contenturl_0.json")
        .collect();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].query.as_deref(), Some("sv=1&sig=s2g"));
    assert_eq!(fetched[0].header("ocp-apim-subscription-key"), None);
    assert!(
        reqs.iter()
            .any(|r| r.method == "DELETE" && r.path == "/staging/out/contenturl_0.json"),
        "the result file was left in the staging container"
    );
}

/// A result link to any other origin (here an internal address) is
/// refused without being requested.
#[tokio::test]
async fn azure_result_links_elsewhere_are_never_fetched() {
    let server = StandIn::start(azure_with_result(
        "http://169.254.169.254/metadata/instance?api-version=2021-02-01",
    ))
    .await;
    let stt = azure_stt(&server.base);
    let err = stt.transcribe(vec![tone(0, 200)]).await.err();
    // Refused for good: asking again would upload the audio again and get
    // the same link back.
    assert!(matches!(err, Some(SttError::Rejected(_))), "{err:?}");
    assert!(
        !err.is_some_and(|e| e.is_transient()),
        "refused, not attempted (a network error would be transient)"
    );
}
