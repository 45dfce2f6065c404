//! What sits between a source reader and a sink: the memory budget, transforms, the checksum of
//! what is written, progress, a sample of keys for verification, and cancellation.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::budget::{MemoryBudget, Reservation};
use super::progress::Tracker;
use crate::batch::{Batch, BatchReader};
use crate::checksum::RowChecksum;
use crate::encoded::{EncodedBatch, Encoding};
use crate::error::{Error, Result};
use crate::schema::{Schema, TableName};
use crate::source::Watermark;
use crate::transform::{Rejected, Transform};
use crate::value::Value;

/// A uniform-ish sample of keys (reservoir sampling), kept small: keys only, never values.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySample {
    pub(crate) seen: u64,
    pub(crate) keys: Vec<Vec<Value>>,
}

impl KeySample {
    /// Offers one row's key; `key` is only built when the key is kept.
    pub(crate) fn offer(&mut self, key: impl FnOnce() -> Vec<Value>, cap: usize) {
        let built: Result<()> = self.try_offer(|| Ok(key()), cap);
        debug_assert!(built.is_ok());
    }

    /// [`Self::offer`] for keys that can fail to build (decoded from encoded rows).
    pub(crate) fn try_offer(
        &mut self,
        key: impl FnOnce() -> Result<Vec<Value>>,
        cap: usize,
    ) -> Result<()> {
        self.seen += 1;
        if self.keys.len() < cap {
            self.keys.push(key()?);
        } else if cap > 0 {
            let j = fastrand::u64(..self.seen) as usize;
            if j < cap {
                self.keys[j] = key()?;
            }
        }
        Ok(())
    }

    /// Folds a chunk's sample into the table's, weighting by rows seen.
    pub(crate) fn merge(&mut self, other: KeySample, cap: usize) {
        if other.keys.is_empty() {
            return;
        }
        let per_key = (other.seen / other.keys.len() as u64).max(1);
        for k in other.keys {
            self.seen += per_key;
            if self.keys.len() < cap {
                self.keys.push(k);
            } else if cap > 0 && fastrand::u64(..self.seen) < (cap as u64) * per_key {
                let i = fastrand::usize(..cap);
                self.keys[i] = k;
            }
        }
    }
}

/// Everything one chunk attempt accumulated.
#[derive(Debug, Default)]
pub(crate) struct PipeStats {
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
    pub(crate) checksum: RowChecksum,
    pub(crate) rejected: Vec<Rejected>,
    pub(crate) sample: KeySample,
    pub(crate) last_position: Option<Watermark>,
    /// The target's engine copied the rows itself: none passed through, so no checksum of them.
    pub(crate) in_engine: bool,
}

pub(crate) struct ChunkPipe<'a> {
    pub(crate) inner: Box<dyn BatchReader>,
    pub(crate) out_schema: Arc<Schema>,
    pub(crate) transforms: &'a [Arc<dyn Transform>],
    pub(crate) budget: &'a Arc<MemoryBudget>,
    pub(crate) held: Option<Reservation>,
    pub(crate) tracker: &'a Tracker,
    pub(crate) table: &'a TableName,
    pub(crate) cancel: &'a CancellationToken,
    pub(crate) sample_cap: usize,
    /// Checksum the rows (only verification reads the figure).
    pub(crate) checksums: bool,
    /// The run's bandwidth limit, if any.
    pub(crate) throttle: Option<&'a super::throttle::Throttle>,
    /// Cursor column index in the source schema, for incremental watermarks.
    pub(crate) cursor_index: Option<usize>,
    pub(crate) stats: PipeStats,
}

