//! The unit of work: a primary-key range of one table.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::schema::TableName;
use crate::value::{cmp_keys, KeyDisplay, Value};

/// A half-open range of primary-key values, `lower <= key < upper`; a missing bound is open.
/// Both bounds missing means the whole table (and is the only range a keyless table has).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyRange {
    /// Inclusive lower bound (composite keys compare lexicographically).
    pub lower: Option<Vec<Value>>,
    /// Exclusive upper bound.
    pub upper: Option<Vec<Value>>,
}

impl KeyRange {
    /// The whole table.
    pub fn all() -> Self {
        KeyRange::default()
    }

    /// `lower <= key < upper`.
    pub fn between(lower: Option<Vec<Value>>, upper: Option<Vec<Value>>) -> Self {
        KeyRange { lower, upper }
    }

    /// Whether the range covers the whole table.
    pub fn is_all(&self) -> bool {
        self.lower.is_none() && self.upper.is_none()
    }

    /// Whether `key` falls in the range.
    pub fn contains(&self, key: &[Value]) -> bool {
        let above = self
            .lower
            .as_deref()
            .is_none_or(|l| cmp_keys(key, l) != Ordering::Less);
        let below = self
            .upper
            .as_deref()
            .is_none_or(|u| cmp_keys(key, u) == Ordering::Less);
        above && below
    }
}

impl fmt::Display for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.lower {
            Some(l) => write!(f, "[{}", KeyDisplay(l))?,
            None => f.write_str("(-inf")?,
        }
        f.write_str(" .. ")?;
        match &self.upper {
            Some(u) => write!(f, "{})", KeyDisplay(u)),
            None => f.write_str("+inf)"),
        }
    }
}

/// One chunk of a table: what a worker reads, writes, checkpoints and verifies as a unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkSpec {
    /// The table.
    pub table: TableName,
    /// Position of the chunk within the table, from 0; stable across resumes of one plan.
    pub index: u32,
    /// The key range the chunk covers. Chunks of a table partition its key space.
    pub range: KeyRange,
    /// Row estimate, for progress and budgeting.
    pub estimated_rows: u64,
    /// What the chunk does (the store's `operation` column): copying rows unless said.
    #[serde(default)]
    pub operation: Operation,
}

/// What a checkpointed operation does: rows copied for a key range (the executor's chunks), or
/// a table created or finished from DDL files (a schema migration's two steps per table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// A key range's rows copied.
    #[default]
    CopyRows,
    /// A table created in the target.
    CreateTable,
    /// A table's keys, indexes and constraints built once every table exists.
    FinalizeTable,
}

impl Operation {
    /// Its name in the store's `operation` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CopyRows => "chunk",
            Operation::CreateTable => "create_table",
            Operation::FinalizeTable => "finalize_table",
        }
    }

    /// The operation a store's `operation` column names (an unknown name — a newer build's —
    /// reads as copying rows, the executor's own kind).
    pub fn parse(s: &str) -> Self {
        match s {
            "create_table" => Operation::CreateTable,
            "finalize_table" => Operation::FinalizeTable,
            _ => Operation::CopyRows,
        }
    }
}

impl ChunkSpec {
    /// The single chunk of a table that is not split.
    pub fn whole_table(table: TableName, estimated_rows: u64) -> Self {
        ChunkSpec {
            table,
            index: 0,
            range: KeyRange::all(),
            estimated_rows,
            operation: Operation::CopyRows,
        }
    }

    /// The chunks of `table` between `bounds` (ascending keys, each the first of its chunk):
    /// one more chunk than bounds, the first open below and the last open above, numbered in
    /// key order, the table's estimated rows spread evenly. No bounds: one whole-table chunk.
    pub fn from_bounds(
        table: &TableName,
        bounds: Vec<Vec<Value>>,
        estimated_rows: u64,
    ) -> Vec<Self> {
        if bounds.is_empty() {
            return vec![ChunkSpec::whole_table(table.clone(), estimated_rows)];
        }
        let per_chunk = estimated_rows / (bounds.len() as u64 + 1);
        (0..=bounds.len())
            .map(|i| ChunkSpec {
                table: table.clone(),
                index: i as u32,
                range: KeyRange::between(
                    i.checked_sub(1).map(|j| bounds[j].clone()),
                    bounds.get(i).cloned(),
                ),
                estimated_rows: per_chunk,
                operation: Operation::CopyRows,
            })
            .collect()
    }
}

/// Boundaries that cut the integers `lo..=hi` (a key's minimum and maximum over `rows` rows)
/// into even steps of about `chunk_rows` rows each: one aggregate's worth of information, no
/// sort. Empty when one chunk holds them all.
pub fn even_bounds(lo: i64, hi: i64, rows: u64, chunk_rows: u64) -> Vec<i64> {
    let n = rows.div_ceil(chunk_rows.max(1)).max(1);
    let span = (i128::from(hi) - i128::from(lo) + 1).max(1) as u128;
    let step = span.div_ceil(u128::from(n)).max(1);
    (1..n)
        .filter_map(|i| i64::try_from(i128::from(lo) + (step * u128::from(i)) as i128).ok())
        .filter(|b| *b <= hi)
        .collect()
}

/// Whether every primary-key column of `schema` [`orders_alike`]: only then does a key range
/// cut by one engine select the same rows in another. A sink clears a chunk's range before its
/// rows land only when this holds; otherwise a range cut in the source's order (a Postgres
/// collation) could reach rows another chunk wrote, so the sink upserts by key instead and a
/// run that replaces existing rows clears the table once, up front.
pub fn key_orders_alike(schema: &crate::schema::Schema) -> bool {
    schema.primary_key.iter().all(|i| {
        schema
            .columns
            .get(*i)
            .is_some_and(|c| orders_alike(&c.data_type))
    })
}

