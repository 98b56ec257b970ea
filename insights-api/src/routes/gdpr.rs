//! Data-subject requests for the DPO (`gdpr-actions`): find, access
//! bundles, rectification explanation, erasure with certificates. The
//! work is `gdpr_tools`; this module maps it to HTTP.
//!
//! Identifiers travel in JSON bodies only (never in a URL or access log)
//! and never in error details. Every route is tenant scoped (operators:
//! 403) and audited by the library (`gdpr-access`, `gdpr-erasure`) or
//! here (`search` for a find, with the count only; `gdpr-access` for a
//! bundle's download).
//!
//! The erasure signer and the spool come from the [`GdprContext`] that
//! [`crate::Application::build`] requires (`insights serve`: the
//! installation key, its open spool). There is no fallback: a server
//! without the context cannot be built.
//!
//! # Access bundles
//!
//! `POST /api/gdpr/access` needs a reason; with `include_media` also
//! `download-media` (decrypted audio leaves the platform). The bundle is
//! built in the background straight into a sealed envelope streamed into
//! the tenant's blob container, its job kept in the metadata store
//! ([`gdpr_tools::bundles`]), so any API node shows its progress and
//! serves it; it is kept for `[gdpr] bundle_expiry_days`; only the
//! account that asked may download it, streamed and decrypted on the
//! fly; the download is audited.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use gdpr_tools::access::{AccessEnv, AccessError, AccessOptions, Requester, build_bundle};
use gdpr_tools::bundles::{self, Completed, FileError, JobRun, SealedWriter};
use gdpr_tools::certificate::CertificateSigner;
use gdpr_tools::erasure::{self, ErasureEnv, ErasureError};
use gdpr_tools::subject::{FindOptions, SubjectError, SubjectIdentifiers};
use insights_core::blob::BlobError;
use insights_core::config::GdprSettings;
use insights_core::domain::{
    AuditAction, FileJob, FileJobId, FileJobKind, FileJobState, NewAuditEvent, Permission, TenantId,
};
use insights_core::spool::{SpoolCopies, SpoolCopiesError};
use insights_core::store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/gdpr/find", web::post().to(find))
        .route("/api/gdpr/access", web::post().to(access_start))
        .route("/api/gdpr/access/{id}", web::get().to(access_status))
        .route("/api/gdpr/access/{id}/file", web::get().to(access_file))
        .route("/api/gdpr/rectification", web::get().to(rectification))
        .route("/api/gdpr/erasures", web::post().to(erasure_create))
        .route("/api/gdpr/erasures", web::get().to(erasure_list))
        .route("/api/gdpr/erasures/{id}", web::get().to(erasure_get))
        .route(
            "/api/gdpr/erasures/{id}/execute",
            web::post().to(erasure_execute),
        )
        .route(
            "/api/gdpr/erasures/{id}/certificate",
            web::get().to(erasure_certificate),
        );
}

/// The longest reason kept.
const MAX_REASON: usize = 500;
/// What the GDPR routes need beyond [`AppState`]: built by the binary and
/// required by [`crate::Application::build`].
pub struct GdprContext {
    signer: CertificateSigner,
    spool: Option<Arc<dyn SpoolCopies>>,
    find: FindOptions,
    bundle_expiry: chrono::Duration,
    media_max_secs: u64,
    /// The runtime bundle builds run on (the one the context was made
    /// on: `insights serve`'s multi-threaded runtime, not an HTTP worker's).
    runtime: tokio::runtime::Handle,
}

impl GdprContext {
    /// A context with the installation's certificate signer, the spool
    /// (erasure deletes copies not uploaded yet from it; `None` only where
    /// this process has no spool) and `[gdpr]`. Access bundles are kept
    /// in the tenant's blob container, their jobs in the metadata store
    /// ([`gdpr_tools::bundles`]). Must be called within a Tokio runtime.
    pub fn new(
        signer: CertificateSigner,
        spool: Option<Arc<dyn SpoolCopies>>,
        settings: &GdprSettings,
    ) -> std::io::Result<Self> {
        let expiry =
            chrono::Duration::from_std(settings.bundle_expiry()).map_err(std::io::Error::other)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        Ok(Self {
            signer,
            spool,
            find: FindOptions {
                default_region: settings.default_region.clone(),
            },
            bundle_expiry: expiry,
            media_max_secs: settings.bundle_media_max_secs,
            runtime,
        })
    }

