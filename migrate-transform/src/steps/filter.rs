//! FILTER: only the rows for which a condition holds go on (NULL does not hold); the others are
//! left out on purpose and counted, not rejected. A row the condition cannot be evaluated on (a
//! division by zero) is rejected.

use std::sync::Arc;

use migrate_core::{Batch, DataType, Error, Result, Schema, Transform, TransformOutput};

use crate::expr::Expr;
use crate::rows::{each_row, Outcome};

/// Rows kept where `condition` holds.
#[derive(Debug, Clone)]
pub struct Filter {
    condition: String,
}

impl Filter {
    /// Keeps the rows for which `condition` (the expression language) is true.
    pub fn new(condition: impl Into<String>) -> Self {
        Filter {
            condition: condition.into(),
        }
    }

    fn compiled(&self, input: &Schema) -> Result<Expr> {
        let e = Expr::parse(&self.condition, input)
            .map_err(|e| Error::config(format!("filter: {e}")))?;
        if e.data_type() != &DataType::Bool {
            return Err(Error::config(format!(
                "filter: `{}` yields {}, not a condition",
                self.condition,
                e.data_type()
            )));
        }
        Ok(e)
    }
}

impl Transform for Filter {
    fn name(&self) -> &str {
        "filter"
    }

    fn output_schema(&self, input: &Arc<Schema>) -> Result<Arc<Schema>> {
        self.compiled(input)?;
        Ok(input.clone())
    }

    fn apply(&self, batch: Batch) -> Result<TransformOutput> {
        let e = self.compiled(batch.schema())?;
        let out = batch.schema().clone();
        Ok(each_row(batch, out, |row| match e.holds(row) {
            Ok(true) => Outcome::Keep(row.clone()),
            Ok(false) => Outcome::Drop,
            Err(reason) => Outcome::Reject {
                rule: "filter".into(),
                reason,
            },
        }))
    }
}
