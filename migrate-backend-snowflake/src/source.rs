//! `SfSource`: a Snowflake schema's tables read into migrate — Snowflake → Postgres, BigQuery
//! or another Snowflake schema, or a comparison source for `migrate verify`.
//!
//! Discovery: `INFORMATION_SCHEMA.TABLES` (base tables, with Snowflake's row and byte counts as
//! the estimates — no scan) and `.COLUMNS` (types mapped back by [`crate::types`]), primary
//! keys from `SHOW PRIMARY KEYS`, foreign keys from `SHOW IMPORTED KEYS` (parents in the same
//! schema). Names come back in migrate's case (`ORDERS` → `orders`, see
//! [`crate::sql::migrate_name`]); the source remembers each table's and column's own
//! Snowflake name, so a name that does not fold back (a quoted lower-case `"orders"`) is still
//! read as it is.
//!
//! Chunks: a single integer key is split into even ranges between its minimum and maximum (one
//! aggregate); any other key of numbers, dates, times or booleans at every `chunk_rows`-th key
//! in key order (one ranked query); a table without a primary key, or with a text or bytes key
//! (Snowflake orders text by code point, a Postgres target by its collation, so a range cut
//! here would not hold the same rows there), is one chunk. Rows stream one result chunk at a
//! time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use migrate_core::{
    BatchReader, ChangeRequest, ChunkSpec, DataType, EngineQuery, Error, KeyRange, Result, Row,
    RowChecksum, Source, TableFilter, TableInfo, TableName, Value,
};

use migrate_core::chunk::{even_bounds, orders_alike};

use crate::catalog::Catalog;
use crate::client::SfClient;
use crate::endpoint::SfEndpoint;
use crate::pool::SessionPool;
use crate::read::{self, Layout, RangeReader};
use crate::sql::{ident, literal, migrate_name};

/// Reads one Snowflake schema.
#[derive(Debug)]
pub struct SfSource {
    pool: SessionPool,
    catalog: Catalog,
    /// Each discovered table's SQL layout, by migrate's name.
    layouts: Mutex<HashMap<TableName, Arc<Layout>>>,
}

/// Tables the sink keeps for itself: its bookkeeping and its backups.
fn is_bookkeeping(id: &str) -> bool {
    id.starts_with("_MIGRATE") || id.contains("__MIGRATE_BACKUP_")
}

impl SfSource {
    /// A source reading the endpoint's database and schema.
    pub fn new(endpoint: SfEndpoint) -> Result<Self> {
        let catalog = Catalog::new(&endpoint);
        Ok(SfSource {
            pool: SessionPool::new(SfClient::new(endpoint)?),
            catalog,
            layouts: Mutex::new(HashMap::new()),
        })
    }

    /// How `table`'s checksums are computed — in Snowflake, or streamed and hashed here —
    /// and why (see [`crate::checksum_sql`]).
    pub async fn checksum_path(&self, table: &TableInfo) -> Result<String> {
        Ok(self.pool.sql_checksums().await?.describe(table))
    }

    /// The sessions this source runs its statements on.
    pub fn pool(&self) -> &SessionPool {
        &self.pool
    }

    /// The database and schema read.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Reads the schema's tables passing `filter`, remembering their layouts.
    async fn read_tables(&self, filter: &TableFilter) -> Result<Vec<TableInfo>> {
        let keys = self.catalog.primary_keys(&self.pool).await?;
        let schema = migrate_name(&self.catalog.schema);
        let mut fks = self.catalog.foreign_keys(&self.pool, &schema).await?;
        let mut out = Vec::new();
        for (id, rows, bytes) in self.catalog.tables(&self.pool).await? {
            if is_bookkeeping(&id) {
                continue;
            }
            let name = TableName::new(schema.clone(), migrate_name(&id));
            if !filter.matches(&name) {
                continue;
            }
            let key = keys.get(&id).cloned().unwrap_or_default();
            let (mut info, names) = self.catalog.table_info(&self.pool, &id, &key).await?;
            info.estimated_rows = rows;
            info.estimated_bytes = bytes;
            info.foreign_keys = fks.remove(&id).unwrap_or_default();
            let layout = Layout {
                sql: self.catalog.table_sql(&id),
                columns: names.iter().map(|n| ident(n)).collect(),
                keys: key.iter().map(|k| ident(k)).collect(),
            };
            if let Ok(mut map) = self.layouts.lock() {
                map.insert(info.name.clone(), Arc::new(layout));
            }
            out.push(info);
        }
        Ok(out)
    }

