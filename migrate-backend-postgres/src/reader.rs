//! Streaming COPY BINARY output into batches.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Object;
use futures_util::StreamExt;
use migrate_core::{Batch, BatchReader, Error, ErrorKind, Result, Row, Schema};
use tokio_postgres::binary_copy::BinaryCopyOutStream;

use crate::codec::PgValue;
use crate::error::pg_error;

/// A chunk being read: the pooled connection (inside a read-only snapshot transaction) and the
/// COPY stream. At most one batch is decoded at a time.
pub struct CopyReader {
    pub(crate) conn: Option<Object>,
    pub(crate) stream: Pin<Box<BinaryCopyOutStream>>,
    pub(crate) schema: Arc<Schema>,
    pub(crate) batch_rows: usize,
    pub(crate) done: bool,
    pub(crate) table: String,
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
        let width = self.schema.columns.len();
        let mut rows: Vec<Row> = Vec::with_capacity(self.batch_rows);
        while rows.len() < self.batch_rows {
            match self.stream.next().await {
                Some(Ok(r)) => {
                    let mut row = Vec::with_capacity(width);
                    for i in 0..width {
                        let v: PgValue = r.try_get(i).map_err(|e| {
                            Error::with_source(
                                ErrorKind::Validation,
                                format!(
                                    "table {}: column {:?} could not be decoded",
                                    self.table, self.schema.columns[i].name
                                ),
                                e,
                            )
                        })?;
                        row.push(v.0);
                    }
                    rows.push(row);
                }
                Some(Err(e)) => return Err(pg_error(e, &format!("reading {}", self.table))),
                None => {
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
        Ok(Some(Batch::new(self.schema.clone(), rows)))
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
