//! The media-adapter side of `insights-media/1`: connect, hello, source
//! bindings, paced 20 ms frames, end.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use recorder::{EncoderConfig, Layout, OpusEncoder};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use super::{
    FRAME_SAMPLES, FRAME_TICKS, Notifier, Party, SimError, SimParticipantReport, SimReport,
    SimulatedCall, error_chain, notify,
};
use crate::ingest::protocol::{
    AudioMessage, Buffer, Control, Encoding, MAX_BUFFERS, Mode, PROTOCOL,
};

/// A frame counts as speech in `unmixed` mode when its RMS exceeds this
/// (about −60 dBFS): digital silence and faint dither are not sent.
const VOICE_RMS: f64 = 32.0;

/// Whether a 20 ms frame is sent as an active speaker in `unmixed` mode.
pub fn is_voiced(frame: &[i16]) -> bool {
    energy(frame) > VOICE_RMS * VOICE_RMS
}

fn energy(frame: &[i16]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    frame
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / frame.len() as f64
}

/// Frame `k` of `pcm`, zero-padded to 20 ms.
fn frame(pcm: &[i16], k: usize) -> Vec<i16> {
    let start = k * FRAME_SAMPLES;
    let mut f = pcm
        .get(start..pcm.len().min(start + FRAME_SAMPLES))
        .unwrap_or_default()
        .to_vec();
    f.resize(FRAME_SAMPLES, 0);
    f
}

fn le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn frames_of(pcm: &[i16]) -> usize {
    pcm.len().div_ceil(FRAME_SAMPLES)
}

/// Something the gateway said while we stream.
enum Incoming {
    Control(Control),
    Closed(Option<String>),
    Failed(String),
}

fn ticks_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos() / 100).unwrap_or(i64::MAX / 2))
        .unwrap_or(0)
}

fn ws_error(url: &str, e: tungstenite::Error) -> SimError {
    match e {
        tungstenite::Error::Http(res) => {
            let status = res.status().as_u16();
            if status == 401 || status == 403 {
                SimError::Unauthorized {
                    what: "the media WebSocket (check the media adapter token)",
                    code: None,
                }
            } else {
                SimError::Http {
                    what: "the media WebSocket upgrade",
                    status,
                    code: (status == 404).then(|| "no media ingest endpoint".to_owned()),
                }
            }
        }
        other => SimError::Unreachable {
            url: url.to_owned(),
            reason: error_chain(&other),
        },
    }
}

/// Streams the call's media; returns the report (without the hang-up).
pub(crate) async fn stream(
    call: &SimulatedCall,
    media_base: &str,
    parties: &[Party],
    notifier: &Notifier,
    tenant: &str,
) -> Result<SimReport, SimError> {
    let url = format!("{media_base}{}", call.call_id);
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| SimError::Invalid(format!("media URL {url}: {e}")))?;
    let auth = HeaderValue::from_str(&format!("Bearer {}", call.media_token.trim()))
        .map_err(|_| SimError::Invalid("the media token is not a valid header value".into()))?;
    req.headers_mut().insert("authorization", auth);
    let (ws, _) = tokio::time::timeout(call.control_timeout, tokio_tungstenite::connect_async(req))
        .await
        .map_err(|_| SimError::Timeout("the media WebSocket to open"))?
        .map_err(|e| ws_error(&url, e))?;
    let (mut sink, mut source) = ws.split();
    let send_err = |e: tungstenite::Error| SimError::Protocol(format!("send: {}", error_chain(&e)));

    let mode = if call.meeting {
        Mode::Unmixed
    } else {
        Mode::PerParticipant
    };
    sink.send(Message::text(
        Control::Hello {
            protocol: PROTOCOL.into(),
            encoding: call.encoding,
            mode,
        }
        .encode(),
    ))
    .await
    .map_err(send_err)?;
    for p in parties.iter().filter(|p| !p.mix_only) {
        sink.send(Message::text(
            Control::Source {
                source_id: p.source_id,
                participant_id: p.participant_id.clone(),
            }
            .encode(),
        ))
        .await
        .map_err(send_err)?;
    }

    // The gateway reports recording status to Teams before `ready`.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(m) = source.next().await {
            let ev = match m {
                Ok(Message::Text(t)) => match Control::decode(t.as_str()) {
                    Ok(c) => Incoming::Control(c),
                    Err(e) => Incoming::Failed(e.to_string()),
                },
                Ok(Message::Close(frame)) => {
                    let _ = tx.send(Incoming::Closed(frame.map(|f| f.reason.to_string())));
                    return;
                }
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send(Incoming::Failed(error_chain(&e)));
                    return;
                }
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
        let _ = tx.send(Incoming::Closed(None));
    });
    let result = stream_frames(call, parties, notifier, tenant, &mut sink, &mut rx).await;
    let _ = sink.close().await;
    reader.abort();
    result
}

