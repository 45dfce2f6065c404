//! Snowflake SQL: quoting, literals, key-range predicates, the insert of a chunk's rows bound
//! as a single JSON text — `INSERT … SELECT <conversions> FROM TABLE(FLATTEN(PARSE_JSON(?)))`,
//! one round trip and one statement however many rows the text holds (Snowflake's array
//! binding sends a row per value list; this sends one text) — and the `MERGE` that moves staged
//! rows into their table.
//!
//! Each row travels as a JSON array; each value in a form Snowflake converts exactly:
//!
//! | migrate | in the JSON | converted by |
//! | --- | --- | --- |
//! | integers, decimals | the exact decimal as a string | `::VARCHAR::NUMBER(p, s)` |
//! | floats | the shortest round-trip decimal (`NaN`, `inf`, `-inf`) as a string | `::VARCHAR::FLOAT` |
//! | text, uuid | string | `::VARCHAR` |
//! | bytes | lowercase hex | `TO_BINARY(…, 'HEX')` |
//! | bool | `true` / `false` | `::BOOLEAN` |
//! | date, time, timestamp | ISO text (microseconds) | `::VARCHAR::DATE` / `TIME(6)` / `TIMESTAMP_NTZ(6)` |
//! | timestamptz | ISO text with `+00:00` | `::VARCHAR::TIMESTAMP_LTZ(6)` |
//! | json, arrays | the document's JSON text, as a string | `PARSE_JSON(…::VARCHAR)` (a JSON `null` document stays apart from SQL NULL) |
//!
//! SQL NULL is JSON `null`, which every conversion turns into NULL.

use std::fmt::Write as _;

use migrate_core::{Column, DataType, Error, KeyRange, Result, TableName, Value};
use serde_json::{json, Value as Json};

use crate::types::column_type;

/// `name` as a quoted identifier (case kept, `"` doubled).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Snowflake's name for a table or column migrate names `name`: a plain lower-case name (what
/// Postgres makes of an unquoted identifier) becomes upper-case (what Snowflake makes of one),
/// so `SELECT id FROM orders` works on both sides; any other name is kept as it is, quoted.
pub fn sf_name(name: &str) -> String {
    match plain(name, |c| c.is_ascii_lowercase()) {
        true => name.to_ascii_uppercase(),
        false => name.to_string(),
    }
}

/// migrate's name for a Snowflake name — the inverse of [`sf_name`]: a plain upper-case name
/// becomes lower-case.
pub fn migrate_name(name: &str) -> String {
    match plain(name, |c| c.is_ascii_uppercase()) {
        true => name.to_ascii_lowercase(),
        false => name.to_string(),
    }
}

/// A name an unquoted identifier could spell in the letter case `letter` accepts.
fn plain(name: &str, letter: impl Fn(char) -> bool) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| letter(c) || c == '_')
        && chars.all(|c| letter(c) || c.is_ascii_digit() || c == '_' || c == '$')
}

/// [`sf_name`] of `name`, quoted: how a migrate column or table is written in SQL.
pub fn column(name: &str) -> String {
    ident(&sf_name(name))
}

/// `'text'` with `'` and `\` escaped (Snowflake reads backslash escapes in string literals).
pub fn string_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// A key value as a Snowflake literal (range predicates, key lookups).
pub fn literal(v: &Value) -> Result<String> {
    Ok(match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => (if *b { "TRUE" } else { "FALSE" }).into(),
        Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
            migrate_core::checksum::canonical_text(v)
        }
        Value::Decimal(d) if d.is_finite() => {
            let mut s = String::new();
            d.write_normalized(&mut s);
            s
        }
        Value::Text(s) => string_literal(s),
        Value::Uuid(_) => string_literal(&migrate_core::checksum::canonical_text(v)),
        Value::Bytes(b) => format!("TO_BINARY('{}', 'HEX')", hex(b)),
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) | Value::TimestampTz(_) => {
            let (text, ty) = temporal(v).ok_or_else(|| Error::validation("a date out of range"))?;
            format!("{}::{ty}", string_literal(&text))
        }
        other => {
            return Err(Error::unsupported(format!(
                "no Snowflake key literal for {other:?}"
            )))
        }
    })
}

/// `WHERE` body for `range` over the key columns `keys`.
pub fn range_predicate(keys: &[&str], range: &KeyRange) -> Result<String> {
    let cols: Vec<String> = keys.iter().map(|k| column(k)).collect();
    range.sql_predicate(&cols, literal)
}