    /// The public key (hex) certificates are signed with.
    pub fn signer_public_key(&self) -> String {
        self.signer.public_key_hex()
    }
}

fn subject_error(e: SubjectError) -> ApiError {
    match e {
        SubjectError::Empty | SubjectError::Invalid { .. } => ApiError::BadRequest {
            code: "invalid-identifiers",
            detail: e.to_string(),
        },
        SubjectError::Store(s) => s.into(),
    }
}

fn erasure_error(e: ErasureError) -> ApiError {
    match e {
        ErasureError::Subject(s) => subject_error(s),
        ErasureError::Store(s) => s.into(),
        ErasureError::NoReason => ApiError::BadRequest {
            code: "reason-required",
            detail: "an erasure request needs a reason".into(),
        },
        // What was done is saved: executing again resumes.
        ErasureError::Blob(e) => {
            tracing::warn!(error = %e, "erasure stopped: blob store unavailable");
            ApiError::Unavailable {
                code: "blob-store-unavailable",
            }
        }
        ErasureError::Spool(SpoolCopiesError::Live(_)) => ApiError::Conflict {
            code: "recording-live",
            detail: "a recording of the subject is still being captured; execute again once \
                     the call has ended"
                .into(),
        },
        ErasureError::Spool(SpoolCopiesError::InUse(_)) => ApiError::Conflict {
            code: "spool-in-use",
            detail: "another process owns the spool that holds a copy; erase through that \
                     process's API"
                .into(),
        },
        other => ApiError::internal(other),
    }
}

/// Body of `POST /api/gdpr/find`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FindBody {
    /// Any mix of phone, email, upn, uri, directory_id, name.
    #[schema(value_type = Object)]
    identifiers: SubjectIdentifiers,
}

#[utoipa::path(post, path = "/api/gdpr/find", tag = "gdpr", request_body = FindBody,
    responses(
        (status = 200, description = "`{matches:[{type, id, started_at?, reasons:[{field, role?, matched}]}]}`", body = Object),
        (status = 400, description = "No or invalid identifiers", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn find(
    p: Principal,
    state: web::Data<AppState>,
    ctx: web::Data<GdprContext>,
    body: web::Json<FindBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let found =
        gdpr_tools::subject::find(state.store.as_ref(), tenant, &body.identifiers, &ctx.find)
            .await
            .map_err(subject_error)?;
    let matches = found.matches();
    state
        .store
        .append_audit(
            tenant,
            NewAuditEvent {
                actor: p.actor(),
                action: AuditAction::Search,
                recording_id: None,
                target: Some("gdpr-find".into()),
                reason: None,
                source: None,
                details: json!({"gdpr_find": true, "matches": matches.len()}),
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "matches": matches })))
}

