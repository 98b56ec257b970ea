//! Excel export of 1 million rows: our `XlsxWriter` (catalogue columns,
//! per-cell dispatch, formats) against plain `rust_xlsxwriter` writing
//! the same cells by hand, both in constant-memory mode, to a file.
//!
//! `cargo bench -p insights-api --bench export`
//!
//! Each path runs in a child process of its own (this binary, re-run),
//! so its peak memory (`VmHWM` from /proc/self/status) is its own. Both
//! cycle through the same 10 000 synthetic recordings
//! (`insights_tests::synth`, seed 42) and write the 17 default columns
//! (the seed's parties by role plus the basics): 17 million cells. Rounds
//! alternate the order of the two paths; the best time of each counts.
//! Before timing, both paths write 2 000 rows and the files are read back
//! and compared cell by cell: the baseline really writes the same cells.
//!
//! Environment: `EXPORT_BENCH_ROWS` (default 1 000 000),
//! `EXPORT_BENCH_ROUNDS` (default 3).

use std::error::Error;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use calamine::{Data, Reader, Xlsx, open_workbook};
use insights_api::export::{DEFAULT_COLUMNS, WriterOptions, XlsxWriter};
use insights_core::domain::{ParticipantRole, RecordingSummary, TenantId};
use insights_tests::synth::Generator;
use rust_xlsxwriter::{Format, FormatAlign, Workbook};

type Res<T> = Result<T, Box<dyn Error>>;

const POOL: usize = 10_000;
const CHILD_ENV: &str = "INSIGHTS_EXPORT_BENCH_CHILD";

fn pool() -> Vec<RecordingSummary> {
    let g = Generator::new(TenantId(uuid::Uuid::nil()), 42, POOL as u64);
    (0..POOL as u64)
        .map(|i| RecordingSummary {
            recording: g.recording(i).recording,
            snippets: Vec::new(),
        })
        .collect()
}

/// Ours: the export writer with the default columns.
fn ours(pool: &[RecordingSummary], rows: usize, dir: &Path, out: &Path) -> Res<()> {
    let mut w = XlsxWriter::new(
        DEFAULT_COLUMNS,
        WriterOptions {
            tempdir: Some(dir.to_path_buf()),
            ..WriterOptions::default()
        },
    )?;
    for i in 0..rows {
        w.write(&pool[i % pool.len()])?;
    }
    w.finish(std::fs::File::create(out)?)?;
    Ok(())
}

/// Baseline: the same cells written by hand with rust_xlsxwriter.
fn raw(pool: &[RecordingSummary], rows: usize, dir: &Path, out: &Path) -> Res<()> {
    let mut wb = Workbook::new();
    wb.set_tempdir(dir)?;
    let header = Format::new().set_bold().set_align(FormatAlign::Top);
    let dt = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let secs = Format::new().set_num_format("0.000");
    let ws = wb.add_worksheet_with_constant_memory()?;
    ws.set_name("Recordings")?;
    for (c, id) in DEFAULT_COLUMNS.iter().enumerate() {
        let spec = id.spec();
        ws.set_column_width(c as u16, spec.width)?;
        ws.write_string_with_format(0, c as u16, spec.header, &header)?;
    }
    ws.set_freeze_panes(1, 0)?;
    for i in 0..rows {
        let r = &pool[i % pool.len()].recording;
        let row = i as u32 + 1;
        let party = |role| r.participants.iter().find(|p| p.role == role);
        let text = |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
        ws.write_datetime_with_format(row, 0, r.started_at.naive_utc(), &dt)?;
        if let Some(ms) = r.duration_ms {
            ws.write_number_with_format(row, 1, ms as f64 / 1000.0, &secs)?;
        }
        ws.write_string(row, 2, r.direction.as_str())?;
        ws.write_string(row, 3, r.kind.as_str())?;
        for (col, role) in [
            (4, ParticipantRole::Caller),
            (7, ParticipantRole::Callee),
            (10, ParticipantRole::AnsweredBy),
        ] {
            if let Some(p) = party(role) {
                for (k, v) in [&p.display_name, &p.phone_number, &p.uri]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(v) = text(v) {
                        ws.write_string(row, col + k as u16, v)?;
                    }
                }
            }
        }
        for (col, role) in [
            (13, ParticipantRole::RedirectedBy),
            (14, ParticipantRole::RedirectedTo),
        ] {
            if let Some(v) = party(role).and_then(|p| text(&p.display_name)) {
                ws.write_string(row, col, v)?;
            }
        }
        ws.write_string(row, 15, r.status.as_str())?;
        ws.write_string(row, 16, r.id.to_string())?;
    }
    wb.save_to_writer(std::fs::File::create(out)?)?;
    Ok(())
}

