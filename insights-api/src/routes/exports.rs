//! Excel export as a background job: `POST /api/exports` starts it,
//! `GET /api/exports/{id}` shows its progress, `GET /api/exports/{id}/file`
//! downloads the finished .xlsx.
//!
//! The job runs [`crate::export::export_search`] (which appends the
//! `export` audit event before it reads anything, and leaves out the
//! columns the caller may not see) on the caller's search with the
//! caller's visibility scope forced onto it. The finished workbook is
//! stored **encrypted** (envelope, under a data key that exists only in
//! this process's memory) in a private spool directory, so an export
//! artifact is unreadable on disk and dies with the process; the rows'
//! temp files of `rust_xlsxwriter` are in clear while the job runs (a
//! limit of the library, documented in `export/writer.rs`). A job is
//! visible only to the account that started it, in its tenant; anyone
//! else gets `404`. Finished jobs are kept for [`KEEP_FOR`].

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use insights_core::crypto::DataKey;
use insights_core::crypto::envelope::{EnvelopeReader, EnvelopeWriter, ExpectedIds, Header};
use insights_core::domain::{KeyId, Permission, RecordingQuery, TenantId};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::export::{
    ColumnId, ExportError, ExportPlan, ExportRequest, FieldAccess, FieldClass, WriterOptions,
    export_search,
};

/// How long a finished export stays downloadable.
pub const KEEP_FOR: Duration = Duration::from_secs(24 * 3600);

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Registers the export routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/exports", web::post().to(start))
        .route("/api/exports/{id}", web::get().to(status))
        .route("/api/exports/{id}/file", web::get().to(file));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum State {
    Running,
    Done,
    Failed,
}

struct Job {
    tenant: TenantId,
    owner: String,
    state: State,
    rows_written: u64,
    total: u64,
    columns: Vec<ColumnId>,
    omitted: Vec<ColumnId>,
    key: Arc<DataKey>,
    path: PathBuf,
    finished: Option<Instant>,
}

/// The export jobs of this process and their private spool directory.
pub struct ExportJobs {
    dir: PathBuf,
    jobs: Mutex<HashMap<Uuid, Job>>,
}

