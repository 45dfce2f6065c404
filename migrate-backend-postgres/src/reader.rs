//! Streaming COPY BINARY output into batches.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Object;
use futures_util::StreamExt;
use migrate_core::checksum::BucketedChecksums;
use migrate_core::{
    Batch, BatchReader, EncodedBatch, Encoding, Error, ErrorKind, Result, Row, RowChecksum,
    RowCodec, Schema, POSTGRES_COPY_BINARY,
};
use tokio_postgres::types::Type;
use tokio_postgres::CopyOutStream;

use crate::copy_binary::{
    checksum_bucketed_tuple, checksum_tuple, decode_tuple, DecodeError, RowSplitter, TupleDecoder,
};
use crate::error::pg_error;

/// A chunk being read: the pooled connection (inside a read-only snapshot transaction) and the
/// COPY stream. At most one batch is decoded at a time.
pub struct CopyReader {
    conn: Unreusable,
    stream: Pin<Box<CopyOutStream>>,
    decoder: TupleDecoder,
    /// Cuts tuples for [`BatchReader::next_encoded`] (used instead of `decoder`, never with).
    splitter: RowSplitter,
    codec: Arc<PgRowCodec>,
    encoding: Arc<Encoding>,
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
        let codec = Arc::new(PgRowCodec {
            types: types.clone(),
            schema: schema.clone(),
            table: table.clone(),
        });
        let encoding = Arc::new(Encoding {
            format: POSTGRES_COPY_BINARY,
            column_types: types.iter().map(Type::oid).collect(),
            codec: codec.clone(),
        });
        CopyReader {
            conn: Unreusable(Some(conn)),
            stream: Box::pin(stream),
            splitter: RowSplitter::new(types.len()),
            decoder: TupleDecoder::new(types),
            codec,
            encoding,
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
            let Some(chunk) = self.next_chunk().await? else {
                self.end(self.decoder.ended() && !self.decoder.has_partial())
                    .await?;
                break;
            };
            self.decoder
                .feed(&chunk, &mut rows)
                .map_err(|e| self.codec.error(e))?;
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let size = self.decoder.take_byte_size();
        Ok(Some(Batch::with_byte_size(self.schema.clone(), rows, size)))
    }

    fn encoding(&self) -> Option<&Arc<Encoding>> {
        Some(&self.encoding)
    }

    async fn next_encoded(&mut self) -> Result<Option<EncodedBatch>> {
        if self.done {
            return Ok(None);
        }
        while self.splitter.rows() < self.batch_rows {
            let Some(chunk) = self.next_chunk().await? else {
                self.end(self.splitter.ended() && !self.splitter.has_partial())
                    .await?;
                break;
            };
            self.splitter
                .feed(&chunk)
                .map_err(|e| self.codec.error(e))?;
        }
        if self.splitter.rows() == 0 {
            return Ok(None);
        }
        let (bytes, ends) = self.splitter.take();
        Ok(Some(EncodedBatch::new(self.encoding.clone(), bytes, ends)))
    }
}

impl CopyReader {
    /// The stream's next piece, or `None` at its end.
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>> {
        self.stream
            .next()
            .await
            .transpose()
            .map_err(|e| pg_error(e, &format!("reading {}", self.table)))
    }

    /// The stream has ended: `complete` if it ended with its trailer and nothing left over.
    async fn end(&mut self, complete: bool) -> Result<()> {
        if !complete {
            return Err(Error::transient(format!(
                "table {}: the COPY stream ended before its trailer",
                self.table
            )));
        }
        self.done = true;
        self.conn
            .get()?
            .batch_execute("COMMIT")
            .await
            .map_err(|e| pg_error(e, "ending the read transaction"))?;
        self.conn.release();
        Ok(())
    }
}

/// Reads a whole table once and checksums the rows of each of its key ranges: `query` is a
/// `COPY (SELECT <range number>, <columns>) TO STDOUT (FORMAT binary)` whose columns have the
/// wire types `types` (see `sql::range_bucket`). Rows are hashed as they stream past, so
/// memory stays at one COPY message and one hash group. Ends `conn`'s transaction (if any)
/// afterwards; a connection left mid-COPY (an error, a cancelled task) is taken out of the
/// pool.
pub(crate) async fn checksum_ranges(
    conn: Object,
    query: &str,
    types: Vec<Type>,
    schema: Arc<Schema>,
    ranges: usize,
    table: String,
) -> Result<Vec<RowChecksum>> {
    let codec = PgRowCodec {
        types,
        schema,
        table,
    };
    let what = format!("reading {} to checksum its ranges", codec.table);
    // Until the stream has ended and the transaction too, the connection cannot be reused:
    // an error or a cancelled task drops it out of the pool.
    let mut conn = Unreusable(Some(conn));
    let streamed = async {
        let c = conn.get()?;
        let stream = c.copy_out(query).await.map_err(|e| pg_error(e, &what))?;
        let mut stream = Box::pin(stream);
        let mut splitter = RowSplitter::new(codec.types.len() + 1);
        let mut sums = BucketedChecksums::new(ranges);
        while let Some(chunk) = stream
            .next()
            .await
            .transpose()
            .map_err(|e| pg_error(e, &what))?
        {
            splitter.feed(&chunk).map_err(|e| codec.error(e))?;
            let (bytes, ends) = splitter.take();
            let mut start = 0;
            for end in ends {
                let tuple = &bytes[start..end];
                start = end;
                sums.add(|text| {
                    checksum_bucketed_tuple(&codec.types, tuple, text).map_err(|e| codec.error(e))
                })?;
            }
        }
        if !splitter.ended() || splitter.has_partial() {
            return Err(Error::transient(format!(
                "table {}: the COPY stream ended before its trailer",
                codec.table
            )));
        }
        c.batch_execute("COMMIT")
            .await
            .map_err(|e| pg_error(e, "ending the read transaction"))?;
        Ok(sums.finish())
    }
    .await?;
    conn.release();
    Ok(streamed)
}

/// A pooled connection that is taken out of the pool when dropped — mid-COPY, by an error or
/// a cancelled task — unless released after its work ended cleanly.
struct Unreusable(Option<Object>);

impl Unreusable {
    fn get(&self) -> Result<&Object> {
        self.0
            .as_ref()
            .ok_or_else(|| Error::fatal("connection already released"))
    }

    /// Back to the pool as it is.
    fn release(&mut self) {
        drop(self.0.take());
    }
}

impl Drop for Unreusable {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(Object::take(conn));
        }
    }
}

/// Reads single COPY BINARY tuples of one table for the executor (checksum text, sampled
/// keys, watermarks) when the rows themselves go to the sink undecoded.
struct PgRowCodec {
    types: Vec<Type>,
    schema: Arc<Schema>,
    table: String,
}

impl PgRowCodec {
    /// A decoding failure as an error naming the table and, where one was at fault, the column.
    fn error(&self, e: DecodeError) -> Error {
        let what = match e.column.and_then(|i| self.schema.columns.get(i)) {
            Some(c) => format!(
                "table {}: column {:?} could not be decoded",
                self.table, c.name
            ),
            None => format!("table {}: malformed COPY BINARY stream", self.table),
        };
        Error::with_source(ErrorKind::Validation, what, e.source)
    }
}

impl RowCodec for PgRowCodec {
    fn decode_row(&self, row: &[u8]) -> Result<Row> {
        decode_tuple(&self.types, row).map_err(|e| self.error(e))
    }

    fn checksum_text(&self, row: &[u8], out: &mut String) -> Result<()> {
        checksum_tuple(&self.types, row, out).map_err(|e| self.error(e))
    }
}
