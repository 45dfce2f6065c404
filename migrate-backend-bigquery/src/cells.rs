//! Query results back into migrate's values: each cell (`f[i].v`, as the REST API renders it)
//! read as the type its column has in migrate, losslessly — what `fetch_rows`, a checksum by
//! streaming and the source read.
//!
//! The renderings read (with `formatOptions.useInt64Timestamp`, which the client always asks
//! for): integers, floats (`NaN`, `Infinity`, `-Infinity` included) and decimals as decimal
//! text; `true`/`false`; bytes as base64; `DATE` `2020-01-02`; `TIME` `01:02:03.000004`;
//! `DATETIME` `2020-01-02T03:04:05.123456`; `TIMESTAMP` as microseconds since the epoch;
//! `INTERVAL` `Y-M D H:M:S[.F]`; JSON as its text; `REPEATED` as a list of cells.

use base64::Engine as _;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use migrate_core::value::Interval;
use migrate_core::{DataType, Error, Result, Value};
use serde_json::Value as Json;

/// Reads one cell of a column of migrate type `ty`; `what` names the column for errors.
pub fn read_cell(ty: &DataType, cell: &Json, what: &str) -> Result<Value> {
    if cell.is_null() {
        return Ok(Value::Null);
    }
    if let DataType::Array(inner) = ty {
        let items = cell.as_array().ok_or_else(|| bad(what, cell, "a list"))?;
        return items
            .iter()
            .map(|item| read_cell(inner, &item["v"], what))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array);
    }
    let text = cell.as_str().ok_or_else(|| bad(what, cell, "a string"))?;
    let int = || {
        text.parse::<i64>()
            .map_err(|_| bad(what, cell, "an integer"))
    };
    Ok(match ty {
        DataType::Bool => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad(what, cell, "true or false")),
        },
        DataType::Int16 => {
            Value::Int16(i16::try_from(int()?).map_err(|_| bad(what, cell, "a 16-bit integer"))?)
        }
        DataType::Int32 => {
            Value::Int32(i32::try_from(int()?).map_err(|_| bad(what, cell, "a 32-bit integer"))?)
        }
        DataType::Int64 => Value::Int64(int()?),
        DataType::Float32 => {
            Value::Float32(float(text).ok_or_else(|| bad(what, cell, "a float"))? as f32)
        }
        DataType::Float64 => Value::Float64(float(text).ok_or_else(|| bad(what, cell, "a float"))?),
        DataType::Decimal { .. } => {
            Value::Decimal(text.parse().map_err(|_| bad(what, cell, "a decimal"))?)
        }
        DataType::Text { .. } => Value::Text(text.to_string()),
        DataType::Json => Value::Json(text.to_string()),
        DataType::Bytes => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| bad(what, cell, "base64"))?,
        ),
        DataType::Uuid => Value::Uuid(uuid(text).ok_or_else(|| bad(what, cell, "a UUID"))?),
        DataType::Date => {
            let d = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| bad(what, cell, "a date"))?;
            Value::Date((d - epoch()).num_days() as i32)
        }
        DataType::Time => {
            let t = NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
                .map_err(|_| bad(what, cell, "a time"))?;
            Value::Time(
                i64::from(t.num_seconds_from_midnight()) * 1_000_000
                    + i64::from(t.nanosecond() / 1000),
            )
        }
        DataType::Timestamp => {
            let t = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
                .map_err(|_| bad(what, cell, "a datetime"))?;
            Value::Timestamp(t.and_utc().timestamp_micros())
        }
        DataType::TimestampTz => Value::TimestampTz(int()?),
        DataType::Interval => {
            Value::Interval(interval(text).ok_or_else(|| bad(what, cell, "an interval"))?)
        }
        DataType::Array(_) => return Err(bad(what, cell, "a list")),
    })
}

/// A cell that is not what its column says: named by its JSON kind and size, never by its
/// value (rows may carry personal data; errors reach logs and reports).
fn bad(what: &str, cell: &Json, want: &str) -> Error {
    let shown = match cell {
        Json::Null => "null".to_string(),
        Json::Bool(_) => "a boolean".to_string(),
        Json::Number(_) => "a number".to_string(),
        Json::String(s) => format!("a string of {} characters", s.chars().count()),
        Json::Array(a) => format!("a list of {} items", a.len()),
        Json::Object(_) => "an object".to_string(),
    };
    Error::validation(format!(
        "{what}: BigQuery answered {shown} where {want} was expected"
    ))
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

fn float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

fn uuid(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || text.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `s` without a leading `-`, and the sign it had.
fn signed(s: &str) -> (i64, &str) {
    match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s),
    }
}

