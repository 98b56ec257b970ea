//! Recording endpoints: search, detail, transcript, media (play) and
//! download. Every handler authenticates ([`Principal`]), checks the
//! permission, scopes to the caller's tenant (the store is tenant-scoped;
//! PostgreSQL RLS is the second wall) and to the caller's visibility
//! scope, and audits every read of content. A recording the caller may
//! not see — another tenant's, or outside their scope — answers `404`,
//! exactly like a missing one, so ids cannot be probed.
//!
//! Search is `POST` with a JSON body: personal data typed into a search
//! (names, numbers, words spoken) never ends up in a URL or an access log.

use actix_web::{HttpRequest, HttpResponse, web};
use insights_core::blob::layout;
use insights_core::crypto::envelope::ExpectedIds;
use insights_core::domain::{
    AuditAction, NewAuditEvent, Permission, Recording, RecordingId, RecordingQuery, TenantId,
    TenantSettings, UserId, VisibilityScope,
};
use insights_core::store::StoreError;
use serde_json::json;

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::playback::{self, SealedObject};

/// Header carrying the reason for access (free text or case number),
/// required for play, download and transcript view when the tenant's
/// `require_access_reason` setting is on.
pub const ACCESS_REASON_HEADER: &str = "x-access-reason";
/// Longest reason kept (characters).
pub(super) const MAX_REASON: usize = 500;

/// Registers the recording routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/recordings/search", web::post().to(search))
        .route("/api/recordings/count", web::post().to(count))
        .route("/api/recordings/{id}", web::get().to(detail))
        .route("/api/recordings/{id}/transcript", web::get().to(transcript))
        .route("/api/recordings/{id}/media", web::get().to(media))
        .route("/api/recordings/{id}/download", web::get().to(download))
        .route(
            "/api/recordings/{id}/streams/{track}/media",
            web::get().to(stream_media),
        );
}

/// The client address for audit events (see [`crate::client_addr`]).
pub(super) fn client(state: &AppState, req: &HttpRequest) -> Option<String> {
    state.auth.client_ip(req).map(|ip| ip.to_string())
}

/// The directory users whose recordings the caller may see; `None` = all.
/// Fails closed: a scope that names nobody sees nothing.
pub(super) async fn visible_users(
    state: &AppState,
    tenant: TenantId,
    p: &Principal,
) -> Result<Option<Vec<UserId>>, ApiError> {
    Ok(match &p.scope {
        VisibilityScope::All => None,
        VisibilityScope::Users(users) => Some(users.clone()),
        VisibilityScope::OwnRecordings => Some(p.directory_user_id.into_iter().collect()),
        // Members of the groups, as the directory says now. (Lists the
        // tenant's directory users per request: fine for the sizes we
        // serve today; a group index belongs to directory sync.)
        VisibilityScope::Groups(groups) => Some(
            state
                .store
                .list_directory_users(tenant)
                .await?
                .into_iter()
                .filter(|u| u.groups.iter().any(|g| groups.contains(g)))
                .map(|u| u.id)
                .collect(),
        ),
        VisibilityScope::Nothing => Some(Vec::new()),
    })
}

pub(super) fn may_see(users: Option<&[UserId]>, rec: &Recording) -> bool {
    match users {
        None => true,
        Some(users) => rec
            .participants
            .iter()
            .any(|x| x.directory_user_id.is_some_and(|u| users.contains(&u))),
    }
}

/// The recording, if it exists in the caller's tenant and scope.
pub(super) async fn visible(
    state: &AppState,
    p: &Principal,
    tenant: TenantId,
    id: &str,
) -> Result<Recording, ApiError> {
    let id: RecordingId = id.parse().map_err(|_| ApiError::NotFound)?;
    let rec = state.store.get_recording(tenant, id).await?;
    let users = visible_users(state, tenant, p).await?;
    if may_see(users.as_deref(), &rec) {
        Ok(rec)
    } else {
        Err(ApiError::NotFound)
    }
}

