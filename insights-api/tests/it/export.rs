//! The Excel export, end to end through a real store: recordings in
//! SQLite, `export_search` to a file, the file read back with calamine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use calamine::{Data, Reader, Xlsx, open_workbook};
use chrono::{DateTime, Duration, TimeZone, Utc};
use insights_api::export::{
    ColumnId, ExportError, ExportProgress, ExportRequest, FieldAccess, WriterOptions, export_search,
};
use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::sqlite::SqliteStore;

async fn store() -> SqliteStore {
    SqliteStore::connect("sqlite::memory:", 1).await.unwrap()
}

async fn tenant(s: &SqliteStore, name: &str) -> TenantId {
    s.create_tenant(NewTenant {
        name: name.into(),
        directory_tenant_id: None,
    })
    .await
    .unwrap()
    .id
}

fn party(
    role: ParticipantRole,
    name: &str,
    number: Option<&str>,
    uri: Option<&str>,
) -> Participant {
    Participant {
        id: ParticipantId::new(),
        role,
        display_name: Some(name.into()),
        phone_number: number.map(Into::into),
        uri: uri.map(Into::into),
        email: None,
        directory_user_id: None,
        recorded_user: role == ParticipantRole::Callee,
        joined_ms: Some(0),
        left_ms: None,
    }
}

fn at(day: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, h, m, s).unwrap()
}

/// Three calls in `t` (and a decoy in another tenant by the caller).
async fn three_calls(s: &SqliteStore, t: TenantId) -> Vec<Recording> {
    let mut out = Vec::new();
    let specs = [
        (
            at(1, 9, 0, 0),
            Direction::Inbound,
            "Alice Ames",
            "+14255550101",
            61_500,
        ),
        (
            at(2, 10, 30, 15),
            Direction::Outbound,
            "Bob Brown",
            "+442079460958",
            5_000,
        ),
        (
            at(3, 23, 59, 59),
            Direction::Internal,
            "Chloé Chen",
            "+4930123456",
            3_600_250,
        ),
    ];
    for (i, (start, dir, caller, number, ms)) in specs.into_iter().enumerate() {
        let mut r = Recording::new(t, RecordingKind::Call, dir, start);
        r.participants = vec![
            party(
                ParticipantRole::Caller,
                caller,
                Some(number),
                Some(&format!("tel:{number}")),
            ),
            party(
                ParticipantRole::Callee,
                "Dana Recorded",
                None,
                Some("sip:dana@contoso.com"),
            ),
        ];
        r.legal_hold = i == 1;
        r.external_call_id = Some(format!("call-{i}"));
        s.insert_recording(t, &r).await.unwrap();
        s.update_recording_status(
            t,
            r.id,
            RecordingStatus::Spooled,
            Some(start + Duration::milliseconds(ms)),
            None,
        )
        .await
        .unwrap();
        if i != 1 {
            let seg = TranscriptSegment {
                id: SegmentId::new(),
                recording_id: r.id,
                participant_id: None,
                start_ms: 1_000,
                end_ms: 4_000,
                text: format!("we need to discuss the budget for quarter {i}"),
                confidence: 0.9,
                language: Some("en".into()),
            };
            s.put_transcript_segments(t, r.id, &[seg]).await.unwrap();
        }
        out.push(s.get_recording(t, r.id).await.unwrap());
    }
    out
}

fn request(t: TenantId, permissions: Vec<Permission>, columns: Vec<ColumnId>) -> ExportRequest {
    ExportRequest {
        tenant: t,
        query: RecordingQuery {
            sort: SortKey::StartedAsc,
            ..RecordingQuery::default()
        },
        columns,
        access: FieldAccess::from_permissions(permissions),
        actor: "acc-7".into(),
        source: Some("192.0.2.1".into()),
        reason: Some("case 12".into()),
    }
}

/// Runs an export into `dir/out.xlsx`; returns the summary and progress.
async fn run(
    s: &SqliteStore,
    req: &ExportRequest,
    options: WriterOptions,
    dir: &Path,
) -> Result<(insights_api::export::ExportSummary, Vec<ExportProgress>), ExportError> {
    let file = std::fs::File::create(dir.join("out.xlsx")).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let summary =
        export_search(s, req, options, file, move |p| sink.lock().unwrap().push(p)).await?;
    let progress = seen.lock().unwrap().clone();
    Ok((summary, progress))
}

