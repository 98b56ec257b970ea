//! The recorder's Ogg Opus output plays in real browsers (issue 3:
//! "Output plays in Chromium and Firefox").
//!
//! Makes real recordings with the recorder library from speech:
//!
//! * `call.opus`: a two-party call from PCM ([`CallRecorder`]), pages
//!   completed every 250 ms as the gateway does;
//! * `call-passthrough.opus`: the same call from 20 ms mono Opus packets
//!   ([`CallPassthrough`]), with the callee's packets reordered and
//!   missing at the start (a gap the pass-through fills with silence);
//! * `meeting-p1.opus`, `meeting-p2.opus`, `meeting-mix.opus`: a meeting
//!   ([`MeetingRecorder`], unmixed frames) with a participant who joins
//!   after 1 s, and the mix.
//!
//! The calls follow one script: 0–1.5 s only the caller talks, 1.5–3 s
//! only the callee, 3–4 s both. Then `tests/browser/playback.js` serves the
//! files over HTTP on port 0 and, in ONE headless browser, checks
//! `canPlayType('audio/ogg; codecs=opus')`, loads every file in an
//! `<audio>` element until `canplaythrough` and plays it to `ended`, and
//! decodes it with Web Audio `decodeAudioData`, reporting channels, sample
//! rate, duration and each channel's level in windows of the script. The
//! assertions here: the file plays, the durations are right (±40 ms),
//! the caller is on the left and the callee on the right, and the silent
//! side of each window is silent in the browser too (no crosstalk).
//!
//! Needs Node, the npm packages pinned in `tests/browser/` and the Debian
//! packages `chromium` and `firefox-esr`; `scripts/test.sh` installs all
//! of them. A missing one fails the test with what to install: never a
//! skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use recorder::{
    CallPassthrough, CallRecorder, EncoderConfig, Layout, MeetingRecorder, OggOptions, OpusEncoder,
    ParticipantKey, PcmFrame, RecorderConfig, Side, TICKS_PER_FRAME, TimelineConfig,
};
use serde_json::{Value, json};

/// 20 ms slots of the recordings (4 s).
const SLOTS: usize = 200;
const FRAME: usize = recorder::FRAME_SAMPLES;
/// The script of the calls, in slots: only the caller talks in
/// `[0, CALLEE_FROM)`, only the callee in `[CALLEE_FROM, BOTH_FROM)`, both
/// in `[BOTH_FROM, SLOTS)`.
const CALLEE_FROM: usize = 75;
const BOTH_FROM: usize = 150;
/// The meeting: participant 1 talks in `[0, P1_UNTIL)`; participant 2
/// joins at `P2_JOINS` and talks from `P2_FROM` to the end; nobody in
/// between.
const P1_UNTIL: usize = 75;
const P2_JOINS: usize = 50;
const P2_FROM: usize = 100;

/// A channel that carries speech in a window is at least this loud
/// (speech here is around −25 dBFS).
const SPEECH_DB: f64 = -45.0;
/// A channel that carries nothing in a window stays below this in the
/// browser's decode, 60 dB under the speech: a swapped channel, a
/// mapping that sends one stream to both outputs, or a downmix fails.
/// Measured: −110 to −114 dBFS, and −93 dBFS (a steady ±2 LSB) where a
/// meeting participant stopped talking. (The codec-level leak of joint
/// stereo during double talk is a property of the packets, not of the
/// browser; `recorder`'s own tests measure it.)
const SILENT_DB: f64 = -80.0;
/// Tolerance on the duration an `<audio>` element reports (Chromium's
/// includes the 6.5 ms pre-skip, Firefox's does not).
const DURATION_TOLERANCE_S: f64 = 0.040;
/// Tolerance on the length `decodeAudioData` returns: 1 ms, so a
/// browser that ignored pre-skip or end trimming (RFC 7845), or a
/// granule position of ours that is off, fails.
const DECODED_TOLERANCE_S: f64 = 0.001;

