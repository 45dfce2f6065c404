//! How migrate's types land in BigQuery: one lossless column type per [`DataType`], and the
//! values BigQuery cannot hold as they are — refused with table, column and row named, never
//! rounded or silently turned into something else.
//!
//! | migrate | BigQuery |
//! | --- | --- |
//! | `Int16`, `Int32`, `Int64` | `INT64` |
//! | `Decimal(p, s)` with p ≤ 38, s ≤ 9, p − s ≤ 29 | `NUMERIC(p, s)` |
//! | other `Decimal(p, s)` with s ≤ 38 and p − s ≤ 38 | `BIGNUMERIC(p, s)` |
//! | `Decimal` without precision (Postgres bare `numeric`) | `BIGNUMERIC` (38 digits before the point, 38 after) |
//! | `Float32`, `Float64` | `FLOAT64` |
//! | `Text`, `Uuid` | `STRING` (a UUID in its lowercase hyphenated form) |
//! | `Bytes` | `BYTES` |
//! | `Bool` | `BOOL` |
//! | `Date`, `Time` | `DATE`, `TIME` |
//! | `Timestamp` | `DATETIME` |
//! | `TimestampTz` | `TIMESTAMP` |
//! | `Json` | `JSON` |
//! | `Interval` | `INTERVAL` |
//! | `Array(t)` (one dimension) | `t` in mode `REPEATED` |
//!
//! What BigQuery cannot store, and what happens to it:
//!
//! - **A NULL array, or a NULL element in one.** A `REPEATED` field is never NULL (BigQuery
//!   stores `[]`) and holds no NULL element. Writing either is refused with the table, column
//!   and row named: turning NULL into `[]` would lose the difference, and the verification
//!   would not notice (both sides would agree on what was written, not on what the source
//!   held).
//! - **A JSON `null` document** (the JSON literal, as opposed to SQL NULL): BigQuery keeps only
//!   SQL NULL apart, so it is refused the same way.
//! - **A decimal that does not fit its column** (more digits before the point, or more after,
//!   than the declared precision and scale; NaN or infinity, which NUMERIC has no room for):
//!   refused with the table, column and row named — never rounded to NUMERIC's (38, 9).
//! - **A type with no lossless mapping** (an array of arrays, a decimal wider than
//!   BIGNUMERIC): an error naming table, column and type before anything is written.

use migrate_core::{Column, DataType, Decimal, Error, Result, TableName, Value};

/// NUMERIC: at most 38 digits, 9 after the point, 29 before.
const NUMERIC_MAX_SCALE: u32 = 9;
const NUMERIC_MAX_INTEGER_DIGITS: u32 = 29;
/// BIGNUMERIC: 38 digits after the point, 38 before (76 in all; BigQuery's 76.76).
const BIGNUMERIC_MAX_SCALE: u32 = 38;
const BIGNUMERIC_MAX_INTEGER_DIGITS: u32 = 38;

/// A BigQuery scalar type, with the parameters a decimal column declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BqType {
    /// `INT64`.
    Int64,
    /// `NUMERIC(p, s)`.
    Numeric {
        /// Total digits.
        precision: u32,
        /// Digits after the point.
        scale: u32,
    },
    /// `BIGNUMERIC(p, s)`, or unparameterized (`None`: 38 digits before the point, 38 after).
    BigNumeric(Option<(u32, u32)>),
    /// `FLOAT64`.
    Float64,
    /// `STRING`.
    String,
    /// `BYTES`.
    Bytes,
    /// `BOOL`.
    Bool,
    /// `DATE`.
    Date,
    /// `TIME`.
    Time,
    /// `DATETIME`.
    DateTime,
    /// `TIMESTAMP`.
    Timestamp,
    /// `JSON`.
    Json,
    /// `INTERVAL`.
    Interval,
}

