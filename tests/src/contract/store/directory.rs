//! Directory users ([`DirectoryStore`]).
//!
//! [`DirectoryStore`]: insights_core::store::DirectoryStore

use super::fixtures::*;

pub async fn directory_users_upsert_get_replace(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let u = directory_user(t, "Alice", "Smith");
    must(s.upsert_directory_user(t, &u).await, "insert");
    assert_eq!(must(s.get_directory_user(t, u.id).await, "get"), u);
    let object_id = u.directory_object_id.clone().unwrap_or_default();
    assert_eq!(
        must(s.directory_user_by_object_id(t, &object_id).await, "by oid"),
        u
    );

    let changed = DirectoryUser {
        last_name: Some("Jones".into()),
        display_name: Some("Alice Jones".into()),
        phone_numbers: vec![],
        groups: vec!["support".into()],
        email: None,
        active: false,
        updated_at: now(),
        ..u.clone()
    };
    must(s.upsert_directory_user(t, &changed).await, "replace");
    assert_eq!(must(s.get_directory_user(t, u.id).await, "get"), changed);
    assert_eq!(
        must(s.list_directory_users(t).await, "list"),
        vec![changed.clone()]
    );

    assert_not_found(s.get_directory_user(t, UserId::new()).await, "missing");
    assert_not_found(
        s.directory_user_by_object_id(t, "no-such-object").await,
        "missing oid",
    );
    // Another tenant sees nothing.
    assert_not_found(s.get_directory_user(other, u.id).await, "other tenant");
    assert_not_found(
        s.directory_user_by_object_id(other, &object_id).await,
        "other tenant oid",
    );
    assert!(must(s.list_directory_users(other).await, "list other").is_empty());
}

pub async fn directory_users_list_order(s: &Store) {
    let t = tenant(s, "contoso").await;
    let mut users = vec![
        directory_user(t, "Carl", "Clark"),
        directory_user(t, "Zoe", "Adams"),
        directory_user(t, "Bert", "Baker"),
        directory_user(t, "Carl", "Clark"),
        directory_user(t, "Anna", "Baker"),
    ];
    for u in &users {
        must(s.upsert_directory_user(t, u).await, "upsert");
    }
    users.sort_by(|a, b| {
        (&a.last_name, &a.first_name, a.id).cmp(&(&b.last_name, &b.first_name, b.id))
    });
    assert_eq!(must(s.list_directory_users(t).await, "list"), users);
}

pub async fn directory_user_delete_rules(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let mut u = directory_user(t, "Alice", "Smith");
    must(s.upsert_directory_user(t, &u).await, "insert");
    assert_refused(s.delete_directory_user(t, u.id).await, "active user");
    assert_eq!(must(s.get_directory_user(t, u.id).await, "still there"), u);

    u.active = false;
    must(s.upsert_directory_user(t, &u).await, "deactivate");
    assert_not_found(s.delete_directory_user(other, u.id).await, "other tenant");
    must(s.get_directory_user(t, u.id).await, "survives other tenant");
    must(s.delete_directory_user(t, u.id).await, "delete inactive");
    assert_not_found(s.get_directory_user(t, u.id).await, "deleted");
    assert_not_found(s.delete_directory_user(t, u.id).await, "delete twice");
}
