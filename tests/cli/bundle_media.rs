//! Media of access bundles through `insights serve` (issue 13, §2 and
//! §10): a meeting in which the data subject has no track of their own
//! gives the mix with the other parties' speech silenced; bundle media is
//! decoded as a stream with a maximum duration, and media over it is
//! refused with a clear error (API and CLI).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use insights_core::domain::*;
use serde_json::{Value, json};

use crate::e2e_call::{simulate, speak};
use crate::gdpr_access::{SUBJECT_PHONE, World};

/// Writes 16 kHz mono PCM as a WAV file.
fn write_wav(path: &Path, pcm: &[i16]) {
    let data_len = (pcm.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + pcm.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&16_000u32.to_le_bytes());
    b.extend_from_slice(&32_000u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

/// RMS of each 20 ms frame.
fn frame_rms(s: &[i16]) -> Vec<f64> {
    s.chunks(320)
        .map(|c| (c.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

fn rms(frames: &[f64]) -> f64 {
    if frames.is_empty() {
        return 0.0;
    }
    (frames.iter().map(|x| x * x).sum::<f64>() / frames.len() as f64).sqrt()
}

/// Waits until `id` is stored.
fn wait_stored(w: &World, id: RecordingId) -> Recording {
    let settings = w.settings();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = insights::platform::Platform::open(&settings).await.unwrap();
        let t = p.store.tenant_by_name("contoso").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = p.store.get_recording(t.id, id).await.unwrap();
            if r.status == RecordingStatus::Stored {
                return r;
            }
            assert!(Instant::now() < deadline, "not stored: {:?}", r.status);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Asks for a bundle and waits for it; returns the final status.
fn bundle_status(w: &World, token: &str, body: Value) -> (String, Value) {
    let res = w.post(token, "/api/gdpr/access", body);
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v: Value = w
            .get(token, &format!("/api/gdpr/access/{id}"))
            .json()
            .unwrap();
        if v["status"] != "running" {
            return (id, v);
        }
        assert!(Instant::now() < deadline, "bundle not finished: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

type Zip = zip::ZipArchive<std::io::Cursor<Vec<u8>>>;

fn bundle(w: &World, token: &str, mask: bool) -> Zip {
    let (id, v) = bundle_status(
        w,
        token,
        json!({"identifiers": {"phone": SUBJECT_PHONE}, "include_media": true,
               "mask_others": mask, "reason": "Art. 15 request 80"}),
    );
    assert_eq!(v["status"], "done", "{v}");
    let bytes = w
        .get(token, &format!("/api/gdpr/access/{id}/file"))
        .bytes()
        .unwrap()
        .to_vec();
    zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap()
}

fn read(z: &mut Zip, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name(name).unwrap(), &mut out).unwrap();
    out
}

fn mono(ogg: Vec<u8>) -> Vec<i16> {
    let d = recorder::decode_ogg_opus(std::io::Cursor::new(ogg), 16_000).unwrap();
    assert_eq!(d.channels.len(), 1, "mono");
    d.channels.into_iter().next().unwrap()
}

/// A meeting: the recorded user speaks first, then (after a pause) the
/// data subject, whose audio source Teams does not attribute
/// (`--mix-only`), so they have no track of their own.
fn meeting_with_mix_only_subject(w: &World) -> (RecordingId, PathBuf) {
    let dir = w.cwd.path();
    let agent = speak(
        dir,
        "agent",
        "Good morning everyone, this is the agent speaking about the contract renewal.",
        "en-us",
    );
    let agent_len = recorder::decode_file(&agent).unwrap().samples.len();
    let said = speak(
        dir,
        "subject-said",
        "Yes, that is right, I agree with the renewal, thank you.",
        "en-gb",
    );
    let mut subject = vec![0i16; agent_len + 32_000];
    subject.extend_from_slice(&recorder::decode_file(&said).unwrap().samples);
    let subject_wav = dir.join("subject.wav");
    write_wav(&subject_wav, &subject);
    let id = simulate(
        dir,
        &w.env,
        &[
            "simulate-call",
            "--gateway",
            w.base(),
            "--tenant",
            "contoso",
            "--meeting",
            "--mix-only",
            "1",
            "--speed",
            "0",
            "--data-dir",
            w.data.to_str().unwrap(),
            "--participant",
            &format!("Agent Example:agent@contoso.com:{}", agent.display()),
            "--participant",
            &format!("Kim Subject:{SUBJECT_PHONE}:{}", subject_wav.display()),
        ],
    );
    (id, agent)
}

#[test]
fn a_masked_bundle_of_a_meeting_without_the_subjects_track_silences_the_others_in_the_mix() {
    let w = World::start(Vec::new());
    let (id, _) = meeting_with_mix_only_subject(&w);
    let rec = wait_stored(&w, id);
    assert_eq!(rec.kind, RecordingKind::Meeting);
    let subject = rec
        .participants
        .iter()
        .find(|p| p.phone_number.as_deref() == Some(SUBJECT_PHONE))
        .expect("the subject is a participant");
    assert!(
        !rec.streams
            .iter()
            .any(|s| s.participant_id == Some(subject.id)),
        "the subject has no track of their own"
    );
    assert!(
        rec.streams.iter().any(|s| s.track >= 1),
        "the agent has a track"
    );

    let profile = w.dpo_profile(&[Permission::GdprActions, Permission::DownloadMedia]);
    w.add_user("dpo@contoso.com", "dpo", Some(&profile.to_string()));
    let dpo = w.login("dpo@contoso.com", None);

    // Unmasked: the meeting's mix, both voices.
    let mut whole = bundle(&w, &dpo, false);
    let mix = mono(read(&mut whole, &format!("media/{id}.ogg")));
    // Masked: the mix with the agent silenced.
    let mut masked = bundle(&w, &dpo, true);
    assert!(
        masked.by_name(&format!("media/{id}.ogg")).is_err(),
        "the mix as it is is not in a masked bundle"
    );
    let name = format!("media/{id}-subject-mix.ogg");
    let own = mono(read(&mut masked, &name));
    let manifest: Value = serde_json::from_slice(&read(&mut masked, "manifest.json")).unwrap();
    assert_eq!(manifest["media_withheld"], json!([]), "{manifest}");
    assert!(
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == name.as_str()),
        "the manifest lists the file"
    );

    // The mix: the agent's speech, a pause of at least a second, then
    // the subject's speech.
    let m = frame_rms(&mix);
    let o = frame_rms(&own);
    assert!(
        (o.len() as i64 - m.len() as i64).abs() <= 2,
        "same timeline: {} vs {} frames",
        o.len(),
        m.len()
    );
    let loud = |x: f64| x > 300.0;
    let first = m.iter().position(|&x| loud(x)).expect("speech in the mix");
    // The pause: the first run of 40 quiet frames after speech.
    let mut quiet = 0;
    let mut pause = None;
    for (i, &x) in m.iter().enumerate().skip(first) {
        quiet = if loud(x) { 0 } else { quiet + 1 };
        if quiet == 40 {
            pause = Some(i + 1 - 40);
            break;
        }
    }
    let pause = pause.expect("a pause between the two speakers");
    let second = pause
        + m[pause..]
            .iter()
            .position(|&x| loud(x))
            .expect("the subject speaks");
    let n = o.len().min(m.len());
    let agent_mix = rms(&m[first..pause]);
    let agent_own = rms(&o[first..pause.min(n)]);
    let subject_mix = rms(&m[second..n]);
    let subject_own = rms(&o[second..n]);
    eprintln!(
        "agent: mix {agent_mix:.1} masked {agent_own:.1}; subject: mix {subject_mix:.1} masked {subject_own:.1}"
    );
    assert!(agent_mix > 500.0, "the agent speaks in the mix");
    assert!(
        agent_own < 5.0,
        "the agent's speech is silenced (near-zero energy): {agent_own:.1}"
    );
    let loudest_agent_frame = o[first..pause.min(n)].iter().copied().fold(0.0, f64::max);
    assert!(
        loudest_agent_frame < 20.0,
        "no frame of the agent's speech is left: {loudest_agent_frame:.1}"
    );
    assert!(
        subject_own > 0.8 * subject_mix,
        "the subject's speech is kept: {subject_own:.1} of {subject_mix:.1}"
    );
}

#[test]
fn bundle_media_over_the_maximum_duration_is_refused_with_a_clear_error() {
    // Every recording is longer than 1 s.
    let w = World::start(vec![(
        "INSIGHTS_GDPR__BUNDLE_MEDIA_MAX_SECS".into(),
        "1".into(),
    )]);
    let id = w.call("Good morning, I am calling about your contract renewal and the prices.");
    wait_stored(&w, id);
    let profile = w.dpo_profile(&[Permission::GdprActions, Permission::DownloadMedia]);
    w.add_user("dpo@contoso.com", "dpo", Some(&profile.to_string()));
    let dpo = w.login("dpo@contoso.com", None);

    // API: the job fails with a code that names the cause.
    let (_, v) = bundle_status(
        &w,
        &dpo,
        json!({"identifiers": {"phone": SUBJECT_PHONE}, "include_media": true,
               "reason": "Art. 15 request 81"}),
    );
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["error"], "media-too-long", "{v}");
    // Without media the same request succeeds.
    let (_, v) = bundle_status(
        &w,
        &dpo,
        json!({"identifiers": {"phone": SUBJECT_PHONE}, "include_media": false,
               "reason": "Art. 15 request 81"}),
    );
    assert_eq!(v["status"], "done", "{v}");

    // CLI: refused, saying why, and no bundle file is left.
    let out_file = w.cwd.path().join("bundle.zip");
    let out = w.run(
        &[
            "gdpr",
            "access",
            "--tenant",
            "contoso",
            "--phone",
            SUBJECT_PHONE,
            "--include-media",
            "--reason",
            "Art. 15 request 81",
            "--out",
            out_file.to_str().unwrap(),
        ],
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {stderr}");
    assert!(
        stderr.contains("longer than the bundle's maximum media duration"),
        "a clear error: {stderr}"
    );
    assert!(!out_file.exists(), "no bundle left behind");
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A tone of `secs` seconds (`hz`), as 16 kHz mono PCM.
fn tone(secs: usize, hz: f32) -> Vec<i16> {
    (0..secs * 16_000)
        .map(|i| ((i as f32 * hz * std::f32::consts::TAU / 16_000.0).sin() * 6000.0) as i16)
        .collect()
}

#[test]
fn a_ten_minute_call_is_masked_into_a_bundle_in_bounded_memory() {
    const SECS: usize = 600;
    // No embedded worker: transcription decodes the whole call for the
    // engine, which is not what is measured here.
    let w = World::start(vec![("INSIGHTS_WORKER__EMBEDDED".into(), "false".into())]);
    let dir = w.cwd.path();
    let (a, b) = (dir.join("a.wav"), dir.join("b.wav"));
    write_wav(&a, &tone(SECS, 440.0));
    write_wav(&b, &tone(SECS, 660.0));
    let id = simulate(
        dir,
        &w.env,
        &[
            "simulate-call",
            "--gateway",
            w.base(),
            "--tenant",
            "contoso",
            "--speed",
            "0",
            "--data-dir",
            w.data.to_str().unwrap(),
            "--participant",
            &format!("Agent Example:agent@contoso.com:{}", a.display()),
            "--participant",
            &format!("Kim Subject:{SUBJECT_PHONE}:{}", b.display()),
        ],
    );
    wait_stored(&w, id);
    let profile = w.dpo_profile(&[Permission::GdprActions, Permission::DownloadMedia]);
    w.add_user("dpo@contoso.com", "dpo", Some(&profile.to_string()));
    let dpo = w.login("dpo@contoso.com", None);

    // The peak from here on: reset the high-water mark (Linux
    // `clear_refs` 5), then build the bundle.
    let pid = w.server.as_ref().unwrap().child.id();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let (before, _) = rss_kib(pid);
    let mut masked = bundle(&w, &dpo, true);
    let (_, peak) = rss_kib(pid);
    let own = mono(read(
        &mut masked,
        &format!("media/{id}-subject-channel.ogg"),
    ));
    let secs = own.len() / 16_000;
    // The whole decoded call would be 600 s × 16 000 × 2 channels × 2
    // bytes = 38.4 MB of PCM.
    let grew_mib = peak.saturating_sub(before) as f64 / 1024.0;
    eprintln!(
        "bundle of a {secs} s call: serve RSS {:.1} MiB before, peak {:.1} MiB (+{grew_mib:.1} MiB)",
        before as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    assert!(
        secs + 2 >= SECS,
        "the whole call is in the bundle: {secs} s"
    );
    assert!(
        grew_mib < 20.0,
        "masking a {SECS} s call held more than a stream's buffers: +{grew_mib:.1} MiB"
    );
}