/// One buffer's payload: the PCM bytes, or the frame as an Opus packet.
fn payload(encoder: &mut Option<OpusEncoder>, frame: &[i16]) -> Result<Vec<u8>, SimError> {
    match encoder {
        None => Ok(le_bytes(frame)),
        Some(enc) => enc
            .encode(frame)
            .map(<[u8]>::to_vec)
            .map_err(|e| SimError::Protocol(format!("Opus encoding: {e}"))),
    }
}

type Sink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

fn unexpected(ev: Incoming, waiting_for: &str) -> SimError {
    match ev {
        Incoming::Control(Control::Refused { code, message }) => {
            SimError::Refused { code, message }
        }
        Incoming::Control(other) => SimError::Protocol(format!(
            "unexpected `{}` while waiting for {waiting_for}",
            serde_json::to_value(&other)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
                .unwrap_or_default()
        )),
        Incoming::Closed(reason) => SimError::Protocol(format!(
            "the gateway closed the media socket while waiting for {waiting_for}{}",
            reason
                .filter(|r| !r.is_empty())
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )),
        Incoming::Failed(e) => SimError::Protocol(format!("while waiting for {waiting_for}: {e}")),
    }
}

async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Incoming>,
    timeout: Duration,
    what: &'static str,
    mut accept: impl FnMut(&Control) -> Option<String>,
) -> Result<String, SimError> {
    let ev = tokio::time::timeout(timeout, rx.recv())
        .await
        .map_err(|_| SimError::Timeout(what))?
        .unwrap_or(Incoming::Closed(None));
    if let Incoming::Control(c) = &ev
        && let Some(v) = accept(c)
    {
        return Ok(v);
    }
    Err(unexpected(ev, what))
}

