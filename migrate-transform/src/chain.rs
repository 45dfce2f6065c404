//! A table's steps in order, as one transform: the output schema of each is the input of the
//! next, and rows rejected or left out by any step are counted once.

use std::sync::Arc;

use migrate_core::{Batch, Result, Schema, Transform, TransformOutput};

/// Steps applied in order.
#[derive(Clone, Default)]
pub struct Chain {
    steps: Vec<Arc<dyn Transform>>,
    name: String,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Chain {
    /// No steps (rows pass unchanged).
    pub fn new() -> Self {
        Chain {
            steps: Vec::new(),
            name: "chain()".into(),
        }
    }

    /// The chain with `step` last.
    pub fn then(mut self, step: impl Transform + 'static) -> Self {
        self.push(Arc::new(step));
        self
    }

    /// Adds `step` last (a CUSTOM transform of any kind).
    pub fn push(&mut self, step: Arc<dyn Transform>) {
        self.steps.push(step);
        let names: Vec<&str> = self.steps.iter().map(|s| s.name()).collect();
        self.name = format!("chain({})", names.join(" → "));
    }

    /// Its steps.
    pub fn steps(&self) -> &[Arc<dyn Transform>] {
        &self.steps
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl Transform for Chain {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self, input: &Arc<Schema>) -> Result<Arc<Schema>> {
        let mut s = input.clone();
        for step in &self.steps {
            s = step.output_schema(&s)?;
        }
        Ok(s)
    }

    fn apply(&self, batch: Batch) -> Result<TransformOutput> {
        let mut out = TransformOutput::passed(batch);
        for step in &self.steps {
            let next = step.apply(out.batch)?;
            out.batch = next.batch;
            out.rejected.extend(next.rejected);
            out.filtered += next.filtered;
        }
        Ok(out)
    }
}
