//! Local accounts, login sessions and security profiles ([`AccountStore`]).
//!
//! [`AccountStore`]: insights_core::store::AccountStore

use super::fixtures::*;

pub async fn security_profiles_validate_and_upsert(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let by_id = |mut v: Vec<SecurityProfile>| {
        v.sort_by_key(|p| p.id);
        v
    };
    let profile = |name: &str, role: Role| SecurityProfile {
        id: SecurityProfileId::new(),
        tenant_id: t,
        name: name.to_owned(),
        role,
        permissions: role.default_permissions(),
        scope: role.default_scope(),
    };
    let ops = profile("operators", Role::PlatformOperator);
    let sup = SecurityProfile {
        scope: VisibilityScope::Groups(vec!["team-a".into(), "team-b".into()]),
        ..profile("supervisors", Role::Supervisor)
    };
    let users = SecurityProfile {
        scope: VisibilityScope::Users(vec![UserId::new(), UserId::new()]),
        ..profile("named users", Role::User)
    };
    for p in [&ops, &sup, &users] {
        must(s.upsert_security_profile(t, p).await, "upsert");
    }
    assert_eq!(
        by_id(must(s.list_security_profiles(t).await, "list")),
        by_id(vec![ops.clone(), sup.clone(), users.clone()])
    );

    // Invariants are checked: an operator can never see content.
    let mut bad = ops.clone();
    bad.permissions.push(Permission::Play);
    assert_invalid(s.upsert_security_profile(t, &bad).await, "operator + play");
    let bad = SecurityProfile {
        scope: VisibilityScope::All,
        ..ops.clone()
    };
    assert_invalid(s.upsert_security_profile(t, &bad).await, "operator + all");
    let bad = SecurityProfile {
        id: SecurityProfileId::new(),
        name: "  ".into(),
        ..sup.clone()
    };
    assert_invalid(s.upsert_security_profile(t, &bad).await, "blank name");
    assert_eq!(
        by_id(must(s.list_security_profiles(t).await, "unchanged")),
        by_id(vec![ops.clone(), sup.clone(), users.clone()])
    );

    // Replace by id.
    let sup2 = SecurityProfile {
        name: "team leads".into(),
        permissions: vec![Permission::Search, Permission::ViewTranscript],
        scope: VisibilityScope::OwnRecordings,
        ..sup.clone()
    };
    must(s.upsert_security_profile(t, &sup2).await, "replace");
    assert_eq!(
        by_id(must(s.list_security_profiles(t).await, "list")),
        by_id(vec![ops, sup2, users])
    );
    assert!(must(s.list_security_profiles(other).await, "other").is_empty());
}

/// A stand-in argon2id PHC string (stores check the prefix only).
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

fn account(realm: Realm, email: &str, role: Role) -> LocalAccount {
    LocalAccount {
        id: AccountId::new(),
        tenant_id: realm.tenant(),
        email: normalize_email(email),
        role,
        security_profile_id: None,
        directory_user_id: None,
        password_hash: HASH.into(),
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
    }
}

fn sealed(tenant: TenantId) -> insights_core::crypto::SealedSecret {
    insights_core::crypto::SealedSecret {
        key: WrappedDataKey {
            id: KeyId::new(),
            tenant_id: tenant,
            kek_id: "local:kek".into(),
            wrapped: vec![9; 60],
            created_at: now(),
        },
        sealed: (0u8..48).collect(),
    }
}

fn session(realm: Realm, account: AccountId, n: u8) -> LoginSession {
    let at = now();
    LoginSession {
        token_hash: hex::encode([n; 32]),
        tenant_id: realm.tenant(),
        account_id: account,
        created_at: at,
        last_seen_at: at,
        expires_at: at + Duration::hours(8),
        revoked_at: None,
    }
}

