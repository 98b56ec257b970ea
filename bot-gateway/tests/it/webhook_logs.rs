//! The logs of a whole call (invite, roster, states, a refused token, a
//! malformed body, hang-up) contain no participant name, number or UPN.
//! One test in this binary: it installs the process-wide subscriber, so
//! the logs of the server's worker threads are captured too.

use crate::support;

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use insights_core::config::{LogFormat, LogSettings};
use serde_json::json;
use support::Harness;
use support::notify::{self, Invite, Person};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_leaves_no_personal_data_in_the_logs() {
    let cap = Capture::default();
    let settings = LogSettings {
        format: LogFormat::Json,
        level: "trace".into(),
    };
    tracing::subscriber::set_global_default(insights_core::telemetry::subscriber(
        &settings,
        cap.clone(),
    ))
    .unwrap_or_else(|e| panic!("{e}"));

    let h = Harness::start().await;
    let rec = Person::new("Quentin Quiet", "quentin.quiet@contoso.example");
    let other = Person::new("Xenia Xylo", "xenia.xylo@fabrikam.example");
    let guest = Person::new("Gustav Gast", "gustav@guest.example");
    h.add_directory_user(&rec).await;
    let pstn_pid = uuid::Uuid::new_v4().to_string();
    let mut invite = Invite::new("log-call-1", &h.tid, &rec, "callee");
    invite.other_side = Some(notify::other_participant(&pstn_pid, "caller"));
    invite.transferor = Some(other.identity(&h.tid));
    assert_eq!(h.notify(vec![invite.notification()]).await.0, 202);
    h.wait_answered("log-call-1").await;
    let roster = vec![
        notify::bot_participant(),
        notify::participant(&rec.participant_id, rec.identity(&h.tid), "1"),
        notify::participant(&pstn_pid, notify::phone_identity("+1 425 555 0142"), "2"),
        notify::participant(
            &guest.participant_id,
            json!({"guest": {"id": guest.oid, "displayName": guest.name}}),
            "3",
        ),
    ];
    assert_eq!(
        h.notify(vec![
            notify::state("log-call-1", "established"),
            notify::roster("log-call-1", roster.clone()),
            notify::state("log-call-1", "establishing"),
            notify::roster_removed("log-call-1", vec![roster[3].clone()]),
        ])
        .await
        .0,
        202
    );
    h.state
        .registry
        .begin_recording("log-call-1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A refused token and a malformed body along the way.
    let bad = h.post_raw(Some("Bearer nope"), b"{}".to_vec()).await;
    assert_eq!(bad.status().as_u16(), 401);
    let mut broken = notify::state("log-call-1", "established");
    broken["resourceData"]["state"] = json!({"name": "Quentin Quiet"});
    assert_eq!(h.notify(vec![broken]).await.0, 400);
    assert_eq!(
        h.notify(vec![notify::deleted(
            "log-call-1",
            200,
            5001,
            "Quentin Quiet hung up on +1 425 555 0142"
        )])
        .await
        .0,
        202
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    let logs =
        String::from_utf8_lossy(&cap.0.lock().map(|b| b.clone()).unwrap_or_default()).into_owned();
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("{logs}");
    }
    assert!(
        logs.contains("log-call-1"),
        "logs were not captured:\n{logs}"
    );
    for secret in [
        "Quentin",
        "Quiet",
        "quentin.quiet",
        "Xenia",
        "Xylo",
        "xenia.xylo",
        "Gustav",
        "gustav@",
        "425 555 0142",
        "4255550142",
        "contoso.example",
        "fabrikam.example",
        "hung up",
    ] {
        assert!(!logs.contains(secret), "log leaks `{secret}`:\n{logs}");
    }
}