/// How long one browser run may take before the test gives up: far more
/// than the ~5–10 s it takes, for CI's 16 test processes on 2 cores.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Level {
    Speech,
    Silent,
}
use Level::{Silent, Speech};

/// One recording and what the browser must find in it.
struct Expected {
    name: &'static str,
    bytes: Vec<u8>,
    channels: usize,
    duration_s: f64,
    /// The exact length of the decoded audio: `duration_s`, except for
    /// the pass-through, whose packets end with the sender's encoder
    /// lookahead still inside it (pre-skip), so the last 6.5 ms of input
    /// are not in the stream.
    decoded_s: f64,
    /// (start s, end s, level per channel).
    windows: Vec<(f64, f64, Vec<Level>)>,
}

/// 4 s of speech for each of two voices (16 kHz mono): espeak-ng when
/// installed (scripts/test.sh installs it), else the synthetic speech;
/// the two voices are different parts of the text.
fn voices() -> &'static (Vec<i16>, Vec<i16>) {
    static VOICES: OnceLock<(Vec<i16>, Vec<i16>)> = OnceLock::new();
    VOICES.get_or_init(|| {
        let (speech, source) = recorder::test_signal::speech(12).unwrap();
        println!("speech: {source}");
        let n = SLOTS * FRAME;
        let a = speech[..n].to_vec();
        let b = speech[6 * recorder::SAMPLE_RATE as usize..][..n].to_vec();
        (a, b)
    })
}

fn frame(signal: &[i16], slot: usize) -> &[i16] {
    &signal[slot * FRAME..(slot + 1) * FRAME]
}

fn ticks(slot: usize) -> i64 {
    slot as i64 * TICKS_PER_FRAME
}

const SILENCE: [i16; FRAME] = [0; FRAME];

fn caller_talks(slot: usize) -> bool {
    !(CALLEE_FROM..BOTH_FROM).contains(&slot)
}

fn callee_talks(slot: usize) -> bool {
    slot >= CALLEE_FROM
}

/// The windows (seconds, 100 ms inside each part of the script) and who
/// is heard in each, as (left, right).
fn call_windows() -> Vec<(f64, f64, Vec<Level>)> {
    let s = |slot: usize| slot as f64 * 0.02;
    vec![
        (0.1, s(CALLEE_FROM) - 0.1, vec![Speech, Silent]),
        (
            s(CALLEE_FROM) + 0.1,
            s(BOTH_FROM) - 0.1,
            vec![Silent, Speech],
        ),
        (s(BOTH_FROM) + 0.1, s(SLOTS) - 0.1, vec![Speech, Speech]),
    ]
}

/// A two-party call from PCM, as the gateway records it: both sides send
/// a frame every 20 ms (silence while they do not talk), and a page is
/// completed every 250 ms.
fn call_from_pcm() -> Expected {
    let (caller, callee) = voices();
    let mut rec = CallRecorder::new(Vec::new(), &RecorderConfig::default(), Some(0)).unwrap();
    for slot in 0..SLOTS {
        let left = if caller_talks(slot) {
            frame(caller, slot)
        } else {
            &SILENCE
        };
        let right = if callee_talks(slot) {
            frame(callee, slot)
        } else {
            &SILENCE
        };
        for (side, pcm) in [(Side::Caller, left), (Side::Callee, right)] {
            let f = PcmFrame {
                seq: slot as u64,
                ticks: ticks(slot),
                pcm,
            };
            rec.push(side, f).unwrap();
        }
        if slot % 12 == 11 {
            rec.flush_page().unwrap();
        }
    }
    let (bytes, summary) = rec.finish().unwrap();
    assert_eq!(summary.duration_ms, SLOTS as u64 * 20);
    Expected {
        name: "call.opus",
        bytes,
        channels: 2,
        duration_s: SLOTS as f64 * 0.02,
        decoded_s: SLOTS as f64 * 0.02,
        windows: call_windows(),
    }
}

