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

/// The `database` key provider over this store, as two nodes sharing it
/// would use it: a KEK only when asked for, the same KEK on every node
/// with the same root key, a node with another root key refused before it
/// writes, a bounded cache, rotation (the new version current at once on
/// every node, old versions destroyed at the end) and an edited row
/// refused by name.
pub async fn database_key_provider_across_nodes(s: &Store) {
    use insights_core::crypto::{CryptoError, DataKey, DatabaseKeyProvider, KeyProvider, RootKey};
    use insights_core::store::DataKeyStore;
    let t = tenant(s, "contoso").await;
    let kek_store: Arc<dyn DataKeyStore> = s.clone();
    let hex = "5a".repeat(32);
    let ttl = std::time::Duration::from_millis(300);
    let open = |hex: String| {
        let kek_store = kek_store.clone();
        async move {
            DatabaseKeyProvider::open(kek_store, must(RootKey::from_hex(&hex), "root key"), ttl)
                .await
        }
    };
    let a = must(open(hex.clone()).await, "node a");

    // Never created on the way.
    let dk = DataKey::generate(KeyId::new());
    assert!(matches!(a.wrap(t, &dk).await, Err(CryptoError::NoKek(x)) if x == t));
    assert!(matches!(a.current_kek(t).await, Err(CryptoError::NoKek(_))));
    assert!(must(s.list_keks(t).await, "none").is_empty());

    let v1 = must(a.ensure_kek(t).await, "ensure");
    assert_eq!(must(a.ensure_kek(t).await, "again"), v1, "idempotent");
    let w1 = must(a.wrap(t, &dk).await, "wrap");
    assert_eq!(w1.kek_id, v1);
    must(s.put_data_key(t, &w1).await, "put");

    // Another node, same root key: the same KEK.
    let b = must(open(hex.clone()).await, "node b");
    assert_eq!(must(b.unwrap(&w1).await, "b unwraps").bytes(), dk.bytes());
    assert_eq!(must(b.current_kek(t).await, "b current"), v1);

    // Another root key: refused at open, nothing written.
    let before = must(s.all_keks().await, "all");
    match open("a5".repeat(32)).await {
        Err(CryptoError::WrongRootKey { count, .. }) => assert_eq!(count, before.len()),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened with the wrong root key"),
    }
    assert_eq!(must(s.all_keks().await, "unchanged"), before);

    // The cache empties itself after its TTL.
    assert_eq!(b.cached_tenants(), 1);
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(b.cached_tenants(), 0, "expired KEKs dropped (and zeroised)");

    // Rotation begun on a: b wraps under the new version at once, and
    // both still unwrap the old one.
    let v2 = must(a.begin_rotation(t).await, "rotate");
    assert_ne!(v2, v1);
    assert_eq!(must(a.begin_rotation(t).await, "resume"), v2, "resumes");
    let dk2 = DataKey::generate(KeyId::new());
    assert_eq!(must(b.wrap(t, &dk2).await, "b wraps").kek_id, v2);
    assert_eq!(must(b.unwrap(&w1).await, "old").bytes(), dk.bytes());
    let rewrapped = must(
        a.wrap(t, &must(a.unwrap(&w1).await, "unwrap")).await,
        "rewrap",
    );
    assert_eq!(rewrapped.id, w1.id);
    assert!(must(s.rewrap_data_key(t, &rewrapped, &v1).await, "store"));
    assert_eq!(must(a.finish_rotation(t).await, "finish"), 1);
    assert_eq!(must(s.list_keks(t).await, "one left").len(), 1);
    assert_eq!(must(b.unwrap(&rewrapped).await, "new").bytes(), dk.bytes());
    assert!(a.unwrap(&w1).await.is_err(), "the old version is gone");
    // Another node forgets it within the cache's TTL.
    tokio::time::sleep(ttl * 2).await;
    assert!(
        b.unwrap(&w1).await.is_err(),
        "the old version is gone everywhere"
    );

    // An edited row is refused by name, for that tenant only.
    let other = tenant(s, "fabrikam").await;
    must(a.ensure_kek(other).await, "other");
    let mut rows = must(s.list_keks(t).await, "rows");
    let mut bad = rows.remove(0);
    bad.version += 1;
    bad.wrapped[5] ^= 1;
    bad.kek_id.push_str("-x");
    assert!(must(s.put_kek(t, &bad).await, "edited row"));
    let c = must(open(hex.clone()).await, "a node still starts");
    match c.current_kek(t).await {
        Err(CryptoError::BadWrappedKek {
            tenant, problem, ..
        }) => {
            assert_eq!(tenant, t);
            assert!(problem.contains("edited"), "{problem}");
        }
        got => panic!("edited KEK accepted: {got:?}"),
    }
    assert!(matches!(
        c.wrap(t, &dk2).await,
        Err(CryptoError::BadWrappedKek { .. })
    ));
    must(c.current_kek(other).await, "other tenant unaffected");
}