/// Whether values of `t` order the same in every engine migrate speaks to (numbers, dates,
/// times, booleans): key ranges cut in one engine's order then hold the same rows in another's.
/// Text does not (code points in BigQuery and Snowflake, a collation in Postgres), nor bytes.
pub fn orders_alike(t: &crate::schema::DataType) -> bool {
    use crate::schema::DataType as D;
    matches!(
        t,
        D::Bool
            | D::Int16
            | D::Int32
            | D::Int64
            | D::Decimal { .. }
            | D::Date
            | D::Time
            | D::Timestamp
            | D::TimestampTz
    )
}

impl KeyRange {
    /// The range as a SQL `WHERE` body over the key columns `cols` (already quoted), each
    /// bound's values rendered by `literal`: composite keys compare lexicographically, written
    /// out column by column (`(a > x OR (a = x AND b >= y))`), which every engine's SQL reads
    /// (tuple comparison is not everywhere). `TRUE` for the whole table or no key.
    pub fn sql_predicate<F>(&self, cols: &[String], mut literal: F) -> crate::Result<String>
    where
        F: FnMut(&Value) -> crate::Result<String>,
    {
        if cols.is_empty() || self.is_all() {
            return Ok("TRUE".into());
        }
        // (k_i, …) OP (v_i, …): k_i strictly beyond v_i, or equal and the rest OP the rest.
        fn compare(cols: &[String], vals: &[String], strict: &str, last: &str) -> String {
            match (cols, vals) {
                ([c], [v]) => format!("{c} {last} {v}"),
                ([c, cs @ ..], [v, vs @ ..]) => format!(
                    "({c} {strict} {v} OR ({c} = {v} AND {}))",
                    compare(cs, vs, strict, last)
                ),
                _ => "TRUE".into(),
            }
        }
        let mut parts = Vec::new();
        for (bound, strict, last) in [(&self.lower, ">", ">="), (&self.upper, "<", "<")] {
            if let Some(b) = bound {
                if b.len() != cols.len() {
                    return Err(crate::Error::fatal(format!(
                        "a key bound of {} values for a key of {} columns",
                        b.len(),
                        cols.len()
                    )));
                }
                let vals = b
                    .iter()
                    .map(&mut literal)
                    .collect::<crate::Result<Vec<_>>>()?;
                parts.push(compare(cols, &vals, strict, last));
            }
        }
        Ok(parts.join(" AND "))
    }

    /// `CASE WHEN <range 0> THEN 0 WHEN … ELSE -1 END`: the index of the range of `ranges` a
    /// row falls in, computed by the engine that holds the rows (so its own ordering of the
    /// key decides, as it did when the chunks were written), for reading a table once and
    /// sorting its rows into ranges as they pass.
    pub fn sql_bucket<F>(
        ranges: &[KeyRange],
        cols: &[String],
        mut literal: F,
    ) -> crate::Result<String>
    where
        F: FnMut(&Value) -> crate::Result<String>,
    {
        let mut out = String::from("CASE");
        for (i, r) in ranges.iter().enumerate() {
            out.push_str(&format!(
                " WHEN {} THEN {i}",
                r.sql_predicate(cols, &mut literal)?
            ));
        }
        out.push_str(" ELSE -1 END");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_bounds_cut_a_key_span_into_chunks_that_cover_it() {
        assert_eq!(even_bounds(1, 100, 100, 25), vec![26, 51, 76]);
        assert!(even_bounds(1, 100, 100, 1000).is_empty());
        assert_eq!(
            even_bounds(i64::MAX - 3, i64::MAX, 4, 2),
            vec![i64::MAX - 1]
        );
        let t = TableName::parse("public.t");
        let chunks =
            ChunkSpec::from_bounds(&t, vec![vec![Value::Int64(26)], vec![Value::Int64(51)]], 90);
        assert_eq!(chunks.len(), 3);
        assert!(chunks[0].range.lower.is_none() && chunks[2].range.upper.is_none());
        assert_eq!(
            chunks[1].range,
            KeyRange::between(Some(vec![Value::Int64(26)]), Some(vec![Value::Int64(51)]))
        );
        assert_eq!(chunks[1].estimated_rows, 30);
        assert!(ChunkSpec::from_bounds(&t, vec![], 7)[0].range.is_all());
    }

    #[test]
    fn half_open_ranges() {
        let r = KeyRange::between(Some(vec![Value::Int64(10)]), Some(vec![Value::Int64(20)]));
        assert!(r.contains(&[Value::Int64(10)]));
        assert!(r.contains(&[Value::Int32(19)]));
        assert!(!r.contains(&[Value::Int64(20)]));
        assert!(!r.contains(&[Value::Int64(9)]));
        assert!(KeyRange::all().contains(&[Value::Int64(i64::MIN)]));
        assert_eq!(r.to_string(), "[(10) .. (20))");
        let composite = KeyRange::between(Some(vec![Value::Int64(1), Value::Int64(5)]), None);
        assert!(composite.contains(&[Value::Int64(1), Value::Int64(5)]));
        assert!(composite.contains(&[Value::Int64(2), Value::Int64(0)]));
        assert!(!composite.contains(&[Value::Int64(1), Value::Int64(4)]));
    }
}
