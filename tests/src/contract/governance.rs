//! Contract suite for the governance queries of [`MetadataStore`]:
//! recording sweeps (`list_recordings_for_governance`), the legal-hold
//! flag kept from the active holds (`apply_legal_holds`, and the store
//! flagging recordings inserted or joined after a hold was placed), and
//! tenant account administration (`update_account`). Run on SQLite and
//! PostgreSQL by `tests/tests/it/governance_{sqlite,pg}.rs`.

use chrono::{DateTime, Duration, Utc};
use insights_core::domain::*;
use insights_core::store::{AccountChange, GovernanceQuery, StoreError};

use super::store::Store;

#[track_caller]
fn must<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

async fn tenant(s: &Store, name: &str) -> TenantId {
    must(
        s.create_tenant(NewTenant {
            name: name.to_owned(),
            directory_tenant_id: None,
        })
        .await,
        "tenant",
    )
    .id
}

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn person(user: Option<UserId>, phone: Option<&str>) -> Participant {
    Participant {
        id: ParticipantId::new(),
        role: ParticipantRole::Caller,
        display_name: None,
        phone_number: phone.map(str::to_owned),
        uri: None,
        email: None,
        directory_user_id: user,
        recorded_user: user.is_some(),
        joined_ms: None,
        left_ms: None,
    }
}

async fn rec(s: &Store, t: TenantId, started: DateTime<Utc>, parts: Vec<Participant>) -> Recording {
    let mut r = Recording::new(t, RecordingKind::Call, Direction::Inbound, started);
    r.participants = parts;
    must(s.insert_recording(t, &r).await, "insert");
    must(s.get_recording(t, r.id).await, "get")
}

fn hold(t: TenantId, scope: HoldScope) -> LegalHold {
    LegalHold {
        id: LegalHoldId::new(),
        tenant_id: t,
        case_name: "Case".into(),
        reason: None,
        scope,
        placed_by: "acc".into(),
        placed_at: now(),
        lifted_by: None,
        lifted_at: None,
    }
}

async fn ids(s: &Store, t: TenantId, q: GovernanceQuery) -> Vec<RecordingId> {
    must(s.list_recordings_for_governance(t, &q).await, "sweep")
        .into_iter()
        .map(|r| r.id)
        .collect()
}

