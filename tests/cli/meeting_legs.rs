//! Issue 15 §4, through the real binary: a meeting with two
//! policy-recorded users whose bot legs land on two gateway nodes (two
//! `insights serve` processes on one PostgreSQL database and one
//! Azurite). Teams is played by the call simulator with callback tokens
//! signed like Microsoft's, so every answer and `updateRecordingStatus`
//! goes to the Graph stand-in, which records them.
//!
//! * Both legs are answered and reported `recording`; the meeting is
//!   stored once, with both recorded users entitled: each signs in as a
//!   `user` (who sees only their own recordings) and finds and plays it.
//! * The node recording the meeting is killed (`kill -9`) mid-meeting:
//!   the standby leg on the other node continues it in a recording marked
//!   as the continuation (interval, reason `primary-node-lost`) whose
//!   media starts before the lost node's last lease renewal; restarted,
//!   the lost node stores what its spool kept, and the two meet with a
//!   gap of at most 1 s.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bot_gateway::simulator::{SimParticipant, SimulatedCall, TokenSource};
use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::postgres::PgStore;
use insights_tests::keys::TestKey;
use insights_tests::standins::microsoft::{BOT_ISSUER, CLIENT_ID, CLIENT_SECRET, Microsoft};
use serde_json::{Value, json};

use crate::{Server, insights, serve_with_env};

const MEDIA_TOKEN: &str = "meeting-legs-media-adapter-token-0123456789";
const REASON: &str = "meeting legs test";

/// One gateway node.
struct Node {
    server: Option<Server>,
    base: String,
    data: PathBuf,
    log: PathBuf,
}

/// The cluster: the Graph stand-in, its signing key, two nodes' shared
/// environment, the tenant and its two recorded users.
struct Cluster {
    cwd: tempfile::TempDir,
    ms: Microsoft,
    key: TestKey,
    env: Vec<(String, String)>,
    directory_tenant: uuid::Uuid,
    store: PgStore,
    tenant: TenantId,
    /// (name, email, Entra object id, directory user id)
    users: Vec<(String, String, String, UserId)>,
}