/// BigQuery's canonical interval text: `[-]Y-M [-]D [-]H:M:S[.F]`.
fn interval(text: &str) -> Option<Interval> {
    let mut parts = text.split_whitespace();
    let (ym, d, hms) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (ym_sign, ym) = signed(ym);
    let (y, m) = ym.split_once('-')?;
    let months = ym_sign * (y.parse::<i64>().ok()? * 12 + m.parse::<i64>().ok()?);
    let days: i64 = d.parse().ok()?;
    let (t_sign, hms) = signed(hms);
    let mut hms = hms.splitn(3, ':');
    let (h, mi, s) = (hms.next()?, hms.next()?, hms.next()?);
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 6 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let micros_frac: i64 = format!("{frac:0<6}").parse().ok()?;
    let micros = t_sign
        * ((h.parse::<i64>().ok()? * 3600
            + mi.parse::<i64>().ok()? * 60
            + whole.parse::<i64>().ok()?)
            * 1_000_000
            + micros_frac);
    Some(Interval {
        months: i32::try_from(months).ok()?,
        days: i32::try_from(days).ok()?,
        micros,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(ty: DataType, v: Json) -> Value {
        read_cell(&ty, &v, "column \"c\"").unwrap()
    }

    #[test]
    fn every_rendering_reads_back_as_its_value() {
        assert_eq!(read(DataType::Int16, json!("-3")), Value::Int16(-3));
        assert_eq!(
            read(DataType::Int64, json!("9007199254740993")),
            Value::Int64(9_007_199_254_740_993)
        );
        assert_eq!(
            read(DataType::Float64, json!("0.14285714285714285")),
            Value::Float64(1.0 / 7.0)
        );
        assert_eq!(
            read(DataType::Float64, json!("1.0E-5")),
            Value::Float64(1e-5)
        );
        assert!(matches!(read(DataType::Float64, json!("NaN")), Value::Float64(f) if f.is_nan()));
        assert_eq!(
            read(DataType::Float64, json!("-Infinity")),
            Value::Float64(f64::NEG_INFINITY)
        );
        assert_eq!(
            read(
                DataType::Decimal {
                    precision: None,
                    scale: None
                },
                json!("12.500000000")
            ),
            Value::Decimal("12.500000000".parse().unwrap())
        );
        assert_eq!(read(DataType::Bool, json!("false")), Value::Bool(false));
        assert_eq!(
            read(DataType::Bytes, json!("AAECAwQFBg==")),
            Value::Bytes((0..7).collect())
        );
        assert_eq!(read(DataType::Date, json!("1969-12-31")), Value::Date(-1));
        assert_eq!(
            read(DataType::Time, json!("01:00:00.000017")),
            Value::Time(3_600_000_017)
        );
        assert_eq!(read(DataType::Time, json!("00:00:00")), Value::Time(0));
        assert_eq!(
            read(DataType::Timestamp, json!("1969-12-31T23:59:55.000001")),
            Value::Timestamp(-4_999_999)
        );
        assert_eq!(
            read(DataType::TimestampTz, json!("1600000001000001")),
            Value::TimestampTz(1_600_000_001_000_001)
        );
        assert_eq!(
            read(
                DataType::Uuid,
                json!("01010101-0101-0101-0101-0101010101ff")
            ),
            Value::Uuid([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0xff])
        );
        assert_eq!(
            read(DataType::Interval, json!("1-2 3 4:05:06.5")),
            Value::Interval(Interval {
                months: 14,
                days: 3,
                micros: 14_706_500_000
            })
        );
        assert_eq!(
            read(DataType::Interval, json!("-0-1 -2 -0:00:00.000001")),
            Value::Interval(Interval {
                months: -1,
                days: -2,
                micros: -1
            })
        );
        assert_eq!(
            read(
                DataType::Array(Box::new(DataType::text())),
                json!([{"v": "a"}, {"v": "b"}])
            ),
            Value::Array(vec![Value::Text("a".into()), Value::Text("b".into())])
        );
        assert_eq!(read(DataType::Json, json!(null)), Value::Null);
    }

    #[test]
    fn a_cell_that_is_not_its_type_is_an_error_naming_the_column() {
        let e = read_cell(&DataType::Int16, &json!("70000"), "column \"c\"").unwrap_err();
        assert!(
            e.to_string().contains("column \"c\"") && e.to_string().contains("16-bit"),
            "{e}"
        );
        assert!(read_cell(&DataType::Date, &json!("yesterday"), "c").is_err());
        assert!(read_cell(&DataType::Bool, &json!("yes"), "c").is_err());
        assert!(read_cell(&DataType::Uuid, &json!("0101"), "c").is_err());
    }
}
