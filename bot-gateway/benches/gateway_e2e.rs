//! Gateway capacity end to end, through the real binary: how many
//! concurrent real-time calls one core of `insights gateway` records, next
//! to the in-process ingest pipeline and raw libopus on the same audio,
//! measured in the same run.
//!
//! ```text
//! cargo build --release -p insights --no-default-features --bin insights
//! cargo bench -p bot-gateway --bench gateway_e2e
//! ```
//!
//! The bench starts `<target>/release/insights gateway` (or `$INSIGHTS_BIN`)
//! on embedded defaults (SQLite, local blob folder, local key file) in a
//! temporary data dir, with the simulator key trusted, and drives
//! `GATEWAY_E2E_CALLS` (default 60) concurrent calls of
//! `GATEWAY_E2E_SECONDS` (default 15.7) of speech per party, in real
//! time, from a load driver in this process: each call is a
//! [`SimulatedCall`] (webhook invite signed with the simulator key, state
//! and roster notifications, the `insights-media/1` WebSocket with the
//! media adapter token, `end`, hang-up). Calls start spread over
//! `GATEWAY_E2E_RAMP_MS` (default 2000). It waits until every recording's
//! status is `stored` (polled in the metadata store every 25 ms).
//!
//! Figures (the driver's CPU is not counted):
//!
//! * server CPU seconds: `utime + stime` of the gateway process from
//!   `/proc/<pid>/stat`, from just before the first call until the last
//!   recording is stored; per thread group name, from `/proc/<pid>/task`.
//! * calls per core = call-seconds / server CPU seconds
//!   (N × duration / CPU s; e.g. 60 calls × 15.7 s per 8.8 CPU s ≈ 107);
//!   for meetings, meetings per core.
//! * the in-process pipeline ((b+) of `ingest_pipeline`: messages →
//!   recorder → spool with a sync every 500 ms of audio; process CPU) and
//!   raw libopus (two mono encoders) on the same audio, and the ratios.
//! * peak RSS (`VmHWM`) and (peak − RSS before the first call) / N.
//! * p50/p99/max of the time from a call's last audio message to its
//!   recording being `stored`.
//!
//! Variants (`GATEWAY_E2E_VARIANTS`, comma-separated, default all):
//! `pcm` (two-party call, PCM from the adapter, encoded by the gateway),
//! `opus` (two-party call, 20 ms Opus packets stored without re-encoding;
//! the in-process figure is the pass-through pipeline (d)), `meeting`
//! (four participants, unmixed audio: a mix and one track per speaker).
//!
//! `GATEWAY_E2E_SOAK_SECS` > 0 adds a soak: calls started continuously
//! (keeping `GATEWAY_E2E_CALLS` running) for that long, with the RSS after
//! the first minute (or first quarter) against the RSS at the end.
//!
//! `GATEWAY_E2E_PERF=<file>` records a `perf` profile (cpu-clock, DWARF
//! call graphs) of the gateway process over each variant's measured span
//! into `<file>.<variant>` (`perf report -i <file>.pcm`).
//!
//! The machine may be shared with other work: CPU time is what the
//! process used, but caches and frequency are shared; compare figures
//! from the same run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bot_gateway::ingest::protocol::Encoding;
use bot_gateway::simulator::{SimParticipant, SimulatedCall, TokenSource};
use bot_gateway::spool::{Spool, SpoolConfig};
use common::{FRAME_MS, Res, adapter_messages, adapter_opus_messages, baseline, ours, ours_opus};
use cpu_time::ProcessTime;
use insights_core::config::{Overrides, Settings};
use insights_core::crypto::{KeyProvider, LocalKeyFile};
use insights_core::domain::{RecordingId, RecordingStatus, TenantId};
use recorder::{FRAME_SAMPLES, RecorderConfig, SAMPLE_RATE};

const TENANT: &str = "bench";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Pcm,
    Opus,
    Meeting,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Pcm => "two-party, PCM in",
            Variant::Opus => "two-party, Opus in (pass-through)",
            Variant::Meeting => "meeting, 4 participants, PCM in",
        }
    }
}

