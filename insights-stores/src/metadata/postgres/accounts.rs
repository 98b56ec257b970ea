//! Local accounts and browser sessions of both realms: a tenant's users
//! (`accounts`, `sessions`) and the platform operators
//! (`operator_accounts`, `operator_sessions`, no tenant). The two pairs
//! of tables have the same columns apart from `tenant_id`, so each query
//! is written once and assembled from constant fragments per realm; every
//! value is bound. Placeholders are written `?` and numbered `$n` by
//! [`numbered`].
//!
//! Tenant realms run in a tenant session (row-level security); the
//! platform realm runs as the connecting user on tables `insights_app`
//! has no grant on.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::crypto::SealedSecret;
use insights_core::domain::{
    AccountId, CredentialReset, FirstSignIn, LocalAccount, LoginAttempt, LoginFailure,
    LoginSession, Realm, SecurityProfile, SecurityProfileId, TenantId, UserId, normalize_email,
};
use insights_core::store::{AccountChange, AccountStore, StoreError, StoreResult};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{AssertSqlSafe, PgConnection, Postgres};
use uuid::Uuid;

use super::PgStore;
use super::error::{DbResultExt, col, enum_col};

#[async_trait]
impl AccountStore for PgStore {
    async fn create_account(&self, realm: Realm, account: &LocalAccount) -> StoreResult<()> {
        in_realm!(self, realm, |c| create_account(c, realm, account))
    }

    async fn get_account(&self, realm: Realm, id: AccountId) -> StoreResult<LocalAccount> {
        in_realm!(self, realm, |c| get_account(c, realm, id))
    }

    async fn account_by_email(&self, realm: Realm, email: &str) -> StoreResult<LocalAccount> {
        in_realm!(self, realm, |c| account_by_email(c, realm, email))
    }

    async fn list_accounts(&self, realm: Realm) -> StoreResult<Vec<LocalAccount>> {
        in_realm!(self, realm, |c| list_accounts(c, realm))
    }

    async fn update_account(
        &self,
        tenant: TenantId,
        id: AccountId,
        change: &AccountChange,
    ) -> StoreResult<LocalAccount> {
        in_tenant!(self, tenant, |c| super::governance::update_account(
            c, tenant, id, change
        ))
    }

    async fn record_login_failure(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        lock_after: u32,
        lock_for: chrono::Duration,
    ) -> StoreResult<LoginFailure> {
        in_realm!(self, realm, |c| record_login_failure(
            c, realm, id, at, lock_after, lock_for
        ))
    }

    async fn record_login_success(
        &self,
        realm: Realm,
        id: AccountId,
        at: chrono::DateTime<chrono::Utc>,
        totp_step: Option<i64>,
    ) -> StoreResult<bool> {
        in_realm!(self, realm, |c| record_login_success(
            c, realm, id, at, totp_step
        ))
    }

    async fn claim_login_attempt(
        &self,
        key: &str,
        at: chrono::DateTime<chrono::Utc>,
        lock_after: u32,
        lock_for: chrono::Duration,
    ) -> StoreResult<LoginAttempt> {
        // A platform table: no tenant session (the key may name no tenant).
        let mut c = self.pool.acquire().await.db()?;
        claim_login_attempt(&mut c, key, at, lock_after, lock_for).await
    }

    async fn clear_login_attempts(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_throttles WHERE key = $1")
            .bind(key.to_owned())
            .execute(&self.pool)
            .await
            .db()?;
        Ok(())
    }

    async fn set_pending_totp(
        &self,
        realm: Realm,
        id: AccountId,
        sealed: &SealedSecret,
    ) -> StoreResult<()> {
        let json = to_json(sealed)?;
        in_realm!(self, realm, |c| set_pending_totp(c, realm, id, json))
    }

    async fn rewrap_totp(
        &self,
        realm: Realm,
        id: AccountId,
        old: &SealedSecret,
        new: &SealedSecret,
    ) -> StoreResult<bool> {
        let (old, new) = (to_json(old)?, to_json(new)?);
        in_realm!(self, realm, |c| rewrap_totp(c, realm, id, old, new))
    }

    async fn complete_first_sign_in(
        &self,
        realm: Realm,
        id: AccountId,
        old_password_hash: &str,
        done: &FirstSignIn,
    ) -> StoreResult<bool> {
        in_realm!(self, realm, |c| complete_first_sign_in(
            c,
            realm,
            id,
            old_password_hash,
            done
        ))
    }

