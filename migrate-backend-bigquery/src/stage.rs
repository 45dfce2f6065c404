//! A chunk on its way into BigQuery: its rows as newline-delimited JSON for a staging table,
//! and the one `MERGE` that replaces the chunk's key range in the target with them (see the
//! crate's README for why this is exactly once).
//!
//! Staging columns carry values in forms every BigQuery load parses alike (the emulator's
//! included), converted back to the target's types inside the `MERGE`:
//!
//! | target | staged as | converted by |
//! | --- | --- | --- |
//! | `INT64` | `INT64`, as a JSON string (exact beyond 2⁵³) | — |
//! | `NUMERIC(p, s)` | `STRING`, the exact decimal | `SAFE_CAST(… AS NUMERIC(p, s))` (the value was checked to fit: exact) |
//! | `BIGNUMERIC` | `STRING`, the exact decimal | `PARSE_BIGNUMERIC` |
//! | `FLOAT64` | `FLOAT64` (`"NaN"`, `"Infinity"`, `"-Infinity"` as strings) | — |
//! | `STRING`, `BOOL` | the same | — |
//! | `BYTES` | `STRING`, lowercase hex | `FROM_HEX` |
//! | `DATE` | `INT64` days since 1970-01-01 | `DATE_FROM_UNIX_DATE` |
//! | `TIME` | `INT64` microseconds since midnight | `TIME_ADD(TIME '00:00:00', …)` |
//! | `DATETIME`, `TIMESTAMP` | `INT64` microseconds since the epoch | `TIMESTAMP_MICROS` (and `DATETIME(…)`) |
//! | `JSON` | `STRING`, compact with sorted keys | `PARSE_JSON` |
//! | `INTERVAL` | `STRING`, `months days microseconds` | `INTERVAL … MONTH + INTERVAL … DAY + INTERVAL … MICROSECOND` |
//! | `REPEATED` | `REPEATED` of the element's staged type | element by element, order kept |
//!
//! (An interval travels as its three integer parts, not as BigQuery's `Y-M D H:M:S` text: the
//! parts are exactly Postgres', each part keeps its own sign, and the emulator parses no
//! interval text.)

use std::fmt::Write as _;

use migrate_core::{Column, Error, KeyRange, Result, TableName, Value};
use serde_json::{json, Value as Json};

use crate::sql::{ident, range_predicate};
use crate::types::{check_value, BqColumn, BqType};

/// One column of a chunk's staging table.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedColumn {
    /// The target column's name (the staging column has the same).
    pub name: String,
    /// Its type in the target.
    pub bq: BqColumn,
}

impl StagedColumn {
    /// The staging table's field for this column (`tables.insert` / load schema form).
    pub fn field(&self) -> Json {
        let ty = match self.bq.ty {
            BqType::Int64 | BqType::Date | BqType::Time | BqType::DateTime | BqType::Timestamp => {
                "INT64"
            }
            BqType::Float64 => "FLOAT64",
            BqType::Bool => "BOOL",
            _ => "STRING",
        };
        let mode = if self.bq.repeated {
            "REPEATED"
        } else {
            "NULLABLE"
        };
        json!({"name": self.name, "type": ty, "mode": mode})
    }

    /// The expression turning the staged value `v` (SQL) back into the target's type.
    fn convert(&self, v: &str) -> String {
        match self.bq.ty {
            // Every value was checked to fit these parameters before it was staged, so the
            // cast is exact and SAFE_ never turns a value into NULL. (Not PARSE_NUMERIC, which
            // the emulator runs row by row: 0.5 s for 50,000 rows against 0.01 s; not a plain
            // CAST, whose parameters the emulator drops — to three decimals — when a DATETIME
            // conversion is in the same statement.)
            BqType::Numeric { .. } => format!("SAFE_CAST({v} AS {})", self.bq.ty.ddl()),
            BqType::BigNumeric(_) => format!("PARSE_BIGNUMERIC({v})"),
            BqType::Bytes => format!("FROM_HEX({v})"),
            BqType::Date => format!("DATE_FROM_UNIX_DATE({v})"),
            BqType::Time => format!("TIME_ADD(TIME '00:00:00', INTERVAL {v} MICROSECOND)"),
            BqType::DateTime => format!("DATETIME(TIMESTAMP_MICROS({v}))"),
            BqType::Timestamp => format!("TIMESTAMP_MICROS({v})"),
            BqType::Json => format!("PARSE_JSON({v})"),
            BqType::Interval => {
                let part = |i: usize| format!("CAST(SPLIT({v}, ' ')[OFFSET({i})] AS INT64)");
                format!(
                    "(INTERVAL {} MONTH + INTERVAL {} DAY + INTERVAL {} MICROSECOND)",
                    part(0),
                    part(1),
                    part(2)
                )
            }
            _ => v.to_string(),
        }
    }

