//! A value cast to a type: what CONVERT and the expression language's `CAST` do. A value that
//! does not convert is an error whose message names the types and the rule it broke, never the
//! value (rejected rows are reported by key; their values stay out of logs and stores).

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use migrate_core::{DataType, Decimal, Value};

/// The type a value carries (`None` for NULL).
pub fn type_of(v: &Value) -> Option<DataType> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(_) => DataType::Bool,
        Value::Int16(_) => DataType::Int16,
        Value::Int32(_) => DataType::Int32,
        Value::Int64(_) => DataType::Int64,
        Value::Float32(_) => DataType::Float32,
        Value::Float64(_) => DataType::Float64,
        Value::Decimal(_) => DataType::Decimal {
            precision: None,
            scale: None,
        },
        Value::Text(_) => DataType::text(),
        Value::Bytes(_) => DataType::Bytes,
        Value::Date(_) => DataType::Date,
        Value::Time(_) => DataType::Time,
        Value::Timestamp(_) => DataType::Timestamp,
        Value::TimestampTz(_) => DataType::TimestampTz,
        Value::Interval(_) => DataType::Interval,
        Value::Uuid(_) => DataType::Uuid,
        Value::Json(_) => DataType::Json,
        Value::Array(items) => DataType::Array(Box::new(
            items
                .iter()
                .find_map(type_of)
                .unwrap_or_else(DataType::text),
        )),
    })
}

/// Whether a cast from `from` to `to` can succeed for some value (the expression checker's
/// question; whether it succeeds for a given value is [`cast`]'s).
pub fn castable(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let numeric = |t: &DataType| {
        matches!(
            t,
            Int16 | Int32 | Int64 | Float32 | Float64 | Decimal { .. } | Bool
        )
    };
    match (from, to) {
        (Text { .. }, _) | (_, Text { .. }) => !matches!((from, to), (Array(_), _) | (_, Array(_))),
        (a, b) if numeric(a) && numeric(b) => true,
        (Date | Timestamp | TimestampTz, Date | Timestamp | TimestampTz) => true,
        (Time, Time) | (Uuid, Uuid) | (Bytes, Bytes) | (Interval, Interval) => true,
        (Json, Json) => true,
        (Array(a), Array(b)) => castable(a, b),
        _ => false,
    }
}

