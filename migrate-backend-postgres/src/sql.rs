//! SQL text: quoted identifiers, literals for key bounds (COPY takes no bind parameters), range
//! predicates, and the canonical checksum computed inside Postgres.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate};
use migrate_core::checksum::canonical_text;
use migrate_core::{DataType, Error, KeyRange, Result, Schema, TableName, Value};

/// Empties the session's `search_path` until [`restore_search_path`], returning the old one:
/// catalog output (`format_type`, `pg_get_*def`) then names every object with its schema, as
/// pg_dump's does, so definitions read from one database mean the same in another whatever
/// either's search path.
pub async fn empty_search_path(client: &tokio_postgres::Client) -> Result<String> {
    Ok(client
        .query_one(
            "SELECT current_setting('search_path'), set_config('search_path', '', false)",
            &[],
        )
        .await
        .map_err(|e| crate::error::pg_error(e, "setting the search path"))?
        .get(0))
}

/// Puts back the `search_path` [`empty_search_path`] returned.
pub async fn restore_search_path(client: &tokio_postgres::Client, old: &str) -> Result<()> {
    client
        .execute("SELECT set_config('search_path', $1, false)", &[&old])
        .await
        .map_err(|e| crate::error::pg_error(e, "restoring the search path"))?;
    Ok(())
}

/// `"name"` with embedded quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn table(t: &TableName) -> String {
    match &t.schema {
        Some(s) => format!("{}.{}", ident(s), ident(&t.name)),
        None => ident(&t.name),
    }
}

/// `'text'` with embedded quotes doubled (sessions run with standard_conforming_strings on).
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A literal for a key value, typed so comparisons use the column's ordering.
pub fn literal(v: &Value) -> Result<String> {
    let unsupported = || Error::validation(format!("a {v:?} cannot bound a key range"));
    Ok(match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
            v.as_i64().unwrap_or_default().to_string()
        }
        Value::Decimal(d) => format!("{}::numeric", quote(&d.to_string())),
        Value::Float32(_) | Value::Float64(_) => {
            let x = match v {
                Value::Float32(f) => f64::from(*f),
                Value::Float64(f) => *f,
                _ => 0.0,
            };
            let text = if x.is_nan() {
                "NaN".to_string()
            } else if x.is_infinite() {
                if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
            } else {
                format!("{x:e}")
            };
            format!("{}::float8", quote(&text))
        }
        Value::Text(s) => quote(s),
        Value::Bytes(_) => format!("'\\x{}'::bytea", canonical_text(v)),
        Value::Uuid(_) => format!("{}::uuid", quote(&canonical_text(v))),
        Value::Date(d) => {
            let date = NaiveDate::from_num_days_from_ce_opt(d + 719_163).ok_or_else(unsupported)?;
            format!("{}::date", quote(&date.format("%Y-%m-%d").to_string()))
        }
        Value::Time(t) => {
            let (s, us) = (t / 1_000_000, t % 1_000_000);
            format!(
                "'{:02}:{:02}:{:02}.{us:06}'::time",
                s / 3600,
                s / 60 % 60,
                s % 60
            )
        }
        Value::Timestamp(t) => {
            let ts = DateTime::from_timestamp_micros(*t).ok_or_else(unsupported)?;
            format!(
                "{}::timestamp",
                quote(&ts.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
            )
        }
        Value::TimestampTz(t) => {
            let ts = DateTime::from_timestamp_micros(*t).ok_or_else(unsupported)?;
            format!(
                "{}::timestamptz",
                quote(&ts.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
            )
        }
        Value::Interval(i) => format!(
            "'{} mons {} days {} microseconds'::interval",
            i.months, i.days, i.micros
        ),
        Value::Json(_) | Value::Array(_) => return Err(unsupported()),
    })
}

fn tuple(cols: &[String]) -> String {
    format!("({})", cols.join(", "))
}

fn literals(vals: &[Value]) -> Result<String> {
    Ok(format!(
        "({})",
        vals.iter()
            .map(literal)
            .collect::<Result<Vec<_>>>()?
            .join(", ")
    ))
}

