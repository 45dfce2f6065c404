//! LOOKUP: columns added from reference data — an in-memory map, or a small table read once
//! from the source — matched on key columns, with a policy for a key the data does not hold.

use std::collections::HashMap;
use std::sync::Arc;

use migrate_core::checksum::canonical_text;
use migrate_core::{
    collect_rows, Batch, ChunkSpec, Column, Error, Result, Schema, Source, TableInfo, Transform,
    TransformOutput, Value,
};

use crate::cast::cast;
use crate::rows::{column, each_row, Outcome};

/// What a row whose key the reference data lacks does.
#[derive(Debug, Clone, PartialEq)]
pub enum OnMiss {
    /// Its row is rejected.
    Reject,
    /// The added columns are NULL.
    Null,
    /// The added columns take these values.
    Default(Vec<Value>),
}

/// Reference data: key values → the values of the added columns.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    rows: HashMap<String, Vec<Value>>,
}

/// The largest reference table read from a source (it is held in memory).
pub const MAX_REFERENCE_ROWS: usize = 1_000_000;

impl Reference {
    /// From `(key, values)` pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Vec<Value>, Vec<Value>)>) -> Self {
        Reference {
            rows: pairs.into_iter().map(|(k, v)| (key_text(&k), v)).collect(),
        }
    }

    /// Reads `table` of `source` once: `key` columns to `values` columns (at most
    /// [`MAX_REFERENCE_ROWS`] rows; a key seen twice is an error naming the table).
    pub async fn from_source(
        source: &dyn Source,
        table: &TableInfo,
        key: &[&str],
        values: &[&str],
    ) -> Result<Self> {
        let step = format!("lookup table {}", table.name);
        let ki: Vec<usize> = key
            .iter()
            .map(|k| column(&table.schema, &step, k))
            .collect::<Result<_>>()?;
        let vi: Vec<usize> = values
            .iter()
            .map(|v| column(&table.schema, &step, v))
            .collect::<Result<_>>()?;
        let whole = ChunkSpec::whole_table(table.name.clone(), 0);
        let mut reader = source.read_chunk(table, &whole, 10_000).await?;
        let rows = collect_rows(&mut *reader).await?;
        if rows.len() > MAX_REFERENCE_ROWS {
            return Err(Error::config(format!(
                "{step}: {} rows; a reference table is held in memory (at most {MAX_REFERENCE_ROWS})",
                rows.len()
            )));
        }
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let k: Vec<Value> = ki.iter().map(|i| r[*i].clone()).collect();
            let v: Vec<Value> = vi.iter().map(|i| r[*i].clone()).collect();
            if out.insert(key_text(&k), v).is_some() {
                return Err(Error::config(format!(
                    "{step}: a key appears twice; the lookup would be ambiguous"
                )));
            }
        }
        Ok(Reference { rows: out })
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Keys compared by value across integer widths (an `int4` column against `int8` data).
fn key_text(k: &[Value]) -> String {
    k.iter()
        .map(canonical_text)
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// Columns added from reference data.
#[derive(Debug, Clone)]
pub struct Lookup {
    on: Vec<String>,
    adds: Vec<Column>,
    data: Arc<Reference>,
    on_miss: OnMiss,
    name: String,
}

impl Lookup {
    /// Adds `adds` (each reference row's values, in order) to each row, matched on the row's
    /// `on` columns.
    pub fn new(
        on: impl IntoIterator<Item = impl Into<String>>,
        adds: Vec<Column>,
        data: Arc<Reference>,
        on_miss: OnMiss,
    ) -> Self {
        let on: Vec<String> = on.into_iter().map(Into::into).collect();
        Lookup {
            name: format!("lookup {}", on.join(", ")),
            on,
            adds,
            data,
            on_miss,
        }
    }
}

impl Transform for Lookup {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self, input: &Arc<Schema>) -> Result<Arc<Schema>> {
        for c in &self.on {
            column(input, &self.name, c)?;
        }
        if let OnMiss::Default(d) = &self.on_miss {
            if d.len() != self.adds.len() {
                return Err(Error::config(format!(
                    "{}: {} default values for {} added columns",
                    self.name,
                    d.len(),
                    self.adds.len()
                )));
            }
        }
        let mut out = (**input).clone();
        for a in &self.adds {
            if out.index_of(&a.name).is_some() {
                return Err(Error::config(format!(
                    "{}: the table already has a column `{}`",
                    self.name, a.name
                )));
            }
            let mut a = a.clone();
            a.nullable = true;
            out.columns.push(a);
        }
        Ok(Arc::new(out))
    }

    fn apply(&self, batch: Batch) -> Result<TransformOutput> {
        let on: Vec<usize> = self
            .on
            .iter()
            .map(|c| column(batch.schema(), &self.name, c))
            .collect::<Result<_>>()?;
        let out = self.output_schema(batch.schema())?;
        Ok(each_row(batch, out, |row| {
            let k: Vec<Value> = on.iter().map(|i| row[*i].clone()).collect();
            let found = match k.iter().any(Value::is_null) {
                true => None,
                false => self.data.rows.get(&key_text(&k)),
            };
            let added = match (found, &self.on_miss) {
                (Some(v), _) if v.len() != self.adds.len() => {
                    return Outcome::Reject {
                        rule: self.name.clone(),
                        reason: format!(
                            "the reference row has {} values for {} added columns",
                            v.len(),
                            self.adds.len()
                        ),
                    }
                }
                (Some(v), _) => v.clone(),
                (None, OnMiss::Null) => vec![Value::Null; self.adds.len()],
                (None, OnMiss::Default(d)) => d.clone(),
                (None, OnMiss::Reject) => {
                    return Outcome::Reject {
                        rule: self.name.clone(),
                        reason: "no reference row for the row's key".into(),
                    }
                }
            };
            // Reference values as the added columns' types (an integer in a text column
            // would fail the chunk in the sink, naming the value).
            let mut r = row.clone();
            for (v, c) in added.iter().zip(&self.adds) {
                match cast(v, &c.data_type) {
                    Ok(v) => r.push(v),
                    Err(reason) => {
                        return Outcome::Reject {
                            rule: self.name.clone(),
                            reason: format!("reference value for `{}`: {reason}", c.name),
                        }
                    }
                }
            }
            Outcome::Keep(r)
        }))
    }
}
