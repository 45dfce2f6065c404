//! Reading a Snowflake table the way migrate compares and fetches it, shared by the sink (its
//! target) and the source: rows by predicate, rows by key, a key range streamed in batches,
//! and the canonical checksum of one range or of every chunk range in one pass.
//!
//! Checksums are computed inside Snowflake where the server proved it renders every column's
//! canonical text ([`crate::checksum_sql`]); otherwise the rows stream and are hashed here.
//! Either way rows are sorted into ranges by a `CASE` Snowflake computes (so Snowflake's own
//! ordering of the key decides, as it did when each chunk's range was written), and the figure
//! is the one the Postgres and BigQuery backends compute for the same rows.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use migrate_core::checksum::{encode_row, BucketedChecksums};
use migrate_core::{
    Batch, BatchReader, DataType, Error, KeyRange, Result, Row, RowChecksum, Schema, TableInfo,
    Value,
};

use crate::checksum_sql::{row_text, sums_query, sums_row, sums_types};
use crate::client::RowStream;
use crate::pool::SessionPool;
use crate::sql::{column, literal};

/// Ranges one bucketed checksum query sorts rows into (its `CASE` grows with them).
const RANGES_PER_QUERY: usize = 500;

/// Key values per lookup statement.
const KEYS_PER_LOOKUP: usize = 200;

/// How a table is written in SQL: its name and its columns' (quoted), key columns apart.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The table's qualified name.
    pub sql: String,
    /// Each column of the table, in order.
    pub columns: Vec<String>,
    /// The primary key's columns, in key order.
    pub keys: Vec<String>,
}

impl Layout {
    /// `table` at `sql`, its columns named by [`column`] (the sink's tables).
    pub fn folded(table: &TableInfo, sql: String) -> Layout {
        Layout {
            sql,
            columns: table
                .schema
                .columns
                .iter()
                .map(|c| column(&c.name))
                .collect(),
            keys: table.primary_key().iter().map(|k| column(k)).collect(),
        }
    }

    /// `WHERE` body of `range`.
    pub fn predicate(&self, range: &KeyRange) -> Result<String> {
        range.sql_predicate(&self.keys, literal)
    }

    /// `SELECT <columns> FROM <table> WHERE <predicate>`, with `extra` selected first.
    pub fn select(&self, extra: Option<&str>, predicate: &str) -> String {
        let list: Vec<&str> = extra
            .into_iter()
            .chain(self.columns.iter().map(String::as_str))
            .collect();
        format!(
            "SELECT {} FROM {} WHERE {predicate}",
            list.join(", "),
            self.sql
        )
    }
}

fn types(table: &TableInfo) -> Vec<DataType> {
    table
        .schema
        .columns
        .iter()
        .map(|c| c.data_type.clone())
        .collect()
}

/// The rows of `table` (laid out as `at`) matching `predicate`.
pub(crate) async fn rows(
    pool: &SessionPool,
    table: &TableInfo,
    at: &Layout,
    predicate: &str,
) -> Result<Vec<Row>> {
    let mut stream = pool
        .stream(&at.select(None, predicate), types(table))
        .await
        .map_err(|e| e.table(&table.name))?;
    let mut out = Vec::new();
    while let Some(rows) = stream.next_rows().await.map_err(|e| e.table(&table.name))? {
        out.extend(rows);
    }
    Ok(out)
}

/// The rows of `table` (laid out as `at`) with these primary keys.
pub(crate) async fn rows_by_key(
    pool: &SessionPool,
    table: &TableInfo,
    at: &Layout,
    keys: &[Vec<Value>],
) -> Result<Vec<Row>> {
    let mut out = Vec::with_capacity(keys.len());
    for group in keys.chunks(KEYS_PER_LOOKUP) {
        let predicate = key_predicate(table, at, group)?;
        out.extend(rows(pool, table, at, &predicate).await?);
    }
    Ok(out)
}

/// `(k1 = v AND k2 = w) OR …`: the rows with these primary keys (`FALSE` for none).
pub(crate) fn key_predicate(table: &TableInfo, at: &Layout, keys: &[Vec<Value>]) -> Result<String> {
    let cols = &at.keys;
    if cols.is_empty() {
        return Err(Error::unsupported(format!(
            "table {} has no primary key to look rows up by",
            table.name
        ))
        .table(&table.name));
    }
    let mut alternatives = Vec::with_capacity(keys.len());
    for k in keys {
        let parts = cols
            .iter()
            .zip(k)
            .map(|(c, v)| Ok(format!("{c} = {}", literal(v)?)))
            .collect::<Result<Vec<_>>>()?;
        alternatives.push(format!("({})", parts.join(" AND ")));
    }
    Ok(match alternatives.is_empty() {
        true => "FALSE".into(),
        false => alternatives.join(" OR "),
    })
}

