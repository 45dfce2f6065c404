//! COMPUTE: a column derived from the row — by an expression of the expression language
//! (usable from TOML) or by a Rust closure — added at the end, or replacing a column of the
//! same name in place.

use std::sync::Arc;

use migrate_core::{
    Batch, Column, DataType, Error, Result, Schema, Transform, TransformOutput, Value,
};

use crate::cast::cast;
use crate::expr::Expr;
use crate::rows::{each_row, not_key, Outcome};

/// A row as a closure sees it: values by column name.
pub struct RowRef<'a> {
    schema: &'a Schema,
    row: &'a [Value],
}

impl RowRef<'_> {
    /// The value of `column` (`None` when there is no such column).
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.schema.index_of(column).and_then(|i| self.row.get(i))
    }
}

/// A closure computing a value, or why the row breaks it.
pub type ComputeFn = dyn Fn(&RowRef<'_>) -> std::result::Result<Value, String> + Send + Sync;

enum How {
    Expr(String),
    Closure(Arc<ComputeFn>),
}

/// A derived column.
pub struct Compute {
    column: String,
    data_type: Option<DataType>,
    how: How,
    name: String,
}

impl std::fmt::Debug for Compute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compute")
            .field("column", &self.column)
            .field("data_type", &self.data_type)
            .finish_non_exhaustive()
    }
}

impl Compute {
    /// `column` as the value of `expr` (checked against the table's columns before any row
    /// flows), of the expression's type unless `data_type` says another (then cast to it).
    pub fn expr(
        column: impl Into<String>,
        expr: impl Into<String>,
        data_type: Option<DataType>,
    ) -> Self {
        let column = column.into();
        Compute {
            name: format!("compute {column}"),
            column,
            data_type,
            how: How::Expr(expr.into()),
        }
    }

    /// `column` of `data_type` as `f`'s value for each row.
    pub fn with(
        column: impl Into<String>,
        data_type: DataType,
        f: impl Fn(&RowRef<'_>) -> std::result::Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        let column = column.into();
        Compute {
            name: format!("compute {column}"),
            column,
            data_type: Some(data_type),
            how: How::Closure(Arc::new(f)),
        }
    }

    fn compiled(&self, input: &Schema) -> Result<Option<Expr>> {
        match &self.how {
            How::Expr(text) => Expr::parse(text, input)
                .map(Some)
                .map_err(|e| Error::config(format!("{}: {e}", self.name))),
            How::Closure(_) => Ok(None),
        }
    }
}

impl Transform for Compute {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self, input: &Arc<Schema>) -> Result<Arc<Schema>> {
        let expr = self.compiled(input)?;
        let data_type = match (&self.data_type, &expr) {
            (Some(t), _) => t.clone(),
            (None, Some(e)) => e.data_type().clone(),
            (None, None) => return Err(Error::config(format!("{}: no type", self.name))),
        };
        let mut out = (**input).clone();
        match out.index_of(&self.column) {
            Some(i) => {
                not_key(input, &self.name, i)?;
                out.columns[i] = Column::new(self.column.clone(), data_type);
            }
            None => out
                .columns
                .push(Column::new(self.column.clone(), data_type)),
        }
        Ok(Arc::new(out))
    }

    fn apply(&self, batch: Batch) -> Result<TransformOutput> {
        let input = batch.schema().clone();
        let expr = self.compiled(&input)?;
        let out = self.output_schema(&input)?;
        let at = out.index_of(&self.column).unwrap_or(out.columns.len() - 1);
        // Values as the column is declared: the stated type, else the expression's (an int32
        // column read by a bare reference is an int64 column here).
        let declared = self
            .data_type
            .clone()
            .or_else(|| expr.as_ref().map(|e| e.data_type().clone()));
        Ok(each_row(batch, out, |row| {
            let value = match (&self.how, &expr) {
                (_, Some(e)) => e.eval(row),
                (How::Closure(f), None) => f(&RowRef {
                    schema: &input,
                    row,
                }),
                (How::Expr(_), None) => Err("not compiled".into()),
            };
            let value = value.and_then(|v| match &declared {
                Some(t) => cast(&v, t),
                None => Ok(v),
            });
            match value {
                Ok(v) => {
                    let mut r = row.clone();
                    if at < r.len() {
                        r[at] = v;
                    } else {
                        r.push(v);
                    }
                    Outcome::Keep(r)
                }
                Err(reason) => Outcome::Reject {
                    rule: self.name.clone(),
                    reason,
                },
            }
        }))
    }
}