/// `WHERE`-clause body for a key range over `schema`'s primary key (`TRUE` for the whole
/// table). Composite keys compare as rows, which Postgres orders lexicographically and can
/// answer from the primary-key index.
pub fn range_predicate(schema: &Schema, range: &KeyRange) -> Result<String> {
    let keys: Vec<String> = schema.primary_key_names().into_iter().map(ident).collect();
    if keys.is_empty() || range.is_all() {
        return Ok("TRUE".into());
    }
    let mut parts = Vec::new();
    if let Some(l) = &range.lower {
        parts.push(format!("{} >= {}", tuple(&keys), literals(l)?));
    }
    if let Some(u) = &range.upper {
        parts.push(format!("{} < {}", tuple(&keys), literals(u)?));
    }
    Ok(parts.join(" AND "))
}

/// An `int4` SQL expression numbering the range of `ranges` each row's key falls in (0 for the
/// first), for reading a table once and sorting its rows into its chunk ranges. `ranges` must
/// be contiguous and cover the key space (a table's chunks do), else `None`. The expression is
/// a balanced tree of `CASE`s over the same row comparisons as [`range_predicate`] — the same
/// collations, and log₂(ranges) comparisons per row.
pub fn range_bucket(schema: &Schema, ranges: &[KeyRange]) -> Result<Option<String>> {
    let keys: Vec<String> = schema.primary_key_names().into_iter().map(ident).collect();
    let contiguous = ranges.first().is_some_and(|r| r.lower.is_none())
        && ranges.last().is_some_and(|r| r.upper.is_none())
        && ranges
            .windows(2)
            .all(|w| w[0].upper.is_some() && w[0].upper == w[1].lower);
    if !contiguous || (keys.is_empty() && ranges.len() > 1) {
        return Ok(None);
    }
    // Bounds between consecutive ranges: range i holds keys in [bounds[i-1], bounds[i]).
    let bounds = ranges[..ranges.len() - 1]
        .iter()
        .map(|r| r.upper.as_deref().map(literals).transpose())
        .collect::<Result<Option<Vec<String>>>>()?
        .unwrap_or_default();
    fn tree(key: &str, bounds: &[String], first: usize) -> String {
        match bounds.len() {
            0 => first.to_string(),
            n => {
                let mid = n / 2;
                format!(
                    "CASE WHEN {key} < {} THEN {} ELSE {} END",
                    bounds[mid],
                    tree(key, &bounds[..mid], first),
                    tree(key, &bounds[mid + 1..], first + mid + 1)
                )
            }
        }
    }
    Ok(Some(tree(&tuple(&keys), &bounds, 0)))
}

/// `(k1, k2) IN ((…), (…))` for a set of keys.
pub fn keys_predicate(schema: &Schema, keys: &[Vec<Value>]) -> Result<String> {
    let cols: Vec<String> = schema.primary_key_names().into_iter().map(ident).collect();
    if keys.is_empty() {
        return Ok("FALSE".into());
    }
    let list = keys
        .iter()
        .map(|k| literals(k))
        .collect::<Result<Vec<_>>>()?;
    Ok(format!("{} IN ({})", tuple(&cols), list.join(", ")))
}

/// The canonical text of one column as a SQL expression, or `None` when Postgres cannot
/// produce it exactly (floats, json, intervals, arrays, char(n)): such tables are checksummed
/// by streaming rows instead. Must match `migrate_core::checksum` byte for byte.
fn canonical_expr(col: &str, t: &DataType, native: Option<&str>) -> Option<String> {
    if native.is_some_and(|n| n.starts_with("character(")) {
        return None;
    }
    Some(match t {
        DataType::Bool => format!("CASE WHEN {col} THEN 't' ELSE 'f' END"),
        DataType::Int16 | DataType::Int32 | DataType::Int64 => format!("{col}::text"),
        DataType::Decimal { .. } => format!("trim_scale({col})::text"),
        DataType::Text { .. } => format!("{col}::text"),
        DataType::Bytes => format!("encode({col}, 'hex')"),
        DataType::Uuid => format!("{col}::text"),
        DataType::Date => format!("({col} - DATE '1970-01-01')::text"),
        DataType::Time => format!("(EXTRACT(EPOCH FROM {col}) * 1000000)::bigint::text"),
        DataType::Timestamp => format!("(EXTRACT(EPOCH FROM {col}) * 1000000)::bigint::text"),
        DataType::TimestampTz => format!("(EXTRACT(EPOCH FROM {col}) * 1000000)::bigint::text"),
        _ => return None,
    })
}

