//! An in-memory [`Sink`] with fault injection. It is deliberately *not* transactional: a failed
//! write leaves the rows it got through behind, the harder case for idempotency.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::faults::{Faults, Op};
use crate::batch::{BatchReader, Row};
use crate::checksum::RowChecksum;
use crate::chunk::{ChunkSpec, KeyRange};
use crate::error::{Error, Result};
use crate::schema::{TableInfo, TableName};
use crate::sink::{
    Preflight, PrepareMode, PrepareOptions, Prepared, Sink, SinkCapabilities, WriteStats,
};
use crate::value::{cmp_keys, Value};

/// One `write_chunk` call as the sink saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteLog {
    /// Table written.
    pub table: TableName,
    /// Chunk index.
    pub chunk: u32,
    /// Whether the write returned `Ok`.
    pub ok: bool,
}

#[derive(Default)]
struct State {
    tables: BTreeMap<TableName, (TableInfo, Vec<Row>)>,
    backups: BTreeMap<String, (TableInfo, Vec<Row>)>,
    log: Vec<WriteLog>,
}

/// Tables held in memory.
#[derive(Default)]
pub struct MemorySink {
    state: Mutex<State>,
    faults: Arc<Faults>,
}

impl MemorySink {
    /// An empty sink obeying `faults`.
    pub fn new(faults: Arc<Faults>) -> Self {
        MemorySink {
            faults,
            ..MemorySink::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rows of a table, sorted by key (`None` if the table does not exist).
    pub fn rows(&self, table: &TableName) -> Option<Vec<Row>> {
        self.lock().tables.get(table).map(|(info, rows)| {
            let mut rows = rows.clone();
            if !info.schema.primary_key.is_empty() {
                rows.sort_by(|a, b| cmp_keys(&info.schema.key_of(a), &info.schema.key_of(b)));
            }
            rows
        })
    }

    /// Every write attempt so far, in order.
    pub fn write_log(&self) -> Vec<WriteLog> {
        self.lock().log.clone()
    }

    /// Drops a table behind the executor's back (to test reconciliation on resume).
    pub fn drop_table(&self, table: &TableName) {
        self.lock().tables.remove(table);
    }

    /// Deletes one row by key behind the executor's back.
    pub fn delete_row(&self, table: &TableName, key: &[Value]) {
        if let Some((info, rows)) = self.lock().tables.get_mut(table) {
            rows.retain(|r| info.schema.key_of(r) != key);
        }
    }

    fn missing(table: &TableName) -> Error {
        Error::not_found(format!("table {table} does not exist in the target")).table(table)
    }
}

fn in_range(info: &TableInfo, row: &[Value], range: &KeyRange) -> bool {
    range.is_all() || range.contains(&info.schema.key_of(row))
}

#[async_trait]
impl Sink for MemorySink {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            transactional_chunks: false,
            single_transaction: false,
            upsert: true,
            backup: true,
            bulk_load: false,
        }
    }

    async fn preflight(&self, table: &TableInfo) -> Result<Preflight> {
        let st = self.lock();
        let existing = st.tables.get(&table.name);
        let mut problems = Vec::new();
        if let Some((info, _)) = existing {
            if info.schema.columns != table.schema.columns {
                problems.push(format!(
                    "table {} exists with different columns",
                    table.name
                ));
            }
        }
        Ok(Preflight {
            reachable: true,
            exists: existing.is_some(),
            problems,
        })
    }

    async fn prepare(&self, table: &TableInfo, options: &PrepareOptions) -> Result<Prepared> {
        if let Some((_, e)) = self.faults.begin(Op::Prepare).await {
            return Err(e.table(&table.name).operation("prepare"));
        }
        let mut st = self.lock();
        let exists = st.tables.contains_key(&table.name);
        let mut prepared = Prepared::default();
        match (options.mode, exists) {
            (PrepareMode::RequireExisting, false) => return Err(Self::missing(&table.name)),
            (PrepareMode::Recreate, true) => {
                let old = st.tables.remove(&table.name);
                if let (true, Some(old)) = (options.backup, old) {
                    let name = format!("{}__backup", table.name);
                    st.backups.insert(name.clone(), old);
                    prepared.backup = Some(name);
                }
            }
            (_, true) => {
                let (info, _) = &st.tables[&table.name];
                if info.schema.columns != table.schema.columns {
                    return Err(Error::schema(format!(
                        "target table {} has columns incompatible with the source",
                        table.name
                    ))
                    .table(&table.name));
                }
                if options.backup {
                    let name = format!("{}__backup", table.name);
                    let copy = st.tables[&table.name].clone();
                    st.backups.insert(name.clone(), copy);
                    prepared.backup = Some(name);
                }
                return Ok(prepared);
            }
            _ => {}
        }
        st.tables
            .insert(table.name.clone(), (table.clone(), Vec::new()));
        prepared.created = true;
        Ok(prepared)
    }

