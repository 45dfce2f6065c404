//! `SfSource` against the shared source suite, on fakesnow: the fixtures written by `SfSink`,
//! then discovered (columns, primary keys from `SHOW PRIMARY KEYS`, estimates), cut into
//! key-range chunks (the integer key by even steps, the composite key by ranked boundaries, the
//! keyless table whole), read in bounded batches and checksummed.
//!
//! The emulator cannot declare foreign keys after a table exists (the sink declares them once
//! a table's data is complete) and answers `SHOW IMPORTED KEYS` with primary-key rows, so the
//! suite runs through [`ForeignKeysRestored`], which puts back the fixtures' foreign keys after
//! discovery and hands everything else to `SfSource` as it is. Reading foreign keys from
//! Snowflake's answer is tested on a recorded one in `protocol.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use async_trait::async_trait;
use migrate_backend_snowflake::{SfSink, SfSource};
use migrate_core::testing::{source_conformance, source_fixtures, Fixture, SourceSuite};
use migrate_core::{
    BatchReader, ChunkSpec, KeyRange, PrepareOptions, Result, Row, RowChecksum, RunId, Sink,
    Source, TableFilter, TableInfo, Value, VecBatchReader,
};

/// `SfSource` with the fixtures' foreign keys put back after discovery (see the module docs).
struct ForeignKeysRestored {
    inner: SfSource,
    fixtures: Vec<Fixture>,
}

#[async_trait]
impl Source for ForeignKeysRestored {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn discover(&self, filter: &TableFilter) -> Result<Vec<TableInfo>> {
        let mut found = self.inner.discover(filter).await?;
        for t in &mut found {
            if let Some(f) = self.fixtures.iter().find(|f| f.table.name == t.name) {
                assert!(
                    t.foreign_keys.is_empty(),
                    "the emulator declared {:?}",
                    t.foreign_keys
                );
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
async fn snowflake_source_passes_the_source_suite() {
    let Some(endpoint) = common::endpoint("MIGRATE_SOURCE_SUITE", "SOURCE_SUITE") else {
        return;
    };
    let fixtures = source_fixtures(Some("source_suite"));
    let sink = SfSink::new(endpoint.clone()).unwrap();
    sink.pool()
        .query(
            "CREATE SCHEMA IF NOT EXISTS \"MIGRATE_SOURCE_SUITE\".\"SOURCE_SUITE\"",
            &[],
        )
        .await
        .unwrap();
    // The fixtures, written the way a migration writes them (children first dropped).
    for f in fixtures.iter().rev() {
        let id = sink.table_id(&f.table.name);
        sink.pool()
            .query(
                &format!("DROP TABLE IF EXISTS \"MIGRATE_SOURCE_SUITE\".\"SOURCE_SUITE\".\"{id}\""),
                &[],
            )
            .await
            .unwrap();
    }
    let run = RunId::generate();
    for f in &fixtures {
        sink.prepare(&f.table, &PrepareOptions::default(), &run)
            .await
            .unwrap();
        let chunk = ChunkSpec::whole_table(f.table.name.clone(), f.rows.len() as u64);
        let mut rows = VecBatchReader::from_rows(f.table.schema.clone(), f.rows.clone(), 50);
        sink.write_chunk(&f.table, &chunk, &mut rows).await.unwrap();
    }
    let source = ForeignKeysRestored {
        inner: SfSource::new(endpoint).unwrap(),
        fixtures,
    };
    source_conformance(
        &source,
        &SourceSuite {
            namespace: Some("source_suite".into()),
            exact_types: true,
        },
    )
    .await;
}
