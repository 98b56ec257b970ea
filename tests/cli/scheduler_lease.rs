//! Two `insights scheduler` processes on one PostgreSQL database, with a
//! 2 s retention interval and a 3 s lease: exactly one runs each interval
//! (one run row per interval, all by the leader; one `retention-delete`
//! audit event per recording); the leader killed with SIGKILL, the other
//! takes over within two lease periods and no interval runs twice; a
//! leader frozen (SIGSTOP) past its lease and thawed finds its lease
//! taken and writes nothing more; the audit chain stays intact.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use insights_core::config::{Overrides, Secret, Settings};
use insights_core::domain::*;

use crate::insights;

const LEASE_SECS: u64 = 3;
const INTERVAL_SECS: u64 = 2;

struct Proc {
    child: Child,
    name: &'static str,
    log: std::path::PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env(pg_url: &str) -> Vec<(String, String)> {
    vec![
        ("INSIGHTS_DATABASE__URL".into(), pg_url.to_owned()),
        (
            "INSIGHTS_SCHEDULER__LEASE_SECS".into(),
            LEASE_SECS.to_string(),
        ),
        (
            "INSIGHTS_RETENTION__INTERVAL_SECS".into(),
            INTERVAL_SECS.to_string(),
        ),
        ("INSIGHTS_RETENTION__INITIAL_DELAY_SECS".into(), "0".into()),
    ]
}

fn start(cwd: &Path, data: &str, pg_url: &str, name: &'static str) -> Proc {
    let log = cwd.join(format!("{name}.log"));
    let mut child = insights(
        cwd,
        &["scheduler", "--data-dir", data, "--listen", "127.0.0.1:0"],
    )
    .envs(env(pg_url))
    .env("INSIGHTS_NODE_NAME", name)
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("insights: listening on ") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{name} did not start: {}", read(&log)));
    Proc { child, name, log }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn signal(p: &Proc, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &p.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

fn settings(data: &Path, pg_url: &str) -> Settings {
    let mut s = Settings::load(
        None,
        &Overrides {
            data_dir: Some(data.to_owned()),
            listen: None,
        },
    )
    .unwrap();
    s.database.url = Some(Secret::new(pg_url));
    s
}

struct World {
    rt: tokio::runtime::Runtime,
    platform: insights::platform::Platform,
    tenant: TenantId,
}

impl World {
    /// `n` recordings a year and more old, all due under the policy.
    fn old_recordings(&self, n: usize) -> Vec<RecordingId> {
        (0..n)
            .map(|i| {
                let rec = Recording::new(
                    self.tenant,
                    RecordingKind::Call,
                    Direction::Inbound,
                    now() - chrono::Duration::days(400 + i as i64),
                );
                self.rt
                    .block_on(self.platform.store.insert_recording(self.tenant, &rec))
                    .unwrap();
                rec.id
            })
            .collect()
    }

    fn wait_deleted(&self, ids: &[RecordingId], what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for id in ids {
            loop {
                match self
                    .rt
                    .block_on(self.platform.store.get_recording(self.tenant, *id))
                {
                    Err(insights_core::store::StoreError::NotFound) => break,
                    Ok(_) => assert!(Instant::now() < deadline, "{what}: not deleted in 30 s"),
                    Err(e) => panic!("{what}: {e}"),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn lease(&self) -> Option<Lease> {
        self.rt
            .block_on(self.platform.store.get_lease("retention"))
            .unwrap()
    }

    fn runs(&self) -> Vec<ScheduledRun> {
        self.rt
            .block_on(self.platform.store.list_scheduled_runs("retention"))
            .unwrap()
    }

    /// `retention-delete` events per recording.
    fn deletions(&self) -> HashMap<RecordingId, usize> {
        let events = self
            .rt
            .block_on(self.platform.store.list_audit(
                self.tenant,
                &AuditQuery {
                    action: Some(AuditAction::RetentionDelete),
                    ..AuditQuery::default()
                },
            ))
            .unwrap();
        let mut by = HashMap::new();
        for e in events {
            *by.entry(e.recording_id.unwrap()).or_default() += 1;
        }
        by
    }

    fn wait_holder(&self, prefix: &str, within: Duration, what: &str) -> Duration {
        let started = Instant::now();
        loop {
            if let Some(l) = self.lease()
                && l.holder.starts_with(prefix)
                && l.expires_at > now()
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "{what}: {prefix} does not hold the lease after {within:?}: {:?}",
                self.lease()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn holder_of(p: &Proc) -> String {
    format!("{}#", p.name)
}

pub fn two_schedulers_one_leader(pg_url: &str) {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let out = insights(
        cwd.path(),
        &["admin", "tenant", "add", "contoso", "--data-dir", &d],
    )
    .envs(env(pg_url))
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let platform = rt
        .block_on(insights::platform::Platform::open(&settings(&data, pg_url)))
        .unwrap();
    let tenant = rt
        .block_on(platform.store.tenant_by_name("contoso"))
        .unwrap()
        .id;
    let policy = RetentionPolicy {
        id: RetentionPolicyId::new(),
        tenant_id: tenant,
        name: "one year".into(),
        scope: RetentionScope::default(),
        retain_days: 365,
        action: RetentionAction::DeleteRecording,
        enabled: true,
        updated_at: now(),
    };
    rt.block_on(platform.store.upsert_retention_policy(tenant, &policy))
        .unwrap();
    let w = World {
        rt,
        platform,
        tenant,
    };

    let a = start(cwd.path(), &d, pg_url, "node-a");
    let b = start(cwd.path(), &d, pg_url, "node-b");
    let lease = Duration::from_secs(LEASE_SECS);
    w.wait_holder("node-", lease * 2, "a leader");
    let first = w.lease().unwrap();
    let (leader, follower) = if first.holder.starts_with(&holder_of(&a)) {
        (a, b)
    } else {
        (b, a)
    };
    let batch1 = w.old_recordings(5);
    w.wait_deleted(&batch1, "under the first leader");
    // A few intervals under one leader.
    std::thread::sleep(Duration::from_secs(INTERVAL_SECS * 3));
    let runs = w.runs();
    assert!(runs.len() >= 3, "a run per interval: {runs:?}");
    for r in &runs {
        assert!(r.holder.starts_with(&holder_of(&leader)), "{r:?}");
        assert_eq!(r.attempts, 1, "{r:?}");
        assert!(
            r.finished_at.is_some() || r == runs.last().unwrap(),
            "{r:?}"
        );
    }
    let flog = read(&follower.log);
    assert!(
        !flog.contains("scheduled run starting"),
        "the follower ran: {flog}"
    );

    // The leader dies: the follower takes over within two lease periods.
    let mut leader = leader;
    let killed_at = now();
    leader.child.kill().unwrap(); // SIGKILL
    leader.child.wait().unwrap();
    let took = w.wait_holder(&holder_of(&follower), lease * 2, "takeover after SIGKILL");
    println!("takeover after SIGKILL: {took:?} (lease {lease:?})");
    let batch2 = w.old_recordings(5);
    w.wait_deleted(&batch2, "under the second leader");
    std::thread::sleep(Duration::from_secs(INTERVAL_SECS * 2));
    let runs = w.runs();
    let after: Vec<_> = runs
        .iter()
        .filter(|r| r.holder.starts_with(&holder_of(&follower)))
        .collect();
    assert!(
        after.len() >= 2,
        "the new leader runs each interval: {runs:?}"
    );
    for r in &runs {
        // Only an interval the dead leader had started may be resumed
        // (claimed twice), and then it is one run, finished once.
        if r.attempts > 1 {
            assert_eq!(r.attempts, 2, "{r:?}");
            assert!(r.interval_start <= killed_at, "{r:?}");
        }
    }
    let by = w.deletions();
    for id in batch1.iter().chain(&batch2) {
        assert_eq!(by.get(id), Some(&1), "one audit event per deletion: {by:?}");
    }
    assert_eq!(by.len(), 10, "{by:?}");

    // A third node joins; the leader is frozen past its lease: the new
    // node takes over, and the thawed old leader writes nothing more.
    let c = start(cwd.path(), &d, pg_url, "node-c");
    let new_leader = follower;
    signal(&new_leader, "-STOP");
    let took = w.wait_holder(
        &holder_of(&c),
        lease * 2 + lease / 3,
        "takeover of a frozen leader",
    );
    println!("takeover of a frozen leader: {took:?}");
    let taken = w.lease().unwrap();
    signal(&new_leader, "-CONT");
    let batch3 = w.old_recordings(5);
    w.wait_deleted(&batch3, "under the third leader");
    std::thread::sleep(Duration::from_secs(LEASE_SECS));
    let log = read(&new_leader.log);
    assert!(log.contains("scheduler lease lost"), "{log}");
    let held = w.lease().unwrap();
    assert_eq!(
        held.token, taken.token,
        "the thawed node did not take it back"
    );
    let runs = w.runs();
    let thawed = holder_of(&new_leader);
    for r in runs.iter().filter(|r| r.holder.starts_with(&thawed)) {
        // Its runs all ended before it was frozen out.
        assert!(r.token < taken.token, "{r:?}");
        assert!(r.finished_at.is_some_and(|f| f < taken.expires_at), "{r:?}");
    }
    assert!(
        runs.iter().any(|r| r.token == taken.token),
        "the third leader runs: {runs:?}"
    );
    let by = w.deletions();
    assert_eq!(by.len(), 15, "{by:?}");
    assert!(
        by.values().all(|n| *n == 1),
        "duplicate audit events: {by:?}"
    );
    let tokens: Vec<i64> = runs.iter().map(|r| r.token).collect();
    assert!(
        tokens.windows(2).all(|p| p[0] <= p[1]),
        "tokens only grow: {runs:?}"
    );

    let out = insights(
        cwd.path(),
        &["audit", "verify", "--tenant", "contoso", "--data-dir", &d],
    )
    .envs(env(pg_url))
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "audit chain: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(c);
    drop(new_leader);
}