#[async_trait]
impl BatchReader for ChunkPipe<'_> {
    fn schema(&self) -> &Arc<Schema> {
        &self.out_schema
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        self.before_next()?;
        let Some(batch) = self.inner.next_batch().await? else {
            return Ok(None);
        };
        self.admit(batch.byte_size()).await;
        let src_schema = batch.schema().clone();
        if self.samples(&src_schema) {
            for row in batch.rows() {
                self.stats
                    .sample
                    .offer(|| src_schema.key_of(row), self.sample_cap);
            }
        }
        if let (Some(ci), Some(last)) = (self.cursor_index, batch.rows().last()) {
            self.stats.last_position = Some(Watermark {
                cursor: last[ci].clone(),
                key: src_schema.key_of(last),
            });
        }
        let mut out = batch;
        for t in self.transforms {
            let res = t.apply(out).map_err(|e| {
                e.table(self.table)
                    .operation(format!("transform {}", t.name()))
            })?;
            self.stats.rejected.extend(res.rejected);
            out = res.batch;
        }
        if self.checksums {
            self.stats.checksum.add_rows(out.rows());
        }
        self.count(out.len(), out.byte_size());
        Ok(Some(out))
    }

    fn encoding(&self) -> Option<&Arc<Encoding>> {
        // Transforms need values; without them the sink may take the source's bytes as-is.
        if self.transforms.is_empty() {
            self.inner.encoding()
        } else {
            None
        }
    }

    async fn next_encoded(&mut self) -> Result<Option<EncodedBatch>> {
        if !self.transforms.is_empty() {
            return Err(Error::fatal("encoded rows requested through transforms"));
        }
        self.before_next()?;
        let Some(batch) = self.inner.next_encoded().await? else {
            return Ok(None);
        };
        self.admit(batch.byte_size()).await;
        let codec = &batch.encoding().codec;
        let schema = self.inner.schema().clone();
        let not_decoded = |e: Error| e.table(self.table).operation("decoding an encoded row");
        if self.samples(&schema) {
            for row in batch.rows() {
                self.stats
                    .sample
                    .try_offer(
                        || Ok(schema.key_of(&codec.decode_row(row)?)),
                        self.sample_cap,
                    )
                    .map_err(not_decoded)?;
            }
        }
        let last = batch.len().checked_sub(1).and_then(|i| batch.row(i));
        if let (Some(ci), Some(last)) = (self.cursor_index, last) {
            let last = codec.decode_row(last).map_err(not_decoded)?;
            self.stats.last_position = Some(Watermark {
                cursor: last[ci].clone(),
                key: schema.key_of(&last),
            });
        }
        if self.checksums {
            self.stats
                .checksum
                .add_encoded(&batch)
                .map_err(not_decoded)?;
        }
        self.count(batch.len(), batch.byte_size());
        Ok(Some(batch))
    }
}

impl ChunkPipe<'_> {
    /// Before reading on: the sink asking for the next batch means it is done with the
    /// previous one; a cancelled run stops here.
    fn before_next(&mut self) -> Result<()> {
        self.held = None;
        self.tracker.in_flight(self.budget.in_flight());
        if self.cancel.is_cancelled() {
            return Err(Error::cancelled("run cancelled").table(self.table));
        }
        Ok(())
    }

    /// Holds a batch of `size` bytes against the memory budget and the bandwidth limit.
    async fn admit(&mut self, size: usize) {
        self.held = Some(self.budget.reserve(size as u64).await);
        if let Some(t) = self.throttle {
            t.take(size as u64).await;
        }
        self.tracker.in_flight(self.budget.in_flight());
    }

    /// Whether rows of `schema` are offered to the key sample (not when it is off, nor for
    /// keyless tables: nothing would read what the loop over every row gathered).
    fn samples(&self, schema: &Schema) -> bool {
        self.sample_cap > 0 && !schema.primary_key.is_empty()
    }

    /// Counts rows handed to the sink.
    fn count(&mut self, rows: usize, bytes: usize) {
        let (rows, bytes) = (rows as u64, bytes as u64);
        self.stats.rows += rows;
        self.stats.bytes += bytes;
        self.tracker.rows(self.table, rows as i64, bytes as i64);
    }
}
