//! GoogleSQL text: quoting, literals, key-range predicates and the canonical row checksum
//! computed inside BigQuery.
//!
//! The checksum is the one `migrate_core::checksum` defines — per row the MD5 of the fields'
//! canonical text, summed in two 64-bit halves — so that a Postgres table and its BigQuery copy
//! can be compared each in its own engine. BigQuery has no unsigned 64-bit sum, and an INT64
//! sum of 64-bit pieces would overflow; so each half is summed as two 32-bit pieces (fits in
//! INT64 for up to 2³¹ rows) and the pieces are put together here.

use migrate_core::{DataType, Error, KeyRange, Result, RowChecksum, Value};

use crate::types::BqType;

/// `` `name` `` with backslashes and backticks escaped.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// `` `project`.`dataset`.`table` ``.
pub fn table_ref(project: &str, dataset: &str, table: &str) -> String {
    format!("{}.{}.{}", ident(project), ident(dataset), ident(table))
}

/// A GoogleSQL string literal.
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `v` as a GoogleSQL literal of the type its column has in BigQuery (key bounds, test rows).
pub fn literal(v: &Value) -> Result<String> {
    Ok(match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => (if *b { "TRUE" } else { "FALSE" }).into(),
        Value::Int16(i) => i.to_string(),
        Value::Int32(i) => i.to_string(),
        Value::Int64(i) => i.to_string(),
        Value::Decimal(d) if d.is_finite() => {
            let mut s = String::new();
            d.write_normalized(&mut s);
            // NUMERIC holds what BIGNUMERIC holds within its range; the column coerces.
            format!("BIGNUMERIC {}", string_literal(&s))
        }
        Value::Text(s) => string_literal(s),
        Value::Bytes(b) => format!(
            "FROM_HEX('{}')",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
        Value::Date(d) => format!("DATE_FROM_UNIX_DATE({d})"),
        Value::Time(us) => format!("TIME_ADD(TIME '00:00:00', INTERVAL {us} MICROSECOND)"),
        Value::Timestamp(us) => format!("DATETIME(TIMESTAMP_MICROS({us}))"),
        Value::TimestampTz(us) => format!("TIMESTAMP_MICROS({us})"),
        Value::Uuid(_) => string_literal(&migrate_core::checksum::canonical_text(v)),
        other => {
            return Err(Error::unsupported(format!(
                "no GoogleSQL literal for a {} value here",
                value_kind(other)
            )))
        }
    })
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Float32(_) | Value::Float64(_) => "float",
        Value::Decimal(_) => "non-finite decimal",
        Value::Interval(_) => "interval",
        Value::Json(_) => "JSON",
        Value::Array(_) => "array",
        _ => "such",
    }
}

/// `WHERE`-clause body for `range` over the key columns `keys` of the table aliased `alias`
/// (empty: none). Composite keys compare lexicographically, written out column by column
/// (`(a, b) >= (x, y)` is not GoogleSQL).
pub fn range_predicate(alias: &str, keys: &[&str], range: &KeyRange) -> Result<String> {
    let cols: Vec<String> = keys
        .iter()
        .map(|k| match alias.is_empty() {
            true => ident(k),
            false => format!("{alias}.{}", ident(k)),
        })
        .collect();
    range.sql_predicate(&cols, literal)
}