pub async fn accounts_create_get_list_in_both_realms(s: &Store) {
    let t = tenant(s, "contoso").await;
    for realm in [Realm::Tenant(t), Realm::Platform] {
        let role = match realm {
            Realm::Platform => Role::PlatformOperator,
            Realm::Tenant(_) => Role::TenantAdmin,
        };
        let mut admin = account(realm, "Zed.Admin@Contoso.com", role);
        admin.totp = Some(sealed(
            realm
                .tenant()
                .unwrap_or(insights_core::crypto::PLATFORM_KEY_OWNER),
        ));
        admin.totp_last_step = Some(12);
        admin.last_login_at = Some(now() - Duration::days(1));
        admin.locked_until = Some(now() + Duration::minutes(3));
        admin.failed_logins = 2;
        let mut other = account(realm, "ann@contoso.com", role);
        if let Realm::Tenant(_) = realm {
            other.role = Role::User;
            other.directory_user_id = Some(UserId::new());
            other.security_profile_id = Some(SecurityProfileId::new());
            other.active = false;
        }
        must(s.create_account(realm, &admin).await, "create admin");
        must(s.create_account(realm, &other).await, "create other");
        assert_eq!(must(s.get_account(realm, admin.id).await, "get"), admin);
        // Emails match case-insensitively, ignoring surrounding blanks.
        assert_eq!(
            must(
                s.account_by_email(realm, "  ZED.admin@contoso.COM ").await,
                "by email"
            ),
            admin
        );
        assert_not_found(
            s.account_by_email(realm, "nobody@contoso.com").await,
            "unknown",
        );
        assert_not_found(s.get_account(realm, AccountId::new()).await, "missing id");
        // Ordered by email.
        assert_eq!(
            must(s.list_accounts(realm).await, "list"),
            vec![other.clone(), admin.clone()]
        );
        // An email is unique in its realm, whatever its case.
        let dup = account(realm, "ANN@contoso.com", role);
        assert_conflict(s.create_account(realm, &dup).await, "duplicate email");
        assert_conflict(
            s.create_account(
                realm,
                &LocalAccount {
                    email: "x@y".into(),
                    ..admin.clone()
                },
            )
            .await,
            "duplicate id",
        );
    }

    // Invariants: operators have no tenant, tenant accounts are never
    // operators, emails are normalised, passwords hashed; the realm must
    // match the account.
    let bad = account(Realm::Tenant(t), "op@contoso.com", Role::PlatformOperator);
    assert_invalid(
        s.create_account(Realm::Tenant(t), &bad).await,
        "tenant operator",
    );
    let bad = account(Realm::Platform, "u@contoso.com", Role::User);
    assert_invalid(
        s.create_account(Realm::Platform, &bad).await,
        "platform user",
    );
    let mut bad = account(Realm::Tenant(t), "x@contoso.com", Role::User);
    bad.email = "X@contoso.com".into();
    assert_invalid(
        s.create_account(Realm::Tenant(t), &bad).await,
        "unnormalised email",
    );
    let mut bad = account(Realm::Tenant(t), "y@contoso.com", Role::User);
    bad.password_hash = "hunter2".into();
    assert_invalid(
        s.create_account(Realm::Tenant(t), &bad).await,
        "clear password",
    );
    let good = account(Realm::Tenant(t), "z@contoso.com", Role::User);
    assert_invalid(
        s.create_account(Realm::Platform, &good).await,
        "realm mismatch",
    );
    assert_eq!(
        must(s.list_accounts(Realm::Tenant(t)).await, "unchanged").len(),
        2
    );
}