fn main() -> Res<()> {
    let calls: usize = env_or("GATEWAY_E2E_CALLS", 60);
    let seconds: f64 = env_or("GATEWAY_E2E_SECONDS", 15.7);
    let ramp = Duration::from_millis(env_or("GATEWAY_E2E_RAMP_MS", 2000));
    let soak_secs: u64 = env_or("GATEWAY_E2E_SOAK_SECS", 0);
    let pipeline_rounds: usize = env_or("GATEWAY_E2E_PIPELINE_CALLS", calls.clamp(10, 40));
    let variants: Vec<Variant> = std::env::var("GATEWAY_E2E_VARIANTS")
        .unwrap_or_else(|_| "pcm,opus,meeting".into())
        .split(',')
        .filter_map(|v| match v.trim() {
            "pcm" => Some(Variant::Pcm),
            "opus" => Some(Variant::Opus),
            "meeting" => Some(Variant::Meeting),
            "" => None,
            other => {
                eprintln!("unknown variant `{other}` ignored (pcm, opus, meeting)");
                None
            }
        })
        .collect();
    let bin = find_binary()?;
    let clk_tck = clock_ticks()?;

    // The audio: `seconds` of speech per party; the other parties hear
    // the same speech shifted, so the sides differ.
    let frames = ((seconds * 1000.0) as usize / FRAME_MS).max(1);
    let (speech, source) = recorder::test_signal::speech(seconds.ceil() as usize + 8)?;
    let party = |shift_s: f64| -> Vec<i16> {
        let shift = (shift_s * f64::from(SAMPLE_RATE)) as usize % speech.len();
        speech[shift..]
            .iter()
            .chain(&speech[..shift])
            .copied()
            .take(frames * FRAME_SAMPLES)
            .collect()
    };
    let a = party(0.0);
    let b = party(7.3);
    let call_s = frames as f64 * FRAME_MS as f64 / 1000.0;

    println!("gateway end-to-end capacity benchmark");
    println!(
        "binary: {} (insights gateway, embedded defaults, temporary data dir)",
        bin.display()
    );
    println!(
        "load: {calls} concurrent calls x {call_s:.2} s of 16 kHz speech per party in real time, started over {} ms ({source})",
        ramp.as_millis()
    );
    println!("libopus: {}", opus::version());
    println!(
        "machine: {} logical CPUs (shared: other processes may run; CPU time is per process)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();

    // In-process figures on the same audio, before the server runs.
    let inproc = in_process(&a, &b, pipeline_rounds)?;
    let per_core = |cpu: f64, n: usize| n as f64 * call_s / cpu;
    println!(
        "in process, {pipeline_rounds} calls of the same audio, process CPU (as ingest_pipeline):"
    );
    println!(
        "  (a) raw libopus, 2 mono encoders:        {:>8.3} s  {:>7.0} calls/core",
        inproc.libopus,
        per_core(inproc.libopus, pipeline_rounds)
    );
    println!(
        "  (b+) pipeline: msgs->recorder->spool:    {:>8.3} s  {:>7.0} calls/core  ({:.2}x libopus)",
        inproc.pipeline,
        per_core(inproc.pipeline, pipeline_rounds),
        inproc.pipeline / inproc.libopus
    );
    println!(
        "  (d) Opus pass-through pipeline:          {:>8.3} s  {:>7.0} calls/core  ({:>7.0} streams/core)",
        inproc.passthrough,
        per_core(inproc.passthrough, pipeline_rounds),
        2.0 * per_core(inproc.passthrough, pipeline_rounds)
    );
    println!();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for v in variants {
        let parties: Vec<Vec<i16>> = match v {
            Variant::Meeting => vec![a.clone(), b.clone(), party(3.1), party(11.9)],
            _ => vec![a.clone(), b.clone()],
        };
        let r = rt.block_on(run_variant(
            &bin,
            clk_tck,
            v,
            &parties,
            calls,
            ramp,
            Duration::ZERO,
        ))?;
        print_run(v.name(), &r, calls, calls, call_s);
        results.push((v, r));
    }
    if soak_secs > 0 {
        let r = rt.block_on(run_variant(
            &bin,
            clk_tck,
            Variant::Pcm,
            &[a.clone(), b.clone()],
            calls,
            ramp,
            Duration::from_secs(soak_secs),
        ))?;
        let done = r.stored_calls;
        print_run("soak: two-party, PCM in", &r, done, calls, call_s);
        if let (Some(early), Some(end)) = (r.rss_early, r.rss_end) {
            println!(
                "  RSS after the first minute (or quarter) {:.1} MiB, at the end {:.1} MiB: {:+.1} %",
                mib(early),
                mib(end),
                (end as f64 / early as f64 - 1.0) * 100.0
            );
        }
        println!();
    }

    // Summary.
    println!("summary (server CPU = utime+stime of the gateway process)");
    println!(
        "{:<36} | {:>9} | {:>10} | {:>10} | {:>9} | {:>9} | {:>8} | {:>8}",
        "path", "CPU s", "calls/core", "vs in-proc", "vs opus", "peak MiB", "KiB/call", "p99 s"
    );
    let base_pcm = per_core(inproc.pipeline, pipeline_rounds);
    let base_pt = per_core(inproc.passthrough, pipeline_rounds);
    let opus_floor = per_core(inproc.libopus, pipeline_rounds);
    for (v, r) in &results {
        let ours = per_core(r.cpu_s, calls);
        let (vs_inproc, vs_opus) = match v {
            Variant::Pcm => (
                format!("{:.2}x", ours / base_pcm),
                format!("{:.2}x", opus_floor / ours),
            ),
            Variant::Opus => (format!("{:.2}x", ours / base_pt), "-".into()),
            Variant::Meeting => ("-".into(), "-".into()),
        };
        println!(
            "{:<36} | {:>9.2} | {:>10.0} | {:>10} | {:>9} | {:>9.1} | {:>8.0} | {:>8.3}",
            v.name(),
            r.cpu_s,
            ours,
            vs_inproc,
            vs_opus,
            mib(r.peak_rss),
            r.peak_rss.saturating_sub(r.rss_before) as f64 / 1024.0 / calls as f64,
            r.p99,
        );
    }
    println!(
        "(calls/core = call-seconds per server CPU second; vs in-proc = ours / in-process pipeline's calls/core (goal >= 0.8); vs opus = our cost / raw libopus cost (goal <= 1.5))"
    );
    for (v, r) in &results {
        match v {
            Variant::Pcm => {
                let ours = per_core(r.cpu_s, calls);
                println!(
                    "goal >= 0.8x the in-process pipeline's calls per core: {:.2}x -> {}",
                    ours / base_pcm,
                    verdict(ours / base_pcm >= 0.8)
                );
                let kib = r.peak_rss.saturating_sub(r.rss_before) as f64 / 1024.0 / calls as f64;
                println!(
                    "goal <= 1 MiB RSS per concurrent call: {kib:.0} KiB -> {}",
                    verdict(kib <= 1024.0)
                );
            }
            Variant::Opus => {
                let streams = 2.0 * per_core(r.cpu_s, calls);
                println!(
                    "goal >= 2000 streams per core with Opus input: {streams:.0} -> {}",
                    verdict(streams >= 2000.0)
                );
            }
            Variant::Meeting => {}
        }
    }
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn mib(b: u64) -> f64 {
    b as f64 / 1024.0 / 1024.0
}

/// `$INSIGHTS_BIN`, else `insights` next to this bench's `deps` folder
/// (`<target>/release/insights`).
fn find_binary() -> Res<PathBuf> {
    if let Some(p) = std::env::var_os("INSIGHTS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target folder")?;
    let bin = dir.join("insights");
    if !bin.exists() {
        return Err(format!(
            "{} not found: build it first with `cargo build --release -p insights --no-default-features --bin insights` (same CARGO_TARGET_DIR), or set INSIGHTS_BIN",
            bin.display()
        )
        .into());
    }
    let bench_age = std::fs::metadata(&exe)?.modified()?;
    let bin_age = std::fs::metadata(&bin)?.modified()?;
    if bin_age < bench_age {
        eprintln!(
            "note: {} is older than this bench: rebuild it if bot-gateway changed",
            bin.display()
        );
    }
    Ok(bin)
}

fn clock_ticks() -> Res<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// utime + stime of a process (or a thread: `/proc/<pid>/task/<tid>`), s.
fn cpu_of(stat_path: &Path, clk: f64) -> Option<(String, f64)> {
    let s = std::fs::read_to_string(stat_path).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_owned();
    let f: Vec<&str> = s[close + 2..].split(' ').collect();
    // Fields after the comm: state is 0; utime is field 14 overall = 11 here.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / clk))
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
        * 1024
}

/// CPU seconds per thread name (numbers folded: `tokio-runtime-w`,
/// `actix-rt|system`), threads alive now.
fn threads_cpu(pid: u32, clk: f64) -> HashMap<String, f64> {
    let mut m = HashMap::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            if let Some((comm, cpu)) = cpu_of(&t.path().join("stat"), clk) {
                let name: String = comm
                    .chars()
                    .map(|c| if c.is_ascii_digit() { '#' } else { c })
                    .collect();
                *m.entry(name).or_insert(0.0) += cpu;
            }
        }
    }
    m
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
    data: PathBuf,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn insights(bin: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("INSIGHTS_") {
            c.env_remove(k);
        }
    }
    c
}

