//! Row transformations between source and sink.

use std::sync::Arc;

use crate::batch::{Batch, Row};
use crate::error::{ErrorKind, Result};
use crate::schema::Schema;
use crate::value::Value;

/// A row a transform refused, named by its key (never by its values): the rule it broke and
/// why. The row itself travels along for an operator who opted in to keeping rejected rows'
/// values; it is never logged (`Debug` shows only its width).
#[derive(Clone, PartialEq)]
pub struct Rejected {
    /// Primary key of the rejected row (empty for keyless tables).
    pub key: Vec<Value>,
    /// The rule it broke (`convert age`, `filter`, `required email`).
    pub rule: String,
    /// Why it was refused (names the rule's terms, never the row's values).
    pub reason: String,
    /// What kind of failure: a value that does not convert or breaks a rule is `Validation`.
    pub kind: ErrorKind,
    /// The row as the transform received it, kept only where values may be stored.
    pub row: Option<Row>,
}

impl Rejected {
    /// A row of key `key` refused by `rule` for `reason` (a validation failure).
    pub fn new(key: Vec<Value>, rule: impl Into<String>, reason: impl Into<String>) -> Self {
        Rejected {
            key,
            rule: rule.into(),
            reason: reason.into(),
            kind: ErrorKind::Validation,
            row: None,
        }
    }
}

impl std::fmt::Debug for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejected")
            .field("key", &self.key)
            .field("rule", &self.rule)
            .field("reason", &self.reason)
            .field("kind", &self.kind)
            .field(
                "row",
                &self.row.as_ref().map(|r| format!("<{} values>", r.len())),
            )
            .finish()
    }
}

/// The output of one [`Transform::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct TransformOutput {
    /// Rows that passed, in the output schema.
    pub batch: Batch,
    /// Rows refused, to be recorded as rejected records.
    pub rejected: Vec<Rejected>,
    /// Rows left out on purpose (a filter's), neither passed nor rejected.
    pub filtered: u64,
}

impl TransformOutput {
    /// Every row passed.
    pub fn passed(batch: Batch) -> Self {
        TransformOutput {
            batch,
            rejected: Vec::new(),
            filtered: 0,
        }
    }
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
