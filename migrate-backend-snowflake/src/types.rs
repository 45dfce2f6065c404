//! migrate's types as Snowflake columns, losslessly, and back.
//!
//! | migrate | Snowflake | why |
//! | --- | --- | --- |
//! | `Int16` / `Int32` / `Int64` | `NUMBER(5, 0)` / `NUMBER(10, 0)` / `NUMBER(19, 0)` | every value fits; read back by precision |
//! | `Decimal(p, s)`, p ≤ 38 | `NUMBER(p, s)` | exact |
//! | `Decimal` without precision | refused, naming the column | Snowflake's bare `NUMBER` is `NUMBER(38, 0)` and would drop every fraction: declare the column `numeric(p, s)` in the source, or cast it in a transform |
//! | `Decimal(p, s)`, p > 38 | refused, naming the column | beyond `NUMBER` |
//! | `Float32`, `Float64` | `FLOAT` | Snowflake's one binary float (a double) |
//! | `Text(n)` / `Text` | `VARCHAR(n)` / `VARCHAR` | |
//! | `Bytes` | `BINARY` | |
//! | `Bool`, `Date` | `BOOLEAN`, `DATE` | |
//! | `Time` | `TIME(6)` | microseconds, as Postgres |
//! | `Timestamp` | `TIMESTAMP_NTZ(6)` | a wall-clock time without zone, as Postgres' `timestamp` |
//! | `TimestampTz` | `TIMESTAMP_LTZ(6)` | an instant stored as UTC without an offset — what Postgres' `timestamptz` is; `TIMESTAMP_TZ` would keep an offset the source never had. Sessions run with `TIMEZONE = 'UTC'`, so the instants read back equal |
//! | `Json` | `VARIANT` | |
//! | `Array(_)` | `ARRAY` | elements as JSON values |
//! | `Uuid` | `VARCHAR(36)` | |
//! | `Interval` | refused, naming the column | Snowflake has no interval column type |

use migrate_core::{Column, DataType, Error, Result, TableName};

/// Snowflake's widest `NUMBER`.
pub const MAX_PRECISION: u32 = 38;

/// The column type `column` of `table` takes in Snowflake (DDL text); an error naming table,
/// column and type where none holds it losslessly.
pub fn column_type(table: &TableName, column: &Column) -> Result<String> {
    let refuse = |why: &str| {
        Err(Error::schema(format!(
            "table {table}, column {:?} ({}): {why}",
            column.name, column.data_type
        ))
        .table(table))
    };
    Ok(match &column.data_type {
        DataType::Int16 => "NUMBER(5, 0)".into(),
        DataType::Int32 => "NUMBER(10, 0)".into(),
        DataType::Int64 => "NUMBER(19, 0)".into(),
        DataType::Decimal {
            precision: Some(p),
            scale,
        } if *p <= MAX_PRECISION => format!("NUMBER({p}, {})", scale.unwrap_or(0)),
        DataType::Decimal {
            precision: Some(_),
            ..
        } => return refuse("wider than Snowflake's NUMBER(38)"),
        DataType::Decimal {
            precision: None, ..
        } => {
            return refuse(
                "a decimal without precision has no lossless Snowflake type (a bare NUMBER is NUMBER(38, 0) and drops fractions): declare it numeric(p, s) in the source, or cast it in a transform",
            )
        }
        DataType::Float32 | DataType::Float64 => "FLOAT".into(),
        DataType::Text { max_len: Some(n) } => format!("VARCHAR({n})"),
        DataType::Text { max_len: None } => "VARCHAR".into(),
        DataType::Bytes => "BINARY".into(),
        DataType::Bool => "BOOLEAN".into(),
        DataType::Date => "DATE".into(),
        DataType::Time => "TIME(6)".into(),
        DataType::Timestamp => "TIMESTAMP_NTZ(6)".into(),
        DataType::TimestampTz => "TIMESTAMP_LTZ(6)".into(),
        DataType::Json => "VARIANT".into(),
        DataType::Array(_) => "ARRAY".into(),
        DataType::Uuid => "VARCHAR(36)".into(),
        DataType::Interval => return refuse("Snowflake has no interval column type"),
    })
}

