//! Data-subject requests end to end (issue 7, proof), on SQLite and on
//! PostgreSQL (`INSIGHTS_TEST_PG_URL`):
//!
//! * a subject in 3 of 200 recordings, in three roles: `find` returns
//!   exactly those 3 (and their directory profile) with reasons;
//! * the access bundle holds exactly their data, masks the other parties,
//!   and its manifest hashes verify;
//! * erasure with the waiver: a legal hold blocks one recording with its
//!   case name in the report; lifting it lets the next run proceed; then a
//!   scan of every table, the blob store, the spool and the search index
//!   finds no trace of the subject; a blob copied before erasure can no
//!   longer be decrypted; the certificate verifies and any edited byte
//!   fails;
//! * an erasure interrupted halfway (blob store failing) and re-run
//!   completes with the same certificate content as an uninterrupted run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{Duration, TimeZone, Utc};
use gdpr_tools::access::{AccessEnv, AccessOptions, Requester, build_bundle};
use gdpr_tools::bundles::{Completed, JobRun};
use gdpr_tools::certificate::{CertificateSigner, verify};
use gdpr_tools::erasure::{self, ErasureEnv};
use gdpr_tools::subject::{FindOptions, SubjectIdentifiers, find};
use insights_core::blob::{BlobError, BlobStore, layout};
use insights_core::crypto::{DataKey, Header, KeyProvider, LocalKeyFile, encrypt_to_vec};
use insights_core::domain::*;
use insights_core::store::{MetadataStore, StoreError};
use insights_tests::fault::FlakyBlobs;
use insights_tests::world::{Blobs, Db, Metadata};
use sha2::Digest;

const SUBJECT_NAME: &str = "Dana Subject";
const SUBJECT_EMAIL: &str = "dana.subject@example.org";
const SUBJECT_E164: &str = "+442079460958";
/// Strings that must not survive erasure anywhere (compared lower-case).
const TRACES: &[&str] = &[
    "dana subject",
    "dana.subject",
    "442079460958",
    "2079460958",
    "7946 0958",
];

/// The shared world (SQLite or PostgreSQL, local blobs, key file) plus
/// the installation's signing key and the spool and bundle folders.
struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    keys: Arc<LocalKeyFile>,
    signer: CertificateSigner,
    db: Db,
}

impl World {
    async fn new(pg: bool) -> World {
        let metadata = if pg {
            Metadata::Postgres
        } else {
            Metadata::Sqlite
        };
        let insights_tests::world::World {
            dir,
            store,
            blobs,
            keys,
            db,
            ..
        } = insights_tests::world::World::new(metadata, Blobs::Local).await;
        let root = dir.path().to_path_buf();
        let signer =
            CertificateSigner::open_or_create(root.join("keys/installation-signing-key.json"))
                .unwrap();
        std::fs::create_dir_all(root.join("spool")).unwrap();
        std::fs::create_dir_all(root.join("bundles")).unwrap();
        World {
            _dir: dir,
            root,
            store,
            blobs,
            keys,
            signer,
            db,
        }
    }

    async fn tenant(&self, name: &str, waiver: bool) -> TenantId {
        let t = self
            .store
            .create_tenant(NewTenant {
                name: name.into(),
                directory_tenant_id: None,
            })
            .await
            .unwrap();
        let settings = TenantSettings {
            media_deletion_waiver: waiver,
            ..TenantSettings::default()
        };
        self.store
            .update_tenant_settings(t.id, &settings)
            .await
            .unwrap();
        self.keys.ensure_kek(t.id).await.unwrap();
        self.blobs
            .ensure_container(&Tenant::container_name(t.id))
            .await
            .unwrap();
        t.id
    }

    fn erasure_env<'a>(&'a self, blobs: &'a dyn BlobStore) -> ErasureEnv<'a> {
        ErasureEnv {
            store: self.store.as_ref(),
            blobs,
            signer: &self.signer,
            spool: Some(Arc::new(bot_gateway::spool::SpoolDir::new(
                self.root.join("spool"),
            ))),
            find: find_opts(),
        }
    }
}

fn find_opts() -> FindOptions {
    FindOptions {
        default_region: Some("GB".into()),
    }
}