pub async fn accounts_are_realm_isolated(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let a = account(Realm::Tenant(t), "ann@contoso.com", Role::ComplianceOfficer);
    let op = account(Realm::Platform, "ann@contoso.com", Role::PlatformOperator);
    must(s.create_account(Realm::Tenant(t), &a).await, "create");
    // The same email may exist in another tenant and among operators.
    let b = account(Realm::Tenant(other), "ann@contoso.com", Role::User);
    must(
        s.create_account(Realm::Tenant(other), &b).await,
        "other tenant",
    );
    must(s.create_account(Realm::Platform, &op).await, "operator");

    assert_not_found(
        s.get_account(Realm::Tenant(other), a.id).await,
        "other tenant by id",
    );
    assert_not_found(s.get_account(Realm::Platform, a.id).await, "platform by id");
    assert_not_found(
        s.get_account(Realm::Tenant(t), op.id).await,
        "operator in tenant",
    );
    assert_eq!(
        must(
            s.account_by_email(Realm::Tenant(other), "ann@contoso.com")
                .await,
            "other"
        )
        .id,
        b.id
    );
    assert_eq!(
        must(s.list_accounts(Realm::Tenant(t)).await, "t"),
        vec![a.clone()]
    );
    assert_eq!(
        must(s.list_accounts(Realm::Platform).await, "ops"),
        vec![op.clone()]
    );
    assert_not_found(
        s.record_login_failure(Realm::Tenant(other), a.id, now(), 5, Duration::minutes(1))
            .await,
        "failure in other tenant",
    );
    assert_not_found(
        s.record_login_success(Realm::Tenant(other), a.id, now(), None)
            .await,
        "success in other tenant",
    );
    // Sessions of an account only in its own realm.
    assert_not_found(
        s.create_session(
            Realm::Tenant(other),
            &session(Realm::Tenant(other), a.id, 1),
        )
        .await,
        "session for another tenant's account",
    );
    must(
        s.create_session(Realm::Tenant(t), &session(Realm::Tenant(t), a.id, 1))
            .await,
        "session",
    );
    let h = hex::encode([1u8; 32]);
    assert_not_found(
        s.get_session(Realm::Tenant(other), &h).await,
        "other tenant session",
    );
    assert_not_found(s.get_session(Realm::Platform, &h).await, "platform session");
    assert_not_found(
        s.revoke_session(Realm::Tenant(other), &h, now()).await,
        "revoke from other tenant",
    );
    assert!(
        must(s.get_session(Realm::Tenant(t), &h).await, "still live")
            .revoked_at
            .is_none()
    );
}

pub async fn account_failures_lock_and_success_resets(s: &Store) {
    let t = tenant(s, "contoso").await;
    for realm in [Realm::Tenant(t), Realm::Platform] {
        let role = if realm == Realm::Platform {
            Role::PlatformOperator
        } else {
            Role::Dpo
        };
        let a = account(realm, "dpo@contoso.com", role);
        must(s.create_account(realm, &a).await, "create");
        let at = now();
        for n in 1..=2u32 {
            let f = must(
                s.record_login_failure(realm, a.id, at, 3, Duration::minutes(15))
                    .await,
                "failure",
            );
            assert_eq!(
                f,
                LoginFailure {
                    failed_logins: n,
                    locked_until: None
                }
            );
        }
        // The third consecutive failure locks and restarts the count.
        let f = must(
            s.record_login_failure(realm, a.id, at, 3, Duration::minutes(15))
                .await,
            "locking failure",
        );
        assert_eq!(f.failed_logins, 0);
        assert_eq!(f.locked_until, Some(at + Duration::minutes(15)));
        let stored = must(s.get_account(realm, a.id).await, "get");
        assert!(stored.is_locked(at + Duration::minutes(14)));
        assert!(!stored.is_locked(at + Duration::minutes(16)));
        // A failure while locked keeps the lock.
        let f = must(
            s.record_login_failure(
                realm,
                a.id,
                at + Duration::minutes(1),
                3,
                Duration::minutes(15),
            )
            .await,
            "failure while locked",
        );
        assert_eq!(f.locked_until, Some(at + Duration::minutes(15)));
        // After the lock ran out, a failure clears the stale lock time.
        let later = at + Duration::minutes(20);
        let f = must(
            s.record_login_failure(realm, a.id, later, 3, Duration::minutes(15))
                .await,
            "failure after lock",
        );
        assert_eq!(
            f,
            LoginFailure {
                failed_logins: 2,
                locked_until: None
            }
        );

        // Concurrent failures are all counted.
        let b = account(realm, "b@contoso.com", role);
        must(s.create_account(realm, &b).await, "create b");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.record_login_failure(realm, b.id, now(), 100, Duration::minutes(1))
                        .await
                })
            })
            .collect();
        for task in tasks {
            must(must(task.await, "join"), "concurrent failure");
        }
        assert_eq!(must(s.get_account(realm, b.id).await, "b").failed_logins, 8);

        // Success resets failures and lockout and records the time.
        let at2 = now();
        assert!(must(
            s.record_login_success(realm, b.id, at2, None).await,
            "success"
        ));
        let stored = must(s.get_account(realm, b.id).await, "after success");
        assert_eq!(stored.failed_logins, 0);
        assert_eq!(stored.locked_until, None);
        assert_eq!(stored.last_login_at, Some(at2));
        assert_not_found(
            s.record_login_failure(realm, AccountId::new(), now(), 3, Duration::minutes(1))
                .await,
            "missing account",
        );
    }
}

