//! The canonical checksum computed inside Snowflake: each row's canonical text rendered in SQL,
//! its MD5's halves taken by `MD5_NUMBER_UPPER64` / `MD5_NUMBER_LOWER64` and summed per range —
//! one scan, nothing but four numbers per range leaving the warehouse.
//!
//! | type | canonical text in Snowflake SQL |
//! | --- | --- |
//! | integers | `TO_VARCHAR(c)` |
//! | decimals with a scale | `TO_VARCHAR(c)` without trailing fractional zeros (`RTRIM`), `0` for zero |
//! | text, uuid | `c` |
//! | bool | `CASE WHEN c THEN 't' WHEN NOT c THEN 'f' END` |
//! | bytes | `HEX_ENCODE(c, 0)` (lower case) |
//! | date | `DATEDIFF('day', DATE_FROM_PARTS(1970, 1, 1), c)` |
//! | time | `DATEDIFF('microsecond', TIME_FROM_PARTS(0, 0, 0), c)` |
//! | timestamp, timestamptz | `DATEDIFF('microsecond', TO_TIMESTAMP_NTZ(0) / TO_TIMESTAMP_LTZ(0), c)` (sessions run in UTC) |
//! | floats, JSON, arrays | none: no exact SQL rendering — the table is streamed and hashed here |
//!
//! Each field is `COALESCE(TO_VARCHAR(LENGTH(x)) || ':' || x, 'N')` (`||` is NULL when either
//! side is). Snowflake documents these functions but not every corner (a leading zero before a
//! decimal point, year 1, an empty binary, MD5 over UTF-8), so before a pool uses SQL it runs a
//! **self-check**: known values of each type rendered by these very expressions and hashed by
//! `MD5_NUMBER_*`, compared with migrate's own texts and digests. A type whose rendering
//! differs is streamed; a server without the MD5 functions (the emulator) streams everything.
//! [`SqlChecksums::describe`] says which path a table takes and why.

use std::collections::BTreeSet;

use migrate_core::checksum::canonical_text;
use migrate_core::decimal::Decimal;
use migrate_core::{DataType, Error, ErrorKind, Result, RowChecksum, TableInfo, Value};

use crate::pool::SessionPool;
use crate::sql::literal;
use crate::types::column_type;

/// A type's family, for what the self-check proved.
fn family(t: &DataType) -> Option<&'static str> {
    Some(match t {
        DataType::Int16 | DataType::Int32 | DataType::Int64 => "integer",
        DataType::Decimal { scale: Some(s), .. } if *s > 0 => "decimal",
        DataType::Decimal { .. } => "integer",
        DataType::Text { .. } | DataType::Uuid => "text",
        DataType::Bool => "bool",
        DataType::Bytes => "bytes",
        DataType::Date => "date",
        DataType::Time => "time",
        DataType::Timestamp => "timestamp",
        DataType::TimestampTz => "timestamptz",
        _ => return None,
    })
}

/// The canonical text of `c` (SQL) of type `t`, or `None` where SQL cannot render it exactly.
pub fn render(c: &str, t: &DataType) -> Option<String> {
    Some(match family(t)? {
        "integer" => format!("TO_VARCHAR({c})"),
        "decimal" => format!(
            "IFF({c} = 0, '0', IFF(CONTAINS(TO_VARCHAR({c}), '.'), RTRIM(RTRIM(TO_VARCHAR({c}), '0'), '.'), TO_VARCHAR({c})))"
        ),
        "text" => c.to_string(),
        "bool" => format!("CASE WHEN {c} THEN 't' WHEN NOT {c} THEN 'f' END"),
        "bytes" => format!("HEX_ENCODE({c}, 0)"),
        "date" => format!("TO_VARCHAR(DATEDIFF('day', DATE_FROM_PARTS(1970, 1, 1), {c}))"),
        "time" => format!("TO_VARCHAR(DATEDIFF('microsecond', TIME_FROM_PARTS(0, 0, 0), {c}))"),
        "timestamp" => format!("TO_VARCHAR(DATEDIFF('microsecond', TO_TIMESTAMP_NTZ(0), {c}))"),
        _ => format!("TO_VARCHAR(DATEDIFF('microsecond', TO_TIMESTAMP_LTZ(0), {c}))"),
    })
}