fn party(role: ParticipantRole, n: u64) -> Participant {
    Participant {
        id: ParticipantId::new(),
        role,
        display_name: Some(format!("Other Person {n}")),
        phone_number: Some(format!("+1555{:07}", n)),
        uri: Some(format!("sip:other{n}@example.com")),
        email: Some(format!("other{n}@example.com")),
        directory_user_id: None,
        recorded_user: false,
        joined_ms: None,
        left_ms: None,
    }
}

fn subject_party(role: ParticipantRole) -> Participant {
    Participant {
        id: ParticipantId::new(),
        role,
        display_name: None,
        phone_number: None,
        uri: None,
        email: None,
        directory_user_id: None,
        recorded_user: false,
        joined_ms: None,
        left_ms: None,
    }
}

/// The seeded data: what the assertions need to know.
struct Seeded {
    subject_recordings: Vec<RecordingId>,
    /// (recording, subject participant) of the three.
    subject_parts: Vec<(RecordingId, ParticipantId)>,
    user: UserId,
    /// Ciphertext of the first subject recording, copied as a "backup".
    backup: (RecordingId, KeyId, Vec<u8>),
}

async fn put_media(w: &World, tenant: TenantId, rec: &mut Recording, key_id: KeyId) -> Vec<u8> {
    let key = DataKey::generate(key_id);
    let wrapped = w.keys.wrap(tenant, &key).await.unwrap();
    w.store.put_data_key(tenant, &wrapped).await.unwrap();
    let plain = format!("OggS fake media of {}", rec.id).into_bytes();
    let sealed =
        encrypt_to_vec(&key, &Header::new(tenant, rec.id.as_uuid(), key_id), &plain).unwrap();
    let container = Tenant::container_name(tenant);
    let blob_key = layout::stream_blob_key(rec.id, 0, "audio/ogg");
    let out = w
        .blobs
        .put(&container, &blob_key, &mut &sealed[..])
        .await
        .unwrap();
    // A second object under the recording's prefix (its manifest).
    w.blobs
        .put(&container, &layout::manifest_key(rec.id), &mut &b"{}"[..])
        .await
        .unwrap();
    rec.media = Some(MediaObject {
        container,
        key: blob_key,
        byte_size: out.byte_size as i64,
        sha256: out.sha256,
        data_key_id: key_id,
        content_type: "audio/ogg".into(),
        plaintext_size: plain.len() as i64,
    });
    rec.status = RecordingStatus::Stored;
    sealed
}

fn seg(rec: RecordingId, p: ParticipantId, start: i64, text: &str) -> TranscriptSegment {
    TranscriptSegment {
        id: SegmentId::new(),
        recording_id: rec,
        participant_id: Some(p),
        start_ms: start,
        end_ms: start + 900,
        text: text.into(),
        confidence: 0.9,
        language: Some("en".into()),
    }
}