/// `table` (schema and name) as a quoted, schema-qualified name.
pub fn table_name(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        let _ = write!(s, "{byte:02x}");
    }
    s
}

/// A temporal value's ISO text and the Snowflake type that reads it exactly.
fn temporal(v: &Value) -> Option<(String, &'static str)> {
    let epoch = chrono::DateTime::UNIX_EPOCH.naive_utc();
    Some(match v {
        Value::Date(d) => {
            let day = epoch
                .date()
                .checked_add_signed(chrono::Duration::days((*d).into()))?;
            (day.format("%Y-%m-%d").to_string(), "DATE")
        }
        // Postgres allows 24:00:00; Snowflake's TIME stops before it (refused, not wrapped).
        Value::Time(us) if !(0..86_400_000_000).contains(us) => return None,
        Value::Time(us) => {
            let t = chrono::NaiveTime::MIN + chrono::Duration::microseconds(*us);
            (t.format("%H:%M:%S%.6f").to_string(), "TIME(6)")
        }
        Value::Timestamp(us) => {
            let t = epoch.checked_add_signed(chrono::Duration::microseconds(*us))?;
            (
                t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
                "TIMESTAMP_NTZ(6)",
            )
        }
        Value::TimestampTz(us) => {
            let t = epoch.checked_add_signed(chrono::Duration::microseconds(*us))?;
            (
                t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(),
                "TIMESTAMP_LTZ(6)",
            )
        }
        _ => return None,
    })
}

/// A value in its JSON form for the chunk text (see the module docs); SQL NULL is `null`.
fn json_value(v: &Value) -> Result<Json> {
    Ok(match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int16(_) | Value::Int32(_) | Value::Int64(_) | Value::Decimal(_) => {
            json!(migrate_core::checksum::canonical_text(v))
        }
        Value::Float32(x) => json!(float(f64::from(*x))),
        Value::Float64(x) => json!(float(*x)),
        Value::Text(s) => json!(s),
        Value::Uuid(_) => json!(migrate_core::checksum::canonical_text(v)),
        Value::Bytes(b) => json!(hex(b)),
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) | Value::TimestampTz(_) => {
            let (text, _) =
                temporal(v).ok_or_else(|| Error::validation("a date or time out of range"))?;
            json!(text)
        }
        Value::Json(doc) => json!(doc),
        Value::Array(items) => {
            let items: Vec<Json> = items.iter().map(element).collect::<Result<_>>()?;
            json!(Json::Array(items).to_string())
        }
        Value::Interval(_) => {
            return Err(Error::unsupported("an interval has no Snowflake column"))
        }
    })
}

/// An array element as the JSON value an `ARRAY` holds.
fn element(v: &Value) -> Result<Json> {
    Ok(match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int16(i) => json!(i),
        Value::Int32(i) => json!(i),
        Value::Int64(i) => json!(i),
        Value::Json(doc) => serde_json::from_str(doc)
            .map_err(|e| Error::validation(format!("a JSON value that does not parse: {e}")))?,
        // Exact decimals, floats, text, times: their canonical text (a JSON number would be
        // read as a double).
        other => json!(migrate_core::checksum::canonical_text(other)),
    })
}

fn float(x: f64) -> String {
    match x {
        x if x.is_nan() => "NaN".into(),
        x if x.is_infinite() && x > 0.0 => "inf".into(),
        x if x.is_infinite() => "-inf".into(),
        x => format!("{x:?}"),
    }
}

/// The largest JSON text one insert binds: Snowflake holds a bound text as a `VARCHAR`
/// (16 MB at most), and its `PARSE_JSON` result as a `VARIANT` (16 MB too); half leaves room
/// for the escaping a document's own JSON text needs.
pub const MAX_JSON_BYTES: usize = 8 << 20;

/// A chunk's rows as JSON texts (each a JSON array of rows, each row a JSON array of its
/// values), cut into parts of at most [`MAX_JSON_BYTES`] — each the one bound parameter of an
/// [`insert_from_json`].
#[derive(Debug)]
pub struct JsonParts<'a> {
    table: &'a TableName,
    columns: &'a [Column],
    parts: Vec<String>,
    current: String,
    rows: u64,
    limit: usize,
}

