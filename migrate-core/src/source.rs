//! Where rows come from.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::batch::{BatchReader, Row};
use crate::checksum::RowChecksum;
use crate::chunk::{ChunkSpec, KeyRange};
use crate::error::{Error, Result};
use crate::schema::{TableInfo, TableName};
use crate::value::Value;

/// Which tables to migrate: `schema.table` glob patterns (`*` and `?`). Empty `include` means all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFilter {
    /// Patterns a table must match (any of them); empty matches everything.
    #[serde(default)]
    pub include: Vec<String>,
    /// Patterns that remove a table even when included.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Let an `include` pattern match no table (default false: a pattern that matches nothing
    /// is a mistake in the configuration, so the run is refused naming it).
    #[serde(default)]
    pub allow_unmatched: bool,
}

impl TableFilter {
    /// Refuses, naming them, the `include` patterns that match none of the discovered `tables`
    /// (unless `allow_unmatched`).
    pub fn check_matched(&self, tables: &[crate::schema::TableInfo]) -> crate::error::Result<()> {
        if self.allow_unmatched {
            return Ok(());
        }
        let unmatched: Vec<&str> = self
            .include
            .iter()
            .filter(|p| {
                let w = wildmatch::WildMatch::new(p);
                !tables.iter().any(|t| w.matches(&t.name.to_string()))
            })
            .map(String::as_str)
            .collect();
        if unmatched.is_empty() {
            return Ok(());
        }
        Err(crate::error::Error::config(format!(
            "tables.include: {} match{} no table in the source (set tables.allow_unmatched = true to allow it)",
            unmatched
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            if unmatched.len() == 1 { "es" } else { "" }
        )))
    }

    /// Whether `table` passes the filter.
    pub fn matches(&self, table: &TableName) -> bool {
        let name = table.to_string();
        let hit = |p: &String| wildmatch::WildMatch::new(p).matches(&name);
        (self.include.is_empty() || self.include.iter().any(hit)) && !self.exclude.iter().any(hit)
    }
}

/// The position an incremental read has reached: the (cursor, key) of the last row delivered.
///
/// The next run does not continue *past* it: it reads again from the watermark's cursor value
/// itself, minus the configured lookback ([`Watermark::read_from`]), so rows that share that
/// value and rows committed late with a slightly older one are not lost. The rows read twice are
/// upserted again, which leaves the target unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watermark {
    /// Cursor column value of the last row delivered.
    pub cursor: Value,
    /// Primary key of the last row delivered.
    pub key: Vec<Value>,
}

impl Watermark {
    /// The inclusive lower bound of the next read: the watermark's cursor value minus
    /// `lookback`. A lookback applies to date, timestamp and timestamptz cursors (a date
    /// bound is rounded down to the day holding `cursor - lookback`); on any other cursor type
    /// it is an error of kind `Config`. `None` (no lower bound: read from the beginning) when
    /// the subtraction leaves the type's range.
    pub fn read_from(&self, lookback: Option<Duration>) -> Result<Option<Value>> {
        const DAY_MICROS: i64 = 86_400_000_000;
        let Some(lookback) = lookback.filter(|d| !d.is_zero()) else {
            return Ok(Some(self.cursor.clone()));
        };
        // Microseconds, rounded up so that the bound never lies after `cursor - lookback`.
        let Ok(micros) = i64::try_from(lookback.as_nanos().div_ceil(1000)) else {
            return Ok(None);
        };
        Ok(match &self.cursor {
            Value::Timestamp(t) => t.checked_sub(micros).map(Value::Timestamp),
            Value::TimestampTz(t) => t.checked_sub(micros).map(Value::TimestampTz),
            Value::Date(d) => {
                i32::try_from(micros / DAY_MICROS + i64::from(micros % DAY_MICROS != 0))
                    .ok()
                    .and_then(|days| d.checked_sub(days))
                    .map(Value::Date)
            }
            other => {
                return Err(Error::config(format!(
                    "a cursor lookback needs a date, timestamp or timestamptz cursor, not {other:?}"
                )))
            }
        })
    }
}

