//! An in-memory [`Source`] with fault injection.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::faults::{Faults, Op};
use super::fixtures::Fixture;
use crate::batch::{Batch, BatchReader, Row};
use crate::checksum::RowChecksum;
use crate::chunk::{ChunkSpec, KeyRange};
use crate::encoded::{EncodedBatch, Encoding, RowCodec};
use crate::error::{Error, Result};
use crate::schema::{Schema, TableInfo, TableName};
use crate::source::{ChangeRequest, Source, TableFilter};
use crate::value::{cmp_keys, Value};

/// Each table with its rows, kept in key order and shared cheaply with readers.
type Tables = BTreeMap<TableName, (TableInfo, Arc<Vec<Row>>)>;

/// Tables held in memory. Rows are kept in primary-key order.
#[derive(Default)]
pub struct MemorySource {
    tables: Mutex<Tables>,
    faults: Arc<Faults>,
    reads: Mutex<Vec<(TableName, u32)>>,
    encoded: bool,
}

impl MemorySource {
    /// An empty source obeying `faults`.
    pub fn new(faults: Arc<Faults>) -> Self {
        MemorySource {
            faults,
            ..MemorySource::default()
        }
    }

    /// A source holding the fixtures.
    pub fn with_fixtures(fixtures: &[Fixture], faults: Arc<Faults>) -> Self {
        let s = MemorySource::new(faults);
        for f in fixtures {
            s.add_table(f.table.clone(), f.rows.clone());
        }
        s
    }

    /// Readers also offer their rows encoded ([`MEMORY_ROWS`], which [`super::MemorySink`]
    /// takes as-is), so the executor's pass-through path runs against in-memory backends.
    pub fn with_encoded_rows(mut self) -> Self {
        self.encoded = true;
        self
    }