fn root_key(dir: &Path) -> PathBuf {
    let path = dir.join("root.key");
    let hex = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    std::fs::write(&path, format!("{hex}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

impl Cluster {
    async fn start(pg: &str, azurite: &str) -> Cluster {
        Cluster::start_with(pg, azurite, true).await
    }

    /// The cluster; its two recorded users are synchronised into the
    /// directory (and have accounts) only if `in_directory`.
    async fn start_with(pg: &str, azurite: &str, in_directory: bool) -> Cluster {
        let cwd = tempfile::tempdir().unwrap();
        let ms = Microsoft::start().await;
        let key = TestKey::generate("meeting-legs-kid");
        let mut jwk = key.jwk();
        jwk["x5t"] = json!(key.kid);
        jwk["issuer"] = json!(BOT_ISSUER);
        ms.publish(vec![jwk]);
        let root = root_key(cwd.path());
        let token_key = cwd.path().join("api-token.key");
        let s = |v: &str| v.to_owned();
        let env: Vec<(String, String)> = vec![
            (s("INSIGHTS_DATABASE__URL"), s(pg)),
            (s("INSIGHTS_BLOB__BACKEND"), s("azure")),
            (s("INSIGHTS_BLOB__AZURE__USE_EMULATOR"), s("true")),
            (s("INSIGHTS_BLOB__AZURE__ENDPOINT"), s(azurite)),
            (s("INSIGHTS_KEYS__PROVIDER"), s("database")),
            (s("INSIGHTS_KEYS__ROOT_KEY_FILE"), s(root.to_str().unwrap())),
            (
                s("INSIGHTS_AUTH__TOKEN_KEY_FILE"),
                s(token_key.to_str().unwrap()),
            ),
            (s("INSIGHTS_ALLOW_INSECURE_HTTP"), s("true")),
            (s("INSIGHTS_GATEWAY__TRUST_SIMULATOR_KEY"), s("false")),
            (s("INSIGHTS_GATEWAY__APP_ID"), s(CLIENT_ID)),
            (s("INSIGHTS_GATEWAY__CLIENT_SECRET"), s(CLIENT_SECRET)),
            (
                s("INSIGHTS_GATEWAY__OPENID_CONFIGURATION_URL"),
                ms.openid_url(),
            ),
            (s("INSIGHTS_GATEWAY__TOKEN_ENDPOINT"), ms.token_endpoint()),
            (s("INSIGHTS_GATEWAY__GRAPH_BASE_URL"), ms.base.clone()),
            (s("INSIGHTS_GATEWAY__MEDIA_TOKEN"), s(MEDIA_TOKEN)),
        ];
        let directory_tenant = uuid::Uuid::new_v4();
        let out = insights(
            cwd.path(),
            &[
                "admin",
                "tenant",
                "add",
                "fabrikam",
                "--directory-tenant-id",
                &directory_tenant.to_string(),
                "--data-dir",
                cwd.path().join("admin").to_str().unwrap(),
            ],
        )
        .envs(env.iter().cloned())
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "tenant add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let store = PgStore::connect(pg, 4).await.unwrap();
        let tenant = store.tenant_by_name("fabrikam").await.unwrap().id;
        let mut users = Vec::new();
        for (name, email) in [
            ("Alice Example", "alice@fabrikam.com"),
            ("Bob Example", "bob@fabrikam.com"),
        ] {
            let oid = uuid::Uuid::new_v4().to_string();
            if !in_directory {
                users.push((name.to_owned(), email.to_owned(), oid, UserId::new()));
                continue;
            }
            let user = DirectoryUser {
                id: UserId::new(),
                tenant_id: tenant,
                directory_object_id: Some(oid.clone()),
                first_name: None,
                last_name: None,
                display_name: Some(name.into()),
                alias: None,
                email: Some(email.into()),
                upn: Some(email.into()),
                phone_numbers: Vec::new(),
                sip_uri: None,
                tel_uri: None,
                groups: Vec::new(),
                active: true,
                updated_at: now(),
            };
            store.upsert_directory_user(tenant, &user).await.unwrap();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let uid = user.id.to_string();
            crate::accounts::add_user(
                cwd.path(),
                &cwd.path().join("admin"),
                &env,
                Some("fabrikam"),
                email,
                "user",
                &["--directory-user", &uid],
            );
            users.push((name.to_owned(), email.to_owned(), oid, user.id));
        }
        Cluster {
            cwd,
            ms,
            key,
            env,
            directory_tenant,
            store,
            tenant,
            users,
        }
    }

    fn node(&self, name: &str) -> Node {
        let data = self.cwd.path().join(name);
        let log = self.cwd.path().join(format!("{name}.log"));
        let mut env = self.env.clone();
        env.push(("INSIGHTS_NODE_NAME".into(), format!("node-{name}")));
        let server = serve_with_env(self.cwd.path(), &data, &env, &log);
        Node {
            base: server.base.clone(),
            server: Some(server),
            data,
            log,
        }
    }

    /// A callback token as Graph Communications signs it.
    fn graph_token(&self) -> String {
        let at = chrono::Utc::now().timestamp();
        self.key.sign(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.key.kid, "x5t": self.key.kid}),
            &json!({
                "aud": CLIENT_ID,
                "iss": BOT_ISSUER,
                "iat": at - 10,
                "nbf": at - 10,
                "exp": at + 3600,
                "tid": self.directory_tenant.to_string(),
            }),
        )
    }

    /// The leg of the meeting `chain` that records `participants[recorded]`,
    /// played against `node` in real time.
    fn leg(
        &self,
        node: &Node,
        chain: &str,
        participants: &[SimParticipant],
        recorded: usize,
    ) -> SimulatedCall {
        let mut call = SimulatedCall::new(
            node.base.clone(),
            self.directory_tenant,
            participants.to_vec(),
            TokenSource::Bearer(self.graph_token()),
            MEDIA_TOKEN,
        );
        call.meeting = true;
        call.speed = 1.0;
        call.chain_id = Some(chain.to_owned());
        call.recorded_user = recorded;
        call
    }

    /// The four people of the meeting: the two recorded users, a guest
    /// by e-mail and a phone participant, each a steady tone (always
    /// voiced, so the mix runs without pauses) of `seconds`.
    fn people(&self, seconds: usize) -> Vec<SimParticipant> {
        let tone = |hz: f64| -> Vec<i16> {
            (0..seconds * 16_000)
                .map(|i| {
                    let t = i as f64 / 16_000.0;
                    (3_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
                })
                .collect()
        };
        let mut people: Vec<SimParticipant> = self
            .users
            .iter()
            .zip([220.0, 330.0])
            .map(|((name, email, oid, _), hz)| SimParticipant {
                name: name.clone(),
                identity: email.clone(),
                object_id: Some(oid.clone()),
                pcm: tone(hz),
            })
            .collect();
        people.push(SimParticipant {
            name: "Carol Guest".into(),
            identity: "carol@partner.example".into(),
            object_id: None,
            pcm: tone(440.0),
        });
        people.push(SimParticipant {
            name: "Dave Phone".into(),
            identity: "+442079460958".into(),
            object_id: None,
            pcm: tone(550.0),
        });
        people
    }

    /// Waits until Graph saw `action` for `call_id` (with `status`).
    async fn graph_saw(&self, call_id: &str, action: &str, status: Option<&str>) -> bool {
        let got = self
            .ms
            .wait_graph(
                1,
                |c| {
                    c.call_id == call_id
                        && c.action == action
                        && status.is_none_or(|s| c.body["status"] == s)
                },
                Duration::from_secs(30),
            )
            .await;
        !got.is_empty()
    }

    /// The tenant's recordings, once `done` holds for all of them and
    /// there are `n` (waits up to 90 s).
    async fn recordings(&self, n: usize, done: impl Fn(&Recording) -> bool) -> Vec<Recording> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let page = self
                .store
                .search_recordings(self.tenant, &RecordingQuery::default())
                .await
                .unwrap();
            let mut all = Vec::new();
            for s in &page.items {
                all.push(
                    self.store
                        .get_recording(self.tenant, s.recording.id)
                        .await
                        .unwrap(),
                );
            }
            if all.len() == n && all.iter().all(&done) {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} finished recordings, have {:?}",
                all.iter()
                    .map(|r| (r.id, r.status, r.ended_at.is_some()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Signs in recorded user `i` on `node`: their search finds exactly
    /// `expect`, and each of those plays (Ogg media); returns the mix of
    /// the first as PCM at 16 kHz.
    /// Recorded user `i` searches through `node`, finds exactly `expect`,
    /// plays each, and sees each failover mark of `marks` (recording,
    /// side, other recording) in the recording's detail.
    async fn user_finds_and_plays(
        &self,
        i: usize,
        node: &Node,
        expect: &[RecordingId],
        marks: &[(RecordingId, &'static str, RecordingId)],
    ) {
        let email = self.users[i].1.clone();
        let base = node.base.clone();
        let expect: Vec<String> = expect.iter().map(ToString::to_string).collect();
        let marks = marks.to_vec();
        tokio::task::spawn_blocking(move || {
            let session = crate::accounts::first_sign_in(&base, Some("fabrikam"), &email);
            let http = reqwest::blocking::Client::new();
            let res = http
                .post(format!("{base}/api/recordings/search"))
                .bearer_auth(&session.token)
                .header("x-access-reason", REASON)
                .json(&json!({"limit": 50}))
                .send()
                .unwrap();
            let status = res.status();
            let body: Value = res.json().unwrap();
            assert!(status.is_success(), "{email}: search {status} {body}");
            let mut found: Vec<String> = body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["recording"]["id"].as_str().unwrap().to_owned())
                .collect();
            found.sort();
            let mut want = expect.clone();
            want.sort();
            assert_eq!(
                found, want,
                "{email} finds exactly the meeting's recordings"
            );
            for id in &expect {
                let res = http
                    .get(format!("{base}/api/recordings/{id}/media"))
                    .bearer_auth(&session.token)
                    .header("x-access-reason", REASON)
                    .send()
                    .unwrap();
                let status = res.status();
                let bytes = res.bytes().unwrap();
                assert!(status.is_success(), "{email}: play {id}: {status}");
                assert!(bytes.starts_with(b"OggS"), "{email}: {id} is not Ogg");
            }
            for (id, side, other) in marks {
                let res = http
                    .get(format!("{base}/api/recordings/{id}"))
                    .bearer_auth(&session.token)
                    .header("x-access-reason", REASON)
                    .send()
                    .unwrap();
                let status = res.status();
                let body: Value = res.json().unwrap();
                assert!(status.is_success(), "{email}: detail {status} {body}");
                let got = body["failovers"].as_array().unwrap();
                assert_eq!(got.len(), 1, "{body}");
                assert_eq!(got[0]["side"], side, "{body}");
                assert_eq!(got[0]["recording_id"], other.to_string(), "{body}");
                assert_eq!(got[0]["reason"], FAILOVER_PRIMARY_NODE_LOST, "{body}");
                assert!(got[0]["gap_from"].is_string() && got[0]["gap_to"].is_string());
            }
        })
        .await
        .unwrap();
    }
}

/// Both legs of a meeting on two nodes: both answered and reported
/// `recording`, one recording stored, both recorded users entitled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn meeting_legs_on_two_nodes_make_one_recording_for_both_users() {
    let pg = insights_tests::fresh_pg_database().await;
    let azurite = insights_tests::azurite_endpoint();
    let c = Cluster::start(&pg, &azurite).await;
    let a = c.node("a");
    let b = c.node("b");
    let people = c.people(6);
    let chain = uuid::Uuid::new_v4().to_string();
    let leg_a = c.leg(&a, &chain, &people, 0);
    let leg_b = c.leg(&b, &chain, &people, 1);
    let (id_a, id_b) = (leg_a.call_id.clone(), leg_b.call_id.clone());
    let run_a = tokio::spawn(async move { leg_a.run().await });
    // Alice's leg first, so node a records the meeting.
    assert!(
        c.graph_saw(&id_a, "answer", None).await,
        "leg a not answered"
    );
    let run_b = tokio::spawn(async move { leg_b.run().await });
    let report_a = run_a
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("leg a: {e}"));
    let report_b = run_b
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("leg b: {e}"));

    for id in [&id_a, &id_b] {
        assert!(c.graph_saw(id, "answer", None).await, "{id} answered");
        assert!(
            c.graph_saw(id, "updateRecordingStatus", Some("recording"))
                .await,
            "{id} reported recording"
        );
        let failed =
            c.ms.graph_calls()
                .into_iter()
                .any(|g| g.call_id == *id && g.body["status"] == "failed");
        assert!(!failed, "{id}: no leg reports failed");
    }
    c.ms.assert_no_problems();

    // One recording, stored, with both recorded users.
    let recs = c
        .recordings(1, |r| {
            r.status == RecordingStatus::Stored && r.ended_at.is_some()
        })
        .await;
    let rec = &recs[0];
    assert_eq!(rec.kind, RecordingKind::Meeting);
    assert_eq!(rec.external_call_id.as_deref(), Some(id_a.as_str()));
    assert_eq!(report_a.recording_id, rec.id.to_string());
    assert_ne!(
        report_b.recording_id, report_a.recording_id,
        "the standby leg's own recording was never stored"
    );
    for (_, _, _, uid) in &c.users {
        let rows: Vec<&Participant> = rec
            .participants
            .iter()
            .filter(|p| p.directory_user_id == Some(*uid))
            .collect();
        assert_eq!(rows.len(), 1, "each recorded user stored once: {rows:?}");
        assert!(rows[0].recorded_user, "entitled as a recorded user");
    }
    assert!(
        rec.participants.len() >= 4,
        "everyone in the meeting: {}",
        rec.participants.len()
    );
    // The claim went with the recording's end.
    assert_eq!(c.store.meeting_claim(c.tenant, &chain).await.unwrap(), None);
    assert!(
        c.store
            .meeting_failovers(c.tenant, rec.id)
            .await
            .unwrap()
            .is_empty(),
        "no failover"
    );
    // Each recorded user finds and plays it, through either node.
    c.user_finds_and_plays(0, &a, &[rec.id], &[]).await;
    c.user_finds_and_plays(1, &b, &[rec.id], &[]).await;
    drop((a, b));
}

/// Recorded users whose Entra users are not (yet) in the tenant's
/// directory: the primary leg's roster and the standby's entitlement know
/// them only by object id, and each is still stored once, as a recorded
/// user, on the one recording. Repeated: the two legs store Bob at about
/// the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn meeting_legs_of_users_outside_the_directory_store_each_user_once() {
    let pg = insights_tests::fresh_pg_database().await;
    let azurite = insights_tests::azurite_endpoint();
    let c = Cluster::start_with(&pg, &azurite, false).await;
    let a = c.node("a");
    let b = c.node("b");
    let people = c.people(4);
    for round in 0..2 {
        let chain = uuid::Uuid::new_v4().to_string();
        let leg_a = c.leg(&a, &chain, &people, 0);
        let leg_b = c.leg(&b, &chain, &people, 1);
        let id_a = leg_a.call_id.clone();
        let run_a = tokio::spawn(async move { leg_a.run().await });
        assert!(
            c.graph_saw(&id_a, "answer", None).await,
            "leg a not answered"
        );
        let run_b = tokio::spawn(async move { leg_b.run().await });
        run_a
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("leg a: {e}"));
        run_b
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("leg b: {e}"));
        let recs = c
            .recordings(round + 1, |r| {
                r.status == RecordingStatus::Stored && r.ended_at.is_some()
            })
            .await;
        let rec = recs
            .iter()
            .find(|r| r.external_call_id.as_deref() == Some(id_a.as_str()))
            .unwrap_or_else(|| panic!("round {round}: no recording of leg a"));
        for (name, _, _, _) in &c.users {
            let rows: Vec<&Participant> = rec
                .participants
                .iter()
                .filter(|p| p.display_name.as_deref() == Some(name.as_str()))
                .collect();
            assert_eq!(
                rows.len(),
                1,
                "round {round}: {name} stored once: {:?}",
                rec.participants
            );
            assert!(rows[0].recorded_user, "{name} entitled as a recorded user");
            assert_eq!(rows[0].directory_user_id, None, "not in the directory");
        }
        assert_eq!(
            rec.participants.len(),
            4,
            "round {round}: everyone once: {:?}",
            rec.participants
        );
    }
    c.ms.assert_no_problems();
    drop((a, b));
}

