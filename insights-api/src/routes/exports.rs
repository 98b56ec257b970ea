//! Excel export as a background job: `POST /api/exports` starts it,
//! `GET /api/exports/{id}` shows its progress, `GET /api/exports/{id}/file`
//! downloads the finished .xlsx — through any API node: the job lives in
//! the metadata store and the file in the tenant's blob container
//! ([`gdpr_tools::bundles`]).
//!
//! The request appends the `export` audit event, then the job runs
//! [`crate::export::export_audited`] (which leaves out the columns the
//! caller may not see) on the caller's search with the
//! caller's visibility scope forced onto it. The finished workbook is
//! sealed as it is written (envelope, under a data key of its own wrapped
//! by the tenant's KEK) and streamed into `exports/<id>.xlsx.env` of the
//! tenant's container: no local file holds it. The rows' temp files of
//! `rust_xlsxwriter` are in clear while the job runs (a limit of the
//! library, documented in `export/writer.rs`). A running job's node renews
//! its lease; a job whose node died is taken over by another API node and
//! run again from the request stored with it ([`rerun`]; the `export`
//! audit event is appended once, when the export is requested, never by a
//! re-run), and reported `failed` (`node-lost`) only after
//! [`bundles::MAX_ATTEMPTS`] lost runs. A
//! job is visible only to the account that started it, in its tenant;
//! anyone else gets `404`. Files are kept for [`KEEP_FOR`], then deleted
//! (on read and by the sweeper of `insights serve`).

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use gdpr_tools::bundles::{self, Completed, JobRun, SealedWriter};
use insights_core::domain::{
    FileJob, FileJobId, FileJobKind, FileJobState, Permission, RecordingQuery, TenantId,
};
use insights_core::store::MetadataStore;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::gdpr::{file_error, own_file_job};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::export::{
    ColumnId, ExportError, ExportPlan, ExportRequest, FieldAccess, FieldClass, WriterOptions,
    append_export_audit, export_audited,
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

/// Where export jobs run: the runtime the server was built on (`insights
/// serve`'s multi-threaded one), not an HTTP worker's. Their state is in
/// the metadata store, their files in the blob store.
pub struct ExportJobs {
    runtime: tokio::runtime::Handle,
}

impl ExportJobs {
    /// Jobs on the current Tokio runtime (fails outside one).
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            runtime: tokio::runtime::Handle::try_current().map_err(io::Error::other)?,
        })
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

/// Forwards writes to the sealed writer it shares with the job, so the
/// job can seal the final chunk after `export_audited` has let go.
struct Shared(Arc<Mutex<Option<SealedWriter>>>);

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
    super::recordings::check_window(&query)?;
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

    // Audited once, now: a run taken over by another node appends none.
    let audit_seq = append_export_audit(state.store.as_ref(), &request, &plan)
        .await
        .map_err(export_error)?;
    let created_at = insights_core::domain::now();
    let details = json!({ "columns": plan.columns, "omitted": plan.omitted });
    let stored = StoredExport::of(&request, audit_seq);
    let job = FileJob {
        id: FileJobId::new(),
        tenant_id: tenant,
        kind: FileJobKind::Export,
        owner: p.actor(),
        state: FileJobState::Running,
        error: None,
        done: 0,
        total: 0,
        details: details.clone(),
        recordings: Vec::new(),
        output: None,
        lease_until: created_at,
        created_at,
        expires_at: created_at
            + chrono::Duration::from_std(KEEP_FOR).unwrap_or(chrono::Duration::days(1)),
        attempt: 1,
        request: Some(serde_json::to_value(&stored).map_err(ApiError::internal)?),
    };
    let (run, writer) = JobRun::start(
        state.store.clone(),
        state.blobs.clone(),
        state.keys.as_ref(),
        job,
    )
    .await
    .map_err(file_error)?;
    let id = run.job().id;
    jobs.runtime.spawn(run_export(
        state.store.clone(),
        run,
        writer,
        request,
        audit_seq,
    ));
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/exports/{id}")))
        .json(json!({
            "id": id,
            "status_url": format!("/api/exports/{id}"),
            "columns": plan.columns,
            "omitted": plan.omitted,
        })))
}

/// What a re-run of an export needs, stored with its job while it runs
/// (cleared when it ends): the search with the caller's visibility scope
/// applied, the columns, the caller's permissions and the audit event the
/// request appended.
#[derive(Serialize, Deserialize)]
struct StoredExport {
    query: RecordingQuery,
    columns: Vec<ColumnId>,
    permissions: Vec<Permission>,
    actor: String,
    source: Option<String>,
    reason: Option<String>,
    audit_seq: i64,
}

impl StoredExport {
    fn of(r: &ExportRequest, audit_seq: i64) -> Self {
        Self {
            query: r.query.clone(),
            columns: r.columns.clone(),
            permissions: r.access.permissions().to_vec(),
            actor: r.actor.clone(),
            source: r.source.clone(),
            reason: r.reason.clone(),
            audit_seq,
        }
    }

