//! Where rows come from.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::batch::{BatchReader, Row};
use crate::checksum::RowChecksum;
use crate::chunk::{ChunkSpec, KeyRange};
use crate::error::{Error, ErrorKind, Result};
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
}

impl TableFilter {
    /// Whether `table` passes the filter.
    pub fn matches(&self, table: &TableName) -> bool {
        let name = table.to_string();
        let hit = |p: &String| wildmatch::WildMatch::new(p).matches(&name);
        (self.include.is_empty() || self.include.iter().any(hit)) && !self.exclude.iter().any(hit)
    }
}

/// The position an incremental read has reached: the last (cursor, key) delivered.
/// Rows are read in (cursor, key) order, so rows sharing the watermark's cursor value but with a
/// larger key are still read next time: nothing is lost or repeated at the boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watermark {
    /// Cursor column value of the last row delivered.
    pub cursor: Value,
    /// Primary key of the last row delivered.
    pub key: Vec<Value>,
}

/// An incremental read: rows with `(cursor, key) > after` and `cursor <= upper`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// The cursor column (e.g. `updated_at`).
    pub cursor_column: String,
    /// Where the previous read stopped; `None` reads from the beginning.
    pub after: Option<Watermark>,
    /// Upper bound fixed at the start of the run, so rows written meanwhile wait for the next run.
    pub upper: Value,
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

    /// Count and canonical checksum of the rows in `range` (see [`crate::checksum`]).
    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum>;

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

    /// Streams the rows changed since a watermark, in (cursor, key) order.
    async fn read_changes(
        &self,
        table: &TableInfo,
        request: &ChangeRequest,
        batch_rows: usize,
    ) -> Result<Box<dyn BatchReader>> {
        let _ = (request, batch_rows);
        Err(unsupported(self.kind(), "read_changes", &table.name))
    }
}

/// The error for an optional capability a backend does not have.
pub fn unsupported(kind: &str, operation: &str, table: &TableName) -> Error {
    Error::new(
        ErrorKind::Config,
        format!("the {kind} backend does not support {operation}"),
    )
    .operation(operation.to_string())
    .table(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_globs() {
        let f = TableFilter {
            include: vec!["public.*".into()],
            exclude: vec!["public.audit_?ogs".into()],
        };
        assert!(f.matches(&TableName::new("public", "orders")));
        assert!(!f.matches(&TableName::new("public", "audit_logs")));
        assert!(!f.matches(&TableName::new("sales", "orders")));
        assert!(TableFilter::default().matches(&TableName::bare("x")));
    }
}
