//! Error mapping and value conversions shared by the SQLite modules.
//!
//! Error messages name tables, columns and ids only: never a stored value
//! (names, numbers, transcript text are personal data).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use insights_core::store::{StoreError, StoreResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};
use uuid::Uuid;

/// Maps a database error: unique violations become `Conflict` (with a
/// generic message), a missing referenced tenant/recording `NotFound`,
/// everything else `Backend`.
pub(super) fn db(e: sqlx::Error) -> StoreError {
    conflict_as("an object with the same unique key already exists")(e)
}

/// Like [`db`], with a specific message for unique violations.
pub(super) fn conflict_as(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what.into()),
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// Microseconds since the epoch: the stored form of every timestamp.
pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(v: i64, column: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| StoreError::Corrupt(format!("column `{column}`: timestamp out of range")))
}

/// A column decoded as `T`.
pub(super) fn col<'r, T>(row: &'r SqliteRow, column: &str) -> StoreResult<T>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    // The decode error may quote the value: keep only the column name.
    row.try_get(column)
        .map_err(|_| StoreError::Corrupt(format!("column `{column}` cannot be decoded")))
}

/// A nullable column that must hold a value in this context.
pub(super) fn req<'r, T>(row: &'r SqliteRow, column: &str) -> StoreResult<T>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    col::<Option<T>>(row, column)?
        .ok_or_else(|| StoreError::Corrupt(format!("column `{column}` is unexpectedly NULL")))
}

pub(super) fn ts(row: &SqliteRow, column: &str) -> StoreResult<DateTime<Utc>> {
    from_micros(col(row, column)?, column)
}

pub(super) fn opt_ts(row: &SqliteRow, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
    col::<Option<i64>>(row, column)?
        .map(|v| from_micros(v, column))
        .transpose()
}

/// A UUID column wrapped in its typed id.
pub(super) fn id<T: From<Uuid>>(row: &SqliteRow, column: &str) -> StoreResult<T> {
    col::<Uuid>(row, column).map(T::from)
}

pub(super) fn opt_id<T: From<Uuid>>(row: &SqliteRow, column: &str) -> StoreResult<Option<T>> {
    Ok(col::<Option<Uuid>>(row, column)?.map(T::from))
}

/// An enum stored in its stable string form.
pub(super) fn enum_col<T>(row: &SqliteRow, column: &str) -> StoreResult<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let s: String = col(row, column)?;
    // Enum strings are ours, not personal data: safe to quote.
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("column `{column}`: {e}")))
}

/// A JSON text column.
pub(super) fn json_col<T: DeserializeOwned>(row: &SqliteRow, column: &str) -> StoreResult<T> {
    let s: String = col(row, column)?;
    serde_json::from_str(&s)
        .map_err(|_| StoreError::Corrupt(format!("column `{column}`: invalid JSON")))
}

/// The JSON text stored for a value.
pub(super) fn to_json<T: Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v)
        .map_err(|_| StoreError::Invalid("value cannot be serialised to JSON".into()))
}

/// A JSON array of UUIDs in simple hex form; SQL reads it back as BLOBs
/// with `SELECT unhex(value) FROM json_each(?)`, so a list of any length
/// is a single bind.
pub(super) fn uuid_list(ids: impl IntoIterator<Item = Uuid>) -> String {
    let hex: Vec<String> = ids.into_iter().map(|u| u.simple().to_string()).collect();
    serde_json::Value::from(hex).to_string()
}

/// Refuses an object whose own `tenant_id` differs from the tenant the
/// call is made for.
pub(super) fn check_tenant<T: PartialEq + std::fmt::Display>(
    call: T,
    object: T,
    what: &str,
) -> StoreResult<()> {
    if call == object {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} belongs to tenant {object}, not to tenant {call}"
        )))
    }
}
