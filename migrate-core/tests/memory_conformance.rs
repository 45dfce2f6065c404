//! The in-memory backends pass the same conformance suites every real backend must pass.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::sync::Arc;

use migrate_core::testing::{
    checkpoint_conformance, sink_conformance, source_conformance, source_fixtures, Faults,
    MemoryCheckpointStore, MemorySink, MemorySource, SinkSuite, SourceSuite,
};

#[tokio::test]
async fn memory_sink_passes_the_sink_suite() {
    let sink = MemorySink::new(Arc::new(Faults::new()));
    sink_conformance(
        &sink,
        &SinkSuite {
            namespace: Some("suite".into()),
            unsupported_types: vec![],
        },
    )
    .await;
}

#[tokio::test]
async fn memory_source_passes_the_source_suite() {
    let fixtures = source_fixtures(Some("public"));
    let source = MemorySource::with_fixtures(&fixtures, Arc::new(Faults::new()));
    source_conformance(
        &source,
        &SourceSuite {
            namespace: Some("public".into()),
            exact_types: true,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_checkpoint_store_passes_the_checkpoint_suite() {
    checkpoint_conformance(Arc::new(MemoryCheckpointStore::new())).await;
}

/// A sink that upserts instead of replacing the chunk's range: rows deleted at the source would
/// survive a rewrite. The suite must catch it.
struct UpsertingSink(MemorySink);

#[async_trait::async_trait]
impl migrate_core::Sink for UpsertingSink {
    fn kind(&self) -> &'static str {
        "upserting"
    }
    fn capabilities(&self) -> migrate_core::SinkCapabilities {
        self.0.capabilities()
    }
    async fn preflight(
        &self,
        t: &migrate_core::TableInfo,
    ) -> migrate_core::Result<migrate_core::Preflight> {
        self.0.preflight(t).await
    }
    async fn prepare(
        &self,
        t: &migrate_core::TableInfo,
        o: &migrate_core::PrepareOptions,
        run: &migrate_core::RunId,
    ) -> migrate_core::Result<migrate_core::Prepared> {
        self.0.prepare(t, o, run).await
    }
    async fn write_chunk(
        &self,
        t: &migrate_core::TableInfo,
        _c: &migrate_core::ChunkSpec,
        rows: &mut dyn migrate_core::BatchReader,
    ) -> migrate_core::Result<migrate_core::WriteStats> {
        self.0.upsert(t, rows).await
    }
    async fn checksum(
        &self,
        t: &migrate_core::TableInfo,
        r: &migrate_core::KeyRange,
    ) -> migrate_core::Result<migrate_core::RowChecksum> {
        self.0.checksum(t, r).await
    }
    async fn rollback(
        &self,
        tables: &[(migrate_core::TableInfo, migrate_core::Prepared)],
    ) -> migrate_core::Result<()> {
        self.0.rollback(tables).await
    }
}

#[tokio::test]
#[should_panic(expected = "a rewritten range holds exactly the rows of the last write")]
async fn the_sink_suite_catches_a_sink_that_does_not_replace_ranges() {
    let sink = UpsertingSink(MemorySink::new(Arc::new(Faults::new())));
    sink_conformance(&sink, &SinkSuite::default()).await;
}
