//! Local accounts and browser sessions: the embedded default's own
//! identities (production signs in through OIDC instead, see
//! `insights-api/src/auth`).
//!
//! Two realms, kept apart on purpose:
//!
//! * **tenant accounts** belong to exactly one tenant (tenant admins,
//!   compliance officers, supervisors, users, DPOs);
//! * **platform operators** belong to no tenant: they run the service and
//!   can never read customer content. They live in tables of their own
//!   without tenant data, so no tenant query, export or erasure ever
//!   touches them, and no tenant admin can create one.
//!
//! Secrets are never stored in clear: the password only as an argon2id
//! PHC string, the TOTP secret only sealed ([`crate::crypto::SealedSecret`]),
//! a session only as the SHA-256 of its opaque token.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AccountId, Role, SecurityProfileId, TenantId, UserId};
use crate::crypto::SealedSecret;

/// Where an account (and its sessions) lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "tenant_id", rename_all = "kebab-case")]
pub enum Realm {
    /// The users of one tenant.
    Tenant(TenantId),
    /// The platform operators (no tenant).
    Platform,
}

impl Realm {
    /// The tenant, for a tenant realm.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Realm::Tenant(t) => Some(*t),
            Realm::Platform => None,
        }
    }

    /// The realm of an optional tenant (`None` = platform).
    pub fn of(tenant: Option<TenantId>) -> Self {
        match tenant {
            Some(t) => Realm::Tenant(t),
            None => Realm::Platform,
        }
    }
}

impl std::fmt::Display for Realm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Realm::Tenant(t) => write!(f, "tenant {t}"),
            Realm::Platform => f.write_str("platform"),
        }
    }
}

/// A local account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalAccount {
    pub id: AccountId,
    /// `None` exactly for platform operators.
    pub tenant_id: Option<TenantId>,
    /// Normalised with [`normalize_email`]; unique per realm.
    pub email: String,
    pub role: Role,
    /// A security profile of the tenant that replaces the role's default
    /// permissions and scope.
    pub security_profile_id: Option<SecurityProfileId>,
    /// The directory user this account is (so role `user` sees the
    /// recordings that directory user took part in).
    pub directory_user_id: Option<UserId>,
    /// argon2id PHC string (`$argon2id$v=19$...`).
    pub password_hash: String,
    /// The sealed TOTP secret, when multi-factor is enrolled.
    pub totp: Option<SealedSecret>,
    /// The last TOTP time step accepted (a code is never accepted twice).
    pub totp_last_step: Option<i64>,
    /// Consecutive failed logins since the last success or lockout.
    pub failed_logins: u32,
    /// Logins are refused until then.
    pub locked_until: Option<DateTime<Utc>>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// The first sign-in is still to come: the password was set by an
    /// administrator and must be replaced by the user (who then also
    /// enrols TOTP themselves when their permissions require it).
    pub must_change_password: bool,
    /// A TOTP seed being enrolled (sealed), until the user proves it with
    /// a code; then it becomes [`LocalAccount::totp`].
    pub totp_pending: Option<SealedSecret>,
    /// SHA-256 (hex) of each unused single-use recovery code.
    pub recovery_codes: Vec<String>,
}

impl LocalAccount {
    /// The realm the account belongs to.
    pub fn realm(&self) -> Realm {
        Realm::of(self.tenant_id)
    }

    /// Checks the invariants: operators have no tenant and tenant users
    /// are never operators; the email is normalised and plausible; the
    /// password is an argon2id hash.
    pub fn validate(&self) -> Result<(), String> {
        match (self.role, self.tenant_id) {
            (Role::PlatformOperator, Some(_)) => {
                return Err("a platform operator belongs to no tenant".into());
            }
            (Role::PlatformOperator, None) => {
                if self.security_profile_id.is_some() || self.directory_user_id.is_some() {
                    return Err(
                        "a platform operator has no security profile or directory user".into(),
                    );
                }
            }
            (_, None) => return Err(format!("a `{}` account needs a tenant", self.role)),
            (_, Some(_)) => {}
        }
        validate_email(&self.email)?;
        if normalize_email(&self.email) != self.email {
            return Err("the email must be normalised (trimmed, lower case)".into());
        }
        if !self.password_hash.starts_with("$argon2id$") {
            return Err("the password must be an argon2id hash".into());
        }
        Ok(())
    }

    /// Whether logins are refused at `now` because of a lockout.
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }
}

/// The form emails are stored and compared in: trimmed, lower case.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausibility check (one `@`, something on both sides, no spaces or
/// control characters, at most 254 characters). The message never
/// echoes the value.
pub fn validate_email(email: &str) -> Result<(), String> {
    let e = email.trim();
    let ok = e.len() <= 254
        && e.split('@').count() == 2
        && e.split('@').all(|p| !p.is_empty())
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err("not a valid email address".into())
    }
}

/// What a failed login did to an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFailure {
    /// Consecutive failures now (0 right after a lockout started).
    pub failed_logins: u32,
    /// Set when this failure locked the account (or it was locked already).
    pub locked_until: Option<DateTime<Utc>>,
}

/// What [`crate::store::AccountStore::claim_login_attempt`] decided
/// before a password is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginAttempt {
    /// The attempt is counted and may be evaluated; `failures` counts it.
    Admitted { failures: u32 },
    /// The key is locked: nothing is evaluated until then.
    Locked { until: DateTime<Utc> },
}

