//! Streaming COPY BINARY output into batches.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Object;
use futures_util::StreamExt;
use migrate_core::{Batch, BatchReader, Error, ErrorKind, Result, Row, Schema};
use tokio_postgres::types::Type;
use tokio_postgres::CopyOutStream;

use crate::copy_binary::TupleDecoder;
use crate::error::pg_error;

/// A chunk being read: the pooled connection (inside a read-only snapshot transaction) and the
/// COPY stream. At most one batch is decoded at a time.
pub struct CopyReader {
    conn: Option<Object>,
    stream: Pin<Box<CopyOutStream>>,
    decoder: TupleDecoder,
    schema: Arc<Schema>,
    batch_rows: usize,
    done: bool,
    table: String,
}

impl CopyReader {
    /// Reads `stream` (a `COPY … TO STDOUT (FORMAT binary)` on `conn`) whose columns have the
    /// wire types `types`, committing `conn`'s transaction once the stream has ended.
    pub(crate) fn new(
        conn: Object,
        stream: CopyOutStream,
        types: Vec<Type>,
        schema: Arc<Schema>,
        batch_rows: usize,
        table: String,
    ) -> Self {
        CopyReader {
            conn: Some(conn),
            stream: Box::pin(stream),
            decoder: TupleDecoder::new(types),
            schema,
            batch_rows: batch_rows.max(1),
            done: false,
            table,
        }
    }
}

#[async_trait]
impl BatchReader for CopyReader {
    fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        if self.done {
            return Ok(None);
        }
        let mut rows: Vec<Row> = Vec::with_capacity(self.batch_rows);
        while rows.len() < self.batch_rows {
            match self.stream.next().await {
                Some(Ok(chunk)) => self.decoder.feed(&chunk, &mut rows).map_err(|e| {
                    let what = match e.column {
                        Some(i) => format!(
                            "table {}: column {:?} could not be decoded",
                            self.table, self.schema.columns[i].name
                        ),
                        None => format!("table {}: malformed COPY BINARY stream", self.table),
                    };
                    Error::with_source(ErrorKind::Validation, what, e.source)
                })?,
                Some(Err(e)) => return Err(pg_error(e, &format!("reading {}", self.table))),
                None => {
                    if !self.decoder.ended() || self.decoder.has_partial() {
                        return Err(Error::transient(format!(
                            "table {}: the COPY stream ended before its trailer",
                            self.table
                        )));
                    }
                    self.done = true;
                    if let Some(conn) = &self.conn {
                        conn.batch_execute("COMMIT")
                            .await
                            .map_err(|e| pg_error(e, "ending the read transaction"))?;
                    }
                    break;
                }
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let size = self.decoder.take_byte_size();
        Ok(Some(Batch::with_byte_size(self.schema.clone(), rows, size)))
    }
}

impl Drop for CopyReader {
    fn drop(&mut self) {
        // A connection abandoned mid-COPY cannot be reused: take it out of the pool so it closes.
        if !self.done {
            if let Some(conn) = self.conn.take() {
                drop(Object::take(conn));
            }
        }
    }
}
