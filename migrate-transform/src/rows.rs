//! What every built-in step shares: rows taken one at a time — kept (changed or not), left out
//! by a filter, or rejected under a rule — with the key of the row as it came in; and the rule
//! that no step may change or drop a key column (the key names a row across resume, rejection
//! and replay, and chunk ranges are the source's keys).

use std::sync::Arc;

use migrate_core::{Batch, Error, Rejected, Result, Row, Schema, TransformOutput};

/// What became of one row.
pub(crate) enum Outcome {
    /// Passed, as this row.
    Keep(Row),
    /// Left out on purpose.
    Drop,
    /// Refused by `rule` for `reason`.
    Reject {
        /// The rule.
        rule: String,
        /// Why (never a value).
        reason: String,
    },
}

/// Runs `f` over each row of `batch`; the rows kept make a batch of `out`.
pub(crate) fn each_row(
    batch: Batch,
    out: Arc<Schema>,
    mut f: impl FnMut(&Row) -> Outcome,
) -> TransformOutput {
    let input = batch.schema().clone();
    let mut kept = Vec::with_capacity(batch.len());
    let mut rejected = Vec::new();
    let mut filtered = 0;
    for row in batch.into_rows() {
        match f(&row) {
            Outcome::Keep(r) => kept.push(r),
            Outcome::Drop => filtered += 1,
            Outcome::Reject { rule, reason } => rejected.push(Rejected {
                row: Some(row.clone()),
                ..Rejected::new(input.key_of(&row), rule, reason)
            }),
        }
    }
    TransformOutput {
        batch: Batch::new(out, kept),
        rejected,
        filtered,
    }
}

/// The index of `column` in `schema`, or an error naming the step and the columns there are.
pub(crate) fn column(schema: &Schema, step: &str, column: &str) -> Result<usize> {
    schema.index_of(column).ok_or_else(|| {
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        Error::config(format!(
            "{step}: unknown column `{column}` (columns: {})",
            names.join(", ")
        ))
    })
}

/// Refuses a step that would rewrite key column `index`.
pub(crate) fn not_key(schema: &Schema, step: &str, index: usize) -> Result<()> {
    if schema.primary_key.contains(&index) {
        return Err(Error::config(format!(
            "{step}: `{}` is a key column; keys name rows across resume and replay and are never rewritten",
            schema.columns[index].name
        )));
    }
    Ok(())
}
