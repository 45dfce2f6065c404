//! [`PgSource`]: discovery, key-range chunking, COPY BINARY reads under one exported snapshot,
//! server-side checksums, incremental reads.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use migrate_core::objects::Views;
use migrate_core::source::ChangeRequest;
use migrate_core::{
    BatchReader, ChunkSpec, DataType, Error, KeyRange, Result, Row, RowChecksum, SequenceValue,
    Source, TableFilter, TableInfo, TableName, Value,
};
use tokio::sync::Mutex;

use crate::codec::PgValue;
use crate::config::PgConfig;
use crate::discovery::{discover, PgTable};
use crate::error::{is_invalid_snapshot, pg_error, pool_error};
use crate::reader::{self, CopyReader};
use crate::sql::{self, ident, keys_predicate, literal, range_predicate};

/// A transaction kept open so its snapshot can be shared by every reader of the run.
struct Snapshot {
    id: String,
    _holder: tokio_postgres::Client,
}

/// Reads from Postgres.
///
/// **Consistency.** With snapshots on (the default), every chunk, checksum and sample this
/// source reads sees the database as of one moment: the first read exports a snapshot
/// (`pg_export_snapshot`) from a transaction held open for the source's lifetime, and every
/// reader joins it (`SET TRANSACTION SNAPSHOT`), so children never reference parents the
/// target lacks. A *resumed* run is a new process with a new snapshot: chunks completed before
/// the interruption reflect the old moment, the rest the new one. Each chunk is still internally
/// consistent and verification compares each chunk with the source as the new snapshot sees it,
/// so rows changed between the two runs are reported, never silently kept. If the server loses
/// the snapshot (a restart), the source exports a new one and logs a warning.
pub struct PgSource {
    config: PgConfig,
    pool: Pool,
    tables: std::sync::Mutex<HashMap<TableName, Arc<PgTable>>>,
    snapshot: Mutex<Option<Snapshot>>,
    use_snapshot: bool,
}

impl std::fmt::Debug for PgSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSource")
            .field("config", &self.config)
            .finish()
    }
}

impl PgSource {
    /// A source for the database at `url`.
    pub fn new(url: &str) -> Result<Self> {
        Self::with_config(PgConfig::from_url(url)?)
    }

    /// A source from a parsed configuration.
    pub fn with_config(config: PgConfig) -> Result<Self> {
        Ok(PgSource {
            pool: config.pool()?,
            config,
            tables: std::sync::Mutex::new(HashMap::new()),
            snapshot: Mutex::new(None),
            use_snapshot: true,
        })
    }

    /// Reads without a shared snapshot (each chunk sees the database as of its own start).
    pub fn without_snapshot(mut self) -> Self {
        self.use_snapshot = false;
        self
    }

