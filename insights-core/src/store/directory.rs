//! Directory users, directory sync state and OIDC sessions.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::*;

/// The tenant's mirror of its Entra directory (users and sync state) and
/// the OIDC browser sessions of directory users.
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    /// Inserts or replaces a user (matched by `id`).
    async fn upsert_directory_user(
        &self,
        tenant: TenantId,
        user: &DirectoryUser,
    ) -> StoreResult<()>;
    /// One directory user by id.
    async fn get_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<DirectoryUser>;
    /// One directory user by directory (Entra) object id.
    async fn directory_user_by_object_id(
        &self,
        tenant: TenantId,
        object_id: &str,
    ) -> StoreResult<DirectoryUser>;
    /// All users ordered by (last name, first name, id).
    async fn list_directory_users(&self, tenant: TenantId) -> StoreResult<Vec<DirectoryUser>>;
    /// Deletes a user; refused while it is active.
    async fn delete_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<()>;
    /// Inserts or replaces several users in one transaction: all of them
    /// or, on any error, none (directory sync writes a page at a time).
    async fn upsert_directory_users(
        &self,
        tenant: TenantId,
        users: &[DirectoryUser],
    ) -> StoreResult<()>;
    /// The tenant's directory sync state (`None` before the first
    /// complete run).
    async fn get_directory_sync_state(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Option<DirectorySyncState>>;
    /// Stores (inserts or replaces) the tenant's directory sync state;
    /// `state.tenant_id` must equal `tenant` (else `Invalid`).
    async fn put_directory_sync_state(
        &self,
        tenant: TenantId,
        state: &DirectorySyncState,
    ) -> StoreResult<()>;
    /// Stores a new OIDC browser session (`Conflict` for a token hash
    /// that exists; `Invalid` if `session.tenant_id` is not `tenant`).
    async fn create_oidc_session(&self, tenant: TenantId, session: &OidcSession)
    -> StoreResult<()>;
    /// The OIDC session with this token hash, live or not.
    async fn get_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
    ) -> StoreResult<OidcSession>;
    /// Moves `last_seen_at` forward to `at` (never backwards).
    async fn touch_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()>;
    /// Revokes an OIDC session; returns whether it was live (not yet
    /// revoked). `NotFound` if there is no such session.
    async fn revoke_oidc_session(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Stores a session's claims and active confirmation (replacing what
    /// was there). `NotFound` if there is no such session.
    async fn set_oidc_session_claims(
        &self,
        tenant: TenantId,
        token_hash: &str,
        claims: &OidcSessionClaims,
    ) -> StoreResult<()>;
    /// A session's claims and active confirmation (empty for a session
    /// stored without them). `NotFound` if there is no such session.
    async fn get_oidc_session_claims(
        &self,
        tenant: TenantId,
        token_hash: &str,
    ) -> StoreResult<OidcSessionClaims>;
    /// Records that the session's directory user was confirmed active at
    /// `at` (never moves backwards). `NotFound` if there is no such
    /// session.
    async fn confirm_oidc_session_active(
        &self,
        tenant: TenantId,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()>;
    /// Links recorded participants to the directory users synchronised
    /// since: every participant of the tenant without an e-mail or a
    /// directory user id whose stored Entra object id (lower-case) is a
    /// directory user's (active or not) gets, where it has none, that
    /// user's e-mail (else UPN), SIP URI and directory user id, and so is
    /// found by search and data-subject requests like one linked at
    /// capture. Erased participants carry no object id and are never
    /// linked. Returns how many participants changed.
    async fn link_participants_to_directory(&self, tenant: TenantId) -> StoreResult<u64>;
}

/// Implementation detail of [`delegate_store_areas!`](crate::delegate_store_areas):
/// an impl of [`DirectoryStore`] that forwards every method to a field. The
/// signatures are the trait's, once more: a method added to or changed in
/// the trait without this list fails to compile wherever the macro is used
/// (first in this crate's own tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_directory_store {
    ($ty:ty => $inner:ident, $hook:tt) => {
        $crate::__delegate_impl! {
            DirectoryStore for $ty => $inner, $hook;
            fn upsert_directory_user(&self, tenant: TenantId, user: &DirectoryUser) -> StoreResult<()>;
            fn get_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<DirectoryUser>;
            fn directory_user_by_object_id(&self, tenant: TenantId, object_id: &str) -> StoreResult<DirectoryUser>;
            fn list_directory_users(&self, tenant: TenantId) -> StoreResult<Vec<DirectoryUser>>;
            fn delete_directory_user(&self, tenant: TenantId, id: UserId) -> StoreResult<()>;
            fn upsert_directory_users(&self, tenant: TenantId, users: &[DirectoryUser]) -> StoreResult<()>;
            fn get_directory_sync_state(&self, tenant: TenantId) -> StoreResult<Option<DirectorySyncState>>;
            fn put_directory_sync_state(&self, tenant: TenantId, state: &DirectorySyncState) -> StoreResult<()>;
            fn create_oidc_session(&self, tenant: TenantId, session: &OidcSession) -> StoreResult<()>;
            fn get_oidc_session(&self, tenant: TenantId, token_hash: &str) -> StoreResult<OidcSession>;
            fn touch_oidc_session(&self, tenant: TenantId, token_hash: &str, at: chrono::DateTime<chrono::Utc>) -> StoreResult<()>;
            fn revoke_oidc_session(&self, tenant: TenantId, token_hash: &str, at: chrono::DateTime<chrono::Utc>) -> StoreResult<bool>;
            fn set_oidc_session_claims(&self, tenant: TenantId, token_hash: &str, claims: &OidcSessionClaims) -> StoreResult<()>;
            fn get_oidc_session_claims(&self, tenant: TenantId, token_hash: &str) -> StoreResult<OidcSessionClaims>;
            fn confirm_oidc_session_active(&self, tenant: TenantId, token_hash: &str, at: chrono::DateTime<chrono::Utc>) -> StoreResult<()>;
            fn link_participants_to_directory(&self, tenant: TenantId) -> StoreResult<u64>;
        }
    };
}
