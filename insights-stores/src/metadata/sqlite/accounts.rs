//! Local accounts and browser sessions of both realms: a tenant's users
//! (`accounts`, `sessions`) and the platform operators
//! (`operator_accounts`, `operator_sessions`, no tenant). The two pairs
//! of tables have the same columns apart from `tenant_id`, so each query
//! is written once and assembled from constant fragments per realm; every
//! value is bound.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::crypto::SealedSecret;
use insights_core::domain::{
    AccountId, CredentialReset, FirstSignIn, LocalAccount, LoginAttempt, LoginFailure,
    LoginSession, Realm, SecurityProfile, TenantId, normalize_email,
};
use insights_core::store::{AccountChange, AccountStore, StoreError, StoreResult};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{AssertSqlSafe, Sqlite, SqlitePool};

use super::SqliteStore;
use super::util::{col, conflict_as, db, enum_col, id, micros, opt_id, opt_ts, to_json, ts};

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(&self, realm: Realm, account: &LocalAccount) -> StoreResult<()> {
        create_account(&self.pool, realm, account).await
    }

    async fn get_account(&self, realm: Realm, id: AccountId) -> StoreResult<LocalAccount> {
        get_account(&self.pool, realm, id).await
    }

    async fn account_by_email(&self, realm: Realm, email: &str) -> StoreResult<LocalAccount> {
        account_by_email(&self.pool, realm, email).await
    }

    async fn list_accounts(&self, realm: Realm) -> StoreResult<Vec<LocalAccount>> {
        list_accounts(&self.pool, realm).await
    }

    async fn update_account(
        &self,
        tenant: TenantId,
        id: AccountId,
        change: &AccountChange,
    ) -> StoreResult<LocalAccount> {
        super::governance::update_account(&self.pool, tenant, id, change).await
    }

    async fn record_login_failure(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        lock_after: u32,
        lock_for: chrono::Duration,
    ) -> StoreResult<LoginFailure> {
        record_login_failure(&self.pool, realm, id, at, lock_after, lock_for).await
    }

    async fn record_login_success(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        totp_step: Option<i64>,
    ) -> StoreResult<bool> {
        record_login_success(&self.pool, realm, id, at, totp_step).await
    }

    async fn claim_login_attempt(
        &self,
        key: &str,
        at: chrono::DateTime<chrono::Utc>,
        lock_after: u32,
        lock_for: chrono::Duration,
    ) -> StoreResult<LoginAttempt> {
        claim_login_attempt(&self.pool, key, at, lock_after, lock_for).await
    }

    async fn clear_login_attempts(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_throttles WHERE key = ?")
            .bind(key.to_owned())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn set_pending_totp(
        &self,
        realm: Realm,
        id: AccountId,
        sealed: &SealedSecret,
    ) -> StoreResult<()> {
        let s = sql(realm);
        let q = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {} SET totp_pending = ? WHERE {}id = ?",
            s.accounts, s.tenant_filter
        )))
        .bind(to_json(sealed)?);
        let done = bind_tenant(realm, q)
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn rewrap_totp(
        &self,
        realm: Realm,
        id: AccountId,
        old: &SealedSecret,
        new: &SealedSecret,
    ) -> StoreResult<bool> {
        let (old, new) = (to_json(old)?, to_json(new)?);
        let s = sql(realm);
        let q = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {} SET \
               totp_sealed = CASE WHEN totp_sealed = ? THEN ? ELSE totp_sealed END, \
               totp_pending = CASE WHEN totp_pending = ? THEN ? ELSE totp_pending END \
             WHERE {}id = ? AND (totp_sealed = ? OR totp_pending = ?)",
            s.accounts, s.tenant_filter
        )))
        .bind(old.clone())
        .bind(new.clone())
        .bind(old.clone())
        .bind(new);
        let done = bind_tenant(realm, q)
            .bind(id.0)
            .bind(old.clone())
            .bind(old)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn complete_first_sign_in(
        &self,
        realm: Realm,
        id: AccountId,
        old_password_hash: &str,
        done: &FirstSignIn,
    ) -> StoreResult<bool> {
        if !done.password_hash.starts_with("$argon2id$") {
            return Err(StoreError::Invalid(
                "the password must be an argon2id hash".into(),
            ));
        }
        let s = sql(realm);
        let totp = done.totp.as_ref().map(to_json).transpose()?;
        let q = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {} SET password_hash = ?, totp_sealed = coalesce(?, totp_sealed), \
             totp_last_step = coalesce(?, totp_last_step), totp_pending = NULL, \
             recovery_codes = ?, must_change_password = 0, failed_logins = 0, \
             locked_until = NULL, last_login_at = ? \
             WHERE {}id = ? AND password_hash = ?",
            s.accounts, s.tenant_filter
        )))
        .bind(done.password_hash.clone())
        .bind(totp)
        .bind(done.totp_step)
        .bind(to_json(&done.recovery_codes)?)
        .bind(micros(done.at));
        let r = bind_tenant(realm, q)
            .bind(id.0)
            .bind(old_password_hash.to_owned())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if r.rows_affected() > 0 {
            return Ok(true);
        }
        get_account(&self.pool, realm, id).await.map(|_| false)
    }

    async fn reset_credentials(
        &self,
        realm: Realm,
        id: AccountId,
        reset: &CredentialReset,
    ) -> StoreResult<()> {
        if reset
            .password_hash
            .as_ref()
            .is_some_and(|h| !h.starts_with("$argon2id$"))
        {
            return Err(StoreError::Invalid(
                "the password must be an argon2id hash".into(),
            ));
        }
        let s = sql(realm);
        let mut tx = self.pool.begin().await.map_err(db)?;
        let q = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {} SET password_hash = coalesce(?, password_hash), \
             must_change_password = (must_change_password OR ? IS NOT NULL), \
             totp_sealed = CASE WHEN ? THEN NULL ELSE totp_sealed END, \
             totp_pending = CASE WHEN ? THEN NULL ELSE totp_pending END, \
             totp_last_step = CASE WHEN ? THEN NULL ELSE totp_last_step END, \
             recovery_codes = CASE WHEN ? THEN '[]' ELSE recovery_codes END, \
             failed_logins = 0, locked_until = NULL \
             WHERE {}id = ?",
            s.accounts, s.tenant_filter
        )))
        .bind(reset.password_hash.clone())
        .bind(reset.password_hash.clone())
        .bind(reset.clear_totp)
        .bind(reset.clear_totp)
        .bind(reset.clear_totp)
        .bind(reset.clear_totp);
        let r = bind_tenant(realm, q)
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let q = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {} SET revoked_at = ? WHERE {}account_id = ? AND revoked_at IS NULL",
            s.sessions, s.tenant_filter
        )))
        .bind(micros(reset.at));
        bind_tenant(realm, q)
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn use_recovery_code(
        &self,
        realm: Realm,
        id: AccountId,
        code_hash: &str,
    ) -> StoreResult<bool> {
        let s = sql(realm);
        // Compare-and-swap on the list: a concurrent use of the same code
        // changes the list, so at most one of them wins.
        for _ in 0..5 {
            let a = get_account(&self.pool, realm, id).await?;
            if !a.recovery_codes.iter().any(|c| c == code_hash) {
                return Ok(false);
            }
            let rest: Vec<&String> = a
                .recovery_codes
                .iter()
                .filter(|c| *c != code_hash)
                .collect();
            let q = sqlx::query(AssertSqlSafe(format!(
                "UPDATE {} SET recovery_codes = ? WHERE {}id = ? AND recovery_codes = ?",
                s.accounts, s.tenant_filter
            )))
            .bind(to_json(&rest)?);
            let r = bind_tenant(realm, q)
                .bind(id.0)
                .bind(to_json(&a.recovery_codes)?)
                .execute(&self.pool)
                .await
                .map_err(db)?;
            if r.rows_affected() > 0 {
                return Ok(true);
            }
        }
        Err(StoreError::Conflict(
            "the recovery codes changed concurrently; try again".into(),
        ))
    }

    async fn create_session(&self, realm: Realm, session: &LoginSession) -> StoreResult<()> {
        create_session(&self.pool, realm, session).await
    }

    async fn get_session(&self, realm: Realm, token_hash: &str) -> StoreResult<LoginSession> {
        get_session(&self.pool, realm, token_hash).await
    }

    async fn touch_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        touch_session(&self.pool, realm, token_hash, at).await
    }

    async fn revoke_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        revoke_session(&self.pool, realm, token_hash, at).await
    }

    async fn upsert_security_profile(
        &self,
        tenant: TenantId,
        p: &SecurityProfile,
    ) -> StoreResult<()> {
        super::governance::upsert_security_profile(&self.pool, tenant, p).await
    }

    async fn list_security_profiles(&self, tenant: TenantId) -> StoreResult<Vec<SecurityProfile>> {
        super::governance::list_security_profiles(&self.pool, tenant).await
    }
}

