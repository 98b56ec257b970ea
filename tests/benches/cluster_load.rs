//! Search and playback load through HAProxy (issue 15): the same mixed
//! load (half searches, half plays of whole recordings) from N concurrent
//! clients against
//!
//! * one API node directly (the baseline: no load balancer),
//! * HAProxy with one API node in rotation,
//! * HAProxy with two API nodes,
//! * HAProxy with two API nodes, one of them killed (SIGKILL) a quarter
//!   of the way through and restarted at half-time: this run must end with
//!   zero errors (HAProxy retries the requests of the dead node).
//!
//! p50/p95/p99 latency, throughput and errors per run and request kind
//! are printed side by side, then the 2-node/1-node ratios.
//!
//! The load generator is our own loop over reqwest + tokio (below):
//! `oha` is a command-line program, not a library, and installing
//! binaries is not what the test machine does; a closed loop of N clients
//! is the load model the figures describe.
//!
//! Run: `cargo build --release --bin insights && cargo bench -p
//! insights-tests --bench cluster_load` (the nodes run the release
//! binary beside the bench; `INSIGHTS_BIN` names another). Needs
//! `INSIGHTS_TEST_PG_URL`, `INSIGHTS_TEST_AZURITE` and haproxy, as the
//! tests do. Knobs: `CLUSTER_BENCH_CLIENTS` (16), `CLUSTER_BENCH_SECS`
//! per run (20), `CLUSTER_BENCH_CALLS` (8) of `CLUSTER_BENCH_CALL_SECS`
//! (30) seconds each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../cluster/api.rs"]
mod api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use insights_tests::cluster::{Cluster, ClusterSpec, ServerState};
use serde_json::{Value, json};

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Search,
    Play,
}

/// One request's outcome.
struct Sample {
    kind: Kind,
    latency: Duration,
    ok: bool,
}

/// What every client needs.
struct Load {
    token: String,
    query: Value,
    expected_ids: Vec<String>,
    /// (id, byte length of its media)
    media: Vec<(String, usize)>,
}

/// Runs the closed-loop load against `base` for `secs` on a thread of
/// its own (a tokio runtime of 2 threads): every sample.
fn start_load(
    load: Arc<Load>,
    base: String,
    clients: u64,
    secs: u64,
) -> std::thread::JoinHandle<(Vec<Sample>, Vec<String>)> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(secs);
            let tasks: Vec<_> = (0..clients)
                .map(|c| {
                    let (http, load, base) = (http.clone(), load.clone(), base.clone());
                    tokio::spawn(async move {
                        let mut samples = Vec::new();
                        let mut errors = Vec::new();
                        let mut i = c as usize;
                        while Instant::now() < deadline {
                            i += 1;
                            let kind = if i.is_multiple_of(2) {
                                Kind::Search
                            } else {
                                Kind::Play
                            };
                            let start = Instant::now();
                            let outcome = one_request(&http, &base, &load, kind, i / 2).await;
                            samples.push(Sample {
                                kind,
                                latency: start.elapsed(),
                                ok: outcome.is_ok(),
                            });
                            if let Err(e) = outcome
                                && errors.len() < 5
                            {
                                errors.push(e);
                            }
                        }
                        (samples, errors)
                    })
                })
                .collect();
            let mut all = Vec::new();
            let mut errors = Vec::new();
            for t in tasks {
                let (s, e) = t.await.unwrap();
                all.extend(s);
                errors.extend(e);
            }
            (all, errors)
        })
    })
}