impl<'a> JsonParts<'a> {
    /// No rows yet, of `columns` of `table`, cut at [`MAX_JSON_BYTES`].
    pub fn new(table: &'a TableName, columns: &'a [Column]) -> Self {
        JsonParts::with_limit(table, columns, MAX_JSON_BYTES)
    }

    /// No rows yet, cut at `limit` bytes (at most [`MAX_JSON_BYTES`]; a row longer than
    /// `limit` is a part of its own).
    pub fn with_limit(table: &'a TableName, columns: &'a [Column], limit: usize) -> Self {
        JsonParts {
            table,
            columns,
            parts: Vec::new(),
            current: String::new(),
            rows: 0,
            limit: limit.min(MAX_JSON_BYTES),
        }
    }

    /// Adds one row; an error names the table, the column and the row's place in the chunk.
    pub fn push(&mut self, row: &[Value]) -> Result<()> {
        let values: Vec<Json> = row
            .iter()
            .zip(self.columns)
            .map(|(v, c)| {
                json_value(v).map_err(|e| {
                    Error::validation(format!(
                        "table {}, column {:?}, row {} of the chunk: {}",
                        self.table,
                        c.name,
                        self.rows,
                        e.message()
                    ))
                    .table(self.table)
                })
            })
            .collect::<Result<_>>()?;
        let text = Json::Array(values).to_string();
        if !self.current.is_empty() && self.current.len() + text.len() + 2 > self.limit {
            self.cut();
        }
        self.current
            .push(if self.current.is_empty() { '[' } else { ',' });
        self.current.push_str(&text);
        self.rows += 1;
        Ok(())
    }

    fn cut(&mut self) {
        if !self.current.is_empty() {
            self.current.push(']');
            self.parts.push(std::mem::take(&mut self.current));
        }
    }

    /// Rows added.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The texts, in order (none for no rows).
    pub fn finish(mut self) -> Vec<String> {
        self.cut();
        self.parts
    }
}

/// The JSON text of `rows` (each a JSON array of its values) — the one bound parameter of
/// [`insert_from_json`], for rows that fit one text.
pub fn chunk_json(table: &TableName, columns: &[Column], rows: &[Vec<Value>]) -> Result<String> {
    let mut parts = JsonParts::new(table, columns);
    for row in rows {
        parts.push(row)?;
    }
    let mut texts = parts.finish();
    match texts.len() {
        0 => Ok("[]".into()),
        1 => Ok(texts.remove(0)),
        n => Err(Error::validation(format!(
            "table {table}: the chunk's JSON text needs {n} parts of {MAX_JSON_BYTES} bytes"
        ))),
    }
}

/// `SELECT <each value converted> AS <column>, … FROM <the bound JSON text's rows>`: the rows
/// of one [`JsonParts`] text, as a query (its one `?` is the text).
pub fn json_rows(table: &TableName, columns: &[Column]) -> Result<String> {
    // TABLE(FLATTEN(…)), not LATERAL FLATTEN: the emulator runs the lateral form in time
    // quadratic in the rows (7 s for 20,000 against 0.08 s).
    json_rows_from(table, columns, "value", "TABLE(FLATTEN(PARSE_JSON(?)))")
}

/// `INSERT INTO target (columns) SELECT … FROM raw`: rows loaded from staged files into `raw`,
/// a table of one `VARIANT` column `V` holding each row's JSON array, converted as
/// [`json_rows`] converts a bound text's.
pub fn insert_from_variants(
    table: &TableName,
    target: &str,
    columns: &[Column],
    raw: &str,
) -> Result<String> {
    Ok(format!(
        "INSERT INTO {target} ({}) {}",
        column_list(columns),
        json_rows_from(table, columns, "V", raw)?
    ))
}

/// The conversions of [`json_rows`], of rows `row` (a JSON array) read `FROM from`.
fn json_rows_from(table: &TableName, columns: &[Column], row: &str, from: &str) -> Result<String> {
    let mut selects = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        let ty = column_type(table, c)?;
        let v = format!("{row}[{i}]");
        let converted = match &c.data_type {
            DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Decimal { .. } => {
                format!("{v}::VARCHAR::{ty}")
            }
            DataType::Float32 | DataType::Float64 => format!("{v}::VARCHAR::FLOAT"),
            DataType::Bytes => format!("TO_BINARY({v}::VARCHAR, 'HEX')"),
            DataType::Bool => format!("{v}::BOOLEAN"),
            DataType::Date | DataType::Time | DataType::Timestamp | DataType::TimestampTz => {
                format!("{v}::VARCHAR::{ty}")
            }
            DataType::Json => format!("PARSE_JSON({v}::VARCHAR)"),
            DataType::Array(_) => format!("PARSE_JSON({v}::VARCHAR)::ARRAY"),
            _ => format!("{v}::VARCHAR"),
        };
        selects.push(format!("{converted} AS {}", column(&c.name)));
    }
    Ok(format!("SELECT {} FROM {from}", selects.join(", ")))
}

