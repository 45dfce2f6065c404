//! An in-memory [`CheckpointStore`]: state lives as long as the value (use it to simulate a
//! process that resumes with its store intact; use the SQLite store for real crashes).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use crate::checkpoint::{
    AuditEvent, CheckpointStore, ChunkRecord, ChunkResult, ChunkStatus, Control, RejectedRecord,
    RunId, RunRecord, RunStatus, TableRecord, TableStatus,
};
use crate::chunk::ChunkSpec;
use crate::error::{Error, ErrorKind, Result};
use crate::schema::TableName;
use crate::source::Watermark;

type ChunkKey = (RunId, TableName, u32);

#[derive(Default)]
struct State {
    runs: Vec<RunRecord>,
    chunks: BTreeMap<ChunkKey, ChunkRecord>,
    tables: BTreeMap<(RunId, TableName), TableRecord>,
    events: HashMap<RunId, Vec<AuditEvent>>,
    rejected: HashMap<RunId, Vec<RejectedRecord>>,
    cursors: HashMap<(String, TableName), Watermark>,
    control: HashMap<RunId, Control>,
}

/// Checkpoint state in memory.
#[derive(Default)]
pub struct MemoryCheckpointStore {
    state: Mutex<State>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryCheckpointStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lease_until(lease: Duration) -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

fn no_chunk(table: &TableName, index: u32) -> Error {
    Error::not_found(format!("no chunk {index} of {table} in this run")).table(table)
}

#[async_trait]
impl CheckpointStore for MemoryCheckpointStore {
    async fn create_run(&self, run: &RunRecord) -> Result<()> {
        let mut st = self.lock();
        if st.runs.iter().any(|r| r.id == run.id) {
            return Err(Error::new(
                ErrorKind::Constraint,
                format!("run {} exists", run.id),
            ));
        }
        if let Some(open) = st
            .runs
            .iter()
            .find(|r| r.migration == run.migration && r.status.is_resumable())
        {
            return Err(Error::new(
                ErrorKind::Constraint,
                format!(
                    "migration {:?} already has resumable run {}",
                    run.migration, open.id
                ),
            ));
        }
        st.runs.push(run.clone());
        Ok(())
    }

    async fn run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        Ok(self.lock().runs.iter().find(|r| &r.id == id).cloned())
    }

    async fn latest_run(&self, migration: &str) -> Result<Option<RunRecord>> {
        Ok(self
            .lock()
            .runs
            .iter()
            .filter(|r| r.migration == migration)
            .max_by_key(|r| r.started_at)
            .cloned())
    }

    async fn set_run_status(&self, id: &RunId, status: RunStatus) -> Result<()> {
        let mut st = self.lock();
        let run = st
            .runs
            .iter_mut()
            .find(|r| &r.id == id)
            .ok_or_else(|| Error::not_found(format!("no run {id}")))?;
        let now = Utc::now();
        run.status = status;
        run.updated_at = now;
        run.finished_at = status.is_stopped().then_some(now);
        Ok(())
    }

    async fn add_chunks(&self, run: &RunId, chunks: &[ChunkSpec]) -> Result<()> {
        let mut st = self.lock();
        let planned: std::collections::BTreeSet<TableName> = st
            .chunks
            .keys()
            .filter(|(r, _, _)| r == run)
            .map(|(_, t, _)| t.clone())
            .collect();
        for c in chunks.iter().filter(|c| !planned.contains(&c.table)) {
            st.chunks
                .entry((run.clone(), c.table.clone(), c.index))
                .or_insert_with(|| ChunkRecord::pending(c));
        }
        Ok(())
    }

    async fn chunks(&self, run: &RunId) -> Result<Vec<ChunkRecord>> {
        Ok(self
            .lock()
            .chunks
            .iter()
            .filter(|((r, _, _), _)| r == run)
            .map(|(_, c)| c.clone())
            .collect())
    }

    async fn claim_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<ChunkRecord>> {
        let mut st = self.lock();
        let c = st
            .chunks
            .get_mut(&(run.clone(), table.clone(), index))
            .ok_or_else(|| no_chunk(table, index))?;
        let now = Utc::now();
        if !c.claimable_by(worker, now) {
            return Ok(None);
        }
        c.status = ChunkStatus::Running;
        c.attempts += 1;
        c.worker = Some(worker.to_string());
        c.lease_until = Some(lease_until(lease));
        c.started_at = Some(now);
        c.finished_at = None;
        Ok(Some(c.clone()))
    }

    async fn renew_lease(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        worker: &str,
        lease: Duration,
    ) -> Result<bool> {
        let mut st = self.lock();
        let c = st
            .chunks
            .get_mut(&(run.clone(), table.clone(), index))
            .ok_or_else(|| no_chunk(table, index))?;
        if c.status != ChunkStatus::Running || c.worker.as_deref() != Some(worker) {
            return Ok(false);
        }
        c.lease_until = Some(lease_until(lease));
        Ok(true)
    }