/// The canonical row text of columns `cols` (SQL, with their types), or `None` when any
/// column does not render.
pub fn row_text(cols: &[(String, DataType)]) -> Option<String> {
    let fields: Option<Vec<String>> = cols
        .iter()
        .map(|(c, t)| {
            let x = render(c, t)?;
            Some(format!(
                "COALESCE(TO_VARCHAR(LENGTH({x})) || ':' || {x}, 'N')"
            ))
        })
        .collect();
    let fields = fields?;
    Some(match fields.is_empty() {
        true => "''".into(),
        false => fields.join(" || "),
    })
}

/// `SELECT <bucket>, COUNT(*), SUM(upper), SUM(lower) FROM (<row texts of `from`>) GROUP BY 1`:
/// `bucket` numbers each row's range (`0` for one range).
pub fn sums_query(row: &str, bucket: &str, from: &str, predicate: &str) -> String {
    format!(
        "SELECT \"_B\", COUNT(*), SUM(MD5_NUMBER_UPPER64(\"_R\")::NUMBER(38, 0)), \
         SUM(MD5_NUMBER_LOWER64(\"_R\")::NUMBER(38, 0)) \
         FROM (SELECT {bucket} AS \"_B\", {row} AS \"_R\" FROM {from} WHERE {predicate}) GROUP BY \"_B\""
    )
}

/// The types of a [`sums_query`] answer's columns.
pub fn sums_types() -> Vec<DataType> {
    let wide = DataType::Decimal {
        precision: Some(38),
        scale: Some(0),
    };
    vec![DataType::Int64, DataType::Int64, wide.clone(), wide]
}

/// One answer row of [`sums_query`]: its bucket and checksum (the exact sums taken modulo 2^64,
/// as migrate's wrapping sums are; NULL sums — no rows — are zero).
pub fn sums_row(row: &[Value]) -> Result<(i64, RowChecksum)> {
    let bad = || Error::fatal(format!("the checksum query answered {row:?}"));
    let number = |v: Option<&Value>| -> Result<u128> {
        match v {
            Some(Value::Null) => Ok(0),
            Some(v) => canonical_text(v).parse::<u128>().map_err(|_| bad()),
            None => Err(bad()),
        }
    };
    let bucket = match row.first() {
        Some(Value::Int64(b)) => *b,
        _ => return Err(bad()),
    };
    let count = u64::try_from(number(row.get(1))?).map_err(|_| bad())?;
    Ok((
        bucket,
        RowChecksum {
            count,
            sum_hi: number(row.get(2))? as u64,
            sum_lo: number(row.get(3))? as u64,
        },
    ))
}

/// What the self-check found on one server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SqlChecksums {
    /// The type families whose rendering matched migrate's texts (empty: stream everything).
    pub rendered: BTreeSet<&'static str>,
    /// Why SQL is not used for the rest (the first difference, or the missing function).
    pub why_not: Option<String>,
}

impl SqlChecksums {
    /// Whether `table`'s checksum can be computed in SQL.
    pub fn covers(&self, table: &TableInfo) -> bool {
        table
            .schema
            .columns
            .iter()
            .all(|c| family(&c.data_type).is_some_and(|f| self.rendered.contains(f)))
    }

