//! No privilege escalation between tenant roles. Whoever manages users or
//! security profiles:
//!
//! * cannot change their own security profile (nor their own role or
//!   active flag, checked by the route);
//! * cannot edit a security profile assigned to themselves;
//! * cannot grant a permission they do not hold themselves: not to a new
//!   or changed account (its role's defaults or its profile's
//!   permissions), not to a profile they create or replace.
//!
//! Refusals: `403 permission-not-held`, `409 own-account`,
//! `409 own-profile`.
//!
//! Resetting a password or a second factor (`POST /api/users/{id}/
//! reset-password|reset-second-factor`) is a grant too (whoever resets
//! can sign in as the account until its owner does): a caller lacking a
//! permission of the account is refused, unless a tenant administrator
//! (then, like an account that administers users,
//! [`Authenticator::administers_users`], it is only reset when a second
//! administrator approves: two-person governance). So is a tenant
//! administrator's new account with permissions they lack (a DPO).

use std::collections::BTreeSet;

use insights_core::domain::{LocalAccount, Permission, Realm, Role, SecurityProfileId, TenantId};

use super::{Authenticator, Principal, Subject};
use crate::error::ApiError;

impl Authenticator {
    /// The permissions an account of `tenant` with `role` and `profile`
    /// would have (`400` for a profile that does not exist there).
    async fn would_grant(
        &self,
        tenant: TenantId,
        role: Role,
        profile: Option<SecurityProfileId>,
    ) -> Result<BTreeSet<Permission>, ApiError> {
        match profile {
            None => Ok(role.default_permissions().into_iter().collect()),
            Some(id) => match self.profile(tenant, id).await? {
                Some(p) => Ok(p.permissions.into_iter().collect()),
                None => Err(ApiError::BadRequest {
                    code: "unknown-security-profile",
                    detail: "no such security profile in this tenant".into(),
                }),
            },
        }
    }

    fn holds_all<'a>(
        p: &Principal,
        wanted: impl IntoIterator<Item = &'a Permission>,
    ) -> Result<(), ApiError> {
        if wanted.into_iter().all(|w| p.permissions.contains(w)) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                code: "permission-not-held",
            })
        }
    }

    /// Refuses an account with `role`/`profile` whose permissions the
    /// caller does not all hold.
    pub async fn check_grant(
        &self,
        p: &Principal,
        role: Role,
        profile: Option<SecurityProfileId>,
    ) -> Result<(), ApiError> {
        let tenant = p.tenant()?;
        if role == Role::PlatformOperator {
            // Never a tenant account: the routes refuse it as `bad-role`.
            return Ok(());
        }
        let granted = self.would_grant(tenant, role, profile).await?;
        Self::holds_all(p, &granted)
    }

    /// Checks a change of `before`'s role and profile (`Some(None)`
    /// clears the profile) by the caller.
    pub async fn check_user_change(
        &self,
        p: &Principal,
        before: &LocalAccount,
        role: Option<Role>,
        profile: Option<Option<SecurityProfileId>>,
    ) -> Result<(), ApiError> {
        let own = p.subject == Subject::Account(before.id);
        if own && profile.is_some_and(|x| x != before.security_profile_id) {
            return Err(ApiError::Conflict {
                code: "own-account",
                detail: "you cannot change your own security profile".into(),
            });
        }
        if role.is_none() && profile.is_none() {
            return Ok(());
        }
        let role = role.unwrap_or(before.role);
        let profile = profile.unwrap_or(before.security_profile_id);
        self.check_grant(p, role, profile).await
    }

    /// Whether `a` administers users (the tenant-admin role, or a profile
    /// with `manage-users`): resetting its credentials needs two people.
    pub async fn administers_users(&self, a: &LocalAccount) -> Result<bool, ApiError> {
        if a.role == Role::TenantAdmin {
            return Ok(true);
        }
        let p = self
            .account_principal(a, super::AuthMethod::SessionCookie)
            .await?;
        Ok(p.has(Permission::ManageUsers))
    }

    /// Checks that the caller may store a profile (`id` of an existing
    /// one, `None` for a new one) with `permissions`.
    pub async fn check_profile_change(
        &self,
        p: &Principal,
        id: Option<SecurityProfileId>,
        permissions: &[Permission],
    ) -> Result<(), ApiError> {
        if let Some(id) = id
            && self.own_profile(p).await? == Some(id)
        {
            return Err(ApiError::Conflict {
                code: "own-profile",
                detail: "you cannot edit the security profile assigned to you".into(),
            });
        }
        Self::holds_all(p, permissions)
    }

    /// The security profile the caller's permissions come from.
    async fn own_profile(&self, p: &Principal) -> Result<Option<SecurityProfileId>, ApiError> {
        match (&p.subject, p.tenant_id) {
            (Subject::Account(id), Some(t)) => {
                match self.store.get_account(Realm::Tenant(t), *id).await {
                    Ok(a) => Ok(a.security_profile_id),
                    Err(insights_core::store::StoreError::NotFound) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
            _ => Ok(p.security_profile_id),
        }
    }
}
