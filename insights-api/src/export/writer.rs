//! The .xlsx writer: search results in, one row per recording, in
//! `rust_xlsxwriter`'s constant-memory mode (each row goes to a temp file
//! as soon as the next one starts; memory stays flat however many rows).

use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use insights_core::domain::{Participant, ParticipantRole, RecordingSummary};
use rust_xlsxwriter::{Format, FormatAlign, Workbook, Worksheet};

use super::ExportError;
use super::columns::{ColumnId, ColumnSpec};

/// Rows per worksheet, header included (Excel's limit).
pub const EXCEL_MAX_ROWS: u32 = 1_048_576;
/// Characters per cell (Excel's limit); longer text is cut.
const EXCEL_MAX_CHARS: usize = 32_767;

/// Options of the writer.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Name of the first worksheet; further ones get ` (2)`, ` (3)`...
    pub sheet_name: String,
    /// Where the temp files of the rows go (default: the system temp
    /// dir). They hold the exported data in clear until the workbook is
    /// finished, then are deleted: put them on the same protected volume
    /// as the export itself.
    pub tempdir: Option<PathBuf>,
    /// Rows per worksheet, header included (default and maximum: Excel's
    /// 1 048 576); more rows continue on a new worksheet.
    pub max_rows_per_sheet: u32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            sheet_name: "Recordings".to_owned(),
            tempdir: None,
            max_rows_per_sheet: EXCEL_MAX_ROWS,
        }
    }
}

/// A cell value borrowed from a recording where possible.
#[derive(Debug, PartialEq)]
pub enum Cell<'a> {
    Empty,
    Text(Cow<'a, str>),
    Number(f64),
    Bool(bool),
    DateTime(DateTime<Utc>),
}

/// The first participant with `role`.
fn party(r: &RecordingSummary, role: ParticipantRole) -> Option<&Participant> {
    r.recording.participants.iter().find(|p| p.role == role)
}

fn text(s: Option<&str>) -> Cell<'_> {
    match s {
        Some(s) if !s.is_empty() => Cell::Text(Cow::Borrowed(s)),
        _ => Cell::Empty,
    }
}

/// Joins the non-empty values with `; `.
fn joined<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Cell<'a> {
    let mut out = String::new();
    for v in values.flatten().filter(|v| !v.is_empty()) {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(v);
    }
    if out.is_empty() {
        Cell::Empty
    } else {
        Cell::Text(Cow::Owned(out))
    }
}

/// The value of `column` for one search result.
pub fn cell(column: ColumnId, r: &RecordingSummary) -> Cell<'_> {
    let rec = &r.recording;
    let name = |role| text(party(r, role).and_then(|p| p.display_name.as_deref()));
    let number = |role| text(party(r, role).and_then(|p| p.phone_number.as_deref()));
    let uri = |role| text(party(r, role).and_then(|p| p.uri.as_deref()));
    match column {
        ColumnId::RecordingId => Cell::Text(Cow::Owned(rec.id.to_string())),
        ColumnId::StartedAt => Cell::DateTime(rec.started_at),
        ColumnId::EndedAt => rec.ended_at.map_or(Cell::Empty, Cell::DateTime),
        ColumnId::Duration => rec
            .duration_ms
            .map_or(Cell::Empty, |ms| Cell::Number(ms as f64 / 1000.0)),
        ColumnId::Kind => Cell::Text(Cow::Borrowed(rec.kind.as_str())),
        ColumnId::Direction => Cell::Text(Cow::Borrowed(rec.direction.as_str())),
        ColumnId::Status => Cell::Text(Cow::Borrowed(rec.status.as_str())),
        ColumnId::ResultCode => text(rec.result_code.as_deref()),
        ColumnId::RetentionClass => text(Some(&rec.retention_class)),
        ColumnId::LegalHold => Cell::Bool(rec.legal_hold),
        ColumnId::HasTranscript => Cell::Bool(rec.has_transcript),
        ColumnId::ParticipantCount => Cell::Number(rec.participants.len() as f64),
        ColumnId::ExternalCallId => text(rec.external_call_id.as_deref()),
        ColumnId::CallChainId => text(rec.call_chain_id.as_deref()),
        ColumnId::CallerName => name(ParticipantRole::Caller),
        ColumnId::CallerNumber => number(ParticipantRole::Caller),
        ColumnId::CallerUri => uri(ParticipantRole::Caller),
        ColumnId::CalleeName => name(ParticipantRole::Callee),
        ColumnId::CalleeNumber => number(ParticipantRole::Callee),
        ColumnId::CalleeUri => uri(ParticipantRole::Callee),
        ColumnId::AnsweredByName => name(ParticipantRole::AnsweredBy),
        ColumnId::AnsweredByNumber => number(ParticipantRole::AnsweredBy),
        ColumnId::AnsweredByUri => uri(ParticipantRole::AnsweredBy),
        ColumnId::RedirectedByName => name(ParticipantRole::RedirectedBy),
        ColumnId::RedirectedToName => name(ParticipantRole::RedirectedTo),
        ColumnId::OrganizerName => name(ParticipantRole::Organizer),
        ColumnId::OrganizerEmail => {
            text(party(r, ParticipantRole::Organizer).and_then(|p| p.email.as_deref()))
        }
        ColumnId::RecordedUsers => joined(
            rec.participants
                .iter()
                .filter(|p| p.recorded_user)
                .map(|p| p.display_name.as_deref()),
        ),
        ColumnId::ParticipantNames => {
            joined(rec.participants.iter().map(|p| p.display_name.as_deref()))
        }
        ColumnId::ParticipantEmails => joined(rec.participants.iter().map(|p| p.email.as_deref())),
        ColumnId::TranscriptMatches => {
            if r.snippets.is_empty() {
                Cell::Empty
            } else {
                Cell::Text(Cow::Owned(r.snippets.join("\n")))
            }
        }
        ColumnId::MediaType => text(rec.media.as_ref().map(|m| m.content_type.as_str())),
        ColumnId::MediaSize => rec
            .media
            .as_ref()
            .map_or(Cell::Empty, |m| Cell::Number(m.plaintext_size as f64)),
        ColumnId::MediaSha256 => text(rec.media.as_ref().map(|m| m.sha256.as_str())),
    }
}