/// An incremental read: rows whose cursor is not NULL, `>= from` (when set) and `<= upper`, in
/// (cursor, key) order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// The cursor column (e.g. `updated_at`).
    pub cursor_column: String,
    /// Inclusive lower bound of the cursor: the previous run's watermark cursor minus the
    /// lookback ([`Watermark::read_from`]); `None` reads from the beginning.
    pub from: Option<Value>,
    /// Upper bound fixed at the start of the run, so rows written meanwhile wait for the next run.
    pub upper: Value,
}

/// A chunk's rows as a query the source's own engine answers: a sink on the same engine, in
/// the same place and signed in as the same principal, can copy them without the rows passing
/// through this process ([`crate::Sink::write_chunk_from`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineQuery {
    /// The engine (`snowflake`).
    pub engine: &'static str,
    /// Where the query runs and as whom (endpoint, account, user, role): a sink copies only
    /// from the same place, with the same privileges.
    pub location: String,
    /// `SELECT <the table's columns, in schema order> FROM <table> WHERE <the chunk's range>`.
    pub select: String,
}

/// A data store rows are read from.
///
/// Implementations are shared by all workers of a run (`Arc<dyn Source>`), so every method takes
/// `&self` and may be called concurrently.
#[async_trait]
pub trait Source: Send + Sync {
    /// Short backend name for logs and reports (`postgres`, `memory`).
    fn kind(&self) -> &'static str;

    /// Lists the tables that pass `filter`, with schema, primary key, foreign keys and size
    /// estimates. Must not scan whole tables. A column whose type cannot be mapped is an error of
    /// kind `Schema` naming table, column and type — never a silent cast.
    async fn discover(&self, filter: &TableFilter) -> Result<Vec<TableInfo>>;

    /// Splits a table into chunks of about `chunk_rows` rows whose key ranges partition the key
    /// space: every row, including rows inserted later within the table's key space, belongs to
    /// exactly one chunk. Chunks are numbered from 0 in key order. A table without a usable
    /// primary key is one chunk covering the whole table.
    async fn chunks(&self, table: &TableInfo, chunk_rows: u64) -> Result<Vec<ChunkSpec>>;

    /// Streams the rows of one chunk's key range in batches of at most `batch_rows` rows. The
    /// reader must hold at most a few batches in memory, whatever the chunk size.
    async fn read_chunk(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        batch_rows: usize,
    ) -> Result<Box<dyn BatchReader>>;

    /// The rows of `range` as a query for a sink on the same engine to run itself, where the
    /// source can say (`None`: the rows stream through the process).
    async fn chunk_query(
        &self,
        table: &TableInfo,
        range: &KeyRange,
    ) -> Result<Option<EngineQuery>> {
        let _ = (table, range);
        Ok(None)
    }

    /// Count and canonical checksum of the rows in `range` (see [`crate::checksum`]).
    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum>;

    /// [`Self::checksum`] of each of `ranges` (a table's chunk ranges, in key order), over the
    /// rows the source holds now — not a snapshot the run reads its chunks in: this is what
    /// `recheck_source` and `migrate verify` compare the target with. Backends that can should
    /// read the table once and sort rows into the ranges as they pass; by default each range is
    /// checksummed on its own.
    async fn checksum_ranges(
        &self,
        table: &TableInfo,
        ranges: &[KeyRange],
    ) -> Result<Vec<RowChecksum>> {
        crate::checksum::per_range(ranges, |r| self.checksum(table, r)).await
    }

    /// The rows with these primary keys (missing keys are simply absent), for sample
    /// verification.
    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let _ = keys;
        Err(unsupported(self.kind(), "fetch_rows", &table.name))
    }

    /// The largest value of the cursor column now: the upper bound an incremental run fixes at
    /// its start. `None` when the table is empty.
    async fn max_cursor(&self, table: &TableInfo, cursor_column: &str) -> Result<Option<Value>> {
        let _ = cursor_column;
        Err(unsupported(self.kind(), "max_cursor", &table.name))
    }

    /// Streams the rows `request` selects (cursor not NULL, `>= request.from`, `<= request.upper`),
    /// in (cursor, key) order.
    async fn read_changes(
        &self,
        table: &TableInfo,
        request: &ChangeRequest,
        batch_rows: usize,
    ) -> Result<Box<dyn BatchReader>> {
        let _ = (request, batch_rows);
        Err(unsupported(self.kind(), "read_changes", &table.name))
    }

    /// The integer digits and the decimal places the values of decimal column `column` need
    /// at most (one aggregate over the table), for targets that need a precision for a column
    /// the source declares without one; `None` when the source cannot tell or holds no value.
    async fn decimal_extent(&self, table: &TableInfo, column: &str) -> Result<Option<(u32, u32)>> {
        let _ = (table, column);
        Ok(None)
    }

    /// Where the sequences of `table.objects.sequences` stand now: read once a table's data is
    /// written (and again after every incremental run), so the target's sequences continue
    /// after the rows copied. Empty for sources without sequences.
    async fn sequence_values(
        &self,
        table: &TableInfo,
    ) -> Result<Vec<crate::objects::SequenceValue>> {
        let _ = table;
        Ok(Vec::new())
    }

    /// Views and materialized views that read only `tables` (and each other), dependencies
    /// first, and the ones that read anything else, with the reason they cannot come along.
    async fn views(&self, tables: &[TableInfo]) -> Result<crate::objects::Views> {
        let _ = tables;
        Ok(crate::objects::Views::default())
    }
}

