//! `BqSource`: a dataset's tables read back into migrate — BigQuery → Postgres, or a
//! comparison source for `migrate verify`.
//!
//! Discovery reads each table's resource (`tables.get`): columns with their types mapped back
//! (`INT64` → `Int64`, `NUMERIC(p, s)` → `Decimal(p, s)` — an unparameterized `NUMERIC` is
//! (38, 9) — `BIGNUMERIC` without parameters → an unconstrained decimal, `DATETIME` →
//! `Timestamp`, `TIMESTAMP` → `TimestampTz`, `REPEATED` → arrays), the primary key from
//! `tableConstraints`, and row and byte counts from the table's metadata (no scan). A
//! `RECORD`/`STRUCT`, `GEOGRAPHY` or `RANGE` column is an error naming table, column and type.
//!
//! Chunks: a single integer primary key is split into even key ranges between its minimum and
//! maximum (one aggregate); any other key of numbers, dates, times or booleans at every
//! `chunk_rows`-th key in key order (one ranked query); a table without a declared key (the
//! emulator keeps none), or with a text, bytes or other key whose order differs between
//! engines, is one chunk. Foreign keys come from `tableConstraints.foreignKeys`. Rows stream a
//! page at a time (`maxResults` = the batch size).

use async_trait::async_trait;
use migrate_core::{
    BatchReader, ChunkSpec, Column, DataType, Error, ForeignKey, KeyRange, Result, Row,
    RowChecksum, Schema, Source, TableFilter, TableInfo, TableName, Value,
};
use serde_json::Value as Json;

use migrate_core::chunk::{even_bounds, orders_alike};

use crate::cells::read_cell;
use crate::client::{BqClient, BqEndpoint};
use crate::read::{self, RangeReader};
use crate::sql::{ident, table_ref};

