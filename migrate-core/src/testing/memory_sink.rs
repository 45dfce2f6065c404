//! An in-memory [`Sink`] with fault injection. It is deliberately *not* transactional: a failed
//! write leaves the rows it got through behind, the harder case for idempotency.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::faults::{Faults, Op};
use crate::batch::{Batch, BatchReader, Row};
use crate::checkpoint::RunId;
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

/// A primary key ordered as keys compare (integers of any width by value, composite
/// lexicographically).
#[derive(Debug, Clone)]
struct Key(Vec<Value>);

impl PartialEq for Key {
    fn eq(&self, o: &Self) -> bool {
        cmp_keys(&self.0, &o.0).is_eq()
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Key {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        cmp_keys(&self.0, &o.0)
    }
}

/// A table: rows by primary key (unique, like a real primary key), or a plain list when the
/// table has none.
#[derive(Debug, Clone)]
struct Table {
    info: TableInfo,
    keyed: BTreeMap<Key, Row>,
    keyless: Vec<Row>,
}

impl Table {
    fn new(info: TableInfo) -> Self {
        Table {
            info,
            keyed: BTreeMap::new(),
            keyless: Vec::new(),
        }
    }

    fn has_key(&self) -> bool {
        !self.info.schema.primary_key.is_empty()
    }

    fn delete_range(&mut self, range: &KeyRange) {
        if !self.has_key() || range.is_all() {
            self.keyed.clear();
            self.keyless.clear();
            return;
        }
        let doomed: Vec<Key> = self.in_range(range).map(|(k, _)| k.clone()).collect();
        for k in doomed {
            self.keyed.remove(&k);
        }
    }

    fn in_range<'a>(&'a self, range: &KeyRange) -> impl Iterator<Item = (&'a Key, &'a Row)> + 'a {
        use std::ops::Bound;
        let lo = range
            .lower
            .clone()
            .map_or(Bound::Unbounded, |l| Bound::Included(Key(l)));
        let hi = range
            .upper
            .clone()
            .map_or(Bound::Unbounded, |u| Bound::Excluded(Key(u)));
        // An empty or inverted range yields nothing rather than panicking in BTreeMap::range.
        let valid = match (&lo, &hi) {
            (Bound::Included(a), Bound::Excluded(b)) => a < b,
            _ => true,
        };
        let it = if valid {
            Some(self.keyed.range((lo, hi)))
        } else {
            None
        };
        it.into_iter().flatten()
    }

    fn rows_in(&self, range: &KeyRange) -> Vec<&Row> {
        if !self.has_key() || range.is_all() {
            return self.keyed.values().chain(self.keyless.iter()).collect();
        }
        self.in_range(range).map(|(_, r)| r).collect()
    }

    fn insert(&mut self, row: Row) -> Result<()> {
        if !self.has_key() {
            self.keyless.push(row);
            return Ok(());
        }
        let key = Key(self.info.schema.key_of(&row));
        if self.keyed.contains_key(&key) {
            return Err(Error::new(
                crate::error::ErrorKind::Constraint,
                format!("duplicate primary key {}", crate::value::KeyDisplay(&key.0)),
            ));
        }
        self.keyed.insert(key, row);
        Ok(())
    }

    fn upsert(&mut self, row: Row) {
        if self.has_key() {
            self.keyed.insert(Key(self.info.schema.key_of(&row)), row);
        } else {
            self.keyless.push(row);
        }
    }

    fn len(&self) -> usize {
        self.keyed.len() + self.keyless.len()
    }

    fn clear(&mut self) {
        self.keyed.clear();
        self.keyless.clear();
    }

    fn all_rows(&self) -> Vec<Row> {
        self.keyed
            .values()
            .chain(self.keyless.iter())
            .cloned()
            .collect()
    }
}

#[derive(Default)]
struct State {
    tables: BTreeMap<TableName, Table>,
    backups: BTreeMap<String, Table>,
    /// What `prepare` returned, by table and run: a second call returns it unchanged.
    prepared: BTreeMap<(TableName, String), Prepared>,
    log: Vec<WriteLog>,
    /// Capabilities set by a test in place of the defaults.
    capabilities: Option<SinkCapabilities>,
}

/// Runs on a table as its finalize starts (see [`MemorySink::before_finalize`]).
type FinalizeHook = Arc<dyn Fn(&TableName) + Send + Sync>;

/// Tables held in memory.
#[derive(Default)]
pub struct MemorySink {
    state: Mutex<State>,
    faults: Arc<Faults>,
    encoded_batches: std::sync::atomic::AtomicU64,
    before_finalize: Mutex<Option<FinalizeHook>>,
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

