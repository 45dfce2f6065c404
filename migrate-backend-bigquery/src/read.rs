//! Reading a BigQuery table the way migrate compares and fetches it, shared by the sink (its
//! target) and the source: rows by predicate, rows by key, the canonical checksum of a range.

use async_trait::async_trait;
use migrate_core::{
    Batch, BatchReader, Error, KeyRange, Result, Row, RowChecksum, Schema, TableInfo, Value,
};
use std::sync::Arc;

use crate::cells::read_cell;
use crate::client::{BqClient, QueryPages};
use crate::sql::{
    bucketed_checksum_query, checksum_columns, checksum_from_sums, checksum_query,
    checksum_renders, ident, literal, range_bucket, range_predicate,
};
use crate::types::{column_type, BqColumn};

/// `SELECT <table's columns> FROM <sql> WHERE <predicate>`.
fn select_sql(table: &TableInfo, sql: &str, predicate: &str) -> String {
    let list: Vec<String> = table
        .schema
        .columns
        .iter()
        .map(|c| ident(&c.name))
        .collect();
    format!("SELECT {} FROM {sql} WHERE {predicate}", list.join(", "))
}

/// One answer row as migrate's values, by `table`'s column types.
fn decode(table: &TableInfo, cells: &[serde_json::Value]) -> Result<Row> {
    cells
        .iter()
        .zip(&table.schema.columns)
        .map(|(cell, c)| read_cell(&c.data_type, cell, &format!("{}.{}", table.name, c.name)))
        .collect()
}

/// The rows of `table` (at `sql`) matching `predicate`.
pub(crate) async fn rows(
    client: &BqClient,
    table: &TableInfo,
    sql: &str,
    predicate: &str,
) -> Result<Vec<Row>> {
    let r = client
        .query(&select_sql(table, sql, predicate))
        .await
        .map_err(|e| e.table(&table.name))?;
    r.rows.iter().map(|cells| decode(table, cells)).collect()
}

/// The rows of `table` (at `sql`) with these primary keys.
pub(crate) async fn rows_by_key(
    client: &BqClient,
    table: &TableInfo,
    sql: &str,
    keys: &[Vec<Value>],
) -> Result<Vec<Row>> {
    let cols = table.primary_key();
    let mut out = Vec::with_capacity(keys.len());
    for group in keys.chunks(200) {
        let mut alternatives = Vec::with_capacity(group.len());
        for k in group {
            let parts = cols
                .iter()
                .zip(k)
                .map(|(c, v)| Ok(format!("{} = {}", ident(c), literal(v)?)))
                .collect::<Result<Vec<_>>>()?;
            alternatives.push(format!("({})", parts.join(" AND ")));
        }
        if !alternatives.is_empty() {
            out.extend(rows(client, table, sql, &alternatives.join(" OR ")).await?);
        }
    }
    Ok(out)
}

/// `table`'s columns' BigQuery types.
fn bq_columns(table: &TableInfo) -> Result<Vec<BqColumn>> {
    table
        .schema
        .columns
        .iter()
        .map(|c| column_type(&table.name, c))
        .collect()
}

/// Count and canonical checksum of `table`'s rows (at `sql`) in `range`: computed inside
/// BigQuery where every column's canonical text renders in SQL, else by reading the rows.
pub(crate) async fn checksum(
    client: &BqClient,
    table: &TableInfo,
    sql: &str,
    range: &KeyRange,
) -> Result<RowChecksum> {
    let bq = bq_columns(table)?;
    let predicate = range_predicate("", &table.primary_key(), range)?;
    let columns = checksum_columns(&table.schema.columns, &bq);
    match checksum_query(sql, &columns, &predicate) {
        Some(q) => {
            let r = client.query(&q).await.map_err(|e| e.table(&table.name))?;
            let row = r
                .rows
                .first()
                .ok_or_else(|| Error::fatal("the checksum query answered no row"))?;
            checksum_from_sums(row)
        }
        // Floats, JSON, intervals or arrays: read the rows and hash them here.
        None => Ok(RowChecksum::of_rows(
            &rows(client, table, sql, &predicate).await?,
        )),
    }
}

/// Ranges one bucketed checksum query numbers (its `CASE` grows with them).
const RANGES_PER_QUERY: usize = 500;

/// [`checksum`] of each of `ranges`, reading the table once per [`RANGES_PER_QUERY`] ranges
/// (one job, and one scan billed, instead of one per range) where the checksum renders in
/// SQL; range by range otherwise.
pub(crate) async fn checksum_ranges(
    client: &BqClient,
    table: &TableInfo,
    sql: &str,
    ranges: &[KeyRange],
) -> Result<Vec<RowChecksum>> {
    let bq = bq_columns(table)?;
    let columns = checksum_columns(&table.schema.columns, &bq);
    let keys = table.primary_key();
    if ranges.len() < 2 || keys.is_empty() || !checksum_renders(&columns) {
        return migrate_core::checksum::per_range(ranges, |r| checksum(client, table, sql, r))
            .await;
    }
    let mut out = vec![RowChecksum::default(); ranges.len()];
    for (g, group) in ranges.chunks(RANGES_PER_QUERY).enumerate() {
        let bucket = range_bucket(&keys, group)?;
        let q = bucketed_checksum_query(sql, &columns, &bucket)
            .ok_or_else(|| Error::fatal("the checksum stopped rendering in SQL"))?;
        let r = client.query(&q).await.map_err(|e| e.table(&table.name))?;
        for row in &r.rows {
            let b = row
                .first()
                .and_then(|c| c.as_str())
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|b| *b < group.len())
                .ok_or_else(|| {
                    Error::fatal(format!("the checksum query answered range {row:?}"))
                })?;
            out[g * RANGES_PER_QUERY + b] = checksum_from_sums(&row[1..])?;
        }
    }
    Ok(out)
}

/// A key range of a table streamed a page at a time.
pub(crate) struct RangeReader {
    pages: QueryPages,
    table: TableInfo,
    schema: Arc<Schema>,
}

impl RangeReader {
    /// Starts reading `table`'s rows (at `sql`) in `range`, `batch_rows` a page.
    pub(crate) async fn open(
        client: &BqClient,
        table: &TableInfo,
        sql: &str,
        range: &KeyRange,
        batch_rows: usize,
    ) -> Result<Self> {
        let predicate = range_predicate("", &table.primary_key(), range)?;
        let pages = client
            .pages(&select_sql(table, sql, &predicate), Some(batch_rows.max(1)))
            .await
            .map_err(|e| e.table(&table.name))?;
        Ok(RangeReader {
            pages,
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
        loop {
            let Some(page) = self
                .pages
                .next()
                .await
                .map_err(|e| e.table(&self.table.name))?
            else {
                return Ok(None);
            };
            if page.is_empty() {
                continue;
            }
            let rows = page
                .iter()
                .map(|cells| decode(&self.table, cells))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Some(Batch::new(self.schema.clone(), rows)));
        }
    }
}