/// The SQL fragments of a realm.
struct Sql {
    accounts: &'static str,
    sessions: &'static str,
    /// Column list prefix for inserts.
    tenant_col: &'static str,
    /// Placeholder prefix for inserts.
    tenant_val: &'static str,
    /// `WHERE` prefix.
    tenant_filter: &'static str,
    /// Select expression for `tenant_id`.
    tenant_sel: &'static str,
}

fn sql(realm: Realm) -> Sql {
    match realm {
        Realm::Tenant(_) => Sql {
            accounts: "accounts",
            sessions: "sessions",
            tenant_col: "tenant_id, ",
            tenant_val: "?, ",
            tenant_filter: "tenant_id = ? AND ",
            tenant_sel: "tenant_id",
        },
        Realm::Platform => Sql {
            accounts: "operator_accounts",
            sessions: "operator_sessions",
            tenant_col: "",
            tenant_val: "",
            tenant_filter: "",
            tenant_sel: "NULL AS tenant_id",
        },
    }
}

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// A query of `text`, with the realm's tenant bound if it has one (the
/// tenant placeholder must be the first `?` of `text`).
fn query(realm: Realm, text: String) -> Query<'static> {
    let q = sqlx::query(AssertSqlSafe(text));
    match realm {
        Realm::Tenant(t) => q.bind(t.0),
        Realm::Platform => q,
    }
}