pub async fn governance_sweep_filters_and_pages(s: &Store) {
    let t = tenant(s, "contoso").await;
    let user = UserId::new();
    let mut all = Vec::new();
    // Two recordings share a start time: the id breaks the tie.
    for i in [0, 1, 1, 2, 3, 4] {
        let parts = if i % 2 == 0 {
            vec![person(Some(user), None)]
        } else {
            vec![person(None, Some("+14255550100"))]
        };
        all.push(rec(s, t, t0() + Duration::days(i), parts).await);
    }
    all.sort_by_key(|r| (r.started_at, r.id));
    let expect: Vec<RecordingId> = all.iter().map(|r| r.id).collect();

    // Pages of 2 with the keyset cursor visit every recording exactly once,
    // in (started_at, id) order, with participants attached.
    let mut seen = Vec::new();
    let mut q = GovernanceQuery {
        limit: 2,
        ..GovernanceQuery::default()
    };
    loop {
        let page = must(s.list_recordings_for_governance(t, &q).await, "page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        q.after = Some((last.started_at, last.id));
        for r in &page {
            assert_eq!(r.participants.len(), 1, "children attached");
        }
        seen.extend(page.iter().map(|r| r.id));
    }
    assert_eq!(seen, expect);

    let before = ids(
        s,
        t,
        GovernanceQuery {
            started_before: Some(t0() + Duration::days(2)),
            limit: 100,
            ..GovernanceQuery::default()
        },
    )
    .await;
    assert_eq!(before, expect[..3].to_vec(), "started_before is exclusive");
    let from = ids(
        s,
        t,
        GovernanceQuery {
            started_from: Some(t0() + Duration::days(2)),
            limit: 100,
            ..GovernanceQuery::default()
        },
    )
    .await;
    assert_eq!(from, expect[3..].to_vec(), "started_from is inclusive");
    let by_user = ids(
        s,
        t,
        GovernanceQuery {
            user_id: Some(user),
            limit: 100,
            ..GovernanceQuery::default()
        },
    )
    .await;
    let want: Vec<RecordingId> = all
        .iter()
        .filter(|r| r.participants[0].directory_user_id == Some(user))
        .map(|r| r.id)
        .collect();
    assert_eq!(by_user, want);
    let named = ids(
        s,
        t,
        GovernanceQuery {
            ids: Some(vec![expect[4], expect[1], RecordingId::new()]),
            limit: 100,
            ..GovernanceQuery::default()
        },
    )
    .await;
    assert_eq!(named, vec![expect[1], expect[4]]);
    let none = ids(
        s,
        t,
        GovernanceQuery {
            ids: Some(vec![]),
            limit: 100,
            ..GovernanceQuery::default()
        },
    )
    .await;
    assert!(none.is_empty(), "an empty id list matches nothing");
    must(s.set_legal_hold_flag(t, expect[2], true).await, "flag");
    let flagged = ids(
        s,
        t,
        GovernanceQuery {
            legal_hold: Some(true),
            limit: 100,
            ..GovernanceQuery::default()
        },
    )
    .await;
    assert_eq!(flagged, vec![expect[2]]);
}

pub async fn governance_sweep_is_tenant_scoped(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let r = rec(s, t, t0(), vec![]).await;
    let q = GovernanceQuery {
        ids: Some(vec![r.id]),
        limit: 10,
        ..GovernanceQuery::default()
    };
    assert!(ids(s, other, q.clone()).await.is_empty());
    assert_eq!(ids(s, t, q).await, vec![r.id]);
    match s.apply_legal_holds(other, r.id).await {
        Err(StoreError::NotFound) => {}
        x => panic!("other tenant's recording: expected NotFound, got {x:?}"),
    }
}

pub async fn apply_legal_holds_follows_active_holds(s: &Store) {
    let t = tenant(s, "contoso").await;
    let a = rec(s, t, t0(), vec![person(None, Some("+1 425 555 0100"))]).await;
    let b = rec(s, t, t0() + Duration::days(10), vec![]).await;
    assert!(!must(s.apply_legal_holds(t, a.id).await, "no holds"));

    let by_number = hold(
        t,
        HoldScope {
            participant_identifier: Some("tel:+14255550100".into()),
            ..HoldScope::default()
        },
    );
    let by_date = hold(
        t,
        HoldScope {
            to: Some(t0() + Duration::days(1)),
            ..HoldScope::default()
        },
    );
    must(s.create_legal_hold(t, &by_number).await, "h1");
    must(s.create_legal_hold(t, &by_date).await, "h2");
    assert!(must(s.apply_legal_holds(t, a.id).await, "a"));
    assert!(!must(s.apply_legal_holds(t, b.id).await, "b"));
    assert!(must(s.get_recording(t, a.id).await, "a").legal_hold);
    match s.delete_recording(t, a.id).await {
        Err(StoreError::Refused(_)) => {}
        x => panic!("held recording deleted: {x:?}"),
    }

    // One of two covering holds lifted: still held; both: released.
    must(s.lift_legal_hold(t, by_number.id, "acc").await, "lift 1");
    assert!(must(s.apply_legal_holds(t, a.id).await, "a still"));
    must(s.lift_legal_hold(t, by_date.id, "acc").await, "lift 2");
    assert!(!must(s.apply_legal_holds(t, a.id).await, "a released"));
    assert!(!must(s.get_recording(t, a.id).await, "a").legal_hold);
    must(s.delete_recording(t, a.id).await, "delete after lift");

    // A flag set by hand with no hold behind it does not survive a
    // re-evaluation: the holds are the truth.
    must(s.set_legal_hold_flag(t, b.id, true).await, "manual");
    assert!(!must(s.apply_legal_holds(t, b.id).await, "b"));
}

pub async fn recordings_made_after_a_hold_are_held(s: &Store) {
    let t = tenant(s, "contoso").await;
    let user = UserId::new();
    let h = hold(
        t,
        HoldScope {
            user_id: Some(user),
            from: Some(t0()),
            ..HoldScope::default()
        },
    );
    must(s.create_legal_hold(t, &h).await, "hold");
    let covered = rec(
        s,
        t,
        t0() + Duration::hours(1),
        vec![person(Some(user), None)],
    )
    .await;
    assert!(covered.legal_hold, "inserted after the hold: held");
    let too_early = rec(
        s,
        t,
        t0() - Duration::hours(1),
        vec![person(Some(user), None)],
    )
    .await;
    assert!(!too_early.legal_hold);
    // A recording that only becomes covered when the user joins later.
    let joined = rec(
        s,
        t,
        t0() + Duration::hours(2),
        vec![person(None, Some("+15550001"))],
    )
    .await;
    assert!(!joined.legal_hold);
    must(
        s.add_participant(t, joined.id, &person(Some(user), None))
            .await,
        "join",
    );
    assert!(must(s.get_recording(t, joined.id).await, "joined").legal_hold);
    // An insert never clears a flag the caller set.
    let mut pre = Recording::new(t, RecordingKind::Meeting, Direction::Internal, t0());
    pre.legal_hold = true;
    must(s.insert_recording(t, &pre).await, "pre-flagged");
    assert!(must(s.get_recording(t, pre.id).await, "pre").legal_hold);
    // Lifted holds do not flag new recordings.
    must(s.lift_legal_hold(t, h.id, "acc").await, "lift");
    let after = rec(
        s,
        t,
        t0() + Duration::hours(3),
        vec![person(Some(user), None)],
    )
    .await;
    assert!(!after.legal_hold);
}

pub async fn update_account_changes_role_profile_active(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let profile = SecurityProfile {
        id: SecurityProfileId::new(),
        tenant_id: t,
        name: "Auditors".into(),
        role: Role::ComplianceOfficer,
        permissions: vec![Permission::Search],
        scope: VisibilityScope::All,
    };
    must(s.upsert_security_profile(t, &profile).await, "profile");
    let acc = LocalAccount {
        id: AccountId::new(),
        tenant_id: Some(t),
        email: "officer@contoso.example".into(),
        role: Role::ComplianceOfficer,
        security_profile_id: None,
        directory_user_id: None,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
        totp: None,
        totp_last_step: None,
        failed_logins: 0,
        locked_until: None,
        active: true,
        created_at: now(),
        last_login_at: None,
        must_change_password: false,
        totp_pending: None,
        recovery_codes: Vec::new(),
    };
    must(s.create_account(Realm::Tenant(t), &acc).await, "account");

    let got = must(
        s.update_account(
            t,
            acc.id,
            &AccountChange {
                role: Some(Role::Dpo),
                security_profile_id: Some(Some(profile.id)),
                active: None,
            },
        )
        .await,
        "update",
    );
    assert_eq!(got.role, Role::Dpo);
    assert_eq!(got.security_profile_id, Some(profile.id));
    assert!(got.active);
    assert_eq!(got.password_hash, acc.password_hash, "nothing else changes");

    let got = must(
        s.update_account(
            t,
            acc.id,
            &AccountChange {
                security_profile_id: Some(None),
                active: Some(false),
                ..AccountChange::default()
            },
        )
        .await,
        "clear",
    );
    assert_eq!(got.security_profile_id, None);
    assert!(!got.active);
    assert_eq!(got.role, Role::Dpo, "role kept");
    assert_eq!(
        must(s.get_account(Realm::Tenant(t), acc.id).await, "reread"),
        got
    );

    match s
        .update_account(
            t,
            acc.id,
            &AccountChange {
                security_profile_id: Some(Some(SecurityProfileId::new())),
                ..AccountChange::default()
            },
        )
        .await
    {
        Err(StoreError::Invalid(_)) => {}
        x => panic!("unknown profile: expected Invalid, got {x:?}"),
    }
    match s
        .update_account(
            t,
            acc.id,
            &AccountChange {
                role: Some(Role::PlatformOperator),
                ..AccountChange::default()
            },
        )
        .await
    {
        Err(StoreError::Invalid(_)) => {}
        x => panic!("operator role: expected Invalid, got {x:?}"),
    }
    match s
        .update_account(
            other,
            acc.id,
            &AccountChange {
                active: Some(true),
                ..AccountChange::default()
            },
        )
        .await
    {
        Err(StoreError::NotFound) => {}
        x => panic!("other tenant: expected NotFound, got {x:?}"),
    }
}
