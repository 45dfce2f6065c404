//! Row transformations between source and sink.

use std::sync::Arc;

use crate::batch::Batch;
use crate::error::Result;
use crate::schema::Schema;
use crate::value::Value;

/// A row a transform refused, named by its key (never by its values).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rejected {
    /// Primary key of the rejected row (empty for keyless tables).
    pub key: Vec<Value>,
    /// Why it was refused.
    pub reason: String,
}

/// The output of one [`Transform::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct TransformOutput {
    /// Rows that passed, in the output schema.
    pub batch: Batch,
    /// Rows refused, to be recorded as rejected records.
    pub rejected: Vec<Rejected>,
}

/// Batch in, batch out plus rejected rows. Pure CPU work, so not async.
///
/// Contract: the output schema is known from the input schema alone, before any data flows (so
/// the sink can prepare the table); `apply` is deterministic, which keeps retried chunks
/// idempotent.
pub trait Transform: Send + Sync {
    /// Name for logs and reports.
    fn name(&self) -> &str;

    /// The schema of the batches `apply` returns for input of `input` schema.
    fn output_schema(&self, input: &Arc<Schema>) -> Result<Arc<Schema>>;

    /// Transforms one batch.
    fn apply(&self, batch: Batch) -> Result<TransformOutput>;
}