/// Binds the realm's tenant at this point (for a `tenant_filter` that
/// follows other placeholders).
fn bind_tenant(realm: Realm, q: Query<'static>) -> Query<'static> {
    match realm {
        Realm::Tenant(t) => q.bind(t.0),
        Realm::Platform => q,
    }
}

const ACCOUNT_COLUMNS: &str = "id, email, role, security_profile_id, directory_user_id, \
     password_hash, totp_sealed, totp_last_step, failed_logins, locked_until, active, \
     created_at, last_login_at, must_change_password, totp_pending, recovery_codes";

fn account_from_row(row: &SqliteRow) -> StoreResult<LocalAccount> {
    let sealed: Option<String> = col(row, "totp_sealed")?;
    let totp = sealed
        .map(|s| {
            serde_json::from_str(&s)
                .map_err(|_| StoreError::Corrupt("column `totp_sealed`: invalid JSON".into()))
        })
        .transpose()?;
    let failed: i64 = col(row, "failed_logins")?;
    Ok(LocalAccount {
        id: id(row, "id")?,
        tenant_id: opt_id(row, "tenant_id")?,
        email: col(row, "email")?,
        role: enum_col(row, "role")?,
        security_profile_id: opt_id(row, "security_profile_id")?,
        directory_user_id: opt_id(row, "directory_user_id")?,
        password_hash: col(row, "password_hash")?,
        totp,
        totp_last_step: col(row, "totp_last_step")?,
        failed_logins: u32::try_from(failed)
            .map_err(|_| StoreError::Corrupt("column `failed_logins` out of range".into()))?,
        locked_until: opt_ts(row, "locked_until")?,
        active: col(row, "active")?,
        created_at: ts(row, "created_at")?,
        last_login_at: opt_ts(row, "last_login_at")?,
        must_change_password: col(row, "must_change_password")?,
        totp_pending: col::<Option<String>>(row, "totp_pending")?
            .map(|s| {
                serde_json::from_str(&s)
                    .map_err(|_| StoreError::Corrupt("column `totp_pending`: invalid JSON".into()))
            })
            .transpose()?,
        recovery_codes: serde_json::from_str(&col::<String>(row, "recovery_codes")?)
            .map_err(|_| StoreError::Corrupt("column `recovery_codes`: invalid JSON".into()))?,
    })
}

fn check_realm(realm: Realm, other: Realm, what: &str) -> StoreResult<()> {
    if realm == other {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} belongs to {other}, not to {realm}"
        )))
    }
}