/// The foreign keys of a table resource's `tableConstraints.foreignKeys`; the parent named
/// `dataset.table`, as this source names tables.
fn foreign_keys(declared: &Json) -> Vec<ForeignKey> {
    let text = |v: &Json| v.as_str().unwrap_or_default().to_string();
    declared
        .as_array()
        .map(|fks| {
            fks.iter()
                .map(|fk| {
                    let pairs = fk["columnReferences"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    ForeignKey {
                        name: fk["name"].as_str().map(str::to_string),
                        columns: pairs
                            .iter()
                            .map(|p| text(&p["referencingColumn"]))
                            .collect(),
                        referenced_table: TableName {
                            schema: Some(text(&fk["referencedTable"]["datasetId"])),
                            name: text(&fk["referencedTable"]["tableId"]),
                        },
                        referenced_columns: pairs
                            .iter()
                            .map(|p| text(&p["referencedColumn"]))
                            .collect(),
                        definition: None,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads one BigQuery dataset.
#[derive(Debug)]
pub struct BqSource {
    client: BqClient,
    dataset: String,
}

impl BqSource {
    /// A source reading `dataset` at `endpoint`.
    pub fn new(endpoint: BqEndpoint, dataset: &str) -> Result<Self> {
        Ok(BqSource {
            client: BqClient::new(endpoint)?,
            dataset: dataset.to_string(),
        })
    }

    fn table_sql(&self, table: &TableName) -> String {
        table_ref(self.client.project(), &self.dataset, &table.name)
    }
}

/// A table resource's columns and primary key, as the table `name`.
pub fn table_of(name: TableName, resource: &Json) -> Result<TableInfo> {
    let columns = resource["schema"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| field_type(&name, f).map(|(c, _)| c))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    let key: Vec<&str> = resource["tableConstraints"]["primaryKey"]["columns"]
        .as_array()
        .map(|k| k.iter().filter_map(|c| c.as_str()).collect())
        .unwrap_or_default();
    Ok(TableInfo::new(name, Schema::new(columns, &key)?))
}

/// The migrate type of a table resource's field; an error naming table, column and type.
pub fn field_type(table: &TableName, field: &Json) -> Result<(Column, bool)> {
    let name = field["name"].as_str().unwrap_or_default().to_string();
    let ty = field["type"].as_str().unwrap_or_default();
    let param = |k: &str| field[k].as_str().and_then(|v| v.parse::<u32>().ok());
    let scalar = match ty {
        "INTEGER" | "INT64" => DataType::Int64,
        "FLOAT" | "FLOAT64" => DataType::Float64,
        "NUMERIC" => match param("precision") {
            Some(p) => DataType::Decimal {
                precision: Some(p),
                scale: Some(param("scale").unwrap_or(0)),
            },
            None => DataType::Decimal {
                precision: Some(38),
                scale: Some(9),
            },
        },
        "BIGNUMERIC" => match param("precision") {
            Some(p) => DataType::Decimal {
                precision: Some(p),
                scale: Some(param("scale").unwrap_or(0)),
            },
            None => DataType::Decimal {
                precision: None,
                scale: None,
            },
        },
        "BOOLEAN" | "BOOL" => DataType::Bool,
        "STRING" => DataType::Text {
            max_len: param("maxLength"),
        },
        "BYTES" => DataType::Bytes,
        "DATE" => DataType::Date,
        "TIME" => DataType::Time,
        "DATETIME" => DataType::Timestamp,
        "TIMESTAMP" => DataType::TimestampTz,
        "JSON" => DataType::Json,
        "INTERVAL" => DataType::Interval,
        other => {
            return Err(Error::schema(format!(
                "table {table}, column {name:?}: BigQuery type {other} has no lossless migrate type"
            ))
            .table(table))
        }
    };
    let mode = field["mode"].as_str().unwrap_or("NULLABLE");
    let data_type = match mode {
        "REPEATED" => DataType::Array(Box::new(scalar)),
        _ => scalar,
    };
    let mut column = Column::new(&name, data_type);
    if mode == "REQUIRED" {
        column = column.not_null();
    }
    Ok((column, mode == "REPEATED"))
}

impl BqSource {
    /// Chunk boundaries of a single `INT64` key: even steps between its minimum and maximum
    /// (one aggregate, no sort); `None` for an empty table.
    async fn even_bounds(
        &self,
        table: &TableInfo,
        chunk_rows: u64,
    ) -> Result<Option<Vec<Vec<Value>>>> {
        let key = table.primary_key()[0];
        let r = self
            .client
            .query(&format!(
                "SELECT MIN({0}), MAX({0}), COUNT(*) FROM {1}",
                ident(key),
                self.table_sql(&table.name)
            ))
            .await
            .map_err(|e| e.table(&table.name))?;
        let cell = |i: usize| {
            r.rows
                .first()
                .and_then(|row| row.get(i))
                .and_then(|c| c.as_str())
                .and_then(|s| s.parse::<i64>().ok())
        };
        let (Some(lo), Some(hi), Some(rows)) = (cell(0), cell(1), cell(2)) else {
            return Ok(None);
        };
        Ok(Some(
            even_bounds(lo, hi, rows as u64, chunk_rows)
                .into_iter()
                .map(|b| vec![Value::Int64(b)])
                .collect(),
        ))
    }

    /// Chunk boundaries of any other key: every `chunk_rows`-th key in key order (one query
    /// numbering the rows by key — BigQuery sorts the key columns once).
    async fn ranked_bounds(&self, table: &TableInfo, chunk_rows: u64) -> Result<Vec<Vec<Value>>> {
        let key: Vec<String> = table.primary_key().iter().map(|k| ident(k)).collect();
        let key = key.join(", ");
        let r = self
            .client
            .query(&format!(
                "SELECT {key} FROM (SELECT {key}, ROW_NUMBER() OVER (ORDER BY {key}) AS rn FROM {}) \
                 WHERE rn > 1 AND MOD(rn - 1, {}) = 0 ORDER BY {key}",
                self.table_sql(&table.name),
                chunk_rows.max(1)
            ))
            .await
            .map_err(|e| e.table(&table.name))?;
        let columns: Vec<&Column> = table
            .schema
            .primary_key
            .iter()
            .map(|i| &table.schema.columns[*i])
            .collect();
        r.rows
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&columns)
                    .map(|(cell, c)| {
                        read_cell(&c.data_type, cell, &format!("{}.{}", table.name, c.name))
                    })
                    .collect()
            })
            .collect()
    }
}

#[async_trait]
impl Source for BqSource {
    fn kind(&self) -> &'static str {
        "bigquery"
    }

    async fn discover(&self, filter: &TableFilter) -> Result<Vec<TableInfo>> {
        let mut out = Vec::new();
        for id in self.client.list_tables(&self.dataset).await? {
            // The sink's own bookkeeping and staging tables are not data.
            if id.starts_with("_migrate") {
                continue;
            }
            let name = TableName {
                schema: Some(self.dataset.clone()),
                name: id.clone(),
            };
            if !filter.matches(&name) {
                continue;
            }
            let Some(resource) = self.client.get_table(&self.dataset, &id).await? else {
                continue;
            };
            let mut info = table_of(name, &resource)?;
            info.foreign_keys = foreign_keys(&resource["tableConstraints"]["foreignKeys"]);
            let num = |k: &str| {
                resource[k]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            info.estimated_rows = num("numRows");
            info.estimated_bytes = num("numBytes");
            out.push(info);
        }
        Ok(out)
    }

    async fn chunks(&self, table: &TableInfo, chunk_rows: u64) -> Result<Vec<ChunkSpec>> {
        let key = &table.schema.primary_key;
        let types: Vec<&DataType> = key
            .iter()
            .map(|i| &table.schema.columns[*i].data_type)
            .collect();
        let bounds = match types.as_slice() {
            [] => None,
            [DataType::Int64] => self.even_bounds(table, chunk_rows).await?,
            t if t.iter().all(|t| orders_alike(t)) => {
                Some(self.ranked_bounds(table, chunk_rows).await?)
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
        let reader = RangeReader::open(
            &self.client,
            table,
            &self.table_sql(&table.name),
            &chunk.range,
            batch_rows,
        )
        .await
        .map_err(|e| e.chunk(chunk.index))?;
        Ok(Box::new(reader))
    }

    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum> {
        read::checksum(&self.client, table, &self.table_sql(&table.name), range).await
    }

    async fn checksum_ranges(
        &self,
        table: &TableInfo,
        ranges: &[KeyRange],
    ) -> Result<Vec<RowChecksum>> {
        let sql = self.table_sql(&table.name);
        read::checksum_ranges(&self.client, table, &sql, ranges).await
    }

    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        read::rows_by_key(&self.client, table, &self.table_sql(&table.name), keys).await
    }
}