/// The same call from the adapter's Opus packets: the caller sends a
/// packet every 20 ms, the callee only from the moment they talk (a gap
/// before, which becomes silence) and in swapped pairs (reordering the
/// timeline repairs).
fn call_from_opus_packets() -> Expected {
    let (caller, callee) = voices();
    let config = EncoderConfig::default();
    let mut enc_caller = OpusEncoder::new(Layout::Mono, &config).unwrap();
    let mut enc_callee = OpusEncoder::new(Layout::Mono, &config).unwrap();
    let left: Vec<Vec<u8>> = (0..SLOTS)
        .map(|slot| {
            let pcm = if caller_talks(slot) {
                frame(caller, slot)
            } else {
                &SILENCE
            };
            enc_caller.encode(pcm).unwrap().to_vec()
        })
        .collect();
    let right: Vec<Option<Vec<u8>>> = (0..SLOTS)
        .map(|slot| {
            callee_talks(slot).then(|| enc_callee.encode(frame(callee, slot)).unwrap().to_vec())
        })
        .collect();
    let mut call = CallPassthrough::new(
        Vec::new(),
        &TimelineConfig::default(),
        &OggOptions::default(),
        enc_caller.pre_skip(),
        Some(0),
    )
    .unwrap();
    for (slot, packet) in left.iter().enumerate() {
        call.push(Side::Caller, slot as u64, ticks(slot), packet)
            .unwrap();
        let swapped = slot ^ 1;
        if let Some(packet) = &right[swapped] {
            call.push(Side::Callee, swapped as u64, ticks(swapped), packet)
                .unwrap();
        }
        if slot % 12 == 11 {
            call.flush_page().unwrap();
        }
    }
    let (bytes, summary) = call.finish().unwrap();
    assert_eq!(summary.duration_ms, SLOTS as u64 * 20);
    assert_eq!(summary.callee.dropped(), 0, "{summary:?}");
    Expected {
        name: "call-passthrough.opus",
        bytes,
        channels: 2,
        duration_s: SLOTS as f64 * 0.02,
        decoded_s: SLOTS as f64 * 0.02 - f64::from(enc_caller.pre_skip()) / 48_000.0,
        windows: call_windows(),
    }
}

/// A meeting of two participants from unmixed frames (only the active
/// speaker sends): participant 1 from the start, participant 2 joining
/// after 1 s. Returns both tracks and the mix.
fn meeting() -> Vec<Expected> {
    let (one, two) = voices();
    let (p1, p2) = (ParticipantKey(1), ParticipantKey(2));
    let mut rec = MeetingRecorder::new(Vec::new(), &RecorderConfig::default(), Some(0)).unwrap();
    assert_eq!(
        rec.add_participant(p1, Vec::new(), Some(0))
            .unwrap()
            .start_ms,
        0
    );
    let joined = rec
        .add_participant(p2, Vec::new(), Some(ticks(P2_JOINS)))
        .unwrap();
    assert_eq!(joined.start_ms, P2_JOINS as i64 * 20);
    for slot in 0..SLOTS {
        let mut speakers: Vec<(ParticipantKey, &[i16])> = Vec::new();
        if slot < P1_UNTIL {
            speakers.push((p1, frame(one, slot)));
        }
        if slot >= P2_FROM {
            speakers.push((p2, frame(two, slot)));
        }
        rec.push_unmixed(slot as u64, ticks(slot), &speakers)
            .unwrap();
        if slot % 12 == 11 {
            rec.flush_pages().unwrap();
        }
    }
    let out = rec.finish().unwrap();
    assert_eq!(out.duration_ms, SLOTS as u64 * 20);
    let s = |slot: usize| slot as f64 * 0.02;
    let mut tracks = out.tracks;
    tracks.sort_by_key(|t| t.key);
    let [t1, t2] = <[_; 2]>::try_from(tracks).unwrap();
    assert_eq!((t1.key, t1.start_ms, t1.duration_ms), (p1, 0, 4000));
    assert_eq!((t2.key, t2.start_ms, t2.duration_ms), (p2, 1000, 3000));
    // Participant 2's track starts when they joined: its time is meeting
    // time minus the join.
    let joined_s = s(P2_JOINS);
    vec![
        Expected {
            name: "meeting-p1.opus",
            bytes: t1.output,
            channels: 1,
            duration_s: s(SLOTS),
            decoded_s: s(SLOTS),
            windows: vec![
                (0.1, s(P1_UNTIL) - 0.1, vec![Speech]),
                (s(P1_UNTIL) + 0.1, s(SLOTS) - 0.1, vec![Silent]),
            ],
        },
        Expected {
            name: "meeting-p2.opus",
            bytes: t2.output,
            channels: 1,
            duration_s: s(SLOTS) - joined_s,
            decoded_s: s(SLOTS) - joined_s,
            windows: vec![
                (0.1, s(P2_FROM) - joined_s - 0.1, vec![Silent]),
                (
                    s(P2_FROM) - joined_s + 0.1,
                    s(SLOTS) - joined_s - 0.1,
                    vec![Speech],
                ),
            ],
        },
        Expected {
            name: "meeting-mix.opus",
            bytes: out.mix,
            channels: 1,
            duration_s: s(SLOTS),
            decoded_s: s(SLOTS),
            windows: vec![
                (0.1, s(P1_UNTIL) - 0.1, vec![Speech]),
                (s(P1_UNTIL) + 0.1, s(P2_FROM) - 0.1, vec![Silent]),
                (s(P2_FROM) + 0.1, s(SLOTS) - 0.1, vec![Speech]),
            ],
        },
    ]
}