/// What a completed first sign-in stores
/// ([`crate::store::AccountStore::complete_first_sign_in`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FirstSignIn {
    /// The user's own new password (argon2id PHC string).
    pub password_hash: String,
    /// The TOTP seed the user proved with a code (the pending one), if any.
    pub totp: Option<SealedSecret>,
    /// The time step of that code (never accepted again).
    pub totp_step: Option<i64>,
    /// SHA-256 (hex) of each new recovery code.
    pub recovery_codes: Vec<String>,
    pub at: DateTime<Utc>,
}

/// An administrator's reset of an account's credentials
/// ([`crate::store::AccountStore::reset_credentials`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CredentialReset {
    /// A new initial password (argon2id PHC string), to be replaced by
    /// the user at their next sign-in.
    pub password_hash: Option<String>,
    /// Forget the TOTP seed (confirmed and pending), its last step and
    /// the recovery codes: the user enrols again at their next sign-in.
    pub clear_totp: bool,
    pub at: DateTime<Utc>,
}

/// A browser session. Only the SHA-256 of the opaque session token is
/// stored, so a copy of the database lets nobody sign in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginSession {
    /// SHA-256 of the session token, lower-case hex.
    pub token_hash: String,
    /// `None` for platform operators.
    pub tenant_id: Option<TenantId>,
    pub account_id: AccountId,
    pub created_at: DateTime<Utc>,
    /// Last use; the idle timeout counts from here.
    pub last_seen_at: DateTime<Utc>,
    /// Absolute expiry, however active the session is.
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl LoginSession {
    /// The realm the session belongs to.
    pub fn realm(&self) -> Realm {
        Realm::of(self.tenant_id)
    }

    /// Usable at `now` with idle timeout `idle`: not revoked, not past
    /// its absolute expiry, used within `idle`.
    pub fn is_live(&self, now: DateTime<Utc>, idle: chrono::Duration) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && now < self.last_seen_at + idle
    }
}

/// A browser session of a directory principal signed in through OIDC
/// ("sign in with your organisation"): no local account behind it, so
/// the principal's claims as mapped at sign-in (subject, role, directory
/// user) are kept with it. Only the SHA-256 of the token is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcSession {
    /// SHA-256 of the session token, lower-case hex.
    pub token_hash: String,
    pub tenant_id: TenantId,
    /// The OIDC subject: the directory object id (`oid`), else `sub`.
    pub subject: String,
    /// Our role, mapped from the token's app roles at sign-in.
    pub role: Role,
    /// The directory user matching `oid`, if synchronised.
    pub directory_user_id: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl OidcSession {
    /// Usable at `now` with idle timeout `idle` (as [`LoginSession::is_live`]).
    pub fn is_live(&self, now: DateTime<Utc>, idle: chrono::Duration) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && now < self.last_seen_at + idle
    }
}

/// What an OIDC session keeps beside its [`OidcSession`] row: the
/// sign-in's claims that map to a security profile
/// (`auth.oidc.profile_map`, read again on every request) and when the
/// directory user's active state was last confirmed (at sign-in by the
/// provider issuing the id token, later by Microsoft Graph). A session
/// stored without them has no claims and was never confirmed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcSessionClaims {
    /// App-role values of the id token's `roles` claim.
    pub roles: Vec<String>,
    /// Group object ids of the id token's `groups` claim.
    pub groups: Vec<String>,
    /// When the directory user was last confirmed active.
    pub active_confirmed_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(role: Role, tenant: Option<TenantId>) -> LocalAccount {
        LocalAccount {
            id: AccountId::new(),
            tenant_id: tenant,
            email: "ann@contoso.com".into(),
            role,
            security_profile_id: None,
            directory_user_id: None,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$x$y".into(),
            totp: None,
            totp_last_step: None,
            failed_logins: 0,
            locked_until: None,
            active: true,
            created_at: Utc::now(),
            last_login_at: None,
            must_change_password: false,
            totp_pending: None,
            recovery_codes: Vec::new(),
        }
    }

    #[test]
    fn operators_have_no_tenant_and_users_need_one() {
        let t = Some(TenantId::new());
        assert!(account(Role::PlatformOperator, None).validate().is_ok());
        assert!(account(Role::PlatformOperator, t).validate().is_err());
        assert!(account(Role::User, None).validate().is_err());
        assert!(account(Role::User, t).validate().is_ok());
        let mut a = account(Role::PlatformOperator, None);
        a.directory_user_id = Some(UserId::new());
        assert!(a.validate().is_err());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalize_email("  Ann@Contoso.COM "), "ann@contoso.com");
        assert!(validate_email("a@b").is_ok());
        for bad in ["", "a", "@b", "a@", "a@b@c", "a b@c"] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
        let mut a = account(Role::User, Some(TenantId::new()));
        a.email = "Ann@contoso.com".into();
        assert!(a.validate().is_err());
        a.email = "ann@contoso.com".into();
        a.password_hash = "plain".into();
        assert!(a.validate().is_err());
    }

    #[test]
    fn sessions_expire_idle_absolute_and_on_revocation() {
        let now = Utc::now();
        let s = LoginSession {
            token_hash: "00".repeat(32),
            tenant_id: None,
            account_id: AccountId::new(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + chrono::Duration::hours(8),
            revoked_at: None,
        };
        let idle = chrono::Duration::minutes(30);
        assert!(s.is_live(now + chrono::Duration::minutes(29), idle));
        assert!(!s.is_live(now + chrono::Duration::minutes(31), idle));
        assert!(!s.is_live(
            now + chrono::Duration::hours(9),
            chrono::Duration::hours(24)
        ));
        let revoked = LoginSession {
            revoked_at: Some(now),
            ..s
        };
        assert!(!revoked.is_live(now, idle));
    }
}