    /// A reader over `rows`, offering them encoded too where asked to.
    fn reader(
        &self,
        table: &TableInfo,
        rows: Vec<Row>,
        batch_rows: usize,
        fault: Option<(usize, Error)>,
    ) -> MemReader {
        let encoding = self.encoded.then(|| {
            Arc::new(Encoding {
                format: MEMORY_ROWS,
                column_types: vec![],
                codec: Arc::new(MemRowCodec {
                    rows: Arc::new(rows.clone()),
                }),
            })
        });
        MemReader {
            schema: table.schema.clone(),
            rows: rows.into_iter(),
            batch_rows: batch_rows.max(1),
            fault,
            sent: 0,
            encoding,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces) a table. Estimates are refreshed from the rows.
    pub fn add_table(&self, mut info: TableInfo, mut rows: Vec<Row>) {
        sort_rows(&info.schema, &mut rows);
        info.estimated_rows = rows.len() as u64;
        info.estimated_bytes = rows
            .iter()
            .map(|r| crate::batch::row_byte_size(r) as u64)
            .sum();
        self.lock()
            .insert(info.name.clone(), (info, Arc::new(rows)));
    }

    /// Inserts or replaces rows by key (for incremental tests).
    pub fn upsert_rows(&self, table: &TableName, new_rows: Vec<Row>) -> Result<()> {
        let mut tables = self.lock();
        let (info, rows) = tables
            .get_mut(table)
            .ok_or_else(|| Error::not_found(format!("no table {table}")))?;
        let rows = Arc::make_mut(rows);
        for r in new_rows {
            let key = info.schema.key_of(&r);
            match rows.iter().position(|x| info.schema.key_of(x) == key) {
                Some(i) if !key.is_empty() => rows[i] = r,
                _ => rows.push(r),
            }
        }
        sort_rows(&info.schema, rows);
        Ok(())
    }

    /// Every (table, chunk) `read_chunk` was called for, in call order.
    pub fn reads(&self) -> Vec<(TableName, u32)> {
        self.reads.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn table(&self, name: &TableName) -> Result<(TableInfo, Arc<Vec<Row>>)> {
        self.lock()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no table {name}")).table(name))
    }

    /// Rows in `range`, found by binary search (rows are kept in key order).
    fn rows_in(&self, table: &TableInfo, range: &KeyRange) -> Result<Vec<Row>> {
        let (info, rows) = self.table(&table.name)?;
        let schema = &info.schema;
        if schema.primary_key.is_empty() {
            return Ok(rows.to_vec());
        }
        let below = |bound: &Option<Vec<Value>>| match bound {
            Some(b) => rows.partition_point(|r| cmp_keys(&schema.key_of(r), b).is_lt()),
            None => rows.len(),
        };
        let start = if range.lower.is_some() {
            below(&range.lower)
        } else {
            0
        };
        let end = below(&range.upper);
        Ok(rows[start..end.max(start)].to_vec())
    }
}

fn sort_rows(schema: &Schema, rows: &mut [Row]) {
    if !schema.primary_key.is_empty() {
        rows.sort_by(|a, b| cmp_keys(&schema.key_of(a), &schema.key_of(b)));
    }
}

/// The in-memory backends' encoding: a row is its index (u64, big-endian) into the chunk's
/// rows, which the codec holds. Not a wire format; it exercises the plumbing.
pub const MEMORY_ROWS: &str = "memory-rows";

/// Reads [`MEMORY_ROWS`] rows.
struct MemRowCodec {
    rows: Arc<Vec<Row>>,
}

impl RowCodec for MemRowCodec {
    fn decode_row(&self, row: &[u8]) -> Result<Row> {
        let i = <[u8; 8]>::try_from(row)
            .map(u64::from_be_bytes)
            .map_err(|_| Error::validation("not a memory-rows row"))?;
        self.rows
            .get(i as usize)
            .cloned()
            .ok_or_else(|| Error::validation(format!("memory-rows row {i} does not exist")))
    }

    fn checksum_text(&self, row: &[u8], out: &mut String) -> Result<()> {
        crate::checksum::encode_row(&self.decode_row(row)?, out);
        Ok(())
    }
}

/// Streams rows in batches, failing after `fail_after` rows when a fault is scripted.
struct MemReader {
    schema: Arc<Schema>,
    rows: std::vec::IntoIter<Row>,
    batch_rows: usize,
    fault: Option<(usize, Error)>,
    sent: usize,
    encoding: Option<Arc<Encoding>>,
}

#[async_trait]
impl BatchReader for MemReader {
    fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        let Some(rows) = self.next_rows()? else {
            return Ok(None);
        };
        Ok(Some(Batch::new(self.schema.clone(), rows)))
    }

    fn encoding(&self) -> Option<&Arc<Encoding>> {
        self.encoding.as_ref()
    }

    async fn next_encoded(&mut self) -> Result<Option<EncodedBatch>> {
        let encoding = self
            .encoding
            .clone()
            .ok_or_else(|| Error::fatal("this reader has no encoded form"))?;
        let first = self.sent;
        let Some(rows) = self.next_rows()? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(rows.len() * 8);
        for i in first..first + rows.len() {
            bytes.extend_from_slice(&(i as u64).to_be_bytes());
        }
        let ends = (1..=rows.len()).map(|n| n * 8).collect();
        Ok(Some(EncodedBatch::new(encoding, bytes.into(), ends)))
    }
}

impl MemReader {
    /// The next rows, or the scripted fault once its row count is reached.
    fn next_rows(&mut self) -> Result<Option<Vec<Row>>> {
        let mut limit = self.batch_rows;
        if let Some((after, _)) = &self.fault {
            if self.sent >= *after {
                let (_, e) = self
                    .fault
                    .take()
                    .ok_or_else(|| Error::fatal("fault taken"))?;
                return Err(e);
            }
            limit = limit.min(after - self.sent);
        }
        let rows: Vec<Row> = self.rows.by_ref().take(limit).collect();
        if rows.is_empty() {
            return match self.fault.take() {
                Some((_, e)) => Err(e),
                None => Ok(None),
            };
        }
        self.sent += rows.len();
        Ok(Some(rows))
    }
}

#[async_trait]
impl Source for MemorySource {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn discover(&self, filter: &TableFilter) -> Result<Vec<TableInfo>> {
        Ok(self
            .lock()
            .values()
            .filter(|(t, _)| filter.matches(&t.name))
            .map(|(t, _)| t.clone())
            .collect())
    }