/// `v` as a value of `to`, or why not (without the value).
pub fn cast(v: &Value, to: &DataType) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let out = match to {
        DataType::Bool => to_bool(v)?,
        DataType::Int16 => {
            let i = to_i128(v)?;
            Value::Int16(i16::try_from(i).map_err(|_| out_of_range(v, to))?)
        }
        DataType::Int32 => {
            let i = to_i128(v)?;
            Value::Int32(i32::try_from(i).map_err(|_| out_of_range(v, to))?)
        }
        DataType::Int64 => {
            let i = to_i128(v)?;
            Value::Int64(i64::try_from(i).map_err(|_| out_of_range(v, to))?)
        }
        DataType::Float32 => {
            let f = to_f64(v)?;
            let g = f as f32;
            if f.is_finite() && !g.is_finite() {
                return Err(out_of_range(v, to));
            }
            Value::Float32(g)
        }
        DataType::Float64 => Value::Float64(to_f64(v)?),
        DataType::Decimal { precision, scale } => to_decimal(v, *precision, *scale)?,
        DataType::Text { max_len } => {
            let s = to_text(v);
            if let Some(n) = max_len {
                if s.chars().count() > *n as usize {
                    return Err(format!("text longer than {n} characters"));
                }
            }
            Value::Text(s)
        }
        DataType::Bytes => match v {
            Value::Bytes(b) => Value::Bytes(b.clone()),
            Value::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
            _ => return Err(impossible(v, to)),
        },
        DataType::Date => match v {
            Value::Date(d) => Value::Date(*d),
            Value::Timestamp(us) | Value::TimestampTz(us) => {
                Value::Date(us.div_euclid(86_400_000_000) as i32)
            }
            Value::Text(s) => {
                parse_date(s.trim()).ok_or_else(|| "text is not a date (YYYY-MM-DD)".to_string())?
            }
            _ => return Err(impossible(v, to)),
        },
        DataType::Time => match v {
            Value::Time(t) => Value::Time(*t),
            Value::Text(s) => {
                let t = NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f")
                    .map_err(|_| "text is not a time (HH:MM:SS)".to_string())?;
                Value::Time(
                    i64::from(t.num_seconds_from_midnight()) * 1_000_000
                        + i64::from(t.nanosecond() / 1000),
                )
            }
            _ => return Err(impossible(v, to)),
        },
        DataType::Timestamp | DataType::TimestampTz => {
            let us = match v {
                Value::Date(d) => i64::from(*d)
                    .checked_mul(86_400_000_000)
                    .ok_or_else(|| out_of_range(v, to))?,
                Value::Timestamp(us) | Value::TimestampTz(us) => *us,
                Value::Text(s) => parse_timestamp(s.trim())
                    .ok_or_else(|| "text is not a timestamp (ISO 8601)".to_string())?,
                _ => return Err(impossible(v, to)),
            };
            match to {
                DataType::Timestamp => Value::Timestamp(us),
                _ => Value::TimestampTz(us),
            }
        }
        DataType::Interval => match v {
            Value::Interval(i) => Value::Interval(*i),
            _ => return Err(impossible(v, to)),
        },
        DataType::Uuid => match v {
            Value::Uuid(u) => Value::Uuid(*u),
            Value::Text(s) => Value::Uuid(
                *uuid::Uuid::parse_str(s.trim())
                    .map_err(|_| "text is not a UUID".to_string())?
                    .as_bytes(),
            ),
            _ => return Err(impossible(v, to)),
        },
        DataType::Json => match v {
            Value::Json(s) => Value::Json(s.clone()),
            Value::Text(s) => {
                serde_json::from_str::<serde_json::Value>(s)
                    .map_err(|_| "text is not JSON".to_string())?;
                Value::Json(s.clone())
            }
            _ => return Err(impossible(v, to)),
        },
        DataType::Array(inner) => match v {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| cast(i, inner))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(impossible(v, to)),
        },
    };
    Ok(out)
}

fn name(v: &Value) -> String {
    type_of(v).map_or_else(|| "NULL".into(), |t| t.to_string())
}

fn impossible(v: &Value, to: &DataType) -> String {
    format!("a {} does not convert to {to}", name(v))
}

fn out_of_range(v: &Value, to: &DataType) -> String {
    format!("a {} value out of range for {to}", name(v))
}

/// An integer from any numeric, text or bool (fractions round half away from zero, as SQL's
/// casts do).
fn to_i128(v: &Value) -> Result<i128, String> {
    match v {
        Value::Bool(b) => Ok(i128::from(*b)),
        Value::Int16(i) => Ok(i128::from(*i)),
        Value::Int32(i) => Ok(i128::from(*i)),
        Value::Int64(i) => Ok(i128::from(*i)),
        Value::Float32(_) | Value::Float64(_) => {
            let f = to_f64(v)?.round();
            if !f.is_finite() || f.abs() >= 1.7e38 {
                return Err(format!(
                    "a non-finite or huge {} is not an integer",
                    name(v)
                ));
            }
            Ok(f as i128)
        }
        Value::Decimal(d) => decimal_to_i128(d).ok_or_else(|| out_of_range(v, &DataType::Int64)),
        Value::Text(s) => {
            let t = s.trim();
            match t.parse::<i128>() {
                Ok(i) => Ok(i),
                Err(_) => t
                    .parse::<Decimal>()
                    .ok()
                    .and_then(|d| decimal_to_i128(&d))
                    .ok_or_else(|| "text is not an integer".to_string()),
            }
        }
        _ => Err(impossible(v, &DataType::Int64)),
    }
}

/// A finite decimal rounded to an integer (half away from zero); `None` when it does not fit.
fn decimal_to_i128(d: &Decimal) -> Option<i128> {
    let (neg, digits, scale) = d.parts()?;
    let scale = scale as usize;
    let (int, frac) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("", digits)
    };
    let mut i: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let first_frac = if digits.len() >= scale {
        frac.as_bytes().first().copied()
    } else {
        Some(b'0')
    };
    if first_frac.is_some_and(|b| b >= b'5') {
        i = i.checked_add(1)?;
    }
    Some(if neg { -i } else { i })
}