impl BqType {
    /// The type's name as `tables.insert` takes it in a field's `type`.
    pub fn name(self) -> &'static str {
        match self {
            BqType::Int64 => "INT64",
            BqType::Numeric { .. } => "NUMERIC",
            BqType::BigNumeric(_) => "BIGNUMERIC",
            BqType::Float64 => "FLOAT64",
            BqType::String => "STRING",
            BqType::Bytes => "BYTES",
            BqType::Bool => "BOOL",
            BqType::Date => "DATE",
            BqType::Time => "TIME",
            BqType::DateTime => "DATETIME",
            BqType::Timestamp => "TIMESTAMP",
            BqType::Json => "JSON",
            BqType::Interval => "INTERVAL",
        }
    }

    /// The type as DDL writes it: `NUMERIC(10, 2)`, `BIGNUMERIC`, `STRING`.
    pub fn ddl(self) -> String {
        match self {
            BqType::Numeric { precision, scale } => format!("NUMERIC({precision}, {scale})"),
            BqType::BigNumeric(Some((p, s))) => format!("BIGNUMERIC({p}, {s})"),
            other => other.name().to_string(),
        }
    }

    /// Precision and scale a decimal column declares (`tables.insert` takes them as strings).
    pub fn decimal_bounds(self) -> Option<(u32, u32)> {
        match self {
            BqType::Numeric { precision, scale } => Some((precision, scale)),
            BqType::BigNumeric(Some(ps)) => Some(ps),
            BqType::BigNumeric(None) => Some((
                BIGNUMERIC_MAX_INTEGER_DIGITS + BIGNUMERIC_MAX_SCALE,
                BIGNUMERIC_MAX_SCALE,
            )),
            _ => None,
        }
    }
}

/// A column as BigQuery holds it: its type and whether it is `REPEATED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BqColumn {
    /// The scalar type (of the elements, for a repeated column).
    pub ty: BqType,
    /// Mode `REPEATED` (a one-dimensional array).
    pub repeated: bool,
}

impl BqColumn {
    /// The column's type as DDL writes it (`ARRAY<INT64>` for a repeated one).
    pub fn ddl(self) -> String {
        match self.repeated {
            true => format!("ARRAY<{}>", self.ty.ddl()),
            false => self.ty.ddl(),
        }
    }
}

/// The BigQuery column for `column` of `table`; an error naming both and the type when there is
/// no lossless one.
pub fn column_type(table: &TableName, column: &Column) -> Result<BqColumn> {
    let unmappable = |why: &str| {
        Error::schema(format!(
            "table {table}, column {:?}: type {:?} has no lossless BigQuery type: {why}",
            column.name, column.data_type
        ))
        .table(table)
    };
    let (element, repeated) = match &column.data_type {
        DataType::Array(inner) => match inner.as_ref() {
            DataType::Array(_) => {
                return Err(unmappable(
                    "BigQuery has no array of arrays (map it to JSON with a transform)",
                ))
            }
            t => (t, true),
        },
        t => (t, false),
    };
    let ty = match element {
        DataType::Int16 | DataType::Int32 | DataType::Int64 => BqType::Int64,
        DataType::Decimal { precision, scale } => {
            decimal_type(*precision, *scale).map_err(|why| unmappable(&why))?
        }
        DataType::Float32 | DataType::Float64 => BqType::Float64,
        DataType::Text { .. } | DataType::Uuid => BqType::String,
        DataType::Bytes => BqType::Bytes,
        DataType::Bool => BqType::Bool,
        DataType::Date => BqType::Date,
        DataType::Time => BqType::Time,
        DataType::Timestamp => BqType::DateTime,
        DataType::TimestampTz => BqType::Timestamp,
        DataType::Json => BqType::Json,
        DataType::Interval => BqType::Interval,
        DataType::Array(_) => return Err(unmappable("nested array")),
    };
    Ok(BqColumn { ty, repeated })
}

/// NUMERIC where it holds the declared precision and scale, BIGNUMERIC where only it does.
fn decimal_type(precision: Option<u32>, scale: Option<u32>) -> std::result::Result<BqType, String> {
    let Some(p) = precision else {
        // Postgres' bare numeric: any value up to its own limits. BIGNUMERIC holds the widest
        // range BigQuery has; a value beyond it is refused when written.
        return Ok(BqType::BigNumeric(None));
    };
    let s = scale.unwrap_or(0);
    if s > p {
        return Err(format!("scale {s} exceeds precision {p}"));
    }
    let integer = p - s;
    if s <= NUMERIC_MAX_SCALE && integer <= NUMERIC_MAX_INTEGER_DIGITS {
        Ok(BqType::Numeric {
            precision: p.max(1),
            scale: s,
        })
    } else if s <= BIGNUMERIC_MAX_SCALE && integer <= BIGNUMERIC_MAX_INTEGER_DIGITS {
        Ok(BqType::BigNumeric(Some((p, s))))
    } else {
        Err(format!(
            "BIGNUMERIC holds at most {BIGNUMERIC_MAX_INTEGER_DIGITS} digits before the point and {BIGNUMERIC_MAX_SCALE} after"
        ))
    }
}