/// The canonical text of column `col` (SQL) of BigQuery type `ty` holding migrate type `dt`,
/// or `None` where BigQuery cannot render it exactly (floats: no portable shortest form; JSON:
/// key order not documented; intervals, arrays): such tables are checksummed by streaming.
fn canonical_expr(col: &str, ty: BqType, dt: &DataType, repeated: bool) -> Option<String> {
    if repeated {
        return None;
    }
    Some(match (ty, dt) {
        (BqType::Bool, _) => format!("IF({col}, 't', 'f')"),
        (BqType::Int64, _) => format!("CAST({col} AS STRING)"),
        // Trailing fractional zeros, then a bare point, go (BigQuery pads NUMERIC text to its
        // scale in some builds): `12.500` → `12.5`, `100.000` → `100`.
        (BqType::Numeric { .. } | BqType::BigNumeric(_), _) => format!(
            "REGEXP_REPLACE(REGEXP_REPLACE(CAST({col} AS STRING), r'(\\.[0-9]*[1-9])0+$', r'\\1'), r'\\.0+$', '')"
        ),
        (BqType::String, _) => col.to_string(),
        (BqType::Bytes, _) => format!("TO_HEX({col})"),
        (BqType::Date, _) => format!("CAST(UNIX_DATE({col}) AS STRING)"),
        (BqType::Time, _) => {
            format!("CAST(TIME_DIFF({col}, TIME '00:00:00', MICROSECOND) AS STRING)")
        }
        (BqType::DateTime, _) => format!("CAST(UNIX_MICROS(TIMESTAMP({col})) AS STRING)"),
        (BqType::Timestamp, _) => format!("CAST(UNIX_MICROS({col}) AS STRING)"),
        (BqType::Float64 | BqType::Json | BqType::Interval, _) => return None,
    })
}

/// A column as the checksum reads it: its name, migrate type, and BigQuery type.
pub struct ChecksumColumn<'a> {
    /// Column name.
    pub name: &'a str,
    /// The migrate type (the canonical encoding's).
    pub data_type: &'a DataType,
    /// Its BigQuery type.
    pub bq: crate::types::BqColumn,
}

/// The checksum's view of `columns` with their BigQuery types `bq` (same order).
pub fn checksum_columns<'a>(
    columns: &'a [migrate_core::Column],
    bq: &[crate::types::BqColumn],
) -> Vec<ChecksumColumn<'a>> {
    columns
        .iter()
        .zip(bq)
        .map(|(c, b)| ChecksumColumn {
            name: &c.name,
            data_type: &c.data_type,
            bq: *b,
        })
        .collect()
}

