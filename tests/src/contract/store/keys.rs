//! Wrapped data keys ([`DataKeyStore`]).
//!
//! [`DataKeyStore`]: insights_core::store::DataKeyStore

use super::fixtures::*;

pub async fn data_keys_put_get_shred(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let key = WrappedDataKey {
        id: KeyId::new(),
        tenant_id: t,
        kek_id: "kek-2026-01".into(),
        wrapped: (0u8..=255).chain(0..60).collect(),
        created_at: now(),
    };
    let key2 = WrappedDataKey {
        id: KeyId::new(),
        wrapped: vec![7; 60],
        ..key.clone()
    };
    must(s.put_data_key(t, &key).await, "put");
    must(s.put_data_key(t, &key2).await, "put 2");
    assert_eq!(must(s.get_data_key(t, key.id).await, "get"), key);
    assert_not_found(s.get_data_key(t, KeyId::new()).await, "missing");

    // Another tenant can neither read nor destroy it.
    assert_not_found(s.get_data_key(other, key.id).await, "other get");
    assert!(
        !must(s.shred_data_key(other, key.id).await, "other shred"),
        "other tenant shreds nothing"
    );
    assert_eq!(must(s.get_data_key(t, key.id).await, "still there"), key);

    assert!(must(s.shred_data_key(t, key.id).await, "shred"));
    assert_not_found(s.get_data_key(t, key.id).await, "shredded");
    assert!(
        !must(s.shred_data_key(t, key.id).await, "shred twice"),
        "second shred destroys nothing"
    );
    assert_eq!(must(s.get_data_key(t, key2.id).await, "sibling"), key2);
}

/// A legal hold wins over crypto-shredding and deletion, decided in the
/// transaction that deletes: from the active holds themselves, even
/// before a hold's sweep has set the recording's flag.
pub async fn shred_and_delete_refuse_a_held_recording(s: &Store) {
    let t = tenant(s, "contoso").await;
    let mut r = full_recording(t, now() - Duration::days(3));
    let key = WrappedDataKey {
        id: KeyId::new(),
        tenant_id: t,
        kek_id: "kek-2026-01".into(),
        wrapped: vec![9; 60],
        created_at: now(),
    };
    if let Some(m) = r.media.as_mut() {
        m.data_key_id = key.id;
    }
    must(s.insert_recording(t, &r).await, "insert");
    must(s.put_data_key(t, &key).await, "put key");
    // A hold written as a placement does, before its sweep reaches the
    // recording: the flag is still down.
    let hold = LegalHold {
        id: LegalHoldId::new(),
        tenant_id: t,
        case_name: "Inquiry".into(),
        reason: None,
        scope: HoldScope {
            recording_ids: vec![r.id],
            ..HoldScope::default()
        },
        placed_by: "test".into(),
        placed_at: now(),
        lifted_by: None,
        lifted_at: None,
    };
    must(s.create_legal_hold(t, &hold).await, "hold");
    assert!(!must(s.get_recording(t, r.id).await, "get").legal_hold);

    assert_refused(s.shred_data_key(t, key.id).await, "shred of a held key");
    assert_eq!(must(s.get_data_key(t, key.id).await, "key kept"), key);
    assert_refused(
        s.delete_recording(t, r.id).await,
        "delete of a held recording",
    );
    assert!(must(s.get_recording(t, r.id).await, "kept").legal_hold);

    // Lifted: both go through.
    must(s.lift_legal_hold(t, hold.id, "test").await, "lift");
    must(s.apply_legal_holds(t, r.id).await, "re-evaluate");
    assert!(must(s.shred_data_key(t, key.id).await, "shred"));
    must(s.delete_recording(t, r.id).await, "delete");
}

/// Rotation's view of the data keys: those not under a KEK, counted and
/// listed in batches, rewrapped only from the KEK they are under.
pub async fn data_keys_rewrap_in_batches(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let mut keys = Vec::new();
    for i in 0..5u8 {
        let k = WrappedDataKey {
            id: KeyId::new(),
            tenant_id: t,
            kek_id: "old".into(),
            wrapped: vec![i; 60],
            created_at: now() - Duration::seconds(10 - i64::from(i)),
        };
        must(s.put_data_key(t, &k).await, "put");
        keys.push(k);
    }
    let theirs = WrappedDataKey {
        id: KeyId::new(),
        tenant_id: other,
        kek_id: "old".into(),
        wrapped: vec![9; 60],
        created_at: now(),
    };
    must(s.put_data_key(other, &theirs).await, "put other");

    assert_eq!(
        must(s.count_data_keys_not_under(t, "new").await, "count"),
        5
    );
    assert_eq!(
        must(s.count_data_keys_not_under(t, "old").await, "count"),
        0
    );
    let batch = must(s.data_keys_not_under(t, "new", 2).await, "batch");
    assert_eq!(batch, keys[..2].to_vec(), "oldest first, bounded");

    let mut moved = batch[0].clone();
    moved.kek_id = "new".into();
    moved.wrapped = vec![42; 60];
    assert!(must(s.rewrap_data_key(t, &moved, "old").await, "rewrap"));
    assert!(
        !must(s.rewrap_data_key(t, &moved, "old").await, "rewrap twice"),
        "only from the KEK it is under"
    );
    assert_eq!(must(s.get_data_key(t, moved.id).await, "get"), moved);
    assert_eq!(
        must(s.count_data_keys_not_under(t, "new").await, "count"),
        4
    );
    // Another tenant's key is out of reach.
    let mut foreign = theirs.clone();
    foreign.kek_id = "new".into();
    assert!(s.rewrap_data_key(t, &foreign, "old").await.is_err());
    assert_eq!(
        must(s.get_data_key(other, theirs.id).await, "theirs"),
        theirs
    );
}

/// Key-encryption keys of the `database` provider: versions never
/// replaced, listed per tenant, old versions destroyed, all of them
/// visible to the platform-scope start-up check.
pub async fn keks_versions_and_destruction(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let at = now();
    let kek = |tenant, version: u32, fill: u8| WrappedKek {
        tenant_id: tenant,
        version,
        kek_id: format!("db:{tenant}:{version}"),
        root_check: vec![1; 8],
        wrapped: vec![fill; 60],
        created_at: at,
    };
    assert!(must(s.list_keks(t).await, "empty").is_empty());
    assert!(must(s.put_kek(t, &kek(t, 1, 1)).await, "v1"));
    assert!(
        !must(s.put_kek(t, &kek(t, 1, 9)).await, "v1 again"),
        "a version is never replaced"
    );
    assert!(must(s.put_kek(t, &kek(t, 2, 2)).await, "v2"));
    assert!(must(s.put_kek(other, &kek(other, 1, 3)).await, "other v1"));
    assert!(
        s.put_kek(t, &kek(other, 3, 3)).await.is_err(),
        "a row of another tenant is refused"
    );

    let mine = must(s.list_keks(t).await, "list");
    assert_eq!(mine, vec![kek(t, 1, 1), kek(t, 2, 2)]);
    assert_eq!(must(s.list_keks(other).await, "list other").len(), 1);
    assert_eq!(must(s.all_keks().await, "all").len(), 3);

    assert_eq!(must(s.delete_keks_before(t, 2).await, "destroy"), 1);
    assert_eq!(must(s.list_keks(t).await, "after"), vec![kek(t, 2, 2)]);
    assert_eq!(must(s.list_keks(other).await, "other after").len(), 1);
    assert_eq!(must(s.delete_keks_before(t, 2).await, "again"), 0);
}