pub(super) async fn create_account(
    pool: &SqlitePool,
    realm: Realm,
    a: &LocalAccount,
) -> StoreResult<()> {
    check_realm(realm, a.realm(), "the account")?;
    a.validate().map_err(StoreError::Invalid)?;
    let s = sql(realm);
    let totp = a.totp.as_ref().map(to_json).transpose()?;
    query(
        realm,
        format!(
            "INSERT INTO {} ({}{ACCOUNT_COLUMNS}) VALUES ({}?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            s.accounts, s.tenant_col, s.tenant_val
        ),
    )
    .bind(a.id.0)
    .bind(a.email.clone())
    .bind(a.role.as_str())
    .bind(a.security_profile_id.map(|p| p.0))
    .bind(a.directory_user_id.map(|u| u.0))
    .bind(a.password_hash.clone())
    .bind(totp)
    .bind(a.totp_last_step)
    .bind(i64::from(a.failed_logins))
    .bind(a.locked_until.map(micros))
    .bind(a.active)
    .bind(micros(a.created_at))
    .bind(a.last_login_at.map(micros))
    .bind(a.must_change_password)
    .bind(a.totp_pending.as_ref().map(to_json).transpose()?)
    .bind(to_json(&a.recovery_codes)?)
    .execute(pool)
    .await
    .map_err(conflict_as("an account with this email or id exists"))?;
    Ok(())
}

async fn one_account(
    pool: &SqlitePool,
    realm: Realm,
    by: &'static str,
    bind: impl FnOnce(Query<'static>) -> Query<'static>,
) -> StoreResult<LocalAccount> {
    let s = sql(realm);
    let q = query(
        realm,
        format!(
            "SELECT {}, {ACCOUNT_COLUMNS} FROM {} WHERE {}{by} = ?",
            s.tenant_sel, s.accounts, s.tenant_filter
        ),
    );
    let row = bind(q)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound)?;
    account_from_row(&row)
}

pub(super) async fn get_account(
    pool: &SqlitePool,
    realm: Realm,
    id: AccountId,
) -> StoreResult<LocalAccount> {
    one_account(pool, realm, "id", |q| q.bind(id.0)).await
}

pub(super) async fn account_by_email(
    pool: &SqlitePool,
    realm: Realm,
    email: &str,
) -> StoreResult<LocalAccount> {
    let email = normalize_email(email);
    one_account(pool, realm, "email", |q| q.bind(email)).await
}

pub(super) async fn list_accounts(
    pool: &SqlitePool,
    realm: Realm,
) -> StoreResult<Vec<LocalAccount>> {
    let s = sql(realm);
    let filter = match realm {
        Realm::Tenant(_) => "WHERE tenant_id = ? ",
        Realm::Platform => "",
    };
    query(
        realm,
        format!(
            "SELECT {}, {ACCOUNT_COLUMNS} FROM {} {filter}ORDER BY email, id",
            s.tenant_sel, s.accounts
        ),
    )
    .fetch_all(pool)
    .await
    .map_err(db)?
    .iter()
    .map(account_from_row)
    .collect()
}

