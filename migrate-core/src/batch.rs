//! Rows in flight: [`Batch`] and the pull-based [`BatchReader`] that carries them from a source,
//! through transforms, into a sink.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;

use crate::encoded::{EncodedBatch, Encoding};
use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::value::Value;

/// One row: values in schema column order.
pub type Row = Vec<Value>;

/// Rows sharing one schema, with their in-memory size known so memory is budgeted in bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    schema: Arc<Schema>,
    rows: Vec<Row>,
    byte_size: usize,
}

impl Batch {
    /// A batch; its byte size is computed from the values.
    pub fn new(schema: Arc<Schema>, rows: Vec<Row>) -> Self {
        let byte_size = rows.iter().map(|r| row_byte_size(r)).sum();
        Batch {
            schema,
            rows,
            byte_size,
        }
    }

    /// A batch whose producer already summed [`row_byte_size`] over `rows` (a decoder can do
    /// it per value while the value is in cache; a second pass over every value showed up in
    /// profiles). Budgeting trusts the figure.
    pub fn with_byte_size(schema: Arc<Schema>, rows: Vec<Row>, byte_size: usize) -> Self {
        debug_assert_eq!(
            byte_size,
            rows.iter().map(|r| row_byte_size(r)).sum::<usize>()
        );
        Batch {
            schema,
            rows,
            byte_size,
        }
    }

    /// An empty batch.
    pub fn empty(schema: Arc<Schema>) -> Self {
        Batch::new(schema, Vec::new())
    }

    /// The schema every row follows.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Takes the rows out.
    pub fn into_rows(self) -> Vec<Row> {
        self.rows
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Approximate bytes held in memory by the rows.
    pub fn byte_size(&self) -> usize {
        self.byte_size
    }
}

/// Approximate in-memory size of a row.
pub fn row_byte_size(row: &[Value]) -> usize {
    std::mem::size_of::<Row>() + row.iter().map(Value::byte_size).sum::<usize>()
}

/// A pull-based stream of batches: the consumer asks for the next batch when it is ready for it,
/// which is what bounds memory (nothing is read ahead that nobody asked for).
#[async_trait]
pub trait BatchReader: Send {
    /// The schema of the batches this reader yields (known before any data flows).
    fn schema(&self) -> &Arc<Schema>;

    /// The next batch, or `None` at the end. After an error the reader must not be polled again.
    async fn next_batch(&mut self) -> Result<Option<Batch>>;

    /// The encoding this reader can also hand rows over in, undecoded, if any (see
    /// [`crate::encoded`]). A consumer that recognises it may read with [`Self::next_encoded`]
    /// instead of [`Self::next_batch`]; it uses one of the two for the whole stream.
    fn encoding(&self) -> Option<&Arc<Encoding>> {
        None
    }

    /// The next batch still in [`Self::encoding`], or `None` at the end. Only called on readers
    /// that offer an encoding.
    async fn next_encoded(&mut self) -> Result<Option<EncodedBatch>> {
        Err(Error::fatal("this reader has no encoded form"))
    }
}

/// A reader over batches already in memory (tests, small tables, transforms).
pub struct VecBatchReader {
    schema: Arc<Schema>,
    batches: VecDeque<Batch>,
}

impl VecBatchReader {
    /// Yields `batches` in order.
    pub fn new(schema: Arc<Schema>, batches: Vec<Batch>) -> Self {
        VecBatchReader {
            schema,
            batches: batches.into(),
        }
    }

    /// Yields `rows` split into batches of at most `batch_rows` rows.
    pub fn from_rows(schema: Arc<Schema>, rows: Vec<Row>, batch_rows: usize) -> Self {
        let batch_rows = batch_rows.max(1);
        let mut batches = Vec::with_capacity(rows.len() / batch_rows + 1);
        let mut it = rows.into_iter().peekable();
        while it.peek().is_some() {
            let chunk: Vec<Row> = it.by_ref().take(batch_rows).collect();
            batches.push(Batch::new(schema.clone(), chunk));
        }
        VecBatchReader::new(schema, batches)
    }
}

#[async_trait]
impl BatchReader for VecBatchReader {
    fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        Ok(self.batches.pop_front())
    }
}

/// Reads every remaining batch into rows (tests and small tables only: unbounded memory).
pub async fn collect_rows(reader: &mut dyn BatchReader) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    while let Some(b) = reader.next_batch().await? {
        rows.extend(b.into_rows());
    }
    Ok(rows)
}
