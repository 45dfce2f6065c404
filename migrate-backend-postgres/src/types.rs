//! Postgres types ↔ [`DataType`]: what discovery maps a catalog type to, how the COPY query
//! reads it, and which type a target table gets.

use migrate_core::{DataType, Error, Result};
use tokio_postgres::types::Type;

/// Maps a catalog type. `name` is the base type's `typname` (domains resolved by discovery),
/// `typmod` the column's `atttypmod`, `is_enum` whether the type is an enum. Returns the data
/// type, the wire type to read, whether a cast to text is needed, and a warning if the mapping
/// loses the type's identity.
pub fn map_type(
    name: &str,
    typmod: i32,
    is_enum: bool,
) -> Option<(DataType, Type, Option<&'static str>)> {
    if is_enum {
        return Some((DataType::text(), Type::TEXT, Some("enum migrated as text")));
    }
    let len_mod = (typmod >= 4).then(|| (typmod - 4) as u32);
    Some(match name {
        "bool" => (DataType::Bool, Type::BOOL, None),
        "int2" => (DataType::Int16, Type::INT2, None),
        "int4" => (DataType::Int32, Type::INT4, None),
        "int8" => (DataType::Int64, Type::INT8, None),
        "float4" => (DataType::Float32, Type::FLOAT4, None),
        "float8" => (DataType::Float64, Type::FLOAT8, None),
        "numeric" => {
            let (p, s) = match len_mod {
                Some(m) => (Some((m >> 16) & 0xffff), Some(m & 0xffff)),
                None => (None, None),
            };
            (
                DataType::Decimal {
                    precision: p,
                    scale: s,
                },
                Type::NUMERIC,
                None,
            )
        }
        "varchar" => (DataType::Text { max_len: len_mod }, Type::VARCHAR, None),
        "bpchar" => (DataType::Text { max_len: len_mod }, Type::BPCHAR, None),
        "text" | "name" | "citext" => (DataType::text(), Type::TEXT, None),
        "bytea" => (DataType::Bytes, Type::BYTEA, None),
        "date" => (DataType::Date, Type::DATE, None),
        "time" => (DataType::Time, Type::TIME, None),
        "timestamp" => (DataType::Timestamp, Type::TIMESTAMP, None),
        "timestamptz" => (DataType::TimestampTz, Type::TIMESTAMPTZ, None),
        "interval" => (DataType::Interval, Type::INTERVAL, None),
        "uuid" => (DataType::Uuid, Type::UUID, None),
        "json" => (DataType::Json, Type::JSON, None),
        "jsonb" => (DataType::Json, Type::JSONB, None),
        "inet" | "cidr" | "macaddr" | "macaddr8" | "xml" | "money" | "bit" | "varbit"
        | "tsvector" => (
            DataType::text(),
            Type::TEXT,
            Some("migrated as its text form"),
        ),
        _ => return None,
    })
}

/// The array wire type for an element wire type.
pub fn array_of(elem: &Type) -> Option<Type> {
    Some(match *elem {
        Type::BOOL => Type::BOOL_ARRAY,
        Type::INT2 => Type::INT2_ARRAY,
        Type::INT4 => Type::INT4_ARRAY,
        Type::INT8 => Type::INT8_ARRAY,
        Type::FLOAT4 => Type::FLOAT4_ARRAY,
        Type::FLOAT8 => Type::FLOAT8_ARRAY,
        Type::NUMERIC => Type::NUMERIC_ARRAY,
        Type::TEXT => Type::TEXT_ARRAY,
        Type::VARCHAR => Type::VARCHAR_ARRAY,
        Type::BPCHAR => Type::BPCHAR_ARRAY,
        Type::BYTEA => Type::BYTEA_ARRAY,
        Type::DATE => Type::DATE_ARRAY,
        Type::TIME => Type::TIME_ARRAY,
        Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
        Type::TIMESTAMPTZ => Type::TIMESTAMPTZ_ARRAY,
        Type::INTERVAL => Type::INTERVAL_ARRAY,
        Type::UUID => Type::UUID_ARRAY,
        Type::JSON => Type::JSON_ARRAY,
        Type::JSONB => Type::JSONB_ARRAY,
        _ => return None,
    })
}

/// The Postgres type a target column gets for `t`; `native` is the source's own type when the
/// source was Postgres (kept for types the data model does not distinguish: jsonb, char(n)).
pub fn ddl_type(t: &DataType, native: Option<&str>) -> Result<String> {
    if let Some(n) = native {
        if n == "jsonb" || n == "jsonb[]" || n.starts_with("character(") {
            return Ok(n.to_string());
        }
    }
    Ok(match t {
        DataType::Bool => "boolean".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal {
            precision: Some(p),
            scale,
        } if *p <= 1000 => format!("numeric({p},{})", scale.unwrap_or(0)),
        DataType::Decimal { .. } => "numeric".into(),
        DataType::Text { max_len: Some(n) } if *n <= 10_485_760 => format!("varchar({n})"),
        DataType::Text { .. } => "text".into(),
        DataType::Bytes => "bytea".into(),
        DataType::Date => "date".into(),
        DataType::Time => "time".into(),
        DataType::Timestamp => "timestamp".into(),
        DataType::TimestampTz => "timestamptz".into(),
        DataType::Interval => "interval".into(),
        DataType::Uuid => "uuid".into(),
        DataType::Json => "json".into(),
        DataType::Array(inner) => match **inner {
            DataType::Array(_) => {
                return Err(Error::schema(
                    "nested arrays cannot be stored in Postgres columns",
                ))
            }
            ref e => format!("{}[]", ddl_type(e, None)?),
        },
    })
}