pub(super) async fn record_login_failure(
    pool: &SqlitePool,
    realm: Realm,
    id: AccountId,
    at: DateTime<Utc>,
    lock_after: u32,
    lock_for: chrono::Duration,
) -> StoreResult<LoginFailure> {
    let s = sql(realm);
    // One statement: concurrent failures never lose a count. SET
    // expressions all see the row as it was before the update.
    let q = sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET \
         failed_logins = CASE WHEN failed_logins + 1 >= ? THEN 0 ELSE failed_logins + 1 END, \
         locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? \
                             WHEN locked_until > ? THEN locked_until ELSE NULL END \
         WHERE {}id = ? RETURNING failed_logins, locked_until",
        s.accounts, s.tenant_filter
    )))
    .bind(i64::from(lock_after.max(1)))
    .bind(i64::from(lock_after.max(1)))
    .bind(micros(at + lock_for))
    .bind(micros(at));
    let row = bind_tenant(realm, q)
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound)?;
    let failed: i64 = col(&row, "failed_logins")?;
    Ok(LoginFailure {
        failed_logins: u32::try_from(failed)
            .map_err(|_| StoreError::Corrupt("column `failed_logins` out of range".into()))?,
        locked_until: opt_ts(&row, "locked_until")?,
    })
}

pub(super) async fn record_login_success(
    pool: &SqlitePool,
    realm: Realm,
    id: AccountId,
    at: DateTime<Utc>,
    totp_step: Option<i64>,
) -> StoreResult<bool> {
    let s = sql(realm);
    let q = sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET failed_logins = 0, locked_until = NULL, last_login_at = ?, \
         totp_last_step = coalesce(?, totp_last_step) \
         WHERE {}id = ? AND (? IS NULL OR totp_last_step IS NULL OR totp_last_step < ?)",
        s.accounts, s.tenant_filter
    )))
    .bind(micros(at))
    .bind(totp_step);
    let done = bind_tenant(realm, q)
        .bind(id.0)
        .bind(totp_step)
        .bind(totp_step)
        .execute(pool)
        .await
        .map_err(db)?;
    if done.rows_affected() > 0 {
        return Ok(true);
    }
    // Either no such account, or a replayed TOTP step.
    get_account(pool, realm, id).await.map(|_| false)
}

/// Keys without a lock and without an attempt for this long are forgotten.
const THROTTLE_KEEP_HOURS: i64 = 24;