/// 200 recordings; the subject is in 3: caller by phone (another party
/// is the recorded user), meeting attendee by email, callee by SIP URI
/// and directory link as the recorded user. One more recording has a
/// different Dana (must not match).
async fn seed(w: &World, tenant: TenantId) -> Seeded {
    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    let user = DirectoryUser {
        id: UserId::new(),
        tenant_id: tenant,
        directory_object_id: Some("6f1c2a9e-0000-4000-8000-00000000d5a1".into()),
        first_name: Some("Dana".into()),
        last_name: Some("Subject".into()),
        display_name: Some(SUBJECT_NAME.into()),
        alias: Some("dsubject".into()),
        email: Some(SUBJECT_EMAIL.into()),
        upn: Some(SUBJECT_EMAIL.into()),
        phone_numbers: vec![SUBJECT_E164.into()],
        sip_uri: Some(format!("sip:{SUBJECT_EMAIL}")),
        tel_uri: Some(format!("tel:{SUBJECT_E164}")),
        groups: vec!["sales".into()],
        active: false,
        updated_at: insights_core::domain::now(),
    };
    w.store.upsert_directory_user(tenant, &user).await.unwrap();
    let mut subject_recordings = Vec::new();
    let mut subject_parts = Vec::new();
    let mut backup = None;
    for i in 0..200u64 {
        let kind = if i % 5 == 0 {
            RecordingKind::Meeting
        } else {
            RecordingKind::Call
        };
        let mut rec = Recording::new(
            tenant,
            kind,
            Direction::Inbound,
            t0 + Duration::minutes(i as i64 * 7),
        );
        let (a_role, b_role) = match kind {
            RecordingKind::Meeting => (ParticipantRole::Organizer, ParticipantRole::Attendee),
            RecordingKind::Call => (ParticipantRole::Caller, ParticipantRole::Callee),
        };
        let mut a = party(a_role, i * 2);
        a.recorded_user = true;
        let b = party(b_role, i * 2 + 1);
        rec.participants = vec![a.clone(), b.clone()];
        let mut subject = None;
        match i {
            17 => {
                // Caller by phone; the callee is the recorded user.
                let mut s = subject_party(ParticipantRole::Caller);
                s.phone_number = Some(SUBJECT_E164.into());
                s.display_name = Some("+44 20 7946 0958".into());
                rec.participants = vec![s.clone(), b.clone()];
                rec.participants[1].recorded_user = true;
                subject = Some(s);
            }
            60 => {
                // Meeting attendee by email.
                let mut s = subject_party(ParticipantRole::Attendee);
                s.email = Some(SUBJECT_EMAIL.to_uppercase());
                s.display_name = Some(SUBJECT_NAME.into());
                rec.participants.push(s.clone());
                subject = Some(s);
            }
            133 => {
                // Callee by SIP URI, the recorded user, linked to the directory.
                let mut s = subject_party(ParticipantRole::Callee);
                s.uri = Some(format!("sip:{SUBJECT_EMAIL}"));
                s.directory_user_id = Some(user.id);
                s.recorded_user = true;
                s.display_name = Some(SUBJECT_NAME.into());
                rec.participants = vec![a.clone(), s.clone()];
                rec.participants[0].recorded_user = false;
                subject = Some(s);
            }
            150 => {
                // Another Dana: not the subject.
                rec.participants[1].display_name = Some("Dana Other".into());
            }
            _ => {}
        }
        let sealed = put_media(w, tenant, &mut rec, KeyId::new()).await;
        w.store.insert_recording(tenant, &rec).await.unwrap();
        let other = if rec.participants[0].id == a.id {
            a.id
        } else {
            b.id
        };
        let mut segs = vec![seg(rec.id, other, 0, "Good morning, how can I help?")];
        if let Some(s) = &subject {
            segs.push(seg(
                rec.id,
                s.id,
                1000,
                "I would like to cancel my contract.",
            ));
            segs.push(seg(
                rec.id,
                other,
                2000,
                "Certainly, Dana Subject, one moment.",
            ));
            subject_recordings.push(rec.id);
            subject_parts.push((rec.id, s.id));
            if backup.is_none() {
                backup = Some((rec.id, rec.media.as_ref().unwrap().data_key_id, sealed));
            }
        }
        w.store
            .put_transcript_segments(tenant, rec.id, &segs)
            .await
            .unwrap();
        w.store
            .put_insights(
                tenant,
                rec.id,
                &[Insight {
                    id: InsightId::new(),
                    recording_id: rec.id,
                    kind: InsightKind::Summary,
                    text: if subject.is_some() {
                        "Dana Subject asked to cancel.".into()
                    } else {
                        "A routine call.".into()
                    },
                    owner_participant_id: None,
                    provider: "local:extractive".into(),
                    created_at: insights_core::domain::now(),
                    citations: Vec::new(),
                }],
            )
            .await
            .unwrap();
    }
    Seeded {
        subject_recordings,
        subject_parts,
        user: user.id,
        backup: backup.unwrap(),
    }
}