async fn one_request(
    http: &reqwest::Client,
    base: &str,
    load: &Load,
    kind: Kind,
    n: usize,
) -> Result<(), String> {
    let (a, b) = api::ACCESS_REASON;
    match kind {
        Kind::Search => {
            let r = http
                .post(format!("{base}/api/recordings/search"))
                .bearer_auth(&load.token)
                .header(a, b)
                .json(&load.query)
                .send()
                .await
                .map_err(|e| format!("search: {e}"))?;
            let status = r.status();
            let page: Value = r.json().await.map_err(|e| format!("search body: {e}"))?;
            if !status.is_success() || api::ids(&page) != load.expected_ids {
                return Err(format!("search: {status} {page}"));
            }
        }
        Kind::Play => {
            // Read as a player reads: a stream cut by a dying node is
            // resumed with a Range request (see api::media).
            let (id, len) = &load.media[n % load.media.len()];
            let mut got = 0usize;
            for attempt in 0..3 {
                let mut req = http
                    .get(format!("{base}/api/recordings/{id}/media"))
                    .bearer_auth(&load.token)
                    .header(a, b);
                if attempt > 0 {
                    req = req.header("range", format!("bytes={got}-"));
                }
                let mut r = req.send().await.map_err(|e| format!("media: {e}"))?;
                let status = r.status().as_u16();
                if status != if attempt == 0 { 200 } else { 206 } {
                    return Err(format!("media {id}: {status}"));
                }
                let cut = loop {
                    match r.chunk().await {
                        Ok(Some(c)) => got += c.len(),
                        Ok(None) => break false,
                        Err(_) => break true,
                    }
                };
                if !cut {
                    break;
                }
                api::RESUMED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            if got != *len {
                return Err(format!("media {id}: {got} of {len} bytes"));
            }
        }
    }
    Ok(())
}

/// One line of the table.
struct Row {
    run: &'static str,
    kind: &'static str,
    requests: usize,
    per_sec: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    errors: usize,
}

fn rows(run: &'static str, samples: &[Sample], secs: u64) -> Vec<Row> {
    [(Kind::Search, "search"), (Kind::Play, "playback")]
        .into_iter()
        .map(|(kind, name)| {
            let mut ms: Vec<f64> = samples
                .iter()
                .filter(|s| s.kind == kind)
                .map(|s| s.latency.as_secs_f64() * 1000.0)
                .collect();
            ms.sort_by(f64::total_cmp);
            let pct = |p: f64| {
                if ms.is_empty() {
                    f64::NAN
                } else {
                    ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1]
                }
            };
            Row {
                run,
                kind: name,
                requests: ms.len(),
                per_sec: ms.len() as f64 / secs as f64,
                p50: pct(0.50),
                p95: pct(0.95),
                p99: pct(0.99),
                errors: samples.iter().filter(|s| s.kind == kind && !s.ok).count(),
            }
        })
        .collect()
}