/// Body of `POST /api/gdpr/access`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AccessBody {
    #[schema(value_type = Object)]
    identifiers: SubjectIdentifiers,
    /// Why (ticket, legal basis): required, kept in the audit trail.
    #[serde(default)]
    reason: Option<String>,
    /// Include the decrypted media (needs `download-media`).
    #[serde(default)]
    include_media: bool,
    #[serde(default)]
    columns: Option<Vec<String>>,
    #[serde(default = "yes")]
    mask_others: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(post, path = "/api/gdpr/access", tag = "gdpr", request_body = AccessBody,
    responses(
        (status = 202, description = "`{id, status, expires_at}`: the bundle is being built", body = Object),
        (status = 400, description = "No or invalid identifiers, unknown column, no reason", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted (media needs `download-media`)", body = super::openapi::Problem)))]
async fn access_start(
    p: Principal,
    state: web::Data<AppState>,
    ctx: web::Data<GdprContext>,
    req: HttpRequest,
    body: web::Json<AccessBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let body = body.into_inner();
    if body.include_media {
        // Decrypted audio of every party leaves the platform.
        p.require(Permission::DownloadMedia)?;
    }
    let reason = body
        .reason
        .as_deref()
        .map(|r| r.trim().chars().take(MAX_REASON).collect::<String>())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::BadRequest {
            code: "reason-required",
            detail: "an access bundle needs a reason (ticket, legal basis)".into(),
        })?;
    // Checked before the job starts, so bad input is a 400.
    body.identifiers
        .normalize(&ctx.find)
        .map_err(subject_error)?;
    if let Some(cols) = &body.columns
        && cols
            .iter()
            .any(|c| !gdpr_tools::access::COLUMNS.iter().any(|(id, _)| id == c))
    {
        return Err(ApiError::BadRequest {
            code: "unknown-column",
            detail: "a column is not in the catalogue".into(),
        });
    }
    let created_at = insights_core::domain::now();
    let expires_at = created_at + ctx.bundle_expiry;
    let stored = StoredBundle {
        identifiers: body.identifiers,
        include_media: body.include_media,
        columns: body.columns,
        mask_others: body.mask_others,
        actor: p.actor(),
        reason: Some(reason),
        source: super::recordings::client(&state, &req),
    };
    let job = FileJob {
        id: FileJobId::new(),
        tenant_id: tenant,
        kind: FileJobKind::AccessBundle,
        owner: p.actor(),
        state: FileJobState::Running,
        error: None,
        done: 0,
        total: 0,
        details: json!({ "include_media": stored.include_media }),
        recordings: Vec::new(),
        output: None,
        lease_until: created_at,
        created_at,
        expires_at,
        attempt: 1,
        request: Some(serde_json::to_value(&stored).map_err(ApiError::internal)?),
    };
    let (run, sealed) = JobRun::start(
        state.store.clone(),
        state.blobs.clone(),
        state.keys.as_ref(),
        job,
    )
    .await
    .map_err(file_error)?;
    let id = run.job().id;
    let runtime = ctx.runtime.clone();
    runtime.spawn(run_bundle(
        state.into_inner(),
        ctx.into_inner(),
        run,
        sealed,
        stored,
        false,
    ));
    Ok(HttpResponse::Accepted().json(json!({
        "id": id, "status": "running", "expires_at": expires_at,
    })))
}

/// What a re-run of an access bundle needs, stored with its job while it
/// runs (cleared when it ends, like a running erasure's identifiers).
#[derive(Serialize, Deserialize)]
struct StoredBundle {
    identifiers: SubjectIdentifiers,
    include_media: bool,
    columns: Option<Vec<String>>,
    mask_others: bool,
    actor: String,
    reason: Option<String>,
    source: Option<String>,
}

/// Builds an access bundle job's zip into its sealed file and ends the
/// job. `rerun`: taken over from a node that died (the audit events its
/// lost run appended are not appended again).
async fn run_bundle(
    state: Arc<AppState>,
    ctx: Arc<GdprContext>,
    run: JobRun,
    sealed: SealedWriter,
    stored: StoredBundle,
    rerun: bool,
) {
    let id = run.job().id;
    let tenant = run.job().tenant_id;
    let who = Requester {
        actor: stored.actor,
        reason: stored.reason,
        source: stored.source,
        bundle_id: Some(id.as_uuid()),
        rerun,
    };
    let opts = AccessOptions {
        include_media: stored.include_media,
        columns: stored.columns,
        mask_others: stored.mask_others,
        media_max_secs: ctx.media_max_secs,
    };
    let identifiers = stored.identifiers;
    // The zip is written synchronously as the bundle is built, and each
    // sealed chunk waits for the blob upload: the build runs on a
    // blocking thread of the context's runtime, the upload on its tasks.
    let runtime = ctx.runtime.clone();
    let include_media = opts.include_media;
    let build = tokio::task::spawn_blocking(move || {
        runtime.block_on(async {
            let env = AccessEnv {
                store: state.store.as_ref(),
                blobs: state.blobs.as_ref(),
                keys: state.keys.as_ref(),
                find: ctx.find.clone(),
            };
            let (summary, writer) =
                build_bundle(&env, tenant, &identifiers, &opts, &who, sealed).await?;
            writer
                .finish()
                .map_err(|e| AccessError::Write(e.to_string()))?;
            Ok::<_, AccessError>(summary)
        })
    })
    .await;
    let outcome = match build {
        Ok(Ok(summary)) => Ok(Completed {
            recordings: summary
                .recordings
                .iter()
                .filter_map(|r| r.parse().ok())
                .collect(),
            details: json!({ "include_media": include_media }),
            done: 1,
            total: 1,
        }),
        Ok(Err(e)) => {
            tracing::warn!(job = %id, error = %e, "access bundle failed");
            Err(match e {
                // Says which limit to raise (`[gdpr]
                // bundle_media_max_secs`), or to leave media out.
                AccessError::TooLong => "media-too-long",
                _ => "bundle-failed",
            })
        }
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "access bundle task failed");
            Err("bundle-failed")
        }
    };
    run.finish(outcome).await;
}