    /// Which path `table`'s checksum takes, in a sentence.
    pub fn describe(&self, table: &TableInfo) -> String {
        if self.covers(table) {
            return "computed in Snowflake (MD5_NUMBER_UPPER64/LOWER64 over rows rendered in SQL)"
                .into();
        }
        let odd: Vec<String> = table
            .schema
            .columns
            .iter()
            .filter(|c| !family(&c.data_type).is_some_and(|f| self.rendered.contains(f)))
            .map(|c| format!("{:?} ({})", c.name, c.data_type))
            .collect();
        let mut out = format!(
            "streamed and hashed by migrate: {} not rendered in SQL",
            odd.join(", ")
        );
        if let Some(why) = &self.why_not {
            out.push_str(&format!(" ({why})"));
        }
        out
    }
}

/// The values the self-check renders (each with the declared type it is cast to): the corners
/// Snowflake's documentation leaves open — a leading zero, trailing zeros, year 1 and 9999, an
/// empty binary, text beyond the Basic Multilingual Plane.
pub fn samples() -> Vec<(Value, DataType)> {
    let d = |s: &str| s.parse::<Decimal>().map(Value::Decimal).ok();
    let dec = |p, s| DataType::Decimal {
        precision: Some(p),
        scale: Some(s),
    };
    let mut out = vec![
        (Value::Int64(i64::MIN + 1), DataType::Int64),
        (Value::Int64(0), DataType::Int64),
        (Value::Text(String::new()), DataType::text()),
        (Value::Text("ünï 漢字 😀 'q'".into()), DataType::text()),
        (Value::Bool(true), DataType::Bool),
        (Value::Bool(false), DataType::Bool),
        (Value::Bytes(Vec::new()), DataType::Bytes),
        (Value::Bytes(vec![0, 0xab, 0xff]), DataType::Bytes),
        (Value::Date(-719_162), DataType::Date),
        (Value::Date(2_932_896), DataType::Date),
        (Value::Time(0), DataType::Time),
        (Value::Time(86_399_999_999), DataType::Time),
        (
            Value::Timestamp(-62_135_596_800_000_000),
            DataType::Timestamp,
        ),
        (Value::Timestamp(-1), DataType::Timestamp),
        (
            Value::TimestampTz(253_402_300_799_999_999),
            DataType::TimestampTz,
        ),
        (Value::TimestampTz(-1_000_001), DataType::TimestampTz),
    ];
    for (text, p, s) in [
        ("0.50", 12, 2),
        ("-0.10", 12, 2),
        ("100.00", 12, 2),
        ("0.00", 12, 2),
        ("-99999999999999999999999999999.999999999", 38, 9),
    ] {
        if let Some(v) = d(text) {
            out.push((v, dec(p, s)));
        }
    }
    out
}

