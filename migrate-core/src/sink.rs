//! Where rows go.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::batch::{BatchReader, Row};
use crate::checkpoint::RunId;
use crate::checksum::RowChecksum;
use crate::chunk::{ChunkSpec, KeyRange};
use crate::error::{Error, Result};
use crate::objects::{ObjectKind, ObjectOutcome, SequenceValue, View};
use crate::schema::{TableInfo, TableName};
use crate::source::unsupported;
use crate::value::Value;

/// What a sink can do beyond the required methods. Each flag is one the executor checks
/// before anything runs, so a run never discovers halfway that its settings cannot be honoured.
/// (How a sink writes a chunk — one transaction, a staged bulk load — is its own business: the
/// executor needs only `write_chunk`'s contract, so there is no flag for it.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkCapabilities {
    /// `upsert` is implemented: incremental and stream runs, and `existing_rows = merge`,
    /// need it.
    pub upsert: bool,
    /// `prepare` can back up an existing table before the run's first write to it, so
    /// [`PrepareOptions::backup`] may be set.
    pub backup: bool,
}

/// How `prepare` treats the target table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrepareMode {
    /// Create the table when missing; when present, check it is compatible and keep its rows.
    #[default]
    CreateIfMissing,
    /// Drop any existing table (after a backup when asked) and create it afresh.
    Recreate,
    /// The table must already exist and be compatible.
    RequireExisting,
}

/// What a run does to a target table that already holds rows before the run first writes it.
/// Rows already in a target are never replaced or deleted unless the configuration says so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExistingRows {
    /// Refuse to write the table (the default): the run stops before its first write and names
    /// every such table with its row count.
    #[default]
    Fail,
    /// The run's rows replace the table's: each chunk clears its key range, and the ranges
    /// together cover every key, so the table ends holding exactly the source's rows.
    Replace,
    /// Upsert by primary key: source rows are inserted or update the target row with the same
    /// key; rows only the target holds are kept. Needs a primary key in the target.
    Merge,
}

impl ExistingRows {
    /// What `prepare` does about `rows` rows `table` already holds, under this policy, with
    /// `keyed` saying whether the target can merge by key: `Ok(true)` to merge, `Ok(false)` to
    /// replace (or nothing there); refused naming the table, the count and the setting. One
    /// rule for every sink.
    pub fn decide(self, table: &TableName, rows: u64, keyed: bool) -> Result<bool> {
        if rows == 0 {
            return Ok(false);
        }
        match self {
            ExistingRows::Fail => Err(Error::config(format!(
                "target table {table} already holds {rows} rows and prepare.existing_rows is \"fail\": nothing was written to it"
            ))
            .table(table)),
            ExistingRows::Merge if !keyed => Err(Error::config(format!(
                "target table {table} holds {rows} rows and has no primary key to merge by (prepare.existing_rows = \"merge\")"
            ))
            .table(table)),
            ExistingRows::Merge => Ok(true),
            ExistingRows::Replace => Ok(false),
        }
    }

    /// Stable lowercase name, as written in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            ExistingRows::Fail => "fail",
            ExistingRows::Replace => "replace",
            ExistingRows::Merge => "merge",
        }
    }
}

/// Options for [`Sink::prepare`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrepareOptions {
    /// What to do with an existing table.
    pub mode: PrepareMode,
    /// What to do with rows an existing table already holds.
    pub existing_rows: ExistingRows,
    /// Back up an existing table before the run's first write to it, so rollback can restore
    /// it.
    pub backup: bool,
}

/// What `prepare` did; recorded by the executor so rollback can undo exactly that.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Prepared {
    /// The table did not exist and was created by this run.
    pub created: bool,
    /// Name of the backup taken of a table that existed before, if any.
    pub backup: Option<String>,
    /// Rows the table held when the run first prepared it (`None` when the run created it).
    pub existing_rows: Option<u64>,
    /// Chunks are upserted by key instead of replacing their range ([`ExistingRows::Merge`]
    /// on a table that held rows).
    pub merge: bool,
    /// Schema objects prepare created (types, sequences, partitions, comments) or left out.
    pub objects: Vec<ObjectOutcome>,
}