/// How this node runs an access bundle job taken over from a node that
/// died ([`bundles::Takeovers`]): from the request stored with it.
pub fn rerun(state: Arc<AppState>, ctx: Arc<GdprContext>) -> bundles::Rerun {
    Arc::new(
        move |run: JobRun,
              sealed: SealedWriter,
              stored: serde_json::Value|
              -> futures::future::BoxFuture<'static, ()> {
            let (state, ctx) = (state.clone(), ctx.clone());
            Box::pin(async move {
                match serde_json::from_value::<StoredBundle>(stored) {
                    Ok(s) => {
                        // On the context's runtime, like a first run.
                        let on = ctx.runtime.clone();
                        let _ = on.spawn(run_bundle(state, ctx, run, sealed, s, true)).await;
                    }
                    Err(e) => {
                        tracing::error!(job = %run.job().id, error = %e, "an access bundle's stored request is unreadable");
                        drop(sealed);
                        run.finish(Err("bundle-failed")).await;
                    }
                }
            })
        },
    )
}

/// Maps a stored-file error: the blob store or key service unreachable is
/// `503`, anything else `500`.
pub(super) fn file_error(e: FileError) -> ApiError {
    match e {
        FileError::Store(s) => s.into(),
        FileError::Blob(BlobError::NotFound) => ApiError::NotFound,
        FileError::Blob(e) => {
            tracing::warn!(error = %e, "stored file: blob store unavailable");
            ApiError::Unavailable {
                code: "blob-store-unavailable",
            }
        }
        other => ApiError::internal(other),
    }
}

/// The caller's job `id` of `kind` (current state; expired: gone); anyone
/// else's: `404`, like a missing one.
pub(super) async fn own_file_job(
    state: &AppState,
    p: &Principal,
    tenant: TenantId,
    kind: FileJobKind,
    id: &str,
) -> Result<FileJob, ApiError> {
    let id: FileJobId = id.parse().map_err(|_| ApiError::NotFound)?;
    let job = bundles::current(
        state.store.as_ref(),
        state.blobs.as_ref(),
        tenant,
        id,
        insights_core::domain::now(),
    )
    .await
    .map_err(file_error)?
    .ok_or(ApiError::NotFound)?;
    if job.kind != kind || job.owner != p.actor() {
        return Err(ApiError::NotFound);
    }
    Ok(job)
}