pub async fn account_totp_steps_are_single_use(s: &Store) {
    let t = tenant(s, "contoso").await;
    for realm in [Realm::Tenant(t), Realm::Platform] {
        let role = if realm == Realm::Platform {
            Role::PlatformOperator
        } else {
            Role::TenantAdmin
        };
        let a = account(realm, "admin@contoso.com", role);
        must(s.create_account(realm, &a).await, "create");
        assert!(must(
            s.record_login_success(realm, a.id, now(), Some(100)).await,
            "first"
        ));
        assert_eq!(
            must(s.get_account(realm, a.id).await, "get").totp_last_step,
            Some(100)
        );
        // The same step, or an earlier one, is a replay: nothing changes.
        must(
            s.record_login_failure(realm, a.id, now(), 10, Duration::minutes(1))
                .await,
            "fail",
        );
        assert!(!must(
            s.record_login_success(realm, a.id, now(), Some(100)).await,
            "replay"
        ));
        assert!(!must(
            s.record_login_success(realm, a.id, now(), Some(99)).await,
            "older"
        ));
        let stored = must(s.get_account(realm, a.id).await, "get");
        assert_eq!(stored.failed_logins, 1, "a refused replay resets nothing");
        assert!(must(
            s.record_login_success(realm, a.id, now(), Some(101)).await,
            "next"
        ));
        // A login without a code keeps the last step.
        assert!(must(
            s.record_login_success(realm, a.id, now(), None).await,
            "no code"
        ));
        assert_eq!(
            must(s.get_account(realm, a.id).await, "get").totp_last_step,
            Some(101)
        );
        assert_not_found(
            s.record_login_success(realm, AccountId::new(), now(), Some(5))
                .await,
            "missing",
        );
    }
}

