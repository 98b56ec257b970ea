//! Excel export of a recording search, for admins: the current search
//! as an .xlsx with the columns the admin chose from the catalogue
//! ([`columns::CATALOGUE`], the seed's "configure export file columns").
//!
//! * [`ExportPlan`] checks the request against the caller's permissions:
//!   no `export` permission → [`ExportError::NotPermitted`]; columns
//!   of a class the caller may not see (personal data without
//!   `export-personal-data`, transcript words without `view-transcript`,
//!   media details without `download-media`) are **left out of the file
//!   and listed** in [`ExportPlan::omitted`], in the summary and in the
//!   audit event. Omitting rather than failing lets one saved column
//!   choice serve every role; listing makes it visible to the caller. If
//!   nothing is left, the export fails ([`ExportError::NoPermittedColumns`]).
//! * [`XlsxWriter`] writes rows in `rust_xlsxwriter`'s constant-memory
//!   mode: dates as Excel date-times (UTC), durations as seconds, counts
//!   and sizes as numbers, flags as booleans; past Excel's 1 048 576 rows
//!   it continues on a new worksheet.
//! * [`export_search`] drives it: appends the `export` audit event (before
//!   any row is read, so failed exports are audited too), pages through
//!   [`SearchStore::search_recordings`](insights_core::store::SearchStore::search_recordings), reports progress after every
//!   page, and streams the finished file to any `Write`.
//!
//! No HTTP here: a background job and the HTTP endpoint call
//! [`export_search`]. The caller applies the profile's visibility scope
//! to the query (`visible_to_users`) before handing it over.

pub mod columns;
mod writer;

use std::io::Write;

use insights_core::domain::{
    AuditAction, NewAuditEvent, RecordingQuery, SecurityProfile, TenantId,
};
use insights_core::store::{MetadataStore, StoreError};
use serde::Serialize;

pub use columns::{
    CATALOGUE, CellKind, ColumnId, ColumnSpec, DEFAULT_COLUMNS, FieldAccess, FieldClass,
    UnknownColumn,
};
pub use writer::{Cell, EXCEL_MAX_ROWS, WriterOptions, XlsxWriter, cell};

/// Search results fetched per page.
pub const PAGE_SIZE: u32 = 500;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The caller's profile does not allow exports at all.
    #[error("exports are not permitted for this profile")]
    NotPermitted,
    /// No column was chosen.
    #[error("no column was chosen")]
    NoColumns,
    /// A column was chosen twice.
    #[error("export column `{0}` is chosen twice")]
    DuplicateColumn(ColumnId),
    /// Every chosen column needs a permission the caller lacks.
    #[error("none of the chosen columns may be exported with this profile")]
    NoPermittedColumns { omitted: Vec<ColumnId> },
    /// The search has transcript words but the caller may not see
    /// transcripts (`view-transcript`).
    #[error("searching transcript words needs the view-transcript permission")]
    TranscriptSearchNotPermitted,
    /// More columns than a worksheet holds.
    #[error("too many columns")]
    TooManyColumns,
    /// Reading the search results failed.
    #[error("reading the recordings failed")]
    Store(#[from] StoreError),
    /// Writing the workbook failed (temp files, output).
    #[error("writing the workbook failed")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    /// The task writing the file stopped abnormally.
    #[error("the export task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// The columns an export writes, after the caller's permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportPlan {
    /// Columns written, in the chosen order.
    pub columns: Vec<ColumnId>,
    /// Chosen columns left out because the caller may not see them.
    pub omitted: Vec<ColumnId>,
}

impl ExportPlan {
    /// Checks a column choice against `access` (see the module docs for
    /// the rules).
    pub fn new(chosen: &[ColumnId], access: &FieldAccess) -> Result<Self, ExportError> {
        if !access.may_export() {
            return Err(ExportError::NotPermitted);
        }
        if chosen.is_empty() {
            return Err(ExportError::NoColumns);
        }
        let mut columns = Vec::with_capacity(chosen.len());
        let mut omitted = Vec::new();
        for (i, &c) in chosen.iter().enumerate() {
            if chosen[..i].contains(&c) {
                return Err(ExportError::DuplicateColumn(c));
            }
            if access.allows(c.spec().class) {
                columns.push(c);
            } else {
                omitted.push(c);
            }
        }
        if columns.is_empty() {
            return Err(ExportError::NoPermittedColumns { omitted });
        }
        Ok(Self { columns, omitted })
    }
}

/// An export of one tenant's search.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    pub tenant: TenantId,
    /// The search, with the caller's visibility scope already applied.
    /// Its `cursor` and `limit` are ignored: every page is exported.
    pub query: RecordingQuery,
    /// The chosen columns, in order.
    pub columns: Vec<ColumnId>,
    /// The caller's permissions.
    pub access: FieldAccess,
    /// Who exports (account id, never a name), for the audit trail.
    pub actor: String,
    /// Client address, for the audit trail.
    pub source: Option<String>,
    /// Reason given for the export, if one was asked.
    pub reason: Option<String>,
}

impl ExportRequest {
    /// A request by the holder of `profile`.
    pub fn for_profile(
        tenant: TenantId,
        profile: &SecurityProfile,
        actor: impl Into<String>,
        query: RecordingQuery,
        columns: Vec<ColumnId>,
    ) -> Self {
        Self {
            tenant,
            query,
            columns,
            access: FieldAccess::from_profile(profile),
            actor: actor.into(),
            source: None,
            reason: None,
        }
    }
}