    fn request(self, tenant: TenantId) -> (ExportRequest, i64) {
        (
            ExportRequest {
                tenant,
                query: self.query,
                columns: self.columns,
                access: FieldAccess::from_permissions(self.permissions),
                actor: self.actor,
                source: self.source,
                reason: self.reason,
            },
            self.audit_seq,
        )
    }
}

/// Runs an export job to its end: the workbook sealed into its file.
async fn run_export(
    store: Arc<dyn MetadataStore>,
    run: JobRun,
    writer: SealedWriter,
    request: ExportRequest,
    audit_seq: i64,
) {
    let id = run.job().id;
    let details = run.job().details.clone();
    let shared = Arc::new(Mutex::new(Some(writer)));
    let progress = run.progress();
    let result = export_audited(
        store.as_ref(),
        &request,
        audit_seq,
        WriterOptions::default(),
        Shared(shared.clone()),
        move |pr| progress.set(pr.rows_written, pr.total),
    )
    .await;
    // The last chunk is sealed (and the upload's stream ended) on a
    // blocking thread: it waits for the upload to take it.
    let writer = shared.lock().unwrap_or_else(|e| e.into_inner()).take();
    let sealed = match writer {
        Some(w) => tokio::task::spawn_blocking(move || w.finish())
            .await
            .map_err(io::Error::other)
            .and_then(|r| r),
        None => Err(io::Error::other("export file lost")),
    };
    let outcome = match (result, sealed) {
        (Ok(summary), Ok(())) => Ok(Completed {
            recordings: Vec::new(),
            details,
            done: summary.rows,
            total: summary.rows,
        }),
        (Err(e), _) => {
            tracing::error!(export_id = %id, error = %e, "export failed");
            Err("export-failed")
        }
        (_, Err(e)) => {
            tracing::error!(export_id = %id, error = %e, "export failed");
            Err("export-failed")
        }
    };
    run.finish(outcome).await;
}

/// How this node runs an export job taken over from a node that died
/// ([`bundles::Takeovers`]): from the request stored with it, under the
/// audit event its request appended.
pub fn rerun(store: Arc<dyn MetadataStore>) -> bundles::Rerun {
    Arc::new(
        move |run: JobRun,
              writer: SealedWriter,
              stored: serde_json::Value|
              -> futures::future::BoxFuture<'static, ()> {
            let store = store.clone();
            Box::pin(async move {
                let tenant = run.job().tenant_id;
                match serde_json::from_value::<StoredExport>(stored) {
                    Ok(s) => {
                        let (request, audit_seq) = s.request(tenant);
                        run_export(store, run, writer, request, audit_seq).await;
                    }
                    Err(e) => {
                        tracing::error!(export_id = %run.job().id, error = %e, "an export job's stored request is unreadable");
                        drop(writer);
                        run.finish(Err("export-failed")).await;
                    }
                }
            })
        },
    )
}

#[utoipa::path(get, path = "/api/exports/{id}", tag = "exports",
    params(("id" = String, Path, description = "Export job id")),
    responses(
        (status = 200, description = "State (running, done, failed with an error code) and progress", body = Object),
        (status = 404, description = "No such job of the caller", body = super::openapi::Problem)))]
async fn status(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Export)?;
    let tenant = p.tenant()?;
    let j = own_file_job(&state, &p, tenant, FileJobKind::Export, &path).await?;
    let id = j.id;
    let empty = json!([]);
    Ok(HttpResponse::Ok().json(json!({
        "id": id,
        "state": j.state,
        "error": j.error,
        "rows_written": j.done,
        "total": j.total,
        "columns": j.details.get("columns").unwrap_or(&empty),
        "omitted": j.details.get("omitted").unwrap_or(&empty),
        "file_url": (j.state == FileJobState::Done).then(|| format!("/api/exports/{id}/file")),
    })))
}

#[utoipa::path(get, path = "/api/exports/{id}/file", tag = "exports",
    params(("id" = String, Path, description = "Export job id")),
    responses(
        (status = 200, description = "The .xlsx, streamed", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 404, description = "No such job of the caller", body = super::openapi::Problem),
        (status = 409, description = "Not finished", body = super::openapi::Problem),
        (status = 503, description = "The blob store is unavailable", body = super::openapi::Problem)))]
async fn file(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Export)?;
    let tenant = p.tenant()?;
    let j = own_file_job(&state, &p, tenant, FileJobKind::Export, &path).await?;
    if j.state != FileJobState::Done {
        return Err(ApiError::Conflict {
            code: "export-not-ready",
            detail: "the export is not finished".into(),
        });
    }
    // Decrypted chunk by chunk as the client reads.
    let stream = bundles::download(state.keys.as_ref(), state.blobs.as_ref(), &j)
        .await
        .map_err(file_error)?;
    Ok(HttpResponse::Ok()
        .content_type(XLSX)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"export-{}.xlsx\"", j.id),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream))
}
