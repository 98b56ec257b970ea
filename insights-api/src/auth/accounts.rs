//! Creating local accounts (`insights admin user add`, `POST /api/users`):
//! the initial password is hashed with argon2id and must be replaced at
//! the first sign-in, where the user also enrols TOTP themselves (the
//! creating administrator never sees the seed; see [`super::login`]); the
//! creation is audited in the tenant's chain.

use std::sync::Arc;

use insights_core::domain::{
    AccountId, AuditAction, LocalAccount, NewAuditEvent, Realm, Role, SecurityProfileId, TenantId,
    UserId, normalize_email, now, validate_email,
};
use insights_core::store::{MetadataStore, StoreError};
use zeroize::Zeroizing;

use super::password::{self, PasswordError};

/// What is needed to create an account.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// `None` for a platform operator (and only for one).
    pub tenant: Option<TenantId>,
    pub email: String,
    pub role: Role,
    pub security_profile_id: Option<SecurityProfileId>,
    pub directory_user_id: Option<UserId>,
}

/// The created account (its first sign-in still to come).
pub struct CreatedUser {
    pub account: LocalAccount,
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
    Store(#[from] StoreError),
}

/// Creates a local account with `password`; `actor` is audited. The
/// password works for the first sign-in only.
pub async fn add_user(
    store: &Arc<dyn MetadataStore>,
    new: NewUser,
    password: &Zeroizing<String>,
    actor: &str,
) -> Result<CreatedUser, AddUserError> {
    create(store, new, password, actor, true).await
}

/// Creates the first administrator of a tenant at first run, with the
/// password they chose themselves on the setup page (so their first
/// sign-in only enrols TOTP).
pub async fn add_first_admin(
    store: &Arc<dyn MetadataStore>,
    new: NewUser,
    password: &Zeroizing<String>,
) -> Result<CreatedUser, AddUserError> {
    create(store, new, password, "setup", false).await
}

/// Creates an account whose initial password was checked and hashed
/// earlier (an account a second administrator approved; see
/// `POST /api/users`): the same checks and audit as [`add_user`].
pub async fn add_user_with_hash(
    store: &Arc<dyn MetadataStore>,
    new: NewUser,
    password_hash: String,
    actor: &str,
) -> Result<CreatedUser, AddUserError> {
    if !password_hash.starts_with("$argon2id$") {
        return Err(AddUserError::Password(PasswordError::Hash));
    }
    create_checked(store, new, Some(password_hash), None, actor, true).await
}

/// Checks what [`add_user`] checks, without creating anything: the
/// email, the password policy, the realm, the profile, the directory user
/// and that no account has the email.
pub async fn check_new_user(
    store: &Arc<dyn MetadataStore>,
    new: &NewUser,
    password: &Zeroizing<String>,
) -> Result<(), AddUserError> {
    validate_email(&new.email).map_err(|_| AddUserError::Email)?;
    password::check_policy(password)?;
    check_target(store, new).await
}

async fn create(
    store: &Arc<dyn MetadataStore>,
    new: NewUser,
    password: &Zeroizing<String>,
    actor: &str,
    must_change_password: bool,
) -> Result<CreatedUser, AddUserError> {
    create_checked(
        store,
        new,
        None,
        Some(password),
        actor,
        must_change_password,
    )
    .await
}

async fn check_target(store: &Arc<dyn MetadataStore>, new: &NewUser) -> Result<(), AddUserError> {
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
        Ok(_) => Err(AddUserError::Exists),
        Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn create_checked(
    store: &Arc<dyn MetadataStore>,
    new: NewUser,
    hash: Option<String>,
    password: Option<&Zeroizing<String>>,
    actor: &str,
    must_change_password: bool,
) -> Result<CreatedUser, AddUserError> {
    validate_email(&new.email).map_err(|_| AddUserError::Email)?;
    if let Some(pw) = password {
        password::check_policy(pw)?;
    }
    check_target(store, &new).await?;
    let realm = Realm::of(new.tenant);
    let email = normalize_email(&new.email);
    let id = AccountId::new();
    let hash = match (hash, password) {
        (Some(h), _) => h,
        (None, Some(pw)) => {
            let pw = pw.clone();
            tokio::task::spawn_blocking(move || password::hash_password(&pw))
                .await
                .map_err(|_| AddUserError::Password(PasswordError::Hash))??
        }
        (None, None) => return Err(AddUserError::Password(PasswordError::Hash)),
    };
    let account = LocalAccount {
        id,
        tenant_id: new.tenant,
        email,
        role: new.role,
        security_profile_id: new.security_profile_id,
        directory_user_id: new.directory_user_id,
        password_hash: hash,
        totp: None,
        totp_last_step: None,
        failed_logins: 0,
        locked_until: None,
        active: true,
        created_at: now(),
        last_login_at: None,
        must_change_password,
        totp_pending: None,
        recovery_codes: Vec::new(),
    };
    match store.create_account(realm, &account).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(AddUserError::Exists),
        Err(e) => return Err(e.into()),
    }
    let details = serde_json::json!({
        "change": "account-created",
        "role": account.role,
        "first_sign_in": true,
        "password_chosen_by_user": !must_change_password,
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
    Ok(CreatedUser { account })
}
