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
