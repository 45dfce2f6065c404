//! `SfSource` against the shared source suite, on fakesnow: the fixtures written by `SfSink`,
//! then discovered (columns, primary keys from `SHOW PRIMARY KEYS`, estimates), cut into
//! key-range chunks (the integer key by even steps, the composite key by ranked boundaries, the
//! keyless table whole), read in bounded batches and checksummed.
//!
//! The emulator cannot declare foreign keys after a table exists (the sink declares them once
//! a table's data is complete) and answers `SHOW IMPORTED KEYS` with primary-key rows, so the
//! suite runs through migrate-core's `KeysRestored` (primary keys as discovered), which puts
//! back the fixtures' foreign keys after discovery and hands everything else to `SfSource` as
//! it is. Reading foreign keys from Snowflake's answer is tested on a recorded one in
//! `protocol.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use migrate_backend_snowflake::{SfSink, SfSource};
use migrate_core::testing::{source_conformance, source_fixtures, KeysRestored, SourceSuite};
use migrate_core::{ChunkSpec, PrepareOptions, RunId, Sink, Source, TableFilter, VecBatchReader};

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
    let inner = SfSource::new(endpoint).unwrap();
    for t in inner.discover(&TableFilter::default()).await.unwrap() {
        assert!(
            t.foreign_keys.is_empty(),
            "the emulator declared {:?}",
            t.foreign_keys
        );
    }
    let source = KeysRestored {
        inner,
        fixtures,
        primary_keys: false,
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
