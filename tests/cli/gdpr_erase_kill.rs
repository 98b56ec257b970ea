//! Issue 7 proof, with a real crash: `insights gdpr erase` SIGKILLed in
//! the middle of executing an erasure (waiver set, so every recording's
//! media blobs are deleted and data keys shredded), then `--resume` from
//! a new process completes it with no error; the certificate verifies,
//! names every recording of the dry-run report exactly once, and a
//! further `--resume` writes the byte-identical certificate. Afterwards no
//! media blob of those recordings remains and `find` returns nothing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use insights_core::blob::{BlobStore, layout};
use insights_core::crypto::{DataKey, Header, KeyProvider, LocalKeyFile, encrypt_to_vec};
use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::blob::LocalBlobStore;
use insights_stores::metadata::sqlite::SqliteStore;

use crate::e2e_call::add_tenant;
use crate::insights;

const SUBJECT_EMAIL: &str = "kim.subject@example.org";
const RECORDINGS: usize = 400;

/// Files under `dir` (recursively).
fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { count_files(&p) } else { 1 }
        })
        .sum()
}

/// `RECORDINGS` stored calls in which the subject is the callee (the
/// caller is the recorded user), each with an encrypted media blob and a
/// manifest, its wrapped data key and a transcript line.
async fn seed(data: &Path, tenant_name: &str, count: usize) -> Vec<RecordingId> {
    let url = format!("sqlite://{}", data.join("insights.db").display());
    let store = SqliteStore::connect(&url, 2).await.unwrap();
    let blobs = LocalBlobStore::new(data.join("blobs"));
    let keys = LocalKeyFile::open(data.join("keys").join("kek.json")).unwrap();
    let tenant = store.tenant_by_name(tenant_name).await.unwrap();
    let t = tenant.id;
    let settings = TenantSettings {
        media_deletion_waiver: true,
        ..tenant.settings.clone()
    };
    store.update_tenant_settings(t, &settings).await.unwrap();
    let container = Tenant::container_name(t);
    let start = Utc::now() - chrono::Duration::days(3);
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let mut rec = Recording::new(
            t,
            RecordingKind::Call,
            Direction::Inbound,
            start + chrono::Duration::minutes(i as i64),
        );
        let caller = Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Caller,
            display_name: Some(format!("Agent {i}")),
            phone_number: Some(format!("+1555{i:07}")),
            uri: None,
            email: Some(format!("agent{i}@contoso.com")),
            directory_user_id: None,
            recorded_user: true,
            joined_ms: None,
            left_ms: None,
        };
        let subject = Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Callee,
            display_name: Some("Kim Subject".into()),
            phone_number: None,
            uri: None,
            email: Some(SUBJECT_EMAIL.into()),
            directory_user_id: None,
            recorded_user: false,
            joined_ms: None,
            left_ms: None,
        };
        rec.participants = vec![caller, subject.clone()];
        let key_id = KeyId::new();
        let key = DataKey::generate(key_id);
        store
            .put_data_key(t, &keys.wrap(t, &key).await.unwrap())
            .await
            .unwrap();
        let plain = format!("OggS media of {}", rec.id).into_bytes();
        let sealed =
            encrypt_to_vec(&key, &Header::new(t, rec.id.as_uuid(), key_id), &plain).unwrap();
        let blob_key = layout::stream_blob_key(rec.id, 0, "audio/ogg");
        let out = blobs
            .put(&container, &blob_key, &mut &sealed[..])
            .await
            .unwrap();
        blobs
            .put(&container, &layout::manifest_key(rec.id), &mut &b"{}"[..])
            .await
            .unwrap();
        rec.media = Some(MediaObject {
            container: container.clone(),
            key: blob_key,
            byte_size: out.byte_size as i64,
            sha256: out.sha256,
            data_key_id: key_id,
            content_type: "audio/ogg".into(),
            plaintext_size: plain.len() as i64,
        });
        rec.status = RecordingStatus::Stored;
        store.insert_recording(t, &rec).await.unwrap();
        store
            .put_transcript_segments(
                t,
                rec.id,
                &[TranscriptSegment {
                    id: SegmentId::new(),
                    recording_id: rec.id,
                    participant_id: Some(subject.id),
                    start_ms: 0,
                    end_ms: 900,
                    text: "I would like to cancel my contract.".into(),
                    confidence: 0.9,
                    language: Some("en".into()),
                }],
            )
            .await
            .unwrap();
        ids.push(rec.id);
    }
    store.close().await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_killed_mid_run_resumes_to_the_same_certificate() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    add_tenant(cwd.path(), &d, &[], "contoso");
    let ids = seed(&data, "contoso", RECORDINGS).await;
    let blob_root = data.join("blobs");
    let before = count_files(&blob_root);
    assert!(before >= 2 * RECORDINGS, "{before} blobs seeded");

    // First run: plan, then execute; killed once some recordings are done.
    let cert1 = cwd.path().join("first.json");
    let mut child = insights(
        cwd.path(),
        &[
            "gdpr",
            "erase",
            "--tenant",
            "contoso",
            "--email",
            SUBJECT_EMAIL,
            "--reason",
            "Art. 17 request 42",
            "--certificate",
            cert1.to_str().unwrap(),
            "--data-dir",
            &d,
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let request = first
        .strip_prefix("erasure request ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no request id in {first:?}"))
        .to_owned();
    assert!(first.contains("waiver: true"), "{first}");
    // Drain the report in the background so the child never blocks on a
    // full pipe.
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        while out.read_line(&mut rest).unwrap_or(0) > 0 {}
        rest
    });
    let started = Instant::now();
    loop {
        let now = count_files(&blob_root);
        // At least 20 recordings' blobs gone: well inside the execution.
        if now + 40 <= before {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the erasure ended before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the erasure made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    let _ = drain.join();
    assert!(!status.success(), "killed, not finished: {status}");
    let left = count_files(&blob_root);
    assert!(
        left > 0,
        "the kill came after the last recording; nothing left to resume"
    );
    assert!(!cert1.exists(), "no certificate from the killed run");

    // Resume from a new process: completes without error.
    let resume = |file: &Path| {
        let o = insights(
            cwd.path(),
            &[
                "gdpr",
                "erase",
                "--tenant",
                "contoso",
                "--resume",
                &request,
                "--certificate",
                file.to_str().unwrap(),
                "--data-dir",
                &d,
            ],
        )
        .output()
        .unwrap();
        assert!(
            o.status.success(),
            "resume failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let cert2 = cwd.path().join("resumed.json");
    let stdout = resume(&cert2);
    assert!(
        stdout.contains(&format!("erasure {request}: completed")),
        "{stdout}"
    );
    let verify = insights(
        cwd.path(),
        &[
            "gdpr",
            "verify-certificate",
            cert2.to_str().unwrap(),
            "--data-dir",
            &d,
        ],
    )
    .output()
    .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // Every planned recording certified exactly once; none of the
    // subject's identifiers in clear.
    let text = std::fs::read_to_string(&cert2).unwrap();
    for id in &ids {
        assert_eq!(
            text.matches(&id.to_string()).count(),
            1,
            "recording {id} in the certificate"
        );
    }
    assert!(!text.to_lowercase().contains("kim"), "identifier in clear");
    assert!(
        !text.contains("\"pending\"") && !text.contains("\"blocked\""),
        "every recording erased: {text}"
    );
    assert!(!text.contains("\"blob_deleted\":false"), "{text}");

    // Executing again changes nothing and certifies the same bytes.
    let cert3 = cwd.path().join("again.json");
    resume(&cert3);
    assert_eq!(
        std::fs::read(&cert2).unwrap(),
        std::fs::read(&cert3).unwrap(),
        "the certificate is stable"
    );

    // No media of the erased recordings is left, and the subject is gone.
    let container = blob_root.read_dir().unwrap().flatten().count();
    assert!(container <= 1, "one tenant container");
    assert_eq!(count_files(&blob_root), 0, "every media blob deleted");
    let find = insights(
        cwd.path(),
        &[
            "gdpr",
            "find",
            "--tenant",
            "contoso",
            "--email",
            SUBJECT_EMAIL,
            "--json",
            "--data-dir",
            &d,
        ],
    )
    .output()
    .unwrap();
    assert!(find.status.success());
    let found: serde_json::Value = serde_json::from_slice(&find.stdout).unwrap();
    assert!(
        found["matches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["type"] != "recording"),
        "{found}"
    );
}

/// `insights reprocess` queues a recording no erasure touched, and refuses
/// one an erasure covered: without the media-deletion waiver the media
/// stays until retention, and transcribing it again would bring back the
/// words the erasure removed. (The transcription worker refuses such a
/// job too, for one queued before the erasure.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocess_refuses_a_recording_an_erasure_covered() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    add_tenant(cwd.path(), &d, &[], "contoso");
    let ids = seed(&data, "contoso", 2).await;
    // No waiver: the erasure keeps the media until retention.
    {
        let url = format!("sqlite://{}", data.join("insights.db").display());
        let store = SqliteStore::connect(&url, 1).await.unwrap();
        let tenant = store.tenant_by_name("contoso").await.unwrap();
        let settings = TenantSettings {
            media_deletion_waiver: false,
            ..tenant.settings.clone()
        };
        store
            .update_tenant_settings(tenant.id, &settings)
            .await
            .unwrap();
        store.close().await;
    }
    let reprocess = |id: &RecordingId| {
        insights(
            cwd.path(),
            &[
                "reprocess",
                "--recording",
                &id.to_string(),
                "--data-dir",
                &d,
            ],
        )
        .output()
        .unwrap()
    };
    let before = reprocess(&ids[0]);
    assert!(
        before.status.success(),
        "before the erasure: {}",
        String::from_utf8_lossy(&before.stderr)
    );
    assert!(String::from_utf8_lossy(&before.stdout).contains("queued"));

    let cert = cwd.path().join("cert.json");
    let erase = insights(
        cwd.path(),
        &[
            "gdpr",
            "erase",
            "--tenant",
            "contoso",
            "--email",
            SUBJECT_EMAIL,
            "--reason",
            "Art. 17 request 43",
            "--certificate",
            cert.to_str().unwrap(),
            "--data-dir",
            &d,
        ],
    )
    .output()
    .unwrap();
    assert!(
        erase.status.success(),
        "{}",
        String::from_utf8_lossy(&erase.stderr)
    );
    assert!(
        std::fs::read_to_string(&cert)
            .unwrap()
            .contains("pseudonymized-media-deferred"),
        "the media was kept"
    );

    let after = reprocess(&ids[1]);
    assert_eq!(after.status.code(), Some(1), "refused after the erasure");
    let stderr = String::from_utf8_lossy(&after.stderr);
    assert!(stderr.contains("erasure covers it"), "{stderr}");
    assert!(!String::from_utf8_lossy(&after.stdout).contains("queued"));
}
