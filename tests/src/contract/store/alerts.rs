#![allow(clippy::expect_used, clippy::unwrap_used)] // contract cases: a failed expectation is the case failing
//! Alerts ([`AlertStore`]): deduplication within the window and while
//! open, acknowledgement, delivery state, the rate-limit count, channels
//! per realm (a tenant's never seen by another tenant or the
//! installation), heartbeats, and the two counts the rules read.
//!
//! [`AlertStore`]: insights_core::store::AlertStore

use std::time::Duration as Std;

use super::fixtures::*;

const HOUR: Std = Std::from_secs(3600);

fn failure(reason: &'static str) -> NewAlert {
    NewAlert::new(AlertKind::RecordingFailure)
        .keyed_by_code("reason", reason)
        .count("calls", 1)
}

fn sealed(tenant: TenantId) -> insights_core::crypto::SealedSecret {
    insights_core::crypto::SealedSecret {
        key: WrappedDataKey {
            id: KeyId::new(),
            tenant_id: tenant,
            kek_id: "local:kek".into(),
            wrapped: vec![7; 60],
            created_at: now(),
        },
        sealed: (0u8..40).collect(),
    }
}

pub async fn the_same_open_condition_is_one_alert_within_the_window(s: &Store) {
    let t = tenant(s, "alerts-dedup").await;
    let realm = Realm::Tenant(t);
    let t0 = now();
    let first = must(
        s.raise_alert(realm, &failure("spool-full"), t0, HOUR).await,
        "raise",
    );
    let Raised::New(a) = first else {
        panic!("first is new: {first:?}")
    };
    assert_eq!(a.occurrences, 1);
    assert_eq!(a.delivery, delivery::PENDING);
    assert_eq!(a.tenant_id, Some(t));
    assert_eq!(a.details["reason"], "spool-full");
    // Again within the window: counted, not new.
    let again = must(
        s.raise_alert(
            realm,
            &failure("spool-full"),
            t0 + Duration::seconds(5),
            HOUR,
        )
        .await,
        "again",
    );
    let Raised::Repeat(b) = again else {
        panic!("repeat: {again:?}")
    };
    assert_eq!((b.id, b.occurrences), (a.id, 2));
    assert_eq!(b.last_at, t0 + Duration::seconds(5));
    // Another key is another alert.
    let other = must(
        s.raise_alert(realm, &failure("key-service"), t0, HOUR)
            .await,
        "other",
    );
    assert!(matches!(other, Raised::New(_)));
    // After the window: a new alert.
    let later = must(
        s.raise_alert(realm, &failure("spool-full"), t0 + Duration::hours(2), HOUR)
            .await,
        "later",
    );
    let Raised::New(c) = later else {
        panic!("after the window: {later:?}")
    };
    assert_ne!(c.id, a.id);
    // Acknowledged: the next one is new, even within the window.
    let acked = must(
        s.acknowledge_alert(realm, c.id, "acct-1", now()).await,
        "ack",
    );
    assert_eq!(acked.unwrap().acknowledged_by.as_deref(), Some("acct-1"));
    assert_eq!(
        must(
            s.acknowledge_alert(realm, c.id, "acct-2", now()).await,
            "twice"
        ),
        None,
        "already acknowledged"
    );
    let after_ack = must(
        s.raise_alert(
            realm,
            &failure("spool-full"),
            t0 + Duration::hours(2) + Duration::seconds(1),
            HOUR,
        )
        .await,
        "after ack",
    );
    assert!(matches!(after_ack, Raised::New(_)));
    let all = must(s.alerts(realm, false, 100).await, "list");
    assert_eq!(all.len(), 4);
    assert!(
        all.windows(2).all(|w| w[0].first_at >= w[1].first_at),
        "newest first"
    );
    let open = must(s.alerts(realm, true, 100).await, "open");
    assert_eq!(open.len(), 3);
    assert_not_found(
        s.acknowledge_alert(realm, AlertId::new(), "x", now()).await,
        "missing",
    );
}

pub async fn delivery_state_and_the_hourly_count(s: &Store) {
    let t = tenant(s, "alerts-delivery").await;
    let realm = Realm::Tenant(t);
    let a = must(s.raise_alert(realm, &failure("a"), now(), HOUR).await, "a")
        .alert()
        .clone();
    let b = must(s.raise_alert(realm, &failure("b"), now(), HOUR).await, "b")
        .alert()
        .clone();
    let pending = must(s.alerts_to_deliver(realm, 10).await, "pending");
    assert_eq!(
        pending.iter().map(|x| x.id).collect::<Vec<_>>(),
        [a.id, b.id],
        "oldest first"
    );
    let mut d = serde_json::Map::new();
    d.insert("ch".into(), "sent".into());
    must(
        s.set_alert_delivery(realm, a.id, delivery::DELIVERED, &d, 1)
            .await,
        "set",
    );
    must(
        s.set_alert_delivery(
            realm,
            b.id,
            delivery::RATE_LIMITED,
            &serde_json::Map::new(),
            0,
        )
        .await,
        "set",
    );
    assert!(must(s.alerts_to_deliver(realm, 10).await, "none").is_empty());
    let got = must(s.alert(realm, a.id).await, "get");
    assert_eq!(
        (got.delivery.as_str(), got.attempts),
        (delivery::DELIVERED, 1)
    );
    assert_eq!(got.deliveries["ch"], "sent");
    assert_eq!(
        must(
            s.count_alerts_sent_since(realm, now() - Duration::hours(1))
                .await,
            "count"
        ),
        1,
        "rate-limited ones were not sent"
    );
    assert_not_found(
        s.set_alert_delivery(realm, AlertId::new(), delivery::FAILED, &d, 1)
            .await,
        "missing",
    );
}