/// Every worksheet of the file: (name, rows of cells).
fn read_back(path: &Path) -> Vec<(String, Vec<Vec<Data>>)> {
    let mut wb: Xlsx<_> = open_workbook(path).unwrap();
    let names = wb.sheet_names().to_vec();
    names
        .into_iter()
        .map(|n| {
            let range = wb.worksheet_range(&n).unwrap();
            let rows = range.rows().map(|r| r.to_vec()).collect();
            (n, rows)
        })
        .collect()
}

fn s(v: &str) -> Data {
    Data::String(v.into())
}

fn date(d: &Data) -> chrono::NaiveDateTime {
    match d {
        Data::DateTime(x) => x.as_datetime().unwrap(),
        other => panic!("not a date: {other:?}"),
    }
}

#[tokio::test]
async fn the_file_has_exactly_the_chosen_columns_and_rows() {
    let st = store().await;
    let t = tenant(&st, "contoso").await;
    let other = tenant(&st, "fabrikam").await;
    let recs = three_calls(&st, t).await;
    three_calls(&st, other).await;
    let dir = tempfile::tempdir().unwrap();

    let columns = vec![
        ColumnId::StartedAt,
        ColumnId::Duration,
        ColumnId::Direction,
        ColumnId::CallerName,
        ColumnId::CallerNumber,
        ColumnId::CallerUri,
        ColumnId::CalleeName,
        ColumnId::RecordedUsers,
        ColumnId::LegalHold,
        ColumnId::ParticipantCount,
        ColumnId::ExternalCallId,
        ColumnId::RecordingId,
    ];
    let req = request(t, Role::TenantAdmin.default_permissions(), columns.clone());
    let (summary, progress) = run(&st, &req, WriterOptions::default(), dir.path())
        .await
        .unwrap();
    assert_eq!(summary.rows, 3);
    assert_eq!(summary.columns, columns);
    assert!(summary.omitted.is_empty());
    assert_eq!(
        progress,
        vec![ExportProgress {
            rows_written: 3,
            total: 3
        }]
    );

    let sheets = read_back(&dir.path().join("out.xlsx"));
    assert_eq!(sheets.len(), 1);
    let (name, rows) = &sheets[0];
    assert_eq!(name, "Recordings");
    assert_eq!(rows.len(), 4, "header + one row per recording, no more");
    assert_eq!(
        rows[0],
        [
            "Start (UTC)",
            "Duration (s)",
            "Direction",
            "Caller name",
            "Caller number",
            "Caller URI",
            "Callee name",
            "Recorded users",
            "Legal hold",
            "Participants",
            "Call ID",
            "Recording ID"
        ]
        .map(s)
        .to_vec()
    );
    let want = [
        (
            "2026-03-01T09:00:00",
            61.5,
            "inbound",
            "Alice Ames",
            "+14255550101",
        ),
        (
            "2026-03-02T10:30:15",
            5.0,
            "outbound",
            "Bob Brown",
            "+442079460958",
        ),
        (
            "2026-03-03T23:59:59",
            3600.25,
            "internal",
            "Chloé Chen",
            "+4930123456",
        ),
    ];
    for (i, (row, (start, secs, dir, caller, number))) in rows[1..].iter().zip(want).enumerate() {
        assert_eq!(row.len(), columns.len());
        assert_eq!(date(&row[0]).format("%Y-%m-%dT%H:%M:%S").to_string(), start);
        assert_eq!(row[1], Data::Float(secs), "duration in seconds");
        assert_eq!(row[2], s(dir));
        assert_eq!(row[3], s(caller));
        assert_eq!(row[4], s(number), "numbers stay text: the + is kept");
        assert_eq!(row[5], s(&format!("tel:{number}")));
        assert_eq!(row[6], s("Dana Recorded"));
        assert_eq!(row[7], s("Dana Recorded"));
        assert_eq!(row[8], Data::Bool(i == 1));
        assert_eq!(row[9], Data::Float(2.0));
        assert_eq!(row[10], s(&format!("call-{i}")));
        assert_eq!(row[11], s(&recs[i].id.to_string()));
    }
}