fn main() {
    let clients = knob("CLUSTER_BENCH_CLIENTS", 16);
    let secs = knob("CLUSTER_BENCH_SECS", 20);
    let calls = knob("CLUSTER_BENCH_CALLS", 8) as u32;
    let call_secs = knob("CLUSTER_BENCH_CALL_SECS", 30) as u32;

    let mut c = Cluster::start(ClusterSpec { api_nodes: 2 });
    let lb = c.lb_url();
    c.add_tenant("contoso");
    let token = api::sign_in_new_officer(c.node(0), &lb, "contoso", "officer@contoso.com");
    let work = c.dir().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let http = api::client();
    let mut media = Vec::new();
    for n in 1..=calls {
        // Recorded through both nodes' gateways in turn.
        let id = api::record_call(c.node(n as usize % 2), &work, "contoso", n, call_secs);
        media.push(id);
    }
    let media: Vec<(String, usize)> = media
        .into_iter()
        .map(|id| {
            let len = api::play_when_stored(&http, &lb, &token, &id).len();
            (id, len)
        })
        .collect();
    let mut expected_ids: Vec<String> = media.iter().map(|(id, _)| id.clone()).collect();
    expected_ids.sort();
    let load = Arc::new(Load {
        token,
        // Every call has an "Agent <n>": one page of all recordings.
        query: json!({ "participant": "Agent", "limit": 50 }),
        expected_ids,
        media: media.clone(),
    });
    let avg_kb = media.iter().map(|(_, l)| *l).sum::<usize>() / media.len() / 1024;
    let run = |base: &str, s: u64| start_load(load.clone(), base.to_owned(), clients, s);

    // Warm-up through HAProxy (both nodes).
    run(&lb, 3).join().unwrap();

    // One node: api-2 stopped (SIGTERM) and out of rotation.
    c.node_mut(1).terminate(Duration::from_secs(45));
    c.haproxy()
        .wait_state("api-2", ServerState::Down, Duration::from_secs(10));
    let (direct, _) = run(&c.node(0).base_url(), secs).join().unwrap();
    let (one, _) = run(&lb, secs).join().unwrap();

    // Two nodes.
    c.node_mut(1).restart();
    c.haproxy()
        .wait_state("api-2", ServerState::Up, Duration::from_secs(10));
    run(&lb, 3).join().unwrap();
    let (two, _) = run(&lb, secs).join().unwrap();

    // Two nodes, api-2 killed at 1/4 and restarted at 1/2 of the run.
    let handle = run(&lb, secs);
    std::thread::sleep(Duration::from_secs_f64(secs as f64 / 4.0));
    let killed = Instant::now();
    c.node_mut(1).kill9();
    let out_after = c
        .haproxy()
        .wait_state("api-2", ServerState::Down, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs_f64(secs as f64 / 4.0).saturating_sub(killed.elapsed()));
    c.node_mut(1).restart();
    let back = c
        .haproxy()
        .wait_state("api-2", ServerState::Up, Duration::from_secs(10));
    let down_for = killed.elapsed();
    let (killing, kill_errors) = handle.join().unwrap();

    let mut table = Vec::new();
    table.extend(rows("direct to api-1 (baseline)", &direct, secs));
    table.extend(rows("HAProxy, 1 API node", &one, secs));
    table.extend(rows("HAProxy, 2 API nodes", &two, secs));
    table.extend(rows("HAProxy, 2 nodes, 1 killed", &killing, secs));

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "cluster_load: {clients} clients, {secs} s per run, {calls} recordings of {call_secs} s \
         ({avg_kb} KiB of Ogg Opus each), {cores} cores shared by the nodes, HAProxy and the \
         load generator"
    );
    println!(
        "{:<28} {:<9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "run", "kind", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"
    );
    for r in &table {
        println!(
            "{:<28} {:<9} {:>8} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>7}",
            r.run, r.kind, r.requests, r.per_sec, r.p50, r.p95, r.p99, r.errors
        );
    }
    let get = |run: &str, kind: &str| {
        table
            .iter()
            .find(|r| r.run.starts_with(run) && r.kind == kind)
            .unwrap()
    };
    for kind in ["search", "playback"] {
        let (d, one, two) = (
            get("direct", kind),
            get("HAProxy, 1", kind),
            get("HAProxy, 2 API", kind),
        );
        println!(
            "{kind}: HAProxy/direct p50 {:.2}x; 2 nodes/1 node: throughput {:.2}x, p50 {:.2}x, \
             p95 {:.2}x, p99 {:.2}x",
            one.p50 / d.p50,
            two.per_sec / one.per_sec,
            two.p50 / one.p50,
            two.p95 / one.p95,
            two.p99 / one.p99
        );
    }
    println!(
        "kill run: api-2 out of rotation {:.2} s after SIGKILL, back {:.2} s after its restart \
         ({:.1} s away in all); errors: {}; media reads resumed with a Range request (all \
         runs): {}",
        out_after.as_secs_f64(),
        back.as_secs_f64(),
        down_for.as_secs_f64(),
        killing.iter().filter(|s| !s.ok).count(),
        api::RESUMED.load(std::sync::atomic::Ordering::SeqCst)
    );
    let failed = table.iter().map(|r| r.errors).sum::<usize>();
    assert!(
        failed == 0,
        "{failed} requests failed: {kill_errors:?}\n{}",
        c.haproxy().log()
    );
}