    async fn chunks(&self, table: &TableInfo, chunk_rows: u64) -> Result<Vec<ChunkSpec>> {
        let (info, rows) = self.table(&table.name)?;
        if info.schema.primary_key.is_empty() || rows.is_empty() {
            return Ok(vec![ChunkSpec::whole_table(info.name, rows.len() as u64)]);
        }
        let n = chunk_rows.max(1) as usize;
        let starts: Vec<Vec<Value>> = rows
            .iter()
            .step_by(n)
            .map(|r| info.schema.key_of(r))
            .collect();
        Ok((0..starts.len())
            .map(|i| ChunkSpec {
                table: info.name.clone(),
                index: i as u32,
                range: KeyRange::between(
                    (i > 0).then(|| starts[i].clone()),
                    starts.get(i + 1).cloned(),
                ),
                estimated_rows: n.min(rows.len() - i * n) as u64,
                operation: crate::Operation::CopyRows,
            })
            .collect())
    }

    async fn read_chunk(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        batch_rows: usize,
    ) -> Result<Box<dyn BatchReader>> {
        self.reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((table.name.clone(), chunk.index));
        let fault = self.faults.begin(Op::Read).await;
        if let Some((0, e)) = fault {
            return Err(e.table(&table.name).chunk(chunk.index));
        }
        let rows = self.rows_in(table, &chunk.range)?;
        Ok(Box::new(self.reader(table, rows, batch_rows, fault)))
    }

    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum> {
        if let Some((_, e)) = self.faults.begin(Op::Checksum).await {
            return Err(e.table(&table.name));
        }
        Ok(RowChecksum::of_rows(&self.rows_in(table, range)?))
    }

    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let (info, rows) = self.table(&table.name)?;
        Ok(rows
            .iter()
            .filter(|r| keys.contains(&info.schema.key_of(r)))
            .cloned()
            .collect())
    }

    async fn max_cursor(&self, table: &TableInfo, cursor_column: &str) -> Result<Option<Value>> {
        let (info, rows) = self.table(&table.name)?;
        let ci = cursor_index(&info, cursor_column)?;
        Ok(rows
            .iter()
            .map(|r| r[ci].clone())
            .filter(|v| !v.is_null())
            .max_by(|a, b| a.cmp_key(b)))
    }

    async fn read_changes(
        &self,
        table: &TableInfo,
        request: &ChangeRequest,
        batch_rows: usize,
    ) -> Result<Box<dyn BatchReader>> {
        let fault = self.faults.begin(Op::Read).await;
        if let Some((0, e)) = fault {
            return Err(e.table(&table.name));
        }
        let (info, rows) = self.table(&table.name)?;
        let ci = cursor_index(&info, &request.cursor_column)?;
        // The same selection as PgSource: cursor not NULL, >= from, <= upper.
        let mut changed: Vec<Row> = rows
            .iter()
            .filter(|r| !r[ci].is_null() && r[ci].cmp_key(&request.upper).is_le())
            .filter(|r| {
                request
                    .from
                    .as_ref()
                    .is_none_or(|f| r[ci].cmp_key(f).is_ge())
            })
            .cloned()
            .collect();
        changed.sort_by(|a, b| {
            a[ci]
                .cmp_key(&b[ci])
                .then_with(|| cmp_keys(&info.schema.key_of(a), &info.schema.key_of(b)))
        });
        Ok(Box::new(self.reader(table, changed, batch_rows, fault)))
    }
}

fn cursor_index(info: &TableInfo, column: &str) -> Result<usize> {
    info.schema.index_of(column).ok_or_else(|| {
        Error::config(format!("cursor column {column:?} is not a column")).table(&info.name)
    })
}