/// The reason for access, required when the tenant says so.
pub(super) fn access_reason(
    settings: &TenantSettings,
    req: &HttpRequest,
) -> Result<Option<String>, ApiError> {
    let given = req
        .headers()
        .get(ACCESS_REASON_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| r.chars().take(MAX_REASON).collect::<String>());
    if settings.require_access_reason && given.is_none() {
        return Err(ApiError::BadRequest {
            code: "access-reason-required",
            detail: format!(
                "this tenant requires a reason for access: send it in the {ACCESS_REASON_HEADER} header"
            ),
        });
    }
    Ok(given)
}

/// Appends an audit event for the caller's request.
pub(super) async fn audit(
    state: &AppState,
    tenant: TenantId,
    p: &Principal,
    req: &HttpRequest,
    what: Audited,
) -> Result<(), ApiError> {
    state
        .store
        .append_audit(
            tenant,
            NewAuditEvent {
                actor: p.actor(),
                action: what.action,
                recording_id: what.recording,
                target: None,
                reason: what.reason,
                source: client(state, req),
                details: what.details,
            },
        )
        .await
        .map(|_| ())
        .map_err(ApiError::internal)
}

/// What a request did, for [`audit`].
pub(super) struct Audited {
    pub(super) action: AuditAction,
    pub(super) recording: Option<RecordingId>,
    pub(super) reason: Option<String>,
    pub(super) details: serde_json::Value,
}

/// Refuses a time window that ends before it starts (`400 bad-window`).
pub(super) fn check_window(q: &RecordingQuery) -> Result<(), ApiError> {
    match (q.from, q.to) {
        (Some(from), Some(to)) if from > to => Err(ApiError::BadRequest {
            code: "bad-window",
            detail: "\"from\" is later than \"to\"".into(),
        }),
        _ => Ok(()),
    }
}

/// `POST /api/recordings/search`: the body is a `RecordingQuery`.
#[utoipa::path(post, path = "/api/recordings/search", tag = "recordings",
    request_body = super::openapi::SearchRequest,
    responses(
        (status = 200, description = "A page of recordings the caller may see (`items`), the next page's `cursor` (`next_cursor`), and `total`: the number of matches, exact up to 10 000; beyond that `total` is 10000 and `total_is_lower_bound` is true unless the request asked for `exact_total`", body = Object),
        (status = 400, description = "Invalid filters", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn search(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RecordingQuery>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Search)?;
    let tenant = p.tenant()?;
    let mut query = body.into_inner();
    // The client never chooses its own scope.
    query.visible_to_users = visible_users(&state, tenant, &p).await?;
    if !(1..=500).contains(&query.limit) {
        return Err(ApiError::BadRequest {
            code: "bad-limit",
            detail: "limit must be 1..=500".into(),
        });
    }
    check_window(&query)?;
    if query.transcript_text.is_some() && !p.has(Permission::ViewTranscript) {
        return Err(ApiError::Forbidden {
            code: "permission-denied",
        });
    }
    let mut page = state.store.search_recordings(tenant, &query).await?;
    // Snippets are transcript text: they need `view-transcript`, the
    // reason for access when the tenant asks for one, and (four-eyes) an
    // approval for the recording; each recording whose snippets are
    // shown is audited as a transcript read.
    let mut withheld = None;
    let mut reason = None;
    let has_snippets = page.items.iter().any(|i| !i.snippets.is_empty());
    if !p.has(Permission::ViewTranscript) {
        for item in &mut page.items {
            item.snippets.clear();
        }
    } else if has_snippets {
        let settings = state.store.get_tenant(tenant).await?.settings;
        match access_reason(&settings, &req) {
            Ok(r) => reason = r,
            Err(_) => withheld = Some("access-reason-required"),
        }
        let mut approvals = Vec::new();
        for item in &mut page.items {
            if item.snippets.is_empty() {
                continue;
            }
            if withheld.is_some() {
                item.snippets.clear();
                continue;
            }
            match super::access::four_eyes_gate(&state, &p, tenant, &settings, item.recording.id)
                .await
            {
                Ok(approval) => approvals.push((item.recording.id, item.snippets.len(), approval)),
                Err(ApiError::Forbidden { .. }) => item.snippets.clear(),
                Err(e) => return Err(e),
            }
        }
        for (recording, snippets, approval) in approvals {
            let mut details = json!({ "snippets": snippets, "via": "search" });
            if let Some(approval) = approval {
                details["approval"] = json!(approval);
            }
            audit(
                &state,
                tenant,
                &p,
                &req,
                Audited {
                    action: AuditAction::TranscriptView,
                    recording: Some(recording),
                    reason: reason.clone(),
                    details,
                },
            )
            .await?;
        }
    }
    // Which filters were used, not their values: the trail says who
    // searched and how, without copying personal data into it.
    let used = crate::export::filter_names(&query);
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::Search,
            recording: None,
            reason,
            details: json!({ "filters": used, "results": page.total }),
        },
    )
    .await?;
    let mut body = serde_json::to_value(&page).map_err(ApiError::internal)?;
    if !p.has(Permission::ManageSettings)
        && let Some(items) = body.get_mut("items").and_then(|i| i.as_array_mut())
    {
        for item in items {
            if let Some(r) = item.get_mut("recording") {
                strip_storage(r);
            }
        }
    }
    body["snippets_withheld"] = json!(withheld);
    Ok(HttpResponse::Ok().json(body))
}

