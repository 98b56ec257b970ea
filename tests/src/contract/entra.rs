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

/// A session's claims and active confirmation: stored, read back, kept
/// per tenant; a confirmation never moves backwards.
pub async fn oidc_session_claims_and_active_confirmation(s: &Store) {
    let t = tenant(s, "claims").await;
    let other = tenant(s, "claims-other").await;
    let x = session(t, 7);
    must(s.create_oidc_session(t, &x).await, "create");
    let empty = must(s.get_oidc_session_claims(t, &x.token_hash).await, "get");
    assert_eq!(empty, OidcSessionClaims::default(), "none stored yet");
    let c = OidcSessionClaims {
        roles: vec!["Insights.Supervisor".into()],
        groups: vec!["grp-a".into(), "grp-b".into()],
        active_confirmed_at: Some(at()),
    };
    must(s.set_oidc_session_claims(t, &x.token_hash, &c).await, "set");
    assert_eq!(
        must(s.get_oidc_session_claims(t, &x.token_hash).await, "get"),
        c
    );
    let later = at() + Duration::seconds(30);
    must(
        s.confirm_oidc_session_active(t, &x.token_hash, later).await,
        "confirm",
    );
    must(
        s.confirm_oidc_session_active(t, &x.token_hash, later - Duration::minutes(5))
            .await,
        "confirm older",
    );
    let got = must(s.get_oidc_session_claims(t, &x.token_hash).await, "get");
    assert_eq!(got.active_confirmed_at, Some(later), "never backwards");
    assert_eq!(got.groups, c.groups);
    assert_err(
        s.get_oidc_session_claims(other, &x.token_hash).await,
        "not-found",
        "another tenant's session",
    );
    assert_err(
        s.set_oidc_session_claims(other, &x.token_hash, &c).await,
        "not-found",
        "another tenant's session",
    );
    assert_err(
        s.confirm_oidc_session_active(t, &hex::encode([9u8; 32]), later)
            .await,
        "not-found",
        "no such session",
    );
}

/// Participants stored with an Entra object id are linked to the
/// directory user of that id once it exists: e-mail (else UPN), SIP URI
/// and user id filled where empty, nothing overwritten, other tenants
/// untouched, erased participants never linked again.
pub async fn participants_are_linked_to_the_directory_by_object_id(s: &Store) {
    let t = tenant(s, "link").await;
    let other = tenant(s, "link-other").await;
    let p = |name: &str, email: Option<&str>| Participant {
        id: ParticipantId::new(),
        role: ParticipantRole::Callee,
        display_name: Some(name.to_owned()),
        phone_number: None,
        uri: None,
        email: email.map(str::to_owned),
        directory_user_id: None,
        recorded_user: true,
        joined_ms: Some(0),
        left_ms: None,
    };
    let mut r = Recording::new(t, RecordingKind::Call, Direction::Inbound, at());
    let (late, kept, erased, stranger) = (
        p("Late", None),
        p("Kept", Some("own@example.com")),
        p("Erased", None),
        p("Stranger", None),
    );
    r.participants = vec![late.clone(), kept.clone(), erased.clone(), stranger.clone()];
    must(s.insert_recording(t, &r).await, "insert");
    for (part, oid) in [
        (&late, "OID-LATE"),
        (&kept, "oid-kept"),
        (&erased, "oid-erased"),
    ] {
        must(
            s.set_participant_object_id(t, r.id, part.id, oid).await,
            "object id",
        );
    }
    assert_err(
        s.set_participant_object_id(other, r.id, late.id, "oid-x")
            .await,
        "not-found",
        "another tenant's participant",
    );
    assert_eq!(
        must(s.link_participants_to_directory(t).await, "link"),
        0,
        "no directory users yet"
    );
    must(
        s.erase_participant_identity(t, r.id, erased.id, "erased-1")
            .await,
        "erase",
    );
    let user = |n: u32, oid: &str, upn: &str, mail: Option<&str>, sip: Option<&str>| {
        let mut u = dir_user(t, n);
        u.directory_object_id = Some(oid.to_owned());
        u.upn = Some(upn.to_owned());
        u.email = mail.map(str::to_owned);
        u.sip_uri = sip.map(str::to_owned);
        u
    };
    let late_user = user(
        1,
        "oid-late",
        "late@example.com",
        None,
        Some("sip:late@example.com"),
    );
    let kept_user = user(
        2,
        "oid-kept",
        "kept@example.com",
        Some("kept.mail@example.com"),
        None,
    );
    let erased_user = user(3, "oid-erased", "erased@example.com", None, None);
    must(
        s.upsert_directory_users(t, &[late_user.clone(), kept_user.clone(), erased_user])
            .await,
        "users",
    );
    assert_eq!(
        must(s.link_participants_to_directory(other).await, "link other"),
        0
    );
    assert_eq!(must(s.link_participants_to_directory(t).await, "link"), 2);
    assert_eq!(
        must(s.link_participants_to_directory(t).await, "again"),
        0,
        "idempotent"
    );
    let got = must(s.get_recording(t, r.id).await, "get");
    let find = |id: ParticipantId| {
        got.participants
            .iter()
            .find(|x| x.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("participant missing"))
    };
    let l = find(late.id);
    assert_eq!(
        l.email.as_deref(),
        Some("late@example.com"),
        "UPN when no mail"
    );
    assert_eq!(l.uri.as_deref(), Some("sip:late@example.com"));
    assert_eq!(l.directory_user_id, Some(late_user.id));
    let k = find(kept.id);
    assert_eq!(
        k.email.as_deref(),
        Some("own@example.com"),
        "never overwritten"
    );
    assert_eq!(k.directory_user_id, Some(kept_user.id));
    let e = find(erased.id);
    assert_eq!(
        (e.email, e.directory_user_id),
        (None, None),
        "erased stays erased"
    );
    let x = find(stranger.id);
    assert_eq!((x.email, x.directory_user_id), (None, None));
    // Found by the e-mail the link filled in, like one linked at capture.
    let keys = SubjectKeys {
        emails: vec!["late@example.com".into()],
        ..SubjectKeys::default()
    };
    let hits = must(s.find_subject_participants(t, &keys, 0).await, "find");
    assert!(hits.iter().any(|h| h.participant_id == late.id), "{hits:?}");
}
