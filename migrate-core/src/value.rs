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
    /// The name of its kind (`Int64`, `Text`): what an error names instead of the value
    /// (row values stay out of logs and reports).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Bool(_) => "Bool",
            Value::Int16(_) => "Int16",
            Value::Int32(_) => "Int32",
            Value::Int64(_) => "Int64",
            Value::Float32(_) => "Float32",
            Value::Float64(_) => "Float64",
            Value::Decimal(_) => "Decimal",
            Value::Text(_) => "Text",
            Value::Bytes(_) => "Bytes",
            Value::Date(_) => "Date",
            Value::Time(_) => "Time",
            Value::Timestamp(_) => "Timestamp",
            Value::TimestampTz(_) => "TimestampTz",
            Value::Interval(_) => "Interval",
            Value::Uuid(_) => "Uuid",
            Value::Json(_) => "Json",
            Value::Array(_) => "Array",
        }
    }

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

/// The key [`KeyDisplay`] wrote, read back for key columns of `types` (what a replay of
/// rejected rows needs to fetch them again); `None` when the text is not such a key or a
/// column's type has no text form here (floats, JSON, arrays, intervals are not keys).
pub fn parse_key(text: &str, types: &[crate::schema::DataType]) -> Option<Vec<Value>> {
    use crate::schema::DataType as T;
    let mut rest = text.strip_prefix('(')?.strip_suffix(')')?;
    let mut out = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix(", ")?;
        }
        if let Some(after) = rest.strip_prefix("NULL") {
            if after.is_empty() || after.starts_with(", ") {
                out.push(Value::Null);
                rest = after;
                continue;
            }
        }
        let (v, after) = match t {
            T::Text { .. } => {
                let (s, after) = debug_string(rest)?;
                (Value::Text(s), after)
            }
            _ => {
                let end = rest.find(", ").unwrap_or(rest.len());
                let (item, after) = rest.split_at(end);
                let v = match t {
                    T::Int16 => Value::Int16(item.parse().ok()?),
                    T::Int32 => Value::Int32(item.parse().ok()?),
                    T::Int64 => Value::Int64(item.parse().ok()?),
                    T::Decimal { .. } => Value::Decimal(item.parse().ok()?),
                    T::Uuid => Value::Uuid(*uuid::Uuid::parse_str(item).ok()?.as_bytes()),
                    T::Bool => Value::Bool(match item {
                        "t" => true,
                        "f" => false,
                        _ => return None,
                    }),
                    T::Date => Value::Date(item.parse().ok()?),
                    T::Time => Value::Time(item.parse().ok()?),
                    T::Timestamp => Value::Timestamp(item.parse().ok()?),
                    T::TimestampTz => Value::TimestampTz(item.parse().ok()?),
                    T::Bytes => Value::Bytes(
                        (0..item.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(item.get(i..i + 2)?, 16).ok())
                            .collect::<Option<_>>()?,
                    ),
                    _ => return None,
                };
                (v, after)
            }
        };
        out.push(v);
        rest = after;
    }
    rest.is_empty().then_some(out)
}

/// A string Rust's `{:?}` wrote at the start of `s`, and what follows it.
fn debug_string(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 2..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '0' => out.push('\0'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'u' => {
                    if chars.next()?.1 != '{' {
                        return None;
                    }
                    let mut hex = String::new();
                    loop {
                        match chars.next()?.1 {
                            '}' => break,
                            h => hex.push(h),
                        }
                    }
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
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
    fn a_displayed_key_reads_back() {
        use crate::schema::DataType as T;
        let key = vec![
            Value::Int64(-7),
            Value::Text("a \"quoted\", comma\n\u{7} é".into()),
            Value::Null,
            Value::Uuid([7; 16]),
            Value::Decimal("12.50".parse().unwrap_or_else(|_| crate::Decimal::zero())),
            Value::Date(19000),
        ];
        let types = [
            T::Int64,
            T::text(),
            T::Int32,
            T::Uuid,
            T::Decimal {
                precision: None,
                scale: None,
            },
            T::Date,
        ];
        let text = KeyDisplay(&key).to_string();
        assert_eq!(parse_key(&text, &types), Some(key));
        assert_eq!(parse_key("(1, 2)", &[T::Int64]), None, "too many parts");
        assert_eq!(parse_key("(x)", &[T::Int64]), None);
        assert_eq!(
            parse_key("(1.5)", &[T::Float64]),
            None,
            "floats are not keys"
        );
    }

    #[test]
    fn byte_size_grows_with_payload() {
        let small = Value::Text("a".into()).byte_size();
        let big = Value::Text("a".repeat(1000)).byte_size();
        assert_eq!(big - small, 999);
    }
}
