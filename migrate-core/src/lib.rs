//! # migrate-core
//!
//! The data model, the four traits every backend implements ([`Source`], [`Sink`],
//! [`CheckpointStore`], [`Transform`]), one classified [`Error`], and the canonical row
//! [`checksum`] that lets different engines prove they hold the same rows.
//!
//! Backends live in their own crates (`migrate-backend-postgres`, …). With the `testing` feature
//! this crate also provides in-memory backends with fault injection and the conformance suites
//! every backend must pass ([`testing`]).

pub mod batch;
pub mod checkpoint;
pub mod checksum;
pub mod chunk;
pub mod config_serde;
pub mod dag;
pub mod decimal;
pub mod encoded;
pub mod error;
pub mod executor;
pub mod objects;
pub mod plan;
pub mod report;
pub mod retry;
pub mod schema;
pub mod sink;
pub mod source;
pub mod transform;
pub mod value;

#[cfg(feature = "testing")]
pub mod testing;

pub use batch::{collect_rows, Batch, BatchReader, Row, VecBatchReader};
pub use checkpoint::{
    AuditEvent, CheckpointStore, ChunkRecord, ChunkResult, ChunkStatus, Control, RejectedRecord,
    RunId, RunRecord, RunStatus, TableRecord, TableStatus,
};
pub use checksum::RowChecksum;
pub use chunk::{ChunkSpec, KeyRange, Operation};
pub use decimal::Decimal;
pub use encoded::{EncodedBatch, Encoding, RowCodec, POSTGRES_COPY_BINARY};
pub use error::{Error, ErrorContext, ErrorKind, Exhausted, Result};
pub use executor::{ExecutorConfig, Migration, MigrationControls, MigrationHandle, Mode};
pub use objects::{ObjectKind, ObjectOutcome, SequenceValue, TableObjects, View};
pub use report::MigrationReport;
pub use schema::{Column, DataType, ForeignKey, IndexDef, Schema, TableInfo, TableName};
pub use sink::{
    ExistingRows, Preflight, PrepareMode, PrepareOptions, Prepared, Sink, SinkCapabilities,
    WriteStats,
};
pub use source::{ChangeRequest, EngineQuery, Source, TableFilter, Watermark};
pub use transform::{Rejected, Transform, TransformOutput};
pub use value::{Interval, Value};

/// Compile-time proof that the traits are object-safe and shareable across tasks.
#[allow(dead_code)]
fn _object_safety(
    _: std::sync::Arc<dyn Source>,
    _: std::sync::Arc<dyn Sink>,
    _: std::sync::Arc<dyn CheckpointStore>,
    _: std::sync::Arc<dyn Transform>,
    _: Box<dyn BatchReader>,
) {
}

#[allow(dead_code)]
fn _assert_send_sync<T: Send + Sync + ?Sized>() {}
const _: fn() = || {
    _assert_send_sync::<dyn Source>();
    _assert_send_sync::<dyn Sink>();
    _assert_send_sync::<dyn CheckpointStore>();
    _assert_send_sync::<dyn Transform>();
    _assert_send_sync::<Error>();
};