/// What a dry run learns about one target table without writing anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    /// The target answered.
    pub reachable: bool,
    /// The table exists in the target.
    pub exists: bool,
    /// Reasons the run could not write this table (permissions, incompatible columns); empty
    /// when it can.
    pub problems: Vec<String>,
    /// Rows the existing table holds, counted (`None` when it does not exist or could not be
    /// counted).
    pub rows: Option<u64>,
}

/// What one write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteStats {
    /// Rows written.
    pub rows: u64,
    /// Bytes written: the size of the batches consumed ([`crate::Batch::byte_size`], or
    /// [`crate::EncodedBatch::byte_size`] for batches taken undecoded).
    pub bytes: u64,
}

/// A data store rows are written to.
///
/// Shared by all workers (`Arc<dyn Sink>`); methods may run concurrently for different chunks.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Short backend name for logs and reports.
    fn kind(&self) -> &'static str;

    /// Optional capabilities.
    fn capabilities(&self) -> SinkCapabilities;

    /// Checks, without writing anything, that the table could be prepared and written: target
    /// reachable, privileges present, existing table compatible with `table.schema`.
    async fn preflight(&self, table: &TableInfo) -> Result<Preflight>;

    /// Makes the target table ready for `write_chunk`: creates it from `table.schema` or checks
    /// that the existing one is compatible (an incompatibility is an error of kind `Schema`
    /// naming the column). Called once per table per run, before any chunk of it; calling it
    /// again on a resumed run must not lose rows already written.
    ///
    /// `run` identifies the run: a second call for the same table and run (another worker, a
    /// resumed process) must return what the first returned and change nothing, so that a
    /// backup is taken once, before the run's first write. An existing table holding rows is
    /// refused under [`ExistingRows::Fail`] with an error of kind `Config` naming the table, its
    /// row count and the setting that decides.
    async fn prepare(
        &self,
        table: &TableInfo,
        options: &PrepareOptions,
        run: &RunId,
    ) -> Result<Prepared>;

    /// Writes one chunk **idempotently**: afterwards the target holds, within `chunk.range`,
    /// exactly the rows `rows` yielded — whatever an earlier, possibly partial, attempt of the
    /// same chunk left there. Transactional targets delete the range and load in one
    /// transaction; others must stage and swap, or delete the range first on every attempt.
    /// A chunk covering the whole table (`range.is_all()`) replaces the whole table.
    ///
    /// Returning `Ok` means the rows are durable: the executor checkpoints the chunk as
    /// completed only after this returned `Ok`, and never before.
    async fn write_chunk(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        rows: &mut dyn BatchReader,
    ) -> Result<WriteStats>;

    /// Writes one chunk from `query`, run by the target's engine itself — the same contract as
    /// [`Self::write_chunk`] without the rows passing through this process — or `None` when this
    /// sink cannot run it (another engine or place: the executor then streams the rows).
    async fn write_chunk_from(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        query: &crate::source::EngineQuery,
    ) -> Result<Option<WriteStats>> {
        let _ = (table, chunk, query);
        Ok(None)
    }

    /// Count and canonical checksum of the rows in `range`; an error of kind `NotFound` when
    /// the table does not exist.
    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum>;

    /// [`Self::checksum`] of each of `ranges` (a table's chunk ranges, in key order): what
    /// verification reads. Backends that can should read the table once and sort rows into
    /// the ranges as they pass; by default each range is checksummed on its own.
    async fn checksum_ranges(
        &self,
        table: &TableInfo,
        ranges: &[KeyRange],
    ) -> Result<Vec<RowChecksum>> {
        crate::checksum::per_range(ranges, |r| self.checksum(table, r)).await
    }

    /// Called once all chunks of a table are written: build deferred indexes and constraints.
    /// Returns what it created (or found already there) and what it left out, and why.
    async fn finalize(&self, table: &TableInfo) -> Result<Vec<ObjectOutcome>> {
        let _ = table;
        Ok(Vec::new())
    }

    /// What the target lacks for `table` that the sink will not create (an extension the
    /// columns need), one sentence each naming it: a run refuses to start, before any write,
    /// while any table lacks something. Cheap (no table scans): called for every table of
    /// every run.
    async fn unmet_requirements(&self, table: &TableInfo) -> Result<Vec<String>> {
        let _ = table;
        Ok(Vec::new())
    }

    /// What `prepare` and `finalize` will create of `table`'s schema objects (its
    /// [`TableInfo::objects`], keys and indexes) and what they will leave out, with the reason:
    /// for plans and dry runs, without touching the target.
    fn plan_objects(&self, table: &TableInfo) -> Vec<ObjectOutcome> {
        crate::objects::all_objects(table)
            .into_iter()
            .map(|(kind, name)| {
                let reason = format!("the {} sink does not create it", self.kind());
                ObjectOutcome::skipped(kind, name, Some(&table.name), reason)
            })
            .collect()
    }

    /// Moves the target's sequences to the source's `values` (after a table's data, and after
    /// every incremental run), so the application's next insert continues after the copied
    /// keys. Returns one outcome per sequence.
    async fn set_sequences(
        &self,
        table: &TableInfo,
        values: &[SequenceValue],
    ) -> Result<Vec<ObjectOutcome>> {
        let reason = format!("the {} sink has no sequences", self.kind());
        Ok(values
            .iter()
            .map(|v| {
                let name = v.name.to_string();
                ObjectOutcome::skipped(ObjectKind::SequenceValue, name, Some(&table.name), &reason)
            })
            .collect())
    }

    /// What comes once the run's data is complete: `views` over the completed `tables`
    /// (dependencies first), then — where the sink copies them — the tables' triggers,
    /// policies, grants and owners, which must not act on the load. With `dry_run`, only says
    /// what it would do with the views (the rest is in [`Sink::plan_objects`]).
    async fn after_data(
        &self,
        tables: &[TableInfo],
        views: &[View],
        dry_run: bool,
    ) -> Result<Vec<ObjectOutcome>> {
        let _ = (tables, dry_run);
        let reason = format!("the {} sink does not create views", self.kind());
        Ok(views.iter().map(|v| v.outcome(Some(&reason))).collect())
    }

    /// Inserts or updates rows by primary key (incremental runs). Must be idempotent too:
    /// applying the same rows twice leaves the same target.
    async fn upsert(&self, table: &TableInfo, rows: &mut dyn BatchReader) -> Result<WriteStats> {
        let _ = rows;
        Err(unsupported(self.kind(), "upsert", &table.name))
    }

    /// The rows with these primary keys, for sample verification.
    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let _ = keys;
        Err(unsupported(self.kind(), "fetch_rows", &table.name))
    }

    /// Whether every decimal column needs a precision in this target (Snowflake's `NUMBER`
    /// without one drops fractions): the executor then sizes each unconstrained decimal from
    /// the source's data ([`crate::Source::decimal_extent`]) before the table is prepared.
    fn bounded_decimals(&self) -> bool {
        false
    }

    /// The target's own name for `column`'s type (`jsonb` for JSON in Postgres), for the DDL
    /// plans and drift reports suggest; `None` when the sink has no DDL of its own.
    fn ddl_type(&self, table: &TableInfo, column: &crate::schema::Column) -> Option<String> {
        let _ = (table, column);
        None
    }

    /// The target's existing table of this name as the target sees it (`None` when missing),
    /// for schema-drift reports.
    async fn describe(&self, table: &TableInfo) -> Result<Option<TableInfo>> {
        Err(unsupported(self.kind(), "describe", &table.name))
    }

    /// Undoes what `prepare` and the run's writes did to `tables`, listed children before
    /// parents: drops the tables the run created, empties the tables it found empty, puts back
    /// the rows of backed-up tables (and drops the backups). Foreign keys between the tables
    /// must hold throughout, so a sink clears children before parents and refills parents
    /// before children; where it can, it does all of it in one transaction.
    async fn rollback(&self, tables: &[(TableInfo, Prepared)]) -> Result<()>;
}
