//! Durable migration state: runs, chunk and table states, incremental cursors, audit events,
//! rejected records, leases and the pause/cancel flag.
//!
//! The store is the source of truth for resume: a chunk it records as completed is never read or
//! written again by a resumed run; every other chunk is (re)done.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checksum::RowChecksum;
use crate::chunk::{ChunkSpec, KeyRange, Operation};
use crate::error::{ErrorKind, Result};
use crate::schema::TableName;
use crate::source::Watermark;

/// Identifies one run (one execution of a migration, kept across resumes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

impl RunId {
    /// A fresh random id.
    pub fn generate() -> Self {
        RunId(uuid::Uuid::new_v4().to_string())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Workers are (or were, if the process died) executing it.
    Running,
    /// Stopped on request; resumable.
    Paused,
    /// Every table completed and verified.
    Completed,
    /// Stopped by an error; resumable once the cause is fixed.
    Failed,
    /// Stopped by the operator; resumable.
    Cancelled,
    /// Replaced by a newer run of the same migration (a forced new plan); not resumable.
    Superseded,
}

impl RunStatus {
    /// Whether a later run of the same migration should continue this one.
    pub fn is_resumable(self) -> bool {
        !matches!(self, RunStatus::Completed | RunStatus::Superseded)
    }

    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Superseded => "superseded",
        }
    }

    /// Whether no worker is executing the run (it completed, failed or was cancelled).
    pub fn is_stopped(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled | RunStatus::Superseded
        )
    }
}

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Execution id.
    pub id: RunId,
    /// Stable name of the migration (from the config); resume looks runs up by it.
    pub migration: String,
    /// Hash of the plan the run executes; a changed plan cannot reuse its chunk states.
    pub plan_hash: String,
    /// Status.
    pub status: RunStatus,
    /// When the run was created.
    pub started_at: DateTime<Utc>,
    /// Last status change.
    pub updated_at: DateTime<Utc>,
    /// When it reached a final status, if it did.
    pub finished_at: Option<DateTime<Utc>>,
}

impl RunRecord {
    /// A new running run.
    pub fn new(migration: impl Into<String>, plan_hash: impl Into<String>) -> Self {
        let now = Utc::now();
        RunRecord {
            id: RunId::generate(),
            migration: migration.into(),
            plan_hash: plan_hash.into(),
            status: RunStatus::Running,
            started_at: now,
            updated_at: now,
            finished_at: None,
        }
    }
}

/// State of a chunk: pending → running → completed | failed | skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkStatus {
    /// Not started.
    Pending,
    /// Claimed by a worker (under a lease).
    Running,
    /// Written and durable.
    Completed,
    /// The last attempt failed.
    Failed,
    /// Deliberately not done (parent failed, table deferred).
    Skipped,
}

impl ChunkStatus {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkStatus::Pending => "pending",
            ChunkStatus::Running => "running",
            ChunkStatus::Completed => "completed",
            ChunkStatus::Failed => "failed",
            ChunkStatus::Skipped => "skipped",
        }
    }
}

/// A chunk's durable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// The table.
    pub table: TableName,
    /// Chunk index within the table.
    pub index: u32,
    /// Key range.
    pub range: KeyRange,
    /// Rows the plan expects.
    pub estimated_rows: u64,
    /// What the chunk does.
    pub operation: Operation,
    /// Status.
    pub status: ChunkStatus,
    /// Attempts made so far (claims).
    pub attempts: u32,
    /// Worker holding or last holding the chunk.
    pub worker: Option<String>,
    /// Until when the worker's claim holds; after that another worker may take the chunk over.
    pub lease_until: Option<DateTime<Utc>>,
    /// Rows written by the completed attempt.
    pub rows: u64,
    /// Bytes written by the completed attempt.
    pub bytes: u64,
    /// Checksum of the rows written by the completed attempt.
    pub checksum: Option<RowChecksum>,
    /// Wall time of the completed attempt, in milliseconds.
    pub duration_ms: Option<u64>,
    /// Last error message (never row values).
    pub error: Option<String>,
    /// Last error kind.
    pub error_kind: Option<ErrorKind>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the chunk completed, failed or was skipped.
    pub finished_at: Option<DateTime<Utc>>,
}

