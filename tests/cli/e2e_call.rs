//! End to end through the real binary: `insights serve`, a simulated
//! Teams compliance call spoken by espeak-ng (`insights simulate-call`),
//! the spool and the uploader, then the stored media decrypted and decoded
//! and compared with what each party said. Runs on SQLite + local files
//! and on PostgreSQL + Azurite.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use insights_core::config::{BlobBackend, Overrides, Secret, Settings};
use insights_core::crypto::envelope::{self, ExpectedIds};
use insights_core::domain::*;

use crate::{insights, serve_with_env};

/// Speaks `text` into a WAV file with espeak-ng.
pub(crate) fn speak(dir: &Path, name: &str, text: &str, voice: &str) -> PathBuf {
    let out = dir.join(format!("{name}.wav"));
    let st = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&out)
        .arg(text)
        .status()
        .expect("espeak-ng is needed (scripts/test.sh installs it)");
    assert!(st.success());
    out
}

pub(crate) fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let ma = a.iter().sum::<f64>() / n as f64;
    let mb = b.iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma).powi(2);
        sbb += (b[i] - mb).powi(2);
    }
    sab / (saa.sqrt() * sbb.sqrt())
}

/// RMS per 20 ms frame: the speech envelope.
pub(crate) fn envelope(s: &[i16]) -> Vec<f64> {
    s.chunks(320)
        .map(|c| (c.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

pub(crate) fn samples(s: &[i16]) -> Vec<f64> {
    s.iter().map(|&x| x as f64).collect()
}

/// The environment that points `insights` at the chosen backends.
fn backend_env(pg_url: Option<&str>, azurite: Option<&str>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(u) = pg_url {
        env.push(("INSIGHTS_DATABASE__URL".into(), u.to_owned()));
    }
    if let Some(a) = azurite {
        env.push(("INSIGHTS_BLOB__BACKEND".into(), "azure".into()));
        env.push(("INSIGHTS_BLOB__AZURE__USE_EMULATOR".into(), "true".into()));
        env.push(("INSIGHTS_BLOB__AZURE__ENDPOINT".into(), a.to_owned()));
    }
    env
}

fn settings_for(data: &Path, pg_url: Option<&str>, azurite: Option<&str>) -> Settings {
    let mut s = Settings::load(
        None,
        &Overrides {
            data_dir: Some(data.to_owned()),
            listen: None,
        },
    )
    .unwrap();
    if let Some(u) = pg_url {
        s.database.url = Some(Secret::new(u));
    }
    if let Some(a) = azurite {
        s.blob.backend = BlobBackend::Azure;
        s.blob.azure.use_emulator = true;
        s.blob.azure.endpoint = Some(a.to_owned());
    }
    s
}

/// Creates tenant `name` (with a random directory tenant id) in `data`.
pub(crate) fn add_tenant(cwd: &Path, data: &str, env: &[(String, String)], name: &str) {
    let dir_tenant = uuid::Uuid::new_v4().to_string();
    let out = insights(
        cwd,
        &[
            "admin",
            "tenant",
            "add",
            name,
            "--directory-tenant-id",
            &dir_tenant,
            "--data-dir",
            data,
        ],
    )
    .envs(env.iter().cloned())
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `insights ARGS` (a `simulate-call`) to completion and returns the
/// recording id it printed.
pub(crate) fn simulate(cwd: &Path, env: &[(String, String)], args: &[&str]) -> RecordingId {
    let out = insights(cwd, args)
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("recording")
                .and_then(|r| r.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no recording id in: {stdout}"))
}

/// Waits (up to 60 s) until the uploader has stored recording `id`.
async fn wait_stored(
    platform: &insights::platform::Platform,
    tenant: TenantId,
    id: RecordingId,
) -> Recording {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = platform.store.get_recording(tenant, id).await.unwrap();
        if r.status == RecordingStatus::Stored {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "recording not stored in 60 s: {:?}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The primary stream (a call's stereo file, a meeting's mix), decrypted,
/// found through the recording's media object alone.
async fn fetch_primary(
    platform: &insights::platform::Platform,
    tenant: TenantId,
    rec: &Recording,
) -> Vec<u8> {
    let media = rec.media.clone().expect("stored recording has media");
    fetch_object(platform, tenant, &media, &media.key, rec.id.as_uuid()).await
}

/// Fetches blob `key` of the recording's container and decrypts it,
/// checking that its envelope is bound to this tenant, `object` and the
/// recording's data key.
async fn fetch_object(
    platform: &insights::platform::Platform,
    tenant: TenantId,
    media: &MediaObject,
    key: &str,
    object: uuid::Uuid,
) -> Vec<u8> {
    let wrapped = platform
        .store
        .get_data_key(tenant, media.data_key_id)
        .await
        .unwrap();
    let data_key = platform.keys.unwrap(&wrapped).await.unwrap();
    let mut cipher = Vec::new();
    let mut s = platform
        .blobs
        .get_stream(&media.container, key)
        .await
        .unwrap();
    use futures::StreamExt;
    while let Some(chunk) = s.next().await {
        cipher.extend_from_slice(&chunk.unwrap());
    }
    let expected = ExpectedIds::new(tenant, object, media.data_key_id);
    envelope::decrypt_to_vec(&data_key, &cipher, &expected).unwrap()
}

/// A 30 s two-party call; `encoding` is how the simulated adapter sends
/// audio (`pcm16`, or `opus` packets stored without re-encoding).
pub fn two_party_call(pg_url: Option<&str>, azurite: Option<&str>, encoding: &str) {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let env = backend_env(pg_url, azurite);
    add_tenant(cwd.path(), &d, &env, "contoso");

    let alice_text = "Good morning, this is Alice calling about the quarterly trade settlement. \
        We agreed last week that the counterparty would confirm the figures in writing, \
        and I have not seen that confirmation yet. Could you check the settlement instructions, \
        the amounts per currency and the value dates, and tell me whether anything changed \
        since the compliance review on Monday? I also need the reference of the original order, \
        because the auditors will ask for it when they look at this call.";
    let bob_text = "Hello Alice, Bob here. I can confirm the settlement figures: seven hundred and twenty \
        thousand in euros and a little over one million in dollars, both for value on Thursday. \
        Nothing changed since Monday. The written confirmation went out this morning; \
        I will forward it to you and to the compliance mailbox straight after this call, \
        together with the reference of the original order and the updated instructions.";
    let alice_wav = speak(cwd.path(), "alice", alice_text, "en-us");
    let bob_wav = speak(cwd.path(), "bob", bob_text, "en-gb");
    let alice = recorder::decode_file(&alice_wav).unwrap().samples;
    let bob = recorder::decode_file(&bob_wav).unwrap().samples;
    // The issue asks for a 30 s call.
    assert!(
        alice.len().max(bob.len()) >= 28 * 16_000,
        "test speech is too short"
    );

    let logs = cwd.path().join("serve.log");
    let server = serve_with_env(cwd.path(), &data, &env, &logs);
    let id = simulate(
        cwd.path(),
        &env,
        &[
            "simulate-call",
            "--gateway",
            &server.base,
            "--tenant",
            "contoso",
            "--speed",
            "0",
            "--encoding",
            encoding,
            "--data-dir",
            &d,
            "--participant",
            &format!("Alice Example:alice@contoso.com:{}", alice_wav.display()),
            "--participant",
            &format!("Bob Example:+14255550100:{}", bob_wav.display()),
        ],
    );

    // Wait for the uploader to store it.
    let settings = settings_for(&data, pg_url, azurite);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rec, ogg) = rt.block_on(async {
        let platform = insights::platform::Platform::open(&settings).await.unwrap();
        let tenant = platform.store.tenant_by_name("contoso").await.unwrap();
        let rec = wait_stored(&platform, tenant.id, id).await;
        assert!(rec.media.is_some(), "stored recording has media");
        // The primary stream's envelope is bound to this tenant, this
        // recording and this key (fetch_stream checks all three).
        let plain = fetch_primary(&platform, tenant.id, &rec).await;
        (rec, plain)
    });

    // Participants and times.
    assert_eq!(rec.kind, RecordingKind::Call);
    let caller = rec
        .participants
        .iter()
        .find(|p| p.role == ParticipantRole::Caller)
        .expect("caller");
    let callee = rec
        .participants
        .iter()
        .find(|p| p.role == ParticipantRole::Callee)
        .expect("callee");
    assert_eq!(caller.display_name.as_deref(), Some("Alice Example"));
    assert!(caller.recorded_user);
    assert_eq!(callee.phone_number.as_deref(), Some("+14255550100"));
    assert!(rec.ended_at.is_some());

    // Decode: caller left, callee right, each matching what was said.
    let decoded = recorder::decode_ogg_opus(std::io::Cursor::new(&ogg), 16_000).unwrap();
    assert_eq!(decoded.channels.len(), 2);
    let (left, right) = (&decoded.channels[0], &decoded.channels[1]);
    let want_len = alice.len().max(bob.len());
    let got_ms = left.len() as i64 * 1000 / 16_000;
    let want_ms = want_len as i64 * 1000 / 16_000;
    assert!(
        (got_ms - want_ms).abs() <= 40,
        "duration {got_ms} ms, expected {want_ms} ms"
    );

    let c_left = pearson(&samples(left), &samples(&alice));
    let c_right = pearson(&samples(right), &samples(&bob));
    let e_left = pearson(&envelope(left), &envelope(&alice));
    let e_right = pearson(&envelope(right), &envelope(&bob));
    let x_left = pearson(&envelope(left), &envelope(&bob));
    let x_right = pearson(&envelope(right), &envelope(&alice));
    eprintln!(
        "correlation left {c_left:.3} right {c_right:.3}; envelope {e_left:.3} {e_right:.3}; crossed {x_left:.3} {x_right:.3}"
    );
    // Opus at 24 kbit/s keeps the waveform of speech closely and the
    // envelope almost exactly; a swapped or misaligned channel would
    // fall far below these thresholds.
    assert!(
        c_left > 0.8 && c_right > 0.8,
        "waveform correlation {c_left:.3} / {c_right:.3}"
    );
    assert!(
        e_left > 0.95 && e_right > 0.95,
        "envelope correlation {e_left:.3} / {e_right:.3}"
    );
    assert!(
        x_left < 0.5 && x_right < 0.5,
        "channels mixed up: {x_left:.3} / {x_right:.3}"
    );

    // Chain of custody holds.
    let out = insights(
        cwd.path(),
        &["verify-recording", &id.to_string(), "--data-dir", &d],
    )
    .envs(env.iter().cloned())
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(server);

    // Privacy: the logs of the whole call name nobody, and no raw audio of
    // the call is on disk under the data dir (spool or local blobs).
    let log = std::fs::read_to_string(&logs).unwrap();
    for secret in ["Alice", "Bob", "alice@contoso.com", "4255550100"] {
        assert!(!log.contains(secret), "serve log contains `{secret}`");
    }
    // A probe from the loudest part of the speech: distinctive bytes,
    // never a run of silence that any zeroed page would contain.
    let loudest = (0..alice.len() - 64)
        .max_by_key(|&i| {
            alice[i..i + 64]
                .iter()
                .map(|&x| (x as i64).abs())
                .sum::<i64>()
        })
        .unwrap();
    let window = &alice[loudest..loudest + 64];
    assert!(
        window
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 32,
        "probe is not distinctive"
    );
    let probe: Vec<u8> = window.iter().flat_map(|s| s.to_le_bytes()).collect();
    // Nor any of the plaintext Ogg Opus (the media as stored, before
    // encryption): take a window from the middle of it.
    let mid = ogg.len() / 2;
    let ogg_probe = &ogg[mid..mid + 64];
    for f in walk(&data) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(probe.len()).any(|w| w == probe.as_slice()),
            "raw PCM found in {}",
            f.display()
        );
        assert!(
            !bytes.windows(ogg_probe.len()).any(|w| w == ogg_probe),
            "plaintext Opus found in {}",
            f.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// `kill -9` of the gateway mid-call: after a restart the recording exists
/// and holds every bit of audio streamed up to at most 1 s before the kill.
pub fn kill_mid_call() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    add_tenant(cwd.path(), &d, &[], "contoso");
    let text = "This call carries on for a while so that the gateway can be killed in the middle of it. \
                The spool must keep every second of speech it was handed before the crash, \
                and the uploader must deliver it after the restart, complete and encrypted.";
    let alice_wav = speak(cwd.path(), "alice", text, "en-us");
    let bob_wav = speak(cwd.path(), "bob", text, "en-gb");
    let alice = recorder::decode_file(&alice_wav).unwrap().samples;

    let logs = cwd.path().join("serve-1.log");
    let mut server = serve_with_env(cwd.path(), &data, &[], &logs);
    let mut sim = insights(
        cwd.path(),
        &[
            "simulate-call",
            "--gateway",
            &server.base,
            "--tenant",
            "contoso",
            "--speed",
            "1",
            "--data-dir",
            &d,
            "--participant",
            &format!("Alice Example:alice@contoso.com:{}", alice_wav.display()),
            "--participant",
            &format!("Bob Example:+14255550100:{}", bob_wav.display()),
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();

    // The gateway logs `media ingest ready` as it lets audio flow.
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if std::fs::read_to_string(&logs)
            .unwrap_or_default()
            .contains("media ingest ready")
        {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "the call never became ready");
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(Duration::from_millis(4000));
    // SIGKILL: no shutdown code runs.
    server.child.kill().unwrap();
    let killed = Instant::now();
    server.child.wait().unwrap();
    let _ = sim.wait();
    // Audio can only have been sent after `ready` (observed within 5 ms of
    // it) and in real time, so at most this much was streamed:
    let streamed_ms = (killed - ready).as_millis() as i64 + 5;

    let server = serve_with_env(cwd.path(), &data, &[], &cwd.path().join("serve-2.log"));
    let settings = settings_for(&data, None, None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rec, ogg) = rt.block_on(async {
        let platform = insights::platform::Platform::open(&settings).await.unwrap();
        let tenant = platform.store.tenant_by_name("contoso").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let rec = loop {
            let page = platform
                .store
                .search_recordings(tenant.id, &RecordingQuery::default())
                .await
                .unwrap();
            if let Some(r) = page
                .items
                .into_iter()
                .map(|i| i.recording)
                .find(|r| r.status == RecordingStatus::Stored)
            {
                break r;
            }
            assert!(
                Instant::now() < deadline,
                "the interrupted recording was not stored after the restart"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let ogg = fetch_primary(&platform, tenant.id, &rec).await;
        // The stream row was stored at the first audio, before the kill.
        let full = platform
            .store
            .get_recording(tenant.id, rec.id)
            .await
            .unwrap();
        assert_eq!(
            full.streams.len(),
            1,
            "the recovered call has its stream row"
        );
        assert_eq!(full.streams[0].track, 0);
        assert!(full.streams[0].participant_id.is_none());
        (rec, ogg)
    });
    drop(server);

    let decoded = recorder::decode_ogg_opus(std::io::Cursor::new(&ogg), 16_000).unwrap();
    let left = &decoded.channels[0];
    let got_ms = left.len() as i64 * 1000 / 16_000;
    eprintln!("streamed at most {streamed_ms} ms before the kill; recovered {got_ms} ms");
    assert!(
        got_ms >= streamed_ms - 1000,
        "lost more than 1 s: streamed ≤ {streamed_ms} ms, recovered {got_ms} ms"
    );
    assert!(
        got_ms <= streamed_ms + 100,
        "recovered more than was streamed?"
    );
    assert_eq!(rec.kind, RecordingKind::Call);
    assert!(
        rec.participants
            .iter()
            .any(|p| p.recorded_user && p.role == ParticipantRole::Caller)
    );
    // What was recovered is the caller's speech, in order.
    let n = left.len().min(alice.len());
    let c = pearson(&envelope(&left[..n]), &envelope(&alice[..n]));
    assert!(
        c > 0.95,
        "recovered audio does not match what was said: {c:.3}"
    );
}

/// Fetches and decrypts one stored stream of a recording.
async fn fetch_stream(
    platform: &insights::platform::Platform,
    tenant: TenantId,
    rec: &Recording,
    stream: &MediaStream,
) -> Vec<u8> {
    let media = rec.media.clone().unwrap();
    let blob_key = bot_gateway::custody::stream_blob_key(rec.id, stream.track as u16, "audio/ogg");
    // Each stream's envelope is bound to its own object id.
    let object = bot_gateway::custody::envelope_object_id(rec.id, stream.track as u16, stream.id);
    fetch_object(platform, tenant, &media, &blob_key, object).await
}

/// A four-party meeting: one recording, a mix and one track per
/// participant, each track carrying exactly its participant's speech;
/// `encoding` as in [`two_party_call`].
pub fn meeting(pg_url: Option<&str>, azurite: Option<&str>, encoding: &str) {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let env = backend_env(pg_url, azurite);
    add_tenant(cwd.path(), &d, &env, "fabrikam");

    let people = [
        (
            "Alice Example",
            "alice@fabrikam.com",
            "en-us",
            "Welcome everyone to the weekly risk meeting, let us start with the open positions.",
        ),
        (
            "Bob Example",
            "bob@fabrikam.com",
            "en-gb",
            "The currency hedge is in place and the exposure is within our limits.",
        ),
        (
            "Carol Example",
            "carol@fabrikam.com",
            "en-us+f3",
            "I will send the audit report on Friday after the controls review.",
        ),
        (
            "Dave Example",
            "+442079460958",
            "en-sc",
            "Please note that the client asked for a recorded confirmation.",
        ),
    ];
    let mut inputs = Vec::new();
    let mut args: Vec<String> = [
        "simulate-call",
        "--gateway",
        "",
        "--tenant",
        "fabrikam",
        "--meeting",
        "--speed",
        "0",
        "--encoding",
        encoding,
        "--data-dir",
        &d,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (i, (name, id, voice, text)) in people.iter().enumerate() {
        let wav = speak(cwd.path(), &format!("p{i}"), text, voice);
        inputs.push(recorder::decode_file(&wav).unwrap().samples);
        args.push("--participant".into());
        args.push(format!("{name}:{id}:{}", wav.display()));
    }
    let server = serve_with_env(cwd.path(), &data, &env, &cwd.path().join("serve.log"));
    args[2] = server.base.clone();
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = simulate(cwd.path(), &env, &arg_refs);

    let settings = settings_for(&data, pg_url, azurite);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let platform = insights::platform::Platform::open(&settings).await.unwrap();
        let tenant = platform.store.tenant_by_name("fabrikam").await.unwrap();
        let rec = wait_stored(&platform, tenant.id, id).await;
        assert_eq!(rec.kind, RecordingKind::Meeting);
        let search = platform
            .store
            .search_recordings(tenant.id, &RecordingQuery::default())
            .await
            .unwrap();
        assert_eq!(search.total, 1, "one meeting, one recording");
        // Leaves are stored: everyone has left by the end, after joining.
        for p in &rec.participants {
            let left = p.left_ms.expect("every participant has left by the end");
            assert!(p.joined_ms.unwrap_or(0) <= left, "left before joining");
        }

        // In unmixed mode (as in Teams) only voiced 20 ms frames travel,
        // so the mix ends where the last speaker's last voiced frame does.
        let mix = rec
            .streams
            .iter()
            .find(|s| s.track == 0)
            .expect("mix stream");
        assert!(mix.participant_id.is_none());
        let mix_pcm = recorder::decode_ogg_opus(
            std::io::Cursor::new(fetch_stream(&platform, tenant.id, &rec, mix).await),
            16_000,
        )
        .unwrap();
        let last_voiced_ms = inputs
            .iter()
            .filter_map(|s| s.chunks(320).rposition(bot_gateway::simulator::is_voiced))
            .max()
            .unwrap() as i64
            * 20
            + 20;
        let mix_ms = mix_pcm.channels[0].len() as i64 * 1000 / 16_000;
        assert!(
            (mix_ms - last_voiced_ms).abs() <= 40,
            "mix {mix_ms} ms, last voiced frame ends at {last_voiced_ms} ms"
        );

        // Every participant has a track that carries their speech and not
        // anybody else's.
        for (i, (name, ..)) in people.iter().enumerate() {
            let p = rec
                .participants
                .iter()
                .find(|p| p.display_name.as_deref() == Some(*name))
                .unwrap_or_else(|| panic!("{name} missing"));
            let stream = rec
                .streams
                .iter()
                .find(|s| s.participant_id == Some(p.id))
                .unwrap_or_else(|| panic!("no track for participant {i}"));
            let pcm = recorder::decode_ogg_opus(
                std::io::Cursor::new(fetch_stream(&platform, tenant.id, &rec, stream).await),
                16_000,
            )
            .unwrap();
            // `start_ms` counts from the recording start, like the mix's:
            // align the track with the mix (the meeting timeline).
            let lead = ((stream.start_ms - mix.start_ms).max(0) * 16) as usize;
            let mut track = vec![0i16; lead];
            track.extend_from_slice(&pcm.channels[0]);
            let own = pearson(&envelope(&track), &envelope(&inputs[i]));
            let others = (0..people.len())
                .filter(|&j| j != i)
                .map(|j| pearson(&envelope(&track), &envelope(&inputs[j])))
                .fold(f64::MIN, f64::max);
            eprintln!(
                "participant {i}: start {} ms, own {own:.3}, best other {others:.3}",
                stream.start_ms
            );
            assert!(
                others < 0.5,
                "participant {i}: another voice in the track ({others:.3})"
            );
        }
        let organizer = rec
            .participants
            .iter()
            .find(|p| p.role == ParticipantRole::Organizer)
            .expect("organizer");
        assert!(organizer.recorded_user);
    });
    drop(server);
}

/// Blob storage down for two minutes while 20 calls finish: every call is
/// uploaded once storage is back, none lost, none duplicated.
pub fn storage_outage(pg_url: &str) {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A private Azurite this test may stop and start.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let az_dir = cwd.path().join("azurite");
    let azurite = |cmd: &str| {
        let st = std::process::Command::new(root.join("scripts/azurite.sh"))
            .args([cmd, az_dir.to_str().unwrap()])
            .env("AZURITE_PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "azurite.sh {cmd} failed");
    };
    azurite("start");
    let endpoint = format!("http://127.0.0.1:{port}/devstoreaccount1");
    let mut env = backend_env(Some(pg_url), Some(&endpoint));
    // Retry often enough that the test does not wait minutes after the
    // outage (production default: backoff up to 5 minutes).
    env.push(("INSIGHTS_SPOOL__BACKOFF_MAX_MS".into(), "5000".into()));
    add_tenant(cwd.path(), &d, &env, "contoso");
    let a = speak(cwd.path(), "a", "Short call for the outage test.", "en-us");
    let b = speak(cwd.path(), "b", "Understood, thank you.", "en-gb");

    let server = serve_with_env(cwd.path(), &data, &env, &cwd.path().join("serve.log"));
    azurite("stop");
    let outage = Instant::now();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(simulate(
            cwd.path(),
            &env,
            &[
                "simulate-call",
                "--gateway",
                &server.base,
                "--tenant",
                "contoso",
                "--speed",
                "0",
                "--data-dir",
                &d,
                "--participant",
                &format!("Caller {i}:caller{i}@contoso.com:{}", a.display()),
                "--participant",
                &format!("Callee {i}:+1425555{:04}:{}", 1000 + i, b.display()),
            ],
        ));
    }
    let settings = settings_for(&data, Some(pg_url), Some(&endpoint));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let platform = insights::platform::Platform::open(&settings).await.unwrap();
        let tenant = platform.store.tenant_by_name("contoso").await.unwrap();
        // While storage is down nothing is stored, and nothing is lost.
        for id in &ids {
            let r = platform.store.get_recording(tenant.id, *id).await.unwrap();
            assert_ne!(r.status, RecordingStatus::Stored);
        }
        tokio::time::sleep(Duration::from_secs(120).saturating_sub(outage.elapsed())).await;
        azurite("start");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut stored = 0;
            for id in &ids {
                if platform
                    .store
                    .get_recording(tenant.id, *id)
                    .await
                    .unwrap()
                    .status
                    == RecordingStatus::Stored
                {
                    stored += 1;
                }
            }
            if stored == ids.len() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {stored} of 20 recordings stored 2 minutes after storage returned"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Exactly one recording per call, and in the container exactly one
        // media object and one manifest per recording.
        let page = platform
            .store
            .search_recordings(
                tenant.id,
                &RecordingQuery {
                    limit: 100,
                    ..RecordingQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.total, 20);
        let keys = platform
            .blobs
            .list(&Tenant::container_name(tenant.id), "recordings")
            .await
            .unwrap();
        assert_eq!(keys.len(), 40, "{keys:?}");
        for id in &ids {
            assert!(keys.contains(&format!("recordings/{id}/stream-0.ogg.env")));
            assert!(keys.contains(&format!("recordings/{id}/manifest.json")));
        }
    });
    drop(server);
    azurite("stop");
}

/// Very short simulated calls, one after another: the simulator closes the
/// media, then hangs up, so the uploader (woken when the media closes) and
/// the call-end race. Whatever the order, every recording ends `stored`:
/// a call-end processed after the upload never moves it back (a
/// regression left it `spooled` for good, its spool copy gone).
pub fn short_calls_all_end_stored(calls: usize) {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let env = backend_env(None, None);
    add_tenant(cwd.path(), &d, &env, "contoso");
    let a = speak(cwd.path(), "a", "Short call.", "en-us");
    let b = speak(cwd.path(), "b", "Yes.", "en-gb");
    let logs = cwd.path().join("serve.log");
    let server = serve_with_env(cwd.path(), &data, &env, &logs);
    let mut ids = Vec::new();
    for i in 0..calls {
        ids.push(simulate(
            cwd.path(),
            &env,
            &[
                "simulate-call",
                "--gateway",
                &server.base,
                "--tenant",
                "contoso",
                "--speed",
                "0",
                "--data-dir",
                &d,
                "--participant",
                &format!("Caller {i}:caller{i}@contoso.com:{}", a.display()),
                "--participant",
                &format!("Callee {i}:+1425555{:04}:{}", 1000 + i, b.display()),
            ],
        ));
    }
    let settings = settings_for(&data, None, None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let platform = insights::platform::Platform::open(&settings).await.unwrap();
        let tenant = platform.store.tenant_by_name("contoso").await.unwrap();
        for id in &ids {
            wait_stored(&platform, tenant.id, *id).await;
        }
        // Every call-end has been processed (its "recording ended" line)...
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(&logs).unwrap_or_default();
            let ended = ids
                .iter()
                .filter(|id| {
                    log.lines()
                        .any(|l| l.contains("recording ended") && l.contains(&id.to_string()))
                })
                .count();
            if ended == ids.len() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{ended} of {} call-ends processed",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(&logs).unwrap_or_default();
        let late = log.lines().filter(|l| l.contains("late call end")).count();
        eprintln!("{late} of {} call-ends came after the upload", ids.len());
        // ...and left every recording stored, with its end.
        for id in &ids {
            let r = platform.store.get_recording(tenant.id, *id).await.unwrap();
            assert_eq!(r.status, RecordingStatus::Stored, "recording {id}");
            assert!(r.media.is_some() && r.ended_at.is_some(), "recording {id}");
        }
    });
    drop(server);
}