/// A fresh data dir with tenant `bench`, and `insights gateway` on it.
fn start_gateway(bin: &Path) -> Res<(Server, uuid::Uuid)> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let d = data.to_str().ok_or("temp path")?.to_owned();
    let directory_tenant = uuid::Uuid::new_v4();
    let out = insights(
        bin,
        &[
            "admin",
            "tenant",
            "add",
            TENANT,
            "--directory-tenant-id",
            &directory_tenant.to_string(),
            "--data-dir",
            &d,
        ],
    )
    .output()?;
    if !out.status.success() {
        return Err(format!(
            "admin tenant add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let log = std::fs::File::create(dir.path().join("gateway.log"))?;
    let mut child = insights(
        bin,
        &["gateway", "--data-dir", &d, "--listen", "127.0.0.1:0"],
    )
    .env("INSIGHTS_GATEWAY__TRUST_SIMULATOR_KEY", "true")
    .stdout(Stdio::piped())
    .stderr(log)
    .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("insights: listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let base = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(b) => b,
        Err(_) => {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default();
            return Err(format!("the gateway did not report its address:\n{log}").into());
        }
    };
    Ok((
        Server {
            child,
            base,
            _dir: dir,
            data,
        },
        directory_tenant,
    ))
}

#[derive(Debug, Default)]
struct RunResult {
    cpu_s: f64,
    wall_s: f64,
    rss_before: u64,
    peak_rss: u64,
    p50: f64,
    p99: f64,
    max: f64,
    threads: Vec<(String, f64)>,
    stored_calls: usize,
    rss_early: Option<u64>,
    rss_end: Option<u64>,
}

/// `calls` stored in all, at most `concurrent` at a time (RSS per call
/// is per concurrent call).
fn print_run(name: &str, r: &RunResult, calls: usize, concurrent: usize, call_s: f64) {
    println!("== {name}: {calls} calls through `insights gateway`, {concurrent} at a time");
    println!(
        "  server CPU {:.2} s over {:.1} s wall -> {:.0} calls/core; RSS before {:.1} MiB, peak {:.1} MiB ({:.0} KiB per concurrent call)",
        r.cpu_s,
        r.wall_s,
        calls as f64 * call_s / r.cpu_s,
        mib(r.rss_before),
        mib(r.peak_rss),
        r.peak_rss.saturating_sub(r.rss_before) as f64 / 1024.0 / concurrent as f64
    );
    println!(
        "  last audio message -> stored: p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        r.p50, r.p99, r.max
    );
    let total: f64 = r.threads.iter().map(|t| t.1).sum();
    let shown: Vec<String> = r
        .threads
        .iter()
        .filter(|t| t.1 >= 0.01)
        .map(|(n, c)| format!("{n} {c:.2}"))
        .collect();
    println!(
        "  CPU by live thread (s; {:.2} s in threads that exited): {}",
        (r.cpu_s - total).max(0.0),
        shown.join(", ")
    );
    println!();
}

async fn run_variant(
    bin: &Path,
    clk: f64,
    v: Variant,
    parties: &[Vec<i16>],
    calls: usize,
    ramp: Duration,
    soak: Duration,
) -> Res<RunResult> {
    let (server, directory_tenant) = start_gateway(bin)?;
    let pid = server.pid();
    let settings = Settings::load(
        None,
        &Overrides {
            data_dir: Some(server.data.clone()),
            listen: None,
        },
    )?;
    let store = insights_stores::open_metadata(&settings).await?;
    let tenant = store.tenant_by_name(TENANT).await?.id;
    let media_token = std::fs::read_to_string(server.data.join("keys/media-adapter.token"))?
        .trim()
        .to_owned();
    let key_path = settings.gateway.simulator_key_path(&settings.data_dir);
    let audience = settings.gateway.audience().to_owned();
    let base = server.base.clone();
    let template = |i: usize| {
        let names = ["Alice", "Bob", "Carol", "Dave"];
        let ids = [
            "alice@bench.example".to_owned(),
            format!("+1425555{:04}", i % 10_000),
            "carol@bench.example".to_owned(),
            "dave@bench.example".to_owned(),
        ];
        let mut c = SimulatedCall::new(
            base.clone(),
            directory_tenant,
            parties
                .iter()
                .enumerate()
                .map(|(k, pcm)| SimParticipant {
                    name: names[k].into(),
                    identity: ids[k].clone(),
                    object_id: None,
                    pcm: pcm.clone(),
                })
                .collect(),
            TokenSource::SimulatorKey {
                key_path: key_path.clone(),
                audience: audience.clone(),
            },
            media_token.clone(),
        );
        c.meeting = v == Variant::Meeting;
        c.encoding = if v == Variant::Opus {
            Encoding::Opus
        } else {
            Encoding::Pcm16
        };
        c.speed = 1.0;
        c.control_timeout = Duration::from_secs(120);
        c.request_timeout = Duration::from_secs(60);
        c
    };
    // Let start-up settle (key checks, migrations, first scans).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = status_kib(pid, "VmRSS:");
    let cpu0 = cpu_of(&PathBuf::from(format!("/proc/{pid}/stat")), clk)
        .ok_or("cannot read the gateway's CPU time")?
        .1;
    let t0 = Instant::now();
    // Optional profile of the measured span (`GATEWAY_E2E_PERF=<file>`).
    let mut perf = match std::env::var("GATEWAY_E2E_PERF") {
        Ok(out) if !out.is_empty() => Some(
            Command::new("perf")
                .args(["record", "-e", "cpu-clock", "-F", "499"])
                .args(["--call-graph", "dwarf,16384", "-p", &pid.to_string(), "-o"])
                .arg(format!("{out}.{v:?}").to_lowercase())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        ),
        _ => None,
    };

    // Calls finished sending: (recording, last audio sent at).
    let sent: Arc<Mutex<Vec<(RecordingId, Instant)>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let spawn_call = |tasks: &mut tokio::task::JoinSet<()>, i: usize, delay: Duration| {
        let call = template(i);
        let sent = sent.clone();
        let failures = failures.clone();
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            match call.run().await {
                Ok(r) => match r.recording_id.parse::<RecordingId>() {
                    Ok(id) => sent.lock().unwrap().push((id, r.last_audio_sent_at)),
                    Err(e) => failures.lock().unwrap().push(format!("recording id: {e}")),
                },
                Err(e) => failures.lock().unwrap().push(e.to_string()),
            }
        });
    };
    let mut started = 0usize;
    for i in 0..calls {
        let delay = ramp.mul_f64(i as f64 / calls as f64);
        spawn_call(&mut tasks, i, delay);
        started += 1;
    }
    let mut rss_early = None;
    let mut peak_sampled = 0u64;
    let mut latencies: Vec<f64> = Vec::new();
    let mut pending: Vec<(RecordingId, Instant)> = Vec::new();
    let soak_end = t0 + soak;
    let early_at = t0 + soak.min(Duration::from_secs(60)).max(soak / 4);
    loop {
        tokio::time::sleep(Duration::from_millis(25)).await;
        peak_sampled = peak_sampled.max(status_kib(pid, "VmRSS:"));
        if !soak.is_zero() {
            if rss_early.is_none() && Instant::now() >= early_at {
                rss_early = Some(status_kib(pid, "VmRSS:"));
            }
            // Keep `calls` running until the soak ends.
            while Instant::now() < soak_end && tasks.len() < calls {
                spawn_call(&mut tasks, started, Duration::ZERO);
                started += 1;
            }
        }
        while let Some(r) = tasks.try_join_next() {
            r?;
        }
        pending.append(&mut sent.lock().unwrap());
        if !pending.is_empty() {
            let ids: Vec<RecordingId> = pending.iter().map(|p| p.0).collect();
            let now = Instant::now();
            let recs = store.get_recordings(tenant, &ids).await?;
            let stored: std::collections::HashSet<RecordingId> = recs
                .iter()
                .filter(|r| r.status == RecordingStatus::Stored)
                .map(|r| r.id)
                .collect();
            pending.retain(|(id, at)| {
                if stored.contains(id) {
                    latencies.push(now.duration_since(*at).as_secs_f64());
                    false
                } else {
                    true
                }
            });
        }
        let fails = failures.lock().unwrap().clone();
        if !fails.is_empty() {
            server.stop();
            return Err(format!("{} calls failed, first: {}", fails.len(), fails[0]).into());
        }
        if tasks.is_empty() && pending.is_empty() && Instant::now() >= soak_end {
            break;
        }
        if t0.elapsed() > soak + Duration::from_secs_f64(600.0) {
            server.stop();
            return Err(format!(
                "not every recording stored in time: {} pending",
                pending.len()
            )
            .into());
        }
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_of(&PathBuf::from(format!("/proc/{pid}/stat")), clk)
        .ok_or("cannot read the gateway's CPU time")?
        .1;
    let peak_rss = status_kib(pid, "VmHWM:").max(peak_sampled);
    let rss_end = status_kib(pid, "VmRSS:");
    if let Some(mut p) = perf.take() {
        let _ = Command::new("kill")
            .args(["-INT", &p.id().to_string()])
            .status();
        let _ = p.wait();
    }
    let mut threads: Vec<(String, f64)> = threads_cpu(pid, clk).into_iter().collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    server.stop();
    latencies.sort_by(f64::total_cmp);
    let q = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };
    Ok(RunResult {
        cpu_s: cpu1 - cpu0,
        wall_s,
        rss_before,
        peak_rss,
        p50: q(0.5),
        p99: q(0.99),
        max: latencies.last().copied().unwrap_or(0.0),
        threads,
        stored_calls: latencies.len(),
        rss_early,
        rss_end: Some(rss_end),
    })
}