impl ExportJobs {
    /// Jobs spooled in a new private directory (0700) under `parent`;
    /// it is removed when the jobs are dropped. Files in it are
    /// encrypted under keys that only this value holds.
    pub fn new(parent: &std::path::Path) -> io::Result<Self> {
        let dir = parent.join(format!("insights-exports-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self {
            dir,
            jobs: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops finished jobs older than [`KEEP_FOR`] with their files.
    fn expire(&self) {
        let mut jobs = self.lock();
        jobs.retain(|_, j| {
            let keep = j.finished.is_none_or(|t| t.elapsed() < KEEP_FOR);
            if !keep {
                let _ = std::fs::remove_file(&j.path);
            }
            keep
        });
    }
}

impl Drop for ExportJobs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Body of `POST /api/exports`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StartExport {
    /// The search to export (its cursor and limit are ignored).
    #[serde(default)]
    #[schema(value_type = super::openapi::SearchRequest)]
    query: RecordingQuery,
    /// Column ids from the catalogue, in order.
    columns: Vec<String>,
    /// Reason for the export, kept in the audit event.
    #[serde(default)]
    reason: Option<String>,
}

fn export_error(e: ExportError) -> ApiError {
    match e {
        ExportError::NotPermitted => ApiError::Forbidden {
            code: "permission-denied",
        },
        ExportError::NoColumns => ApiError::BadRequest {
            code: "no-columns",
            detail: "choose at least one column".into(),
        },
        ExportError::DuplicateColumn(c) => ApiError::BadRequest {
            code: "duplicate-column",
            detail: format!("column `{c}` is chosen twice"),
        },
        ExportError::NoPermittedColumns { .. } => ApiError::Forbidden {
            code: "no-permitted-columns",
        },
        ExportError::TranscriptSearchNotPermitted => ApiError::Forbidden {
            code: "permission-denied",
        },
        ExportError::TooManyColumns => ApiError::BadRequest {
            code: "too-many-columns",
            detail: "too many columns".into(),
        },
        other => ApiError::internal(other),
    }
}

/// Forwards writes to the envelope writer it shares with the job, so the
/// job can seal the final chunk after `export_search` has let go.
struct Shared(Arc<Mutex<Option<EnvelopeWriter<std::fs::File>>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("export file already closed")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

#[utoipa::path(post, path = "/api/exports", tag = "exports",
    request_body = StartExport,
    responses(
        (status = 202, description = "Started: the job id, status URL, columns written and omitted", body = Object),
        (status = 400, description = "Bad column choice", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn start(
    p: Principal,
    state: web::Data<AppState>,
    jobs: web::Data<ExportJobs>,
    req: HttpRequest,
    body: web::Json<StartExport>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Export)?;
    let tenant = p.tenant()?;
    jobs.expire();
    let body = body.into_inner();
    let mut columns = Vec::with_capacity(body.columns.len());
    for c in &body.columns {
        columns.push(c.parse::<ColumnId>().map_err(|_| ApiError::BadRequest {
            code: "unknown-column",
            detail: "a column id is not in the catalogue (see the export column catalogue)".into(),
        })?);
    }
    let access = FieldAccess::from_permissions(p.permissions.iter().copied());
    // Refuse a bad choice now, not in the background.
    let plan = ExportPlan::new(&columns, &access).map_err(export_error)?;
    let mut query = body.query;
    // Words spoken are transcript content, as in search.
    if query.transcript_text.is_some() && !access.allows(FieldClass::Transcript) {
        return Err(export_error(ExportError::TranscriptSearchNotPermitted));
    }
    let reason = body
        .reason
        .map(|r| r.trim().chars().take(500).collect::<String>())
        .filter(|r| !r.is_empty());
    // Transcript words in the file are a transcript read: the tenant's
    // reason-for-access rule applies.
    let reads_transcript = plan
        .columns
        .iter()
        .any(|c| c.spec().class == FieldClass::Transcript);
    if reads_transcript && reason.is_none() {
        let settings = state.store.get_tenant(tenant).await?.settings;
        if settings.require_access_reason {
            return Err(ApiError::BadRequest {
                code: "access-reason-required",
                detail: "this tenant requires a reason for access: give it as the export's reason"
                    .into(),
            });
        }
    }
    query.visible_to_users = super::recordings::visible_users(&state, tenant, &p).await?;
    let request = ExportRequest {
        tenant,
        query,
        columns,
        access,
        actor: p.actor(),
        source: super::recordings::client(&state, &req),
        reason,
    };

    let id = Uuid::new_v4();
    let key = Arc::new(DataKey::generate(KeyId::new()));
    let path = jobs.dir.join(format!("{id}.xlsx.env"));
    let file = std::fs::File::create(&path).map_err(ApiError::internal)?;
    let writer = EnvelopeWriter::new(file, &key, &Header::new(tenant, id, key.id))
        .map_err(ApiError::internal)?;
    jobs.lock().insert(
        id,
        Job {
            tenant,
            owner: p.actor(),
            state: State::Running,
            rows_written: 0,
            total: 0,
            columns: plan.columns.clone(),
            omitted: plan.omitted.clone(),
            key,
            path,
            finished: None,
        },
    );

    let store = state.store.clone();
    let jobs_bg = jobs.clone();
    let tempdir = jobs.dir.clone();
    tokio::spawn(async move {
        let shared = Arc::new(Mutex::new(Some(writer)));
        let progress_jobs = jobs_bg.clone();
        let result = export_search(
            store.as_ref(),
            &request,
            WriterOptions {
                tempdir: Some(tempdir),
                ..WriterOptions::default()
            },
            Shared(shared.clone()),
            move |pr| {
                if let Some(j) = progress_jobs.lock().get_mut(&id) {
                    j.rows_written = pr.rows_written;
                    j.total = pr.total;
                }
            },
        )
        .await;
        let sealed = shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|w| w.finish().map(|_| ()));
        let outcome = match (result, sealed) {
            (Ok(summary), Some(Ok(()))) => Ok(summary),
            (Err(e), _) => Err(e.to_string()),
            (_, Some(Err(e))) => Err(e.to_string()),
            (_, None) => Err("export file lost".to_owned()),
        };
        if let Some(j) = jobs_bg.lock().get_mut(&id) {
            j.finished = Some(Instant::now());
            match outcome {
                Ok(summary) => {
                    j.state = State::Done;
                    j.rows_written = summary.rows;
                }
                Err(e) => {
                    tracing::error!(export_id = %id, error = %e, "export failed");
                    j.state = State::Failed;
                    let _ = std::fs::remove_file(&j.path);
                }
            }
        }
    });
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/exports/{id}")))
        .json(json!({
            "id": id,
            "status_url": format!("/api/exports/{id}"),
            "columns": plan.columns,
            "omitted": plan.omitted,
        })))
}

/// The job, if it belongs to the caller.
fn own<'a>(
    jobs: &'a HashMap<Uuid, Job>,
    p: &Principal,
    id: &str,
) -> Result<(Uuid, &'a Job), ApiError> {
    let tenant = p.tenant()?;
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    match jobs.get(&id) {
        Some(j) if j.tenant == tenant && j.owner == p.actor() => Ok((id, j)),
        _ => Err(ApiError::NotFound),
    }
}

#[utoipa::path(get, path = "/api/exports/{id}", tag = "exports",
    params(("id" = String, Path, description = "Export job id")),
    responses(
        (status = 200, description = "State and progress", body = Object),
        (status = 404, description = "No such job of the caller", body = super::openapi::Problem)))]
async fn status(
    p: Principal,
    jobs: web::Data<ExportJobs>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Export)?;
    let all = jobs.lock();
    let (id, j) = own(&all, &p, &path)?;
    Ok(HttpResponse::Ok().json(json!({
        "id": id,
        "state": j.state,
        "rows_written": j.rows_written,
        "total": j.total,
        "columns": j.columns,
        "omitted": j.omitted,
        "file_url": (j.state == State::Done).then(|| format!("/api/exports/{id}/file")),
    })))
}

#[utoipa::path(get, path = "/api/exports/{id}/file", tag = "exports",
    params(("id" = String, Path, description = "Export job id")),
    responses(
        (status = 200, description = "The .xlsx", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 404, description = "No such job of the caller", body = super::openapi::Problem),
        (status = 409, description = "Not finished", body = super::openapi::Problem)))]
async fn file(
    p: Principal,
    jobs: web::Data<ExportJobs>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Export)?;
    let (id, tenant, key, file) = {
        let all = jobs.lock();
        let (id, j) = own(&all, &p, &path)?;
        if j.state != State::Done {
            return Err(ApiError::Conflict {
                code: "export-not-ready",
                detail: "the export is not finished".into(),
            });
        }
        (id, j.tenant, j.key.clone(), j.path.clone())
    };
    let bytes = web::block(move || -> io::Result<Vec<u8>> {
        let f = std::fs::File::open(&file)?;
        let expected = ExpectedIds::new(tenant, id, key.id);
        let mut r = EnvelopeReader::new(io::BufReader::new(f), &key, &expected)
            .map_err(io::Error::other)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(XLSX)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"export-{id}.xlsx\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(bytes))
}