/// Runs the self-check on `pool`'s server (see the module docs).
pub async fn self_check(pool: &SessionPool) -> Result<SqlChecksums> {
    let samples = samples();
    // Each sample as a literal cast to its column's type, as a table would hold it.
    let typed = samples
        .iter()
        .map(|(v, t)| {
            let column = migrate_core::Column::new("sample", t.clone());
            let ty = column_type(&migrate_core::TableName::new("check", "sample"), &column)?;
            Ok((format!("{}::{ty}", literal(v)?), t.clone()))
        })
        .collect::<Result<Vec<(String, DataType)>>>()?;
    let mut selects = Vec::new();
    for (i, (c, t)) in typed.iter().enumerate() {
        let x = render(c, t).ok_or_else(|| Error::fatal("a sample that does not render"))?;
        selects.push(format!("{x} AS \"C{i}\""));
    }
    // The whole row, hashed: MD5 over UTF-8 and the halves as migrate takes them.
    let row = row_text(&typed).ok_or_else(|| Error::fatal("the sample row does not render"))?;
    selects.push(format!("MD5_NUMBER_UPPER64({row})::VARCHAR AS \"HI\""));
    selects.push(format!("MD5_NUMBER_LOWER64({row})::VARCHAR AS \"LO\""));
    let r = match pool
        .query(&format!("SELECT {}", selects.join(", ")), &[])
        .await
    {
        Ok(r) => r,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::NotFound | ErrorKind::Schema | ErrorKind::Validation
            ) =>
        {
            return Ok(SqlChecksums {
                rendered: BTreeSet::new(),
                why_not: Some(format!(
                    "the server cannot run the checksum functions: {}",
                    e.message()
                )),
            })
        }
        Err(e) => return Err(e),
    };
    let got = r.rows.first().cloned().unwrap_or_default();
    let mut out = SqlChecksums::default();
    let mut failed: BTreeSet<&'static str> = BTreeSet::new();
    for (i, (v, t)) in samples.iter().enumerate() {
        let Some(f) = family(t) else { continue };
        let want = canonical_text(v);
        let seen = got.get(i).map(canonical_text);
        if seen.as_deref() != Some(want.as_str()) {
            failed.insert(f);
            out.why_not
                .get_or_insert_with(|| format!("Snowflake rendered the {f} {want:?} as {seen:?}"));
        } else {
            out.rendered.insert(f);
        }
    }
    out.rendered.retain(|f| !failed.contains(f));
    // The digest halves of the whole sample row.
    let values: Vec<Value> = samples.iter().map(|(v, _)| v.clone()).collect();
    let mut want = RowChecksum::new();
    want.add_row(&values);
    let hi = got.get(samples.len()).map(canonical_text);
    let lo = got.get(samples.len() + 1).map(canonical_text);
    if hi != Some(want.sum_hi.to_string()) || lo != Some(want.sum_lo.to_string()) {
        out.why_not = Some(format!(
            "MD5_NUMBER_UPPER64/LOWER64 of the sample row answered {hi:?}/{lo:?}, migrate computes {}/{}",
            want.sum_hi, want.sum_lo
        ));
        out.rendered.clear();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrate_core::{Column, Schema, TableName};

    #[test]
    fn rows_render_field_by_field_and_sums_wrap() {
        let cols = vec![
            ("\"ID\"".to_string(), DataType::Int64),
            (
                "\"AMT\"".to_string(),
                DataType::Decimal {
                    precision: Some(12),
                    scale: Some(2),
                },
            ),
            ("\"OK\"".to_string(), DataType::Bool),
        ];
        let row = row_text(&cols).unwrap();
        assert!(row.starts_with("COALESCE(TO_VARCHAR(LENGTH(TO_VARCHAR(\"ID\"))) || ':' || TO_VARCHAR(\"ID\"), 'N') || "), "{row}");
        assert!(
            row.contains("RTRIM(RTRIM(TO_VARCHAR(\"AMT\"), '0'), '.')"),
            "{row}"
        );
        assert!(
            row.ends_with("CASE WHEN \"OK\" THEN 't' WHEN NOT \"OK\" THEN 'f' END, 'N')"),
            "{row}"
        );
        assert!(row_text(&[("\"F\"".into(), DataType::Float64)]).is_none());

        // Exact sums beyond 2^64 are taken modulo 2^64, as migrate's wrapping sums are.
        let big = |s: &str| Value::Decimal(s.parse().unwrap());
        let (b, sum) = sums_row(&[
            Value::Int64(3),
            Value::Int64(2),
            big("18446744073709551621"),
            Value::Null,
        ])
        .unwrap();
        assert_eq!((b, sum.count, sum.sum_hi, sum.sum_lo), (3, 2, 5, 0));

        // Which path a table takes, and why.
        let t = TableInfo::new(
            TableName::new("public", "t"),
            Schema::new(
                vec![
                    Column::new("id", DataType::Int64),
                    Column::new("f", DataType::Float64),
                ],
                &["id"],
            )
            .unwrap(),
        );
        let found = SqlChecksums {
            rendered: ["integer"].into_iter().collect(),
            why_not: None,
        };
        assert!(!found.covers(&t));
        assert!(
            found.describe(&t).contains("\"f\" (float64)"),
            "{}",
            found.describe(&t)
        );
    }
}
