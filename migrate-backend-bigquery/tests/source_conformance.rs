//! `BqSource` against the shared source suite, on the emulator: the fixtures written by
//! `BqSink`, then discovered, cut into key-range chunks (an integer key by even steps, the
//! composite key by ranked boundaries, the keyless table whole), read in bounded batches and
//! checksummed inside BigQuery.
//!
//! The emulator drops every table's `tableConstraints`, so the keys the sink declared are not
//! there to discover: the suite runs through migrate-core's `KeysRestored`, which puts back the fixtures'
//! primary and foreign keys after discovery and hands everything else to `BqSource` as it is.
//! Discovering keys from `tableConstraints` is tested on recorded table resources in
//! `source_discovery.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use common::endpoint;
use migrate_backend_bigquery::{BqClient, BqSink, BqSource};
use migrate_core::testing::{source_conformance, source_fixtures, KeysRestored, SourceSuite};
use migrate_core::{ChunkSpec, PrepareOptions, RunId, Sink, VecBatchReader};

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
        primary_keys: true,
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
