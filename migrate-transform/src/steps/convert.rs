//! CONVERT: a column cast to another type, with a policy for a value that does not convert.

use std::sync::Arc;

use migrate_core::{Batch, DataType, Error, Result, Schema, Transform, TransformOutput, Value};

use crate::cast::cast;
use crate::rows::{column, each_row, not_key, Outcome};

/// What a value that does not convert does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Its row is rejected (recorded by key; the chunk goes on).
    Reject,
    /// The value becomes NULL (the column becomes nullable).
    Null,
    /// The table fails.
    Fail,
}

/// A column cast to `to`.
#[derive(Debug, Clone)]
pub struct Convert {
    column: String,
    to: DataType,
    on_error: OnError,
    name: String,
}

impl Convert {
    /// `column` cast to `to`; `on_error` for a value that does not convert.
    pub fn new(column: impl Into<String>, to: DataType, on_error: OnError) -> Self {
        let column = column.into();
        Convert {
            name: format!("convert {column}"),
            column,
            to,
            on_error,
        }
    }
}

impl Transform for Convert {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self, input: &Arc<Schema>) -> Result<Arc<Schema>> {
        let i = column(input, &self.name, &self.column)?;
        not_key(input, &self.name, i)?;
        let mut out = (**input).clone();
        out.columns[i].data_type = self.to.clone();
        if self.on_error == OnError::Null {
            out.columns[i].nullable = true;
        }
        // The source's own type name describes the source's type, not this one.
        out.columns[i].source_type = None;
        Ok(Arc::new(out))
    }

    fn apply(&self, batch: Batch) -> Result<TransformOutput> {
        let i = column(batch.schema(), &self.name, &self.column)?;
        let out = self.output_schema(batch.schema())?;
        let mut failure = None;
        let result = each_row(batch, out, |row| match cast(&row[i], &self.to) {
            Ok(v) => {
                let mut r = row.clone();
                r[i] = v;
                Outcome::Keep(r)
            }
            Err(reason) => match self.on_error {
                OnError::Reject => Outcome::Reject {
                    rule: self.name.clone(),
                    reason,
                },
                OnError::Null => {
                    let mut r = row.clone();
                    r[i] = Value::Null;
                    Outcome::Keep(r)
                }
                OnError::Fail => {
                    failure.get_or_insert(reason);
                    Outcome::Drop
                }
            },
        });
        match failure {
            Some(reason) => Err(Error::validation(format!(
                "{}: a value does not convert to {} ({reason}); the policy is to fail the table",
                self.name, self.to
            ))),
            None => Ok(result),
        }
    }
}