    /// Makes the sink claim `caps` instead of its own (to test how the executor treats a sink
    /// lacking one); what the sink actually does is unchanged.
    pub fn set_capabilities(&self, caps: SinkCapabilities) {
        self.lock().capabilities = Some(caps);
    }

    /// The rows of a table, sorted by key (`None` if the table does not exist).
    pub fn rows(&self, table: &TableName) -> Option<Vec<Row>> {
        self.lock().tables.get(table).map(Table::all_rows)
    }

    /// Batches taken encoded so far (the pass-through path, see
    /// [`super::MemorySource::with_encoded_rows`]).
    pub fn encoded_batches(&self) -> u64 {
        self.encoded_batches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every write attempt so far, in order.
    pub fn write_log(&self) -> Vec<WriteLog> {
        self.lock().log.clone()
    }

    /// Creates a table holding `rows`, as if it existed before the migration.
    pub fn put_table(&self, table: &TableInfo, rows: Vec<Row>) -> Result<()> {
        let mut t = Table::new(table.clone());
        for r in rows {
            t.insert(r)?;
        }
        self.lock().tables.insert(table.name.clone(), t);
        Ok(())
    }

    /// Drops a table behind the executor's back (to test reconciliation on resume).
    pub fn drop_table(&self, table: &TableName) {
        self.lock().tables.remove(table);
    }

    /// Runs `hook` on each table as its finalize starts: after its last chunk, before its
    /// verification (to change data between the copy and the comparison).
    pub fn before_finalize(&self, hook: impl Fn(&TableName) + Send + Sync + 'static) {
        *self
            .before_finalize
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(hook));
    }

    /// Deletes one row by key behind the executor's back.
    pub fn delete_row(&self, table: &TableName, key: &[Value]) {
        if let Some(t) = self.lock().tables.get_mut(table) {
            t.keyed.remove(&Key(key.to_vec()));
        }
    }

    fn missing(table: &TableName) -> Error {
        Error::not_found(format!("table {table} does not exist in the target")).table(table)
    }
}

#[async_trait]
impl Sink for MemorySink {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> SinkCapabilities {
        self.lock().capabilities.unwrap_or(SinkCapabilities {
            upsert: true,
            backup: true,
        })
    }

