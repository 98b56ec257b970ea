//! Access and portability (GDPR Art. 15, 20): one zip bundle with
//!
//! * `manifest.json`: what is included, with the SHA-256 and size of
//!   every other file (written last, so it can name them all);
//! * `recordings.json` and `recordings.xlsx`: the subject's recordings
//!   with the chosen columns ([`COLUMNS`]);
//! * `transcripts/<recording id>.json`: the subject's own segments;
//! * `directory/<user id>.json`: their directory profile;
//! * `audit-events.json`: what their accounts did (ids only);
//! * optionally `media/<recording id>.<ext>`: the decrypted media.
//!
//! Other people's personal data is masked by default (`mask_others`):
//! in the listing their role stays, their name, number, URI and email
//! become `[masked]`; of the media only the subject's own voice is
//! included (their channel of a call, their own track of a meeting; see
//! [`crate::media_mask`]), and the manifest's `media_withheld` says which
//! recordings' media was left out and why. The seed leaves this to the customer; we make it the
//! default. Media is streamed into the zip (decrypted, decoded, masked
//! and encoded chunk by chunk, [`crate::media_mask`]), bounded by
//! `media_max_secs`: no clear copy touches the disk except the bundle the DPO asked
//! for. The request is audited (`gdpr-access`) before anything is read:
//! the event holds the reason, the client address, the id of every
//! recording included and salted SHA-256 hashes of the identifiers
//! searched (never the identifiers); each included recording gets its
//! own `gdpr-access` event too, so its audit trail shows the bundle.
//!
//! The zip is written as a stream (no seeking), so it can go straight
//! into a sealed envelope ([`crate::bundles`]).
//!
//! The columns are our own small catalogue, not the Excel export's:
//! `gdpr-tools` must not depend on `insights-api`, and the export's
//! columns are about a search, these about one person.

use std::io::Write;

use insights_core::blob::{BlobError, BlobStore};
use insights_core::crypto::{CryptoError, KeyProvider};
use insights_core::domain::{
    AuditAction, AuditQuery, NewAuditEvent, Participant, RecordingId, TenantId,
};
use insights_core::store::{MetadataStore, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::subject::{self, FindOptions, SubjectError, SubjectIdentifiers, SubjectRecording};

/// Errors of an access bundle.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Subject(#[from] SubjectError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    #[error("media cannot be decrypted: {0}")]
    Crypto(#[from] CryptoError),
    #[error("unknown column `{0}`")]
    UnknownColumn(String),
    #[error("writing the bundle: {0}")]
    Write(String),
    #[error("a recording is longer than the bundle's maximum media duration")]
    TooLong,
    #[error("media cannot be decoded: {0}")]
    Media(String),
}

fn werr(e: impl std::fmt::Display) -> AccessError {
    AccessError::Write(e.to_string())
}

/// Column ids and headers of the recordings list.
pub const COLUMNS: &[(&str, &str)] = &[
    ("recording_id", "Recording id"),
    ("started_at", "Started (UTC)"),
    ("ended_at", "Ended (UTC)"),
    ("duration_ms", "Duration (ms)"),
    ("kind", "Kind"),
    ("direction", "Direction"),
    ("status", "Status"),
    ("subject_roles", "Subject's roles"),
    ("subject_identifiers", "Subject's identifiers"),
    ("other_parties", "Other parties"),
    ("has_transcript", "Transcript"),
    ("has_media", "Media"),
];

/// What to put in the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessOptions {
    /// Include the decrypted media.
    pub include_media: bool,
    /// Column ids of [`COLUMNS`], in order; `None` = all.
    pub columns: Option<Vec<String>>,
    /// Mask other people's personal data (default true), their voices
    /// included ([`crate::media_mask`]).
    pub mask_others: bool,
    /// The longest recording whose media is decoded to mask the other
    /// parties, s (default 12 h).
    pub media_max_secs: u64,
}

impl Default for AccessOptions {
    fn default() -> Self {
        Self {
            include_media: false,
            columns: None,
            mask_others: true,
            media_max_secs: 12 * 3600,
        }
    }
}

/// What a bundle needs.
pub struct AccessEnv<'a> {
    pub store: &'a dyn MetadataStore,
    pub blobs: &'a dyn BlobStore,
    pub keys: &'a dyn KeyProvider,
    pub find: FindOptions,
}

