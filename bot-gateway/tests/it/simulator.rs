//! The call simulator against the REAL webhook (temp SQLite store, the
//! simulator trust configured) and a stand-in for the media ingest
//! endpoint that implements the server side of `insights-media/1` and
//! records every message. Test speech comes from espeak-ng when it is
//! installed (required with CI=true), else a synthetic tone.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bot_gateway::calls::{CallInfo, RecordingError};
use bot_gateway::ingest::protocol::{AudioMessage, Control, Encoding, Mode, RefusalCode};
use bot_gateway::simulator::{
    FRAME_SAMPLES, FRAME_TICKS, SimError, SimParticipant, SimReport, SimulatedCall, TokenSource,
    is_voiced, load_audio, object_id_for_upn,
};
use bot_gateway::webhook::{GatewayState, mount};
use insights_core::config::GatewaySettings;
use insights_core::domain::{
    DirectoryUser, NewTenant, ParticipantRole, Recording, RecordingKind, Tenant, UserId,
};
use insights_core::store::MetadataStore;

const MEDIA_TOKEN: &str = "test-media-adapter-token";

/// What the media stand-in saw on one socket.
#[derive(Default)]
struct MediaLog {
    call_id: String,
    hello: Option<Control>,
    sources: Vec<(u32, String)>,
    messages: Vec<AudioMessage>,
    errors: Vec<String>,
    ended: bool,
    /// The gateway's view of the call when `end` arrived.
    info_at_end: Option<CallInfo>,
}

struct MediaStandIn {
    gateway: web::Data<GatewayState>,
    refuse: Mutex<Option<RefusalCode>>,
    logs: Mutex<Vec<Arc<Mutex<MediaLog>>>>,
}

async fn media_socket(
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    s: web::Data<MediaStandIn>,
) -> actix_web::Result<HttpResponse> {
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(format!("Bearer {MEDIA_TOKEN}").as_str()) {
        return Ok(HttpResponse::Unauthorized().finish());
    }
    let (res, mut session, mut stream) = actix_ws::handle(&req, body)?;
    let log = Arc::new(Mutex::new(MediaLog {
        call_id: path.into_inner(),
        ..MediaLog::default()
    }));
    s.logs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(log.clone());
    let call_id = log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .call_id
        .clone();
    actix_web::rt::spawn(async move {
        let note =
            |f: &dyn Fn(&mut MediaLog)| f(&mut log.lock().unwrap_or_else(|e| e.into_inner()));
        let mut recording_id = String::new();
        while let Some(Ok(msg)) = stream.recv().await {
            match msg {
                actix_ws::Message::Text(t) => match Control::decode(&t) {
                    Ok(hello @ Control::Hello { .. }) => {
                        note(&|l| l.hello = Some(hello.clone()));
                        let refuse = *s.refuse.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(code) = refuse {
                            let m = Control::Refused {
                                code,
                                message: "the spool is full".into(),
                            };
                            let _ = session.text(m.encode()).await;
                            let _ = session.close(None).await;
                            return;
                        }
                        // As the real ingest: report `recording` first.
                        let until = Instant::now() + Duration::from_secs(5);
                        let begun = loop {
                            match s.gateway.registry.begin_recording(&call_id).await {
                                Err(RecordingError::NotAnswered(_)) if Instant::now() < until => {
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                }
                                other => break other,
                            }
                        };
                        let reply = match begun {
                            Ok(h) => {
                                recording_id = h.recording_id.to_string();
                                Control::Ready {
                                    recording_id: recording_id.clone(),
                                }
                            }
                            Err(e) => Control::Refused {
                                code: RefusalCode::UnknownCall,
                                message: e.to_string(),
                            },
                        };
                        let _ = session.text(reply.encode()).await;
                    }
                    Ok(Control::Source {
                        source_id,
                        participant_id,
                    }) => note(&|l| l.sources.push((source_id, participant_id.clone()))),
                    Ok(Control::End) => {
                        let info = s.gateway.registry.call_info(&call_id).await;
                        note(&|l| {
                            l.ended = true;
                            l.info_at_end = info.clone();
                        });
                        let closed = Control::Closed {
                            recording_id: recording_id.clone(),
                        };
                        let _ = session.text(closed.encode()).await;
                        let _ = session.close(None).await;
                        return;
                    }
                    Ok(other) => note(&|l| l.errors.push(format!("unexpected {other:?}"))),
                    Err(e) => note(&|l| l.errors.push(e.to_string())),
                },
                actix_ws::Message::Binary(b) => match AudioMessage::decode(&b) {
                    Ok(m) => note(&|l| l.messages.push(m.clone())),
                    Err(e) => note(&|l| l.errors.push(e.to_string())),
                },
                actix_ws::Message::Close(_) => break,
                _ => {}
            }
        }
    });
    Ok(res)
}