impl ChunkRecord {
    /// A pending chunk.
    pub fn pending(spec: &ChunkSpec) -> Self {
        ChunkRecord {
            table: spec.table.clone(),
            index: spec.index,
            range: spec.range.clone(),
            estimated_rows: spec.estimated_rows,
            operation: spec.operation,
            status: ChunkStatus::Pending,
            attempts: 0,
            worker: None,
            lease_until: None,
            rows: 0,
            bytes: 0,
            checksum: None,
            duration_ms: None,
            error: None,
            error_kind: None,
            started_at: None,
            finished_at: None,
        }
    }

    /// The chunk's spec.
    pub fn spec(&self) -> ChunkSpec {
        ChunkSpec {
            table: self.table.clone(),
            index: self.index,
            range: self.range.clone(),
            estimated_rows: self.estimated_rows,
            operation: self.operation,
        }
    }

    /// Whether `worker` may claim the chunk at `now`: it is pending, failed or skipped (a later
    /// run does what an earlier one skipped), or running under an expired lease or under
    /// `worker`'s own lease. A completed chunk never is.
    pub fn claimable_by(&self, worker: &str, now: DateTime<Utc>) -> bool {
        match self.status {
            ChunkStatus::Pending | ChunkStatus::Failed | ChunkStatus::Skipped => true,
            ChunkStatus::Running => {
                self.worker.as_deref() == Some(worker) || self.lease_until.is_none_or(|l| l <= now)
            }
            ChunkStatus::Completed => false,
        }
    }
}

/// What a completed chunk wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkResult {
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Checksum of the rows written; `None` when the run does not verify checksums (nothing
    /// would read it, and it is most of the executor's own work per row).
    pub checksum: Option<RowChecksum>,
    /// Wall time of the successful attempt.
    pub duration_ms: u64,
}

/// State of a table within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    /// Not started.
    Pending,
    /// Chunks in progress.
    Running,
    /// All chunks completed (and verified when verification is on).
    Completed,
    /// A chunk failed for good, or verification failed.
    Failed,
    /// Not done because a parent failed.
    Skipped,
    /// Left for a later run by the planner or by the time window.
    Deferred,
}

impl TableStatus {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            TableStatus::Pending => "pending",
            TableStatus::Running => "running",
            TableStatus::Completed => "completed",
            TableStatus::Failed => "failed",
            TableStatus::Skipped => "skipped",
            TableStatus::Deferred => "deferred",
        }
    }
}

/// A table's state within a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRecord {
    /// The table.
    pub table: TableName,
    /// Status.
    pub status: TableStatus,
    /// Rows written so far.
    pub rows: u64,
    /// Rows expected.
    pub total_rows: u64,
    /// What `Sink::prepare` did, for rollback.
    pub prepared: Option<crate::sink::Prepared>,
    /// Why it failed, was skipped or deferred.
    pub reason: Option<String>,
    /// When work on it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached its final status.
    pub finished_at: Option<DateTime<Utc>>,
}

impl TableRecord {
    /// A pending table.
    pub fn pending(table: TableName, total_rows: u64) -> Self {
        TableRecord {
            table,
            status: TableStatus::Pending,
            rows: 0,
            total_rows,
            prepared: None,
            reason: None,
            started_at: None,
            finished_at: None,
        }
    }
}

/// An audit event: who did what when. Names tables, chunks and keys, never row values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Dotted action name: `run.started`, `run.paused`, `table.completed`, `chunk.failed`, …
    pub action: String,
    /// Table concerned, if any.
    pub table: Option<TableName>,
    /// Chunk concerned, if any.
    pub chunk: Option<u32>,
    /// Worker or operator that acted.
    pub actor: Option<String>,
    /// Free text; never row values.
    pub detail: String,
}

impl AuditEvent {
    /// An event now.
    pub fn new(action: impl Into<String>, detail: impl Into<String>) -> Self {
        AuditEvent {
            at: Utc::now(),
            action: action.into(),
            table: None,
            chunk: None,
            actor: None,
            detail: detail.into(),
        }
    }

    /// The same event about a table (and chunk).
    pub fn on(mut self, table: &TableName, chunk: Option<u32>) -> Self {
        self.table = Some(table.clone());
        self.chunk = chunk;
        self
    }
}

