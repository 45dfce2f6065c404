//! `BqSource` against the shared source suite, on the emulator: the fixtures written by
//! `BqSink`, then discovered, cut into key-range chunks (an integer key by even steps, the
//! composite key by ranked boundaries, the keyless table whole), read in bounded batches and
//! checksummed inside BigQuery.
//!
//! The emulator drops every table's `tableConstraints`, so the keys the sink declared are not
//! there to discover: the suite runs through [`KeysRestored`], which puts back the fixtures'
//! primary and foreign keys after discovery and hands everything else to `BqSource` as it is.
//! Discovering keys from `tableConstraints` is tested on recorded table resources in
//! `source_discovery.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use async_trait::async_trait;
use common::endpoint;
use migrate_backend_bigquery::{BqClient, BqSink, BqSource};
use migrate_core::testing::{source_conformance, source_fixtures, Fixture, SourceSuite};
use migrate_core::{
    BatchReader, ChunkSpec, KeyRange, PrepareOptions, Result, Row, RowChecksum, RunId, Schema,
    Sink, Source, TableFilter, TableInfo, Value, VecBatchReader,
};

/// `BqSource` with the fixtures' keys put back after discovery (see the module docs).
struct KeysRestored {
    inner: BqSource,
    fixtures: Vec<Fixture>,
}

#[async_trait]
impl Source for KeysRestored {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn discover(&self, filter: &TableFilter) -> Result<Vec<TableInfo>> {
        let mut found = self.inner.discover(filter).await?;
        for t in &mut found {
            if let Some(f) = self.fixtures.iter().find(|f| f.table.name == t.name) {
                let columns = t.schema.columns.clone();
                t.schema = std::sync::Arc::new(Schema::new(columns, &f.table.primary_key())?);
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

#[tokio::test]
async fn bigquery_source_passes_the_source_suite() {
    let Some(endpoint) = endpoint() else { return };
    let dataset = "migrate_source_suite";
    let fixtures = source_fixtures(Some(dataset));
    let client = BqClient::new(endpoint.clone()).unwrap();
    client.create_dataset(dataset).await.unwrap();
    for t in client.list_tables(dataset).await.unwrap() {
        client.delete_table(dataset, &t).await.unwrap();
    }
    // The fixtures, written the way a migration writes them.
    let sink = BqSink::new(endpoint.clone(), dataset).unwrap();
    let run = RunId::generate();
    for f in &fixtures {
        sink.prepare(&f.table, &PrepareOptions::default(), &run)
            .await
            .unwrap();
        let chunk = ChunkSpec::whole_table(f.table.name.clone(), f.rows.len() as u64);
        let mut rows = VecBatchReader::from_rows(f.table.schema.clone(), f.rows.clone(), 50);
        sink.write_chunk(&f.table, &chunk, &mut rows).await.unwrap();
    }
    let source = KeysRestored {
        inner: BqSource::new(endpoint, dataset).unwrap(),
        fixtures,
    };
    source_conformance(
        &source,
        &SourceSuite {
            namespace: Some(dataset.into()),
            // INT64 for every integer, NUMERIC(38, 9) for every decimal that fits it.
            exact_types: false,
        },
    )
    .await;
}