    async fn write_chunk(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        rows: &mut dyn BatchReader,
    ) -> Result<WriteStats> {
        let fault = self.faults.begin(Op::Write).await;
        let result = async {
            // Replace the range first: whatever an earlier attempt left there goes.
            {
                let mut st = self.lock();
                let (info, existing) = st
                    .tables
                    .get_mut(&table.name)
                    .ok_or_else(|| Self::missing(&table.name))?;
                existing.retain(|r| !in_range(info, r, &chunk.range));
            }
            if let Some((0, e)) = &fault {
                return Err(Error::new(e.kind(), e.message()));
            }
            let mut stats = WriteStats::default();
            while let Some(batch) = rows.next_batch().await? {
                stats.bytes += batch.byte_size() as u64;
                let mut st = self.lock();
                let (info, existing) = st
                    .tables
                    .get_mut(&table.name)
                    .ok_or_else(|| Self::missing(&table.name))?;
                for row in batch.into_rows() {
                    info.schema.check_row(&row)?;
                    if !in_range(info, &row, &chunk.range) {
                        return Err(Error::validation(format!(
                            "row key {} outside chunk range {}",
                            crate::value::KeyDisplay(&info.schema.key_of(&row)),
                            chunk.range
                        )));
                    }
                    if let Some((after, e)) = &fault {
                        if stats.rows as usize >= *after {
                            return Err(Error::new(e.kind(), e.message()));
                        }
                    }
                    existing.push(row);
                    stats.rows += 1;
                }
            }
            if let Some((_, e)) = &fault {
                return Err(Error::new(e.kind(), e.message()));
            }
            Ok(stats)
        }
        .await
        .map_err(|e: Error| {
            e.table(&table.name)
                .chunk(chunk.index)
                .operation("write_chunk")
        });
        self.lock().log.push(WriteLog {
            table: table.name.clone(),
            chunk: chunk.index,
            ok: result.is_ok(),
        });
        result
    }

    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum> {
        if let Some((_, e)) = self.faults.begin(Op::Checksum).await {
            return Err(e.table(&table.name));
        }
        let st = self.lock();
        let (info, rows) = st
            .tables
            .get(&table.name)
            .ok_or_else(|| Self::missing(&table.name))?;
        Ok(RowChecksum::of_rows(
            rows.iter().filter(|r| in_range(info, r, range)),
        ))
    }

    async fn upsert(&self, table: &TableInfo, rows: &mut dyn BatchReader) -> Result<WriteStats> {
        if let Some((_, e)) = self.faults.begin(Op::Write).await {
            return Err(e.table(&table.name).operation("upsert"));
        }
        let mut stats = WriteStats::default();
        while let Some(batch) = rows.next_batch().await? {
            stats.bytes += batch.byte_size() as u64;
            let mut st = self.lock();
            let (info, existing) = st
                .tables
                .get_mut(&table.name)
                .ok_or_else(|| Self::missing(&table.name))?;
            for row in batch.into_rows() {
                info.schema.check_row(&row)?;
                let key = info.schema.key_of(&row);
                existing.retain(|r| info.schema.key_of(r) != key);
                existing.push(row);
                stats.rows += 1;
            }
        }
        Ok(stats)
    }

    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let st = self.lock();
        let (info, rows) = st
            .tables
            .get(&table.name)
            .ok_or_else(|| Self::missing(&table.name))?;
        Ok(rows
            .iter()
            .filter(|r| keys.contains(&info.schema.key_of(r)))
            .cloned()
            .collect())
    }

    async fn rollback(&self, table: &TableInfo, prepared: &Prepared) -> Result<()> {
        let mut st = self.lock();
        if let Some(name) = &prepared.backup {
            let backup = st
                .backups
                .remove(name)
                .ok_or_else(|| Error::not_found(format!("backup {name} is gone")))?;
            st.tables.insert(table.name.clone(), backup);
        } else if prepared.created {
            st.tables.remove(&table.name);
        }
        Ok(())
    }
}
