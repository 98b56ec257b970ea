//! Two API nodes behind HAProxy; one of them killed under requests.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use insights_tests::cluster::{Cluster, ClusterSpec, ServerState};
use serde_json::json;

use crate::api;

/// What the request threads saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// The first few failures, for the message.
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut e = self.errors.lock().unwrap();
        if e.len() < 10 {
            e.push(what);
        }
    }
}

pub fn two_api_nodes_survive_a_kill() {
    let mut c = Cluster::start(ClusterSpec { api_nodes: 2 });
    let lb = c.lb_url();
    let http = api::client();
    c.add_tenant("contoso");
    // Signed in through HAProxy: the first-sign-in challenge is a signed
    // token, so its two steps may land on different nodes.
    let token = api::sign_in_new_officer(c.node(0), &lb, "contoso", "officer@contoso.com");

    // One call recorded through each node's gateway.
    let work = c.dir().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let r1 = api::record_call(c.node(0), &work, "contoso", 1, 3);
    let r2 = api::record_call(c.node(1), &work, "contoso", 2, 3);
    let mut expected = vec![r1.clone(), r2.clone()];
    expected.sort();

    // Playable through HAProxy, and byte for byte the same through each
    // node directly.
    let m1 = api::play_when_stored(&http, &lb, &token, &r1);
    let m2 = api::play_when_stored(&http, &lb, &token, &r2);
    for node in c.nodes() {
        for (id, bytes) in [(&r1, &m1), (&r2, &m2)] {
            let (status, body) = api::media(&http, &node.base_url(), &token, id);
            assert_eq!(status, 200, "{id} through {}", node.name());
            assert_eq!(&body, bytes, "{id} differs through {}", node.name());
        }
    }
    // Found by a participant's name through HAProxy (round robin: both
    // nodes answer in turn) and through each node: the same two.
    let query = json!({ "participant": "Agent", "limit": 50 });
    let mut bases: Vec<String> = c.nodes().iter().map(|n| n.base_url()).collect();
    bases.extend([lb.clone(), lb.clone()]);
    for base in &bases {
        let (status, page) = api::search(&http, base, &token, &query);
        assert_eq!(status, 200, "search through {base}: {page}");
        assert_eq!(api::ids(&page), expected, "search through {base}");
    }
    let before = c.haproxy().servers();
    assert!(
        before
            .iter()
            .all(|s| s.sessions > 0 && s.state == ServerState::Up),
        "HAProxy did not use both nodes: {before:?}"
    );

    // Requests through HAProxy from 4 threads, search and playback in
    // turn, while api-2 is killed and restarted.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (stop, tally) = (stop.clone(), tally.clone());
            let (lb, token, query) = (lb.clone(), token.clone(), query.clone());
            let (expected, media) = (
                expected.clone(),
                [(r1.clone(), m1.clone()), (r2.clone(), m2.clone())],
            );
            std::thread::spawn(move || {
                let http = api::client();
                let mut i: usize = t;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    if i.is_multiple_of(2) {
                        let (status, page) = api::search(&http, &lb, &token, &query);
                        if status == 200 && api::ids(&page) == expected {
                            tally.ok.fetch_add(1, Ordering::SeqCst);
                        } else {
                            tally.fail(format!("search: {status} {page}"));
                        }
                    } else {
                        let (id, bytes) = &media[(i / 2) % 2];
                        let (status, body) = api::media(&http, &lb, &token, id);
                        if status == 200 && &body == bytes {
                            tally.ok.fetch_add(1, Ordering::SeqCst);
                        } else {
                            tally.fail(format!(
                                "media {id}: {status} {}",
                                String::from_utf8_lossy(&body[..body.len().min(200)])
                            ));
                        }
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    c.node_mut(1).kill9();
    let out_after = c
        .haproxy()
        .wait_state("api-2", ServerState::Down, Duration::from_secs(5));
    assert!(
        out_after <= Duration::from_secs(2),
        "the killed node stayed in rotation for {out_after:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let during = tally.ok.load(Ordering::SeqCst);
    c.node_mut(1).restart();
    let back_after = c
        .haproxy()
        .wait_state("api-2", ServerState::Up, Duration::from_secs(10));
    let rejoined = c.haproxy().server("api-2").sessions;
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let down_for = killed_at.elapsed();
    let (ok, failed) = (
        tally.ok.load(Ordering::SeqCst),
        tally.failed.load(Ordering::SeqCst),
    );
    eprintln!(
        "cluster: {ok} requests ok, {failed} failed ({} media reads resumed with a Range \
         request); api-2 out of rotation {out_after:?} after the kill, back {back_after:?} \
         after its restart ({down_for:?} in all)",
        api::RESUMED.load(Ordering::SeqCst)
    );
    assert_eq!(
        failed,
        0,
        "requests failed while a node died: {:?}\n{}",
        tally.errors.lock().unwrap(),
        c.haproxy().log()
    );
    assert!(
        ok > during && during >= 8,
        "too few requests: {during} then {ok}"
    );
    // The restarted node serves again.
    let after = c.haproxy().server("api-2");
    assert_eq!(after.state, ServerState::Up);
    assert!(
        after.sessions > rejoined,
        "api-2 got no request after rejoining: {after:?}"
    );
    // And answers the same as the node that never stopped.
    for node in c.nodes() {
        let (status, page) = api::search(&http, &node.base_url(), &token, &query);
        assert_eq!(status, 200);
        assert_eq!(api::ids(&page), expected, "search through {}", node.name());
        let (status, body) = api::media(&http, &node.base_url(), &token, &r1);
        assert_eq!((status, &body), (200, &m1), "r1 through {}", node.name());
    }
    // A third call, recorded through the restarted node, is found
    // through HAProxy.
    let r3 = api::record_call(c.node(1), &work, "contoso", 3, 2);
    api::play_when_stored(&http, &lb, &token, &r3);
    let (status, page) = api::search(&http, &lb, &token, &query);
    assert_eq!(status, 200);
    assert_eq!(page["total"], 3, "{page}");
    // Privacy: no node logged the participants' names or addresses.
    for node in c.nodes() {
        let log = node.log();
        for secret in [
            "Agent 1",
            "agent1@contoso.com",
            "officer@contoso.com",
            "4255550001",
        ] {
            assert!(!log.contains(secret), "{} logged `{secret}`", node.name());
        }
    }
}