    /// How `table` is written in SQL (discovered now if this source has not seen it).
    async fn layout(&self, table: &TableInfo) -> Result<Arc<Layout>> {
        let known = |s: &Self| {
            s.layouts
                .lock()
                .ok()
                .and_then(|m| m.get(&table.name).cloned())
        };
        if let Some(l) = known(self) {
            return Ok(l);
        }
        let filter = TableFilter {
            include: vec![table.name.to_string()],
            ..Default::default()
        };
        self.read_tables(&filter).await?;
        known(self).ok_or_else(|| {
            Error::not_found(format!(
                "table {} is not in Snowflake schema {}",
                table.name,
                self.catalog.schema_sql()
            ))
            .table(&table.name)
        })
    }

    /// Chunk boundaries of a single integer key: even steps between its minimum and maximum
    /// (one aggregate, no sort); `None` for an empty table.
    async fn even_bounds(
        &self,
        table: &TableInfo,
        at: &Layout,
        chunk_rows: u64,
    ) -> Result<Option<Vec<Vec<Value>>>> {
        let key = &at.keys[0];
        let r = self
            .pool
            .query(
                &format!(
                    "SELECT MIN({key})::VARCHAR, MAX({key})::VARCHAR, COUNT(*)::VARCHAR FROM {}",
                    at.sql
                ),
                &[],
            )
            .await
            .map_err(|e| e.table(&table.name))?;
        let cell = |i: usize| match r.rows.first().and_then(|row| row.get(i)) {
            Some(Value::Text(s)) => s.parse::<i64>().ok(),
            _ => None,
        };
        let (Some(lo), Some(hi), Some(rows)) = (cell(0), cell(1), cell(2)) else {
            return Ok(None);
        };
        let key_type = &table.schema.columns[table.schema.primary_key[0]].data_type;
        Ok(Some(
            even_bounds(lo, hi, rows as u64, chunk_rows)
                .into_iter()
                .map(|b| {
                    vec![match key_type {
                        DataType::Int16 => Value::Int16(b as i16),
                        DataType::Int32 => Value::Int32(b as i32),
                        _ => Value::Int64(b),
                    }]
                })
                .collect(),
        ))
    }

    /// Chunk boundaries of any other key: every `chunk_rows`-th key in key order.
    async fn ranked_bounds(
        &self,
        table: &TableInfo,
        at: &Layout,
        chunk_rows: u64,
    ) -> Result<Vec<Vec<Value>>> {
        let key = at.keys.join(", ");
        let sql = format!(
            "SELECT {key} FROM (SELECT {key}, ROW_NUMBER() OVER (ORDER BY {key}) AS RN FROM {}) \
             WHERE RN > 1 AND MOD(RN - 1, {}) = 0 ORDER BY {key}",
            at.sql,
            chunk_rows.max(1)
        );
        let types: Vec<DataType> = table
            .schema
            .primary_key
            .iter()
            .map(|i| table.schema.columns[*i].data_type.clone())
            .collect();
        let mut stream = self
            .pool
            .stream(&sql, types)
            .await
            .map_err(|e| e.table(&table.name))?;
        let mut out = Vec::new();
        while let Some(rows) = stream.next_rows().await? {
            out.extend(rows);
        }
        Ok(out)
    }
}