    /// `S.<column>` converted, as the `MERGE`'s source selects it.
    fn select(&self, alias: &str) -> String {
        let col = format!("{alias}.{}", ident(&self.name));
        let same = self.convert("e") == "e";
        let expr = match (self.bq.repeated, same) {
            (false, _) => self.convert(&col),
            (true, true) => col,
            (true, false) => format!(
                "ARRAY(SELECT {} FROM UNNEST({col}) AS e WITH OFFSET AS o ORDER BY o)",
                self.convert("e")
            ),
        };
        format!("{expr} AS {}", ident(&self.name))
    }
}

/// The staging columns for `table`'s `columns` with their BigQuery types.
pub fn staged_columns(columns: &[Column], bq: &[BqColumn]) -> Vec<StagedColumn> {
    columns
        .iter()
        .zip(bq)
        .map(|(c, b)| StagedColumn {
            name: c.name.clone(),
            bq: *b,
        })
        .collect()
}

/// Appends `row` (row `index` of the chunk) as one line of newline-delimited JSON for the
/// staging table, after checking every value fits (see [`check_value`]).
pub fn append_row(
    table: &TableName,
    columns: &[Column],
    staged: &[StagedColumn],
    index: usize,
    row: &[Value],
    out: &mut String,
) -> Result<()> {
    let mut obj = serde_json::Map::with_capacity(staged.len());
    for ((c, s), v) in columns.iter().zip(staged).zip(row) {
        check_value(table, c, s.bq, index, v)?;
        let staged = match v {
            Value::Array(items) => Json::Array(
                items
                    .iter()
                    .map(|e| scalar(s.bq.ty, e))
                    .collect::<Result<_>>()?,
            ),
            v => scalar(s.bq.ty, v)?,
        };
        obj.insert(s.name.clone(), staged);
    }
    let _ = writeln!(out, "{}", Json::Object(obj));
    Ok(())
}

/// One value in its staged JSON form.
fn scalar(ty: BqType, v: &Value) -> Result<Json> {
    Ok(match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int16(i) => json!(i.to_string()),
        Value::Int32(i) | Value::Date(i) => json!(i.to_string()),
        Value::Int64(i) | Value::Time(i) | Value::Timestamp(i) | Value::TimestampTz(i) => {
            json!(i.to_string())
        }
        Value::Float32(x) => float(f64::from(*x)),
        Value::Float64(x) => float(*x),
        Value::Decimal(d) => {
            let mut s = String::new();
            d.write_normalized(&mut s);
            json!(s)
        }
        Value::Text(s) => json!(s),
        Value::Bytes(b) => json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        Value::Uuid(_) => json!(migrate_core::checksum::canonical_text(v)),
        Value::Json(doc) => {
            serde_json::from_str::<Json>(doc)
                .map_err(|e| Error::validation(format!("a JSON value that does not parse: {e}")))?;
            // Compact with sorted keys: the canonical form the checksum uses.
            json!(migrate_core::checksum::canonical_text(v))
        }
        Value::Interval(iv) => json!(format!("{} {} {}", iv.months, iv.days, iv.micros)),
        Value::Array(_) => {
            return Err(Error::unsupported(format!(
                "a nested array cannot be staged for a {} column",
                ty.name()
            )))
        }
    })
}