/// `s` cut to Excel's cell limit (on a character boundary).
fn fit(s: &str) -> &str {
    match s.char_indices().nth(EXCEL_MAX_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Writes search results as rows of the chosen columns. Rows must be
/// written in order (constant-memory mode); call
/// [`finish`](XlsxWriter::finish) to produce the file.
pub struct XlsxWriter {
    workbook: Workbook,
    columns: Vec<&'static ColumnSpec>,
    options: WriterOptions,
    header: Format,
    datetime: Format,
    seconds: Format,
    /// Index of the current worksheet.
    sheet: usize,
    /// Next row of the current worksheet.
    row: u32,
    rows: u64,
}

impl XlsxWriter {
    /// A workbook with a header row of `columns` (already checked against
    /// the caller's permissions: the writer writes what it is given).
    pub fn new(columns: &[ColumnId], options: WriterOptions) -> Result<Self, ExportError> {
        if columns.is_empty() {
            return Err(ExportError::NoColumns);
        }
        let mut workbook = Workbook::new();
        if let Some(dir) = &options.tempdir {
            workbook.set_tempdir(dir)?;
        }
        let max_rows_per_sheet = options.max_rows_per_sheet.clamp(2, EXCEL_MAX_ROWS);
        let mut w = Self {
            workbook,
            columns: columns.iter().map(|c| c.spec()).collect(),
            options: WriterOptions {
                max_rows_per_sheet,
                ..options
            },
            header: Format::new().set_bold().set_align(FormatAlign::Top),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            seconds: Format::new().set_num_format("0.000"),
            sheet: 0,
            row: 0,
            rows: 0,
        };
        w.add_sheet(1)?;
        Ok(w)
    }

    /// Adds worksheet number `n` (1-based) with its header row.
    fn add_sheet(&mut self, n: usize) -> Result<(), ExportError> {
        let name = if n == 1 {
            self.options.sheet_name.clone()
        } else {
            format!("{} ({n})", self.options.sheet_name)
        };
        let sheet = self.workbook.add_worksheet_with_constant_memory()?;
        sheet.set_name(name)?;
        for (c, spec) in self.columns.iter().enumerate() {
            let c = col_index(c)?;
            sheet.set_column_width(c, spec.width)?;
            sheet.write_string_with_format(0, c, spec.header, &self.header)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        self.sheet = self.workbook.worksheets().len().saturating_sub(1);
        self.row = 1;
        Ok(())
    }

    /// Appends one row.
    pub fn write(&mut self, r: &RecordingSummary) -> Result<(), ExportError> {
        if self.row >= self.options.max_rows_per_sheet {
            self.add_sheet(self.sheet + 2)?;
        }
        let row = self.row;
        let sheet = self.workbook.worksheet_from_index(self.sheet)?;
        for (c, spec) in self.columns.iter().enumerate() {
            let number_format = (spec.id == ColumnId::Duration).then_some(&self.seconds);
            write_cell(
                sheet,
                row,
                col_index(c)?,
                cell(spec.id, r),
                number_format,
                &self.datetime,
            )?;
        }
        self.row += 1;
        self.rows += 1;
        Ok(())
    }

    /// Rows written so far (headers not counted).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Worksheets so far.
    pub fn sheets(&self) -> usize {
        self.sheet + 1
    }

    /// Writes the finished .xlsx to `out` (streamed: nothing is buffered
    /// whole) and deletes the temp files. Returns the rows written.
    pub fn finish<W: Write + Send>(mut self, out: W) -> Result<u64, ExportError> {
        self.workbook.save_to_writer(out)?;
        Ok(self.rows)
    }
}

fn col_index(c: usize) -> Result<u16, ExportError> {
    u16::try_from(c).map_err(|_| ExportError::TooManyColumns)
}

fn write_cell(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    value: Cell<'_>,
    number_format: Option<&Format>,
    datetime: &Format,
) -> Result<(), ExportError> {
    match value {
        Cell::Empty => {}
        Cell::Text(s) => {
            sheet.write_string(row, col, fit(&s))?;
        }
        Cell::Number(n) => match number_format {
            Some(f) => {
                sheet.write_number_with_format(row, col, n, f)?;
            }
            None => {
                sheet.write_number(row, col, n)?;
            }
        },
        Cell::Bool(b) => {
            sheet.write_boolean(row, col, b)?;
        }
        Cell::DateTime(t) => {
            sheet.write_datetime_with_format(row, col, t.naive_utc(), datetime)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use insights_core::domain::*;

    use super::*;
    use crate::export::columns::{CATALOGUE, CellKind};

    /// A recording with every field and every party role filled.
    fn full() -> RecordingSummary {
        let t = TenantId::new();
        let mut r = Recording::new(t, RecordingKind::Meeting, Direction::Inbound, now());
        r.ended_at = Some(now());
        r.duration_ms = Some(1_234);
        r.result_code = Some("0".into());
        r.external_call_id = Some("call".into());
        r.call_chain_id = Some("chain".into());
        r.media = Some(MediaObject {
            container: "c".into(),
            key: "k".into(),
            byte_size: 10,
            sha256: "ab".repeat(32),
            data_key_id: KeyId::new(),
            content_type: "audio/ogg".into(),
            plaintext_size: 8,
        });
        for (i, role) in ParticipantRole::ALL.iter().enumerate() {
            r.participants.push(Participant {
                id: ParticipantId::new(),
                role: *role,
                display_name: Some(format!("Name {i}")),
                phone_number: Some(format!("+100{i}")),
                uri: Some(format!("sip:p{i}@example.com")),
                email: Some(format!("p{i}@example.com")),
                directory_user_id: None,
                recorded_user: i == 0,
                joined_ms: None,
                left_ms: None,
            });
        }
        RecordingSummary {
            recording: r,
            snippets: vec!["the [[budget]]".into()],
        }
    }

    #[test]
    fn every_column_yields_a_cell_of_its_kind() {
        let r = full();
        for spec in CATALOGUE {
            let ok = matches!(
                (spec.kind, cell(spec.id, &r)),
                (CellKind::Text, Cell::Text(_))
                    | (CellKind::Number, Cell::Number(_))
                    | (CellKind::Bool, Cell::Bool(_))
                    | (CellKind::DateTime, Cell::DateTime(_))
            );
            assert!(ok, "{}: {:?}", spec.id, cell(spec.id, &r));
        }
        assert_eq!(cell(ColumnId::Duration, &r), Cell::Number(1.234));
        assert_eq!(
            cell(ColumnId::ParticipantNames, &r),
            Cell::Text("Name 0; Name 1; Name 2; Name 3; Name 4; Name 5; Name 6".into())
        );
        assert_eq!(
            cell(ColumnId::RecordedUsers, &r),
            Cell::Text("Name 0".into())
        );
        assert_eq!(
            cell(ColumnId::RedirectedToName, &r),
            Cell::Text("Name 4".into())
        );
    }

    #[test]
    fn missing_values_are_empty_cells() {
        let r = RecordingSummary {
            recording: Recording::new(
                TenantId::new(),
                RecordingKind::Call,
                Direction::Unknown,
                now(),
            ),
            snippets: Vec::new(),
        };
        for id in [
            ColumnId::EndedAt,
            ColumnId::Duration,
            ColumnId::CallerName,
            ColumnId::ParticipantNames,
            ColumnId::TranscriptMatches,
            ColumnId::MediaSize,
        ] {
            assert_eq!(cell(id, &r), Cell::Empty, "{id}");
        }
    }

    #[test]
    fn text_is_cut_to_the_cell_limit_on_a_char_boundary() {
        let long = "é".repeat(EXCEL_MAX_CHARS + 10);
        assert_eq!(fit(&long).chars().count(), EXCEL_MAX_CHARS);
        assert_eq!(fit("short"), "short");
    }
}
