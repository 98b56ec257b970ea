//! Mapping of database errors and stored values to [`StoreError`].
//!
//! Messages carry constraint and column names only, never stored values:
//! errors end up in logs, and logs must not hold personal data.

use std::str::FromStr;

use insights_core::domain::UnknownVariant;
use insights_core::store::{StoreError, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{Decode, Postgres, Row, Type};

/// Maps a database error to a store error: unique violations (SQLSTATE
/// 23505) are conflicts, foreign-key violations (23503) mean the tenant or
/// parent object does not exist, undecodable values are corrupt data, the
/// rest is a backend failure.
pub(super) fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::ColumnDecode { index, .. } => {
            StoreError::Corrupt(format!("column {index} cannot be decoded"))
        }
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some("23505") => StoreError::Conflict(match d.constraint() {
                Some(c) => format!("unique constraint `{c}` violated"),
                None => "duplicate key".to_owned(),
            }),
            Some("23503") => StoreError::NotFound,
            _ => StoreError::Backend(Box::new(e)),
        },
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// `.db()` on sqlx results: maps the error with [`db_error`].
pub(super) trait DbResultExt<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> DbResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> StoreResult<T> {
        self.map_err(db_error)
    }
}

/// Reads column `col` of `row`.
pub(super) fn col<'r, T>(row: &'r PgRow, col: &str) -> StoreResult<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("column `{col}`: {}", kind_of(&e))))
}

/// Reads a string-enum column of `row`.
pub(super) fn enum_col<T>(row: &PgRow, name: &str) -> StoreResult<T>
where
    T: FromStr<Err = UnknownVariant>,
{
    let s: String = col(row, name)?;
    s.parse()
        .map_err(|e: UnknownVariant| StoreError::Corrupt(e.to_string()))
}

/// Reads an optional string-enum column of `row`.
pub(super) fn opt_enum_col<T>(row: &PgRow, name: &str) -> StoreResult<Option<T>>
where
    T: FromStr<Err = UnknownVariant>,
{
    let s: Option<String> = col(row, name)?;
    s.map(|s| s.parse())
        .transpose()
        .map_err(|e: UnknownVariant| StoreError::Corrupt(e.to_string()))
}

/// A short description of a read error without the value that failed.
fn kind_of(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::ColumnNotFound(_) => "missing",
        sqlx::Error::ColumnDecode { .. } => "undecodable",
        _ => "unreadable",
    }
}

/// `NotFound` when a statement touched no row.
pub(super) fn found(done: sqlx::postgres::PgQueryResult) -> StoreResult<()> {
    if done.rows_affected() == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}
