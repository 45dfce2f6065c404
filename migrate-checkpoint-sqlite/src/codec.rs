//! Conversions between the core's types and the store's columns.

use chrono::{DateTime, NaiveDateTime, Utc};
use migrate_core::{Error, ErrorKind};
use rusqlite::ErrorCode;

/// Timestamps are stored as fixed-width UTC text (`2024-01-15 10:00:00.123456`): readable by an
/// operator, understood by SQLite's date functions, and ordered correctly as text.
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

pub fn time(t: DateTime<Utc>) -> String {
    t.format(TIME_FORMAT).to_string()
}

pub fn opt_time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(time)
}

pub fn parse_time(s: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    s.map(|s| {
        NaiveDateTime::parse_from_str(&s, TIME_FORMAT)
            .map(|t| t.and_utc())
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
    })
    .transpose()
}

pub fn json<T: serde::Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v)
        .map_err(|e| Error::with_source(ErrorKind::Fatal, "encoding a checkpoint value", e))
}

pub fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Parses a stable lowercase name through serde (the enums are `rename_all = "snake_case"`).
pub fn enum_from<T: serde::de::DeserializeOwned>(s: &str) -> rusqlite::Result<T> {
    from_json(&format!("\"{s}\""))
}

/// Classifies SQLite errors: a busy or locked file is transient, a full disk is a system error,
/// a file that cannot be opened or written is a permission or configuration problem.
pub fn sql_error(e: rusqlite::Error) -> Error {
    let kind = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Transient,
            ErrorCode::DiskFull | ErrorCode::OutOfMemory | ErrorCode::SystemIoFailure => {
                ErrorKind::System
            }
            ErrorCode::ConstraintViolation => ErrorKind::Constraint,
            ErrorCode::ReadOnly | ErrorCode::PermissionDenied => ErrorKind::Permission,
            ErrorCode::CannotOpen => ErrorKind::Config,
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => ErrorKind::Fatal,
            _ => ErrorKind::Fatal,
        },
        rusqlite::Error::QueryReturnedNoRows => ErrorKind::NotFound,
        _ => ErrorKind::Fatal,
    };
    Error::with_source(kind, "checkpoint store (SQLite)", e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrate_core::TableName;

    #[test]
    fn times_round_trip_and_order_as_text() {
        let a = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let b = DateTime::from_timestamp_micros(1_700_000_009_000_001).unwrap();
        assert_eq!(parse_time(Some(time(a))).unwrap(), Some(a));
        assert!(time(a) < time(b));
        let t = TableName::new("sales.eu", "orders");
        let (q, s) = t.to_columns();
        assert_eq!(TableName::from_columns(q, s), t);
        assert_eq!(
            TableName::from_columns("x".into(), None),
            TableName::bare("x")
        );
    }

    #[test]
    fn busy_is_transient() {
        let e = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert_eq!(sql_error(e).kind(), ErrorKind::Transient);
    }
}
