//! Column mappings: the common case of a table's transforms without writing a chain — each
//! target column from a source column (or an expression), of a type, required or not, with a
//! default for a missing value. The mapped columns are the output, in order.

use std::sync::Arc;

use migrate_core::{
    Batch, Column, DataType, Error, Result, Schema, Transform, TransformOutput, Value,
};

use crate::cast::cast;
use crate::expr::Expr;
use crate::rows::{column, each_row, Outcome};

/// One target column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnMapping {
    /// The source column it comes from (`None` with an expression).
    pub source: Option<String>,
    /// An expression of the expression language it comes from instead.
    pub expr: Option<String>,
    /// Its name in the target.
    pub target: String,
    /// Its type in the target (`None`: the source's, or the expression's).
    pub data_type: Option<DataType>,
    /// A row without a value (after the default) is rejected.
    pub required: bool,
    /// The value when the source has none (NULL).
    pub default: Option<Value>,
}

impl ColumnMapping {
    /// `source` carried as `target`, unchanged.
    pub fn new(source: impl Into<String>, target: impl Into<String>) -> Self {
        ColumnMapping {
            source: Some(source.into()),
            expr: None,
            target: target.into(),
            data_type: None,
            required: false,
            default: None,
        }
    }
}

/// A table's column mappings as one step.
#[derive(Debug, Clone)]
pub struct Mappings {
    columns: Vec<ColumnMapping>,
}

/// How one mapping reads a row.
enum From {
    Column(usize),
    Expr(Expr),
}

impl Mappings {
    /// These target columns, in this order.
    pub fn new(columns: Vec<ColumnMapping>) -> Self {
        Mappings { columns }
    }

    fn plan(&self, input: &Schema) -> Result<(Vec<From>, Schema)> {
        let mut from = Vec::new();
        let mut columns = Vec::new();
        let mut key = Vec::new();
        for m in &self.columns {
            let step = format!("mapping {}", m.target);
            let (f, source_type) = match (&m.source, &m.expr) {
                (Some(s), None) => {
                    let i = column(input, &step, s)?;
                    if input.primary_key.contains(&i) {
                        if m.data_type
                            .as_ref()
                            .is_some_and(|t| *t != input.columns[i].data_type)
                        {
                            return Err(Error::config(format!(
                                "{step}: `{s}` is a key column; its type is kept (keys name rows across resume and replay)"
                            )));
                        }
                        key.push((i, m.target.clone()));
                    }
                    (From::Column(i), input.columns[i].data_type.clone())
                }
                (None, Some(text)) => {
                    let e = Expr::parse(text, input)
                        .map_err(|e| Error::config(format!("{step}: {e}")))?;
                    let t = e.data_type().clone();
                    (From::Expr(e), t)
                }
                _ => {
                    return Err(Error::config(format!(
                        "{step}: give either a source column or an expression"
                    )))
                }
            };
            let data_type = m.data_type.clone().unwrap_or(source_type);
            if let Some(d) = &m.default {
                cast(d, &data_type).map_err(|e| {
                    Error::config(format!("{step}: the default is not a {data_type} ({e})"))
                })?;
            }
            let mut c = Column::new(m.target.clone(), data_type);
            c.nullable = !m.required;
            columns.push(c);
            from.push(f);
        }
        for &k in &input.primary_key {
            if !key.iter().any(|(i, _)| *i == k) {
                return Err(Error::config(format!(
                    "mappings: key column `{}` must be mapped (it names rows across resume and replay)",
                    input.columns[k].name
                )));
            }
        }
        let key_names: Vec<&str> = input
            .primary_key
            .iter()
            .filter_map(|k| key.iter().find(|(i, _)| i == k).map(|(_, n)| n.as_str()))
            .collect();
        let schema = Schema::new(columns, &key_names)
            .map_err(|e| Error::config(format!("mappings: {}", e.message())))?;
        Ok((from, schema))
    }
}

impl Transform for Mappings {
    fn name(&self) -> &str {
        "mappings"
    }

    fn output_schema(&self, input: &Arc<Schema>) -> Result<Arc<Schema>> {
        Ok(Arc::new(self.plan(input)?.1))
    }

    fn apply(&self, batch: Batch) -> Result<TransformOutput> {
        let (from, schema) = self.plan(batch.schema())?;
        let schema = Arc::new(schema);
        let types: Vec<DataType> = schema.columns.iter().map(|c| c.data_type.clone()).collect();
        Ok(each_row(batch, schema, |row| {
            let mut out = Vec::with_capacity(self.columns.len());
            for ((m, f), t) in self.columns.iter().zip(&from).zip(&types) {
                let rule = || format!("mapping {}", m.target);
                let v = match f {
                    From::Column(i) => Ok(row[*i].clone()),
                    From::Expr(e) => e.eval(row),
                };
                let v = v.and_then(|v| match (&v, &m.default) {
                    (Value::Null, Some(d)) => cast(d, t),
                    _ => cast(&v, t),
                });
                match v {
                    Ok(Value::Null) if m.required => {
                        return Outcome::Reject {
                            rule: format!("required {}", m.target),
                            reason: "a required value is missing".into(),
                        }
                    }
                    Ok(v) => out.push(v),
                    Err(reason) => {
                        return Outcome::Reject {
                            rule: rule(),
                            reason,
                        }
                    }
                }
            }
            Outcome::Keep(out)
        }))
    }
}