/// `POST /api/recordings/count`: the exact number of recordings a search
/// matches, however many (a search page stops counting at 10 000). Same
/// body, permissions and scope as the search; no rows, no snippets.
#[utoipa::path(post, path = "/api/recordings/count", tag = "recordings",
    request_body = super::openapi::SearchRequest,
    responses(
        (status = 200, description = "`{\"total\": n}`: every recording the caller may see that matches the filters (`cursor`, `limit` and `sort` are ignored)", body = Object),
        (status = 400, description = "Invalid filters", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem)))]
async fn count(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RecordingQuery>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Search)?;
    let tenant = p.tenant()?;
    let mut query = body.into_inner();
    query.visible_to_users = visible_users(&state, tenant, &p).await?;
    check_window(&query)?;
    if query.transcript_text.is_some() && !p.has(Permission::ViewTranscript) {
        return Err(ApiError::Forbidden {
            code: "permission-denied",
        });
    }
    query.exact_total = true;
    query.cursor = None;
    query.limit = 1;
    let total = state.store.search_recordings(tenant, &query).await?.total;
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::Search,
            recording: None,
            reason: None,
            details: json!({
                "filters": crate::export::filter_names(&query),
                "results": total,
                "count_only": true,
            }),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "total": total })))
}

/// A recording as `p` may see it: where its media is stored (container,
/// blob key, data key) only for those who administer the tenant
/// (`manage-settings`); everyone else sees that media exists, its type,
/// size and digest.
pub(super) fn shown(p: &Principal, rec: &Recording) -> Result<serde_json::Value, ApiError> {
    let mut v = serde_json::to_value(rec).map_err(ApiError::internal)?;
    if !p.has(Permission::ManageSettings) {
        strip_storage(&mut v);
    }
    Ok(v)
}

fn strip_storage(v: &mut serde_json::Value) {
    if let Some(media) = v.get_mut("media").and_then(|m| m.as_object_mut()) {
        for k in ["container", "key", "data_key_id"] {
            media.remove(k);
        }
    }
}

/// Why transcript-derived content was left out of an answer.
const WITHHELD_PERMISSION: &str = "permission-denied";

/// Checks what a transcript read needs after permission and scope: the
/// reason for access (when the tenant requires one) and, under
/// four-eyes, an approval. Returns the reason and the approval used.
async fn content_gate(
    state: &AppState,
    p: &Principal,
    tenant: TenantId,
    req: &HttpRequest,
    recording: RecordingId,
) -> Result<
    (
        Option<String>,
        Option<insights_core::domain::AccessRequestId>,
    ),
    ApiError,
> {
    let settings = state.store.get_tenant(tenant).await?.settings;
    let reason = access_reason(&settings, req)?;
    let approval = super::access::four_eyes_gate(state, p, tenant, &settings, recording).await?;
    Ok((reason, approval))
}