/// `SELECT count, 4 × sum of 32-bit digest pieces` over the rows of `table` (SQL) matching
/// `predicate`, computing the canonical checksum in BigQuery; `None` when a column's canonical
/// text cannot be rendered in SQL. [`checksum_from_sums`] reads its one row.
pub fn checksum_query(
    table: &str,
    columns: &[ChecksumColumn<'_>],
    predicate: &str,
) -> Option<String> {
    let (digest, sums) = checksum_parts(columns)?;
    Some(format!(
        "SELECT COUNT(*), {sums} FROM (SELECT {digest} AS h FROM {table} WHERE {predicate})"
    ))
}

/// [`checksum_query`] of several key ranges in one scan: `bucket` (SQL) numbers each row's
/// range (negative: in none); one answer row per range that holds rows, its number first,
/// then what [`checksum_from_sums`] reads.
pub fn bucketed_checksum_query(
    table: &str,
    columns: &[ChecksumColumn<'_>],
    bucket: &str,
) -> Option<String> {
    let (digest, sums) = checksum_parts(columns)?;
    Some(format!(
        "SELECT b, COUNT(*), {sums} FROM (SELECT {bucket} AS b, {digest} AS h FROM {table}) \
         WHERE b >= 0 GROUP BY b"
    ))
}

/// Whether BigQuery can compute the canonical checksum of `columns` itself (every column's
/// canonical text renders in SQL).
pub fn checksum_renders(columns: &[ChecksumColumn<'_>]) -> bool {
    checksum_parts(columns).is_some()
}

/// The per-row digest (hex MD5 of the canonical row) and the four sums of its 32-bit pieces.
fn checksum_parts(columns: &[ChecksumColumn<'_>]) -> Option<(String, String)> {
    let mut fields = Vec::with_capacity(columns.len());
    for c in columns {
        let col = ident(c.name);
        let text = canonical_expr(&col, c.bq.ty, c.data_type, c.bq.repeated)?;
        fields.push(format!(
            "IF({col} IS NULL, 'N', CONCAT(CAST(CHAR_LENGTH({text}) AS STRING), ':', {text}))"
        ));
    }
    let row = match fields.len() {
        0 => "''".to_string(),
        1 => fields.remove(0),
        _ => format!("CONCAT({})", fields.join(", ")),
    };
    let sums: Vec<String> = (0..4)
        .map(|i| {
            format!(
                "COALESCE(SUM(CAST(CONCAT('0x', SUBSTR(h, {}, 8)) AS INT64)), 0)",
                1 + 8 * i
            )
        })
        .collect();
    Some((format!("TO_HEX(MD5({row}))"), sums.join(", ")))
}

/// `CASE WHEN <range 0> THEN 0 WHEN <range 1> THEN 1 … ELSE -1 END` over the key columns
/// `keys`: the number of the range a row is in.
pub fn range_bucket(keys: &[&str], ranges: &[KeyRange]) -> Result<String> {
    let cols: Vec<String> = keys.iter().map(|k| ident(k)).collect();
    KeyRange::sql_bucket(ranges, &cols, literal)
}

/// The checksum from [`checksum_query`]'s row: the count and the four sums of 32-bit pieces
/// (most significant first), as BigQuery renders them (strings).
pub fn checksum_from_sums(cells: &[serde_json::Value]) -> Result<RowChecksum> {
    let num = |i: usize| -> Result<u64> {
        let cell = cells.get(i).ok_or_else(|| {
            Error::fatal(format!("the checksum query answered {} cells", cells.len()))
        })?;
        let text = cell
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| cell.to_string());
        text.parse::<i64>()
            .map(|v| v as u64)
            .map_err(|_| Error::fatal(format!("the checksum query answered {text:?}")))
    };
    let (a, b, c, d) = (num(1)?, num(2)?, num(3)?, num(4)?);
    Ok(RowChecksum {
        count: num(0)?,
        sum_hi: (a << 32).wrapping_add(b),
        sum_lo: (c << 32).wrapping_add(d),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_literals() {
        assert_eq!(ident("we`ird"), "`we\\`ird`");
        assert_eq!(table_ref("p", "d", "t"), "`p`.`d`.`t`");
        assert_eq!(string_literal("it's a\\b\n"), "'it\\'s a\\\\b\\n'");
        assert_eq!(literal(&Value::Int64(-5)).unwrap(), "-5");
        assert_eq!(
            literal(&Value::Date(-1)).unwrap(),
            "DATE_FROM_UNIX_DATE(-1)"
        );
        assert_eq!(
            literal(&Value::Decimal("-0.50".parse().unwrap())).unwrap(),
            "BIGNUMERIC '-0.5'"
        );
        assert_eq!(
            literal(&Value::Bytes(vec![0, 255])).unwrap(),
            "FROM_HEX('00ff')"
        );
        assert!(literal(&Value::Float64(1.0)).is_err());
    }

    #[test]
    fn composite_ranges_are_written_out_column_by_column() {
        let r = KeyRange::between(
            Some(vec![Value::Int64(1), Value::Text("x".into())]),
            Some(vec![Value::Int64(4), Value::Text("".into())]),
        );
        assert_eq!(
            range_predicate("T", &["a", "b"], &r).unwrap(),
            "(T.`a` > 1 OR (T.`a` = 1 AND T.`b` >= 'x')) AND (T.`a` < 4 OR (T.`a` = 4 AND T.`b` < ''))"
        );
        let single = KeyRange::between(None, Some(vec![Value::Int64(10)]));
        assert_eq!(range_predicate("", &["id"], &single).unwrap(), "`id` < 10");
        assert_eq!(
            range_predicate("T", &["id"], &KeyRange::all()).unwrap(),
            "TRUE"
        );
        assert!(range_predicate("", &["a", "b"], &single).is_err());
    }

    #[test]
    fn sums_of_pieces_make_the_halves_and_wrap() {
        let cells: Vec<serde_json::Value> = ["3", "1", "2", "4294967295", "4294967297"]
            .iter()
            .map(|s| serde_json::Value::String(s.to_string()))
            .collect();
        let c = checksum_from_sums(&cells).unwrap();
        assert_eq!(c.count, 3);
        assert_eq!(c.sum_hi, (1u64 << 32) + 2);
        assert_eq!(c.sum_lo, (4294967295u64 << 32).wrapping_add(4294967297));
    }
}
