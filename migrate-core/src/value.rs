//! One cell of a row. Representations follow the wire formats of the three engines (integers of
//! microseconds for times, days for dates) so that no conversion loses precision.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decimal::Decimal;

/// Days between 0001-01-01 and 1970-01-01, for converting dates.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A Postgres-style interval: months, days and microseconds kept apart (a month is not 30 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Interval {
    /// Whole months.
    pub months: i32,
    /// Whole days.
    pub days: i32,
    /// Microseconds.
    pub micros: i64,
}

/// A single value. `Null` is typeless; every other variant matches one [`crate::DataType`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Boolean.
    Bool(bool),
    /// 16-bit integer.
    Int16(i16),
    /// 32-bit integer.
    Int32(i32),
    /// 64-bit integer.
    Int64(i64),
    /// 32-bit float.
    Float32(f32),
    /// 64-bit float.
    Float64(f64),
    /// Exact decimal of any precision.
    Decimal(Decimal),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 1970-01-01 00:00:00, no zone.
    Timestamp(i64),
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    TimestampTz(i64),
    /// Calendar interval.
    Interval(Interval),
    /// UUID, 16 bytes big-endian.
    Uuid([u8; 16]),
    /// JSON document as text (kept as given; canonicalised only for checksums).
    Json(String),
    /// One-dimensional array.
    Array(Vec<Value>),
}

impl Value {
    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Bytes this value occupies in memory, approximately; what the scheduler budgets with.
    pub fn byte_size(&self) -> usize {
        let heap = match self {
            Value::Decimal(d) => d.precision() as usize,
            Value::Text(s) | Value::Json(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Array(items) => items.iter().map(Value::byte_size).sum(),
            _ => 0,
        };
        std::mem::size_of::<Value>() + heap
    }

    /// The value as an `i64` when it is an integer of any width.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int16(v) => Some(v.into()),
            Value::Int32(v) => Some(v.into()),
            Value::Int64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as text when it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) | Value::Json(s) => Some(s),
            _ => None,
        }
    }

    /// A date from a calendar date.
    pub fn date(year: i32, month: u32, day: u32) -> Option<Value> {
        use chrono::Datelike;
        let d = chrono::NaiveDate::from_ymd_opt(year, month, day)?;
        Some(Value::Date(d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE))
    }

    /// A timestamp without zone from a chrono value.
    pub fn timestamp(ts: chrono::NaiveDateTime) -> Value {
        Value::Timestamp(ts.and_utc().timestamp_micros())
    }

    /// A timestamp with zone from a chrono value.
    pub fn timestamptz(ts: chrono::DateTime<chrono::Utc>) -> Value {
        Value::TimestampTz(ts.timestamp_micros())
    }

    /// Compares two values as key parts: integers of any width compare by value, NULL sorts
    /// first; values of unrelated types compare by variant order (never panics).
    pub fn cmp_key(&self, other: &Value) -> Ordering {
        use Value::*;
        if let (Some(a), Some(b)) = (self.as_i64(), other.as_i64()) {
            return a.cmp(&b);
        }
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Less,
            (_, Null) => Ordering::Greater,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Float32(a), Float32(b)) => a.total_cmp(b),
            (Float64(a), Float64(b)) => a.total_cmp(b),
            (Decimal(a), Decimal(b)) => a.cmp(b),
            (Text(a), Text(b)) | (Json(a), Json(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Time(a), Time(b))
            | (Timestamp(a), Timestamp(b))
            | (TimestampTz(a), TimestampTz(b)) => a.cmp(b),
            (Interval(a), Interval(b)) => a.cmp(b),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (Array(a), Array(b)) => cmp_keys(a, b),
            (a, b) => a.variant_rank().cmp(&b.variant_rank()),
        }
    }

    fn variant_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => 2,
            Value::Float32(_) => 3,
            Value::Float64(_) => 4,
            Value::Decimal(_) => 5,
            Value::Text(_) => 6,
            Value::Bytes(_) => 7,
            Value::Date(_) => 8,
            Value::Time(_) => 9,
            Value::Timestamp(_) => 10,
            Value::TimestampTz(_) => 11,
            Value::Interval(_) => 12,
            Value::Uuid(_) => 13,
            Value::Json(_) => 14,
            Value::Array(_) => 15,
        }
    }
}

/// Lexicographic comparison of composite keys.
pub fn cmp_keys(a: &[Value], b: &[Value]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.cmp_key(y))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}

/// Formats a key for logs and reports (keys identify rows; they are not treated as row data).
pub struct KeyDisplay<'a>(pub &'a [Value]);

impl fmt::Display for KeyDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match v {
                Value::Null => f.write_str("NULL")?,
                Value::Text(s) => write!(f, "{s:?}")?,
                Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
                    write!(f, "{}", v.as_i64().unwrap_or_default())?
                }
                Value::Decimal(d) => write!(f, "{d}")?,
                Value::Uuid(u) => write!(f, "{}", uuid::Uuid::from_bytes(*u))?,
                other => write!(f, "{}", crate::checksum::canonical_text(other))?,
            }
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_from_unix_epoch() {
        assert_eq!(Value::date(1970, 1, 1), Some(Value::Date(0)));
        assert_eq!(Value::date(2000, 1, 1), Some(Value::Date(10957)));
        assert_eq!(Value::date(1969, 12, 31), Some(Value::Date(-1)));
        assert_eq!(Value::date(2023, 2, 30), None);
    }

    #[test]
    fn key_order_across_integer_widths() {
        assert_eq!(Value::Int32(5).cmp_key(&Value::Int64(5)), Ordering::Equal);
        assert_eq!(Value::Int16(-1).cmp_key(&Value::Int64(0)), Ordering::Less);
        assert_eq!(Value::Null.cmp_key(&Value::Int64(0)), Ordering::Less);
        let a = [Value::Int64(1), Value::Text("b".into())];
        let b = [Value::Int64(1), Value::Text("c".into())];
        assert_eq!(cmp_keys(&a, &b), Ordering::Less);
        assert_eq!(KeyDisplay(&a).to_string(), "(1, \"b\")");
    }

    #[test]
    fn byte_size_grows_with_payload() {
        let small = Value::Text("a".into()).byte_size();
        let big = Value::Text("a".repeat(1000)).byte_size();
        assert_eq!(big - small, 999);
    }
}