/// `GET /api/recordings/{id}`: metadata, participants, streams and the
/// insights (summary, key points, action items). Insights are derived
/// from the transcript, so they come only with `view-transcript`, the
/// reason for access when the tenant requires one and, under four-eyes,
/// an approval; the read is audited (`transcript-view`). Without them
/// the answer has `insights: null` and `insights_withheld` says why
/// (`permission-denied`, `access-reason-required`, `approval-required`).
#[utoipa::path(get, path = "/api/recordings/{id}", tag = "recordings",
    params(("id" = String, Path, description = "Recording id"),
        ("x-access-reason" = Option<String>, Header, description = "Reason for access, when the tenant requires one (for the insights)")),
    responses(
        (status = 200, description = "The recording with participants, streams, failover marks (a meeting continued on another gateway node: `failovers`, each with `side` `continues` or `continued_by`, the other `recording_id`, the gap and the `reason`), its gaps (`gaps`: paused intervals, each with `reason` `paused`, `requested_at`/`requested_by`, the effective `started_at`, `resume_requested_at`/`resumed_by` and the effective `ended_at`; no media was written in between) and (when permitted) insights"),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such recording in the caller's tenant and scope", body = super::openapi::Problem)))]
async fn detail(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Search)?;
    let tenant = p.tenant()?;
    let rec = visible(&state, &p, tenant, &path).await?;
    let failovers = failovers(&state, tenant, rec.id).await?;
    let gaps = state.store.recording_gaps(tenant, rec.id).await?;
    let shown_rec = shown(&p, &rec)?;
    if !p.has(Permission::ViewTranscript) {
        return Ok(HttpResponse::Ok().json(json!({
            "recording": shown_rec, "failovers": failovers, "gaps": gaps,
            "insights": null, "insights_withheld": WITHHELD_PERMISSION,
        })));
    }
    let (reason, approval) = match content_gate(&state, &p, tenant, &req, rec.id).await {
        Ok(gate) => gate,
        Err(ApiError::BadRequest { code, .. } | ApiError::Forbidden { code }) => {
            return Ok(HttpResponse::Ok().json(json!({
                "recording": shown_rec, "failovers": failovers, "gaps": gaps,
                "insights": null, "insights_withheld": code,
            })));
        }
        Err(e) => return Err(e),
    };
    let insights = state.store.list_insights(tenant, rec.id).await?;
    let mut details = json!({ "insights": insights.len() });
    if let Some(approval) = approval {
        details["approval"] = json!(approval);
    }
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::TranscriptView,
            recording: Some(rec.id),
            reason,
            details,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "recording": shown_rec, "failovers": failovers, "gaps": gaps,
        "insights": insights, "insights_withheld": null,
    })))
}

/// The failover marks of a meeting recording, either side: `continues`
/// names the recording this one continues after the node recording it
/// was lost, `continued_by` the one that continued this one; the gap is
/// the interval in which no node held the meeting. Node names are
/// infrastructure, not shown.
async fn failovers(
    state: &AppState,
    tenant: TenantId,
    id: RecordingId,
) -> Result<Vec<serde_json::Value>, ApiError> {
    let marks = state.store.meeting_failovers(tenant, id).await?;
    Ok(marks
        .into_iter()
        .map(|m| {
            let (side, other) = if m.recording_id == id {
                ("continues", m.continues)
            } else {
                ("continued_by", m.recording_id)
            };
            json!({
                "side": side,
                "recording_id": other,
                "gap_from": m.gap_from,
                "gap_to": m.gap_to,
                "reason": m.reason,
            })
        })
        .collect())
}

