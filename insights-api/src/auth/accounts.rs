//! Creating local accounts (`insights admin user add`): the password is
//! hashed with argon2id, TOTP is enrolled for the roles that require it
//! (the seed is sealed; the `otpauth://` URI is returned once to show the
//! user), and the creation is audited in the tenant's chain.

use std::sync::Arc;

use insights_core::config::AuthSettings;
use insights_core::crypto::{KeyProvider, PLATFORM_KEY_OWNER};
use insights_core::domain::{
    AccountId, AuditAction, LocalAccount, NewAuditEvent, Realm, Role, SecurityProfileId, TenantId,
    UserId, normalize_email, now, validate_email,
};
use insights_core::store::{MetadataStore, StoreError};
use zeroize::Zeroizing;

use super::password::{self, PasswordError};
use super::totp::{self, TotpFailure};

/// What is needed to create an account.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// `None` for a platform operator (and only for one).
    pub tenant: Option<TenantId>,
    pub email: String,
    pub role: Role,
    pub security_profile_id: Option<SecurityProfileId>,
    pub directory_user_id: Option<UserId>,
    /// Enrol TOTP even if the role does not require it.
    pub totp: bool,
}

/// The created account, and the enrolment URI to show once.
pub struct CreatedUser {
    pub account: LocalAccount,
    /// `otpauth://totp/...` (contains the seed: print once, never log).
    pub totp_uri: Option<Zeroizing<String>>,
}

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum AddUserError {
    #[error("not a valid email address")]
    Email,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("a platform operator belongs to no tenant (omit --tenant); every other role needs one")]
    Realm,
    #[error("an account with this email exists already")]
    Exists,
    #[error("no security profile {0} in this tenant")]
    NoProfile(SecurityProfileId),
    #[error("no directory user {0} in this tenant")]
    NoDirectoryUser(UserId),
    #[error(transparent)]
    Totp(#[from] TotpFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a local account with `password`; `actor` is audited.
pub async fn add_user(
    store: &Arc<dyn MetadataStore>,
    keys: &Arc<dyn KeyProvider>,
    settings: &AuthSettings,
    new: NewUser,
    password: &Zeroizing<String>,
    actor: &str,
) -> Result<CreatedUser, AddUserError> {
    validate_email(&new.email).map_err(|_| AddUserError::Email)?;
    password::check_policy(password)?;
    if (new.role == Role::PlatformOperator) != new.tenant.is_none() {
        return Err(AddUserError::Realm);
    }
    if let Some(t) = new.tenant {
        if let Some(p) = new.security_profile_id
            && !store
                .list_security_profiles(t)
                .await?
                .iter()
                .any(|x| x.id == p)
        {
            return Err(AddUserError::NoProfile(p));
        }
        if let Some(u) = new.directory_user_id {
            match store.get_directory_user(t, u).await {
                Ok(_) => {}
                Err(StoreError::NotFound) => return Err(AddUserError::NoDirectoryUser(u)),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let realm = Realm::of(new.tenant);
    let email = normalize_email(&new.email);
    match store.account_by_email(realm, &email).await {
        Ok(_) => return Err(AddUserError::Exists),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    let id = AccountId::new();
    let pw = password.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash_password(&pw))
        .await
        .map_err(|_| AddUserError::Password(PasswordError::Hash))??;
    let enrolment = if new.totp || settings.requires_mfa(new.role) {
        let owner = new.tenant.unwrap_or(PLATFORM_KEY_OWNER);
        Some(totp::enrol(keys.as_ref(), owner, id, &email).await?)
    } else {
        None
    };
    let account = LocalAccount {
        id,
        tenant_id: new.tenant,
        email,
        role: new.role,
        security_profile_id: new.security_profile_id,
        directory_user_id: new.directory_user_id,
        password_hash: hash,
        totp: enrolment.as_ref().map(|e| e.sealed.clone()),
        totp_last_step: None,
        failed_logins: 0,
        locked_until: None,
        active: true,
        created_at: now(),
        last_login_at: None,
    };
    match store.create_account(realm, &account).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(AddUserError::Exists),
        Err(e) => return Err(e.into()),
    }
    let details = serde_json::json!({
        "change": "account-created",
        "role": account.role,
        "totp": account.totp.is_some(),
    });
    match new.tenant {
        Some(t) => {
            store
                .append_audit(
                    t,
                    NewAuditEvent {
                        actor: actor.to_owned(),
                        action: AuditAction::UserChange,
                        recording_id: None,
                        target: Some(id.to_string()),
                        reason: None,
                        source: None,
                        details,
                    },
                )
                .await?;
        }
        None => tracing::info!(account = %id, actor, "platform operator account created"),
    }
    Ok(CreatedUser {
        account,
        totp_uri: enrolment.map(|e| e.uri),
    })
}