fn to_f64(v: &Value) -> Result<f64, String> {
    match v {
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        Value::Int16(i) => Ok(f64::from(*i)),
        Value::Int32(i) => Ok(f64::from(*i)),
        Value::Int64(i) => Ok(*i as f64),
        Value::Float32(f) => Ok(f64::from(*f)),
        Value::Float64(f) => Ok(*f),
        Value::Decimal(d) => d
            .to_string()
            .parse::<f64>()
            .map_err(|_| "a decimal that is not a float".to_string()),
        Value::Text(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| "text is not a number".to_string()),
        _ => Err(impossible(v, &DataType::Float64)),
    }
}

fn to_bool(v: &Value) -> Result<Value, String> {
    Ok(Value::Bool(match v {
        Value::Bool(b) => *b,
        Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => to_i128(v)? != 0,
        Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "on" | "1" => true,
            "false" | "f" | "no" | "n" | "off" | "0" => false,
            _ => return Err("text is not a boolean".into()),
        },
        _ => return Err(impossible(v, &DataType::Bool)),
    }))
}

/// A decimal of at most `precision` digits with `scale` after the point (rounded half away
/// from zero to the scale; too many integer digits is an error, as in SQL).
fn to_decimal(v: &Value, precision: Option<u32>, scale: Option<u32>) -> Result<Value, String> {
    let d = match v {
        Value::Decimal(d) => d.clone(),
        Value::Bool(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
            Decimal::from_i128(to_i128(v)?)
        }
        Value::Float32(_) | Value::Float64(_) => {
            let f = to_f64(v)?;
            if !f.is_finite() {
                return Err("a non-finite float is not a decimal".into());
            }
            format!("{f}")
                .parse::<Decimal>()
                .map_err(|_| "a float that is not a decimal".to_string())?
        }
        Value::Text(s) => s
            .trim()
            .parse::<Decimal>()
            .map_err(|_| "text is not a number".to_string())?,
        _ => {
            return Err(impossible(
                v,
                &DataType::Decimal {
                    precision: None,
                    scale: None,
                },
            ))
        }
    };
    let d = match scale {
        Some(s) => round_to_scale(&d, s),
        None => d,
    };
    if let (Some(p), Some((_, digits, s))) = (precision, d.parts()) {
        let int_digits = digits.len().saturating_sub(s as usize);
        let allowed = p.saturating_sub(scale.unwrap_or(0)) as usize;
        if int_digits > allowed {
            return Err(format!(
                "a number with {int_digits} integer digits does not fit NUMERIC({p},{})",
                scale.unwrap_or(0)
            ));
        }
    }
    Ok(Value::Decimal(d))
}

/// `d` rounded half away from zero to `scale` digits after the point.
pub(crate) fn round_to_scale(d: &Decimal, scale: u32) -> Decimal {
    let Some((neg, digits, s)) = d.parts() else {
        return d.clone();
    };
    if s <= scale {
        return d.with_scale(scale).unwrap_or_else(|| d.clone());
    }
    let cut = (s - scale) as usize;
    if digits.len() < cut {
        // Every digit is below the kept scale: 0, or 1 unit when the first dropped digit is 5+.
        let round_up = digits.len() == cut && digits.as_bytes()[0] >= b'5';
        let kept = if round_up { "1" } else { "" };
        return Decimal::from_parts(neg, kept, scale).unwrap_or_else(|_| Decimal::zero());
    }
    let (kept, dropped) = digits.split_at(digits.len() - cut);
    let mut kept: Vec<u8> = kept.bytes().collect();
    if dropped.as_bytes().first().is_some_and(|b| *b >= b'5') {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    let kept = String::from_utf8(kept).unwrap_or_default();
    Decimal::from_parts(neg, &kept, scale).unwrap_or_else(|_| Decimal::zero())
}

fn parse_date(s: &str) -> Option<Value> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some(Value::Date((d - epoch).num_days() as i32))
}

/// Microseconds since the epoch of an ISO 8601 timestamp (with an offset: converted to UTC;
/// without: as written; a date alone: midnight).
fn parse_timestamp(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.timestamp_micros());
        }
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