/// migrate's type for a Snowflake column described as `ty` (`rowtype`'s or
/// `INFORMATION_SCHEMA`'s name) with `precision`, `scale` and `length`; `None` for a type
/// migrate cannot read (`GEOGRAPHY`, `VECTOR`, …).
pub fn from_snowflake(
    ty: &str,
    precision: Option<u32>,
    scale: Option<u32>,
    length: Option<u32>,
) -> Option<DataType> {
    Some(match ty.to_ascii_uppercase().as_str() {
        "FIXED" | "NUMBER" | "DECIMAL" | "NUMERIC" => {
            match (precision.unwrap_or(38), scale.unwrap_or(0)) {
                (p, 0) if p <= 5 => DataType::Int16,
                (p, 0) if p <= 10 => DataType::Int32,
                (p, 0) if p <= 19 => DataType::Int64,
                (p, s) => DataType::Decimal {
                    precision: Some(p),
                    scale: Some(s),
                },
            }
        }
        "REAL" | "FLOAT" | "DOUBLE" => DataType::Float64,
        "TEXT" | "VARCHAR" | "STRING" => DataType::Text {
            // 16,777,216 is Snowflake's unbounded VARCHAR.
            max_len: length.filter(|n| *n < 16_777_216),
        },
        "BINARY" => DataType::Bytes,
        "BOOLEAN" => DataType::Bool,
        "DATE" => DataType::Date,
        "TIME" => DataType::Time,
        "TIMESTAMP_NTZ" | "DATETIME" => DataType::Timestamp,
        "TIMESTAMP_LTZ" | "TIMESTAMP_TZ" => DataType::TimestampTz,
        "VARIANT" | "OBJECT" => DataType::Json,
        "ARRAY" => DataType::Array(Box::new(DataType::Json)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_column_or_a_reason() {
        let t = TableName::parse("public.t");
        let dec = |p, s| DataType::Decimal {
            precision: p,
            scale: s,
        };
        let cases = [
            (DataType::Int16, "NUMBER(5, 0)"),
            (DataType::Int64, "NUMBER(19, 0)"),
            (dec(Some(38), Some(9)), "NUMBER(38, 9)"),
            (dec(Some(10), None), "NUMBER(10, 0)"),
            (DataType::Float32, "FLOAT"),
            (DataType::Text { max_len: Some(80) }, "VARCHAR(80)"),
            (DataType::TimestampTz, "TIMESTAMP_LTZ(6)"),
            (DataType::Timestamp, "TIMESTAMP_NTZ(6)"),
            (DataType::Time, "TIME(6)"),
            (DataType::Json, "VARIANT"),
            (DataType::Array(Box::new(DataType::Int32)), "ARRAY"),
            (DataType::Uuid, "VARCHAR(36)"),
        ];
        for (dt, want) in cases {
            assert_eq!(
                column_type(&t, &Column::new("c", dt.clone())).unwrap(),
                want,
                "{dt:?}"
            );
        }
        for dt in [dec(None, None), dec(Some(40), Some(2)), DataType::Interval] {
            let e = column_type(&t, &Column::new("amount", dt.clone())).unwrap_err();
            assert_eq!(e.kind(), migrate_core::ErrorKind::Schema);
            assert!(
                e.to_string().contains("\"amount\"") && e.to_string().contains("public.t"),
                "{e}"
            );
        }
        // A bare numeric's refusal says how to map it.
        let e = column_type(&t, &Column::new("n", dec(None, None)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("numeric(p, s)"), "{e}");
    }

    #[test]
    fn columns_read_back_as_the_types_they_were_written_from() {
        assert_eq!(
            from_snowflake("FIXED", Some(5), Some(0), None),
            Some(DataType::Int16)
        );
        assert_eq!(
            from_snowflake("NUMBER", Some(19), Some(0), None),
            Some(DataType::Int64)
        );
        assert_eq!(
            from_snowflake("NUMBER", Some(38), Some(0), None),
            Some(DataType::Decimal {
                precision: Some(38),
                scale: Some(0)
            })
        );
        assert_eq!(
            from_snowflake("fixed", Some(12), Some(2), None),
            Some(DataType::Decimal {
                precision: Some(12),
                scale: Some(2)
            })
        );
        assert_eq!(
            from_snowflake("TEXT", None, None, Some(16_777_216)),
            Some(DataType::Text { max_len: None })
        );
        assert_eq!(
            from_snowflake("TIMESTAMP_LTZ", None, Some(6), None),
            Some(DataType::TimestampTz)
        );
        assert_eq!(
            from_snowflake("ARRAY", None, None, None),
            Some(DataType::Array(Box::new(DataType::Json)))
        );
        assert_eq!(from_snowflake("GEOGRAPHY", None, None, None), None);
    }
}