#[async_trait]
impl Source for SfSource {
    fn kind(&self) -> &'static str {
        "snowflake"
    }

    async fn discover(&self, filter: &TableFilter) -> Result<Vec<TableInfo>> {
        self.read_tables(filter).await
    }

    async fn chunks(&self, table: &TableInfo, chunk_rows: u64) -> Result<Vec<ChunkSpec>> {
        let at = self.layout(table).await?;
        let types: Vec<&DataType> = table
            .schema
            .primary_key
            .iter()
            .map(|i| &table.schema.columns[*i].data_type)
            .collect();
        let bounds = match types.as_slice() {
            [] => None,
            [DataType::Int16 | DataType::Int32 | DataType::Int64] => {
                self.even_bounds(table, &at, chunk_rows).await?
            }
            t if t.iter().all(|t| orders_alike(t)) => {
                Some(self.ranked_bounds(table, &at, chunk_rows).await?)
            }
            _ => None,
        };
        Ok(ChunkSpec::from_bounds(
            &table.name,
            bounds.unwrap_or_default(),
            table.estimated_rows,
        ))
    }

    async fn read_chunk(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        batch_rows: usize,
    ) -> Result<Box<dyn BatchReader>> {
        let at = self.layout(table).await?;
        let predicate = at.predicate(&chunk.range)?;
        let reader = RangeReader::open(&self.pool, table, &at, &predicate, batch_rows)
            .await
            .map_err(|e| e.chunk(chunk.index))?;
        Ok(Box::new(reader))
    }

    async fn chunk_query(
        &self,
        table: &TableInfo,
        range: &KeyRange,
    ) -> Result<Option<EngineQuery>> {
        let at = self.layout(table).await?;
        Ok(Some(EngineQuery {
            engine: "snowflake",
            location: self.pool.client().endpoint().principal(),
            select: at.select(None, &at.predicate(range)?),
        }))
    }

    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum> {
        let at = self.layout(table).await?;
        read::checksum(&self.pool, table, &at, range).await
    }

    async fn checksum_ranges(
        &self,
        table: &TableInfo,
        ranges: &[KeyRange],
    ) -> Result<Vec<RowChecksum>> {
        let at = self.layout(table).await?;
        read::checksum_ranges(&self.pool, table, &at, ranges).await
    }

    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let at = self.layout(table).await?;
        read::rows_by_key(&self.pool, table, &at, keys).await
    }

    async fn max_cursor(&self, table: &TableInfo, cursor_column: &str) -> Result<Option<Value>> {
        let at = self.layout(table).await?;
        let i = cursor_index(table, cursor_column)?;
        let sql = format!("SELECT MAX({}) FROM {}", at.columns[i], at.sql);
        let ty = vec![table.schema.columns[i].data_type.clone()];
        let mut stream = self
            .pool
            .stream(&sql, ty)
            .await
            .map_err(|e| e.table(&table.name))?;
        let mut max = None;
        while let Some(rows) = stream.next_rows().await? {
            if let Some(v) = rows.into_iter().next().and_then(|r| r.into_iter().next()) {
                max = Some(v).filter(|v| !matches!(v, Value::Null));
            }
        }
        Ok(max)
    }

    async fn read_changes(
        &self,
        table: &TableInfo,
        request: &ChangeRequest,
        batch_rows: usize,
    ) -> Result<Box<dyn BatchReader>> {
        let at = self.layout(table).await?;
        let i = cursor_index(table, &request.cursor_column)?;
        let col = &at.columns[i];
        let mut predicate = format!(
            "{col} IS NOT NULL AND {col} <= {}",
            literal(&request.upper)?
        );
        if let Some(from) = &request.from {
            predicate.push_str(&format!(" AND {col} >= {}", literal(from)?));
        }
        let mut order = vec![col.clone()];
        order.extend(at.keys.iter().cloned());
        predicate.push_str(&format!(" ORDER BY {}", order.join(", ")));
        let reader = RangeReader::open(&self.pool, table, &at, &predicate, batch_rows).await?;
        Ok(Box::new(reader))
    }
}

/// The position of the cursor column; an error naming it when the table has none.
fn cursor_index(table: &TableInfo, cursor: &str) -> Result<usize> {
    table.schema.index_of(cursor).ok_or_else(|| {
        Error::config(format!(
            "table {} has no cursor column {cursor:?}",
            table.name
        ))
        .table(&table.name)
    })
}
