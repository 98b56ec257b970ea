//! The completeness report as an Excel workbook: a "Summary" sheet
//! (totals and coverage per day) and a "Calls" sheet (one row per call:
//! ids, times, status, coverage, reason or rule, gaps, recordings). Ids,
//! times and figures only, like the report itself.

use chrono::{DateTime, Utc};
use insights_core::domain::{CallCompleteness, CompletenessTotals};
use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::per_day;

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn pct(permille: u32) -> f64 {
    f64::from(permille) / 10.0
}

/// The workbook of `calls` over `[from, to)`.
pub fn workbook(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    calls: &[CallCompleteness],
) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let totals = CompletenessTotals::of(calls);
    {
        let ws = wb.add_worksheet();
        ws.set_name("Summary")?;
        let rows: [(&str, String); 3] = [
            ("Period from (UTC)", when(from)),
            ("Period to (UTC)", when(to)),
            ("Generated (UTC)", when(insights_core::domain::now())),
        ];
        let mut r = 0u32;
        for (k, v) in rows {
            ws.write_string_with_format(r, 0, k, &bold)?;
            ws.write_string(r, 1, v)?;
            r += 1;
        }
        r += 1;
        let header = [
            "Day (UTC)",
            "Calls",
            "In scope",
            "Recorded",
            "Partial",
            "Not recorded",
            "Out of scope",
            "Coverage %",
        ];
        for (c, h) in header.iter().enumerate() {
            ws.write_string_with_format(r, c as u16, *h, &bold)?;
        }
        let line = |ws: &mut rust_xlsxwriter::Worksheet,
                    r: u32,
                    label: String,
                    t: &CompletenessTotals|
         -> Result<(), XlsxError> {
            ws.write_string(r, 0, label)?;
            for (c, n) in [
                t.calls,
                t.in_scope,
                t.recorded,
                t.partial,
                t.not_recorded,
                t.out_of_scope,
            ]
            .into_iter()
            .enumerate()
            {
                ws.write_number(r, (c + 1) as u16, f64::from(n))?;
            }
            ws.write_number(r, 7, pct(t.coverage_permille))?;
            Ok(())
        };
        for d in per_day(calls) {
            r += 1;
            line(ws, r, d.day.to_string(), &d.totals)?;
        }
        r += 1;
        line(ws, r, "Total".into(), &totals)?;
        ws.set_column_width(0, 20)?;
    }
    {
        let ws = wb.add_worksheet();
        ws.set_name("Calls")?;
        let header = [
            "Call id",
            "Type",
            "Started (UTC)",
            "Ended (UTC)",
            "Status",
            "Coverage %",
            "Reason",
            "Result code",
            "Out-of-scope rule",
            "Rule id",
            "Gaps (from–to UTC, reason)",
            "Recording ids",
            "Directory user ids",
        ];
        for (c, h) in header.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, *h, &bold)?;
        }
        for (i, c) in calls.iter().enumerate() {
            let r = (i + 1) as u32;
            ws.write_string(r, 0, &c.call_id)?;
            ws.write_string(r, 1, &c.call_type)?;
            ws.write_string(r, 2, when(c.started_at))?;
            ws.write_string(r, 3, when(c.ended_at))?;
            ws.write_string(r, 4, c.status.as_str())?;
            if c.in_scope() {
                ws.write_number(r, 5, pct(c.coverage_permille))?;
            }
            let gap_reason = c.reason.or_else(|| c.gaps.first().map(|g| g.reason));
            if let Some(g) = gap_reason {
                ws.write_string(r, 6, g.as_str())?;
            }
            if let Some(s) = &c.result_code {
                ws.write_string(r, 7, s)?;
            }
            if let Some(s) = &c.rule {
                ws.write_string(r, 8, s)?;
            }
            if let Some(id) = c.rule_id {
                ws.write_string(r, 9, id.to_string())?;
            }
            let gaps: Vec<String> = c
                .gaps
                .iter()
                .map(|g| format!("{}–{} {}", when(g.from), when(g.to), g.reason))
                .collect();
            ws.write_string(r, 10, gaps.join("; "))?;
            let recs: Vec<String> = c.recording_ids.iter().map(|r| r.to_string()).collect();
            ws.write_string(r, 11, recs.join(" "))?;
            let users: Vec<String> = c.user_ids.iter().map(|u| u.0.to_string()).collect();
            ws.write_string(r, 12, users.join(" "))?;
        }
        ws.set_column_width(0, 38)?;
        ws.set_column_width(10, 50)?;
    }
    wb.save_to_buffer()
}
