//! MAP: columns selected, renamed and reordered. The key columns must be among them (renamed
//! if need be): they name rows across resume and replay.

use std::sync::Arc;

use migrate_core::{Batch, Error, Result, Schema, Transform, TransformOutput};

use crate::rows::column;

/// Which columns go on, in which order, under which names.
#[derive(Debug, Clone)]
pub struct Map {
    /// `(source column, output name)`; `None`: every column, in order, renamed where listed.
    select: Option<Vec<(String, String)>>,
    renames: Vec<(String, String)>,
}

impl Map {
    /// Exactly these columns, in this order, each `(source, output name)`.
    pub fn columns<S: Into<String>>(columns: impl IntoIterator<Item = (S, S)>) -> Self {
        Map {
            select: Some(
                columns
                    .into_iter()
                    .map(|(a, b)| (a.into(), b.into()))
                    .collect(),
            ),
            renames: Vec::new(),
        }
    }

    /// Exactly these columns, in this order, names unchanged.
    pub fn select<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        Map::columns(columns.into_iter().map(|c| {
            let c = c.into();
            (c.clone(), c)
        }))
    }

    /// Every column, in order, these renamed (`(old, new)`).
    pub fn rename<S: Into<String>>(renames: impl IntoIterator<Item = (S, S)>) -> Self {
        Map {
            select: None,
            renames: renames
                .into_iter()
                .map(|(a, b)| (a.into(), b.into()))
                .collect(),
        }
    }

    /// `(input index, output name)` of each output column.
    fn plan(&self, input: &Schema) -> Result<Vec<(usize, String)>> {
        let step = "map";
        let plan: Vec<(usize, String)> = match &self.select {
            Some(cols) => cols
                .iter()
                .map(|(src, dst)| Ok((column(input, step, src)?, dst.clone())))
                .collect::<Result<_>>()?,
            None => {
                for (old, _) in &self.renames {
                    column(input, step, old)?;
                }
                input
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let name = self
                            .renames
                            .iter()
                            .find(|(old, _)| *old == c.name)
                            .map_or_else(|| c.name.clone(), |(_, new)| new.clone());
                        (i, name)
                    })
                    .collect()
            }
        };
        for &k in &input.primary_key {
            if !plan.iter().any(|(i, _)| *i == k) {
                return Err(Error::config(format!(
                    "map: key column `{}` must be kept (it names rows across resume and replay)",
                    input.columns[k].name
                )));
            }
        }
        Ok(plan)
    }
}

impl Transform for Map {
    fn name(&self) -> &str {
        "map"
    }

    fn output_schema(&self, input: &Arc<Schema>) -> Result<Arc<Schema>> {
        let plan = self.plan(input)?;
        let columns = plan
            .iter()
            .map(|(i, name)| {
                let mut c = input.columns[*i].clone();
                c.name = name.clone();
                c
            })
            .collect();
        let key: Vec<&str> = input
            .primary_key
            .iter()
            .filter_map(|k| plan.iter().find(|(i, _)| i == k).map(|(_, n)| n.as_str()))
            .collect();
        Ok(Arc::new(Schema::new(columns, &key).map_err(|e| {
            Error::config(format!("map: {}", e.message()))
        })?))
    }

    fn apply(&self, batch: Batch) -> Result<TransformOutput> {
        let plan = self.plan(batch.schema())?;
        let out = self.output_schema(batch.schema())?;
        let rows = batch
            .into_rows()
            .into_iter()
            .map(|row| plan.iter().map(|(i, _)| row[*i].clone()).collect())
            .collect();
        Ok(TransformOutput::passed(Batch::new(out, rows)))
    }
}