/// A row a transform or the sink refused, named by its key. One record per (run, table, key,
/// rule): a chunk written again rejects the same rows again and the store keeps each once.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedRecord {
    /// The table.
    pub table: TableName,
    /// The chunk it came from.
    pub chunk: u32,
    /// The row's primary key, displayed (keys identify rows).
    pub key: String,
    /// The rule it broke (`convert age`, `required email`).
    #[serde(default)]
    pub rule: String,
    /// Why (names the rule's terms, never the row's values).
    pub reason: String,
    /// What kind of failure.
    #[serde(default)]
    pub kind: Option<ErrorKind>,
    /// The row's values as JSON, only where the operator opted in to keeping them.
    #[serde(default)]
    pub values: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

impl RejectedRecord {
    /// The record of a row a transform rejected from `chunk` of `table`: its key as
    /// [`KeyDisplay`](crate::value::KeyDisplay) writes it, its values (as JSON) only when
    /// `keep_values`.
    pub fn of(
        table: &TableName,
        chunk: u32,
        r: &crate::transform::Rejected,
        keep_values: bool,
    ) -> Self {
        RejectedRecord {
            table: table.clone(),
            chunk,
            key: crate::value::KeyDisplay(&r.key).to_string(),
            rule: r.rule.clone(),
            reason: r.reason.clone(),
            kind: Some(r.kind),
            values: match keep_values {
                true => r
                    .row
                    .as_ref()
                    .map(|row| serde_json::to_string(row).unwrap_or_default()),
                false => None,
            },
            at: Utc::now(),
        }
    }
}

impl fmt::Debug for RejectedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectedRecord")
            .field("table", &self.table)
            .field("chunk", &self.chunk)
            .field("key", &self.key)
            .field("rule", &self.rule)
            .field("reason", &self.reason)
            .field("kind", &self.kind)
            .field("values", &self.values.as_ref().map(|_| "<kept>"))
            .field("at", &self.at)
            .finish()
    }
}

/// A request to a running run, settable from another process through the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Keep going.
    #[default]
    Run,
    /// Start no new chunks; let in-flight ones finish.
    Pause,
    /// Abort in-flight chunks safely and stop.
    Cancel,
}