#[utoipa::path(get, path = "/api/gdpr/access/{id}", tag = "gdpr",
    params(("id" = String, Path, description = "Access job id")),
    responses(
        (status = 200, description = "`{id, status: running|done|failed, progress, error?, expires_at?}`", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such bundle of yours (or expired, or erased)", body = super::openapi::Problem)))]
async fn access_status(
    p: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let job = own_file_job(&state, &p, tenant, FileJobKind::AccessBundle, &id).await?;
    let (status, progress, expires_at) = match job.state {
        FileJobState::Running => ("running", 0, None),
        FileJobState::Done => ("done", 100, Some(job.expires_at)),
        FileJobState::Failed => ("failed", 100, None),
    };
    Ok(HttpResponse::Ok().json(json!({
        "id": job.id, "status": status, "progress": progress, "error": job.error,
        "expires_at": expires_at,
    })))
}

#[utoipa::path(get, path = "/api/gdpr/access/{id}/file", tag = "gdpr",
    params(("id" = String, Path, description = "Access job id")),
    responses(
        (status = 200, description = "The zip bundle, streamed", content_type = "application/zip", body = Vec<u8>),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such bundle of yours (or expired, or erased)", body = super::openapi::Problem),
        (status = 409, description = "Not finished", body = super::openapi::Problem),
        (status = 503, description = "The blob store is unavailable", body = super::openapi::Problem)))]
async fn access_file(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let job = own_file_job(&state, &p, tenant, FileJobKind::AccessBundle, &id).await?;
    if job.state != FileJobState::Done {
        return Err(ApiError::Conflict {
            code: "not-ready",
            detail: "the bundle is not finished".into(),
        });
    }
    let include_media = job
        .details
        .get("include_media")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(true);
    if include_media {
        // Still allowed to take media out now?
        p.require(Permission::DownloadMedia)?;
    }
    // Deleted meanwhile (an erasure of a recording it held, expiry): 404.
    let stream = bundles::download(state.keys.as_ref(), state.blobs.as_ref(), &job)
        .await
        .map_err(file_error)?;
    state
        .store
        .append_audit(
            tenant,
            NewAuditEvent {
                actor: p.actor(),
                action: AuditAction::GdprAccess,
                recording_id: None,
                target: Some(job.id.to_string()),
                reason: None,
                source: super::recordings::client(&state, &req),
                details: json!({
                    "step": "download",
                    "bundle_id": job.id,
                    "recording_ids": job.recordings,
                    "include_media": include_media,
                }),
            },
        )
        .await?;
    // Decrypted chunk by chunk as the client reads: no clear copy, and
    // memory bounded by the channel.
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"subject-access-{}.zip\"", job.id),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream))
}

/// The rectification explanation (Art. 16): what can be corrected where.
pub fn rectification_text() -> serde_json::Value {
    json!({
        "directory": "User information (names, account name, email, UPN, phone numbers, \
            SIP address, directory object id) is synchronised from the customer's directory \
            (Microsoft Entra ID). Correct it there; the next directory sync updates Insights. \
            It cannot be edited in Insights.",
        "call_data": "Call data (participants, numbers, URIs, times) and media are captured \
            as they happened and kept unchanged as evidence; they cannot be edited. If they \
            are wrong or no longer needed, the data subject can ask for erasure (Art. 17), \
            subject to legal holds and the media-deletion waiver.",
        "where": [
            {"data": "directory users", "source": "Microsoft Entra ID (Azure AD) of the customer", "how": "Entra admin center or Graph; then directory sync"},
            {"data": "recordings, participants, media", "source": "Microsoft Teams / SBC at capture time", "how": "immutable; erasure request via POST /api/gdpr/erasures"},
            {"data": "transcripts and summaries", "source": "derived from the media", "how": "immutable; removed with the subject's erasure"},
            {"data": "local accounts", "source": "Insights", "how": "tenant admin: PUT /api/users/{id}"}
        ]
    })
}