    async fn conn(&self) -> Result<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| pool_error(e, self.config.redacted()))
    }

    async fn table(&self, t: &TableInfo) -> Result<Arc<PgTable>> {
        if let Some(m) = self
            .tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&t.name)
        {
            return Ok(m.clone());
        }
        let filter = TableFilter {
            include: vec![t.name.to_string()],
            exclude: vec![],
            ..Default::default()
        };
        let conn = self.conn().await?;
        let found = discover(&conn, &filter).await?;
        let m = found
            .into_iter()
            .find(|p| p.info.name == t.name)
            .map(Arc::new)
            .ok_or_else(|| {
                Error::not_found(format!("source table {} does not exist", t.name)).table(&t.name)
            })?;
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(t.name.clone(), m.clone());
        Ok(m)
    }

    /// The shared snapshot's id, exporting one if needed (or again after it was lost).
    async fn snapshot_id(&self, renew: bool) -> Result<Option<String>> {
        if !self.use_snapshot {
            return Ok(None);
        }
        let mut guard = self.snapshot.lock().await;
        if renew {
            if guard.is_some() {
                tracing::warn!("the exported snapshot was lost (server restart?); continuing from a new snapshot");
            }
            *guard = None;
        }
        if let Some(s) = guard.as_ref() {
            return Ok(Some(s.id.clone()));
        }
        let holder = self.config.connect().await?;
        holder
            .batch_execute("SET idle_in_transaction_session_timeout = 0; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| pg_error(e, "opening the snapshot transaction"))?;
        let id: String = holder
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| pg_error(e, "exporting a snapshot"))?
            .get(0);
        *guard = Some(Snapshot {
            id: id.clone(),
            _holder: holder,
        });
        Ok(Some(id))
    }

    /// A pooled connection inside a read-only transaction on the shared snapshot.
    async fn reader_conn(&self) -> Result<Object> {
        for attempt in 0..2 {
            let conn = self.conn().await?;
            let Some(id) = self.snapshot_id(attempt > 0).await? else {
                conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
                    .map_err(|e| pg_error(e, "starting a read transaction"))?;
                return Ok(conn);
            };
            let sql = format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                sql::quote(&id)
            );
            match conn.batch_execute(&sql).await {
                Ok(()) => return Ok(conn),
                Err(e) if is_invalid_snapshot(&e) => {
                    let _ = conn.batch_execute("ROLLBACK").await;
                    continue;
                }
                Err(e) => {
                    let _ = conn.batch_execute("ROLLBACK").await;
                    return Err(pg_error(e, "joining the snapshot"));
                }
            }
        }
        Err(Error::transient("could not join an exported snapshot"))
    }

    async fn copy(
        &self,
        t: &PgTable,
        where_sql: &str,
        order: &str,
        batch_rows: usize,
    ) -> Result<Box<dyn BatchReader>> {
        let conn = self.reader_conn().await?;
        let sql = format!(
            "COPY (SELECT {} FROM {} WHERE {where_sql}{order}) TO STDOUT (FORMAT binary)",
            t.exprs.join(", "),
            sql::table(&t.info.name)
        );
        let stream = conn
            .copy_out(sql.as_str())
            .await
            .map_err(|e| pg_error(e, &format!("COPY from {}", t.info.name)))?;
        Ok(Box::new(CopyReader::new(
            conn,
            stream,
            t.wire.clone(),
            t.info.schema.clone(),
            batch_rows,
            t.info.name.to_string(),
        )))
    }

    async fn select_rows(&self, t: &PgTable, where_sql: &str) -> Result<Vec<Row>> {
        let mut reader = self.copy(t, where_sql, "", 10_000).await?;
        migrate_core::collect_rows(&mut *reader).await
    }
}

/// Integer-typed single-column keys can be split arithmetically from min and max.
fn integer_key(t: &TableInfo) -> Option<&str> {
    match t.schema.primary_key.as_slice() {
        [i] => matches!(
            t.schema.columns[*i].data_type,
            DataType::Int16 | DataType::Int32 | DataType::Int64
        )
        .then(|| t.schema.columns[*i].name.as_str()),
        _ => None,
    }
}

fn specs(t: &TableInfo, bounds: Vec<Vec<Value>>, per_chunk: u64) -> Vec<ChunkSpec> {
    let n = bounds.len() + 1;
    (0..n)
        .map(|i| ChunkSpec {
            table: t.name.clone(),
            index: i as u32,
            range: KeyRange::between(
                if i == 0 {
                    None
                } else {
                    Some(bounds[i - 1].clone())
                },
                bounds.get(i).cloned(),
            ),
            estimated_rows: per_chunk,
            operation: migrate_core::Operation::CopyRows,
        })
        .collect()
}

#[async_trait]
impl Source for PgSource {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn discover(&self, filter: &TableFilter) -> Result<Vec<TableInfo>> {
        let conn = self.conn().await?;
        let found = discover(&conn, filter).await?;
        let mut cache = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        Ok(found
            .into_iter()
            .map(|t| {
                let info = t.info.clone();
                cache.insert(info.name.clone(), Arc::new(t));
                info
            })
            .collect())
    }

    async fn sequence_values(&self, table: &TableInfo) -> Result<Vec<SequenceValue>> {
        if table.objects.sequences.is_empty() {
            return Ok(Vec::new());
        }
        // Read now, outside the run's snapshot: sequences are not transactional, and the
        // target must continue after whatever the source handed out so far.
        let conn = self.conn().await?;
        let mut out = Vec::new();
        for s in &table.objects.sequences {
            let q = format!("SELECT last_value, is_called FROM {}", sql::table(&s.name));
            let r = conn
                .query_one(&q, &[])
                .await
                .map_err(|e| pg_error(e, &format!("reading sequence {}", s.name)))?;
            out.push(SequenceValue {
                name: s.name.clone(),
                last_value: r.get(0),
                is_called: r.get(1),
            });
        }
        Ok(out)
    }

    async fn views(&self, tables: &[TableInfo]) -> Result<Views> {
        let conn = self.conn().await?;
        let names: Vec<TableName> = tables.iter().map(|t| t.name.clone()).collect();
        crate::catalog::views(&conn, &names).await
    }