    async fn complete_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        worker: &str,
        result: &ChunkResult,
    ) -> Result<bool> {
        let mut st = self.lock();
        let c = st
            .chunks
            .get_mut(&(run.clone(), table.clone(), index))
            .ok_or_else(|| no_chunk(table, index))?;
        if c.status != ChunkStatus::Running || c.worker.as_deref() != Some(worker) {
            return Ok(false);
        }
        c.status = ChunkStatus::Completed;
        c.rows = result.rows;
        c.bytes = result.bytes;
        c.checksum = result.checksum;
        c.duration_ms = Some(result.duration_ms);
        c.error = None;
        c.error_kind = None;
        c.lease_until = None;
        c.finished_at = Some(Utc::now());
        Ok(true)
    }

    async fn fail_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        error: &str,
        kind: ErrorKind,
    ) -> Result<()> {
        let mut st = self.lock();
        let c = st
            .chunks
            .get_mut(&(run.clone(), table.clone(), index))
            .ok_or_else(|| no_chunk(table, index))?;
        if c.status == ChunkStatus::Completed {
            return Ok(());
        }
        c.status = ChunkStatus::Failed;
        c.error = Some(error.to_string());
        c.error_kind = Some(kind);
        c.lease_until = None;
        c.finished_at = Some(Utc::now());
        Ok(())
    }

    async fn skip_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        reason: &str,
    ) -> Result<()> {
        let mut st = self.lock();
        let c = st
            .chunks
            .get_mut(&(run.clone(), table.clone(), index))
            .ok_or_else(|| no_chunk(table, index))?;
        if c.status != ChunkStatus::Completed {
            c.status = ChunkStatus::Skipped;
            c.error = Some(reason.to_string());
            c.lease_until = None;
            c.finished_at = Some(Utc::now());
        }
        Ok(())
    }

    async fn reset_table_chunks(&self, run: &RunId, table: &TableName) -> Result<()> {
        let mut st = self.lock();
        for ((r, t, _), c) in st.chunks.iter_mut() {
            if r == run && t == table {
                *c = ChunkRecord {
                    attempts: c.attempts,
                    ..ChunkRecord::pending(&c.spec())
                };
            }
        }
        Ok(())
    }

    async fn put_table(&self, run: &RunId, table: &TableRecord) -> Result<()> {
        self.lock()
            .tables
            .insert((run.clone(), table.table.clone()), table.clone());
        Ok(())
    }

    async fn put_table_unless_completed(
        &self,
        run: &RunId,
        table: &TableRecord,
    ) -> Result<Option<TableRecord>> {
        let mut st = self.lock();
        let key = (run.clone(), table.table.clone());
        match st.tables.get(&key) {
            Some(stored) if stored.status == TableStatus::Completed => Ok(Some(stored.clone())),
            _ => {
                st.tables.insert(key, table.clone());
                Ok(None)
            }
        }
    }

    async fn tables(&self, run: &RunId) -> Result<Vec<TableRecord>> {
        Ok(self
            .lock()
            .tables
            .iter()
            .filter(|((r, _), _)| r == run)
            .map(|(_, t)| t.clone())
            .collect())
    }

    async fn append_event(&self, run: &RunId, event: &AuditEvent) -> Result<()> {
        self.lock()
            .events
            .entry(run.clone())
            .or_default()
            .push(event.clone());
        Ok(())
    }

    async fn events(&self, run: &RunId) -> Result<Vec<AuditEvent>> {
        Ok(self.lock().events.get(run).cloned().unwrap_or_default())
    }

    async fn add_rejected(&self, run: &RunId, records: &[RejectedRecord]) -> Result<()> {
        let mut st = self.lock();
        let all = st.rejected.entry(run.clone()).or_default();
        for r in records {
            let same =
                |o: &RejectedRecord| o.table == r.table && o.key == r.key && o.rule == r.rule;
            match all.iter_mut().find(|o| same(o)) {
                Some(o) => *o = r.clone(),
                None => all.push(r.clone()),
            }
        }
        Ok(())
    }

    async fn replace_chunk_rejected(
        &self,
        run: &RunId,
        table: &TableName,
        chunk: u32,
        records: &[RejectedRecord],
    ) -> Result<()> {
        {
            let mut st = self.lock();
            let all = st.rejected.entry(run.clone()).or_default();
            all.retain(|r| !(r.table == *table && r.chunk == chunk));
        }
        self.add_rejected(run, records).await
    }

    async fn rejected(&self, run: &RunId) -> Result<Vec<RejectedRecord>> {
        Ok(self.lock().rejected.get(run).cloned().unwrap_or_default())
    }

    async fn recheck_rejected(
        &self,
        run: &RunId,
        table: &TableName,
        keys: &[String],
        still: &[RejectedRecord],
    ) -> Result<u64> {
        let resolved = {
            let mut st = self.lock();
            let all = st.rejected.entry(run.clone()).or_default();
            let before = all.len();
            all.retain(|r| !(r.table == *table && keys.contains(&r.key)));
            (before - all.len()) as u64
        };
        self.add_rejected(run, still).await?;
        Ok(resolved)
    }

    async fn save_cursor(
        &self,
        migration: &str,
        table: &TableName,
        mark: &Watermark,
    ) -> Result<()> {
        self.lock()
            .cursors
            .insert((migration.to_string(), table.clone()), mark.clone());
        Ok(())
    }

    async fn cursor(&self, migration: &str, table: &TableName) -> Result<Option<Watermark>> {
        Ok(self
            .lock()
            .cursors
            .get(&(migration.to_string(), table.clone()))
            .cloned())
    }

    async fn set_control(&self, run: &RunId, control: Control) -> Result<()> {
        self.lock().control.insert(run.clone(), control);
        Ok(())
    }

    async fn control(&self, run: &RunId) -> Result<Control> {
        Ok(self.lock().control.get(run).copied().unwrap_or_default())
    }
}
