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