/// A type named as SQL or as this library names them (`int`, `bigint`, `int64`,
/// `varchar(20)`, `numeric(10,2)`, `timestamp with time zone`, `text`, `bytes` …); `None` when
/// it names none.
pub fn parse_type(name: &str) -> Option<DataType> {
    let lower = name.trim().to_ascii_lowercase();
    if let Some(inner) = lower.strip_suffix("[]") {
        return Some(DataType::Array(Box::new(parse_type(inner)?)));
    }
    let (base, args) = match lower.split_once('(') {
        Some((b, rest)) => {
            let (args, after) = rest.split_once(')')?;
            let args: Vec<u32> = args
                .split(',')
                .map(|a| a.trim().parse().ok())
                .collect::<Option<_>>()?;
            (format!("{}{}", b.trim(), after), args)
        }
        None => (lower.clone(), Vec::new()),
    };
    let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(match base.as_str() {
        "smallint" | "int2" | "int16" => DataType::Int16,
        "int" | "integer" | "int4" | "int32" => DataType::Int32,
        "bigint" | "int8" | "int64" => DataType::Int64,
        "real" | "float4" | "float32" => DataType::Float32,
        "double precision" | "double" | "float8" | "float" | "float64" => DataType::Float64,
        "numeric" | "decimal" | "number" => DataType::Decimal {
            precision: args.first().copied(),
            scale: args.get(1).copied().or(args.first().map(|_| 0)),
        },
        "text" | "string" => DataType::text(),
        "varchar" | "character varying" | "char" | "character" | "nvarchar" => DataType::Text {
            max_len: args.first().copied(),
        },
        "boolean" | "bool" => DataType::Bool,
        "date" => DataType::Date,
        "time" | "time without time zone" => DataType::Time,
        "timestamp" | "timestamp without time zone" | "datetime" => DataType::Timestamp,
        "timestamptz" | "timestamp with time zone" => DataType::TimestampTz,
        "uuid" => DataType::Uuid,
        "json" | "jsonb" => DataType::Json,
        "bytea" | "bytes" | "binary" | "blob" => DataType::Bytes,
        "interval" => DataType::Interval,
        _ => return None,
    })
}