/// `SELECT count, sum_hi, sum_lo` over a range, computing the canonical checksum inside
/// Postgres; `None` when a column's canonical text cannot be produced in SQL.
pub fn checksum_query(
    t: &TableName,
    schema: &Schema,
    natives: &[Option<String>],
    range: &KeyRange,
) -> Result<Option<String>> {
    let mut row = String::new();
    for (i, c) in schema.columns.iter().enumerate() {
        let col = ident(&c.name);
        let Some(text) = canonical_expr(
            &col,
            &c.data_type,
            natives.get(i).and_then(|n| n.as_deref()),
        ) else {
            return Ok(None);
        };
        if !row.is_empty() {
            row.push_str(" || ");
        }
        let _ = write!(
            row,
            "CASE WHEN {col} IS NULL THEN 'N' ELSE length({text})::text || ':' || {text} END"
        );
    }
    if row.is_empty() {
        row.push_str("''");
    }
    let half = |from: u8| {
        format!("COALESCE(SUM(('x' || substr(h, {from}, 16))::bit(64)::bigint::numeric), 0)::text")
    };
    Ok(Some(format!(
        "SELECT count(*)::bigint, {}, {} FROM (SELECT md5({row}) AS h FROM {} WHERE {}) s",
        half(1),
        half(17),
        table(t),
        range_predicate(schema, range)?
    )))
}

/// Folds a SQL sum of signed 64-bit halves (any size) into the wrapping u64 sum.
pub fn wrap_sum(text: &str) -> Result<u64> {
    let v: i128 = text
        .parse()
        .map_err(|_| Error::fatal(format!("unexpected checksum sum {text:?} from Postgres")))?;
    Ok(v.rem_euclid(1i128 << 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrate_core::Column;

    #[test]
    fn quoting_and_literals() {
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(literal(&Value::Int64(-5)).unwrap(), "-5");
        assert_eq!(
            literal(&Value::TimestampTz(0)).unwrap(),
            "'1970-01-01 00:00:00.000000+00'::timestamptz"
        );
        assert_eq!(literal(&Value::Date(-1)).unwrap(), "'1969-12-31'::date");
        assert_eq!(
            literal(&Value::Time(3_723_000_004)).unwrap(),
            "'01:02:03.000004'::time"
        );
        assert!(literal(&Value::Json("{}".into())).is_err());
    }

    #[test]
    fn range_buckets_are_a_balanced_tree_of_the_range_comparisons() {
        let s = Schema::new(vec![Column::new("id", DataType::Int64)], &["id"]).unwrap();
        let r = |l: Option<i64>, u: Option<i64>| {
            KeyRange::between(
                l.map(|v| vec![Value::Int64(v)]),
                u.map(|v| vec![Value::Int64(v)]),
            )
        };
        let three = [r(None, Some(10)), r(Some(10), Some(20)), r(Some(20), None)];
        assert_eq!(
            range_bucket(&s, &three).unwrap().unwrap(),
            "CASE WHEN (\"id\") < (20) THEN CASE WHEN (\"id\") < (10) THEN 0 ELSE 1 END ELSE 2 END"
        );
        assert_eq!(range_bucket(&s, &[KeyRange::all()]).unwrap().unwrap(), "0");
        // A gap or an overlap is not a partition of the key space.
        assert!(range_bucket(&s, &[r(None, Some(10)), r(Some(11), None)])
            .unwrap()
            .is_none());
        assert!(range_bucket(&s, &[r(Some(0), Some(10)), r(Some(10), None)])
            .unwrap()
            .is_none());
        assert!(range_bucket(&s, &[]).unwrap().is_none());
    }

    #[test]
    fn composite_ranges_compare_as_rows() {
        let s = Schema::new(
            vec![
                Column::new("a", DataType::Int64),
                Column::new("b", DataType::text()),
            ],
            &["a", "b"],
        )
        .unwrap();
        let r = KeyRange::between(Some(vec![Value::Int64(1), Value::Text("x".into())]), None);
        assert_eq!(
            range_predicate(&s, &r).unwrap(),
            "(\"a\", \"b\") >= (1, 'x')"
        );
        assert_eq!(range_predicate(&s, &KeyRange::all()).unwrap(), "TRUE");
    }

    #[test]
    fn sums_wrap_like_the_core() {
        assert_eq!(wrap_sum("-1").unwrap(), u64::MAX);
        assert_eq!(wrap_sum("18446744073709551617").unwrap(), 1);
    }
}