/// Durable migration state. Implementations: in-memory (tests), SQLite (embedded default),
/// Postgres (several machines sharing one migration).
///
/// Contracts:
/// - Every write is durable when it returns `Ok` (the SQLite store fsyncs).
/// - `claim_chunk` is atomic: two workers never both hold a live claim on one chunk.
/// - `complete_chunk` is called only after `Sink::write_chunk` returned `Ok`.
/// - Nothing stored holds row values: keys, counts, checksums and messages only.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Records a new run. Fails with kind `Constraint` when the id exists or when the migration
    /// already has a resumable run (at most one per migration, so that processes starting the
    /// same migration at once converge on one run: the loser resumes the winner's).
    async fn create_run(&self, run: &RunRecord) -> Result<()>;

    /// A run by id.
    async fn run(&self, id: &RunId) -> Result<Option<RunRecord>>;

    /// The most recently started run of a migration.
    async fn latest_run(&self, migration: &str) -> Result<Option<RunRecord>>;

    /// Sets a run's status; sets `finished_at` when the status [`RunStatus::is_stopped`] and
    /// clears it otherwise (a resumed run is running again).
    async fn set_run_status(&self, id: &RunId, status: RunStatus) -> Result<()>;

    /// Registers a run's chunks as pending, each table's as a whole: a table that has chunks in
    /// the run already keeps them and none of these are added — so registering again on resume
    /// loses no progress, and workers planning the same table at once (whose plans may differ:
    /// estimates move) leave exactly one plan, never a mix. Atomic per table; callers read
    /// [`chunks`](Self::chunks) back for the plan that won.
    async fn add_chunks(&self, run: &RunId, chunks: &[ChunkSpec]) -> Result<()>;

    /// All chunks of a run, ordered by table and index.
    async fn chunks(&self, run: &RunId) -> Result<Vec<ChunkRecord>>;

    /// Claims a chunk for `worker` for `lease`, if [`ChunkRecord::claimable_by`] allows: marks it
    /// running, counts an attempt and returns the updated record; `None` when not claimable.
    async fn claim_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<ChunkRecord>>;

    /// Extends `worker`'s lease; `false` if it no longer holds the chunk.
    async fn renew_lease(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        worker: &str,
        lease: Duration,
    ) -> Result<bool>;

    /// Marks a running chunk held by `worker` completed with what it wrote. Returns `false`
    /// (and changes nothing) if the chunk is not running under `worker` — its lease was lost.
    async fn complete_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        worker: &str,
        result: &ChunkResult,
    ) -> Result<bool>;

    /// Marks a chunk failed with the error's message and kind (it will be redone on resume).
    async fn fail_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        error: &str,
        kind: ErrorKind,
    ) -> Result<()>;

    /// Marks a not-yet-completed chunk skipped, with the reason.
    async fn skip_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        reason: &str,
    ) -> Result<()>;

    /// Sets every chunk of a table back to pending (reconciliation found the target wrong).
    async fn reset_table_chunks(&self, run: &RunId, table: &TableName) -> Result<()>;

    /// Creates or replaces a table's state.
    async fn put_table(&self, run: &RunId, table: &TableRecord) -> Result<()>;

    /// [`put_table`](Self::put_table), unless the stored state says
    /// [`TableStatus::Completed`]: then nothing is written and that state is returned. Workers
    /// sharing a run record their progress on a table this way, so that none writes over a
    /// table another one completed. (A completed table starts over only through `put_table`,
    /// as reconciliation and rollback do.)
    ///
    /// The default reads, then writes; a store several processes share makes it one atomic
    /// conditional write.
    async fn put_table_unless_completed(
        &self,
        run: &RunId,
        table: &TableRecord,
    ) -> Result<Option<TableRecord>> {
        let stored = self
            .tables(run)
            .await?
            .into_iter()
            .find(|r| r.table == table.table && r.status == TableStatus::Completed);
        if stored.is_none() {
            self.put_table(run, table).await?;
        }
        Ok(stored)
    }

    /// All table states of a run.
    async fn tables(&self, run: &RunId) -> Result<Vec<TableRecord>>;

    /// Appends an audit event.
    async fn append_event(&self, run: &RunId, event: &AuditEvent) -> Result<()>;

    /// A run's audit events in the order they were appended.
    async fn events(&self, run: &RunId) -> Result<Vec<AuditEvent>>;

    /// Records rejected rows: one record per (table, key, rule) — a record already there is
    /// replaced (a chunk written again rejects the same rows again).
    async fn add_rejected(&self, run: &RunId, records: &[RejectedRecord]) -> Result<()>;

    /// Records the rejected rows of one chunk's attempt: the chunk's unresolved records are
    /// replaced by `records` (a row an earlier attempt rejected that passes now is no longer
    /// listed), as one change.
    async fn replace_chunk_rejected(
        &self,
        run: &RunId,
        table: &TableName,
        chunk: u32,
        records: &[RejectedRecord],
    ) -> Result<()>;

    /// A run's rejected rows not resolved since, in the order first recorded.
    async fn rejected(&self, run: &RunId) -> Result<Vec<RejectedRecord>>;

    /// How many rows of `table` the run has rejected and not resolved.
    async fn rejected_count(&self, run: &RunId, table: &TableName) -> Result<u64> {
        Ok(self
            .rejected(run)
            .await?
            .iter()
            .filter(|r| &r.table == table)
            .map(|r| &r.key)
            .collect::<std::collections::BTreeSet<_>>()
            .len() as u64)
    }

    /// The rows of `table` with these keys were checked again (a replay): every earlier
    /// unresolved record of them is marked resolved — [`CheckpointStore::rejected`] no longer
    /// lists it — and `still`, what they break now, is recorded; as one change. Returns how
    /// many earlier records were marked.
    async fn recheck_rejected(
        &self,
        run: &RunId,
        table: &TableName,
        keys: &[String],
        still: &[RejectedRecord],
    ) -> Result<u64>;

    /// Stores an incremental watermark for a table of a migration (replacing the previous one).
    async fn save_cursor(&self, migration: &str, table: &TableName, mark: &Watermark)
        -> Result<()>;

    /// The stored watermark, if any.
    async fn cursor(&self, migration: &str, table: &TableName) -> Result<Option<Watermark>>;

    /// Sets the control flag another process's executor polls.
    async fn set_control(&self, run: &RunId, control: Control) -> Result<()>;

    /// The current control flag (`Run` when never set).
    async fn control(&self, run: &RunId) -> Result<Control>;
}

/// Rows processed per chunk status — the resume query operators run most.
pub fn chunk_counts(chunks: &[ChunkRecord]) -> std::collections::BTreeMap<&'static str, usize> {
    let mut m = std::collections::BTreeMap::new();
    for c in chunks {
        *m.entry(c.status.as_str()).or_insert(0) += 1;
    }
    m
}