struct Harness {
    data_dir: tempfile::TempDir,
    store: Arc<dyn MetadataStore>,
    tenant: Tenant,
    tid: uuid::Uuid,
    url: String,
    settings: GatewaySettings,
    media: web::Data<MediaStandIn>,
    handle: ServerHandle,
}

impl Harness {
    async fn start() -> Harness {
        let insights_tests::world::World {
            dir: data_dir,
            store,
            ..
        } = insights_tests::world::World::sqlite().await;
        let tid = uuid::Uuid::new_v4();
        let tenant = store
            .create_tenant(NewTenant {
                name: "contoso".into(),
                directory_tenant_id: Some(tid),
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // A local gateway: simulator tokens trusted (off by default), no
        // Microsoft app.
        let settings = GatewaySettings {
            trust_simulator_key: true,
            ..GatewaySettings::default()
        };
        let gateway = web::Data::new(
            GatewayState::builder(&settings, data_dir.path(), store.clone())
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let media = web::Data::new(MediaStandIn {
            gateway: gateway.clone(),
            refuse: Mutex::new(None),
            logs: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let url = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let mounted = mount(gateway.clone());
        let m = media.clone();
        let server = HttpServer::new(move || {
            App::new()
                .configure(mounted.clone())
                .app_data(m.clone())
                .route("/media/v1/calls/{call_id}", web::get().to(media_socket))
        })
        .workers(2)
        .listen(listener)
        .unwrap_or_else(|e| panic!("{e}"))
        .disable_signals()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Harness {
            data_dir,
            store,
            tenant,
            tid,
            url,
            settings,
            media,
            handle,
        }
    }

    /// Registers a Teams user in the tenant's directory.
    async fn add_directory_user(&self, name: &str, upn: &str) -> UserId {
        let id = UserId::new();
        let user = DirectoryUser {
            id,
            tenant_id: self.tenant.id,
            directory_object_id: Some(object_id_for_upn(upn)),
            first_name: None,
            last_name: None,
            display_name: Some(name.into()),
            alias: None,
            email: Some(upn.into()),
            upn: Some(upn.into()),
            phone_numbers: Vec::new(),
            sip_uri: None,
            tel_uri: None,
            groups: Vec::new(),
            active: true,
            updated_at: insights_core::domain::now(),
        };
        self.store
            .upsert_directory_user(self.tenant.id, &user)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        id
    }

    fn call(&self, participants: Vec<SimParticipant>) -> SimulatedCall {
        let mut c = SimulatedCall::new(
            self.url.clone(),
            self.tid,
            participants,
            TokenSource::SimulatorKey {
                key_path: self.settings.simulator_key_path(self.data_dir.path()),
                audience: self.settings.audience().to_owned(),
            },
            MEDIA_TOKEN,
        );
        c.speed = 0.0;
        c.control_timeout = Duration::from_secs(10);
        c
    }

    fn log(&self, call_id: &str) -> Arc<Mutex<MediaLog>> {
        self.media
            .logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|l| l.lock().unwrap_or_else(|e| e.into_inner()).call_id == call_id)
            .cloned()
            .unwrap_or_else(|| panic!("no media socket for {call_id}"))
    }

    async fn recording(&self, call_id: &str) -> Recording {
        self.store
            .recording_by_external_call_id(self.tenant.id, call_id)
            .await
            .unwrap_or_else(|e| panic!("recording of {call_id}: {e}"))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let h = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { h.stop(false).await });
        }
    }
}

/// Speech from espeak-ng at 16 kHz (through the recorder's import), or a
/// tone of about the same length when espeak-ng is not installed (with
/// CI=true its absence fails the test).
fn speech(text: &str, tone_hz: f64) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let wav = dir.path().join("speech.wav");
    let made = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .output();
    match made {
        Ok(out) if out.status.success() => {
            load_audio(&wav).unwrap_or_else(|e| panic!("espeak-ng output: {e}"))
        }
        other => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "espeak-ng is required with CI=true (apt-get install espeak-ng): {other:?}"
            );
            eprintln!("espeak-ng not found: using a synthetic tone instead of speech");
            tone(tone_hz, 0.08 * text.len() as f64)
        }
    }
}