    async fn preflight(&self, table: &TableInfo) -> Result<Preflight> {
        let st = self.lock();
        let existing = st.tables.get(&table.name);
        let mut problems = Vec::new();
        if let Some(Table { info, .. }) = existing {
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
            rows: existing.map(|t| t.len() as u64),
            problems,
        })
    }

    async fn prepare(
        &self,
        table: &TableInfo,
        options: &PrepareOptions,
        run: &RunId,
    ) -> Result<Prepared> {
        if let Some((_, e)) = self.faults.begin(Op::Prepare).await {
            return Err(e.table(&table.name).operation("prepare"));
        }
        let mut st = self.lock();
        let key = (table.name.clone(), run.0.clone());
        // What this run prepared stands while the table does (someone may have dropped it).
        if let (Some(p), true) = (st.prepared.get(&key), st.tables.contains_key(&table.name)) {
            return Ok(p.clone());
        }
        let backup_name = format!("{}__backup_{}", table.name, run.0);
        let mut prepared = Prepared::default();
        match (options.mode, st.tables.get(&table.name)) {
            (PrepareMode::RequireExisting, None) => return Err(Self::missing(&table.name)),
            (PrepareMode::Recreate, Some(_)) => {
                let old = st.tables.remove(&table.name);
                if let (true, Some(old)) = (options.backup, old) {
                    st.backups.insert(backup_name.clone(), old);
                    prepared.backup = Some(backup_name);
                }
            }
            (_, Some(existing)) => {
                if existing.info.schema.columns != table.schema.columns {
                    return Err(Error::schema(format!(
                        "target table {} has columns incompatible with the source",
                        table.name
                    ))
                    .table(&table.name));
                }
                let rows = existing.len() as u64;
                prepared.existing_rows = Some(rows);
                prepared.merge =
                    options
                        .existing_rows
                        .decide(&table.name, rows, existing.has_key())?;
                if rows > 0 && options.backup {
                    let copy = existing.clone();
                    st.backups.insert(backup_name.clone(), copy);
                    prepared.backup = Some(backup_name);
                }
                st.prepared.insert(key, prepared.clone());
                return Ok(prepared);
            }
            _ => {}
        }
        st.tables
            .insert(table.name.clone(), Table::new(table.clone()));
        prepared.created = prepared.backup.is_none();
        st.prepared.insert(key, prepared.clone());
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
                st.tables
                    .get_mut(&table.name)
                    .ok_or_else(|| Self::missing(&table.name))?
                    .delete_range(&chunk.range);
            }
            if let Some((0, e)) = &fault {
                return Err(e.clone());
            }
            let mut stats = WriteStats::default();
            while let Some(batch) = next_batch(rows, &self.encoded_batches).await? {
                stats.bytes += batch.byte_size() as u64;
                let mut st = self.lock();
                let t = st
                    .tables
                    .get_mut(&table.name)
                    .ok_or_else(|| Self::missing(&table.name))?;
                for row in batch.into_rows() {
                    let info = &t.info;
                    info.schema.check_row(&row)?;
                    if t.has_key() && !chunk.range.contains(&info.schema.key_of(&row)) {
                        return Err(Error::validation(format!(
                            "row key {} outside chunk range {}",
                            crate::value::KeyDisplay(&info.schema.key_of(&row)),
                            chunk.range
                        )));
                    }
                    if let Some((after, e)) = &fault {
                        if stats.rows as usize >= *after {
                            return Err(e.clone());
                        }
                    }
                    t.insert(row)?;
                    stats.rows += 1;
                }
            }
            if let Some((_, e)) = &fault {
                return Err(e.clone());
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

    async fn finalize(&self, table: &TableInfo) -> Result<Vec<crate::objects::ObjectOutcome>> {
        let hook = self
            .before_finalize
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(hook) = hook {
            hook(&table.name);
        }
        Ok(Vec::new())
    }

    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum> {
        if let Some((_, e)) = self.faults.begin(Op::Checksum).await {
            return Err(e.table(&table.name));
        }
        let st = self.lock();
        let t = st
            .tables
            .get(&table.name)
            .ok_or_else(|| Self::missing(&table.name))?;
        Ok(RowChecksum::of_rows(t.rows_in(range)))
    }

    async fn upsert(&self, table: &TableInfo, rows: &mut dyn BatchReader) -> Result<WriteStats> {
        if let Some((_, e)) = self.faults.begin(Op::Write).await {
            return Err(e.table(&table.name).operation("upsert"));
        }
        let mut stats = WriteStats::default();
        while let Some(batch) = next_batch(rows, &self.encoded_batches).await? {
            stats.bytes += batch.byte_size() as u64;
            let mut st = self.lock();
            let t = st
                .tables
                .get_mut(&table.name)
                .ok_or_else(|| Self::missing(&table.name))?;
            for row in batch.into_rows() {
                t.info.schema.check_row(&row)?;
                t.upsert(row);
                stats.rows += 1;
            }
        }
        Ok(stats)
    }

    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let st = self.lock();
        let t = st
            .tables
            .get(&table.name)
            .ok_or_else(|| Self::missing(&table.name))?;
        Ok(keys
            .iter()
            .filter_map(|k| t.keyed.get(&Key(k.clone())).cloned())
            .collect())
    }

    async fn describe(&self, table: &TableInfo) -> Result<Option<TableInfo>> {
        if let Some((_, e)) = self.faults.begin(Op::Describe).await {
            return Err(e);
        }
        Ok(self.lock().tables.get(&table.name).map(|t| t.info.clone()))
    }

    async fn rollback(&self, tables: &[(TableInfo, Prepared)]) -> Result<()> {
        let mut st = self.lock();
        for (table, prepared) in tables {
            if let Some(name) = &prepared.backup {
                let backup = st
                    .backups
                    .remove(name)
                    .ok_or_else(|| Error::not_found(format!("backup {name} is gone")))?;
                st.tables.insert(table.name.clone(), backup);
            } else if prepared.created {
                st.tables.remove(&table.name);
            } else if prepared.existing_rows == Some(0) {
                if let Some(t) = st.tables.get_mut(&table.name) {
                    t.clear();
                }
            }
            st.prepared.retain(|(t, _), _| t != &table.name);
        }
        Ok(())
    }
}

/// The next batch, taken encoded when the reader offers [`super::memory_source::MEMORY_ROWS`]
/// (as a real sink forwards a format it shares with the source), decoded otherwise.
async fn next_batch(
    rows: &mut dyn BatchReader,
    encoded: &std::sync::atomic::AtomicU64,
) -> Result<Option<Batch>> {
    let shared = rows
        .encoding()
        .is_some_and(|e| e.format == super::memory_source::MEMORY_ROWS);
    if !shared {
        return rows.next_batch().await;
    }
    match rows.next_encoded().await? {
        Some(b) => {
            encoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Some(Batch::new(rows.schema().clone(), b.decode()?)))
        }
        None => Ok(None),
    }
}