    async fn chunks(&self, table: &TableInfo, chunk_rows: u64) -> Result<Vec<ChunkSpec>> {
        let t = self.table(table).await?;
        let info = &t.info;
        let whole = || {
            vec![ChunkSpec::whole_table(
                info.name.clone(),
                info.estimated_rows,
            )]
        };
        if info.schema.primary_key.is_empty() {
            return Ok(whole());
        }
        let conn = self.conn().await?;
        let name = sql::table(&info.name);
        let chunk_rows = chunk_rows.max(1);
        if let Some(k) = integer_key(info) {
            let q = format!(
                "SELECT min({0})::bigint, max({0})::bigint FROM {name}",
                ident(k)
            );
            let r = conn
                .query_one(&q, &[])
                .await
                .map_err(|e| pg_error(e, &format!("key bounds of {}", info.name)))?;
            let (Some(min), Some(max)) = (r.get::<_, Option<i64>>(0), r.get::<_, Option<i64>>(1))
            else {
                return Ok(whole());
            };
            let rows = info.estimated_rows.max(1);
            let n = rows.div_ceil(chunk_rows).max(1) as i128;
            let span = i128::from(max) - i128::from(min) + 1;
            let step = (span / n).max(1);
            let bounds: Vec<Vec<Value>> = (1..n)
                .map(|i| i128::from(min) + step * i)
                .filter(|b| *b <= i128::from(max))
                .map(|b| vec![Value::Int64(b as i64)])
                .collect();
            return Ok(specs(info, bounds, rows.div_ceil(n as u64)));
        }
        // Other keys: boundaries from a sample (exact, from an index-ordered scan, when small).
        let keys: Vec<String> = info.primary_key().into_iter().map(ident).collect();
        let key_list = keys.join(", ");
        let rows = info.estimated_rows;
        let chunks = rows.div_ceil(chunk_rows).max(1);
        if chunks <= 1 {
            return Ok(whole());
        }
        let q = if rows <= chunk_rows * 20 {
            format!(
                "SELECT {key_list} FROM (SELECT {key_list}, row_number() OVER (ORDER BY {key_list}) AS rn FROM {name}) s WHERE rn % {chunk_rows} = 1 AND rn > 1 ORDER BY {key_list}"
            )
        } else {
            let pct = ((chunks * 50) as f64 * 100.0 / rows as f64).clamp(0.0001, 100.0);
            format!(
                "SELECT {key_list} FROM {name} TABLESAMPLE BERNOULLI ({pct}) ORDER BY {key_list}"
            )
        };
        let sample = conn
            .query(&q, &[])
            .await
            .map_err(|e| pg_error(e, &format!("sampling keys of {}", info.name)))?;
        let sampled: Vec<Vec<Value>> = sample
            .iter()
            .map(|r| {
                (0..keys.len())
                    .map(|i| r.try_get::<_, PgValue>(i).map(|v| v.0))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| pg_error(e, "decoding sampled keys"))?;
        let bounds: Vec<Vec<Value>> = if rows <= chunk_rows * 20 {
            sampled
        } else {
            let every = (sampled.len() as u64 / chunks).max(1) as usize;
            let mut b: Vec<Vec<Value>> = sampled.into_iter().skip(every).step_by(every).collect();
            b.dedup();
            b
        };
        Ok(specs(info, bounds, chunk_rows))
    }

    async fn read_chunk(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        batch_rows: usize,
    ) -> Result<Box<dyn BatchReader>> {
        let t = self.table(table).await?;
        let pred = range_predicate(&t.info.schema, &chunk.range)?;
        self.copy(&t, &pred, "", batch_rows)
            .await
            .map_err(|e| e.table(&table.name).chunk(chunk.index))
    }

    async fn checksum_ranges(
        &self,
        table: &TableInfo,
        ranges: &[KeyRange],
    ) -> Result<Vec<RowChecksum>> {
        let t = self.table(table).await?;
        let Some(bucket) = sql::range_bucket(&t.info.schema, ranges)? else {
            return migrate_core::checksum::per_range(ranges, |r| self.checksum(table, r)).await;
        };
        let q = format!(
            "COPY (SELECT {bucket}, {} FROM {}) TO STDOUT (FORMAT binary)",
            t.exprs.join(", "),
            sql::table(&t.info.name)
        );
        // The source as it stands now, in one consistent view of its own — not the run's
        // exported snapshot, which would only show what was copied.
        let conn = self.conn().await?;
        conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| pg_error(e, "starting a read transaction"))?;
        reader::checksum_ranges(
            conn,
            &q,
            t.wire.clone(),
            t.info.schema.clone(),
            ranges.len(),
            t.info.name.to_string(),
        )
        .await
        .map_err(|e| e.table(&table.name))
    }

    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum> {
        let t = self.table(table).await?;
        let natives: Vec<Option<String>> = t
            .info
            .schema
            .columns
            .iter()
            .map(|c| c.source_type.clone())
            .collect();
        match sql::checksum_query(&t.info.name, &t.info.schema, &natives, range)? {
            Some(q) => {
                let conn = self.reader_conn().await?;
                let r = conn
                    .query_one(&q, &[])
                    .await
                    .map_err(|e| pg_error(e, &format!("checksum of {}", table.name)))?;
                let _ = conn.batch_execute("COMMIT").await;
                Ok(RowChecksum {
                    count: r.get::<_, i64>(0) as u64,
                    sum_hi: sql::wrap_sum(&r.get::<_, String>(1))?,
                    sum_lo: sql::wrap_sum(&r.get::<_, String>(2))?,
                })
            }
            None => {
                // Types Postgres cannot render canonically: stream the rows and hash them here.
                let pred = range_predicate(&t.info.schema, range)?;
                let mut reader = self.copy(&t, &pred, "", 10_000).await?;
                let mut sum = RowChecksum::new();
                while let Some(b) = reader.next_batch().await? {
                    sum.merge(&RowChecksum::of_rows(b.rows()));
                }
                Ok(sum)
            }
        }
    }

    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let t = self.table(table).await?;
        let mut out = Vec::with_capacity(keys.len());
        for group in keys.chunks(500) {
            out.extend(
                self.select_rows(&t, &keys_predicate(&t.info.schema, group)?)
                    .await?,
            );
        }
        Ok(out)
    }

    async fn max_cursor(&self, table: &TableInfo, cursor_column: &str) -> Result<Option<Value>> {
        let t = self.table(table).await?;
        let i = t.info.schema.index_of(cursor_column).ok_or_else(|| {
            Error::config(format!(
                "cursor column {cursor_column:?} is not a column of {}",
                table.name
            ))
        })?;
        let conn = self.reader_conn().await?;
        let q = format!(
            "SELECT max({}) FROM {}",
            t.exprs[i],
            sql::table(&t.info.name)
        );
        let r = conn
            .query_one(&q, &[])
            .await
            .map_err(|e| pg_error(e, "reading the cursor's maximum"))?;
        let _ = conn.batch_execute("COMMIT").await;
        let v: PgValue = r
            .try_get(0)
            .map_err(|e| pg_error(e, "decoding the cursor's maximum"))?;
        Ok((!v.0.is_null()).then_some(v.0))
    }

    async fn decimal_extent(&self, table: &TableInfo, column: &str) -> Result<Option<(u32, u32)>> {
        let t = self.table(table).await?;
        let c = sql::ident(column);
        // Finite values only: NaN and infinities have no digits to count (a target without
        // them refuses those rows by name when they arrive).
        let q = format!(
            "SELECT max(scale({c}))::int8, max(length(trunc(abs({c}))::text))::int8 FROM {} \
             WHERE {c} IS NOT NULL AND {c} NOT IN ('NaN', 'Infinity', '-Infinity')",
            sql::table(&t.info.name)
        );
        let conn = self.reader_conn().await?;
        let r = conn
            .query_one(&q, &[])
            .await
            .map_err(|e| pg_error(e, "sizing a decimal column").table(&table.name))?;
        let _ = conn.batch_execute("COMMIT").await;
        let get = |i: usize| -> Result<Option<u32>> {
            let v: Option<i64> = r
                .try_get(i)
                .map_err(|e| pg_error(e, "decoding a decimal column's size"))?;
            Ok(v.and_then(|v| u32::try_from(v).ok()))
        };
        Ok(match (get(1)?, get(0)?) {
            (Some(digits), Some(scale)) => Some((digits, scale)),
            _ => None,
        })
    }

    async fn read_changes(
        &self,
        table: &TableInfo,
        request: &ChangeRequest,
        batch_rows: usize,
    ) -> Result<Box<dyn BatchReader>> {
        let t = self.table(table).await?;
        let cursor = ident(&request.cursor_column);
        let keys: Vec<String> = t.info.primary_key().into_iter().map(ident).collect();
        let mut cond = format!(
            "{cursor} IS NOT NULL AND {cursor} <= {}",
            literal(&request.upper)?
        );
        if let Some(from) = &request.from {
            cond.push_str(&format!(" AND {cursor} >= {}", literal(from)?));
        }
        let order = format!(" ORDER BY {cursor}, {}", keys.join(", "));
        self.copy(&t, &cond, &order, batch_rows).await
    }
}