/// The error for an optional capability a backend does not have (kind
/// [`crate::ErrorKind::Unsupported`], so callers that can do without it tell it from a real
/// configuration error).
pub fn unsupported(kind: &str, operation: &str, table: &TableName) -> Error {
    Error::unsupported(format!("the {kind} backend does not support {operation}"))
        .operation(operation.to_string())
        .table(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn filter_globs() {
        let f = TableFilter {
            include: vec!["public.*".into()],
            exclude: vec!["public.audit_?ogs".into()],
            ..Default::default()
        };
        assert!(f.matches(&TableName::new("public", "orders")));
        assert!(!f.matches(&TableName::new("public", "audit_logs")));
        assert!(!f.matches(&TableName::new("sales", "orders")));
        assert!(TableFilter::default().matches(&TableName::bare("x")));
    }

    fn mark(cursor: Value) -> Watermark {
        Watermark {
            cursor,
            key: vec![Value::Int64(7)],
        }
    }

    #[test]
    fn the_next_read_starts_at_the_watermark_cursor_minus_the_lookback() {
        let minute = Duration::from_secs(60);
        // No lookback: the watermark's cursor value itself (inclusive), whatever its type.
        for v in [
            Value::Int64(42),
            Value::Text("k".into()),
            Value::TimestampTz(9),
        ] {
            assert_eq!(mark(v.clone()).read_from(None).unwrap(), Some(v.clone()));
            assert_eq!(
                mark(v.clone()).read_from(Some(Duration::ZERO)).unwrap(),
                Some(v)
            );
        }
        let t = 1_700_000_000_000_000;
        assert_eq!(
            mark(Value::TimestampTz(t))
                .read_from(Some(5 * minute))
                .unwrap(),
            Some(Value::TimestampTz(t - 300_000_000))
        );
        assert_eq!(
            mark(Value::Timestamp(t)).read_from(Some(minute)).unwrap(),
            Some(Value::Timestamp(t - 60_000_000))
        );
        // A sub-microsecond lookback rounds up, never down to nothing.
        assert_eq!(
            mark(Value::TimestampTz(t))
                .read_from(Some(Duration::from_nanos(1)))
                .unwrap(),
            Some(Value::TimestampTz(t - 1))
        );
        // Dates round down to the day holding `cursor - lookback`.
        let day = 24 * 60 * minute;
        assert_eq!(
            mark(Value::Date(100)).read_from(Some(5 * minute)).unwrap(),
            Some(Value::Date(99))
        );
        assert_eq!(
            mark(Value::Date(100)).read_from(Some(day)).unwrap(),
            Some(Value::Date(99))
        );
        assert_eq!(
            mark(Value::Date(100))
                .read_from(Some(day + minute))
                .unwrap(),
            Some(Value::Date(98))
        );
        // Past the type's range: no lower bound (everything is read again), never an overflow.
        assert_eq!(
            mark(Value::TimestampTz(i64::MIN + 5))
                .read_from(Some(minute))
                .unwrap(),
            None
        );
        assert_eq!(
            mark(Value::Date(0)).read_from(Some(Duration::MAX)).unwrap(),
            None
        );
        // Other cursor types take no lookback.
        let e = mark(Value::Int64(42)).read_from(Some(minute)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("lookback"), "{e}");
    }
}