/// The checksums of `n` ranges computed inside Snowflake: rows of `at` matching `predicate`,
/// sorted into ranges by `bucket` (see [`crate::checksum_sql`]).
async fn sums_in_sql(
    pool: &SessionPool,
    table: &TableInfo,
    at: &Layout,
    bucket: &str,
    predicate: &str,
    n: usize,
) -> Result<Vec<RowChecksum>> {
    let cols: Vec<(String, DataType)> = at
        .columns
        .iter()
        .zip(&table.schema.columns)
        .map(|(c, col)| (c.clone(), col.data_type.clone()))
        .collect();
    let row =
        row_text(&cols).ok_or_else(|| Error::fatal("the checksum stopped rendering in SQL"))?;
    let q = sums_query(&row, bucket, &at.sql, predicate);
    let mut stream = pool
        .stream(&q, sums_types())
        .await
        .map_err(|e| e.table(&table.name))?;
    let mut out = vec![RowChecksum::new(); n];
    while let Some(rows) = stream.next_rows().await.map_err(|e| e.table(&table.name))? {
        for row in rows {
            let (b, sum) = sums_row(&row)?;
            // -1: in none of these ranges.
            if let Some(slot) = usize::try_from(b).ok().and_then(|b| out.get_mut(b)) {
                *slot = sum;
            }
        }
    }
    Ok(out)
}

/// Count and canonical checksum of `table`'s rows (laid out as `at`) in `range`.
pub(crate) async fn checksum(
    pool: &SessionPool,
    table: &TableInfo,
    at: &Layout,
    range: &KeyRange,
) -> Result<RowChecksum> {
    let predicate = at.predicate(range)?;
    if pool.sql_checksums().await?.covers(table) {
        let sums = sums_in_sql(pool, table, at, "0", &predicate, 1).await?;
        return Ok(sums.into_iter().next().unwrap_or_default());
    }
    let mut stream = pool
        .stream(&at.select(None, &predicate), types(table))
        .await
        .map_err(|e| e.table(&table.name))?;
    let mut sum = RowChecksum::new();
    while let Some(rows) = stream.next_rows().await.map_err(|e| e.table(&table.name))? {
        sum.add_rows(&rows);
    }
    Ok(sum)
}

/// [`checksum`] of each of `ranges`, reading the table once per [`RANGES_PER_QUERY`] ranges.
pub(crate) async fn checksum_ranges(
    pool: &SessionPool,
    table: &TableInfo,
    at: &Layout,
    ranges: &[KeyRange],
) -> Result<Vec<RowChecksum>> {
    if ranges.len() < 2 || at.keys.is_empty() {
        return migrate_core::checksum::per_range(ranges, |r| checksum(pool, table, at, r)).await;
    }
    let in_sql = pool.sql_checksums().await?.covers(table);
    let mut out = Vec::with_capacity(ranges.len());
    for group in ranges.chunks(RANGES_PER_QUERY) {
        let bucket = KeyRange::sql_bucket(group, &at.keys, literal)?;
        if in_sql {
            out.extend(sums_in_sql(pool, table, at, &bucket, "TRUE", group.len()).await?);
            continue;
        }
        let mut types = types(table);
        types.insert(0, DataType::Int64);
        let q = at.select(Some(&bucket), "TRUE");
        let mut stream = pool
            .stream(&q, types)
            .await
            .map_err(|e| e.table(&table.name))?;
        let mut sums = BucketedChecksums::new(group.len());
        while let Some(rows) = stream.next_rows().await.map_err(|e| e.table(&table.name))? {
            for row in rows {
                let b = match row.first() {
                    Some(Value::Int64(b)) => *b,
                    other => {
                        return Err(Error::fatal(format!(
                            "the checksum query sorted a row of {} into {other:?}",
                            table.name
                        )))
                    }
                };
                // -1: in none of these ranges.
                if let Ok(b) = usize::try_from(b) {
                    sums.add(|text| {
                        encode_row(&row[1..], text);
                        Ok(b)
                    })?;
                }
            }
        }
        out.extend(sums.finish());
    }
    migrate_core::checksum::one_per_range(out, ranges, "Snowflake table")
}

/// A key range of a table streamed in batches of at most `batch_rows` rows; one result chunk
/// is held at a time.
pub(crate) struct RangeReader {
    stream: RowStream,
    pending: VecDeque<Row>,
    batch_rows: usize,
    table: TableInfo,
    schema: Arc<Schema>,
}

impl RangeReader {
    /// Starts reading `table`'s rows (laid out as `at`) matching `predicate`.
    pub(crate) async fn open(
        pool: &SessionPool,
        table: &TableInfo,
        at: &Layout,
        predicate: &str,
        batch_rows: usize,
    ) -> Result<Self> {
        let stream = pool
            .stream(&at.select(None, predicate), types(table))
            .await
            .map_err(|e| e.table(&table.name))?;
        Ok(RangeReader {
            stream,
            pending: VecDeque::new(),
            batch_rows: batch_rows.max(1),
            schema: table.schema.clone(),
            table: table.clone(),
        })
    }
}

#[async_trait]
impl BatchReader for RangeReader {
    fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        while self.pending.is_empty() {
            match self
                .stream
                .next_rows()
                .await
                .map_err(|e| e.table(&self.table.name))?
            {
                Some(rows) => self.pending.extend(rows),
                None => return Ok(None),
            }
        }
        let n = self.batch_rows.min(self.pending.len());
        let rows: Vec<Row> = self.pending.drain(..n).collect();
        Ok(Some(Batch::new(self.schema.clone(), rows)))
    }
}