#[utoipa::path(get, path = "/api/gdpr/rectification", tag = "gdpr",
    responses(
        (status = 200, description = "`{directory, call_data, where:[...]}`", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn rectification(p: Principal) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    p.tenant()?;
    Ok(HttpResponse::Ok().json(rectification_text()))
}

/// Body of `POST /api/gdpr/erasures`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ErasureBody {
    #[schema(value_type = Object)]
    identifiers: SubjectIdentifiers,
    /// Why (ticket, legal basis): in the audit trail and the certificate.
    reason: String,
}

fn env<'a>(state: &'a AppState, ctx: &'a GdprContext) -> ErasureEnv<'a> {
    ErasureEnv {
        store: state.store.as_ref(),
        blobs: state.blobs.as_ref(),
        signer: &ctx.signer,
        spool: ctx.spool.clone(),
        find: ctx.find.clone(),
    }
}

fn parse_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

#[utoipa::path(post, path = "/api/gdpr/erasures", tag = "gdpr", request_body = ErasureBody,
    responses(
        (status = 201, description = "Erasure (status planned) with the dry-run report", body = Object),
        (status = 400, description = "No or invalid identifiers, no reason", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn erasure_create(
    p: Principal,
    state: web::Data<AppState>,
    ctx: web::Data<GdprContext>,
    body: web::Json<ErasureBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let e = erasure::request(
        &env(&state, &ctx),
        tenant,
        &body.identifiers,
        &body.reason,
        &p.actor(),
    )
    .await
    .map_err(erasure_error)?;
    Ok(HttpResponse::Created().json(e))
}

#[utoipa::path(get, path = "/api/gdpr/erasures", tag = "gdpr",
    responses(
        (status = 200, description = "`{items:[Erasure]}`, newest first", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn erasure_list(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let items = erasure::list(state.store.as_ref(), tenant)
        .await
        .map_err(erasure_error)?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

#[utoipa::path(get, path = "/api/gdpr/erasures/{id}", tag = "gdpr",
    params(("id" = String, Path, description = "Erasure request id")),
    responses(
        (status = 200, description = "Erasure", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such request", body = super::openapi::Problem)))]
async fn erasure_get(
    p: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let e = erasure::get(state.store.as_ref(), tenant, parse_id(&id)?)
        .await
        .map_err(erasure_error)?;
    Ok(HttpResponse::Ok().json(e))
}

#[utoipa::path(post, path = "/api/gdpr/erasures/{id}/execute", tag = "gdpr",
    params(("id" = String, Path, description = "Erasure request id")),
    responses(
        (status = 200, description = "Erasure (completed, partially-deferred or partially-blocked)", body = Object),
        (status = 409, description = "A recording is still being captured, or another process owns the spool; execute again later", body = super::openapi::Problem),
        (status = 503, description = "The blob store is unavailable; what was done is saved, execute again to resume", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such request", body = super::openapi::Problem)))]
async fn erasure_execute(
    p: Principal,
    state: web::Data<AppState>,
    ctx: web::Data<GdprContext>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let e = erasure::execute(&env(&state, &ctx), tenant, parse_id(&id)?, &p.actor(), None)
        .await
        .map_err(erasure_error)?;
    Ok(HttpResponse::Ok().json(e))
}

#[utoipa::path(get, path = "/api/gdpr/erasures/{id}/certificate", tag = "gdpr",
    params(("id" = String, Path, description = "Erasure request id")),
    responses(
        (status = 200, description = "The signed certificate (canonical JSON; verify with `insights gdpr verify-certificate`)", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such request", body = super::openapi::Problem),
        (status = 409, description = "Not executed yet", body = super::openapi::Problem)))]
async fn erasure_certificate(
    p: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    match erasure::certificate(state.store.as_ref(), tenant, parse_id(&id)?).await {
        Ok(Some(cert)) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(cert)),
        Ok(None) => Err(ApiError::Conflict {
            code: "not-executed",
            detail: "the erasure has not been executed yet".into(),
        }),
        Err(ErasureError::Store(StoreError::NotFound)) => Err(ApiError::NotFound),
        Err(e) => Err(erasure_error(e)),
    }
}