async fn stream_frames(
    call: &SimulatedCall,
    parties: &[Party],
    notifier: &Notifier,
    tenant: &str,
    sink: &mut Sink,
    rx: &mut mpsc::UnboundedReceiver<Incoming>,
) -> Result<SimReport, SimError> {
    let recording_id = wait_for(rx, call.control_timeout, "`ready`", |c| match c {
        Control::Ready { recording_id } => Some(recording_id.clone()),
        _ => None,
    })
    .await?;
    tracing::info!(call_id = %call.call_id, %recording_id, "simulated call: media ready");

    let counts: Vec<usize> = call
        .participants
        .iter()
        .map(|p| frames_of(&p.pcm))
        .collect();
    let total = counts.iter().copied().max().unwrap_or(0);
    let mut left = vec![false; parties.len()];
    let started = Instant::now();
    let base_ticks = ticks_now();
    let mut sequence: u64 = 0;
    let mut frames_sent: u64 = 0;
    let send_err = |e: tungstenite::Error| SimError::Protocol(format!("send: {}", error_chain(&e)));
    // Opus: one encoder per participant, as the adapter keeps one per
    // media source.
    let mut encoders = (0..parties.len())
        .map(|_| match call.encoding {
            Encoding::Pcm16 => Ok(None),
            Encoding::Opus => OpusEncoder::new(Layout::Mono, &EncoderConfig::default())
                .map(Some)
                .map_err(|e| SimError::Invalid(format!("Opus encoder: {e}"))),
        })
        .collect::<Result<Vec<_>, SimError>>()?;

    for k in 0..=total {
        // Anything the gateway said meanwhile (a refusal mid-call).
        match rx.try_recv() {
            Ok(ev) => return Err(unexpected(ev, "the call's audio to be taken")),
            Err(mpsc::error::TryRecvError::Empty) => {}
            Err(mpsc::error::TryRecvError::Disconnected) => {
                return Err(unexpected(
                    Incoming::Closed(None),
                    "the call's audio to be taken",
                ));
            }
        }
        if call.meeting {
            let leaving: Vec<usize> = (1..parties.len())
                .filter(|&i| !left[i] && counts[i] <= k && k < total)
                .collect();
            if !leaving.is_empty() {
                for &i in &leaving {
                    left[i] = true;
                }
                let gone = leaving
                    .iter()
                    .map(|&i| notify::participant(&parties[i], tenant))
                    .collect();
                notifier
                    .post(
                        "a participant leaving",
                        vec![notify::roster_removed(&call.call_id, gone)],
                    )
                    .await?;
            }
        }
        if k == total {
            break;
        }
        if call.speed > 0.0 {
            let due = started + Duration::from_secs_f64(0.02 * k as f64 / call.speed);
            tokio::time::sleep_until(due).await;
        }
        let timestamp = base_ticks + FRAME_TICKS * k as i64;
        let active = (0..parties.len()).filter(|&i| k < counts[i]);
        let messages: Vec<Vec<Buffer>> = if call.meeting {
            let mut voiced: Vec<(f64, usize, Vec<i16>)> = active
                .map(|i| (i, frame(&call.participants[i].pcm, k)))
                .filter(|(_, f)| is_voiced(f))
                .map(|(i, f)| (energy(&f), i, f))
                .collect();
            voiced.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            voiced.truncate(MAX_BUFFERS);
            voiced.sort_by_key(|v| v.1);
            if voiced.is_empty() {
                vec![]
            } else {
                vec![
                    voiced
                        .into_iter()
                        .map(|(_, i, f)| {
                            Ok(Buffer {
                                source_id: parties[i].source_id,
                                payload: payload(&mut encoders[i], &f)?,
                            })
                        })
                        .collect::<Result<Vec<_>, SimError>>()?,
                ]
            }
        } else {
            active
                .map(|i| {
                    Ok(vec![Buffer {
                        source_id: parties[i].source_id,
                        payload: payload(&mut encoders[i], &frame(&call.participants[i].pcm, k))?,
                    }])
                })
                .collect::<Result<Vec<_>, SimError>>()?
        };
        for buffers in messages {
            let n = buffers.len() as u64;
            let bytes = AudioMessage {
                encoding: call.encoding,
                sequence,
                timestamp,
                buffers,
            }
            .encode()
            .map_err(|e| SimError::Protocol(e.to_string()))?;
            // Awaiting each send is the backpressure.
            sink.send(Message::binary(bytes)).await.map_err(send_err)?;
            sequence += 1;
            frames_sent += n;
        }
    }
    let streaming_time = started.elapsed();
    let last_audio_sent_at = std::time::Instant::now();
    sink.send(Message::text(Control::End.encode()))
        .await
        .map_err(send_err)?;
    let closed_id = wait_for(rx, call.control_timeout, "`closed`", |c| match c {
        Control::Closed { recording_id } => Some(recording_id.clone()),
        _ => None,
    })
    .await?;
    if closed_id != recording_id {
        tracing::warn!(%recording_id, %closed_id, "`closed` names another recording");
    }
    Ok(SimReport {
        call_id: call.call_id.clone(),
        recording_id,
        messages_sent: sequence,
        frames_sent,
        audio_duration: Duration::from_millis(20 * total as u64),
        streaming_time,
        last_audio_sent_at,
        participants: parties
            .iter()
            .zip(&counts)
            .map(|(p, &c)| SimParticipantReport {
                participant_id: p.participant_id.clone(),
                source_id: p.source_id,
                frames: c as u64,
            })
            .collect(),
    })
}