#[tokio::test]
async fn transcript_matches_follow_the_search() {
    let st = store().await;
    let t = tenant(&st, "contoso").await;
    three_calls(&st, t).await;
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(
        t,
        Role::TenantAdmin.default_permissions(),
        vec![ColumnId::CallerName, ColumnId::TranscriptMatches],
    );
    req.query.transcript_text = Some("budget".into());
    let (summary, _) = run(&st, &req, WriterOptions::default(), dir.path())
        .await
        .unwrap();
    assert_eq!(summary.rows, 2);
    let sheets = read_back(&dir.path().join("out.xlsx"));
    let rows = &sheets[0].1;
    assert_eq!(rows.len(), 3);
    for (row, (name, i)) in rows[1..].iter().zip([("Alice Ames", 0), ("Chloé Chen", 2)]) {
        assert_eq!(row[0], s(name));
        let Data::String(snippet) = &row[1] else {
            panic!("{row:?}")
        };
        assert!(snippet.contains("[[budget]]"), "{snippet}");
        assert!(snippet.contains(&format!("quarter {i}")), "{snippet}");
    }
}

#[tokio::test]
async fn columns_the_role_may_not_see_are_left_out_and_listed() {
    let st = store().await;
    let t = tenant(&st, "contoso").await;
    three_calls(&st, t).await;
    let chosen = vec![
        ColumnId::StartedAt,
        ColumnId::CallerName,
        ColumnId::CallerNumber,
        ColumnId::TranscriptMatches,
        ColumnId::MediaSha256,
        ColumnId::Direction,
    ];

    // A profile that may search and export, nothing more.
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(
        t,
        vec![Permission::Search, Permission::Export],
        chosen.clone(),
    );
    // Transcript words in the search need view-transcript (issue 13).
    req.query.transcript_text = Some("budget".into());
    assert!(matches!(
        run(&st, &req, WriterOptions::default(), dir.path()).await,
        Err(ExportError::TranscriptSearchNotPermitted)
    ));
    req.query.transcript_text = None;
    let (summary, _) = run(&st, &req, WriterOptions::default(), dir.path())
        .await
        .unwrap();
    assert_eq!(summary.columns, [ColumnId::StartedAt, ColumnId::Direction]);
    assert_eq!(
        summary.omitted,
        [
            ColumnId::CallerName,
            ColumnId::CallerNumber,
            ColumnId::TranscriptMatches,
            ColumnId::MediaSha256
        ]
    );
    let sheets = read_back(&dir.path().join("out.xlsx"));
    let rows = &sheets[0].1;
    assert_eq!(rows[0], [s("Start (UTC)"), s("Direction")]);
    // Without the words, every one of the three calls is a row.
    assert_eq!(rows.len(), 4);
    for row in rows {
        assert_eq!(row.len(), 2);
        for c in row {
            let text = c.to_string();
            for secret in ["Alice", "Chloé", "+1425", "budget"] {
                assert!(!text.contains(secret), "{secret} leaked: {row:?}");
            }
        }
    }
    // The omission is on the audit record of the export.
    let ev = st
        .list_audit(t, &AuditQuery::default())
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(ev.seq, summary.audit_seq);
    assert_eq!(ev.action, AuditAction::Export);
    assert_eq!(ev.actor, "acc-7");
    assert_eq!(ev.source.as_deref(), Some("192.0.2.1"));
    assert_eq!(ev.reason.as_deref(), Some("case 12"));
    assert_eq!(
        ev.details["columns"],
        serde_json::json!(["started-at", "direction"])
    );
    assert_eq!(
        ev.details["omitted"],
        serde_json::json!([
            "caller-name",
            "caller-number",
            "transcript-matches",
            "media-sha256"
        ])
    );
    // The filters' names only, never their values (issue 13).
    assert_eq!(ev.details["filters"], serde_json::json!([]));
    assert!(ev.details.get("query").is_none(), "{}", ev.details);

    // A DPO keeps personal data and transcript words but not media details.
    let dir = tempfile::tempdir().unwrap();
    let req = request(t, Role::Dpo.default_permissions(), chosen);
    let (summary, _) = run(&st, &req, WriterOptions::default(), dir.path())
        .await
        .unwrap();
    assert_eq!(summary.omitted, [ColumnId::MediaSha256]);
    assert_eq!(
        read_back(&dir.path().join("out.xlsx"))[0].1[0],
        [
            "Start (UTC)",
            "Caller name",
            "Caller number",
            "Transcript matches",
            "Direction"
        ]
        .map(s)
        .to_vec()
    );
}