fn tone(hz: f64, seconds: f64) -> Vec<i16> {
    let n = (16_000.0 * seconds) as usize;
    (0..n)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 16_000.0).sin()) as i16)
        .collect()
}

fn participant(name: &str, identity: &str, pcm: Vec<i16>) -> SimParticipant {
    SimParticipant {
        name: name.into(),
        identity: identity.into(),
        object_id: None,
        pcm,
    }
}

fn frames(pcm: &[i16]) -> usize {
    pcm.len().div_ceil(FRAME_SAMPLES)
}

fn samples(payload: &[u8]) -> Vec<i16> {
    payload
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Checks sequence numbers are 0, 1, 2, … and returns the first timestamp.
fn check_sequence(messages: &[AudioMessage]) -> i64 {
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m.sequence, i as u64, "sequence numbers must be contiguous");
        assert_eq!(m.encoding, Encoding::Pcm16);
    }
    messages.first().map(|m| m.timestamp).unwrap_or_default()
}

fn source_of(report: &SimReport, index: usize) -> u32 {
    report.participants[index].source_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_party_call_lands_with_every_frame_in_order() {
    let h = Harness::start().await;
    let alice_dir = h
        .add_directory_user("Alice Keller", "alice.keller@contoso.example")
        .await;
    let alice_pcm = speech("Hello, this is Alice from Contoso compliance.", 440.0);
    let bob_pcm = speech("Hi Alice, Bob here.", 660.0);
    let call = h.call(vec![
        participant(
            "Alice Keller",
            "alice.keller@contoso.example",
            alice_pcm.clone(),
        ),
        participant("Bob Caller", "+44 20 7946 0958", bob_pcm.clone()),
    ]);
    let started = Instant::now();
    let report = call.run().await.unwrap_or_else(|e| panic!("{e}"));
    let elapsed = started.elapsed();

    // --speed 0: far faster than real time.
    assert!(
        report.streaming_time < report.audio_duration / 2,
        "speed 0 took {:?} for {:?} of audio",
        report.streaming_time,
        report.audio_duration
    );
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    let (na, nb) = (frames(&alice_pcm), frames(&bob_pcm));
    assert_eq!(report.frames_sent, (na + nb) as u64);
    assert_eq!(report.messages_sent, report.frames_sent);
    assert_eq!(
        report.audio_duration,
        Duration::from_millis(20 * na.max(nb) as u64)
    );

    // The media stand-in saw the documented protocol.
    let log = std::mem::take(
        &mut *h
            .log(&report.call_id)
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    assert!(log.ended);
    assert_eq!(
        log.hello,
        Some(Control::Hello {
            protocol: "insights-media/1".into(),
            encoding: Encoding::Pcm16,
            mode: Mode::PerParticipant,
        })
    );
    let (sa, sb) = (source_of(&report, 0), source_of(&report, 1));
    assert_ne!(sa, sb);
    assert_eq!(
        log.sources,
        vec![
            (sa, report.participants[0].participant_id.clone()),
            (sb, report.participants[1].participant_id.clone()),
        ]
    );
    assert_eq!(log.messages.len() as u64, report.messages_sent);
    let base = check_sequence(&log.messages);
    // Per participant: one buffer per message, timestamps 20 ms apart, and
    // the audio itself comes back sample for sample (zero-padded).
    for (source, input) in [(sa, &alice_pcm), (sb, &bob_pcm)] {
        let mine: Vec<&AudioMessage> = log
            .messages
            .iter()
            .filter(|m| m.buffers.iter().any(|b| b.source_id == source))
            .collect();
        assert_eq!(mine.len(), frames(input));
        let mut audio = Vec::new();
        for (k, m) in mine.iter().enumerate() {
            assert_eq!(m.buffers.len(), 1, "per-participant: one buffer");
            assert_eq!(m.timestamp, base + FRAME_TICKS * k as i64);
            audio.extend(samples(&m.buffers[0].payload));
        }
        assert_eq!(&audio[..input.len()], &input[..]);
        assert!(audio[input.len()..].iter().all(|&s| s == 0));
    }
    // Timestamps never go back across the socket.
    assert!(
        log.messages
            .windows(2)
            .all(|w| w[1].timestamp >= w[0].timestamp)
    );

    // The gateway mapped each source id to its participant.
    let info = log.info_at_end.clone().unwrap_or_else(|| panic!("no call"));
    let rec = h.recording(&report.call_id).await;
    assert_eq!(report.recording_id, rec.id.to_string());
    assert_eq!(info.recording_id, rec.id);
    let by_source = |s: u32| {
        info.participants
            .iter()
            .find(|m| m.audio_source_ids.contains(&s.to_string()))
            .map(|m| m.participant_id)
    };
    let alice = rec
        .participants
        .iter()
        .find(|p| p.recorded_user)
        .unwrap_or_else(|| panic!("no recorded user: {:?}", rec.participants));
    let bob = rec
        .participants
        .iter()
        .find(|p| !p.recorded_user)
        .unwrap_or_else(|| panic!("no other side: {:?}", rec.participants));
    assert_eq!(by_source(sa), Some(alice.id));
    assert_eq!(by_source(sb), Some(bob.id));

    // One recording: Alice (recorded, caller, in the directory) and Bob.
    assert_eq!(rec.kind, RecordingKind::Call);
    assert_eq!(rec.participants.len(), 2, "{:?}", rec.participants);
    assert_eq!(alice.role, ParticipantRole::Caller);
    assert_eq!(alice.directory_user_id, Some(alice_dir));
    assert_eq!(alice.display_name.as_deref(), Some("Alice Keller"));
    assert_eq!(bob.role, ParticipantRole::Callee);
    assert_eq!(bob.phone_number.as_deref(), Some("+442079460958"));
    assert_eq!(bob.display_name.as_deref(), Some("Bob Caller"));
    assert!(rec.ended_at.is_some());
    assert_eq!(rec.result_code.as_deref(), Some("200/0"));
    // Simulator calls never reach Graph: answered and reported in-process.
    assert!(!h.media.gateway.simulated.operations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_sends_active_speakers_and_participants_leave() {
    let h = Harness::start().await;
    h.add_directory_user("Una Organizer", "una@contoso.example")
        .await;
    let una = tone(300.0, 0.6);
    let gina = tone(500.0, 0.3);
    // Pete speaks 0.2 s, then is silent 0.2 s: silence is not sent.
    let mut pete = tone(700.0, 0.2);
    pete.extend(std::iter::repeat_n(0, 3200));
    let mut call = h.call(vec![
        participant("Una Organizer", "una@contoso.example", una.clone()),
        participant("Gina Guest", "gina@fabrikam.example", gina.clone()),
        participant("Pete Phone", "+14255550100", pete.clone()),
    ]);
    call.meeting = true;
    let report = call.run().await.unwrap_or_else(|e| panic!("{e}"));

    let log = std::mem::take(
        &mut *h
            .log(&report.call_id)
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    assert!(matches!(
        log.hello,
        Some(Control::Hello {
            mode: Mode::Unmixed,
            ..
        })
    ));
    let base = check_sequence(&log.messages);
    let inputs = [&una, &gina, &pete];
    let total = frames(&una);
    // One message per 20 ms instant, with every voiced speaker in it.
    assert_eq!(log.messages.len(), total);
    for (k, m) in log.messages.iter().enumerate() {
        assert_eq!(m.timestamp, base + FRAME_TICKS * k as i64);
        let expected: Vec<u32> = (0..3)
            .filter(|&i| {
                let f = inputs[i].get(k * FRAME_SAMPLES..(k + 1) * FRAME_SAMPLES);
                f.is_some_and(is_voiced)
            })
            .map(|i| source_of(&report, i))
            .collect();
        let got: Vec<u32> = m.buffers.iter().map(|b| b.source_id).collect();
        assert_eq!(got, expected, "instant {k}");
    }
    assert_eq!(
        report.frames_sent,
        log.messages
            .iter()
            .map(|m| m.buffers.len() as u64)
            .sum::<u64>()
    );
    // Gina and Pete left when their audio ended; Una is still there.
    let info = log.info_at_end.clone().unwrap_or_else(|| panic!("no call"));
    let rec = h.recording(&report.call_id).await;
    let member = |name: &str| {
        let id = rec
            .participants
            .iter()
            .find(|p| p.display_name.as_deref() == Some(name))
            .map(|p| p.id)
            .unwrap_or_else(|| panic!("{name} not stored: {:?}", rec.participants));
        info.participants
            .iter()
            .find(|m| m.participant_id == id)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in the roster"))
    };
    assert!(member("Una Organizer").present);
    assert!(!member("Gina Guest").present);
    assert!(!member("Pete Phone").present);

    assert_eq!(rec.kind, RecordingKind::Meeting);
    assert_eq!(rec.participants.len(), 3, "{:?}", rec.participants);
    let role = |name: &str| {
        rec.participants
            .iter()
            .find(|p| p.display_name.as_deref() == Some(name))
            .map(|p| (p.role, p.recorded_user))
    };
    assert_eq!(
        role("Una Organizer"),
        Some((ParticipantRole::Organizer, true))
    );
    assert_eq!(role("Gina Guest"), Some((ParticipantRole::Attendee, false)));
    assert_eq!(role("Pete Phone"), Some((ParticipantRole::Attendee, false)));
    assert!(rec.ended_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_pacing_roughly_holds() {
    let h = Harness::start().await;
    let mut call = h.call(vec![
        participant("Ann", "ann@contoso.example", tone(440.0, 0.5)),
        participant("Ben", "+4930123456", tone(550.0, 0.5)),
    ]);
    call.speed = 1.0;
    let report = call.run().await.unwrap_or_else(|e| panic!("{e}"));
    // 25 instants: the last is due at 480 ms.
    assert!(
        report.streaming_time >= Duration::from_millis(470),
        "{:?}",
        report.streaming_time
    );
    assert!(
        report.streaming_time < Duration::from_millis(2500),
        "{:?}",
        report.streaming_time
    );
    call.speed = 4.0;
    call.call_id = uuid::Uuid::new_v4().to_string();
    let fast = call.run().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(fast.streaming_time >= Duration::from_millis(110));
    assert!(fast.streaming_time < report.streaming_time);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_bad_credentials_and_a_missing_gateway_are_clear_errors() {
    let h = Harness::start().await;
    let people = || {
        vec![
            participant("Ann", "ann@contoso.example", tone(440.0, 0.1)),
            participant("Ben", "+4930123456", tone(550.0, 0.1)),
        ]
    };
    // The gateway refuses the media: the code is in the error.
    *h.media.refuse.lock().unwrap_or_else(|e| e.into_inner()) = Some(RefusalCode::SpoolFull);
    let refused = h.call(people());
    let err = refused.run().await.err();
    assert!(
        matches!(
            err,
            Some(SimError::Refused {
                code: RefusalCode::SpoolFull,
                ..
            })
        ),
        "{err:?}"
    );
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("spool-full"), "{text}");
    // The simulator still hung up: the gateway has no dangling call.
    assert!(h.recording(&refused.call_id).await.ended_at.is_some());
    *h.media.refuse.lock().unwrap_or_else(|e| e.into_inner()) = None;

    // A wrong media adapter token.
    let mut call = h.call(people());
    call.media_token = "wrong".into();
    let err = call.run().await.err();
    assert!(
        matches!(err, Some(SimError::Unauthorized { .. })),
        "{err:?}"
    );
    assert!(
        err.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("media adapter token")
    );

    // A simulator key the gateway does not know: 401 with the code.
    let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut call = h.call(people());
    call.token_source = TokenSource::SimulatorKey {
        key_path: other.path().join("keys").join("simulator-signing.pem"),
        audience: h.settings.audience().to_owned(),
    };
    let err = call.run().await.err();
    assert!(
        matches!(&err, Some(SimError::Unauthorized { code: Some(c), .. }) if c == "token-unknown-key"),
        "{err:?}"
    );

    // Nobody listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut call = h.call(people());
    call.gateway_url = format!("http://127.0.0.1:{port}");
    let err = call.run().await.err();
    assert!(
        matches!(&err, Some(SimError::Unreachable { .. })),
        "{err:?}"
    );
    assert!(
        err.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("gateway unreachable")
    );
}
