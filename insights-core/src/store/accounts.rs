//! Local accounts, login sessions and security profiles.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::*;

/// Local accounts, their browser sessions, and the security profiles that
/// scope what a tenant account may see.
///
/// A realm is one tenant's users or the platform operators (who belong
/// to no tenant and are kept in tables of their own). Every realm method
/// takes the realm first and only ever sees that realm's rows.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates an account after [`LocalAccount::validate`];
    /// `account.realm()` must be `realm` (else `Invalid`). An email that
    /// exists in the realm already is a `Conflict`.
    async fn create_account(&self, realm: Realm, account: &LocalAccount) -> StoreResult<()>;
    /// One account of the realm by id.
    async fn get_account(&self, realm: Realm, id: AccountId) -> StoreResult<LocalAccount>;
    /// Looks an account up by email, case-insensitively ([`normalize_email`]).
    async fn account_by_email(&self, realm: Realm, email: &str) -> StoreResult<LocalAccount>;
    /// All accounts of the realm ordered by (email, id).
    async fn list_accounts(&self, realm: Realm) -> StoreResult<Vec<LocalAccount>>;
    /// Changes a tenant account's role, security profile (`Some(None)`
    /// clears it) and active flag; fields left `None` stay. The profile
    /// must exist in the tenant (else `Invalid`). Returns the account.
    async fn update_account(
        &self,
        tenant: TenantId,
        id: AccountId,
        change: &AccountChange,
    ) -> StoreResult<LocalAccount>;
    /// Counts a failed login, atomically. When the consecutive count
    /// reaches `lock_after`, the account is locked until `at + lock_for`
    /// and the count restarts at 0. Returns the state after the update.
    async fn record_login_failure(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        lock_after: u32,
        lock_for: chrono::Duration,
    ) -> StoreResult<LoginFailure>;
    /// Records a successful login: failures and lockout reset,
    /// `last_login_at = at`. With `totp_step`, the step is recorded too,
    /// atomically, and the call changes nothing and returns `false` if
    /// that step (or a later one) was accepted before (a replayed code).
    async fn record_login_success(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        totp_step: Option<i64>,
    ) -> StoreResult<bool>;
    /// Counts a sign-in attempt under `key` before any password is
    /// checked, atomically (concurrent attempts on any number of
    /// processes sharing the store never lose a count): `Locked` while
    /// the key is locked (nothing counted), else `Admitted` with the
    /// count including this attempt; the attempt that reaches
    /// `lock_after` is admitted and locks the key until `at + lock_for`
    /// (the count restarts at 0). `key` is an opaque digest (of realm and
    /// email, whether or not an account exists), never personal data in
    /// clear. Expired keys are forgotten.
    async fn claim_login_attempt(
        &self,
        key: &str,
        at: chrono::DateTime<chrono::Utc>,
        lock_after: u32,
        lock_for: chrono::Duration,
    ) -> StoreResult<LoginAttempt>;
    /// Forgets the attempts under `key` (after a successful sign-in).
    async fn clear_login_attempts(&self, key: &str) -> StoreResult<()>;
    /// Stores a sealed TOTP seed being enrolled (replacing an earlier
    /// pending one); `NotFound` without such an account.
    async fn set_pending_totp(
        &self,
        realm: Realm,
        id: AccountId,
        sealed: &crate::crypto::SealedSecret,
    ) -> StoreResult<()>;
    /// Replaces an account's sealed TOTP seed, confirmed or pending, that
    /// is still `old` by `new` (the same seed, its data key wrapped under
    /// another key-encryption key: key rotation). Returns whether one was
    /// replaced.
    async fn rewrap_totp(
        &self,
        realm: Realm,
        id: AccountId,
        old: &crate::crypto::SealedSecret,
        new: &crate::crypto::SealedSecret,
    ) -> StoreResult<bool>;
    /// Completes a first sign-in atomically: the new password, the proven
    /// TOTP seed (if any) and its step, the recovery codes; clears the
    /// pending seed and `must_change_password`, resets failures. Returns
    /// `false` (changing nothing) if the account's password hash is no
    /// longer `old_password_hash` (a concurrent completion won).
    async fn complete_first_sign_in(
        &self,
        realm: Realm,
        id: AccountId,
        old_password_hash: &str,
        done: &FirstSignIn,
    ) -> StoreResult<bool>;
    /// Resets an account's credentials (an administrator's action):
    /// with `password_hash`, the password, which the user must replace at
    /// the next sign-in; with `clear_totp`, the TOTP seed (confirmed and
    /// pending), its last step and the recovery codes. Failures and any
    /// lockout are reset and every live session of the account is revoked
    /// at `reset.at`, atomically. `NotFound` without such an account;
    /// `Invalid` for a password that is not an argon2id hash.
    async fn reset_credentials(
        &self,
        realm: Realm,
        id: AccountId,
        reset: &CredentialReset,
    ) -> StoreResult<()>;
    /// Uses up one recovery code (by its SHA-256 hex), atomically: `true`
    /// if it was unused (it never works again), `false` otherwise.
    async fn use_recovery_code(
        &self,
        realm: Realm,
        id: AccountId,
        code_hash: &str,
    ) -> StoreResult<bool>;
    /// Stores a new session of an account of the realm (`NotFound` if the
    /// account does not exist there).
    async fn create_session(&self, realm: Realm, session: &LoginSession) -> StoreResult<()>;
    /// The session with this token hash, live or not.
    async fn get_session(&self, realm: Realm, token_hash: &str) -> StoreResult<LoginSession>;
    /// Moves `last_seen_at` forward to `at` (never backwards).
    async fn touch_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()>;
    /// Revokes a session; returns whether it was live (not yet revoked).
    /// `NotFound` if there is no such session.
    async fn revoke_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Inserts or replaces a profile after [`SecurityProfile::validate`].
    async fn upsert_security_profile(
        &self,
        tenant: TenantId,
        p: &SecurityProfile,
    ) -> StoreResult<()>;
    /// The tenant's security profiles.
    async fn list_security_profiles(&self, tenant: TenantId) -> StoreResult<Vec<SecurityProfile>>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`AccountStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_account_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            AccountStore for $ty => $inner, $hook;
            fn create_account(&self, realm: Realm, account: &LocalAccount) -> StoreResult<()>;
            fn get_account(&self, realm: Realm, id: AccountId) -> StoreResult<LocalAccount>;
            fn account_by_email(&self, realm: Realm, email: &str) -> StoreResult<LocalAccount>;
            fn list_accounts(&self, realm: Realm) -> StoreResult<Vec<LocalAccount>>;
            fn update_account(&self, tenant: TenantId, id: AccountId, change: &AccountChange) -> StoreResult<LocalAccount>;
            fn record_login_failure(&self, realm: Realm, id: AccountId, at: chrono::DateTime<chrono::Utc>, lock_after: u32, lock_for: chrono::Duration) -> StoreResult<LoginFailure>;
            fn record_login_success(&self, realm: Realm, id: AccountId, at: chrono::DateTime<chrono::Utc>, totp_step: Option<i64>) -> StoreResult<bool>;
            fn claim_login_attempt(&self, key: &str, at: chrono::DateTime<chrono::Utc>, lock_after: u32, lock_for: chrono::Duration) -> StoreResult<LoginAttempt>;
            fn clear_login_attempts(&self, key: &str) -> StoreResult<()>;
            fn set_pending_totp(&self, realm: Realm, id: AccountId, sealed: &$crate::crypto::SealedSecret) -> StoreResult<()>;
            fn rewrap_totp(&self, realm: Realm, id: AccountId, old: &$crate::crypto::SealedSecret, new: &$crate::crypto::SealedSecret) -> StoreResult<bool>;
            fn complete_first_sign_in(&self, realm: Realm, id: AccountId, old_password_hash: &str, done: &FirstSignIn) -> StoreResult<bool>;
            fn reset_credentials(&self, realm: Realm, id: AccountId, reset: &CredentialReset) -> StoreResult<()>;
            fn use_recovery_code(&self, realm: Realm, id: AccountId, code_hash: &str) -> StoreResult<bool>;
            fn create_session(&self, realm: Realm, session: &LoginSession) -> StoreResult<()>;
            fn get_session(&self, realm: Realm, token_hash: &str) -> StoreResult<LoginSession>;
            fn touch_session(&self, realm: Realm, token_hash: &str, at: chrono::DateTime<chrono::Utc>) -> StoreResult<()>;
            fn revoke_session(&self, realm: Realm, token_hash: &str, at: chrono::DateTime<chrono::Utc>) -> StoreResult<bool>;
            fn upsert_security_profile(&self, tenant: TenantId, p: &SecurityProfile) -> StoreResult<()>;
            fn list_security_profiles(&self, tenant: TenantId) -> StoreResult<Vec<SecurityProfile>>;
        }
    };
}

/// A change to a tenant account ([`AccountStore::update_account`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountChange {
    /// The new role.
    pub role: Option<Role>,
    /// `Some(None)` clears the profile.
    pub security_profile_id: Option<Option<SecurityProfileId>>,
    /// Whether the account may sign in.
    pub active: Option<bool>,
}