#[tokio::test]
async fn refused_exports_write_nothing() {
    let st = store().await;
    let t = tenant(&st, "contoso").await;
    three_calls(&st, t).await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            Role::Supervisor.default_permissions(),
            vec![ColumnId::StartedAt],
        ),
        (Role::TenantAdmin.default_permissions(), vec![]),
        (
            Role::TenantAdmin.default_permissions(),
            vec![ColumnId::Kind, ColumnId::Kind],
        ),
        (
            vec![Permission::Export],
            vec![ColumnId::CallerName, ColumnId::MediaType],
        ),
    ];
    let mut errors = Vec::new();
    for (perms, cols) in cases {
        let req = request(t, perms, cols);
        errors.push(
            run(&st, &req, WriterOptions::default(), dir.path())
                .await
                .err()
                .map(|e| e.to_string()),
        );
    }
    assert_eq!(
        errors,
        [
            Some("exports are not permitted for this profile".to_owned()),
            Some("no column was chosen".to_owned()),
            Some("export column `kind` is chosen twice".to_owned()),
            Some("none of the chosen columns may be exported with this profile".to_owned()),
        ]
    );
    assert!(
        st.list_audit(t, &AuditQuery::default())
            .await
            .unwrap()
            .is_empty(),
        "a refused request reads nothing and so audits nothing"
    );
}

#[tokio::test]
async fn large_exports_page_report_progress_and_roll_over_sheets() {
    let st = store().await;
    let t = tenant(&st, "contoso").await;
    let start = at(1, 0, 0, 0);
    let n = 1_203;
    let mut ids = Vec::new();
    for i in 0..n {
        let mut r = Recording::new(
            t,
            RecordingKind::Meeting,
            Direction::Internal,
            start + Duration::seconds(i),
        );
        r.participants = vec![party(
            ParticipantRole::Organizer,
            &format!("Org {i}"),
            None,
            None,
        )];
        st.insert_recording(t, &r).await.unwrap();
        ids.push(r.id.to_string());
    }
    let dir = tempfile::tempdir().unwrap();
    let req = request(
        t,
        Role::TenantAdmin.default_permissions(),
        vec![
            ColumnId::RecordingId,
            ColumnId::OrganizerName,
            ColumnId::EndedAt,
        ],
    );
    let options = WriterOptions {
        max_rows_per_sheet: 501,
        ..WriterOptions::default()
    };
    let (summary, progress) = run(&st, &req, options, dir.path()).await.unwrap();
    assert_eq!(summary.rows, n as u64);
    assert_eq!(summary.sheets, 3);
    assert_eq!(
        progress.iter().map(|p| p.rows_written).collect::<Vec<_>>(),
        [500, 1000, 1203]
    );
    assert!(progress.iter().all(|p| p.total == n as u64));

    let sheets = read_back(&dir.path().join("out.xlsx"));
    assert_eq!(
        sheets
            .iter()
            .map(|(n, r)| (n.as_str(), r.len()))
            .collect::<Vec<_>>(),
        [
            ("Recordings", 501),
            ("Recordings (2)", 501),
            ("Recordings (3)", 204)
        ]
    );
    let mut seen = Vec::new();
    for (_, rows) in &sheets {
        assert_eq!(
            rows[0],
            [s("Recording ID"), s("Organizer name"), s("End (UTC)")]
        );
        for row in &rows[1..] {
            let Data::String(id) = &row[0] else {
                panic!("{row:?}")
            };
            assert_eq!(row[1], s(&format!("Org {}", seen.len())));
            // No end time: an empty cell, not a zero date.
            assert!(row.len() < 3 || row[2] == Data::Empty, "{row:?}");
            seen.push(id.clone());
        }
    }
    assert_eq!(seen, ids, "every recording once, in search order");
}