/// A value as text the way Postgres prints it (ISO dates and times, `true`/`false`,
/// hyphenated UUIDs, `\x` hex for bytes).
pub fn to_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int16(i) => i.to_string(),
        Value::Int32(i) => i.to_string(),
        Value::Int64(i) => i.to_string(),
        Value::Float32(f) => f.to_string(),
        Value::Float64(f) => f.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Text(s) | Value::Json(s) => s.clone(),
        Value::Bytes(b) => {
            let mut s = String::from("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        Value::Date(d) => NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|e| e.checked_add_signed(chrono::Duration::days(i64::from(*d))))
            .map_or_else(|| d.to_string(), |d| d.format("%Y-%m-%d").to_string()),
        Value::Time(us) => NaiveTime::from_num_seconds_from_midnight_opt(
            (us / 1_000_000) as u32,
            ((us % 1_000_000) * 1000) as u32,
        )
        .map_or_else(|| us.to_string(), |t| t.format("%H:%M:%S%.f").to_string()),
        Value::Timestamp(us) => DateTime::from_timestamp_micros(*us).map_or_else(
            || us.to_string(),
            |t| t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string(),
        ),
        Value::TimestampTz(us) => DateTime::from_timestamp_micros(*us).map_or_else(
            || us.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S%.f+00").to_string(),
        ),
        Value::Interval(i) => format!("{} mons {} days {} us", i.months, i.days, i.micros),
        Value::Uuid(u) => uuid::Uuid::from_bytes(*u).hyphenated().to_string(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(to_text).collect();
            format!("{{{}}}", inner.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Value {
        Value::Decimal(s.parse().unwrap_or_else(|_| Decimal::zero()))
    }

    #[test]
    fn integers_narrow_with_a_range_check_and_round_fractions() {
        assert_eq!(
            cast(&Value::Int64(7), &DataType::Int16),
            Ok(Value::Int16(7))
        );
        let e = cast(&Value::Int64(70_000), &DataType::Int16).unwrap_err();
        assert!(e.contains("out of range") && !e.contains("70000"), "{e}");
        assert_eq!(cast(&dec("2.5"), &DataType::Int32), Ok(Value::Int32(3)));
        assert_eq!(cast(&dec("-2.5"), &DataType::Int32), Ok(Value::Int32(-3)));
        assert!(cast(&Value::Float64(1e300), &DataType::Int64).is_err());
        assert_eq!(
            cast(&Value::Text(" 42 ".into()), &DataType::Int64),
            Ok(Value::Int64(42))
        );
        let e = cast(&Value::Text("4x2".into()), &DataType::Int64).unwrap_err();
        assert!(!e.contains("4x2"), "no value in the reason: {e}");
    }

    #[test]
    fn decimals_round_to_scale_and_refuse_lost_integer_digits() {
        let to = |p, s| DataType::Decimal {
            precision: Some(p),
            scale: Some(s),
        };
        assert_eq!(cast(&dec("1.005"), &to(5, 2)), Ok(dec("1.01")));
        assert_eq!(cast(&dec("9.995"), &to(5, 2)), Ok(dec("10.00")));
        assert_eq!(cast(&dec("-0.004"), &to(5, 2)), Ok(dec("0.00")));
        assert_eq!(cast(&dec("0.005"), &to(5, 2)), Ok(dec("0.01")));
        assert!(cast(&dec("1234.5"), &to(5, 2)).is_err());
        assert_eq!(cast(&Value::Int32(12), &to(5, 2)), Ok(dec("12.00")));
        assert!(cast(&Value::Float64(f64::NAN), &to(5, 2)).is_err());
    }

    #[test]
    fn text_parses_and_renders_every_kind() {
        let t = |s: &str| Value::Text(s.into());
        assert_eq!(
            cast(&t("2024-02-29"), &DataType::Date),
            Ok(Value::Date(19782))
        );
        assert!(cast(&t("2023-02-29"), &DataType::Date).is_err());
        assert_eq!(
            cast(&t("2024-01-01T00:00:01+01:00"), &DataType::TimestampTz),
            Ok(Value::TimestampTz(1_704_063_601_000_000))
        );
        assert_eq!(cast(&t("yes"), &DataType::Bool), Ok(Value::Bool(true)));
        assert_eq!(
            cast(&Value::Date(19782), &DataType::text()),
            Ok(t("2024-02-29"))
        );
        assert_eq!(
            cast(&t("héllo"), &DataType::Text { max_len: Some(5) }),
            Ok(t("héllo")),
            "length counts characters, not bytes"
        );
        assert!(cast(&t("héllo!"), &DataType::Text { max_len: Some(5) }).is_err());
        assert!(cast(&t("{\"a\":1"), &DataType::Json).is_err());
        assert_eq!(cast(&Value::Null, &DataType::Int16), Ok(Value::Null));
        assert_eq!(cast(&t(""), &DataType::text()), Ok(t("")));
        assert!(cast(&t(""), &DataType::Int32).is_err());
        assert!(
            cast(&t("1e999999999999"), &DataType::Int64).is_err(),
            "no zeros allocated"
        );
        assert!(cast(&Value::Date(i32::MAX), &DataType::Timestamp).is_err());
    }

    #[test]
    fn type_names_of_sql_and_of_this_library() {
        assert_eq!(parse_type("BIGINT"), Some(DataType::Int64));
        assert_eq!(parse_type("int64"), Some(DataType::Int64));
        assert_eq!(
            parse_type("numeric(10, 2)"),
            Some(DataType::Decimal {
                precision: Some(10),
                scale: Some(2)
            })
        );
        assert_eq!(
            parse_type("character varying(20)"),
            Some(DataType::Text { max_len: Some(20) })
        );
        assert_eq!(
            parse_type("timestamp  with time zone"),
            Some(DataType::TimestampTz)
        );
        assert_eq!(
            parse_type("text[]"),
            Some(DataType::Array(Box::new(DataType::text())))
        );
        assert_eq!(parse_type("varchar(x)"), None);
        assert_eq!(parse_type("money"), None);
    }
}
