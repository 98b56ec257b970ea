//! The Entra contract (`MetadataStore`'s directory sync state and OIDC
//! sessions), written once and run on every metadata backend by
//! `tests/tests/it/entra_sqlite.rs` and `tests/tests/it/entra_pg.rs`:
//!
//! ```ignore
//! async fn make() -> insights_tests::contract::store::StoreUnderTest { ... }
//! insights_tests::entra_contract_tests!(make);
//! ```

use std::fmt::Debug;

use chrono::{Duration, DurationRound};
use insights_core::domain::*;
use insights_core::store::{StoreError, StoreResult};
use uuid::Uuid;

use super::store::Store;

#[track_caller]
fn must<T, E: Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

#[track_caller]
fn assert_err<T: Debug>(r: StoreResult<T>, want: &str, what: &str) {
    let ok = matches!(
        (&r, want),
        (Err(StoreError::NotFound), "not-found")
            | (Err(StoreError::Conflict(_)), "conflict")
            | (Err(StoreError::Invalid(_)), "invalid")
    );
    assert!(ok, "{what}: expected {want}, got {r:?}");
}

/// Now, at the microsecond both backends keep.
fn at() -> chrono::DateTime<chrono::Utc> {
    now()
        .duration_trunc(Duration::microseconds(1))
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn tenant(s: &Store, name: &str) -> TenantId {
    must(
        s.create_tenant(NewTenant {
            name: name.to_owned(),
            directory_tenant_id: Some(Uuid::new_v4()),
        })
        .await,
        "create tenant",
    )
    .id
}

fn session(t: TenantId, n: u8) -> OidcSession {
    let now = at();
    OidcSession {
        token_hash: hex::encode([n; 32]),
        tenant_id: t,
        subject: format!("oid-{n}"),
        role: Role::ComplianceOfficer,
        directory_user_id: Some(UserId::new()),
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::hours(12),
        revoked_at: None,
    }
}

fn dir_user(t: TenantId, n: u32) -> DirectoryUser {
    DirectoryUser {
        id: UserId::new(),
        tenant_id: t,
        directory_object_id: Some(format!("oid-{n}")),
        first_name: Some(format!("First{n}")),
        last_name: Some(format!("Last{n}")),
        display_name: None,
        alias: None,
        email: None,
        upn: None,
        phone_numbers: vec![format!("+1425555{n:04}")],
        sip_uri: None,
        tel_uri: None,
        groups: Vec::new(),
        active: true,
        updated_at: at(),
    }
}

pub async fn directory_users_upsert_many_is_all_or_nothing(s: &Store) {
    let t = tenant(s, "contoso").await;
    must(s.upsert_directory_users(t, &[]).await, "empty batch");
    let mut batch: Vec<DirectoryUser> = (0..5).map(|n| dir_user(t, n)).collect();
    must(s.upsert_directory_users(t, &batch).await, "batch");
    let mut stored = must(s.list_directory_users(t).await, "list");
    stored.sort_by_key(|u| u.directory_object_id.clone());
    assert_eq!(stored, batch);
    // Replacing in a batch, with one row of another tenant in it: refused
    // whole, nothing of it stored.
    let other = tenant(s, "fabrikam").await;
    batch[0].active = false;
    batch[1].last_name = Some("Changed".into());
    let mut bad = batch.clone();
    bad.push(dir_user(other, 9));
    assert_err(
        s.upsert_directory_users(t, &bad).await,
        "invalid",
        "mixed tenants",
    );
    let mut now_stored = must(s.list_directory_users(t).await, "list");
    now_stored.sort_by_key(|u| u.directory_object_id.clone());
    assert_eq!(now_stored, stored, "a refused batch changes nothing");
    must(s.upsert_directory_users(t, &batch).await, "replace");
    let got = must(s.get_directory_user(t, batch[1].id).await, "get");
    assert_eq!(got.last_name.as_deref(), Some("Changed"));
    assert!(!must(s.get_directory_user(t, batch[0].id).await, "get").active);
    assert!(must(s.list_directory_users(other).await, "other").is_empty());
}

pub async fn directory_sync_state_put_get_replace(s: &Store) {
    let t = tenant(s, "contoso").await;
    assert_eq!(must(s.get_directory_sync_state(t).await, "get"), None);
    let first = DirectorySyncState {
        tenant_id: t,
        delta_link: Some(
            "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=abc&$select=id".into(),
        ),
        last_sync_at: at(),
        last_full_sync_at: Some(at()),
    };
    must(s.put_directory_sync_state(t, &first).await, "put");
    assert_eq!(
        must(s.get_directory_sync_state(t).await, "get"),
        Some(first.clone())
    );
    let second = DirectorySyncState {
        delta_link: None,
        last_sync_at: at() + Duration::minutes(5),
        last_full_sync_at: None,
        ..first
    };
    must(s.put_directory_sync_state(t, &second).await, "replace");
    assert_eq!(
        must(s.get_directory_sync_state(t).await, "get"),
        Some(second.clone())
    );
    let other = tenant(s, "fabrikam").await;
    assert_err(
        s.put_directory_sync_state(other, &second).await,
        "invalid",
        "state of another tenant",
    );
    let unknown = TenantId::new();
    assert_err(
        s.put_directory_sync_state(
            unknown,
            &DirectorySyncState {
                tenant_id: unknown,
                ..second
            },
        )
        .await,
        "not-found",
        "unknown tenant",
    );
}

pub async fn directory_sync_state_is_tenant_scoped(s: &Store) {
    let a = tenant(s, "contoso").await;
    let b = tenant(s, "fabrikam").await;
    let state = DirectorySyncState {
        tenant_id: a,
        delta_link: Some("https://graph.microsoft.com/v1.0/users/delta?$deltatoken=a".into()),
        last_sync_at: at(),
        last_full_sync_at: None,
    };
    must(s.put_directory_sync_state(a, &state).await, "put");
    assert_eq!(must(s.get_directory_sync_state(b).await, "get b"), None);
    assert_eq!(
        must(s.get_directory_sync_state(a).await, "get a"),
        Some(state)
    );
}

pub async fn oidc_sessions_create_touch_revoke(s: &Store) {
    let t = tenant(s, "contoso").await;
    let x = session(t, 7);
    must(s.create_oidc_session(t, &x).await, "create");
    assert_eq!(must(s.get_oidc_session(t, &x.token_hash).await, "get"), x);
    let mut no_user = session(t, 8);
    no_user.directory_user_id = None;
    no_user.role = Role::TenantAdmin;
    must(s.create_oidc_session(t, &no_user).await, "create");
    assert_eq!(
        must(s.get_oidc_session(t, &no_user.token_hash).await, "get"),
        no_user
    );
    assert_err(s.create_oidc_session(t, &x).await, "conflict", "same token");
    assert_err(
        s.get_oidc_session(t, &hex::encode([9u8; 32])).await,
        "not-found",
        "unknown",
    );
    let other = tenant(s, "fabrikam").await;
    assert_err(
        s.create_oidc_session(other, &session(t, 10)).await,
        "invalid",
        "session of another tenant",
    );

    let later = x.last_seen_at + Duration::minutes(5);
    must(s.touch_oidc_session(t, &x.token_hash, later).await, "touch");
    must(
        s.touch_oidc_session(t, &x.token_hash, x.last_seen_at).await,
        "touch earlier",
    );
    assert_eq!(
        must(s.get_oidc_session(t, &x.token_hash).await, "get").last_seen_at,
        later
    );
    assert_err(
        s.touch_oidc_session(t, &hex::encode([9u8; 32]), later)
            .await,
        "not-found",
        "touch unknown",
    );

    let when = at();
    assert!(must(
        s.revoke_oidc_session(t, &x.token_hash, when).await,
        "revoke"
    ));
    assert!(!must(
        s.revoke_oidc_session(t, &x.token_hash, at()).await,
        "revoke twice"
    ));
    let got = must(s.get_oidc_session(t, &x.token_hash).await, "revoked");
    assert_eq!(got.revoked_at, Some(when));
    assert!(!got.is_live(when, Duration::hours(1)));
    assert_err(
        s.revoke_oidc_session(t, &hex::encode([9u8; 32]), at())
            .await,
        "not-found",
        "revoke unknown",
    );
}

pub async fn oidc_sessions_are_tenant_scoped(s: &Store) {
    let a = tenant(s, "contoso").await;
    let b = tenant(s, "fabrikam").await;
    let x = session(a, 1);
    must(s.create_oidc_session(a, &x).await, "create");
    assert_err(
        s.get_oidc_session(b, &x.token_hash).await,
        "not-found",
        "another tenant's session",
    );
    assert_err(
        s.touch_oidc_session(b, &x.token_hash, at()).await,
        "not-found",
        "touch from another tenant",
    );
    assert_err(
        s.revoke_oidc_session(b, &x.token_hash, at()).await,
        "not-found",
        "revoke from another tenant",
    );
    assert!(
        must(s.get_oidc_session(a, &x.token_hash).await, "still there")
            .revoked_at
            .is_none()
    );
    // The same token hash may exist in two tenants (the key is per tenant).
    let y = OidcSession {
        tenant_id: b,
        ..x.clone()
    };
    must(
        s.create_oidc_session(b, &y).await,
        "same hash, other tenant",
    );
}
