//! Data-subject requests for the DPO (`gdpr-actions`): find, access
//! bundles, rectification explanation, erasure with certificates. The
//! work is `gdpr_tools`; this module maps it to HTTP.
//!
//! Identifiers travel in JSON bodies only (never in a URL or access log)
//! and never in error details. Every route is tenant scoped (operators:
//! 403) and audited by the library (`gdpr-access`, `gdpr-erasure`) or
//! here (`search` for a find, with the count only).
//!
//! The erasure signer, the spool and the bundle folder come from a
//! [`GdprContext`] registered by the binary (`insights serve`: the
//! installation key, its open spool, `<data_dir>/gdpr/bundles`). An
//! embedding that registers none (tests) gets a per-process context: a
//! fresh signing key and a private temp folder.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use gdpr_tools::access::{AccessEnv, AccessError, AccessOptions, build_bundle};
use gdpr_tools::certificate::CertificateSigner;
use gdpr_tools::erasure::{self, ErasureEnv, ErasureError};
use gdpr_tools::subject::{FindOptions, SubjectError, SubjectIdentifiers};
use insights_core::domain::{AuditAction, NewAuditEvent, Permission, TenantId};
use insights_core::spool::SpoolCopies;
use insights_core::store::StoreError;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

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

#[derive(Clone, Debug, PartialEq, Eq)]
enum JobState {
    Running,
    Done,
    Failed(&'static str),
}

struct AccessJob {
    tenant: TenantId,
    owner: String,
    state: JobState,
    path: PathBuf,
}

/// What the GDPR routes need beyond [`AppState`].
pub struct GdprContext {
    signer: CertificateSigner,
    spool: Option<Arc<dyn SpoolCopies>>,
    bundle_dir: PathBuf,
    find: FindOptions,
    jobs: Mutex<HashMap<Uuid, AccessJob>>,
}

impl GdprContext {
    /// A context with the installation's signer, the spool (erasure deletes
    /// copies not uploaded yet from it) and the folder for access bundles
    /// (created, 0700).
    pub fn new(
        signer: CertificateSigner,
        spool: Option<Arc<dyn SpoolCopies>>,
        bundle_dir: PathBuf,
        find: FindOptions,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&bundle_dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&bundle_dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self {
            signer,
            spool,
            bundle_dir,
            find,
            jobs: Mutex::new(HashMap::new()),
        })
    }