/// The node recording a meeting dies: the standby leg on the other node
/// continues it, marked with the interval and the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn meeting_continues_from_the_standby_leg_when_the_primary_node_dies() {
    let pg = insights_tests::fresh_pg_database().await;
    let azurite = insights_tests::azurite_endpoint();
    let c = Cluster::start(&pg, &azurite).await;
    let mut a = c.node("a");
    let b = c.node("b");
    let people = c.people(16);
    let chain = uuid::Uuid::new_v4().to_string();
    let leg_a = c.leg(&a, &chain, &people, 0);
    let leg_b = c.leg(&b, &chain, &people, 1);
    let (id_a, id_b) = (leg_a.call_id.clone(), leg_b.call_id.clone());
    let run_a = tokio::spawn(async move { leg_a.run().await });
    assert!(
        c.graph_saw(&id_a, "answer", None).await,
        "leg a not answered"
    );
    let run_b = tokio::spawn(async move { leg_b.run().await });
    for id in [&id_a, &id_b] {
        assert!(
            c.graph_saw(id, "updateRecordingStatus", Some("recording"))
                .await,
            "{id} reported recording"
        );
    }
    // Mid-meeting: node a is killed (SIGKILL: no shutdown of any kind).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let killed_at = now();
    drop(a.server.take());
    assert!(
        run_a.await.unwrap().is_err(),
        "leg a's media went with its node"
    );
    let report_b = run_b
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("leg b: {e}"));

    // Node b's recording continues the lost one.
    let cont: RecordingId = report_b.recording_id.parse().map(RecordingId).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let cont_rec = loop {
        let r = c.store.get_recording(c.tenant, cont).await;
        if let Ok(r) = &r
            && r.status == RecordingStatus::Stored
        {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "continuation not stored: {:?}",
            r.map(|r| r.status)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let marks = c.store.meeting_failovers(c.tenant, cont).await.unwrap();
    assert_eq!(marks.len(), 1, "{marks:?}");
    let mark = &marks[0];
    assert_eq!(mark.reason, FAILOVER_PRIMARY_NODE_LOST);
    assert_eq!(mark.recording_id, cont);
    let lost_id = mark.continues;
    assert!(
        mark.gap_from <= killed_at && killed_at <= mark.gap_to,
        "the interval covers the kill: {mark:?} at {killed_at}"
    );
    let gap = (mark.gap_to - mark.gap_from).num_milliseconds();
    assert!(
        gap <= 5_500,
        "taken over within a lease and a heartbeat: {gap} ms"
    );
    assert!(
        cont_rec.started_at <= mark.gap_from - chrono::Duration::milliseconds(900),
        "the continuation's media starts before the interval: {} vs {}",
        cont_rec.started_at,
        mark.gap_from
    );
    for (_, _, _, uid) in &c.users {
        assert!(
            cont_rec
                .participants
                .iter()
                .any(|p| p.directory_user_id == Some(*uid) && p.recorded_user),
            "both recorded users entitled to the continuation"
        );
    }
    let lost = c.store.get_recording(c.tenant, lost_id).await.unwrap();
    assert_eq!(lost.ended_at, Some(mark.gap_from), "ends where it was lost");
    assert_eq!(
        lost.result_code.as_deref(),
        Some(FAILOVER_PRIMARY_NODE_LOST)
    );
    assert_eq!(lost.external_call_id.as_deref(), Some(id_a.as_str()));

    // Node a comes back on its disk: its spool's part of the meeting is
    // stored (partial), and meets the continuation.
    let a2 = {
        let mut env = c.env.clone();
        env.push(("INSIGHTS_NODE_NAME".into(), "node-a".into()));
        let log = c.cwd.path().join("a-restarted.log");
        let server = serve_with_env(c.cwd.path(), &a.data, &env, &log);
        Node {
            base: server.base.clone(),
            server: Some(server),
            data: a.data.clone(),
            log,
        }
    };
    let recs = c
        .recordings(2, |r| r.status == RecordingStatus::Stored)
        .await;
    let lost = recs.iter().find(|r| r.id == lost_id).unwrap();
    let mix = lost.streams.iter().find(|s| s.track == 0).unwrap();
    let pcm = fetch_mix(&c, &a2, lost).await;
    let lost_media_end = lost.started_at
        + chrono::Duration::milliseconds(mix.start_ms + (pcm as i64) * 1000 / 16_000);
    let media_gap = (cont_rec.started_at - lost_media_end).num_milliseconds();
    eprintln!(
        "lost media ends {lost_media_end}, continuation starts {}, gap {media_gap} ms (negative: overlap)",
        cont_rec.started_at
    );
    assert!(media_gap <= 1_000, "gap of at most 1 s: {media_gap} ms");
    // Both users find both parts of the meeting and play them, and read
    // the failover marks on both parts through the API.
    let marks = [
        (cont, "continues", lost_id),
        (lost_id, "continued_by", cont),
    ];
    c.user_finds_and_plays(0, &a2, &[lost_id, cont], &marks)
        .await;
    c.user_finds_and_plays(1, &b, &[lost_id, cont], &marks)
        .await;
    let log = std::fs::read_to_string(&b.log).unwrap();
    assert!(
        log.contains("a standby leg took over the meeting"),
        "the takeover is logged"
    );
    let _ = (&a.log, &a2.log);
    drop((a2, b));
}

/// The number of 16 kHz samples in recording `r`'s mix, played through
/// `node` by an officer.
async fn fetch_mix(c: &Cluster, node: &Node, r: &Recording) -> usize {
    let env: Vec<(&str, &str)> = c
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let email = format!("officer-{}@fabrikam.com", &r.id.to_string()[..8]);
    crate::accounts::add_user(
        c.cwd.path(),
        &c.cwd.path().join("admin"),
        &env,
        Some("fabrikam"),
        &email,
        "compliance-officer",
        &[],
    );
    let base = node.base.clone();
    let id = r.id.to_string();
    let bytes = tokio::task::spawn_blocking(move || {
        let session = crate::accounts::first_sign_in(&base, Some("fabrikam"), &email);
        let res = reqwest::blocking::Client::new()
            .get(format!("{base}/api/recordings/{id}/media"))
            .bearer_auth(&session.token)
            .header("x-access-reason", REASON)
            .send()
            .unwrap();
        assert!(res.status().is_success(), "play {id}: {}", res.status());
        res.bytes().unwrap().to_vec()
    })
    .await
    .unwrap();
    recorder::decode_ogg_opus(std::io::Cursor::new(bytes), 16_000)
        .unwrap()
        .channels[0]
        .len()
}