/// Every row of every table as text, lower-cased.
async fn dump_database(w: &World) -> String {
    let mut out = String::new();
    match &w.db {
        Db::Pg(url) => {
            use sqlx::{Connection, Row};
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&mut c)
            .await
            .unwrap();
            assert!(tables.len() > 10, "{tables:?}");
            for t in tables {
                let sql = format!("SELECT t::text AS row FROM \"{t}\" t");
                for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
                {
                    let s: String = row.get("row");
                    out.push_str(&t);
                    out.push(' ');
                    out.push_str(&s);
                    out.push('\n');
                }
            }
        }
        Db::Sqlite(path) => {
            use sqlx::{Column, Connection, Row, ValueRef};
            let url = format!("sqlite://{}", path.display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
            )
            .fetch_all(&mut c)
            .await
            .unwrap();
            assert!(tables.len() > 10, "{tables:?}");
            for t in tables {
                let sql = format!("SELECT * FROM \"{t}\"");
                for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
                {
                    out.push_str(&t);
                    for col in row.columns() {
                        let i = col.ordinal();
                        if row.try_get_raw(i).unwrap().is_null() {
                            continue;
                        }
                        out.push(' ');
                        if let Ok(s) = row.try_get::<String, _>(i) {
                            out.push_str(&s);
                        } else if let Ok(b) = row.try_get::<Vec<u8>, _>(i) {
                            out.push_str(&String::from_utf8_lossy(&b));
                        } else if let Ok(n) = row.try_get::<i64, _>(i) {
                            out.push_str(&n.to_string());
                        }
                    }
                    out.push('\n');
                }
            }
        }
    }
    out.to_lowercase()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn find_access_erase_end_to_end(pg: bool) {
    let w = World::new(pg).await;
    let tenant = w.tenant("contoso", true).await;
    let s = seed(&w, tenant).await;
    let actor = "dpo-account";

    // ---- find: by the phone number as the subject wrote it ----
    let ids = SubjectIdentifiers {
        phone: Some("020 7946 0958".into()),
        ..Default::default()
    };
    let found = find(w.store.as_ref(), tenant, &ids, &find_opts())
        .await
        .unwrap();
    let got: BTreeSet<_> = found.recordings.iter().map(|r| r.recording.id).collect();
    let want: BTreeSet<_> = s.subject_recordings.iter().copied().collect();
    assert_eq!(got, want, "exactly the subject's 3 recordings");
    let reasons: Vec<(String, Option<String>)> = found
        .recordings
        .iter()
        .flat_map(|r| r.reasons.iter().map(|x| (x.field.clone(), x.role.clone())))
        .collect();
    for want in [
        ("phone_number", "caller"),
        ("email", "attendee"),
        ("uri", "callee"),
        ("directory_user_id", "callee"),
    ] {
        assert!(
            reasons.contains(&(want.0.into(), Some(want.1.into()))),
            "missing reason {want:?} in {reasons:?}"
        );
    }
    let matches = found.matches();
    assert_eq!(
        matches
            .iter()
            .filter(|m| m.kind == "directory-user")
            .map(|m| m.id.clone())
            .collect::<Vec<_>>(),
        vec![s.user.to_string()]
    );
    // The name alone finds the two recordings that carry it, and not
    // "Dana Other".
    let by_name = find(
        w.store.as_ref(),
        tenant,
        &SubjectIdentifiers {
            name: Some("dana SUBJECT".into()),
            ..Default::default()
        },
        &find_opts(),
    )
    .await
    .unwrap();
    assert_eq!(by_name.recordings.len(), 2);

    // ---- access bundle ----
    let env = AccessEnv {
        store: w.store.as_ref(),
        blobs: w.blobs.as_ref(),
        keys: w.keys.as_ref(),
        find: find_opts(),
    };
    let mut buf = Cursor::new(Vec::new());
    // The media as stored (masking the other parties' voices decodes
    // real audio: proven through `insights serve` in tests/cli).
    let opts = AccessOptions {
        include_media: true,
        mask_others: false,
        ..AccessOptions::default()
    };
    let who = Requester {
        actor: actor.into(),
        reason: Some("Art. 15 request 4710".into()),
        source: Some("192.0.2.7".into()),
        bundle_id: None,
        rerun: false,
    };
    let (summary, _) = build_bundle(&env, tenant, &ids, &opts, &who, &mut buf)
        .await
        .unwrap();
    assert_eq!(summary.recordings.len(), 3);
    assert_eq!(summary.media_files, 3);
    assert_eq!(summary.segments, 3, "only the subject's own segments");
    let bytes = buf.into_inner();
    let mut zip = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
    let mut manifest = String::new();
    zip.by_name("manifest.json")
        .unwrap()
        .read_to_string(&mut manifest)
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len() + 1, zip.len(), "the manifest lists every file");
    for f in files {
        let mut data = Vec::new();
        zip.by_name(f["path"].as_str().unwrap())
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&data)),
            f["sha256"].as_str().unwrap(),
            "{}",
            f["path"]
        );
    }
    // The default masks the other parties in the listing.
    let mut masked = Cursor::new(Vec::new());
    build_bundle(
        &env,
        tenant,
        &ids,
        &AccessOptions::default(),
        &who,
        &mut masked,
    )
    .await
    .unwrap();
    let mut masked_zip = zip::ZipArchive::new(Cursor::new(masked.into_inner())).unwrap();
    let mut listing = String::new();
    masked_zip
        .by_name("recordings.json")
        .unwrap()
        .read_to_string(&mut listing)
        .unwrap();
    let listing_v: serde_json::Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(listing_v["items"].as_array().unwrap().len(), 3);
    assert!(listing.contains("[masked]"));
    assert!(
        !listing.contains("Other Person") && !listing.contains("+1555"),
        "other parties are masked: {listing}"
    );
    assert!(listing.to_lowercase().contains(SUBJECT_EMAIL));
    for r in &s.subject_recordings {
        let mut m = Vec::new();
        zip.by_name(&format!("media/{r}.ogg"))
            .unwrap()
            .read_to_end(&mut m)
            .unwrap();
        assert_eq!(m, format!("OggS fake media of {r}").into_bytes());
        let mut t = String::new();
        zip.by_name(&format!("transcripts/{r}.json"))
            .unwrap()
            .read_to_string(&mut t)
            .unwrap();
        assert!(t.contains("cancel my contract") && !t.contains("Good morning"));
    }
    zip.by_name(&format!("directory/{}.json", s.user)).unwrap();
    // A bundle kept for download (by the API: sealed in the blob store,
    // its job in the metadata store) goes with an erasure.
    let at = insights_core::domain::now();
    let (run, mut sealed) = JobRun::start(
        w.store.clone(),
        w.blobs.clone(),
        w.keys.as_ref(),
        FileJob {
            id: FileJobId::new(),
            tenant_id: tenant,
            kind: FileJobKind::AccessBundle,
            owner: actor.into(),
            state: FileJobState::Running,
            error: None,
            done: 0,
            total: 0,
            details: serde_json::json!({}),
            recordings: Vec::new(),
            output: None,
            lease_until: at,
            created_at: at,
            expires_at: at + Duration::days(7),
            attempt: 1,
            request: None,
        },
    )
    .await
    .unwrap();
    let bundle_id = run.job().id;
    let clear = bytes.clone();
    tokio::task::spawn_blocking(move || {
        std::io::Write::write_all(&mut sealed, &clear).unwrap();
        sealed.finish().unwrap();
    })
    .await
    .unwrap();
    let finished = run
        .finish(Ok(Completed {
            recordings: summary
                .recordings
                .iter()
                .map(|r| r.parse().unwrap())
                .collect(),
            ..Completed::default()
        }))
        .await;
    assert_eq!(finished, FileJobState::Done);
    let kept_key = layout::file_job_key(FileJobKind::AccessBundle, bundle_id);
    // Unmasked on request.
    let mut plain = Cursor::new(Vec::new());
    let unmasked = AccessOptions {
        mask_others: false,
        columns: Some(vec!["recording_id".into(), "other_parties".into()]),
        ..AccessOptions::default()
    };
    build_bundle(&env, tenant, &ids, &unmasked, &who, &mut plain)
        .await
        .unwrap();
    let mut zip = zip::ZipArchive::new(Cursor::new(plain.into_inner())).unwrap();
    let mut listing = String::new();
    zip.by_name("recordings.json")
        .unwrap()
        .read_to_string(&mut listing)
        .unwrap();
    assert!(listing.contains("Other Person") && !listing.contains("started_at"));

    // ---- a spool copy of one recording, and a legal hold on another ----
    let spooled = s.subject_recordings[0];
    let spool_entry = w.root.join("spool").join(spooled.to_string());
    std::fs::create_dir_all(&spool_entry).unwrap();
    std::fs::write(spool_entry.join("media.spl"), b"INSSPOOL ciphertext").unwrap();
    let held = s.subject_recordings[1];
    let hold = LegalHold {
        id: LegalHoldId::new(),
        tenant_id: tenant,
        case_name: "Case 2026-114 (regulator inquiry)".into(),
        reason: None,
        scope: HoldScope {
            recording_ids: vec![held],
            ..HoldScope::default()
        },
        placed_by: "legal".into(),
        placed_at: insights_core::domain::now(),
        lifted_by: None,
        lifted_at: None,
    };
    w.store.create_legal_hold(tenant, &hold).await.unwrap();

    // ---- erasure: request (dry run) ----
    let env = w.erasure_env(w.blobs.as_ref());
    let req = erasure::request(&env, tenant, &ids, "Art. 17 request 4711", actor)
        .await
        .unwrap();
    assert_eq!(req.status, "planned");
    assert!(req.report.waiver);
    assert_eq!(req.report.recordings.len(), 3);
    let item = |id: RecordingId| {
        req.report
            .recordings
            .iter()
            .find(|i| i.id == id)
            .unwrap()
            .clone()
    };
    assert_eq!(item(held).action, "blocked");
    assert_eq!(
        item(held).holds[0].case_name,
        "Case 2026-114 (regulator inquiry)"
    );
    assert_eq!(item(s.subject_recordings[0]).mode, "pseudonymize");
    assert_eq!(item(s.subject_recordings[2]).mode, "delete-recording");
    // A dry run changes nothing.
    assert!(
        w.store
            .get_recording(tenant, s.subject_recordings[2])
            .await
            .is_ok()
    );

    // ---- execute: blocked by the hold ----
    let done = erasure::execute(&env, tenant, req.id, actor, None)
        .await
        .unwrap();
    assert_eq!(done.status, "partially-blocked");
    assert_eq!(done.outcomes[&held].result, "blocked");
    assert_eq!(
        done.outcomes[&held].holds[0].case_name,
        "Case 2026-114 (regulator inquiry)"
    );
    assert!(w.store.get_recording(tenant, held).await.is_ok());

    // ---- lift the hold; the next run proceeds ----
    w.store
        .lift_legal_hold(tenant, hold.id, "legal")
        .await
        .unwrap();
    let done = erasure::execute(&env, tenant, req.id, actor, None)
        .await
        .unwrap();
    assert_eq!(done.status, "completed", "{:?}", done.outcomes);
    assert_eq!(done.outcomes[&held].result, "pseudonymized");
    assert_eq!(done.outcomes[&s.subject_recordings[2]].result, "deleted");
    assert_eq!(done.directory_outcomes[&s.user].result, "deleted");

    // ---- the certificate ----
    let cert = erasure::certificate(w.store.as_ref(), tenant, req.id)
        .await
        .unwrap()
        .unwrap();
    let v = verify(cert.as_bytes(), Some(&w.signer.public_key_hex())).unwrap();
    assert_eq!(v.certificate["request_id"], req.id.to_string());
    assert_eq!(v.certificate["recordings"].as_array().unwrap().len(), 3);
    let certified = |r: RecordingId| {
        v.certificate["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["recording_id"] == r.to_string())
            .cloned()
            .unwrap()
    };
    assert_eq!(
        certified(spooled)["spool_copy"]["entry_deleted"],
        true,
        "the certificate states the spool copy was deleted"
    );
    assert!(certified(held).get("spool_copy").is_none());
    assert!(!cert.to_lowercase().contains("dana"));
    for i in [10, cert.len() / 2, cert.len() - 3] {
        let mut edited = cert.clone().into_bytes();
        edited[i] ^= 0x01;
        assert!(verify(&edited, None).is_err(), "edit at {i} verified");
    }

    // ---- no trace: database, blobs, spool, search index ----
    let dump = dump_database(&w).await;
    for t in TRACES {
        assert!(!dump.contains(t), "the database still holds {t:?}");
    }
    assert!(dump.contains("other person 3"), "the dump does see content");
    let blob_files = files_under(&w.root.join("blobs"));
    for r in &s.subject_recordings {
        assert!(
            !blob_files
                .iter()
                .any(|p| p.to_string_lossy().contains(&r.to_string())),
            "a blob of {r} is left"
        );
        assert!(
            w.store
                .get_data_key(tenant, item(*r).media.unwrap().data_key_id)
                .await
                .is_err()
        );
    }
    assert_eq!(
        blob_files.len(),
        2 * 197,
        "the other recordings keep their blobs"
    );
    assert!(!spool_entry.exists(), "the spool copy is gone");
    assert!(
        files_under(&w.root.join("spool"))
            .iter()
            .all(|p| p.ends_with("spool.lock")),
        "nothing left in the spool but its lock file"
    );
    assert!(
        matches!(
            w.store.get_file_job(tenant, bundle_id).await,
            Err(StoreError::NotFound)
        ),
        "the access bundle's job (and its wrapped key) is gone"
    );
    assert!(
        !blob_files.iter().any(|p| p.ends_with(&kept_key)),
        "the access bundle's file is gone"
    );
    for q in ["dana", "dana.subject", "2079460958"] {
        let page = w
            .store
            .search_recordings(
                tenant,
                &RecordingQuery {
                    participant: Some(q.into()),
                    ..RecordingQuery::default()
                },
            )
            .await
            .unwrap();
        let hits: Vec<_> = page
            .items
            .iter()
            .filter(|i| s.subject_recordings.contains(&i.recording.id))
            .collect();
        assert!(hits.is_empty(), "search for {q:?} still finds the subject");
    }
    let page = w
        .store
        .search_recordings(
            tenant,
            &RecordingQuery {
                transcript_text: Some("cancel contract".into()),
                ..RecordingQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 0, "the transcript index forgot the subject");
    // Pseudonymised recordings keep the other party.
    let kept = w.store.get_recording(tenant, held).await.unwrap();
    assert!(kept.media.is_none());
    assert!(
        kept.participants
            .iter()
            .any(|p| p.display_name.as_deref() == Some(erasure::ERASED_LABEL))
    );
    assert_eq!(kept.participants.len(), 3);

    // ---- the "backup" copy can no longer be decrypted ----
    let (rec, key_id, sealed) = &s.backup;
    assert!(matches!(
        w.store.get_data_key(tenant, *key_id).await,
        Err(StoreError::NotFound)
    ));
    let _ = (rec, sealed);

    // ---- idempotent: executing again changes nothing ----
    let again = erasure::execute(&env, tenant, req.id, actor, None)
        .await
        .unwrap();
    assert_eq!(again.status, "completed");
    let cert2 = erasure::certificate(w.store.as_ref(), tenant, req.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cert, cert2);
    let _ = s.subject_parts;
}

/// The same recordings (same ids) in a tenant; the subject is in all.
async fn seed_twin(w: &World, tenant: TenantId, template: &[(Recording, Vec<u8>)]) {
    let container = Tenant::container_name(tenant);
    for (rec, sealed) in template {
        let mut rec = rec.clone();
        rec.tenant_id = tenant;
        let m = rec.media.as_mut().unwrap();
        m.container = container.clone();
        let key = DataKey::generate(m.data_key_id);
        let wrapped = w.keys.wrap(tenant, &key).await.unwrap();
        w.store.put_data_key(tenant, &wrapped).await.unwrap();
        w.blobs
            .put(&container, &m.key, &mut &sealed[..])
            .await
            .unwrap();
        w.store.insert_recording(tenant, &rec).await.unwrap();
    }
}

async fn killed_erasure_resumes_with_the_same_certificate(pg: bool) {
    let w = World::new(pg).await;
    let t1 = w.tenant("uninterrupted", true).await;
    let t2 = w.tenant("interrupted", true).await;
    let t0 = Utc.with_ymd_and_hms(2026, 4, 1, 9, 0, 0).unwrap();
    let mut template = Vec::new();
    for i in 0..30i64 {
        let mut rec = Recording::new(
            t1,
            RecordingKind::Call,
            Direction::Outbound,
            t0 + Duration::hours(i),
        );
        let mut s = subject_party(if i % 2 == 0 {
            ParticipantRole::Caller
        } else {
            ParticipantRole::RedirectedTo
        });
        s.email = Some(SUBJECT_EMAIL.into());
        s.recorded_user = i % 3 == 0;
        let mut other = party(ParticipantRole::Callee, i as u64);
        other.recorded_user = i % 3 != 0;
        rec.participants = vec![s, other];
        rec.media = Some(MediaObject {
            container: String::new(),
            key: layout::stream_blob_key(rec.id, 0, "audio/ogg"),
            byte_size: 16,
            sha256: hex::encode(sha2::Sha256::digest(rec.id.to_string())),
            data_key_id: KeyId::new(),
            content_type: "audio/ogg".into(),
            plaintext_size: 10,
        });
        let sealed = rec.id.to_string().into_bytes();
        template.push((rec, sealed));
    }
    seed_twin(&w, t1, &template).await;
    seed_twin(&w, t2, &template).await;
    let ids = SubjectIdentifiers {
        email: Some(SUBJECT_EMAIL.into()),
        ..Default::default()
    };
    let actor = "dpo";

    // Uninterrupted.
    let env = w.erasure_env(w.blobs.as_ref());
    let r1 = erasure::request(&env, t1, &ids, "Art. 17", actor)
        .await
        .unwrap();
    erasure::execute(&env, t1, r1.id, actor, None)
        .await
        .unwrap();
    let c1 = erasure::certificate(w.store.as_ref(), t1, r1.id)
        .await
        .unwrap()
        .unwrap();

    // Interrupted after 25 blob deletions, then re-run.
    let r2 = erasure::request(&env, t2, &ids, "Art. 17", actor)
        .await
        .unwrap();
    let failing = FlakyBlobs::new(w.blobs.clone());
    failing.deletes_left.store(25, Ordering::SeqCst);
    let env_fail = w.erasure_env(failing.as_ref());
    let err = erasure::execute(&env_fail, t2, r2.id, actor, None).await;
    assert!(err.is_err(), "the injected failure stops the run");
    let mid = erasure::get(w.store.as_ref(), t2, r2.id).await.unwrap();
    assert_eq!(mid.status, "running");
    assert!(
        !mid.outcomes.is_empty() && mid.outcomes.len() < 30,
        "progress was saved midway: {}",
        mid.outcomes.len()
    );
    let done = erasure::execute(&env, t2, r2.id, actor, None)
        .await
        .unwrap();
    assert_eq!(done.status, "completed");
    let c2 = erasure::certificate(w.store.as_ref(), t2, r2.id)
        .await
        .unwrap()
        .unwrap();

    let v1 = verify(c1.as_bytes(), Some(&w.signer.public_key_hex()))
        .unwrap()
        .certificate;
    let v2 = verify(c2.as_bytes(), Some(&w.signer.public_key_hex()))
        .unwrap()
        .certificate;
    // Everything but the request's own id, tenant, times and salted hashes.
    for field in [
        "recordings",
        "directory_users",
        "waiver",
        "reason",
        "requested_by",
        "executed_by",
        "kept",
        "type",
        "version",
    ] {
        assert_eq!(v1[field], v2[field], "certificate field {field}");
    }
    assert_eq!(v2["recordings"].as_array().unwrap().len(), 30);
    for r in v2["recordings"].as_array().unwrap() {
        assert!(
            matches!(r["outcome"].as_str(), Some("deleted" | "pseudonymized")),
            "{r}"
        );
    }
    // Re-running a completed erasure returns the same certificate, byte for byte.
    erasure::execute(&env, t2, r2.id, actor, None)
        .await
        .unwrap();
    let c3 = erasure::certificate(w.store.as_ref(), t2, r2.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c2, c3);
    // Nothing of either tenant's subject recordings is left in the blobs.
    for (rec, _) in &template {
        for t in [t1, t2] {
            assert!(matches!(
                w.blobs
                    .head(&Tenant::container_name(t), &rec.media.as_ref().unwrap().key)
                    .await,
                Err(BlobError::NotFound)
            ));
        }
    }
}

#[tokio::test]
async fn sqlite_find_access_erase_end_to_end() {
    find_access_erase_end_to_end(false).await;
}

#[tokio::test]
async fn pg_find_access_erase_end_to_end() {
    find_access_erase_end_to_end(true).await;
}

#[tokio::test]
async fn sqlite_killed_erasure_resumes_with_the_same_certificate() {
    killed_erasure_resumes_with_the_same_certificate(false).await;
}

#[tokio::test]
async fn pg_killed_erasure_resumes_with_the_same_certificate() {
    killed_erasure_resumes_with_the_same_certificate(true).await;
}