    fn ephemeral() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("insights-gdpr-{}", Uuid::new_v4().simple()));
        let signer = CertificateSigner::open_or_create(dir.join("signing-key.json"))
            .map_err(std::io::Error::other)?;
        Self::new(signer, None, dir.join("bundles"), FindOptions::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, AccessJob>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

static FALLBACK: OnceLock<Result<web::Data<GdprContext>, String>> = OnceLock::new();

fn context(ctx: Option<web::Data<GdprContext>>) -> Result<web::Data<GdprContext>, ApiError> {
    if let Some(c) = ctx {
        return Ok(c);
    }
    FALLBACK
        .get_or_init(|| {
            GdprContext::ephemeral()
                .map(web::Data::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| ApiError::internal(anyhow::anyhow!("gdpr context: {e}")))
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
    ctx: Option<web::Data<GdprContext>>,
    body: web::Json<FindBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let ctx = context(ctx)?;
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
        (status = 202, description = "`{id, status}`: the bundle is being built", body = Object),
        (status = 400, description = "No or invalid identifiers, unknown column", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn access_start(
    p: Principal,
    state: web::Data<AppState>,
    ctx: Option<web::Data<GdprContext>>,
    body: web::Json<AccessBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let ctx = context(ctx)?;
    let body = body.into_inner();
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
    let id = Uuid::now_v7();
    let path = ctx.bundle_dir.join(format!("{id}.zip"));
    ctx.lock().insert(
        id,
        AccessJob {
            tenant,
            owner: p.actor(),
            state: JobState::Running,
            path: path.clone(),
        },
    );
    let actor = p.actor();
    let state = state.into_inner();
    let ctx2 = ctx.clone();
    tokio::spawn(async move {
        let opts = AccessOptions {
            include_media: body.include_media,
            columns: body.columns,
            mask_others: body.mask_others,
        };
        let env = AccessEnv {
            store: state.store.as_ref(),
            blobs: state.blobs.as_ref(),
            keys: state.keys.as_ref(),
            find: ctx2.find.clone(),
        };
        let tmp = path.with_extension("zip.tmp");
        let result: Result<Vec<String>, AccessError> = async {
            let file =
                std::fs::File::create(&tmp).map_err(|e| AccessError::Write(e.to_string()))?;
            let summary = build_bundle(
                &env,
                tenant,
                &body.identifiers,
                &opts,
                &actor,
                std::io::BufWriter::new(file),
            )
            .await?;
            std::fs::rename(&tmp, &path).map_err(|e| AccessError::Write(e.to_string()))?;
            Ok(summary.recordings)
        }
        .await;
        let new_state = match result {
            Ok(recordings) => {
                // Beside the bundle: which recordings it holds, so an
                // erasure of any of them deletes it.
                let list = path.with_extension("recordings");
                match std::fs::write(&list, recordings.join("\n")) {
                    Ok(()) => JobState::Done,
                    Err(_) => JobState::Failed("bundle-write-failed"),
                }
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!(job = %id, error = %e, "access bundle failed");
                JobState::Failed("bundle-failed")
            }
        };
        if let Some(j) = ctx2.lock().get_mut(&id) {
            j.state = new_state;
        }
    });
    Ok(HttpResponse::Accepted().json(json!({ "id": id, "status": "running" })))
}

fn own_job(
    ctx: &GdprContext,
    p: &Principal,
    tenant: TenantId,
    id: &str,
) -> Result<(JobState, PathBuf), ApiError> {
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    let jobs = ctx.lock();
    let j = jobs.get(&id).ok_or(ApiError::NotFound)?;
    if j.tenant != tenant || j.owner != p.actor() {
        return Err(ApiError::NotFound);
    }
    Ok((j.state.clone(), j.path.clone()))
}

#[utoipa::path(get, path = "/api/gdpr/access/{id}", tag = "gdpr",
    params(("id" = String, Path, description = "Access job id")),
    responses(
        (status = 200, description = "`{id, status: running|done|failed, progress, error?}`", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such job of yours", body = super::openapi::Problem)))]
async fn access_status(
    p: Principal,
    ctx: Option<web::Data<GdprContext>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let ctx = context(ctx)?;
    let (state, _) = own_job(&ctx, &p, tenant, &id)?;
    let (status, progress, error) = match state {
        JobState::Running => ("running", 0, None),
        JobState::Done => ("done", 100, None),
        JobState::Failed(code) => ("failed", 100, Some(code)),
    };
    Ok(HttpResponse::Ok().json(json!({
        "id": id.as_str(), "status": status, "progress": progress, "error": error,
    })))
}

#[utoipa::path(get, path = "/api/gdpr/access/{id}/file", tag = "gdpr",
    params(("id" = String, Path, description = "Access job id")),
    responses(
        (status = 200, description = "The zip bundle", content_type = "application/zip", body = Vec<u8>),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such job of yours", body = super::openapi::Problem),
        (status = 409, description = "Not finished", body = super::openapi::Problem)))]
async fn access_file(
    p: Principal,
    ctx: Option<web::Data<GdprContext>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let ctx = context(ctx)?;
    let (state, path) = own_job(&ctx, &p, tenant, &id)?;
    if state != JobState::Done {
        return Err(ApiError::Conflict {
            code: "not-ready",
            detail: "the bundle is not finished".into(),
        });
    }
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        // Deleted by an erasure of a recording it held.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ApiError::NotFound),
        Err(e) => return Err(ApiError::internal(e)),
    };
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"subject-access-{}.zip\"",
                id.as_str()
            ),
        ))
        .body(bytes))
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
        bundle_dir: Some(ctx.bundle_dir.clone()),
        find: ctx.find.clone(),
    }
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
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
    ctx: Option<web::Data<GdprContext>>,
    body: web::Json<ErasureBody>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let ctx = context(ctx)?;
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
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such request", body = super::openapi::Problem)))]
async fn erasure_execute(
    p: Principal,
    state: web::Data<AppState>,
    ctx: Option<web::Data<GdprContext>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::GdprActions)?;
    let tenant = p.tenant()?;
    let ctx = context(ctx)?;
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