struct InProcess {
    libopus: f64,
    pipeline: f64,
    passthrough: f64,
}

/// (a), (b+) and (d) of `ingest_pipeline` on this audio, interleaved,
/// `rounds` calls each after a warm-up; process CPU seconds.
fn in_process(a: &[i16], b: &[i16], rounds: usize) -> Res<InProcess> {
    let config = RecorderConfig::default();
    let messages = adapter_messages(a, b)?;
    let opus_messages = adapter_opus_messages(a, b, &config.encoder)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let keys: Arc<dyn KeyProvider> =
        Arc::new(LocalKeyFile::open(dir.path().join("keys/kek.json"))?);
    let tenant = TenantId::new();
    rt.block_on(keys.ensure_kek(tenant))?;
    let cfg = SpoolConfig::in_dir(dir.path().join("spool"));
    let sync_every = (cfg.fsync_interval.as_millis() as usize / FRAME_MS).max(1);
    let spool = rt.block_on(Spool::open(cfg, keys))?;
    let measure = |f: &dyn Fn() -> Res<()>| -> Res<f64> {
        let t = ProcessTime::now();
        f()?;
        Ok(t.elapsed().as_secs_f64())
    };
    let mut sum = [0.0f64; 3];
    for round in 0..=rounds {
        let t = [
            measure(&|| baseline(a, b, &config.encoder))?,
            measure(&|| ours(&rt, &spool, tenant, &messages, &config, Some(sync_every)))?,
            measure(&|| ours_opus(&rt, &spool, tenant, &opus_messages, &config, sync_every))?,
        ];
        if round > 0 {
            for (s, t) in sum.iter_mut().zip(t) {
                *s += t;
            }
        }
    }
    spool.shutdown();
    Ok(InProcess {
        libopus: sum[0],
        pipeline: sum[1],
        passthrough: sum[2],
    })
}