/// Who asks for a bundle, and why: what the audit trail keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requester {
    pub actor: String,
    /// Why (ticket, legal basis).
    pub reason: Option<String>,
    /// The client address.
    pub source: Option<String>,
    /// The bundle's id when it is kept for download.
    pub bundle_id: Option<uuid::Uuid>,
    /// A re-run of a kept bundle whose node died mid-build
    /// ([`crate::bundles::Takeovers`]): the audit events the lost run
    /// appended already (same bundle id) are not appended again.
    pub rerun: bool,
}

/// One file of the bundle, as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleSummary {
    pub recordings: Vec<String>,
    pub files: Vec<ManifestFile>,
    pub segments: usize,
    pub media_files: usize,
}

const MASK: &str = "[masked]";

fn ident(p: &Participant) -> String {
    [
        p.display_name.as_deref(),
        p.phone_number.as_deref(),
        p.uri.as_deref(),
        p.email.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
}

fn cell(sr: &SubjectRecording, col: &str, mask: bool) -> serde_json::Value {
    let r = &sr.recording;
    let ours = |p: &Participant| sr.participants.contains(&p.id);
    match col {
        "recording_id" => json!(r.id),
        "started_at" => json!(r.started_at.to_rfc3339()),
        "ended_at" => json!(r.ended_at.map(|t| t.to_rfc3339())),
        "duration_ms" => json!(r.duration_ms),
        "kind" => json!(r.kind.as_str()),
        "direction" => json!(r.direction.as_str()),
        "status" => json!(r.status.as_str()),
        "subject_roles" => json!(
            r.participants
                .iter()
                .filter(|p| ours(p))
                .map(|p| p.role.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "subject_identifiers" => json!(
            r.participants
                .iter()
                .filter(|p| ours(p))
                .map(ident)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        "other_parties" => json!(
            r.participants
                .iter()
                .filter(|p| !ours(p))
                .map(|p| format!(
                    "{}: {}",
                    p.role.as_str(),
                    if mask { MASK.to_owned() } else { ident(p) }
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        "has_transcript" => json!(r.has_transcript),
        "has_media" => json!(r.media.is_some()),
        _ => serde_json::Value::Null,
    }
}

struct Zip<W: Write> {
    w: zip::ZipWriter<zip::write::StreamWriter<W>>,
    files: Vec<ManifestFile>,
}

/// A file being written into the zip, with its hash and size so far.
struct Entry {
    path: String,
    sha: Sha256,
    bytes: u64,
}

impl<W: Write> Zip<W> {
    fn add(&mut self, path: &str, data: &[u8]) -> Result<(), AccessError> {
        let mut e = self.start(path, data.len() as u64 >= u64::from(u32::MAX))?;
        self.write(&mut e, data)?;
        self.end(e);
        Ok(())
    }

    /// Starts a file whose bytes come with [`Self::write`].
    fn start(&mut self, path: &str, large: bool) -> Result<Entry, AccessError> {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(large);
        self.w.start_file(path, opts).map_err(werr)?;
        Ok(Entry {
            path: path.to_owned(),
            sha: Sha256::new(),
            bytes: 0,
        })
    }

    fn write(&mut self, e: &mut Entry, data: &[u8]) -> Result<(), AccessError> {
        self.w.write_all(data).map_err(werr)?;
        e.sha.update(data);
        e.bytes += data.len() as u64;
        Ok(())
    }

    fn end(&mut self, e: Entry) {
        self.files.push(ManifestFile {
            path: e.path,
            sha256: hex::encode(e.sha.finalize()),
            bytes: e.bytes,
        });
    }
}

fn xlsx(headers: &[&str], rows: &[Vec<serde_json::Value>]) -> Result<Vec<u8>, AccessError> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Recordings").map_err(werr)?;
    for (c, h) in headers.iter().enumerate() {
        ws.write_string(0, c as u16, *h).map_err(werr)?;
    }
    for (r, row) in rows.iter().enumerate() {
        let r = (r + 1) as u32;
        for (c, v) in row.iter().enumerate() {
            let c = c as u16;
            match v {
                serde_json::Value::Null => {}
                serde_json::Value::Bool(b) => {
                    ws.write_boolean(r, c, *b).map_err(werr)?;
                }
                serde_json::Value::Number(n) => {
                    ws.write_number(r, c, n.as_f64().unwrap_or_default())
                        .map_err(werr)?;
                }
                serde_json::Value::String(s) => {
                    ws.write_string(r, c, s).map_err(werr)?;
                }
                other => {
                    ws.write_string(r, c, other.to_string()).map_err(werr)?;
                }
            }
        }
    }
    wb.save_to_buffer().map_err(werr)
}

/// What the lost runs of the kept bundle `bundle` audited already: its
/// `build` event, and the recordings of its `included` events.
async fn audited_before(
    store: &dyn MetadataStore,
    tenant: TenantId,
    actor: &str,
    bundle: uuid::Uuid,
) -> Result<(bool, Vec<RecordingId>), AccessError> {
    let events = store
        .list_audit(
            tenant,
            &AuditQuery {
                actor: Some(actor.to_owned()),
                action: Some(AuditAction::GdprAccess),
                ..AuditQuery::default()
            },
        )
        .await?;
    let target = bundle.to_string();
    let mine = events
        .iter()
        .filter(|e| e.target.as_deref() == Some(target.as_str()));
    let mut built = false;
    let mut included = Vec::new();
    for e in mine {
        match e.details.get("step").and_then(|s| s.as_str()) {
            Some("build") => built = true,
            Some("included") => included.extend(e.recording_id),
            _ => {}
        }
    }
    Ok((built, included))
}

/// Builds the subject's bundle into `out` (a stream: nothing is sought
/// back) and audits it before reading any content; returns what was
/// written and `out`.
pub async fn build_bundle<W: Write>(
    env: &AccessEnv<'_>,
    tenant: TenantId,
    ids: &SubjectIdentifiers,
    opts: &AccessOptions,
    who: &Requester,
    out: W,
) -> Result<(BundleSummary, W), AccessError> {
    let actor = who.actor.as_str();
    let columns: Vec<&str> = match &opts.columns {
        None => COLUMNS.iter().map(|(c, _)| *c).collect(),
        Some(list) => {
            let mut v = Vec::new();
            for c in list {
                let known = COLUMNS
                    .iter()
                    .find(|(id, _)| id == c)
                    .ok_or_else(|| AccessError::UnknownColumn(c.clone()))?;
                v.push(known.0);
            }
            v
        }
    };
    let found = subject::find(env.store, tenant, ids, &env.find).await?;
    let (salt, hashed) = crate::erasure::hash_identifiers(&found.normalized.given);
    let recording_ids: Vec<_> = found.recordings.iter().map(|r| r.recording.id).collect();
    let (built, included) = match (who.rerun, who.bundle_id) {
        (true, Some(bundle)) => audited_before(env.store, tenant, actor, bundle).await?,
        _ => (false, Vec::new()),
    };
    if !built {
        env.store
            .append_audit(
                tenant,
                NewAuditEvent {
                    actor: actor.to_owned(),
                    action: AuditAction::GdprAccess,
                    recording_id: None,
                    target: who.bundle_id.map(|b| b.to_string()),
                    reason: who.reason.clone(),
                    source: who.source.clone(),
                    details: json!({
                        "step": "build",
                        "bundle_id": who.bundle_id,
                        "recordings": found.recordings.len(),
                        "recording_ids": recording_ids,
                        "directory_users": found.directory_users.len(),
                        "include_media": opts.include_media,
                        "mask_others": opts.mask_others,
                        "columns": columns,
                        "identifiers_salt": salt,
                        "identifiers": hashed,
                    }),
                },
            )
            .await?;
    }
    for id in recording_ids.iter().filter(|id| !included.contains(id)) {
        env.store
            .append_audit(
                tenant,
                NewAuditEvent {
                    actor: actor.to_owned(),
                    action: AuditAction::GdprAccess,
                    recording_id: Some(*id),
                    target: who.bundle_id.map(|b| b.to_string()),
                    reason: who.reason.clone(),
                    source: who.source.clone(),
                    details: json!({
                        "step": "included",
                        "bundle_id": who.bundle_id,
                        "include_media": opts.include_media,
                    }),
                },
            )
            .await?;
    }

    let mut zip = Zip {
        w: zip::ZipWriter::new_stream(out),
        files: Vec::new(),
    };
    let rows: Vec<Vec<serde_json::Value>> = found
        .recordings
        .iter()
        .map(|sr| {
            columns
                .iter()
                .map(|c| cell(sr, c, opts.mask_others))
                .collect()
        })
        .collect();
    let headers: Vec<&str> = columns
        .iter()
        .map(|c| {
            COLUMNS
                .iter()
                .find(|(id, _)| id == c)
                .map_or(*c, |(_, h)| *h)
        })
        .collect();
    let json_rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            serde_json::Value::Object(
                columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| ((*c).to_owned(), v.clone()))
                    .collect(),
            )
        })
        .collect();
    let listing = serde_json::to_vec_pretty(&json!({ "items": json_rows })).map_err(werr)?;
    zip.add("recordings.json", &listing)?;
    zip.add("recordings.xlsx", &xlsx(&headers, &rows)?)?;

    let mut segments = 0;
    let mut media_files = 0;
    let mut withheld: Vec<serde_json::Value> = Vec::new();
    for sr in &found.recordings {
        let id = sr.recording.id;
        let transcript = env.store.list_transcript(tenant, id).await?;
        let theirs: Vec<_> = transcript
            .iter()
            .filter(|s| {
                s.participant_id
                    .is_some_and(|p| sr.participants.contains(&p))
            })
            .map(|s| {
                json!({
                    "segment_id": s.id,
                    "start_ms": s.start_ms,
                    "end_ms": s.end_ms,
                    "text": s.text,
                    "language": s.language,
                })
            })
            .collect();
        if !theirs.is_empty() {
            segments += theirs.len();
            let body =
                serde_json::to_vec_pretty(&json!({ "recording_id": id, "segments": theirs }))
                    .map_err(werr)?;
            zip.add(&format!("transcripts/{id}.json"), &body)?;
        }
        if opts.include_media
            && let Some(m) = &sr.recording.media
        {
            let wrapped = env.store.get_data_key(tenant, m.data_key_id).await?;
            let key = std::sync::Arc::new(env.keys.unwrap(&wrapped).await?);
            let files = if opts.mask_others {
                match crate::media_mask::subject_audio(
                    env,
                    tenant,
                    sr,
                    &transcript,
                    &key,
                    opts.media_max_secs,
                )
                .await?
                {
                    crate::media_mask::Masked::Files(files) => files,
                    crate::media_mask::Masked::Withheld(why) => {
                        withheld.push(json!({"recording_id": id, "why": why}));
                        Vec::new()
                    }
                }
            } else {
                crate::media_mask::whole(sr, tenant).into_iter().collect()
            };
            for f in files {
                // The size is not known before it is written: Zip64.
                let mut entry = zip.start(&f.name, true)?;
                crate::media_mask::stream_into(
                    env,
                    &m.container,
                    f,
                    &key,
                    opts.media_max_secs,
                    |chunk| zip.write(&mut entry, chunk),
                )
                .await?;
                zip.end(entry);
                media_files += 1;
            }
        }
    }
    for (u, _) in &found.directory_users {
        let body = serde_json::to_vec_pretty(u).map_err(werr)?;
        zip.add(&format!("directory/{}.json", u.id), &body)?;
    }
    let events: Vec<_> = found.audit_events.iter().map(|(e, _)| e).collect();
    zip.add(
        "audit-events.json",
        &serde_json::to_vec_pretty(&json!({ "items": events })).map_err(werr)?,
    )?;

    let recordings: Vec<String> = found
        .recordings
        .iter()
        .map(|r| r.recording.id.to_string())
        .collect();
    let manifest = json!({
        "type": "insights-gdpr-access-bundle",
        "version": 1,
        "tenant_id": tenant,
        "generated_at": insights_core::domain::now(),
        "generated_by": actor,
        "masked_others": opts.mask_others,
        "include_media": opts.include_media,
        "media_withheld": withheld,
        "columns": columns,
        "recordings": recordings,
        "files": zip.files,
    });
    let files = zip.files.clone();
    let body = serde_json::to_vec_pretty(&manifest).map_err(werr)?;
    let opts_m = zip::write::SimpleFileOptions::default();
    zip.w.start_file("manifest.json", opts_m).map_err(werr)?;
    zip.w.write_all(&body).map_err(werr)?;
    let out = zip.w.finish().map_err(werr)?.into_inner();
    Ok((
        BundleSummary {
            recordings,
            files,
            segments,
            media_files,
        },
        out,
    ))
}