fn recordings() -> Vec<Expected> {
    let mut all = vec![call_from_pcm(), call_from_opus_packets()];
    all.extend(meeting());
    all
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Runs `tests/browser/playback.js` for `browser` over `files` (written
/// into `dir`) and returns the JSON it printed.
fn run_browser(browser: &str, files: &[Expected], dir: &Path) -> Value {
    let script = browser_dir().join("playback.js");
    let modules = browser_dir().join("node_modules");
    assert!(
        modules.join("playwright-core").is_dir() && modules.join("puppeteer-core").is_dir(),
        "the browser drivers are not installed in {}: run the suite with scripts/test.sh, \
         which runs `npm ci --prefix tests/browser`",
        modules.display()
    );
    let spec_files: Vec<Value> = files
        .iter()
        .map(|f| {
            let path = dir.join(f.name);
            std::fs::write(&path, &f.bytes).unwrap();
            let windows: Vec<[f64; 2]> = f.windows.iter().map(|w| [w.0, w.1]).collect();
            json!({"name": f.name, "path": path, "windows": windows})
        })
        .collect();
    let spec = dir.join("spec.json");
    std::fs::write(&spec, json!({ "files": spec_files }).to_string()).unwrap();

    let child = Command::new("node")
        .arg(&script)
        .arg(browser)
        .arg(&spec)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `node` ({e}): Node.js is needed for the browser playback test")
        });
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(RUN_TIMEOUT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // Our own child, by its pid.
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("{browser}: playback.js gave no answer within {RUN_TIMEOUT:?}");
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{browser}: playback.js failed ({}):\n{stderr}",
        output.status
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{browser}: playback.js printed no JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// Asserts what the browser reported against what the recordings hold;
/// returns one line per file for the log.
fn check(browser: &str, report: &Value, expected: &[Expected]) -> Vec<String> {
    assert_eq!(
        report["canPlayType"], "probably",
        "{browser}: canPlayType('audio/ogg; codecs=opus')"
    );
    let files = report["files"].as_array().expect("files");
    assert_eq!(files.len(), expected.len());
    let mut lines = Vec::new();
    for (got, want) in files.iter().zip(expected) {
        let name = want.name;
        assert_eq!(got["name"], name);
        let ctx = format!("{browser} {name}");

        // <audio>: loads until it can play through, reports the duration,
        // plays to the end.
        let audio = &got["audio"];
        assert_eq!(audio["ok"], true, "{ctx}: <audio> failed: {audio}");
        assert_eq!(audio["canPlayThrough"], true, "{ctx}: {audio}");
        let element_duration = num(&audio["duration"], "<audio> duration");
        assert!(
            (element_duration - want.duration_s).abs() <= DURATION_TOLERANCE_S,
            "{ctx}: <audio> duration {element_duration} s, expected {} s",
            want.duration_s
        );
        assert_eq!(
            audio["playing"], true,
            "{ctx}: never started playing: {audio}"
        );
        assert_eq!(
            audio["ended"], true,
            "{ctx}: did not play to the end: {audio}"
        );
        let ended_at = num(&audio["endedAt"], "<audio> endedAt");
        assert!(
            (ended_at - want.duration_s).abs() <= DURATION_TOLERANCE_S,
            "{ctx}: playback ended at {ended_at} s, expected {} s",
            want.duration_s
        );

        // Web Audio: channels, rate, duration, levels per window.
        let decode = &got["decode"];
        assert_eq!(
            decode["ok"], true,
            "{ctx}: decodeAudioData failed: {decode}"
        );
        assert_eq!(
            decode["channels"].as_u64(),
            Some(want.channels as u64),
            "{ctx}: channel count"
        );
        assert_eq!(
            decode["sampleRate"].as_u64(),
            Some(48_000),
            "{ctx}: sample rate"
        );
        let decoded_duration = num(&decode["duration"], "decoded duration");
        assert!(
            (decoded_duration - want.decoded_s).abs() <= DECODED_TOLERANCE_S,
            "{ctx}: decoded duration {decoded_duration} s, expected {} s",
            want.decoded_s
        );
        let windows = decode["windows"].as_array().expect("windows");
        assert_eq!(windows.len(), want.windows.len());
        let mut levels = Vec::new();
        for (w, (start, end, expect)) in windows.iter().zip(&want.windows) {
            let db: Vec<f64> = w["rmsDb"]
                .as_array()
                .expect("rmsDb")
                .iter()
                .map(|v| num(v, "rmsDb"))
                .collect();
            assert_eq!(
                db.len(),
                expect.len(),
                "{ctx}: channels in window {start}–{end} s"
            );
            for (ch, (&level, &e)) in db.iter().zip(expect).enumerate() {
                let side = match (want.channels, ch) {
                    (1, _) => "mono",
                    (_, 0) => "left (caller)",
                    _ => "right (callee)",
                };
                match e {
                    Speech => assert!(
                        level > SPEECH_DB,
                        "{ctx}: {side} channel in {start:.2}–{end:.2} s is at {level:.1} dBFS, \
                         expected speech (> {SPEECH_DB} dBFS); all channels: {db:?}"
                    ),
                    Silent => assert!(
                        level < SILENT_DB,
                        "{ctx}: {side} channel in {start:.2}–{end:.2} s is at {level:.1} dBFS, \
                         expected silence (< {SILENT_DB} dBFS): crosstalk or a channel swap; \
                         all channels: {db:?}"
                    ),
                }
            }
            levels.push(format!(
                "{start:.1}-{end:.1}s [{}]",
                db.iter()
                    .map(|d| format!("{d:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        lines.push(format!(
            "{name}: <audio> {element_duration:.4} s, ended at {ended_at:.4} s; decoded {} ch \
             {} Hz {decoded_duration:.4} s; dBFS {}; requests {}",
            want.channels,
            decode["sampleRate"],
            levels.join(" "),
            got["requests"],
        ));
    }
    lines
}

fn plays_in(browser: &str) {
    let expected = recordings();
    let dir = tempfile::tempdir().unwrap();
    let report = run_browser(browser, &expected, dir.path());
    let lines = check(browser, &report, &expected);
    println!("{} {}", report["browser"], report["version"]);
    for line in lines {
        println!("  {line}");
    }
}

#[test]
fn recordings_play_in_chromium() {
    plays_in("chromium");
}

#[test]
fn recordings_play_in_firefox() {
    plays_in("firefox");
}
