//! Pause and resume across processes (issue 17 §1): the API node that
//! takes the request is not the gateway node holding the call. The
//! request reaches the gateway through PostgreSQL (`recording_gaps`),
//! the gateway applies it (the API answers `200` once it has), and the
//! stored call is shorter by the pause.

use std::process::Stdio;
use std::time::{Duration, Instant};

use insights_tests::cluster::{Cluster, NodeExtras, NodeSpec, Role, tone_wav};
use serde_json::Value;
use sqlx::{Connection, Row};

use crate::api;

const CALL_SECS: u32 = 16;

/// The id of the live recording, once its first audio is stored.
fn live_recording(pg: &str) -> Option<uuid::Uuid> {
    let url = pg.to_owned();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let row = sqlx::query(
                "SELECT r.id FROM recordings r WHERE r.status = 'recording' \
                 AND EXISTS (SELECT 1 FROM media_streams s WHERE s.recording_id = r.id)",
            )
            .fetch_optional(&mut c)
            .await
            .unwrap();
            let _ = c.close().await;
            row.map(|r| r.get::<uuid::Uuid, _>(0))
        })
}

pub fn pause_reaches_the_gateway_node_through_the_database() {
    let c = Cluster::start_layout(
        &[
            NodeSpec::new("api-1", &[Role::Api]),
            NodeSpec::new("gw-1", &[Role::Gateway]),
        ],
        &NodeExtras::default(),
    );
    let (api_node, gw) = (c.index_of("api-1"), c.index_of("gw-1"));
    c.add_tenant("contoso");
    let base = c.node(api_node).base_url();
    let http = api::client();
    let admin = api::sign_in_new_user(
        c.node(api_node),
        &base,
        "contoso",
        "admin@contoso.com",
        "tenant-admin",
    );
    let work = c.dir().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let (a, b) = (work.join("a.wav"), work.join("b.wav"));
    tone_wav(&a, CALL_SECS, 440.0);
    tone_wav(&b, CALL_SECS, 660.0);
    let node = c.node(gw);
    let mut call = node
        .command(&[
            "simulate-call",
            "--gateway",
            &node.base_url(),
            "--tenant",
            "contoso",
            "--speed",
            "1",
            "--participant",
            &format!("Agent 7:agent7@contoso.com:{}", a.display()),
            "--participant",
            &format!("Other Party:+14255550007:{}", b.display()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pg = c.pg_url().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        if let Some(id) = live_recording(&pg) {
            break id;
        }
        assert!(Instant::now() < deadline, "no live call: {}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    };
    let post = |verb: &str| -> (u16, Value) {
        let res = http
            .post(format!("{base}/api/recordings/{id}/{verb}"))
            .bearer_auth(&admin)
            .send()
            .unwrap();
        (res.status().as_u16(), res.json().unwrap_or(Value::Null))
    };
    std::thread::sleep(Duration::from_secs(2));
    let (st, paused) = post("pause");
    assert_eq!(st, 200, "{paused}\n{}", c.logs());
    assert_eq!(paused["applied"], true);
    std::thread::sleep(Duration::from_secs(5));
    let (st, resumed) = post("resume");
    assert_eq!(st, 200, "{resumed}\n{}", c.logs());
    let ts = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let paused_s = (ts(&resumed["gap"]["ended_at"]) - ts(&resumed["gap"]["started_at"]))
        .num_milliseconds() as f64
        / 1000.0;
    assert!(call.wait().unwrap().success());
    assert!(c.node(gw).log().contains("recording paused"));
    assert!(!c.node(api_node).log().contains("recording paused"));

    let media = api::play_when_stored(&http, &base, &admin, &id.to_string());
    let decoded = recorder::decode_ogg_opus(std::io::Cursor::new(media), 16_000).unwrap();
    let audio = decoded.channels[0].len() as f64 / 16_000.0;
    eprintln!(
        "pause: a {CALL_SECS} s call paused {paused_s:.2} s through the API node; \
         {audio:.2} s of audio stored by the gateway node"
    );
    assert!(
        (audio - (f64::from(CALL_SECS) - paused_s)).abs() < 1.0,
        "{audio:.2} s of audio, paused {paused_s:.2} s of {CALL_SECS} s"
    );
}
