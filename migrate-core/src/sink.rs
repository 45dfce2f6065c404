//! Where rows go.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::batch::{BatchReader, Row};
use crate::checksum::RowChecksum;
use crate::chunk::{ChunkSpec, KeyRange};
use crate::error::Result;
use crate::schema::TableInfo;
use crate::source::unsupported;
use crate::value::Value;

/// What a sink can do beyond the required methods; the executor and planner consult it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkCapabilities {
    /// `write_chunk` is atomic: a failed write leaves nothing behind.
    pub transactional_chunks: bool,
    /// The whole migration can run in one target transaction.
    pub single_transaction: bool,
    /// `upsert` is implemented (incremental runs).
    pub upsert: bool,
    /// `prepare` can back up an existing table before it is overwritten.
    pub backup: bool,
    /// A staged bulk-load path exists (files + load job / COPY INTO).
    pub bulk_load: bool,
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

/// Options for [`Sink::prepare`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareOptions {
    /// What to do with an existing table.
    pub mode: PrepareMode,
    /// Back up an existing table before changing it, so rollback can restore it.
    pub backup: bool,
}

/// What `prepare` did; recorded by the executor so rollback can undo exactly that.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    /// The table did not exist and was created by this run.
    pub created: bool,
    /// Name of the backup taken of a table that existed before, if any.
    pub backup: Option<String>,
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
    async fn prepare(&self, table: &TableInfo, options: &PrepareOptions) -> Result<Prepared>;

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

    /// Count and canonical checksum of the rows in `range`; an error of kind `NotFound` when
    /// the table does not exist.
    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum>;

    /// Called once all chunks of a table are written: build deferred indexes and constraints.
    async fn finalize(&self, table: &TableInfo) -> Result<()> {
        let _ = table;
        Ok(())
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

    /// The target's existing table of this name as the target sees it (`None` when missing),
    /// for schema-drift reports.
    async fn describe(&self, table: &TableInfo) -> Result<Option<TableInfo>> {
        Err(unsupported(self.kind(), "describe", &table.name))
    }

    /// Undoes what `prepare` did: drops a table the run created, restores a backup.
    async fn rollback(&self, table: &TableInfo, prepared: &Prepared) -> Result<()>;
}