/// `GET /api/recordings/{id}/transcript`.
#[utoipa::path(get, path = "/api/recordings/{id}/transcript", tag = "recordings",
    params(("id" = String, Path, description = "Recording id"),
        ("x-access-reason" = Option<String>, Header, description = "Reason for access, when the tenant requires one")),
    responses(
        (status = 200, description = "The transcript segments"),
        (status = 400, description = "A reason for access is required", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such recording in the caller's tenant and scope", body = super::openapi::Problem)))]
async fn transcript(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ViewTranscript)?;
    let tenant = p.tenant()?;
    let rec = visible(&state, &p, tenant, &path).await?;
    let (reason, approval) = content_gate(&state, &p, tenant, &req, rec.id).await?;
    let segments = state.store.list_transcript(tenant, rec.id).await?;
    let mut details = json!({ "segments": segments.len() });
    if let Some(approval) = approval {
        details["approval"] = json!(approval);
    }
    audit(
        &state,
        tenant,
        &p,
        &req,
        Audited {
            action: AuditAction::TranscriptView,
            recording: Some(rec.id),
            reason,
            details,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "recording_id": rec.id, "segments": segments })))
}

/// `GET /api/recordings/{id}/media`: the primary stream, decrypted, with
/// HTTP Range, for playing.
#[utoipa::path(get, path = "/api/recordings/{id}/media", tag = "recordings",
    params(("id" = String, Path, description = "Recording id"),
        ("range" = Option<String>, Header, description = "RFC 9110 byte ranges"),
        ("x-access-reason" = Option<String>, Header, description = "Reason for access, when the tenant requires one")),
    responses(
        (status = 200, description = "The decrypted media (206 for a Range, 416 for an unsatisfiable one)"),
        (status = 400, description = "A reason for access is required", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such recording in the caller's tenant and scope", body = super::openapi::Problem)))]
async fn media(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    serve_media(
        p,
        state,
        req,
        path,
        Permission::Play,
        AuditAction::Play,
        false,
    )
    .await
}

/// `GET /api/recordings/{id}/download`: the same bytes as an attachment,
/// a separate permission.
#[utoipa::path(get, path = "/api/recordings/{id}/download", tag = "recordings",
    params(("id" = String, Path, description = "Recording id"),
        ("range" = Option<String>, Header, description = "RFC 9110 byte ranges"),
        ("x-access-reason" = Option<String>, Header, description = "Reason for access, when the tenant requires one")),
    responses(
        (status = 200, description = "The decrypted media as an attachment"),
        (status = 400, description = "A reason for access is required", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such recording in the caller's tenant and scope", body = super::openapi::Problem)))]
async fn download(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    serve_media(
        p,
        state,
        req,
        path,
        Permission::DownloadMedia,
        AuditAction::Download,
        true,
    )
    .await
}

/// `GET /api/recordings/{id}/streams/{track}/media`: one stream of the
/// recording (a meeting participant's own track; track 0 is the mix or
/// the call's stereo file), decrypted, with HTTP Range. Same rules and
/// audit as `…/media`; the audit event names the track.
#[utoipa::path(get, path = "/api/recordings/{id}/streams/{track}/media", tag = "recordings",
    params(
        ("id" = String, Path, description = "Recording id"),
        ("track" = u16, Path, description = "The stream's track number"),
        ("range" = Option<String>, Header, description = "RFC 9110 byte ranges"),
        ("x-access-reason" = Option<String>, Header, description = "Reason for access, when the tenant requires one")),
    responses(
        (status = 200, description = "The decrypted stream (206 for a Range, 416 for an unsatisfiable one)"),
        (status = 400, description = "A reason for access is required", body = super::openapi::Problem),
        (status = 401, description = "Not signed in", body = super::openapi::Problem),
        (status = 403, description = "Not permitted", body = super::openapi::Problem),
        (status = 404, description = "No such recording or track in the caller's tenant and scope", body = super::openapi::Problem)))]
async fn stream_media(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, u16)>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Play)?;
    let tenant = p.tenant()?;
    let (id, track) = path.into_inner();
    let rec = visible(&state, &p, tenant, &id).await?;
    let Some(stream) = rec.streams.iter().find(|s| s.track == i32::from(track)) else {
        return Err(ApiError::NotFound);
    };
    let media = stored_media(&rec)?;
    let key = if track == 0 {
        media.key.clone()
    } else {
        layout::stream_blob_key(rec.id, track, &media.content_type)
    };
    let source = Source {
        recording: rec.id,
        media: &media,
        key: &key,
        object: layout::envelope_object_id(rec.id, track, stream.id),
        track: Some(track),
    };
    send(&state, &p, &req, tenant, source, AuditAction::Play).await
}