/// The names of the filters a search uses, never their values (for the
/// audit trail of searches and exports).
pub fn filter_names(query: &RecordingQuery) -> Vec<&'static str> {
    [
        ("from", query.from.is_some()),
        ("to", query.to.is_some()),
        ("participant", query.participant.is_some()),
        ("user_id", query.user_id.is_some()),
        ("direction", query.direction.is_some()),
        ("kind", query.kind.is_some()),
        ("min_duration_ms", query.min_duration_ms.is_some()),
        ("max_duration_ms", query.max_duration_ms.is_some()),
        ("has_transcript", query.has_transcript.is_some()),
        ("legal_hold", query.legal_hold.is_some()),
        ("transcript_text", query.transcript_text.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, on)| on.then_some(k))
    .collect()
}

/// Progress, reported after every page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ExportProgress {
    pub rows_written: u64,
    /// Recordings matching the search when the export started.
    pub total: u64,
}

/// What an export produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    pub rows: u64,
    pub columns: Vec<ColumnId>,
    pub omitted: Vec<ColumnId>,
    pub sheets: usize,
    /// Sequence number of the `export` audit event.
    pub audit_seq: i64,
}

/// Exports every recording matching `req.query` as an .xlsx to `out`.
///
/// Appends one `export` audit event first ([`append_export_audit`]), then
/// runs [`export_audited`].
pub async fn export_search<W>(
    store: &dyn MetadataStore,
    req: &ExportRequest,
    options: WriterOptions,
    out: W,
    progress: impl FnMut(ExportProgress) + Send,
) -> Result<ExportSummary, ExportError>
where
    W: Write + Send + 'static,
{
    let plan = ExportPlan::new(&req.columns, &req.access)?;
    if req.query.transcript_text.is_some() && !req.access.allows(FieldClass::Transcript) {
        return Err(ExportError::TranscriptSearchNotPermitted);
    }
    let audit_seq = append_export_audit(store, req, &plan).await?;
    export_audited(store, req, audit_seq, options, out, progress).await
}

/// Appends the `export` audit event of `req` (details: columns written,
/// columns omitted, the names of the search's filters); returns its
/// sequence number.
pub async fn append_export_audit(
    store: &dyn MetadataStore,
    req: &ExportRequest,
    plan: &ExportPlan,
) -> Result<i64, ExportError> {
    let audit = store
        .append_audit(
            req.tenant,
            NewAuditEvent {
                actor: req.actor.clone(),
                action: AuditAction::Export,
                recording_id: None,
                target: None,
                reason: req.reason.clone(),
                source: req.source.clone(),
                details: serde_json::json!({
                    "format": "xlsx",
                    "columns": plan.columns,
                    "omitted": plan.omitted,
                    // The filters' names, never their values: names,
                    // numbers and words searched for would otherwise sit
                    // in an append-only chain that erasure cannot touch.
                    "filters": filter_names(&req.query),
                }),
            },
        )
        .await?;
    Ok(audit.seq)
}

/// Exports like [`export_search`] under the `export` audit event
/// `audit_seq` appended already (an export job appends it once when it is
/// requested; a run taken over by another node appends none). Rows are
/// written on the calling task (a page of 500 takes about a millisecond);
/// the final compression of the file runs on a blocking thread.
pub async fn export_audited<W>(
    store: &dyn MetadataStore,
    req: &ExportRequest,
    audit_seq: i64,
    options: WriterOptions,
    out: W,
    mut progress: impl FnMut(ExportProgress) + Send,
) -> Result<ExportSummary, ExportError>
where
    W: Write + Send + 'static,
{
    let plan = ExportPlan::new(&req.columns, &req.access)?;
    if req.query.transcript_text.is_some() && !req.access.allows(FieldClass::Transcript) {
        return Err(ExportError::TranscriptSearchNotPermitted);
    }
    let mut writer = XlsxWriter::new(&plan.columns, options)?;
    tracing::info!(tenant = %req.tenant, audit_seq, columns = plan.columns.len(),
        omitted = plan.omitted.len(), "export started");

    let mut query = req.query.clone();
    query.limit = PAGE_SIZE;
    query.cursor = None;
    // The progress bar needs the real number of rows, not a lower bound.
    query.exact_total = true;
    let mut total = None;
    loop {
        let page = store.search_recordings(req.tenant, &query).await?;
        let total = *total.get_or_insert(page.total);
        for item in &page.items {
            writer.write(item)?;
        }
        progress(ExportProgress {
            rows_written: writer.rows(),
            total,
        });
        match page.next_cursor {
            Some(c) if !page.items.is_empty() => query.cursor = Some(c),
            _ => break,
        }
    }
    let sheets = writer.sheets();
    let rows = tokio::task::spawn_blocking(move || writer.finish(out))
        .await
        .map_err(ExportError::Task)??;
    tracing::info!(tenant = %req.tenant, audit_seq, rows, "export finished");
    Ok(ExportSummary {
        rows,
        columns: plan.columns,
        omitted: plan.omitted,
        sheets,
        audit_seq,
    })
}
