//! A source seen through an emulator that drops declared keys, with the fixtures' keys put
//! back after discovery, so the source suite can run on it (discovering keys is then tested on
//! recorded answers instead).

use std::sync::Arc;

use async_trait::async_trait;

use super::fixtures::Fixture;
use crate::batch::{BatchReader, Row};
use crate::checksum::RowChecksum;
use crate::chunk::{ChunkSpec, KeyRange};
use crate::error::Result;
use crate::schema::{Schema, TableInfo};
use crate::source::{Source, TableFilter};
use crate::value::Value;

/// `inner` with each discovered fixture table's foreign keys — and, with `primary_keys`, its
/// primary key — taken from `fixtures`; every other call goes to `inner` as it is.
pub struct KeysRestored<S> {
    /// The source under test.
    pub inner: S,
    /// The tables it holds, with their declared keys.
    pub fixtures: Vec<Fixture>,
    /// Put the primary keys back too (the emulator kept none).
    pub primary_keys: bool,
}

#[async_trait]
impl<S: Source> Source for KeysRestored<S> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn discover(&self, filter: &TableFilter) -> Result<Vec<TableInfo>> {
        let mut found = self.inner.discover(filter).await?;
        for t in &mut found {
            if let Some(f) = self.fixtures.iter().find(|f| f.table.name == t.name) {
                if self.primary_keys {
                    let columns = t.schema.columns.clone();
                    t.schema = Arc::new(Schema::new(columns, &f.table.primary_key())?);
                }
                t.foreign_keys = f.table.foreign_keys.clone();
            }
        }
        Ok(found)
    }

    async fn chunks(&self, table: &TableInfo, chunk_rows: u64) -> Result<Vec<ChunkSpec>> {
        self.inner.chunks(table, chunk_rows).await
    }

    async fn read_chunk(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        batch_rows: usize,
    ) -> Result<Box<dyn BatchReader>> {
        self.inner.read_chunk(table, chunk, batch_rows).await
    }

    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum> {
        self.inner.checksum(table, range).await
    }

    async fn checksum_ranges(
        &self,
        table: &TableInfo,
        ranges: &[KeyRange],
    ) -> Result<Vec<RowChecksum>> {
        self.inner.checksum_ranges(table, ranges).await
    }

    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        self.inner.fetch_rows(table, keys).await
    }
}