    async fn reset_credentials(
        &self,
        realm: Realm,
        id: AccountId,
        reset: &CredentialReset,
    ) -> StoreResult<()> {
        in_realm!(self, realm, |c| reset_credentials(c, realm, id, reset))
    }

    async fn use_recovery_code(
        &self,
        realm: Realm,
        id: AccountId,
        code_hash: &str,
    ) -> StoreResult<bool> {
        in_realm!(self, realm, |c| use_recovery_code(c, realm, id, code_hash))
    }

    async fn create_session(&self, realm: Realm, session: &LoginSession) -> StoreResult<()> {
        in_realm!(self, realm, |c| create_session(c, realm, session))
    }

    async fn get_session(&self, realm: Realm, token_hash: &str) -> StoreResult<LoginSession> {
        in_realm!(self, realm, |c| get_session(c, realm, token_hash))
    }

    async fn touch_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        in_realm!(self, realm, |c| touch_session(c, realm, token_hash, at))
    }

    async fn revoke_session(
        &self,
        realm: Realm,
        token_hash: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        in_realm!(self, realm, |c| revoke_session(c, realm, token_hash, at))
    }

    async fn upsert_security_profile(
        &self,
        tenant: TenantId,
        p: &SecurityProfile,
    ) -> StoreResult<()> {
        p.validate().map_err(StoreError::Invalid)?;
        if p.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "profile belongs to another tenant".into(),
            ));
        }
        in_tenant!(
            self,
            tenant,
            |c| super::governance::upsert_security_profile(c, tenant, p)
        )
    }

    async fn list_security_profiles(&self, tenant: TenantId) -> StoreResult<Vec<SecurityProfile>> {
        in_tenant!(self, tenant, |c| super::governance::list_security_profiles(
            c, tenant
        ))
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
            tenant_sel: "NULL::uuid AS tenant_id",
        },
    }
}

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// `text` with its `?` placeholders numbered `$1`, `$2`, ... in order.
fn numbered(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    for c in text.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// A query of `text`, with the realm's tenant bound if it has one (the
/// tenant placeholder must be the first `?` of `text`).
fn query(realm: Realm, text: String) -> Query<'static> {
    let q = sqlx::query(AssertSqlSafe(numbered(&text)));
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

fn account_from_row(row: &PgRow) -> StoreResult<LocalAccount> {
    let sealed: Option<String> = col(row, "totp_sealed")?;
    let totp = sealed
        .map(|s| {
            serde_json::from_str(&s)
                .map_err(|_| StoreError::Corrupt("column `totp_sealed`: invalid JSON".into()))
        })
        .transpose()?;
    let failed: i32 = col(row, "failed_logins")?;
    Ok(LocalAccount {
        id: AccountId(col(row, "id")?),
        tenant_id: col::<Option<Uuid>>(row, "tenant_id")?.map(TenantId),
        email: col(row, "email")?,
        role: enum_col(row, "role")?,
        security_profile_id: col::<Option<Uuid>>(row, "security_profile_id")?
            .map(SecurityProfileId),
        directory_user_id: col::<Option<Uuid>>(row, "directory_user_id")?.map(UserId),
        password_hash: col(row, "password_hash")?,
        totp,
        totp_last_step: col(row, "totp_last_step")?,
        failed_logins: u32::try_from(failed)
            .map_err(|_| StoreError::Corrupt("column `failed_logins` out of range".into()))?,
        locked_until: col(row, "locked_until")?,
        active: col(row, "active")?,
        created_at: col(row, "created_at")?,
        last_login_at: col(row, "last_login_at")?,
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

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|_| StoreError::Invalid("a value cannot be serialised".into()))
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
    c: &mut PgConnection,
    realm: Realm,
    a: &LocalAccount,
) -> StoreResult<()> {
    check_realm(realm, a.realm(), "the account")?;
    a.validate().map_err(StoreError::Invalid)?;
    let s = sql(realm);
    let totp = a
        .totp
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|_| StoreError::Invalid("the TOTP secret cannot be serialised".into()))?;
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
    .bind(i32::try_from(a.failed_logins).unwrap_or(i32::MAX))
    .bind(a.locked_until)
    .bind(a.active)
    .bind(a.created_at)
    .bind(a.last_login_at)
    .bind(a.must_change_password)
    .bind(a.totp_pending.as_ref().map(to_json).transpose()?)
    .bind(to_json(&a.recovery_codes)?)
    .execute(&mut *c)
    .await
    .db()?;
    Ok(())
}

async fn one_account(
    c: &mut PgConnection,
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
        .fetch_optional(&mut *c)
        .await
        .db()?
        .ok_or(StoreError::NotFound)?;
    account_from_row(&row)
}

pub(super) async fn get_account(
    c: &mut PgConnection,
    realm: Realm,
    id: AccountId,
) -> StoreResult<LocalAccount> {
    one_account(c, realm, "id", |q| q.bind(id.0)).await
}

pub(super) async fn account_by_email(
    c: &mut PgConnection,
    realm: Realm,
    email: &str,
) -> StoreResult<LocalAccount> {
    let email = normalize_email(email);
    one_account(c, realm, "email", |q| q.bind(email)).await
}

pub(super) async fn list_accounts(
    c: &mut PgConnection,
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
    .fetch_all(&mut *c)
    .await
    .db()?
    .iter()
    .map(account_from_row)
    .collect()
}

pub(super) async fn record_login_failure(
    c: &mut PgConnection,
    realm: Realm,
    id: AccountId,
    at: DateTime<Utc>,
    lock_after: u32,
    lock_for: chrono::Duration,
) -> StoreResult<LoginFailure> {
    let s = sql(realm);
    // One statement: concurrent failures never lose a count. SET
    // expressions all see the row as it was before the update.
    let q = sqlx::query(AssertSqlSafe(numbered(&format!(
        "UPDATE {} SET \
         failed_logins = CASE WHEN failed_logins + 1 >= ? THEN 0 ELSE failed_logins + 1 END, \
         locked_until = CASE WHEN failed_logins + 1 >= ? THEN ?::timestamptz \
                             WHEN locked_until > ? THEN locked_until ELSE NULL END \
         WHERE {}id = ? RETURNING failed_logins, locked_until",
        s.accounts, s.tenant_filter
    ))))
    .bind(i32::try_from(lock_after.max(1)).unwrap_or(i32::MAX))
    .bind(i32::try_from(lock_after.max(1)).unwrap_or(i32::MAX))
    .bind(at + lock_for)
    .bind(at);
    let row = bind_tenant(realm, q)
        .bind(id.0)
        .fetch_optional(&mut *c)
        .await
        .db()?
        .ok_or(StoreError::NotFound)?;
    let failed: i32 = col(&row, "failed_logins")?;
    Ok(LoginFailure {
        failed_logins: u32::try_from(failed)
            .map_err(|_| StoreError::Corrupt("column `failed_logins` out of range".into()))?,
        locked_until: col(&row, "locked_until")?,
    })
}

pub(super) async fn record_login_success(
    c: &mut PgConnection,
    realm: Realm,
    id: AccountId,
    at: DateTime<Utc>,
    totp_step: Option<i64>,
) -> StoreResult<bool> {
    let s = sql(realm);
    let q = sqlx::query(AssertSqlSafe(numbered(&format!(
        "UPDATE {} SET failed_logins = 0, locked_until = NULL, last_login_at = ?, \
         totp_last_step = coalesce(?::bigint, totp_last_step) \
         WHERE {}id = ? AND (?::bigint IS NULL OR totp_last_step IS NULL OR totp_last_step < ?)",
        s.accounts, s.tenant_filter
    ))))
    .bind(at)
    .bind(totp_step);
    let done = bind_tenant(realm, q)
        .bind(id.0)
        .bind(totp_step)
        .bind(totp_step)
        .execute(&mut *c)
        .await
        .db()?;
    if done.rows_affected() > 0 {
        return Ok(true);
    }
    // Either no such account, or a replayed TOTP step.
    get_account(c, realm, id).await.map(|_| false)
}

/// Keys without a lock and without an attempt for this long are forgotten.
const THROTTLE_KEEP_HOURS: i64 = 24;

async fn claim_login_attempt(
    c: &mut PgConnection,
    key: &str,
    at: DateTime<Utc>,
    lock_after: u32,
    lock_for: chrono::Duration,
) -> StoreResult<LoginAttempt> {
    let lock_after = i32::try_from(lock_after.max(1)).unwrap_or(i32::MAX);
    sqlx::query(
        "DELETE FROM login_throttles WHERE updated_at < $1 \
         AND (locked_until IS NULL OR locked_until < $2)",
    )
    .bind(at - chrono::Duration::hours(THROTTLE_KEEP_HOURS))
    .bind(at)
    .execute(&mut *c)
    .await
    .db()?;
    sqlx::query(
        "INSERT INTO login_throttles (key, failures, locked_until, updated_at) \
         VALUES ($1, 0, NULL, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key.to_owned())
    .bind(at)
    .execute(&mut *c)
    .await
    .db()?;
    // One statement counts and decides. Concurrent updates of the row
    // wait for each other and re-check the WHERE clause on the newest
    // version (READ COMMITTED), so exactly `lock_after` attempts are
    // admitted before the lock, across every process on this database.
    let row = sqlx::query(
        "UPDATE login_throttles SET \
         failures = CASE WHEN failures + 1 >= $1 THEN 0 ELSE failures + 1 END, \
         locked_until = CASE WHEN failures + 1 >= $1 THEN $2::timestamptz ELSE NULL END, \
         updated_at = $3 \
         WHERE key = $4 AND (locked_until IS NULL OR locked_until <= $3) \
         RETURNING failures, locked_until",
    )
    .bind(lock_after)
    .bind(at + lock_for)
    .bind(at)
    .bind(key.to_owned())
    .fetch_optional(&mut *c)
    .await
    .db()?;
    if let Some(row) = row {
        let failures: i32 = col(&row, "failures")?;
        let locked: Option<DateTime<Utc>> = col(&row, "locked_until")?;
        let failures = if locked.is_some() {
            lock_after
        } else {
            failures
        };
        return Ok(LoginAttempt::Admitted {
            failures: u32::try_from(failures).unwrap_or(0),
        });
    }
    let until: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT locked_until FROM login_throttles WHERE key = $1")
            .bind(key.to_owned())
            .fetch_optional(&mut *c)
            .await
            .db()?
            .flatten();
    Ok(LoginAttempt::Locked {
        until: until.unwrap_or(at).max(at),
    })
}

async fn set_pending_totp(
    c: &mut PgConnection,
    realm: Realm,
    id: AccountId,
    json: String,
) -> StoreResult<()> {
    let s = sql(realm);
    let q = sqlx::query(AssertSqlSafe(numbered(&format!(
        "UPDATE {} SET totp_pending = ? WHERE {}id = ?",
        s.accounts, s.tenant_filter
    ))))
    .bind(json);
    let done = bind_tenant(realm, q)
        .bind(id.0)
        .execute(&mut *c)
        .await
        .db()?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

async fn rewrap_totp(
    c: &mut PgConnection,
    realm: Realm,
    id: AccountId,
    old: String,
    new: String,
) -> StoreResult<bool> {
    let s = sql(realm);
    let q = sqlx::query(AssertSqlSafe(numbered(&format!(
        "UPDATE {} SET \
           totp_sealed = CASE WHEN totp_sealed = ? THEN ? ELSE totp_sealed END, \
           totp_pending = CASE WHEN totp_pending = ? THEN ? ELSE totp_pending END \
         WHERE {}id = ? AND (totp_sealed = ? OR totp_pending = ?)",
        s.accounts, s.tenant_filter
    ))))
    .bind(old.clone())
    .bind(new.clone())
    .bind(old.clone())
    .bind(new);
    let done = bind_tenant(realm, q)
        .bind(id.0)
        .bind(old.clone())
        .bind(old)
        .execute(&mut *c)
        .await
        .db()?;
    Ok(done.rows_affected() > 0)
}

async fn complete_first_sign_in(
    c: &mut PgConnection,
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
    let q = sqlx::query(AssertSqlSafe(numbered(&format!(
        "UPDATE {} SET password_hash = ?, totp_sealed = coalesce(?::text, totp_sealed), \
         totp_last_step = coalesce(?::bigint, totp_last_step), totp_pending = NULL, \
         recovery_codes = ?, must_change_password = false, failed_logins = 0, \
         locked_until = NULL, last_login_at = ? \
         WHERE {}id = ? AND password_hash = ?",
        s.accounts, s.tenant_filter
    ))))
    .bind(done.password_hash.clone())
    .bind(totp)
    .bind(done.totp_step)
    .bind(to_json(&done.recovery_codes)?)
    .bind(done.at);
    let r = bind_tenant(realm, q)
        .bind(id.0)
        .bind(old_password_hash.to_owned())
        .execute(&mut *c)
        .await
        .db()?;
    if r.rows_affected() > 0 {
        return Ok(true);
    }
    get_account(c, realm, id).await.map(|_| false)
}

async fn reset_credentials(
    c: &mut PgConnection,
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
    // One statement: the account row and its sessions change together.
    let q = sqlx::query(AssertSqlSafe(numbered(&format!(
        "WITH a AS (UPDATE {acc} SET password_hash = coalesce(?::text, password_hash), \
         must_change_password = must_change_password OR ?::text IS NOT NULL, \
         totp_sealed = CASE WHEN ? THEN NULL ELSE totp_sealed END, \
         totp_pending = CASE WHEN ? THEN NULL ELSE totp_pending END, \
         totp_last_step = CASE WHEN ? THEN NULL ELSE totp_last_step END, \
         recovery_codes = CASE WHEN ? THEN '[]' ELSE recovery_codes END, \
         failed_logins = 0, locked_until = NULL \
         WHERE {f}id = ? RETURNING id), \
         r AS (UPDATE {ses} SET revoked_at = ? WHERE {f}account_id IN (SELECT id FROM a) \
         AND revoked_at IS NULL RETURNING 1) \
         SELECT count(*) AS n FROM a",
        acc = s.accounts,
        ses = s.sessions,
        f = s.tenant_filter
    ))))
    .bind(reset.password_hash.clone())
    .bind(reset.password_hash.clone())
    .bind(reset.clear_totp)
    .bind(reset.clear_totp)
    .bind(reset.clear_totp)
    .bind(reset.clear_totp);
    let q = bind_tenant(realm, q).bind(id.0).bind(reset.at);
    let q = bind_tenant(realm, q);
    let n: i64 = q
        .fetch_one(&mut *c)
        .await
        .db()
        .and_then(|r| col::<i64>(&r, "n"))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

async fn use_recovery_code(
    c: &mut PgConnection,
    realm: Realm,
    id: AccountId,
    code_hash: &str,
) -> StoreResult<bool> {
    let s = sql(realm);
    // One statement: the row lock makes a concurrent use of the same
    // code find it gone.
    let q = sqlx::query(AssertSqlSafe(numbered(&format!(
        "UPDATE {} SET recovery_codes = (SELECT coalesce(jsonb_agg(x), '[]'::jsonb)::text \
         FROM jsonb_array_elements_text(recovery_codes::jsonb) AS x WHERE x <> ?) \
         WHERE {}id = ? AND jsonb_exists(recovery_codes::jsonb, ?)",
        s.accounts, s.tenant_filter
    ))))
    .bind(code_hash.to_owned());
    let r = bind_tenant(realm, q)
        .bind(id.0)
        .bind(code_hash.to_owned())
        .execute(&mut *c)
        .await
        .db()?;
    if r.rows_affected() > 0 {
        return Ok(true);
    }
    get_account(c, realm, id).await.map(|_| false)
}

// ---- sessions ----

const SESSION_COLUMNS: &str =
    "token_hash, account_id, created_at, last_seen_at, expires_at, revoked_at";

fn session_from_row(row: &PgRow) -> StoreResult<LoginSession> {
    Ok(LoginSession {
        token_hash: col(row, "token_hash")?,
        tenant_id: col::<Option<Uuid>>(row, "tenant_id")?.map(TenantId),
        account_id: AccountId(col(row, "account_id")?),
        created_at: col(row, "created_at")?,
        last_seen_at: col(row, "last_seen_at")?,
        expires_at: col(row, "expires_at")?,
        revoked_at: col(row, "revoked_at")?,
    })
}

pub(super) async fn create_session(
    c: &mut PgConnection,
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
    .bind(x.created_at)
    .bind(x.last_seen_at)
    .bind(x.expires_at)
    .bind(x.revoked_at)
    .execute(&mut *c)
    .await
    .db()?;
    Ok(())
}

pub(super) async fn get_session(
    c: &mut PgConnection,
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
    .fetch_optional(&mut *c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    session_from_row(&row)
}

pub(super) async fn touch_session(
    c: &mut PgConnection,
    realm: Realm,
    token_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let s = sql(realm);
    let q = sqlx::query(AssertSqlSafe(numbered(&format!(
        "UPDATE {} SET last_seen_at = GREATEST(last_seen_at, ?) WHERE {}token_hash = ?",
        s.sessions, s.tenant_filter
    ))))
    .bind(at);
    let done = bind_tenant(realm, q)
        .bind(token_hash.to_owned())
        .execute(&mut *c)
        .await
        .db()?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn revoke_session(
    c: &mut PgConnection,
    realm: Realm,
    token_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let s = sql(realm);
    let q = sqlx::query(AssertSqlSafe(numbered(&format!(
        "UPDATE {} SET revoked_at = ? WHERE {}token_hash = ? AND revoked_at IS NULL",
        s.sessions, s.tenant_filter
    ))))
    .bind(at);
    let done = bind_tenant(realm, q)
        .bind(token_hash.to_owned())
        .execute(&mut *c)
        .await
        .db()?;
    if done.rows_affected() > 0 {
        return Ok(true);
    }
    get_session(c, realm, token_hash).await.map(|_| false)
}