pub(super) async fn claim_login_attempt(
    pool: &SqlitePool,
    key: &str,
    at: DateTime<Utc>,
    lock_after: u32,
    lock_for: chrono::Duration,
) -> StoreResult<LoginAttempt> {
    let lock_after = i64::from(lock_after.max(1));
    sqlx::query(
        "DELETE FROM login_throttles WHERE updated_at < ? \
         AND (locked_until IS NULL OR locked_until < ?)",
    )
    .bind(micros(at - chrono::Duration::hours(THROTTLE_KEEP_HOURS)))
    .bind(micros(at))
    .execute(pool)
    .await
    .map_err(db)?;
    sqlx::query(
        "INSERT INTO login_throttles (key, failures, locked_until, updated_at) \
         VALUES (?, 0, NULL, ?) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key.to_owned())
    .bind(micros(at))
    .execute(pool)
    .await
    .map_err(db)?;
    // One statement counts and decides: concurrent attempts are
    // serialised by the database, so exactly `lock_after` are admitted
    // before the lock, however many arrive at once.
    let row = sqlx::query(
        "UPDATE login_throttles SET \
         failures = CASE WHEN failures + 1 >= ? THEN 0 ELSE failures + 1 END, \
         locked_until = CASE WHEN failures + 1 >= ? THEN ? ELSE NULL END, \
         updated_at = ? \
         WHERE key = ? AND (locked_until IS NULL OR locked_until <= ?) \
         RETURNING failures, locked_until",
    )
    .bind(lock_after)
    .bind(lock_after)
    .bind(micros(at + lock_for))
    .bind(micros(at))
    .bind(key.to_owned())
    .bind(micros(at))
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    if let Some(row) = row {
        let failures: i64 = col(&row, "failures")?;
        let locked = opt_ts(&row, "locked_until")?;
        let failures = if locked.is_some() {
            lock_after
        } else {
            failures
        };
        return Ok(LoginAttempt::Admitted {
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
        });
    }
    let until = sqlx::query("SELECT locked_until FROM login_throttles WHERE key = ?")
        .bind(key.to_owned())
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .map(|r| opt_ts(&r, "locked_until"))
        .transpose()?
        .flatten()
        .unwrap_or(at);
    Ok(LoginAttempt::Locked {
        until: until.max(at),
    })
}

// ---- sessions ----

const SESSION_COLUMNS: &str =
    "token_hash, account_id, created_at, last_seen_at, expires_at, revoked_at";

fn session_from_row(row: &SqliteRow) -> StoreResult<LoginSession> {
    Ok(LoginSession {
        token_hash: col(row, "token_hash")?,
        tenant_id: opt_id(row, "tenant_id")?,
        account_id: id(row, "account_id")?,
        created_at: ts(row, "created_at")?,
        last_seen_at: ts(row, "last_seen_at")?,
        expires_at: ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

pub(super) async fn create_session(
    pool: &SqlitePool,
    realm: Realm,
    x: &LoginSession,
) -> StoreResult<()> {
    check_realm(realm, x.realm(), "the session")?;
    let s = sql(realm);
    query(
        realm,
        format!(
            "INSERT INTO {} ({}{SESSION_COLUMNS}) VALUES ({}?, ?, ?, ?, ?, ?)",
            s.sessions, s.tenant_col, s.tenant_val
        ),
    )
    .bind(x.token_hash.clone())
    .bind(x.account_id.0)
    .bind(micros(x.created_at))
    .bind(micros(x.last_seen_at))
    .bind(micros(x.expires_at))
    .bind(x.revoked_at.map(micros))
    .execute(pool)
    .await
    .map_err(conflict_as("a session with this token exists"))?;
    Ok(())
}

pub(super) async fn get_session(
    pool: &SqlitePool,
    realm: Realm,
    token_hash: &str,
) -> StoreResult<LoginSession> {
    let s = sql(realm);
    let row = query(
        realm,
        format!(
            "SELECT {}, {SESSION_COLUMNS} FROM {} WHERE {}token_hash = ?",
            s.tenant_sel, s.sessions, s.tenant_filter
        ),
    )
    .bind(token_hash.to_owned())
    .fetch_optional(pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound)?;
    session_from_row(&row)
}

pub(super) async fn touch_session(
    pool: &SqlitePool,
    realm: Realm,
    token_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let s = sql(realm);
    let q = sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET last_seen_at = max(last_seen_at, ?) WHERE {}token_hash = ?",
        s.sessions, s.tenant_filter
    )))
    .bind(micros(at));
    let done = bind_tenant(realm, q)
        .bind(token_hash.to_owned())
        .execute(pool)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn revoke_session(
    pool: &SqlitePool,
    realm: Realm,
    token_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let s = sql(realm);
    let q = sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET revoked_at = ? WHERE {}token_hash = ? AND revoked_at IS NULL",
        s.sessions, s.tenant_filter
    )))
    .bind(micros(at));
    let done = bind_tenant(realm, q)
        .bind(token_hash.to_owned())
        .execute(pool)
        .await
        .map_err(db)?;
    if done.rows_affected() > 0 {
        return Ok(true);
    }
    get_session(pool, realm, token_hash).await.map(|_| false)
}