pub async fn realms_do_not_see_each_others_alerts_or_channels(s: &Store) {
    let t1 = tenant(s, "alerts-one").await;
    let t2 = tenant(s, "alerts-two").await;
    let (r1, r2) = (Realm::Tenant(t1), Realm::Tenant(t2));
    let a = must(s.raise_alert(r1, &failure("x"), now(), HOUR).await, "raise")
        .alert()
        .clone();
    let node = must(
        s.raise_alert(
            Realm::Platform,
            &NewAlert::new(AlertKind::NodeDown).keyed_by_node("gw-1"),
            now(),
            HOUR,
        )
        .await,
        "installation",
    )
    .alert()
    .clone();
    assert_eq!(node.tenant_id, None);
    assert!(must(s.alerts(r2, false, 10).await, "t2").is_empty());
    assert_eq!(
        must(s.alerts(Realm::Platform, false, 10).await, "platform").len(),
        1
    );
    assert_not_found(s.alert(r2, a.id).await, "t2 reads t1's");
    assert_not_found(s.alert(Realm::Platform, a.id).await, "platform reads t1's");
    assert_not_found(
        s.acknowledge_alert(r2, a.id, "x", now()).await,
        "t2 acks t1's",
    );
    // The same condition in another realm is its own alert.
    assert!(matches!(
        must(s.raise_alert(r2, &failure("x"), now(), HOUR).await, "t2"),
        Raised::New(_)
    ));

    let ch = AlertChannel {
        id: AlertChannelId::new(),
        tenant_id: Some(t1),
        kind: ChannelKind::Webhook,
        name: "soc".into(),
        target: "https://soc.example/hook".into(),
        secret: Some(sealed(t1)),
        enabled: true,
        created_at: now(),
        created_by: "acct".into(),
    };
    must(s.put_alert_channel(r1, &ch).await, "put");
    assert_invalid(s.put_alert_channel(r2, &ch).await, "into another realm");
    assert_eq!(must(s.alert_channels(r1).await, "list"), vec![ch.clone()]);
    assert!(must(s.alert_channels(r2).await, "t2").is_empty());
    assert!(must(s.alert_channels(Realm::Platform).await, "platform").is_empty());
    let inst = AlertChannel {
        id: AlertChannelId::new(),
        tenant_id: None,
        kind: ChannelKind::Email,
        name: "ops".into(),
        target: "ops@example.com".into(),
        secret: None,
        ..ch.clone()
    };
    must(
        s.put_alert_channel(Realm::Platform, &inst).await,
        "installation channel",
    );
    assert_eq!(
        must(s.alert_channels(Realm::Platform).await, "platform"),
        vec![inst.clone()]
    );
    assert!(!must(
        s.delete_alert_channel(r2, ch.id).await,
        "t2 deletes t1's"
    ));
    assert!(must(s.delete_alert_channel(r1, ch.id).await, "delete"));
    assert!(must(s.alert_channels(r1).await, "gone").is_empty());
}

pub async fn heartbeats_and_the_rules_counts(s: &Store) {
    let hb = NodeHeartbeat {
        node: "gw-1".into(),
        roles: "gateway".into(),
        at: now(),
        spool_used: Some(10),
        spool_quota: Some(100),
        oldest_pending_at: Some(now() - Duration::minutes(5)),
    };
    must(s.put_node_heartbeat(&hb).await, "put");
    let later = NodeHeartbeat {
        at: now() + Duration::seconds(1),
        spool_used: Some(20),
        ..hb.clone()
    };
    must(s.put_node_heartbeat(&later).await, "replace");
    assert_eq!(must(s.node_heartbeats().await, "list"), vec![later]);
    must(s.delete_node_heartbeat("gw-1").await, "delete");
    assert!(must(s.node_heartbeats().await, "gone").is_empty());

    let t = tenant(s, "alerts-counts").await;
    assert_eq!(must(s.last_recording_started(t).await, "none"), None);
    let started = now() - Duration::minutes(3);
    let r = full_recording(t, started);
    must(s.insert_recording(t, &r).await, "insert");
    assert_eq!(
        must(s.last_recording_started(t).await, "one"),
        Some(started)
    );
    assert_eq!(
        must(
            s.count_dead_jobs(t, now() - Duration::hours(1)).await,
            "dead"
        ),
        0
    );
}