fn float(x: f64) -> Json {
    if x.is_nan() {
        json!("NaN")
    } else if x.is_infinite() {
        json!(if x > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(x)
    }
}

/// The one statement that replaces `range` (over the key columns `keys`) in `target` with the
/// rows of `staging` (both SQL table references): rows of the target in the range that the
/// staging table lacks are deleted, a target row whose key a staged row has takes that row's
/// values, every other staged row is inserted — atomically, so after it the range holds
/// exactly the staged rows, whatever it held before.
///
/// Rows are matched by key, not `ON FALSE`: the join is then an equi-join (BigQuery and the
/// emulator hash it; `ON FALSE` with both `NOT MATCHED` clauses is a cross product there — 27 s
/// for 50,000 rows into 150,000), and a staged row the range predicate would not cover (a text
/// key BigQuery orders by code point where the source's collation did not) still replaces its
/// earlier copy instead of landing beside it. Without keys (a whole-table chunk) nothing can be
/// matched, and every target row goes.
pub fn merge_sql(
    target: &str,
    staging: &str,
    staged: &[StagedColumn],
    keys: &[&str],
    range: &KeyRange,
) -> Result<String> {
    let names: Vec<String> = staged.iter().map(|s| ident(&s.name)).collect();
    let selects: Vec<String> = staged.iter().map(|s| s.select("S0")).collect();
    let values: Vec<String> = names.iter().map(|n| format!("S.{n}")).collect();
    let (on, matched) = match keys.is_empty() {
        true => ("FALSE".to_string(), String::new()),
        false => (key_match(keys), update_clause(staged, keys)),
    };
    Ok(format!(
        "MERGE {target} T USING (SELECT {} FROM {staging} S0) S ON {on}{matched} \
         WHEN NOT MATCHED BY SOURCE AND {} THEN DELETE \
         WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
        selects.join(", "),
        range_predicate("T", keys, range)?,
        names.join(", "),
        values.join(", ")
    ))
}

/// `T.k = S.k AND …` over the key columns.
fn key_match(keys: &[&str]) -> String {
    let on: Vec<String> = keys
        .iter()
        .map(|k| format!("T.{0} = S.{0}", ident(k)))
        .collect();
    on.join(" AND ")
}

/// ` WHEN MATCHED THEN UPDATE SET` every column but the keys (empty when the keys are all the
/// columns: a matched row is then already equal).
fn update_clause(staged: &[StagedColumn], keys: &[&str]) -> String {
    let sets: Vec<String> = staged
        .iter()
        .filter(|s| !keys.contains(&s.name.as_str()))
        .map(|s| format!("{0} = S.{0}", ident(&s.name)))
        .collect();
    match sets.is_empty() {
        true => String::new(),
        false => format!(" WHEN MATCHED THEN UPDATE SET {}", sets.join(", ")),
    }
}

/// The statement that upserts the rows of `staging` into `target` by the key columns `keys`:
/// a staged row whose key the target holds updates that row, any other is inserted; rows only
/// the target holds stay.
pub fn upsert_sql(
    target: &str,
    staging: &str,
    staged: &[StagedColumn],
    keys: &[&str],
) -> Result<String> {
    if keys.is_empty() {
        return Err(Error::config("an upsert needs a primary key"));
    }
    let names: Vec<String> = staged.iter().map(|s| ident(&s.name)).collect();
    let selects: Vec<String> = staged.iter().map(|s| s.select("S0")).collect();
    let matched = update_clause(staged, keys);
    let values: Vec<String> = names.iter().map(|n| format!("S.{n}")).collect();
    Ok(format!(
        "MERGE {target} T USING (SELECT {} FROM {staging} S0) S ON {}{matched} \
         WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
        selects.join(", "),
        key_match(keys),
        names.join(", "),
        values.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::column_type;
    use migrate_core::DataType;

    fn setup(cols: &[Column]) -> (TableName, Vec<StagedColumn>) {
        let t = TableName::parse("public.t");
        let bq: Vec<BqColumn> = cols.iter().map(|c| column_type(&t, c).unwrap()).collect();
        let staged = staged_columns(cols, &bq);
        (t, staged)
    }

    #[test]
    fn rows_are_staged_in_forms_every_load_parses_alike() {
        let cols = vec![
            Column::new("id", DataType::Int64),
            Column::new("b", DataType::Bytes),
            Column::new("j", DataType::Json),
            Column::new("f", DataType::Float64),
            Column::new(
                "n",
                DataType::Decimal {
                    precision: None,
                    scale: None,
                },
            ),
            Column::new("tags", DataType::Array(Box::new(DataType::Date))),
        ];
        let (t, staged) = setup(&cols);
        let mut out = String::new();
        let row = vec![
            Value::Int64(9_007_199_254_740_993),
            Value::Bytes(vec![0xde, 0xad]),
            Value::Json(r#"{ "b": 1, "a": [true] }"#.into()),
            Value::Float64(f64::NAN),
            Value::Decimal("-1.50".parse().unwrap()),
            Value::Array(vec![Value::Date(0), Value::Date(-1)]),
        ];
        append_row(&t, &cols, &staged, 0, &row, &mut out).unwrap();
        let line: Json = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(
            line,
            json!({"id": "9007199254740993", "b": "dead", "j": "{\"a\":[true],\"b\":1}",
                   "f": "NaN", "n": "-1.5", "tags": ["0", "-1"]})
        );
        assert!(out.ends_with('\n') && out.matches('\n').count() == 1);
        assert_eq!(
            staged[5].field(),
            json!({"name": "tags", "type": "INT64", "mode": "REPEATED"})
        );
        // A value BigQuery would lose is refused, naming the row.
        let mut bad = row.clone();
        bad[5] = Value::Array(vec![Value::Null]);
        let e = append_row(&t, &cols, &staged, 4, &bad, &mut out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 4") && e.contains("\"tags\""), "{e}");
        // An interval travels as its three parts, each with its sign; one beyond BigQuery's
        // range is refused, naming the column and the part.
        let iv = vec![Column::new("span", DataType::Interval)];
        let (_, ivs) = setup(&iv);
        let span = |months, days, micros| {
            vec![Value::Interval(migrate_core::value::Interval {
                months,
                days,
                micros,
            })]
        };
        let mut out = String::new();
        append_row(&t, &iv, &ivs, 0, &span(-14, 3, -5), &mut out).unwrap();
        assert_eq!(out, "{\"span\":\"-14 3 -5\"}\n");
        let e = append_row(&t, &iv, &ivs, 2, &span(0, 0, i64::MAX), &mut out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"span\"") && e.contains("microseconds"), "{e}");
        assert_eq!(
            ivs[0].select("S0"),
            "(INTERVAL CAST(SPLIT(S0.`span`, ' ')[OFFSET(0)] AS INT64) MONTH + \
             INTERVAL CAST(SPLIT(S0.`span`, ' ')[OFFSET(1)] AS INT64) DAY + \
             INTERVAL CAST(SPLIT(S0.`span`, ' ')[OFFSET(2)] AS INT64) MICROSECOND) AS `span`"
        );
    }

    #[test]
    fn the_merge_replaces_exactly_the_chunks_range() {
        let cols = vec![
            Column::new("id", DataType::Int64),
            Column::new("at", DataType::TimestampTz),
            Column::new("days", DataType::Array(Box::new(DataType::Date))),
        ];
        let (_, staged) = setup(&cols);
        let range = KeyRange::between(Some(vec![Value::Int64(10)]), Some(vec![Value::Int64(20)]));
        let sql = merge_sql("`p`.`d`.`t`", "`p`.`d`.`stg`", &staged, &["id"], &range).unwrap();
        assert_eq!(
            sql,
            "MERGE `p`.`d`.`t` T USING (SELECT S0.`id` AS `id`, TIMESTAMP_MICROS(S0.`at`) AS `at`, \
             ARRAY(SELECT DATE_FROM_UNIX_DATE(e) FROM UNNEST(S0.`days`) AS e WITH OFFSET AS o ORDER BY o) AS `days` \
             FROM `p`.`d`.`stg` S0) S ON T.`id` = S.`id` \
             WHEN MATCHED THEN UPDATE SET `at` = S.`at`, `days` = S.`days` \
             WHEN NOT MATCHED BY SOURCE AND T.`id` >= 10 AND T.`id` < 20 THEN DELETE \
             WHEN NOT MATCHED THEN INSERT (`id`, `at`, `days`) VALUES (S.`id`, S.`at`, S.`days`)"
        );
    }
}