pub async fn sessions_create_touch_revoke(s: &Store) {
    let t = tenant(s, "contoso").await;
    for realm in [Realm::Tenant(t), Realm::Platform] {
        let role = if realm == Realm::Platform {
            Role::PlatformOperator
        } else {
            Role::User
        };
        let a = account(realm, "ann@contoso.com", role);
        must(s.create_account(realm, &a).await, "create");
        let x = session(realm, a.id, 7);
        must(s.create_session(realm, &x).await, "create session");
        assert_eq!(must(s.get_session(realm, &x.token_hash).await, "get"), x);
        assert_conflict(s.create_session(realm, &x).await, "same token twice");
        assert_not_found(
            s.get_session(realm, &hex::encode([8u8; 32])).await,
            "unknown",
        );
        assert_not_found(
            s.create_session(realm, &session(realm, AccountId::new(), 9))
                .await,
            "unknown account",
        );
        assert_invalid(
            s.create_session(
                realm,
                &LoginSession {
                    tenant_id: match realm {
                        Realm::Platform => Some(t),
                        Realm::Tenant(_) => None,
                    },
                    ..session(realm, a.id, 10)
                },
            )
            .await,
            "realm mismatch",
        );

        // Touch moves last_seen forward, never back.
        let later = x.last_seen_at + Duration::minutes(5);
        must(s.touch_session(realm, &x.token_hash, later).await, "touch");
        must(
            s.touch_session(realm, &x.token_hash, x.last_seen_at).await,
            "touch earlier",
        );
        assert_eq!(
            must(s.get_session(realm, &x.token_hash).await, "get").last_seen_at,
            later
        );
        assert_not_found(
            s.touch_session(realm, &hex::encode([8u8; 32]), later).await,
            "touch unknown",
        );

        // Revocation is final and reported once.
        let at = now();
        assert!(must(
            s.revoke_session(realm, &x.token_hash, at).await,
            "revoke"
        ));
        assert!(!must(
            s.revoke_session(realm, &x.token_hash, now()).await,
            "revoke twice"
        ));
        let got = must(s.get_session(realm, &x.token_hash).await, "revoked");
        assert_eq!(got.revoked_at, Some(at));
        assert!(!got.is_live(at, Duration::hours(1)));
        assert_not_found(
            s.revoke_session(realm, &hex::encode([8u8; 32]), now())
                .await,
            "revoke unknown",
        );
    }
}