fn vm_hwm_kb() -> Res<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmHWM")?.parse()?)
}

/// In a child: builds the pool, then times one path.
fn child(mode: &str, rows: usize) -> Res<()> {
    let pool = pool();
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out.xlsx");
    let start = Instant::now();
    match mode {
        "ours" => ours(&pool, rows, dir.path(), &out)?,
        "raw" => raw(&pool, rows, dir.path(), &out)?,
        _ => return Err(format!("unknown mode {mode}").into()),
    }
    let secs = start.elapsed().as_secs_f64();
    let size = std::fs::metadata(&out)?.len();
    println!("{secs} {} {size}", vm_hwm_kb()?);
    Ok(())
}

fn cells(path: &Path) -> Res<Vec<Vec<Data>>> {
    let mut wb: Xlsx<_> = open_workbook(path)?;
    let range = wb.worksheet_range("Recordings")?;
    Ok(range.rows().map(|r| r.to_vec()).collect())
}

/// Both paths write the same cells (checked on 2 000 rows).
fn same_cells() -> Res<()> {
    let pool = pool();
    let dir = tempfile::tempdir()?;
    let (a, b) = (dir.path().join("a.xlsx"), dir.path().join("b.xlsx"));
    ours(&pool, 2_000, dir.path(), &a)?;
    raw(&pool, 2_000, dir.path(), &b)?;
    let (a, b) = (cells(&a)?, cells(&b)?);
    if a.len() != 2_001 || a != b {
        return Err("the baseline does not write the same cells as ours".into());
    }
    Ok(())
}

fn main() -> Res<()> {
    let rows: usize = std::env::var("EXPORT_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        return child(&mode, rows);
    }
    let rounds: usize = std::env::var("EXPORT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    same_cells()?;
    println!(
        "export of {rows} rows x {} columns, constant memory, best of {rounds} rounds",
        DEFAULT_COLUMNS.len()
    );
    let exe = std::env::current_exe()?;
    // (best seconds, peak kB, file bytes) per path.
    let mut best = [(f64::MAX, 0u64, 0u64); 2];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let mode = ["raw", "ours"][k];
            let out = Command::new(&exe)
                .env(CHILD_ENV, mode)
                .env("EXPORT_BENCH_ROWS", rows.to_string())
                .output()?;
            if !out.status.success() {
                return Err(format!(
                    "{mode} child failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            let text = String::from_utf8(out.stdout)?;
            let mut f = text.split_whitespace();
            let secs: f64 = f.next().ok_or("no time")?.parse()?;
            let hwm: u64 = f.next().ok_or("no memory")?.parse()?;
            let size: u64 = f.next().ok_or("no size")?.parse()?;
            eprintln!(
                "round {round}: {mode:<4} {secs:8.3} s  peak {:6.1} MB",
                hwm as f64 / 1024.0
            );
            let b = &mut best[k];
            b.0 = b.0.min(secs);
            b.1 = b.1.max(hwm);
            b.2 = size;
        }
    }
    println!(
        "{:<44} {:>9} {:>10} {:>12} {:>11} {:>8}",
        "path", "time s", "rows/s", "peak MB", "file MB", "vs raw"
    );
    for (k, name) in [
        "(a) raw rust_xlsxwriter, same cells",
        "(b) ours: XlsxWriter, catalogue columns",
    ]
    .iter()
    .enumerate()
    {
        let (secs, hwm, size) = best[k];
        println!(
            "{name:<44} {secs:>9.3} {:>10.0} {:>12.1} {:>11.1} {:>8.3}",
            rows as f64 / secs,
            hwm as f64 / 1024.0,
            size as f64 / 1e6,
            secs / best[0].0
        );
    }
    println!(
        "ratio ours/raw: {:.3} (goal <= 1.3); peak memory ours: {:.1} MB (goal < 150 MB)",
        best[1].0 / best[0].0,
        best[1].1 as f64 / 1024.0
    );
    Ok(())
}