fn column_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| column(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT INTO target (columns) <json_rows>`.
pub fn insert_from_json(table: &TableName, target: &str, columns: &[Column]) -> Result<String> {
    Ok(format!(
        "INSERT INTO {target} ({}) {}",
        column_list(columns),
        json_rows(table, columns)?
    ))
}

/// One `MERGE` that leaves `target` holding the rows of table `staged` (same columns): each
/// inserted, or replacing the row with its key (`keys`, positions in `columns`); with `clear`
/// (a key-range predicate), every other row in that range deleted too — so a chunk lands by one
/// statement, atomic without a transaction held open across requests. The staged rows must have
/// distinct keys (a primary key's). It answers the rows inserted, updated and deleted.
pub fn merge_sql(
    target: &str,
    staged: &str,
    columns: &[Column],
    keys: &[usize],
    clear: Option<&str>,
) -> String {
    let col = |i: usize| column(&columns[i].name);
    let on = |a: &str, b: &str| {
        keys.iter()
            .map(|k| format!("{a}.{0} = {b}.{0}", col(*k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let source = match clear {
        None => format!("SELECT {} FROM {staged}", column_list(columns)),
        Some(range) => {
            // The new rows, and the keys already in the range that they do not have (marked
            // to be dropped).
            let key_list = keys.iter().map(|k| col(*k)).collect::<Vec<_>>().join(", ");
            let picks: Vec<String> = (0..columns.len())
                .map(|i| match keys.contains(&i) {
                    true => format!("COALESCE(n.{0}, o.{0}) AS {0}", col(i)),
                    false => format!("n.{0} AS {0}", col(i)),
                })
                .collect();
            format!(
                "SELECT {}, n.{} IS NULL AS \"_MIGRATE_DROP\" FROM {staged} n \
                 FULL OUTER JOIN (SELECT {key_list} FROM {target} WHERE {range}) o ON {}",
                picks.join(", "),
                col(keys[0]),
                on("n", "o")
            )
        }
    };
    let mut out = format!(
        "MERGE INTO {target} t USING ({source}) s ON {}",
        on("t", "s")
    );
    if clear.is_some() {
        out.push_str(" WHEN MATCHED AND s.\"_MIGRATE_DROP\" THEN DELETE");
    }
    let updates: Vec<String> = (0..columns.len())
        .filter(|i| !keys.contains(i))
        .map(|i| format!("{0} = s.{0}", col(i)))
        .collect();
    // Every column in the key: a matched row is already what the staged row says, but it
    // must still be counted as written (a no-op update) for the count check to hold.
    let updates = match updates.is_empty() {
        true => vec![format!("{0} = s.{0}", col(keys[0]))],
        false => updates,
    };
    out.push_str(&format!(
        " WHEN MATCHED THEN UPDATE SET {}",
        updates.join(", ")
    ));
    let values: Vec<String> = (0..columns.len())
        .map(|i| format!("s.{}", col(i)))
        .collect();
    out.push_str(&format!(
        " WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
        column_list(columns),
        values.join(", ")
    ));
    out
}

/// `INSERT OVERWRITE INTO target (columns) SELECT columns FROM staged`: a keyless table's rows
/// replaced by the staged ones, in one statement.
pub fn overwrite_sql(target: &str, staged: &str, columns: &[Column]) -> String {
    let list = column_list(columns);
    format!("INSERT OVERWRITE INTO {target} ({list}) SELECT {list} FROM {staged}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_quote_and_ranges_write_out() {
        assert_eq!(ident("Order \"Lines\""), "\"Order \"\"Lines\"\"\"");
        assert_eq!(string_literal("it's a\\b"), "'it''s a\\\\b'");
        assert_eq!(literal(&Value::Date(19_724)).unwrap(), "'2024-01-02'::DATE");
        assert_eq!(
            literal(&Value::TimestampTz(1_704_164_645_123_456)).unwrap(),
            "'2024-01-02T03:04:05.123456+00:00'::TIMESTAMP_LTZ(6)"
        );
        let r = KeyRange::between(
            Some(vec![Value::Int64(1), Value::Text("b".into())]),
            Some(vec![Value::Int64(2), Value::Text("a".into())]),
        );
        assert_eq!(
            range_predicate(&["id", "k"], &r).unwrap(),
            "(\"ID\" > 1 OR (\"ID\" = 1 AND \"K\" >= 'b')) AND (\"ID\" < 2 OR (\"ID\" = 2 AND \"K\" < 'a'))"
        );
        assert_eq!(range_predicate(&["id"], &KeyRange::all()).unwrap(), "TRUE");
        // Plain lower-case names meet Snowflake's unquoted upper case; others keep their case.
        for (pg, sf) in [
            ("order_id", "ORDER_ID"),
            ("Mixed", "Mixed"),
            ("a b", "a b"),
            ("_x$1", "_X$1"),
            ("1a", "1a"),
        ] {
            assert_eq!(sf_name(pg), sf);
            assert_eq!(migrate_name(sf), pg);
        }
        assert_eq!(migrate_name("ORDERS"), "orders");
    }

    #[test]
    fn a_chunk_is_one_json_text_and_one_statement() {
        let t = TableName::parse("public.t");
        let cols = vec![
            Column::new("id", DataType::Int64),
            Column::new("f", DataType::Float64),
            Column::new("doc", DataType::Json),
            Column::new("tags", DataType::Array(Box::new(DataType::Int32))),
            Column::new("at", DataType::TimestampTz),
        ];
        let rows = vec![
            vec![
                Value::Int64(9_007_199_254_740_993),
                Value::Float64(f64::NAN),
                Value::Json("null".into()),
                Value::Array(vec![Value::Int32(1), Value::Null]),
                Value::TimestampTz(0),
            ],
            vec![
                Value::Int64(2),
                Value::Null,
                Value::Null,
                Value::Array(vec![]),
                Value::Null,
            ],
        ];
        assert_eq!(
            chunk_json(&t, &cols, &rows).unwrap(),
            r#"[["9007199254740993","NaN","null","[1,null]","1970-01-01T00:00:00.000000+00:00"],["2",null,null,"[]",null]]"#
        );
        assert_eq!(
            insert_from_json(&t, "\"s\".\"t\"", &cols[..2]).unwrap(),
            "INSERT INTO \"s\".\"t\" (\"ID\", \"F\") SELECT value[0]::VARCHAR::NUMBER(19, 0) AS \"ID\", \
             value[1]::VARCHAR::FLOAT AS \"F\" FROM TABLE(FLATTEN(PARSE_JSON(?)))"
        );
        let merge = merge_sql("T", "S", &cols[..2], &[0], Some("\"ID\" >= 5"));
        assert_eq!(
            merge,
            "MERGE INTO T t USING (SELECT COALESCE(n.\"ID\", o.\"ID\") AS \"ID\", n.\"F\" AS \"F\", \
             n.\"ID\" IS NULL AS \"_MIGRATE_DROP\" FROM S n FULL OUTER JOIN (SELECT \"ID\" FROM T WHERE \"ID\" >= 5) o \
             ON n.\"ID\" = o.\"ID\") s ON t.\"ID\" = s.\"ID\" WHEN MATCHED AND s.\"_MIGRATE_DROP\" THEN DELETE \
             WHEN MATCHED THEN UPDATE SET \"F\" = s.\"F\" WHEN NOT MATCHED THEN INSERT (\"ID\", \"F\") VALUES (s.\"ID\", s.\"F\")"
        );
        // Every column in the key: matched rows still count as written.
        let pairs = merge_sql("T", "S", &cols[..1], &[0], None);
        assert!(
            pairs.contains("WHEN MATCHED THEN UPDATE SET \"ID\" = s.\"ID\""),
            "{pairs}"
        );
        let span = migrate_core::value::Interval {
            months: 1,
            days: 0,
            micros: 0,
        };
        let bad = vec![vec![Value::Interval(span)]];
        let e = chunk_json(&t, &[Column::new("span", DataType::Interval)], &bad).unwrap_err();
        assert!(
            e.to_string().contains("\"span\"") && e.to_string().contains("row 0"),
            "{e}"
        );
    }
}