pub async fn login_attempts_are_claimed_before_any_check(s: &Store) {
    let key = "a".repeat(64);
    let at = now();
    let lock = Duration::minutes(15);
    for n in 1..=2u32 {
        assert_eq!(
            must(s.claim_login_attempt(&key, at, 3, lock).await, "claim"),
            LoginAttempt::Admitted { failures: n }
        );
    }
    // The attempt reaching the threshold is admitted and locks.
    assert_eq!(
        must(s.claim_login_attempt(&key, at, 3, lock).await, "third"),
        LoginAttempt::Admitted { failures: 3 }
    );
    assert_eq!(
        must(s.claim_login_attempt(&key, at, 3, lock).await, "locked"),
        LoginAttempt::Locked { until: at + lock }
    );
    // After the lock the count starts again; clearing forgets it.
    let later = at + Duration::minutes(16);
    assert_eq!(
        must(s.claim_login_attempt(&key, later, 3, lock).await, "later"),
        LoginAttempt::Admitted { failures: 1 }
    );
    must(s.clear_login_attempts(&key).await, "clear");
    assert_eq!(
        must(s.claim_login_attempt(&key, later, 3, lock).await, "cleared"),
        LoginAttempt::Admitted { failures: 1 }
    );

    // Many at once: exactly the threshold is admitted.
    let key = "b".repeat(64);
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let s = s.clone();
            let key = key.clone();
            tokio::spawn(async move { s.claim_login_attempt(&key, now(), 5, lock).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        if let LoginAttempt::Admitted { .. } = must(must(task.await, "join"), "concurrent") {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
}

pub async fn first_sign_in_completes_once_and_recovery_codes_are_single_use(s: &Store) {
    let t = tenant(s, "contoso").await;
    for realm in [Realm::Tenant(t), Realm::Platform] {
        let role = if realm == Realm::Platform {
            Role::PlatformOperator
        } else {
            Role::Supervisor
        };
        let mut a = account(realm, "new@contoso.com", role);
        a.must_change_password = true;
        must(s.create_account(realm, &a).await, "create");
        let owner = realm
            .tenant()
            .unwrap_or(insights_core::crypto::PLATFORM_KEY_OWNER);
        let seed = sealed(owner);
        must(s.set_pending_totp(realm, a.id, &seed).await, "pending");
        let stored = must(s.get_account(realm, a.id).await, "get");
        assert!(stored.must_change_password);
        assert_eq!(stored.totp_pending.as_ref(), Some(&seed));
        assert_eq!(stored.totp, None);
        assert_not_found(
            s.set_pending_totp(realm, AccountId::new(), &seed).await,
            "pending of a missing account",
        );

        let new_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA";
        let done = FirstSignIn {
            password_hash: new_hash.into(),
            totp: Some(seed.clone()),
            totp_step: Some(42),
            recovery_codes: vec!["h1".into(), "h2".into()],
            at: now(),
        };
        assert!(must(
            s.complete_first_sign_in(realm, a.id, HASH, &done).await,
            "complete"
        ));
        // Completing twice (the old hash is gone) changes nothing.
        assert!(!must(
            s.complete_first_sign_in(realm, a.id, HASH, &done).await,
            "again"
        ));
        let stored = must(s.get_account(realm, a.id).await, "after");
        assert!(!stored.must_change_password);
        assert_eq!(stored.password_hash, new_hash);
        assert_eq!(stored.totp.as_ref(), Some(&seed));
        assert_eq!(stored.totp_pending, None);
        assert_eq!(stored.totp_last_step, Some(42));
        assert_eq!(
            stored.recovery_codes,
            vec!["h1".to_owned(), "h2".to_owned()]
        );

        // Each code works once, concurrently too.
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.use_recovery_code(realm, a.id, "h2").await })
            })
            .collect();
        let mut used = 0;
        for task in tasks {
            if must(must(task.await, "join"), "use") {
                used += 1;
            }
        }
        assert_eq!(used, 1);
        assert!(!must(
            s.use_recovery_code(realm, a.id, "nope").await,
            "unknown"
        ));
        assert_eq!(
            must(s.get_account(realm, a.id).await, "left").recovery_codes,
            vec!["h1".to_owned()]
        );
        assert!(must(s.use_recovery_code(realm, a.id, "h1").await, "h1"));
        assert!(
            must(s.get_account(realm, a.id).await, "none")
                .recovery_codes
                .is_empty()
        );

        // An administrator's reset: the second factor only, then the
        // password; each signs the account out everywhere.
        must(
            s.record_login_failure(realm, a.id, now(), 99, Duration::seconds(60))
                .await,
            "a failure",
        );
        let live = session(realm, a.id, 7);
        must(s.create_session(realm, &live).await, "session");
        let reset = CredentialReset {
            password_hash: None,
            clear_totp: true,
            at: now(),
        };
        must(s.reset_credentials(realm, a.id, &reset).await, "reset totp");
        let after = must(s.get_account(realm, a.id).await, "after reset");
        assert_eq!(after.totp, None);
        assert_eq!(after.totp_pending, None);
        assert_eq!(after.totp_last_step, None);
        assert!(after.recovery_codes.is_empty());
        assert_eq!(after.password_hash, new_hash);
        assert!(!after.must_change_password);
        assert_eq!(after.failed_logins, 0);
        assert!(
            must(s.get_session(realm, &live.token_hash).await, "revoked")
                .revoked_at
                .is_some()
        );
        let reset_hash = "$argon2id$v=19$m=19456,t=2,p=1$cmVzZXQ$cmVzZXRoYXNo";
        let reset = CredentialReset {
            password_hash: Some(reset_hash.into()),
            clear_totp: false,
            at: now(),
        };
        must(
            s.reset_credentials(realm, a.id, &reset).await,
            "reset password",
        );
        let after = must(s.get_account(realm, a.id).await, "after password reset");
        assert_eq!(after.password_hash, reset_hash);
        assert!(after.must_change_password);
        let bad = CredentialReset {
            password_hash: Some("plain".into()),
            clear_totp: false,
            at: now(),
        };
        assert!(matches!(
            s.reset_credentials(realm, a.id, &bad).await,
            Err(StoreError::Invalid(_))
        ));
        assert_not_found(
            s.reset_credentials(realm, AccountId::new(), &reset).await,
            "reset of a missing account",
        );
    }
}