/// The recording's stored media object, else `409 media-not-stored`.
fn stored_media(rec: &Recording) -> Result<insights_core::domain::MediaObject, ApiError> {
    rec.media.clone().ok_or_else(|| ApiError::Conflict {
        code: "media-not-stored",
        detail: "the recording's media is not stored yet".into(),
    })
}

/// One stored media object of a recording, to send.
struct Source<'a> {
    recording: RecordingId,
    media: &'a insights_core::domain::MediaObject,
    /// Its blob key.
    key: &'a str,
    /// The envelope object id it must be bound to.
    object: uuid::Uuid,
    /// The stream's track, for the audit event (`None`: the primary).
    track: Option<u16>,
}

/// Asks for the reason for access, opens the object, audits the read,
/// then streams it with HTTP Range.
async fn send(
    state: &AppState,
    p: &Principal,
    req: &HttpRequest,
    tenant: TenantId,
    source: Source<'_>,
    action: AuditAction,
) -> Result<HttpResponse, ApiError> {
    let settings = state.store.get_tenant(tenant).await?.settings;
    let reason = access_reason(&settings, req)?;
    let approval =
        super::access::four_eyes_gate(state, p, tenant, &settings, source.recording).await?;
    let object = open_sealed(state, tenant, source.media, source.key, source.object).await?;
    let range = range_header(req);
    let mut details = json!({ "range": range });
    if let Some(track) = source.track {
        details["track"] = json!(track);
    }
    if let Some(approval) = approval {
        details["approval"] = json!(approval);
    }
    audit(
        state,
        tenant,
        p,
        req,
        Audited {
            action,
            recording: Some(source.recording),
            reason,
            details,
        },
    )
    .await?;
    Ok(playback::respond(
        object,
        &source.media.content_type,
        range.as_deref(),
    ))
}

fn range_header(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Unwraps the recording's data key and opens blob `key`, checking its
/// envelope is bound to this tenant, `object` and that key.
async fn open_sealed(
    state: &AppState,
    tenant: TenantId,
    media: &insights_core::domain::MediaObject,
    key: &str,
    object: uuid::Uuid,
) -> Result<SealedObject, ApiError> {
    let wrapped = state
        .store
        .get_data_key(tenant, media.data_key_id)
        .await
        .map_err(|e| match e {
            // Crypto-shredded: the media is gone for good.
            StoreError::NotFound => ApiError::Conflict {
                code: "media-erased",
                detail: "the recording's media was erased".into(),
            },
            other => ApiError::internal(other),
        })?;
    let data_key = state
        .keys
        .unwrap(&wrapped)
        .await
        .map_err(ApiError::internal)?;
    let expected = ExpectedIds::new(tenant, object, media.data_key_id);
    SealedObject::open(
        state.blobs.clone(),
        &media.container,
        key,
        data_key,
        &expected,
    )
    .await
    .map_err(|e| match e {
        playback::PlaybackError::Blob(insights_core::blob::BlobError::NotFound) => {
            ApiError::Conflict {
                code: "media-missing",
                detail: "the stored media object is missing".into(),
            }
        }
        other => ApiError::internal(other),
    })
}

async fn serve_media(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    permission: Permission,
    action: AuditAction,
    attachment: bool,
) -> Result<HttpResponse, ApiError> {
    p.require(permission)?;
    let tenant = p.tenant()?;
    let rec = visible(&state, &p, tenant, &path).await?;
    let media = stored_media(&rec)?;
    let source = Source {
        recording: rec.id,
        media: &media,
        key: &media.key,
        object: rec.id.as_uuid(),
        track: None,
    };
    let mut res = send(&state, &p, &req, tenant, source, action).await?;
    if attachment {
        res.headers_mut().insert(
            actix_web::http::header::CONTENT_DISPOSITION,
            actix_web::http::header::HeaderValue::from_str(&format!(
                "attachment; filename=\"{}.ogg\"",
                rec.id
            ))
            .map_err(ApiError::internal)?,
        );
    }
    Ok(res)
}