/// Checks that `value` (row `row` of a chunk, counted from 0) can be written to `column` as it
/// is: an error naming table, column and row when BigQuery would lose or refuse it.
pub fn check_value(
    table: &TableName,
    column: &Column,
    bq: BqColumn,
    row: usize,
    value: &Value,
) -> Result<()> {
    let refuse = |why: String| {
        Error::validation(format!(
            "table {table}, column {:?}, row {row} of the chunk: {why}",
            column.name
        ))
        .table(table)
    };
    match (value, bq.repeated) {
        (Value::Null, true) => Err(refuse(
            "a NULL array: BigQuery stores no NULL in a REPEATED column (it would read back as [])"
                .into(),
        )),
        (Value::Array(items), true) => {
            for (i, item) in items.iter().enumerate() {
                if item.is_null() {
                    return Err(refuse(format!(
                        "element {i} is NULL: BigQuery arrays hold no NULL element"
                    )));
                }
                check_scalar(bq.ty, item).map_err(|why| refuse(format!("element {i}: {why}")))?;
            }
            Ok(())
        }
        (v, _) => check_scalar(bq.ty, v).map_err(refuse),
    }
}

fn check_scalar(ty: BqType, value: &Value) -> std::result::Result<(), String> {
    match (ty, value) {
        (_, Value::Null) => Ok(()),
        (BqType::Json, Value::Json(doc)) if doc.trim() == "null" => Err(
            "a JSON null document: BigQuery keeps only SQL NULL apart, the two would read back alike"
                .into(),
        ),
        (BqType::Interval, Value::Interval(iv)) => interval_fits(iv),
        (t, Value::Decimal(d)) => match t.decimal_bounds() {
            Some(bounds) => fits(d, bounds),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// BigQuery's `INTERVAL` range, part by part: ±10,000 years of months, ±3,660,000 days,
/// ±87,840,000 hours of time. Postgres' range is wider in every part.
const INTERVAL_MONTHS: i64 = 120_000;
const INTERVAL_DAYS: i64 = 3_660_000;
const INTERVAL_MICROS: i64 = 87_840_000 * 3_600 * 1_000_000;

/// Whether `iv` fits BigQuery's `INTERVAL` without clamping a part.
fn interval_fits(iv: &migrate_core::value::Interval) -> std::result::Result<(), String> {
    let parts = [
        ("months", i64::from(iv.months), INTERVAL_MONTHS),
        ("days", i64::from(iv.days), INTERVAL_DAYS),
        ("microseconds", iv.micros, INTERVAL_MICROS),
    ];
    match parts.iter().find(|(_, v, max)| v.abs() > *max) {
        Some((part, v, max)) => Err(format!(
            "an interval of {v} {part} is outside BigQuery's INTERVAL range (±{max} {part})"
        )),
        None => Ok(()),
    }
}

/// Whether `d` fits a decimal column of `(precision, scale)` without rounding.
fn fits(d: &Decimal, (precision, scale): (u32, u32)) -> std::result::Result<(), String> {
    let Some((_, digits, s)) = d
        .normalized()
        .parts()
        .map(|(n, g, s)| (n, g.len() as u32, s))
    else {
        return Err(format!(
            "{} has no BigQuery decimal (NaN and infinities are not numbers there)",
            d.normalized()
        ));
    };
    let integer = digits.saturating_sub(s);
    if s > scale {
        return Err(format!(
            "a value with {s} digits after the point does not fit ({precision}, {scale}) without rounding"
        ));
    }
    if integer > precision - scale {
        return Err(format!(
            "a value with {integer} digits before the point does not fit ({precision}, {scale})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(t: DataType) -> Column {
        Column::new("c", t)
    }

    fn ty(t: DataType) -> Result<BqColumn> {
        column_type(&TableName::parse("public.t"), &col(t))
    }

    fn dec(p: Option<u32>, s: Option<u32>) -> DataType {
        DataType::Decimal {
            precision: p,
            scale: s,
        }
    }

    #[test]
    fn decimals_take_numeric_where_it_holds_them_and_bignumeric_otherwise() {
        let t = |p, s| ty(dec(p, s)).unwrap().ty;
        assert_eq!(
            t(Some(10), Some(2)),
            BqType::Numeric {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(
            t(Some(38), Some(9)),
            BqType::Numeric {
                precision: 38,
                scale: 9
            }
        );
        assert_eq!(
            t(Some(29), Some(0)),
            BqType::Numeric {
                precision: 29,
                scale: 0
            }
        );
        // 30 digits before the point, or 10 after: only BIGNUMERIC holds them.
        assert_eq!(t(Some(30), Some(0)), BqType::BigNumeric(Some((30, 0))));
        assert_eq!(t(Some(20), Some(10)), BqType::BigNumeric(Some((20, 10))));
        assert_eq!(t(Some(76), Some(38)), BqType::BigNumeric(Some((76, 38))));
        assert_eq!(t(None, None), BqType::BigNumeric(None));
        assert_eq!(
            t(Some(12), None),
            BqType::Numeric {
                precision: 12,
                scale: 0
            }
        );
        assert_eq!(ty(dec(Some(10), Some(2))).unwrap().ddl(), "NUMERIC(10, 2)");
        assert_eq!(ty(dec(None, None)).unwrap().ddl(), "BIGNUMERIC");
        // Wider than BIGNUMERIC: refused, naming table, column and type.
        let e = ty(dec(Some(80), Some(0))).unwrap_err().to_string();
        assert!(
            e.contains("public.t") && e.contains("\"c\"") && e.contains("Decimal"),
            "{e}"
        );
        assert!(ty(dec(Some(50), Some(40))).is_err());
    }

    #[test]
    fn every_type_has_its_column_and_arrays_repeat_their_element() {
        let cases = [
            (DataType::Int16, "INT64"),
            (DataType::Int32, "INT64"),
            (DataType::Int64, "INT64"),
            (DataType::Float32, "FLOAT64"),
            (DataType::Float64, "FLOAT64"),
            (DataType::text(), "STRING"),
            (DataType::Uuid, "STRING"),
            (DataType::Bytes, "BYTES"),
            (DataType::Bool, "BOOL"),
            (DataType::Date, "DATE"),
            (DataType::Time, "TIME"),
            (DataType::Timestamp, "DATETIME"),
            (DataType::TimestampTz, "TIMESTAMP"),
            (DataType::Json, "JSON"),
            (DataType::Interval, "INTERVAL"),
            (DataType::Array(Box::new(DataType::Int32)), "ARRAY<INT64>"),
            (
                DataType::Array(Box::new(dec(Some(5), Some(1)))),
                "ARRAY<NUMERIC(5, 1)>",
            ),
        ];
        for (t, want) in cases {
            assert_eq!(ty(t.clone()).unwrap().ddl(), want, "{t:?}");
        }
        let nested = DataType::Array(Box::new(DataType::Array(Box::new(DataType::Int32))));
        let e = ty(nested).unwrap_err();
        assert_eq!(e.kind(), migrate_core::ErrorKind::Schema);
        assert!(e.to_string().contains("array of arrays"), "{e}");
    }

    #[test]
    fn values_bigquery_would_lose_are_refused_naming_table_column_and_row() {
        let table = TableName::parse("public.t");
        let check = |t: DataType, v: Value| {
            let c = col(t);
            let bq = column_type(&table, &c).unwrap();
            check_value(&table, &c, bq, 7, &v)
        };
        let d = |s: &str| Value::Decimal(s.parse().unwrap());
        let n10_2 = dec(Some(10), Some(2));
        assert!(check(n10_2.clone(), d("12345678.90")).is_ok());
        assert!(
            check(n10_2.clone(), d("1.500")).is_ok(),
            "trailing zeros are not digits"
        );
        let e = check(n10_2.clone(), d("1.234")).unwrap_err().to_string();
        assert!(
            e.contains("public.t") && e.contains("\"c\"") && e.contains("row 7"),
            "{e}"
        );
        assert!(check(n10_2, d("123456789")).is_err());
        // Bare numeric: anything BIGNUMERIC holds, nothing it does not.
        let bare = dec(None, None);
        let big = format!("{}.{}", "9".repeat(38), "9".repeat(38));
        assert!(check(bare.clone(), d(&big)).is_ok());
        assert!(check(bare.clone(), d(&format!("1{big}"))).is_err());
        assert!(check(bare.clone(), d(&format!("0.{}1", "0".repeat(38)))).is_err());
        assert!(check(bare, Value::Decimal(Decimal::nan())).is_err());
        // Arrays: no NULL array, no NULL element; an empty one is fine.
        let ints = DataType::Array(Box::new(DataType::Int64));
        assert!(check(ints.clone(), Value::Array(vec![])).is_ok());
        assert!(check(ints.clone(), Value::Array(vec![Value::Int64(1)])).is_ok());
        let e = check(ints.clone(), Value::Null).unwrap_err();
        assert_eq!(e.kind(), migrate_core::ErrorKind::Validation);
        let e = check(ints, Value::Array(vec![Value::Int64(1), Value::Null]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("element 1"), "{e}");
        // JSON: SQL NULL is fine, the JSON null document is not.
        assert!(check(DataType::Json, Value::Null).is_ok());
        assert!(check(DataType::Json, Value::Json("{\"a\":null}".into())).is_ok());
        assert!(check(DataType::Json, Value::Json(" null ".into())).is_err());
    }
}
